"""The configuration keys of the fusion engine (docs/architectures.md), in one place.

The fields live in the dataclasses of :mod:`simcomp.config` (a block marked
"fusion engine" at the end of each); their checks live here, so that the
rest of the configuration code is untouched by them.  Every key defaults to
today's model (two-layer late fusion, fixed head, sparse-coding data,
logistic loss), and :func:`drop_defaults` leaves keys at those defaults out
of the plain-dict form, so that configurations of the original model (and
everything keyed on them: sweep records, stored outputs) are unchanged.

This module imports only :mod:`simcomp.validation` and the method registry (plain
Python, as the configuration code needs it).
"""

from __future__ import annotations

import math
from typing import Any

from .registry import REGISTRY
from .validation import ConfigError, _need_choice, _need_float, _need_int

__all__ = ["ARCHITECTURES", "HEADS", "DATA_KINDS", "LOSSES", "FUSION_DEFAULTS",
           "FUSION_METHODS",
           "uses_fusion_engine",
           "check_model", "check_data", "check_modality", "check_train", "check_config",
           "drop_defaults", "fusion_layer"]

ARCHITECTURES = ("late_fusion", "early_fusion", "deep_fusion")
HEADS = ("fixed", "trainable")
DATA_KINDS = ("sparse_coding", "gaussian")
LOSSES = ("logistic", "mse")
MAX_DEPTH = 64
# The training methods the fusion engine runs (docs/methods.md): lr_scale is a per-weight
# step factor, which its GD loop already has; aux and alternating are losses over input
# views (the whole input, each modality alone), which its gradient takes as they are; ogm
# and agm scale each modality's own weights by a factor computed from the views' outputs
# (logistic loss only); mmcosine normalises each modality's encoding and head block
# (two-layer late fusion with a trainable head, logistic loss only).  The others (noise,
# two gradients per encoder, teachers) are refused.
FUSION_METHODS = ("none", "lr_scale", "aux", "alternating", "ogm", "agm", "mmcosine")

# Section -> key -> default; keys at their default are left out of Config.to_dict().
FUSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"architecture": "late_fusion", "head": "fixed", "depth": 2, "fusion_layer": 0},
    "data": {"kind": "sparse_coding", "correlation": 0.0, "label_noise": 0.0, "covariance": None},
    "modality": {"std": 1.0},
    "train": {"loss": "logistic"},
}


def uses_fusion_engine(model) -> bool:
    """True unless the model is the original late fusion with its head fixed to ones."""
    return not (model.architecture == "late_fusion" and model.head == "fixed")


def fusion_layer(model) -> int:
    """The resolved fusion layer L_f: the last layer for late fusion, 1 for early fusion."""
    if model.architecture == "late_fusion":
        return model.depth
    if model.architecture == "early_fusion":
        return 1
    return model.fusion_layer


def check_model(model) -> None:
    """Checks of [model]'s fusion keys (called at the end of ModelConfig.__post_init__)."""
    _need_choice("model.architecture", model.architecture, ARCHITECTURES)
    _need_choice("model.head", model.head, HEADS)
    _need_int("model.depth", model.depth, lo=2, hi=MAX_DEPTH)
    _need_int("model.fusion_layer", model.fusion_layer, lo=0, hi=model.depth)
    arch = model.architecture
    if arch in ("late_fusion", "early_fusion") and model.depth != 2:
        raise ConfigError(f"model.depth = {model.depth} needs model.architecture = 'deep_fusion' "
                          f"({arch} has two layers; valid: model.depth = 2)")
    if arch != "deep_fusion" and model.fusion_layer != 0:
        raise ConfigError(f"model.fusion_layer is set by model.architecture = {arch!r}; set it "
                          "only with 'deep_fusion' (valid here: 0, the architecture's own)")
    if arch == "deep_fusion" and model.fusion_layer == 0:
        raise ConfigError(f"model.architecture = 'deep_fusion' needs model.fusion_layer between 1 "
                          f"and model.depth = {model.depth}")
    if not uses_fusion_engine(model) and model.activation == "linear":
        raise ConfigError("model.activation = 'linear' needs the fusion engine: set "
                          "model.head = 'trainable' or another model.architecture (the fixed-head "
                          "late-fusion learner takes srelu or relu)")


def check_modality(mod, where: str) -> None:
    """Check of a modality's Gaussian standard deviation."""
    value = _need_float(f"{where}.std", mod.std, lo=0.0, hi=1e6, lo_open=True)
    object.__setattr__(mod, "std", value)


