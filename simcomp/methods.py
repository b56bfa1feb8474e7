"""From a config's ``[method]`` table to what one training run needs.

The training loop is given a method as a plain dictionary of keyword
arguments (the arguments of ``simcomp.kernels.rule_spec.make_rule``), resolved
for one run: per-modality settings are restricted to the modalities that
run trains, in config order.  This module knows nothing about the kernels;
it only turns a :class:`~simcomp.config.Config` into numbers.

What each method does is explained in docs/methods.md.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .config import METHODS, Config, MethodConfig
from .data import _STREAM_METHOD  # the method's child of the run's SeedSequence
from .data import Dataset, ExperimentData, draw_dataset, empirical_patterns
from .registry import REGISTRY
from .shapley import MAX_MODALITIES as SHAPLEY_MAX_MODALITIES
from .shapley import predictor_error, shapley_values

__all__ = [
    "METHODS",
    "STOCHASTIC_METHODS",
    "STAT_NAMES",
    "is_deterministic",
    "trains_joint",
    "rule_kwargs",
    "plain_rule_kwargs",
    "predictor_weights",
    "teacher_steps",
    "method_seed_sequence",
    "method_key",
    "unit_outputs",
    "method_results",
    "holdout_dataset",
    "holdout_patterns",
]

# Methods whose update draws random numbers (dropout masks, gradient noise).
STOCHASTIC_METHODS = tuple(name for name, spec in REGISTRY.items() if spec.stochastic)

# Per-step statistics a method adds to the trace, each (K,) float64 per recorded step.
STAT_NAMES = ("method_score", "method_ratio", "method_scale", "method_cosine")



def _check_name(name: str) -> str:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return name


def is_deterministic(name: str) -> bool:
    """True when the method's update is a function of the weights alone (no random draws)."""
    return _check_name(name) not in STOCHASTIC_METHODS


def trains_joint(name: str) -> bool:
    """False for ``ume``, whose predictor is built from the uni-modal runs only."""
    return REGISTRY[_check_name(name)].trains_joint


def _trained(cfg: Config, trained: Sequence[int]) -> list[int]:
    trained = [int(r) for r in trained]
    if not trained or any(r < 0 or r >= cfg.K for r in trained) or len(set(trained)) != len(trained):
        raise ValueError(
            f"trained modalities must be distinct indices in 0..{cfg.K - 1}, got {trained}"
        )
    return sorted(trained)


def _pick(values: Any, trained: list[int]) -> list[float] | None:
    """The entries of a per-modality tuple for the trained modalities (a scalar is repeated)."""
    if values is None:
        return None
    if isinstance(values, tuple):
        return [float(values[r]) for r in trained]
    return [float(values)] * len(trained)


def teacher_steps(cfg: Config) -> int:
    """umt's teacher training steps: ``method.teacher_steps``, else ``train.steps``."""
    steps = cfg.method.teacher_steps
    return cfg.train.steps if steps is None else int(steps)


def method_seed_sequence(seed: int) -> np.random.SeedSequence:
    """The method's own child of the run's SeedSequence (child 4, after the data's four)."""
    return np.random.SeedSequence(seed).spawn(_STREAM_METHOD + 1)[_STREAM_METHOD]


def method_key(seed: int) -> int:
    """A 63-bit integer key for counter-based random numbers of the method.

    The top bit is cleared so that the key fits a signed 64-bit integer in
    compiled code.
    """
    word = method_seed_sequence(seed).generate_state(1, dtype=np.uint64)[0]
    return int(word) & 0x7FFF_FFFF_FFFF_FFFF


def holdout_dataset(cfg: Config, data: ExperimentData) -> Dataset:
    """The held-out sample of a method that compares training and unseen data (docs/methods.md).

    ``method.holdout`` samples (unset: as many as ``data.n_train``) from the run's data
    distribution, drawn from the first child of the method's own stream
    (:func:`method_seed_sequence`), so that the training set, the test set and the
    initial weights do not change -- and never the test set, which must not steer
    training.  In population mode the held-out "sample" is the population itself.
    """
    if cfg.data.population:
        return data.train
    n = cfg.data.n_train if cfg.method.holdout is None else int(cfg.method.holdout)
    streams = method_seed_sequence(cfg.seed).spawn(1)[0].spawn(1 + cfg.K)
    return draw_dataset(cfg, data.dictionaries, n, np.random.default_rng(streams[0]),
                        [np.random.default_rng(s) for s in streams[1:]])


