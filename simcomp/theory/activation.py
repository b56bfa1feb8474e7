"""The activations and small numeric helpers shared by every theory module.

srelu (docs/model.md section 2) in vectorised NumPy for the theory's own
NumPy code, and its one-power compiled form :func:`_srelu_pair` for the
compiled loops of :mod:`simcomp.theory.reduced` and
:mod:`simcomp.theory.noisy_dynamics`.
"""

from __future__ import annotations

import math

import numpy as np

from simcomp._jit import jit
from simcomp.config import ACTIVATIONS, LEARNERS

_Q2_TOL = 1e-12  # |q - 2| below this uses the q = 2 (logarithmic) branch
_POW_INT_MAX = 8  # q - 1 an integer up to this: powers by repeated multiplication


def srelu(z: np.ndarray, q: float, rho: float) -> np.ndarray:
    """Smoothed ReLU: 0, z^q / (q rho^(q-1)), z - (1 - 1/q) rho on z<=0, (0, rho], z>rho."""
    z = np.asarray(z, dtype=float)
    zp = np.maximum(z, 0.0)
    poly = zp**q / (q * rho ** (q - 1.0))
    return np.where(z > rho, z - (1.0 - 1.0 / q) * rho, poly)


def srelu_prime(z: np.ndarray, q: float, rho: float) -> np.ndarray:
    """Derivative of :func:`srelu`: 0, (z/rho)^(q-1), 1 on the same pieces."""
    z = np.asarray(z, dtype=float)
    zp = np.maximum(z, 0.0)
    return np.where(z > rho, 1.0, np.where(z > 0.0, (zp / rho) ** (q - 1.0), 0.0))


def _act(z: np.ndarray, activation: str, q: float, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """(act(z), act'(z)) for the class-bank activation."""
    if activation == "relu":
        return np.maximum(z, 0.0), (z > 0.0).astype(float)
    return srelu(z, q, rho), srelu_prime(z, q, rho)


def _check_form(learner: str, activation: str) -> None:
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {', '.join(LEARNERS)}; got {learner!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    if learner == "symmetric" and activation != "srelu":
        raise ValueError("the symmetric learner is built from srelu only")


def _sigmoid_neg(g: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(g)) without overflow for any g."""
    e = np.exp(-np.abs(g))
    return np.where(g >= 0.0, e / (1.0 + e), 1.0 / (1.0 + e))


def _as_result(x: np.ndarray):
    """A 0-d array becomes a numpy scalar; anything else is returned as is."""
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


def _pow_int(q: float) -> int:
    """q - 1 when it is an integer in [0, _POW_INT_MAX], else -1 (the n of :func:`_srelu_pair`)."""
    qm1 = q - 1.0
    return int(qm1) if qm1 == math.floor(qm1) and 0.0 <= qm1 <= _POW_INT_MAX else -1


@jit()
def _srelu_pair(z, q, rho, shift, n):
    """srelu(z) and srelu'(z) for z >= 0 with one power at most.

    Parameters
    ----------
    z : float
        Pre-activation, >= 0 (not nan).
    q, rho : float
        srelu parameters.
    shift : float
        (1 - 1/q) rho.
    n : int
        q - 1 when it is an integer in [0, _POW_INT_MAX], else -1.

    Returns
    -------
    value, slope : float
        z - shift and 1 above rho; on (0, rho] the slope is d = (z/rho)^(q-1)
        (repeated multiplication when n >= 0, which for q = 3 is exactly
        ``pow``) and the value z d / q = z^q / (q rho^(q-1)); 0, 0 at z = 0.
    """
    if z > rho:
        return z - shift, 1.0
    if z > 0.0:
        x = z / rho
        if n >= 0:
            d = 1.0
            for _ in range(n):
                d *= x
        else:
            d = x ** (q - 1.0)
        return z * d / q, d
    return 0.0, 0.0


@jit()
def _logistic(g):
    """(sigmoid(-g), log(1 + exp(-g))) of a margin g, without overflow for any g.

    The second is evaluated as ``np.logaddexp(0, -g)`` evaluates it, so that
    the compiled losses agree with the NumPy ones.
    """
    e = math.exp(-abs(g))
    sig = e / (1.0 + e) if g >= 0.0 else 1.0 / (1.0 + e)
    if g > 0.0:
        return sig, math.log1p(e)
    if g == 0.0:
        return sig, math.log(2.0)
    return sig, -g + math.log1p(e)
