"""The linear theory of unimodal bias (Zhang, Latham & Saxe, ICML 2024) for the fusion engine.

Two modalities A and B with standard deviations sigma_A >= sigma_B and
correlation rho, target y = x_A + x_B, squared loss, small initialisation.
The modality with the larger variance is learned first; the other waits.
Closed forms (derived in docs/theory.md, section "Fusion depth"):

- :func:`late_fusion_ratio`: t_B / t_A = 1 + (r^2 - 1) / (1 - rho^2), r = sigma_A / sigma_B,
  for two-layer late fusion;
- :func:`early_fusion_ratio`: 1, no unimodal phase;
- :func:`misattribution`: A's total weight overshoots its final value by rho / r
  during the unimodal phase;
- :func:`depth_ratio`: t_B / t_A for fusion at layer L_f of a depth-L network;
- :func:`predicted_half_steps`: the half steps themselves, in GD steps, for
  two-layer late fusion (discrete-time rates, from the initial weights'
  magnitude) and, from :func:`depth_ratio`, for deep fusion.

Everything here reads only numbers from the configuration and the initial
weights; it never imports the training code or the kernels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["late_fusion_ratio", "early_fusion_ratio", "misattribution", "depth_ratio",
           "depth_half_time", "predicted_half_steps", "FusionPrediction"]


def _check_rho(rho: float) -> float:
    rho = float(rho)
    if not -1.0 < rho < 1.0:
        raise ValueError(f"correlation must be strictly between -1 and 1, got {rho:g}")
    return rho


def late_fusion_ratio(r: float, rho: float) -> float:
    """t_B / t_A of two-layer linear late fusion (r = sigma_A / sigma_B >= 1)."""
    rho = _check_rho(rho)
    return 1.0 + (r * r - 1.0) / (1.0 - rho * rho)


def early_fusion_ratio(r: float, rho: float) -> float:
    """Early fusion learns both modalities together: t_B / t_A = 1."""
    _check_rho(rho)
    return 1.0


def misattribution(r: float, rho: float) -> float:
    """A's total weight in the unimodal phase minus its final value, relative: rho / r."""
    return _check_rho(rho) / r


def _u_b(u, k, u0, Lf):
    if Lf == 2:
        return np.exp(k * np.log(u) + (1.0 - k) * np.log(u0))
    base = k * u ** (2.0 - Lf) + (1.0 - k) * np.float64(u0) ** (2.0 - Lf)  # inf, no raise
    return np.where(base > 0, np.abs(base) ** (1.0 / (2.0 - Lf)), 0.0)


def depth_half_time(r: float, rho: float, depth: int, fusion_layer: int, u0: float,
                    upper: float = 1.0, points: int = 20001) -> float:
    """I = int_{u0}^{upper} du / (w_a u^(L_f-1) (u^2 + u_b(u)^2)^((L-L_f)/2)).

    The time (gradient flow of the half squared loss) A's per-layer weight u
    takes from u0 to ``upper``; evaluated on a logarithmic grid.
    """
    rho = _check_rho(rho)
    L, Lf = int(depth), int(fusion_layer)
    w_a, w_b = r * r + rho * r, 1.0 + rho * r
    k = w_b / w_a
    u = np.exp(np.linspace(math.log(u0), math.log(upper), points))
    ub = _u_b(u, k, u0, Lf)
    integrand = u / (w_a * u ** (Lf - 1) * (u * u + ub * ub) ** ((L - Lf) / 2.0))  # du = u dln u
    dl = np.diff(np.log(u))
    return float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * dl))


def depth_ratio(r: float, rho: float, depth: int, fusion_layer: int, u0: float) -> float:
    """t_B / t_A for fusion at layer L_f of a depth-L linear network (1 for L_f = 1)."""
    rho = _check_rho(rho)
    L, Lf = int(depth), int(fusion_layer)
    if Lf == 1:
        return 1.0
    w_a, w_b = r * r + rho * r, 1.0 + rho * r
    gap = 1.0 - w_b / w_a  # 0 for equal variances: B waits for nothing
    if gap <= 0.0:
        return 1.0
    if Lf == 2:
        lag = math.log(1.0 / u0) * gap * w_a ** (Lf / L - 1.0) / (1.0 - rho * rho)
    else:
        # u_b0^(2 - L_f) = u0^(2 - L_f) * gap, in logs: u0^(2 - L_f) leaves the float range
        # for small initialisations and deep fusion layers.
        log_lag = ((2.0 - Lf) * math.log(u0) + math.log(gap) + (Lf / L - 1.0) * math.log(r)
                   - math.log((Lf - 2) * (1.0 - rho * rho)))
        lag = math.exp(log_lag) if log_lag < 700.0 else math.inf
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        half = depth_half_time(r, rho, L, Lf, u0)
    if not (math.isfinite(lag) and math.isfinite(half) and half > 0.0):
        return math.nan  # beyond the float range: no prediction
    return 1.0 + lag / half


class FusionPrediction(dict):
    """The theory's numbers for one run: ``ratio``, ``misattribution``,
    ``predicted_half_step`` (modality name -> GD step or None), ``first`` and ``formula``."""