def holdout_patterns(cfg: Config, data: ExperimentData, trained: Sequence[int]):
    """The training set's and the held-out sample's (y, s) pattern weights on one pattern list.

    Returns ``(y_pat, s_pat, w_pat, w_holdout)``: every pattern present in either set,
    with its weight in each (0 where absent).
    """
    idx = _trained(cfg, trained)
    y_t, s_t, w_t = empirical_patterns(data.train, idx)
    y_h, s_h, w_h = empirical_patterns(holdout_dataset(cfg, data), idx)
    keys = {}
    for y, s in zip(np.concatenate([y_t, y_h]), np.concatenate([s_t, s_h])):
        keys.setdefault((float(y),) + tuple(int(v) for v in s), len(keys))
    y_pat = np.array([k[0] for k in keys])
    s_pat = np.array([k[1:] for k in keys], dtype=np.int8).reshape(len(keys), len(idx))
    w_pat, w_hold = np.zeros(len(keys)), np.zeros(len(keys))
    for y, s, w in zip(y_t, s_t, w_t):
        w_pat[keys[(float(y),) + tuple(int(v) for v in s)]] += w
    for y, s, w in zip(y_h, s_h, w_h):
        w_hold[keys[(float(y),) + tuple(int(v) for v in s)]] += w
    return y_pat, s_pat, w_pat, w_hold


def plain_rule_kwargs(K: int) -> dict[str, Any]:
    """The keyword arguments of plain training (``none``) for ``K`` trained modalities."""
    return {"name": "none", "K": int(K)}


def rule_kwargs(cfg: Config, trained: Sequence[int], teacher_units=None) -> dict[str, Any]:
    """The keyword arguments of ``make_rule`` for a run of ``cfg`` training ``trained``.

    Parameters
    ----------
    cfg : Config
        The resolved config; its ``method`` table chooses the rule.
    trained : sequence of int
        Indices (into the config's modalities) of the modalities the run trains.
    teacher_units : ndarray, optional
        umt only: the frozen teachers' unit outputs on the training set,
        (K_run, B, m, n) float64 (see :func:`unit_outputs`).  Required for umt.

    Returns
    -------
    dict
        ``name``, ``K`` and the settings the method takes, per-modality
        lists restricted to ``trained`` (config order); ``key`` (the method's
        random stream) for every method.  ``ume`` trains nothing jointly, so
        its joint run (if any) is plain: ``name = "none"``.
    """
    idx = _trained(cfg, trained)
    method: MethodConfig = cfg.method
    name = method.name
    spec = REGISTRY[name]
    K = len(idx)
    if spec.kernel != name:  # ume: its joint run (if any) is plain
        return {**plain_rule_kwargs(K), "key": method_key(cfg.seed)}
    out: dict[str, Any] = {"name": name, "K": K, "key": method_key(cfg.seed)}
    for setting in spec.settings:
        if not setting.in_rule:
            continue
        value = getattr(method, setting.key)
        out[setting.key] = _pick(value, idx) if setting.per_modality else value
    shape = (cfg.model.banks, cfg.model.width, cfg.data.n_train,
             max(cfg.data.modality[r].dim for r in idx))
    if spec.state_shape(K, *shape) != spec.state_shape(K, 1, 1, 1, 1):
        out["shape"] = shape  # the method's state depends on the run's (B, m, n, D)
    if spec.table is not None:  # umt: the teachers' unit outputs
        if teacher_units is None:
            raise ValueError(f"method {name} needs teacher_units (the teachers' unit outputs)")
        units = np.ascontiguousarray(teacher_units, dtype=np.float64)
        if units.ndim != 4 or units.shape[0] != K or units.shape[1] != cfg.model.banks \
                or units.shape[2] != cfg.model.width:
            raise ValueError(
                f"teacher_units must have shape (K_run={K}, B={cfg.model.banks}, "
                f"m={cfg.model.width}, n), got {units.shape}"
            )
        out.update(distill_weight=float(method.distill_weight), teacher_units=units)
    return out