def check_data(data) -> None:
    """Checks of [data]'s fusion keys (called at the end of DataConfig.__post_init__)."""
    _need_choice("data.kind", data.kind, DATA_KINDS)
    object.__setattr__(data, "correlation",
                       _need_float("data.correlation", data.correlation, lo=-1.0, hi=1.0))
    if abs(data.correlation) >= 1.0:
        raise ConfigError(f"data.correlation must be strictly between -1 and 1, got "
                          f"{data.correlation:g}")
    object.__setattr__(data, "label_noise",
                       _need_float("data.label_noise", data.label_noise, lo=0.0, hi=1e6))
    if data.kind != "gaussian":
        for key in ("correlation", "label_noise", "covariance"):
            if getattr(data, key) != FUSION_DEFAULTS["data"][key]:
                raise ConfigError(f"data.{key} needs data.kind = 'gaussian' (the sparse-coding "
                                  "data have their own noise keys per modality)")
        if any(mod.std != 1.0 for mod in data.modality):
            raise ConfigError("data.modality.N.std needs data.kind = 'gaussian'")
        return
    if getattr(data, "presence_correlation", 0.0) != 0.0:
        raise ConfigError("data.presence_correlation needs data.kind = 'sparse_coding' (Gaussian "
                          "data have no presence coins; their modalities' link is "
                          "data.correlation)")
    if data.covariance is not None:
        # The full matrix replaces the std/correlation form: given together, one is ignored.
        if data.correlation != 0.0:
            raise ConfigError("data.correlation cannot be combined with data.covariance (the "
                              "matrix holds the correlations); set only one of them")
        for i, mod in enumerate(data.modality):
            if mod.std != 1.0:
                raise ConfigError(f"data.modality.{i}.std cannot be combined with "
                                  "data.covariance (the matrix's diagonal holds the variances); "
                                  "set only one of them")
        object.__setattr__(data, "covariance", _covariance(data))
        return
    K = len(data.modality)
    # One equal correlation between the i-th coordinates of K modalities is a positive-definite
    # covariance only above -1/(K-1) (the smallest eigenvalue is 1 + (K - 1) c).
    if K >= 3 and data.correlation <= -1.0 / (K - 1):
        raise ConfigError(f"data.correlation = {data.correlation:g} makes the covariance of "
                          f"{K} Gaussian modalities singular; valid: above -1/(K-1) = "
                          f"{-1.0 / (K - 1):.4g} and below 1 (or give data.covariance)")


def _covariance(data) -> tuple:
    """data.covariance: a symmetric positive-definite D x D matrix (D = sum of the dims)."""
    dim = sum(mod.dim for mod in data.modality)
    cov = data.covariance
    if not isinstance(cov, (list, tuple)) or len(cov) != dim or not all(
            isinstance(row, (list, tuple)) and len(row) == dim for row in cov):
        raise ConfigError(f"data.covariance must be a {dim} x {dim} matrix (a list of {dim} rows; "
                          "D is the sum of the modalities' dims)")
    rows = tuple(tuple(_need_float(f"data.covariance[{i}][{j}]", v) for j, v in enumerate(row))
                 for i, row in enumerate(cov))
    for i in range(dim):
        for j in range(i):
            if rows[i][j] != rows[j][i]:
                raise ConfigError(f"data.covariance must be symmetric; entries [{i}][{j}] = "
                                  f"{rows[i][j]:g} and [{j}][{i}] = {rows[j][i]:g} differ")
    if not _positive_definite(rows):
        raise ConfigError("data.covariance must be positive definite (its Cholesky factor "
                          "does not exist)")
    return rows