def _late_half_steps(sig_a, sig_b, rho, lr, u0_a, u0_b):
    """Half steps (GD steps) of two-layer linear late fusion, A first (sig_a >= sig_b).

    Each modality's total weight u_r grows by the factor (1 + lr g_r)^2 per
    step while small, g_r being minus the derivative of the half squared loss
    in u_r: g_A = sigma_A^2 + rho sigma_A sigma_B before A is learned; B
    grows with g_B = sigma_B^2 + rho sigma_A sigma_B until A is learned, then
    with sigma_B^2 (1 - rho^2) (A has absorbed its share of B).  The
    discrete factor (1 + lr g)^2 rather than exp(2 lr g) keeps the
    prediction right at the learning rates of the published runs.
    """
    cab = rho * sig_a * sig_b
    g_a = sig_a ** 2 + cab
    plateau = g_a / sig_a ** 2  # A's total weight in the unimodal phase: 1 + rho sig_b / sig_a
    if g_a <= 0 or plateau <= 0.5:
        return None, None
    rate_a = 2.0 * math.log1p(lr * g_a)
    t_a = (math.log((plateau - u0_a) / u0_a) - math.log((plateau - 0.5) / 0.5)) / rate_a
    g_b1 = sig_b ** 2 + cab
    g_b2 = sig_b ** 2 * (1.0 - rho * rho)
    log_ub = math.log(u0_b) + 2.0 * math.log1p(lr * g_b1) * t_a if 1 + lr * g_b1 > 0 else -math.inf
    log_ub = min(log_ub, math.log(0.5))
    # B's logistic rise to half its final value 1, at the unimodal-phase rate
    t_b = t_a + (math.log1p(-math.exp(log_ub)) - log_ub) / (2.0 * math.log1p(lr * g_b2))
    return t_a, t_b


def _population(names, stds, rho, lr, chain0, steps):
    """Half steps of GD on the distribution from the run's own weights (width 1), or None."""
    from .fusion_gd import population_half_steps

    if chain0 is None or steps is None:
        return None
    c = rho * stds[0] * stds[1]
    cov = np.array([[stds[0] ** 2, c], [c, stds[1] ** 2]])
    enc, fuse, shared = chain0
    halves = population_half_steps(cov, np.ones(2), lr, enc, fuse, shared, steps)
    return dict(zip(names, halves))


def predicted_half_steps(names, stds, rho: float, lr: float, architecture: str, depth: int,
                         fusion_layer: int, u0, init_scale: float, head: str = "trainable",
                         activation: str = "linear", chain0=None,
                         steps: int | None = None) -> FusionPrediction:
    """The theory's prediction for a two-modality Gaussian run.

    Parameters
    ----------
    names, stds : sequences of length 2
        The modalities and their standard deviations.
    rho : float
        The correlation.
    lr : float
        The GD learning rate (loss: half the mean squared error).
    architecture, depth, fusion_layer, head, activation
        The resolved model.
    u0 : sequence of 2 floats
        Each modality's initial total-weight magnitude (two-layer late fusion:
        sum_j (v_j + w_j)^2 / 4 over its hidden units, the size the balanced
        growth starts from).
    init_scale : float
        The per-layer initial scale (the u0 of the depth formula).
    chain0 : tuple (enc, fuse, shared) or None
        The run's initial weights when every layer is one unit wide and each
        modality one-dimensional (simcomp.theory.fusion_gd); then, and with
        ``steps``, ``predicted_half_step`` is the half step of GD on the
        distribution (the covariance) from these weights at ``lr``, on every
        architecture, and ``ratio`` stays the closed form.
    steps : int or None
        The run's horizon (``train.steps``).

    Returns
    -------
    FusionPrediction
        Everything is None where no formula applies: a fixed head or a
        nonlinear activation (the formulas are those of linear networks).
        ``formula`` names the closed form of ``ratio`` and, after a semicolon,
        where ``predicted_half_step`` comes from.
    """
    out = _closed_form(names, stds, rho, lr, architecture, depth, fusion_layer, u0, init_scale,
                       head, activation)
    if out["formula"] is None or out["formula"].startswith("none"):
        return out
    pop = _population(names, stds, rho, lr, chain0, steps)
    if pop is not None:
        out["predicted_half_step"] = pop
        out["formula"] += "; half steps: GD on the distribution"
    elif any(v is not None for v in out["predicted_half_step"].values()):
        out["formula"] += ("; half steps: discrete-time rates" if depth == 2 and fusion_layer == 2
                           else "; half steps: balanced depth formula")
    return out


def _closed_form(names, stds, rho, lr, architecture, depth, fusion_layer, u0, init_scale, head,
                 activation):
    order = [0, 1] if stds[0] >= stds[1] else [1, 0]
    a, b = order
    r = stds[a] / stds[b]
    out = FusionPrediction(first=names[a], ratio=None, misattribution=None,
                           predicted_half_step={n: None for n in names}, formula=None)
    if head != "trainable" or activation != "linear":
        return out
    if architecture == "early_fusion" or fusion_layer == 1:
        out.update(ratio=early_fusion_ratio(r, rho), misattribution=0.0, formula="early_fusion")
        return out
    if depth == 2:
        out.update(ratio=late_fusion_ratio(r, rho), misattribution=misattribution(r, rho),
                   formula="late_fusion_two_layer")
        t_a, t_b = _late_half_steps(stds[a], stds[b], rho, lr, u0[a], u0[b])
        if t_a is not None:
            out["predicted_half_step"] = {names[a]: t_a, names[b]: t_b}
        return out
    # Deep fusion: time in units of stds[b]^2 (the formula sets sigma_B = 1)
    ratio = depth_ratio(r, rho, depth, fusion_layer, init_scale)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        t_a = depth_half_time(r, rho, depth, fusion_layer, init_scale) / (lr * stds[b] ** 2)
    if not (math.isfinite(ratio) and math.isfinite(t_a) and math.isfinite(t_a * ratio)):
        out.update(misattribution=misattribution(r, rho),
                   formula=f"none: the depth formula leaves the float range at depth {depth}, "
                   f"fusion layer {fusion_layer} and init_scale {init_scale:g}")
        return out
    out.update(ratio=ratio, misattribution=misattribution(r, rho), formula="depth")
    out["predicted_half_step"] = {names[a]: t_a, names[b]: t_a * ratio}
    return out
