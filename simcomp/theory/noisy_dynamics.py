"""The noise-aware dynamics: a signal-noise decomposition of every neuron (docs/theory.md 11).

Every gradient step moves a neuron along the training inputs, so
w(t) = w(0) + sum_j theta_j(t) X_j.  Split each training input into its part
along the signal vector, b_j v with b_j = <X_j, v> = y_j s_j beta + e_j
(e_j the noise along v), and the rest N_j (noise and distractors orthogonal
to v).  A neuron is then described by its alignment a = c <w, v> and its
pre-activations on the orthogonal training noise nu_j = <w, N_j>; its
pre-activation on training sample k is u_k = c b_k a + nu_k, and one GD step is

    g_k      = omega_k l'_k c act'(u_k)
    a       -= eta c sum_j g_j b_j
    nu_k    -= eta sum_j g_j H_jk
    theta_k -= eta g_k

with H the Gram matrix of the N_j.  With the exact H (``TrainingNoise.gram``)
this is the simulation itself, in sample coordinates.  The high-dimensional
limit keeps only the diagonal of H (||N_k||^2: the neuron memorises each
sample along its own noise): a step then costs O(n) per neuron instead of
the simulation's O(n d).

The initial noise pre-activations nu_k(0) are the run's own when given, else
drawn from their distribution N(0, init_scale^2 ||N_k||^2) with a fixed
seed; e_k likewise (N(0, sigma^2)).  The final state gives each neuron's
response to fresh noise (its weight Gram), from which
:mod:`simcomp.theory.expected_error` computes the test error.  Never imports
the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from simcomp._jit import jit
from simcomp.config import Config
from simcomp.interrupts import chunks, deferred
from simcomp.theory.activation import _check_form, _logistic, _pow_int
from simcomp.theory.coefficients import WIDTH as COEF_WIDTH
from simcomp.theory.coefficients import loss_coefficients
from simcomp.theory.drive import LANES, drive_lanes
from simcomp.theory.expected_error import (
    ExpectedTestError,
    GaussianEncoder,
    _sqrt_psd,
    expected_error_gaussian,
)
from simcomp.theory.reduced import _mark_learned, _record

__all__ = [
    "TrainingNoise",
    "training_noise",
    "NoisyDynamics",
    "noise_aware_dynamics",
    "NoisyPrediction",
    "noise_aware_predict",
    "noise_aware_regime",
    "predicted_gap",
]


@dataclass
class TrainingNoise:
    """What the noise-aware dynamics needs to know about one modality's training noise.

    Attributes
    ----------
    sq_norm : (n,) float
        ||N_k||^2, the squared norm of each training input's part orthogonal to v.
    gram : (n, n) float or None
        The full Gram matrix <N_j, N_k> (exact mode); None: the limit (diagonal).
    along_signal : (n,) float or None
        e_k = <X_k, v> - y_k s_k beta, the noise along v; None: drawn N(0, sigma^2).
    pre0 : (B, m, n) float or None
        The run's initial noise pre-activations <w_i(0), N_k>; None: drawn.
    weight_gram0 : (B m, B m) float or None
        Inner products of the initial weights' parts orthogonal to v; None:
        init_scale^2 (d - 1) times the identity.
    """

    sq_norm: np.ndarray
    gram: np.ndarray | None = None
    along_signal: np.ndarray | None = None
    pre0: np.ndarray | None = None
    weight_gram0: np.ndarray | None = None

    @property
    def exact(self) -> bool:
        return self.gram is not None


def training_noise(X, y, presence, beta: float, signal, initial_weights=None,
                   exact: bool = False) -> TrainingNoise:
    """:class:`TrainingNoise` of one modality from its training inputs.

    Parameters
    ----------
    X : (n, d) array
        The modality's training inputs.
    y, presence : (n,) arrays
        Labels (+-1) and this modality's presence s_k (0/1).
    beta : float
        Signal strength.
    signal : (d,) array
        The unit signal vector v = M e_1.
    initial_weights : (B, m, d) array, optional
        With them, ``pre0`` and ``weight_gram0`` are the run's own.
    exact : bool
        Keep the full Gram matrix (exact mode) rather than its diagonal.
    """
    X = np.asarray(X, dtype=float)
    v = np.asarray(signal, dtype=float)
    proj = X @ v
    N = X - proj[:, None] * v
    e = proj - np.asarray(y, dtype=float) * np.asarray(presence, dtype=float) * beta
    out = TrainingNoise(sq_norm=np.einsum("nd,nd->n", N, N), along_signal=e)
    if exact:
        out.gram = N @ N.T
    if initial_weights is not None:
        W = np.asarray(initial_weights, dtype=float)
        out.pre0 = np.einsum("bmd,nd->bmn", W, N)
        Wf = W.reshape(-1, W.shape[-1])
        Wp = Wf - np.outer(Wf @ v, v)
        out.weight_gram0 = Wp @ Wp.T
    return out


@dataclass
class NoisyDynamics:
    """Trajectory of the noise-aware dynamics (same layout as ``ReducedDynamics``).

    ``pre`` (K, B, m, n) and ``theta`` (K, B, m, n) are the final noise
    pre-activations and input coefficients; ``weight_gram`` the final
    (B m, B m) Gram of each modality's weights orthogonal to v.
    """

    steps: np.ndarray
    alignment: np.ndarray
    leading_alignment: np.ndarray
    learned_step: np.ndarray
    learned_step_bank: np.ndarray
    final_alignment: np.ndarray
    loss: np.ndarray
    pre: np.ndarray
    theta: np.ndarray
    weight_gram: list


# --------------------------------------------------------------------------- compiled loop


# One GD step costs O(K B m n) and runs twice per noisy run (the distribution-level
# prediction on its nodes and the tracked check on the training set), so the loop is
# written for the vector units: per neuron, the update from the previous step's loss
# coefficients and the forward pass of the new step run back to back on arrays of n
# that stay in the L1 cache; every inner loop of the forward pass is branch-free
# (selects), so that LLVM vectorises it; and the update with its alignment drive
# sum_k g_k b_k is one pass written in LLVM IR (simcomp.theory.drive) that sums the drive
# in 32 interleaved partial sums held in vector registers (fixed by the source, so the
# same on every machine): a scalar running sum is a chain of n dependent additions, and
# numba leaves even separate scalar partial sums scalar.  The loss coefficients take their
# exponentials on vectors (simcomp.theory.coefficients), not one C library call per sample.
# The forward pass is ``activation._srelu_pair``'s arithmetic with its two divisions
# replaced by products with reciprocals; with the drive's summation order and the
# coefficients' exponential, the only departures from a plain loop
# (tests/test_noisy_kernel.py compares the two to 1e-10).


@jit()
def _drive_and_update(nu_ri, dact_ri, coef, b_r, diag_r, eta):
    """nu -= eta g ||N||^2 with g = coef * c act'(u) (the limit); returns sum_k g_k b_k.

    The samples below the last multiple of ``drive.LANES`` go through the vector
    intrinsic; the rest are added to its result in index order.
    """
    n = coef.size
    full = n - n % LANES
    s = drive_lanes(nu_ri, dact_ri, coef, b_r, diag_r, eta, full)
    for k in range(full, n):
        gk = coef[k] * dact_ri[k]
        nu_ri[k] -= eta * (gk * diag_r[k])
        s += gk * b_r[k]
    return s


@jit(inline="always")
def _pow_small(x, n):
    """x^n for 0 <= n <= 8 by repeated products (1 x x ... as _srelu_pair's loop), written as
    a chain of selects so that a loop calling it is vectorised."""
    d = 1.0
    if n >= 1:
        d = x
    if n >= 2:
        d = d * x
    if n >= 3:
        d = d * x
    if n >= 4:
        d = d * x
    if n >= 5:
        d = d * x
    if n >= 6:
        d = d * x
    if n >= 7:
        d = d * x
    if n >= 8:
        d = d * x
    return d


@jit()
def _neuron_forward(a_ri, c, b_r, nu_ri, act, symmetric, f, dact_ri):
    """Add neuron (c, a_ri)'s output on every sample to f; dact_ri = c act'(u) (symmetric:
    psi'(u)).  Each branch is one branch-free loop over the samples."""
    q, rho, shift, n_int, relu = act
    # products by reciprocals instead of divisions (a vector division costs as much as the
    # rest of the element's work): each value within an ulp of _srelu_pair's
    inv_rho, inv_q = 1.0 / rho, 1.0 / q
    n = f.size
    if relu:
        for k in range(n):
            u = c * b_r[k] * a_ri + nu_ri[k]
            on = u > 0.0
            f[k] += c * (u if on else 0.0)
            dact_ri[k] = c * (1.0 if on else 0.0)
    elif symmetric:  # psi(u) = sign(u) srelu(|u|), psi'(u) = srelu'(|u|)
        for k in range(n):
            u = c * b_r[k] * a_ri + nu_ri[k]
            zk = abs(u)
            # srelu'(z) = (z / rho)^(q - 1) on (0, rho] (x = 1 above rho: slope 1)
            dk = (_pow_small(min(zk, rho) * inv_rho, n_int) if n_int >= 0
                  else (min(zk, rho) * inv_rho) ** (q - 1.0))
            pos = zk > 0.0  # false for 0 and nan: no output, no slope
            val = (zk - shift) if zk > rho else zk * dk * inv_q
            f[k] += math.copysign(val if pos else 0.0, u)
            dact_ri[k] = dk if pos else 0.0
    else:
        for k in range(n):
            zk = c * b_r[k] * a_ri + nu_ri[k]
            dk = (_pow_small(min(zk, rho) * inv_rho, n_int) if n_int >= 0
                  else (min(zk, rho) * inv_rho) ** (q - 1.0))
            pos = zk > 0.0
            val = (zk - shift) if zk > rho else zk * dk * inv_q
            f[k] += c * (val if pos else 0.0)
            dact_ri[k] = c * (dk if pos else 0.0)


@jit()
def _sigmoid_neg(g):
    """sigmoid(-g), exactly as the first output of ``activation._logistic``."""
    e = math.exp(-abs(g))
    return e / (1.0 + e) if g >= 0.0 else 1.0 / (1.0 + e)


@jit()
def _noisy_kernel(state, data, beta, form, run, rec_steps, work, span):
    """Steps ``t0 <= t < t1`` of the step loop of :func:`noise_aware_dynamics`.

    The loop is run in pieces (``span``) so that Python sees a signal between
    two of them (simcomp.interrupts); a piece starts by recomputing the forward
    pass of its first step from the state, so the pieces give exactly the
    results of one uninterrupted loop.

    Parameters
    ----------
    state : tuple (a (K, B, m), nu (K, B, m, n), theta (K, B, m, n)) float64
        Alignments, noise pre-activations and input coefficients; updated in place
        (theta only in exact mode).
    data : tuple (y (n,), omega (n,), b (K, n), diag (K, n), gram (K, n, n) or (K, 0, 0))
        Labels, sample weights, <X_k, v> per modality, ||N_k||^2 and the
        full Gram of the orthogonal noise (empty: the diagonal limit).
    beta : (K,) float64
    form : tuple (q, rho, n_int, symmetric, relu)
    run : tuple (eta, thr, steps)
    rec_steps : (R,) int64
    work : tuple (dact (K, B, m, n), coef (n,), rec_a (R, K, B, m), rec_loss (R,),
        learned (K, B) int64, -1 never)
        Scratch and outputs, kept across pieces; filled in place.
    span : tuple (t0, t1, rec_i)
        The steps of this piece and the next record index.

    Returns
    -------
    int
        The next record index.
    """
    q, rho, n_int, symmetric, relu = form
    eta, thr, steps = run
    dact, coef, rec_a, rec_loss, learned = work
    t0, t1, rec_i = span
    a, nu, theta = state
    y, omega, b_sig, diag, gram = data
    K, B, m = a.shape
    n = y.size
    exact = gram.shape[1] > 0
    act = (q, rho, (1.0 - 1.0 / q) * rho, n_int, relu)
    f = np.zeros(n)
    g = np.empty(n)
    # the forward pass of step t0 (each step's update ends with the next step's forward
    # pass; a piece starts by recomputing it from the state, which gives the same values)
    for r in range(K):
        for b in range(B):
            c = 1.0 if b == 0 else -1.0
            for i in range(m):
                _neuron_forward(a[r, b, i], c, b_sig[r], nu[r, b, i], act, symmetric, f,
                                dact[r, b, i])
    for t in range(t0, t1):
        _mark_learned(a, beta, thr, t, learned)
        is_rec = rec_steps[rec_i] == t
        loss = 0.0
        # omega l': vectors of samples with the IR exponential (simcomp.theory.coefficients),
        # the rest with the C library's
        full = n - n % COEF_WIDTH
        loss_coefficients(coef, y, f, omega, full)
        for k in range(full, n):
            coef[k] = -omega[k] * y[k] * _sigmoid_neg(y[k] * f[k])
        if is_rec:  # the logarithms only where the loss is recorded
            for k in range(n):
                loss += omega[k] * _logistic(y[k] * f[k])[1]
            _record(rec_a, rec_i, a)
            rec_loss[rec_i] = loss
            rec_i += 1
        if t == steps:
            break
        for k in range(n):
            f[k] = 0.0
        for r in range(K):
            for b in range(B):
                c = 1.0 if b == 0 else -1.0
                for i in range(m):
                    nu_ri = nu[r, b, i]
                    if exact:
                        dv = 0.0
                        for k in range(n):
                            g[k] = coef[k] * dact[r, b, i, k]
                            dv += g[k] * b_sig[r, k]
                        for k in range(n):
                            h = 0.0
                            for j in range(n):
                                h += g[j] * gram[r, j, k]
                            nu_ri[k] -= eta * h
                            theta[r, b, i, k] -= eta * g[k]
                    else:
                        # the limit: theta_k = (nu_k - nu_k(0)) / ||N_k||^2 at any step, so
                        # theta is recovered once at the end (noise_aware_dynamics)
                        dv = _drive_and_update(nu_ri, dact[r, b, i], coef, b_sig[r], diag[r],
                                               eta)
                    a[r, b, i] -= eta * c * dv
                    _neuron_forward(a[r, b, i], c, b_sig[r], nu_ri, act, symmetric, f,
                                    dact[r, b, i])
    return rec_i


# --------------------------------------------------------------------------- public


def noise_aware_dynamics(cfg: Config, trained: Sequence[int], alignment0, y, presence,
                         noise: Sequence[TrainingNoise], *, weight=None, steps: int | None = None,
                         record_every: int | None = None, seed: int = 0) -> NoisyDynamics:
    """Run the noise-aware dynamics of one run.

    Parameters
    ----------
    cfg : Config
        Model, learning rate, horizon and each modality's beta / noise / dim.
    trained : sequence of int
        Indices into ``cfg.data.modality``.
    alignment0 : (K_run, B, m) array
        The run's initial alignments.
    y : (n,) array
        The training labels.
    presence : (n, K_run) array
        The training presence s_k of the trained modalities.
    noise : sequence of TrainingNoise
        One per trained modality (:func:`training_noise`).
    weight : (n,) array, optional
        Sample weights; default 1/n.
    steps, record_every : int, optional
        Default cfg.train.steps and cfg.train.trace_every.
    seed : int
        Seed of the drawn initial noise pre-activations (where ``pre0`` is None).
    """
    model = cfg.model
    _check_form(model.learner, model.activation)
    trained = [int(r) for r in trained]
    mods = [cfg.data.modality[r] for r in trained]
    K, B, m = len(trained), model.banks, model.width
    a = np.array(alignment0, dtype=float, copy=True, order="C")
    if a.shape != (K, B, m):
        raise ValueError(f"alignment0 has shape {a.shape}; expected ({K}, {B}, {m})")
    y = np.ascontiguousarray(y, dtype=float)
    n = y.size
    s = np.asarray(presence, dtype=float).reshape(n, K)
    if len(noise) != K:
        raise ValueError(f"{len(noise)} TrainingNoise entries for {K} trained modalities")
    omega = np.full(n, 1.0 / n) if weight is None else np.ascontiguousarray(weight, dtype=float)
    beta = np.array([mod.beta for mod in mods])
    exact = [nz.exact for nz in noise]
    if any(exact) and not all(exact):
        raise ValueError("give the exact Gram matrix for every trained modality or for none")
    rng = np.random.default_rng(seed)
    diag = np.array([np.asarray(nz.sq_norm, dtype=float).reshape(n) for nz in noise])
    e = np.array([rng.normal(0.0, mod.noise, n) if nz.along_signal is None
                  else np.asarray(nz.along_signal, dtype=float).reshape(n)
                  for mod, nz in zip(mods, noise)])
    b_sig = np.ascontiguousarray((y[:, None] * s * beta).T + e)
    gram = np.zeros((K, 0, 0))
    if all(exact):
        gram = np.ascontiguousarray([nz.gram for nz in noise], dtype=float)
    nu0 = np.empty((K, B, m, n))
    for r, nz in enumerate(noise):
        if nz.pre0 is not None:
            nu0[r] = nz.pre0
        else:
            nu0[r] = model.init_scale * np.sqrt(diag[r]) * rng.standard_normal((B, m, n))
    steps = cfg.train.steps if steps is None else int(steps)
    every = cfg.train.trace_every if record_every is None else int(record_every)
    rec_steps = np.arange(0, steps + 1, every, dtype=np.int64)
    if rec_steps[-1] != steps:
        rec_steps = np.append(rec_steps, np.int64(steps))
    state = (a, nu0.copy(), np.zeros((K, B, m, n)))
    data = (y, omega, b_sig, diag, gram)
    form = (float(model.q), float(model.rho), _pow_int(float(model.q)),
            model.learner == "symmetric", model.activation == "relu")
    rec_a = np.empty((rec_steps.size, K, B, m))
    rec_loss = np.empty(rec_steps.size)
    learned_bank = np.full((K, B), -1, dtype=np.int64)
    work = (np.empty(state[1].shape), np.empty(n), rec_a, rec_loss, learned_bank)
    run = (float(cfg.train.lr), float(model.threshold), steps)
    rec_i = 0
    for t0, t1 in chunks(steps + 1):  # short compiled calls: a signal is seen between them
        with deferred():
            rec_i = _noisy_kernel(state, data, beta, form, run, rec_steps, work, (t0, t1, rec_i))
    if not all(exact):  # the limit kept no theta: theta_k = (nu_k - nu_k(0)) / ||N_k||^2
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            moved = state[1] - nu0
            state[2][...] = np.where(diag[:, None, None, :] > 0.0,
                                     moved / np.where(diag > 0.0, diag, 1.0)[:, None, None, :],
                                     0.0)
    learned = np.where(learned_bank >= 0, learned_bank, np.iinfo(np.int64).max).min(axis=1)
    learned = np.where(learned == np.iinfo(np.int64).max, -1, learned)
    grams = []
    for r, nz in enumerate(noise):
        theta = state[2][r].reshape(B * m, n)
        cross = nu0[r].reshape(B * m, n)  # <w_i(0), N_j>, both orthogonal to v
        G0 = (model.init_scale**2 * (mods[r].dim - 1) * np.eye(B * m) if nz.weight_gram0 is None
              else np.asarray(nz.weight_gram0, dtype=float))
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged run: non-finite, checked
            # Theta H Theta^T; in the limit H is diagonal (no n x n matrix is formed)
            noise_part = (theta @ gram[r] if all(exact) else theta * diag[r]) @ theta.T
            grams.append(G0 + theta @ cross.T + cross @ theta.T + noise_part)
    return NoisyDynamics(
        steps=rec_steps, alignment=rec_a, leading_alignment=rec_a.max(axis=(2, 3)),
        learned_step=learned.astype(np.int64), learned_step_bank=learned_bank,
        final_alignment=state[0], loss=rec_loss, pre=state[1], theta=state[2],
        weight_gram=grams,
    )


@dataclass
class NoisyPrediction:
    """The noise-aware theory's prediction for one run.

    ``learned_step`` (K_run,) int, -1 never; ``predicted_winner`` index into
    ``trained`` (first learned, ties to the lower index) or None;
    ``learned_by_horizon`` (K_run,) bool; ``test_error`` the expected test
    error of the predicted final network (fused and each encoder alone,
    with standard errors).
    """

    trained: list
    learned_step: np.ndarray
    predicted_winner: int | None
    learned_by_horizon: np.ndarray
    test_error: ExpectedTestError
    dynamics: NoisyDynamics

    def __repr__(self) -> str:
        # the dataclass repr would print the (K, B, m, n) pre-activations and coefficients
        return (f"<NoisyPrediction trained={self.trained} "
                f"learned_step={np.asarray(self.learned_step).tolist()} "
                f"winner={self.predicted_winner} test_error={self.test_error.fused:.4g}>")


def final_encoders(cfg: Config, trained: Sequence[int], dyn: NoisyDynamics) -> list:
    """Each modality's fresh-sample pre-activations at the end of ``dyn``, as a GaussianEncoder.

    Noise: covariance sigma^2 <w_i, w_i'> (the v parts plus the orthogonal
    Gram).  Distractors: their exact second moment gamma^2 k / (d - 1) times
    the orthogonal Gram, taken as Gaussian.
    """
    out = []
    B = cfg.model.banks
    c = np.where(np.arange(B) == 0, 1.0, -1.0)
    for r, mod in zip(range(len(trained)), (cfg.data.modality[t] for t in trained)):
        wv = (c[:, None] * dyn.final_alignment[r]).reshape(-1)
        G = dyn.weight_gram[r]
        cov = mod.noise**2 * (np.outer(wv, wv) + G)
        if mod.distractors > 0 and mod.dim > 1:
            cov = cov + mod.distractor_strength**2 * mod.distractors / (mod.dim - 1) * G
        out.append(GaussianEncoder(signal=wv, factor=_sqrt_psd(0.5 * (cov + cov.T)),
                                   beta=float(mod.beta), presence=float(mod.presence)))
    return out


def _finite_encoders(cfg: Config, trained: Sequence[int], dyn: NoisyDynamics):
    """:func:`final_encoders`, or None where finite but huge weights overflow their noise
    covariance (eigh then fails to converge): such a network has no expected error, as a
    diverged one has none."""
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            encoders = final_encoders(cfg, trained, dyn)
        except np.linalg.LinAlgError:  # eigh of a matrix holding inf or nan, or not converging
            return None
    if not all(np.isfinite(enc.factor).all() and np.isfinite(enc.signal).all()
               for enc in encoders):
        return None
    return encoders


def noise_aware_regime(cfg: Config, trained: Sequence[int]) -> bool:
    """Whether a run's theory is the noise-aware dynamics rather than the reduced one.

    The one rule behind both the results (``predicted_by``, the predicted
    winner and error) and the figure's theory curve: ``train.noise_theory``
    is on and at least one trained modality has input noise or effective
    distractors (a positive count and strength).  The reduced dynamics
    ignores both; without them the two theories agree.
    """
    if not cfg.train.noise_theory:
        return False
    return any(cfg.data.modality[r].noise > 0.0
               or (cfg.data.modality[r].distractors > 0
                   and cfg.data.modality[r].distractor_strength > 0.0)
               for r in trained)


def noise_aware_predict(cfg: Config, trained: Sequence[int], alignment0, y, presence,
                        noise: Sequence[TrainingNoise], *, seed: int = 0,
                        points: int = 2048, replicates: int = 8,
                        weight=None) -> NoisyPrediction:
    """Learned steps, winner, co-learning and expected test error from the noise-aware dynamics.

    Arguments as :func:`noise_aware_dynamics` (``weight``: the sample weights,
    default 1/n); ``points`` and ``replicates`` set the accuracy of the test
    error (:func:`expected_error_gaussian`).
    """
    dyn = noise_aware_dynamics(cfg, trained, alignment0, y, presence, noise, weight=weight,
                               seed=seed)
    learned = dyn.learned_step
    order = [(int(t), k) for k, t in enumerate(learned) if t >= 0]
    winner = min(order)[1] if order else None
    encoders = None
    if np.isfinite(dyn.loss).all() and all(np.isfinite(G).all() for G in dyn.weight_gram):
        encoders = _finite_encoders(cfg, trained, dyn)
    if encoders is not None:
        err = expected_error_gaussian(encoders, cfg.model.banks,
                                      cfg.model.activation, cfg.model.q, cfg.model.rho,
                                      points=points, replicates=replicates, seed=seed,
                                      correlation=cfg.data.presence_correlation)
    else:  # the predicted network diverged (as the run will, at this learning rate): no error
        nan = np.full(len(trained), np.nan)
        err = ExpectedTestError(math.nan, nan, math.nan, nan.copy())
    return NoisyPrediction(trained=[int(r) for r in trained], learned_step=learned,
                           predicted_winner=winner, learned_by_horizon=learned >= 0,
                           test_error=err, dynamics=dyn)


def predicted_gap(joint: NoisyPrediction, unimodal: Sequence[NoisyPrediction]) -> float:
    """Joint expected test error minus the best uni-modal one (> 0: a uni-modal network wins)."""
    if not unimodal:
        raise ValueError("predicted_gap needs at least one uni-modal prediction")
    return float(joint.test_error.fused - min(u.test_error.fused for u in unimodal))