def _positive_definite(rows) -> bool:
    n = len(rows)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = rows[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if not s > 0.0:
                    return False
                low[i][i] = math.sqrt(s)
            else:
                low[i][j] = s / low[j][j]
    return True


def check_train(train) -> None:
    """Check of [train]'s fusion key (called at the end of TrainConfig.__post_init__)."""
    _need_choice("train.loss", train.loss, LOSSES)


def check_config(cfg) -> None:
    """Checks across sections: what the fusion engine and the original learner each take."""
    model, data, train = cfg.model, cfg.data, cfg.train
    if not uses_fusion_engine(model):
        for key, value, default in (("data.kind", data.kind, "sparse_coding"),
                                    ("train.loss", train.loss, "logistic")):
            if value != default:
                raise ConfigError(
                    f"{key} = {value!r} needs the fusion engine: set model.head = 'trainable' or "
                    "model.architecture = 'early_fusion' / 'deep_fusion' (the fixed-head "
                    f"late-fusion learner takes {key} = {default!r})")
        if REGISTRY[cfg.method.name].needs_trainable_head:
            raise ConfigError(_head_message(cfg.method.name, model))
        return
    if cfg.method.name not in FUSION_METHODS:
        raise ConfigError(f"method.name = {cfg.method.name!r} is not defined on the fusion engine "
                          f"(model.architecture = {model.architecture!r}, model.head = "
                          f"{model.head!r}); valid there: "
                          + ", ".join(repr(m) for m in FUSION_METHODS))
    if cfg.method.name in ("ogm", "agm") and train.loss != "logistic":
        raise ConfigError(
            f"method.name = {cfg.method.name!r} needs train.loss = 'logistic' on the fusion "
            f"engine (its score is the probability each modality alone gives the true class); "
            f"got train.loss = {train.loss!r} with model.architecture = "
            f"{model.architecture!r}")
    if REGISTRY[cfg.method.name].needs_trainable_head and (
            model.architecture != "late_fusion" or model.head != "trainable"):
        raise ConfigError(_head_message(cfg.method.name, model))
    if cfg.method.name == "mmcosine" and train.loss != "logistic":
        raise ConfigError(
            f"method.name = 'mmcosine' needs train.loss = 'logistic' (its logits are cosines "
            f"under a softmax cross-entropy); got train.loss = {train.loss!r} with "
            f"model.architecture = {model.architecture!r}")
    if cfg.method.name == "alternating" and model.activation != "linear" and \
            fusion_layer(model) != model.depth:
        raise ConfigError(
            f"method.name = 'alternating' needs, on the fusion engine, a network whose output is "
            f"the sum of its modalities' outputs (its predictor is sum_r a_r f_r): "
            f"model.activation = 'linear' or fusion at the last layer; got model.architecture = "
            f"{model.architecture!r} with fusion layer {fusion_layer(model)} of "
            f"{model.depth} and model.activation = {model.activation!r}")
    if train.mode != "joint":
        raise ConfigError(f"train.mode must be 'joint' on the fusion engine (one run on all "
                          f"modalities), got {train.mode!r}")
    if train.batch_size != 0:
        raise ConfigError("train.batch_size must be 0 (full batch) on the fusion engine")
    if train.dtype != "float64":
        raise ConfigError("train.dtype must be 'float64' on the fusion engine")
    if data.population and not (cfg.method.name == "mmcosine" and data.kind == "sparse_coding"):
        # mmcosine trains on the weighted noise-free patterns (its sample route takes any
        # sample weights), the distribution its (a, u) recursion predicts exactly
        if data.kind != "gaussian" or train.loss != "mse" or model.activation != "linear":
            raise ConfigError(
                "data.population = true on the fusion engine needs data.kind = 'gaussian', "
                "train.loss = 'mse' and model.activation = 'linear' (only then is the exact "
                "population gradient a function of the covariance alone); got "
                f"data.kind = {data.kind!r}, train.loss = {train.loss!r}, "
                f"model.activation = {model.activation!r}"
                "; or method.name = 'mmcosine' on data.kind = 'sparse_coding'")


def _head_message(name: str, model) -> str:
    return (f"method.name = {name!r} needs a trainable fusion head: set model.head = "
            f"\"trainable\" with model.architecture = \"late_fusion\" (got "
            f"model.architecture = {model.architecture!r}, model.head = {model.head!r}; it "
            "normalises each modality's encoding and its block of the head, which a fixed "
            "head or a shared layer after the fusion layer does not have)")


def drop_defaults(out: dict) -> dict:
    """Leave the fusion keys at their defaults out of a Config's plain-dict form."""
    for section in ("model", "data", "train"):
        for key, default in FUSION_DEFAULTS[section].items():
            if key in out[section] and out[section][key] == default:
                del out[section][key]
    if out["data"].get("covariance") is not None:
        out["data"]["covariance"] = [list(row) for row in out["data"]["covariance"]]
    for mod in out["data"]["modality"]:
        if mod.get("std") == FUSION_DEFAULTS["modality"]["std"]:
            del mod["std"]
    return out
