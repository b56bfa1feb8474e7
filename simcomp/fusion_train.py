"""Training on the fusion engine: data, the gradient route, batched GD, the trace quantities.

A configuration with a trainable head, early or deep fusion, Gaussian data,
the linear activation or the squared loss runs here instead of the original
late-fusion kernels (docs/architectures.md).  One run trains the joint model
on all modalities.  What it records, per record step: the loss and each
modality's *total weight*; from those come ``half_step`` and
``misattribution`` (docs/fusion.md).

Total weight of modality r: the coefficient of the linear map from x_r to
the output, projected on the target's coefficients a_r and divided by
|a_r|^2 (1 when the modality is learned exactly).  For a linear network it is
the product of the layers restricted to x_r.  For a ReLU network of
one-dimensional modalities fused at the last layer, f is piecewise linear in
each x_r with a kink at 0 and the total weight is the mean of its two slopes,
(f(e_r) - f(-e_r)) / 2 (sum_j v_j w_j / 2 in two layers).  For any other
nonlinear network, it is the least-squares linear read-out of the network's
outputs on the training inputs.  For sparse-coding data a_r is the modality's class-mean direction
on the training set.

Random streams (children of ``SeedSequence(cfg.seed)``): 6 the Gaussian
training set, 7 the fusion engine's initial weights; the sparse-coding data
come from :mod:`simcomp.data` as for the original model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .config import Config
from .kernels.fusion_net import ACT_CODES, LOSS_CODES, SRC_CONCAT, SRC_INPUT, gd_batch
from .models.registry import network

__all__ = ["FusionRun", "prepare", "learning_rate_scale", "train_fusion",
           "gaussian_covariance", "half_steps",
           "misattribution_of", "initial_magnitudes", "chain_scalars",
           "method_view_weights", "weight_owner"]

_STREAM_GAUSS, _STREAM_FUSION_INIT = 6, 7


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def gaussian_covariance(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """The input covariance and the target's coefficients (ones) of Gaussian data.

    Without ``data.covariance``: within a modality std_r^2 I; across
    modalities r, s, correlation * std_r * std_s between their i-th
    coordinates (i < min(d_r, d_s)).
    """
    dims = [mod.dim for mod in cfg.data.modality]
    D = sum(dims)
    if cfg.data.covariance is not None:
        return np.array(cfg.data.covariance, dtype=np.float64), np.ones(D)
    cov = np.zeros((D, D))
    col0 = np.concatenate([[0], np.cumsum(dims)[:-1]])
    stds = [mod.std for mod in cfg.data.modality]
    for r, dr in enumerate(dims):
        for s, ds in enumerate(dims):
            for i in range(min(dr, ds)):
                value = stds[r] ** 2 if r == s else cfg.data.correlation * stds[r] * stds[s]
                cov[col0[r] + i, col0[s] + i] = value
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ValueError("data.correlation makes the covariance singular for these modalities; "
                         "give data.covariance instead")
    return cov, np.ones(D)


@dataclass
class FusionRun:
    """One prepared run: everything its compiled call needs, and its names."""

    cfg: Config
    names: tuple
    net: object
    theta0: np.ndarray
    mask: np.ndarray
    route: str
    data: tuple
    proj: np.ndarray
    key: tuple
    extra: dict = field(default_factory=dict)


def _reference_coefficients(cfg, X, y, w, target):
    """a: the target's coefficients (Gaussian) or each modality's class-mean direction."""
    if target is not None:
        return target
    return X.T @ (w * y)


def _proj_rows(a, col0, dims):
    rows = np.zeros((len(dims), a.shape[0]))
    for r, (c0, d) in enumerate(zip(col0, dims)):
        seg = a[c0:c0 + d]
        rows[r, c0:c0 + d] = seg / max(float(seg @ seg), 1e-300)
    return rows


def _relu_probes(dims):
    """Probes +e_r, -e_r and features (x_r^+, (-x_r)^+) of 1-d modalities fused at the end."""
    K = len(dims)
    U = np.zeros((2 * K, K))
    for r in range(K):
        U[2 * r, r], U[2 * r + 1, r] = 1.0, -1.0
    return U


def _relu_features(X):
    K = X.shape[1]
    phi = np.empty((X.shape[0], 2 * K))
    phi[:, 0::2] = np.maximum(X, 0.0)
    phi[:, 1::2] = np.maximum(-X, 0.0)
    return phi


def _route(cfg: Config, net) -> str:
    m = cfg.model
    if cfg.train.loss != "mse":
        return "samples"
    if m.activation == "linear":
        return "moments"
    dims = [mod.dim for mod in cfg.data.modality]
    if m.activation == "relu" and net.fusion_layer == net.depth and all(d == 1 for d in dims):
        return "moments"
    return "samples"


def initial_magnitudes(cfg: Config, net, theta) -> list:
    """Each modality's initial total-weight magnitude for two-layer late fusion:
    sum_j (v_j + w_j)^2 / 4 over its hidden units (1-d modalities), the theory's u0.

    Under GD toward a positive total weight, v + w grows and v - w decays, so
    the product v w starts its growth from (v + w)^2 / 4 (signs kept, v >= 0)."""
    if net.depth != 2 or net.fusion_layer != 2:
        return [cfg.model.init_scale ** 2] * cfg.K
    head = theta[net.head]
    out = []
    for r in range(cfg.K):
        off, rows, cols = net.layout[r, :3]
        W = theta[off:off + rows * cols].reshape(rows, cols)
        v = head[r * rows:(r + 1) * rows]
        w = W[:, 0] * np.sign(v) if cols == 1 else np.linalg.norm(W, axis=1)
        out.append(float(np.sum((np.abs(v) + w) ** 2) / 4.0))
    return out


def chain_scalars(net, theta, dims):
    """The weights of a width-1 network of one-dimensional modalities as scalars:
    ``(enc (K, L_f - 1), fuse (K,), shared (L - L_f,))`` (simcomp.theory.fusion_gd), or None
    for any other network (a layer wider than one unit or a modality of several inputs)."""
    if any(int(d) != 1 for d in dims) or np.any(net.layout[:, 1] != 1):
        return None
    K = len(dims)
    enc = [[] for _ in range(K)]
    fuse, shared = None, []
    for l, (off, rows, cols, *_rest) in enumerate(net.layout):
        owner = int(net.modality_of_layer[l])
        block = theta[off:off + rows * cols]
        if owner >= 0:
            enc[owner].append(float(block[0]))
        elif fuse is None:
            fuse = np.array(block, dtype=np.float64)
        else:
            shared.append(float(block[0]))
    if fuse is None or fuse.shape[0] != K:
        return None
    return np.array(enc, dtype=np.float64).reshape(K, -1), fuse, np.array(shared)


def weight_owner(cfg: Config, net) -> np.ndarray:
    """The modality each weight acts on before the modalities mix (-1: shared): its private
    encoder layers and the fusion layer's columns that read r's encoding (or r's inputs,
    in early fusion); the layers after the fusion layer are shared."""
    owner_of = np.full(net.n_params, -1, dtype=np.int64)
    dims = [mod.dim for mod in cfg.data.modality]
    for l, (off, rows, cols, src, _, _) in enumerate(net.layout):
        owner = int(net.modality_of_layer[l])
        if owner >= 0:
            owner_of[off:off + rows * cols] = owner
            continue
        if src not in (SRC_CONCAT, SRC_INPUT):
            continue  # a shared layer after the fusion layer
        block = owner_of[off:off + rows * cols].reshape(rows, cols)
        start = 0
        for r in range(cfg.K):
            width = dims[r] if src == SRC_INPUT else int(net.layout[net.concat[r], 1])
            block[:, start:start + width] = r
            start += width
    return owner_of


def learning_rate_scale(cfg: Config, net) -> np.ndarray:
    """Each weight's learning-rate factor: 1, or c_r (method ``lr_scale``) for the weights
    modality r owns (:func:`weight_owner`)."""
    scale = np.ones(net.n_params)
    if cfg.method.name != "lr_scale":
        return scale
    owner = weight_owner(cfg, net)
    c = np.asarray(cfg.method.lr_scale, dtype=np.float64)
    mine = owner >= 0
    scale[mine] = c[owner[mine]]
    return scale


_RULE_CODES = {"ogm": 1, "agm": 2}
_NEVER = 2 ** 62  # a stop step no run reaches


def method_view_weights(cfg: Config):
    """A method's input views (docs/methods.md, "Methods on the fusion engine"): view 0 is
    the whole input, view r + 1 modality r alone (the others' inputs zero).  Returns
    ``(vweight, rweight)``, each (K + 1,): the weight of each view's loss in the gradient and
    of its output in the recorded predictor; None for a method without views.

    ``aux``: w_0 on the fused loss, lambda_r on modality r's own; the predictor is the fused
    output.  ``alternating``: every modality on its own loss, the predictor sum_r a_r f_r."""
    K, m = cfg.K, cfg.method
    if m.name == "aux":
        lam = m.aux_weight if isinstance(m.aux_weight, tuple) else (m.aux_weight,) * K
        return (np.array([m.fused_weight, *lam], dtype=np.float64),
                np.array([1.0] + [0.0] * K))
    if m.name == "alternating":
        mix = m.mix if m.mix is not None else (1.0,) * K
        return np.array([0.0] + [1.0] * K), np.array([0.0, *mix], dtype=np.float64)
    return None


def _coordinate_owner(route_kind: str, dims) -> np.ndarray:
    """The modality each moment coordinate belongs to: input columns (linear) or the two
    one-sided features of a one-dimensional modality (ReLU fused at the end)."""
    if route_kind == "linear":
        return np.repeat(np.arange(len(dims)), dims)
    return np.repeat(np.arange(len(dims)), 2)


def prepare(cfg: Config) -> FusionRun:
    """Data, network, initial weights and gradient route of one fusion-engine run."""
    dims = [mod.dim for mod in cfg.data.modality]
    net = network(cfg.model, dims)
    fixed = cfg.model.head == "fixed"
    theta0 = net.init(_rng(cfg.seed, _STREAM_FUSION_INIT), cfg.model.init_scale, fixed)
    route = _route(cfg, net)
    loss = LOSS_CODES[cfg.train.loss]
    target = None
    if cfg.data.kind == "gaussian":
        cov, target = gaussian_covariance(cfg)
        noise = cfg.data.label_noise
        if cfg.data.population:
            X = y = None
        else:
            rng = _rng(cfg.seed, _STREAM_GAUSS)
            X = rng.standard_normal((cfg.data.n_train, cov.shape[0])) @ np.linalg.cholesky(cov).T
            y = X @ target + noise * rng.standard_normal(cfg.data.n_train)
            if cfg.train.loss == "logistic":
                y = np.where(y >= 0.0, 1.0, -1.0)
    else:
        from .data import empirical_patterns, make_experiment_data

        drawn = make_experiment_data(cfg)
        train = drawn.train
        X, y = np.concatenate(train.X, axis=1), train.y.astype(np.float64)
        cov = None
    n = None if X is None else X.shape[0]
    w = None if X is None else np.full(n, 1.0 / n)
    if cfg.data.kind == "sparse_coding" and cfg.data.population:
        # the noise-free patterns weighted by their probabilities (method mmcosine)
        w = np.ascontiguousarray(train.weight, dtype=np.float64)
    a = _reference_coefficients(cfg, X, y, w, target)
    rows = _proj_rows(a, net.col0, dims)
    if route == "moments":
        if cfg.model.activation == "linear":
            U = np.eye(sum(dims))
            if X is None:
                G, h = cov, cov @ target
                yy = float(target @ cov @ target + cfg.data.label_noise ** 2)
            else:
                G, h, yy = X.T @ X / n, X.T @ y / n, float(y @ y / n)
            proj = rows
        else:
            U = _relu_probes(dims)
            phi = _relu_features(X)
            G, h, yy = phi.T @ phi / n, phi.T @ y / n, float(y @ y / n)
            # total weight: the mean of the slopes on the two sides of x_r = 0,
            # (f(e_r) - f(-e_r)) / 2 = sum_j v_j w_j / 2 for two layers
            proj = np.zeros((len(dims), U.shape[0]))
            for r in range(len(dims)):
                proj[r, 2 * r], proj[r, 2 * r + 1] = 0.5 / a[r], -0.5 / a[r]
        data = (U, G, h, yy)
        key = ("moments", U.shape)
    else:
        if cfg.data.population:  # weighted patterns (sparse coding, mmcosine)
            proj = rows @ np.linalg.pinv(X.T @ (w[:, None] * X))
        else:
            proj = rows @ np.linalg.pinv(X.T @ X / n)
        data = (np.ascontiguousarray(X), y, w, loss)
        key = ("samples", X.shape, loss)
    key = key + (net.layout.tobytes(), cfg.model.activation, cfg.model.q, cfg.model.rho,
                 cfg.train.lr, cfg.train.steps, cfg.train.trace_every, fixed)
    extra = {"u0": initial_magnitudes(cfg, net, theta0),
             "stds": [mod.std for mod in cfg.data.modality],
             "chain0": chain_scalars(net, theta0, dims), "views": None}
    if cfg.method.name in _RULE_CODES:
        # ogm, agm: the fused loss's gradient, modality r's own weights scaled by k_r
        vmask = np.vstack([np.ones(sum(dims))] + [
            np.concatenate([np.full(d, float(r == s)) for s, d in enumerate(dims)])
            for r in range(cfg.K)])
        m = cfg.method
        stop = _NEVER if m.stop is None else int(m.stop)
        extra["views"] = ("rule", vmask, weight_owner(cfg, net), _RULE_CODES[m.name],
                          float(m.alpha), int(m.start), stop)
        key = key + ("rule", m.name, float(m.alpha), int(m.start), stop)
    if cfg.data.kind == "sparse_coding":
        # what the pattern theories read (mmcosine's (a, u) recursion): unit signals v_r and
        # the training set's (label, presence) pattern weights
        extra["signals"] = drawn.signals
        extra["patterns"] = empirical_patterns(train, list(range(cfg.K)))
    if cfg.method.name == "mmcosine":
        # every modality's logit a scaled cosine (two-layer late fusion, trainable head)
        extra["views"] = ("cosine", float(cfg.method.scaling))
        key = key + ("cosine", float(cfg.method.scaling))
    weights = method_view_weights(cfg)
    if weights is not None:
        vweight, rweight = weights
        if route == "moments":
            owner = _coordinate_owner(cfg.model.activation, dims)
            masks = np.vstack([np.ones(owner.shape[0])]
                              + [(owner == r).astype(np.float64) for r in range(cfg.K)])
            U, G, h, yy = data
            Gg = sum(vw * np.outer(mk, mk) * G for vw, mk in zip(vweight, masks))
            hg = sum(vw * mk * h for vw, mk in zip(vweight, masks))
            cscale = rweight @ masks  # each coordinate's factor in the predictor
            proj = proj * cscale[None, :]
            extra["views"] = (Gg, hg, float(vweight.sum() * yy), cscale)
            key = key + ("views", vweight.tobytes(), cscale.tobytes())
        else:
            vmask = np.vstack([np.ones(sum(dims))] + [
                np.concatenate([np.full(d, float(r == s)) for s, d in enumerate(dims)])
                for r in range(cfg.K)])
            extra["views"] = (vmask, vweight, rweight)
            key = key + ("views", vweight.tobytes(), rweight.tobytes())
    # the mask scales each weight's step: 0 for a fixed head, c_r under lr_scale
    mask = net.mask(fixed) * learning_rate_scale(cfg, net)
    key = key + (mask.tobytes(),)
    return FusionRun(cfg, cfg.names, net, theta0, mask, route, data, proj, key, extra)


def half_steps(steps: np.ndarray, tw: np.ndarray) -> list:
    """First (linearly interpolated) step at which each total weight reaches half its
    final value; None if it never does or the final value is 0 or not finite."""
    out = []
    for k in range(tw.shape[1]):
        series = tw[:, k]
        final = series[-1]
        if not np.isfinite(final) or final == 0.0:
            out.append(None)
            continue
        frac = series / final
        above = np.nonzero(frac >= 0.5)[0]
        if len(above) == 0:
            out.append(None)
            continue
        i = int(above[0])
        if i == 0:
            out.append(float(steps[0]))
            continue
        f0, f1 = frac[i - 1], frac[i]
        out.append(float(steps[i - 1] + (0.5 - f0) / (f1 - f0) * (steps[i] - steps[i - 1])))
    return out


def misattribution_of(steps: np.ndarray, tw: np.ndarray, halves: list):
    """(modality index, value): the first-learned modality's total weight at the middle of
    the unimodal phase, (t_first + t_last) / 2, minus its final value, relative to it."""
    known = [(t, k) for k, t in enumerate(halves) if t is not None]
    if len(known) < 2:
        return None, None
    (t_first, first), (t_last, _) = min(known), max(known)
    mid = 0.5 * (t_first + t_last)
    value = float(np.interp(mid, steps, tw[:, first]))
    final = float(tw[-1, first])
    return first, (value - final) / final


def _result(run: FusionRun, theta, tws, losses, failed, seconds):
    cfg = run.cfg
    every = cfg.train.trace_every
    steps = np.arange(tws.shape[0], dtype=np.int64) * every
    if failed >= 0:
        keep = failed // every + 1
        steps, tws, losses = steps[:keep], tws[:keep], losses[:keep]
    halves = half_steps(steps, tws) if failed < 0 else [None] * cfg.K
    first, mis = misattribution_of(steps, tws, halves)
    return {"trace": {"steps": steps, "total_weight": tws, "loss": losses},
            "theta": theta, "half_step": dict(zip(cfg.names, halves)),
            "misattribution": mis, "misattributed_modality": None if first is None
            else cfg.names[first], "status": "ok" if failed < 0 else "nonfinite",
            "failed_step": None if failed < 0 else int(failed), "route": run.route,
            "final_total_weight": dict(zip(cfg.names, [float(v) for v in tws[-1]])),
            "seconds": seconds}


def train_fusion(cfgs: list[Config], runs: list[FusionRun] | None = None) -> list[dict]:
    """Train fusion-engine runs, one compiled call per group of same-shape runs.

    Returns
    -------
    list of dict
        Per config (same order): ``trace`` (``steps``, ``total_weight`` (records, K),
        ``loss``), ``half_step``, ``misattribution``, ``status``, ``route``, ...
    """
    runs = runs if runs is not None else [prepare(cfg) for cfg in cfgs]
    groups: dict = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.key, []).append(i)
    out: list = [None] * len(runs)
    for members in groups.values():
        first = runs[members[0]]
        cfg, net = first.cfg, first.net
        thetas = np.stack([runs[i].theta0 for i in members]).copy()
        projs = np.stack([runs[i].proj for i in members])
        if first.route == "moments":
            U = first.data[0]
            data = (U, np.stack([runs[i].data[1] for i in members]),
                    np.stack([runs[i].data[2] for i in members]),
                    np.array([runs[i].data[3] for i in members]))
        else:
            data = (np.stack([runs[i].data[0] for i in members]),
                    np.stack([runs[i].data[1] for i in members]), first.data[2], first.data[3])
        views = first.extra["views"]
        if views is not None and first.route == "moments" and not isinstance(views[0], str):
            views = (np.stack([runs[i].extra["views"][0] for i in members]),
                     np.stack([runs[i].extra["views"][1] for i in members]),
                     np.array([runs[i].extra["views"][2] for i in members]), views[3])
        start = time.perf_counter()
        tws, losses, failed = gd_batch(first.route, thetas, first.mask,
                                       (net.layout, net.concat, net.col0,
                                        ACT_CODES[cfg.model.activation], cfg.model.q,
                                        cfg.model.rho),
                                       data, cfg.train.lr, cfg.train.steps, cfg.train.trace_every,
                                       projs, views)
        seconds = (time.perf_counter() - start) / len(members)
        for j, i in enumerate(members):
            out[i] = _result(runs[i], thetas[j], tws[j], losses[j], int(failed[j]), seconds)
    return out