def predictor_weights(cfg: Config, trained: Sequence[int]) -> np.ndarray:
    """Weights a_r of the method's predictor sum_r a_r phi_r over the trained modalities.

    ``alternating``: its ``mix``; every other method: ones (the plain fused
    output; for ``ume`` applied to the uni-modal networks' outputs).
    """
    idx = _trained(cfg, trained)
    key = REGISTRY[cfg.method.name].predictor_setting
    if key is not None:
        return np.array(_pick(getattr(cfg.method, key), idx), dtype=np.float64)
    return np.ones(len(idx), dtype=np.float64)


def unit_outputs(cfg: Config, weights: Sequence[np.ndarray], X: Sequence[np.ndarray]) -> np.ndarray:
    """Every neuron's unit output on every sample: (K_run, B, m, n) float64.

    ``weights[r]`` is encoder r's (B, m, d_r) array and ``X[r]`` its (n, d_r)
    inputs.  The unit output is psi(<w, x>) for the symmetric learner and
    act(<w, x>) (before the bank sign) for class banks; it is what umt's
    teachers provide (``teacher_units``).
    """
    if len(weights) != len(X):
        raise ValueError(f"got {len(weights)} weight arrays but {len(X)} input arrays")
    q, rho = cfg.model.q, cfg.model.rho
    out = []
    for W, Xr in zip(weights, X):
        z = np.einsum("bid,jd->bij", np.asarray(W, dtype=np.float64), np.asarray(Xr, dtype=np.float64))
        if cfg.model.learner == "symmetric":
            out.append(np.sign(z) * _srelu(np.abs(z), q, rho))
        elif cfg.model.activation == "relu":
            out.append(np.maximum(z, 0.0))
        else:
            out.append(_srelu(z, q, rho))
    return np.ascontiguousarray(np.stack(out))


def _srelu(z: np.ndarray, q: float, rho: float) -> np.ndarray:
    zc = np.clip(z, 0.0, rho)
    return np.where(z <= 0.0, 0.0, np.where(z <= rho, zc**q / (q * rho ** (q - 1.0)),
                                            z - (1.0 - 1.0 / q) * rho))


def method_results(cfg: Config, trained: Sequence[int], phi, y, weight=None,
                   phi_unimodal=None) -> dict[str, Any]:
    """What a method adds to a run's results, from encoder outputs on the test set.

    Parameters
    ----------
    cfg : Config
    trained : sequence of int
        The run's trained modalities (config indices).
    phi : array_like, shape (n, K_run)
        The jointly trained encoders' outputs on the test samples (columns in
        config order of ``trained``).
    y, weight : array_like, shape (n,)
        Test labels and weights (default 1/n).
    phi_unimodal : array_like, shape (n, K_run), optional
        Each uni-modal network's output on the test samples (compare mode).

    Returns
    -------
    dict
        ``shapley`` (K_run,) exact Shapley values of the joint network's
        modalities for test accuracy (NaN, reported as null, above
        ``simcomp.shapley.MAX_MODALITIES`` modalities); ``method_test_error``, the error of the
        method's predictor (mix-weighted for alternating, the uni-modal
        ensemble for ume, else the fused output; None for ume without
        ``phi_unimodal``); ``ensemble_test_error``, the uni-modal ensemble's
        error (None without ``phi_unimodal``).
    """
    mix = predictor_weights(cfg, trained)
    ensemble = None if phi_unimodal is None else predictor_error(phi_unimodal, y, weight)
    if not REGISTRY[cfg.method.name].trains_joint:  # ume: the uni-modal ensemble
        own = ensemble
    else:
        own = predictor_error(phi, y, weight, mix)
    phi = np.asarray(phi)
    if phi.shape[1] <= SHAPLEY_MAX_MODALITIES:
        shapley = shapley_values(phi, y, weight)
    else:  # 2^K coalitions: not computed, reported as null ("no value")
        shapley = np.full(phi.shape[1], np.nan)
    return {"shapley": shapley, "method_test_error": own, "ensemble_test_error": ensemble}
