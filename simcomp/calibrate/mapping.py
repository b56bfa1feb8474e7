"""The dictionary between the toy's binary task and the user's task (docs/calibration.md).

The toy classifies two labels.  A toy sample is either *known* to the
network (it answers right) or not (a fair coin: right half the time).  On
the user's task a known sample is right and an unknown one is right with the
chance level.  So a toy accuracy ``a`` (known share ``2a - 1``) maps to

    user accuracy = (2a - 1) + (2 - 2a) * chance = 1 - 2 (1 - a)(1 - chance),

and a uni-modal network that knows a share p of the samples scores
p + (1 - p) chance: p = (acc - chance) / (1 - chance) is the toy's presence.
The share of samples every uni-modal network gets wrong is the share on
which no modality carries signal, P0, times the chance that all K guesses
are wrong: between P0 (1 - chance)^K (independent guesses) and
P0 (1 - chance) (every network makes the same guess).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["to_user", "presence_from_accuracy", "union_accuracy", "all_wrong_range",
           "DECISION_SCALES", "readout_accuracy"]


def to_user(toy_accuracy, chance: float):
    """The user-scale accuracy of a toy accuracy (binary, coin flips on unknown samples)."""
    return 1.0 - 2.0 * (1.0 - np.asarray(toy_accuracy, dtype=float)) * (1.0 - chance)


def presence_from_accuracy(accuracy: float, chance: float) -> float:
    """The toy presence p of a uni-modal accuracy: p + (1 - p) chance = accuracy."""
    return (accuracy - chance) / (1.0 - chance)


def union_accuracy(p_none, chance: float):
    """User accuracy with every modality learned: only the samples where all are silent are guessed."""
    return 1.0 - np.asarray(p_none, dtype=float) * (1.0 - chance)


def all_wrong_range(p_none, chance: float, K: int):
    """(low, high) of the share every uni-modal network gets wrong (see the module doc)."""
    p_none = np.asarray(p_none, dtype=float)
    return p_none * (1.0 - chance) ** K, p_none * (1.0 - chance)


# The output scale at which an encoder decides a sample, in units of rho / q (the
# output psi(rho) of a neuron at the learned threshold): at 0.5, a modality whose
# leading neuron just reached the threshold decides a sample it carries alone with
# probability Phi(2); one whose neurons are still at their initial size (psi ~ 1e-6)
# is a coin flip; between the two the decision is partial.  It stands for the noise
# of a real network's other inputs, which the measurements do not give: a nuisance
# parameter of the search, over these values (docs/calibration.md).
DECISION_SCALES = (0.25, 0.5, 1.0)


def readout_accuracy(margins, weights, scale: float):
    """Toy accuracy sum_P w_P Phi(y f_P / scale) for margins of shape (..., P)."""
    z = np.asarray(margins, dtype=float) / scale
    phi = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    return phi @ np.asarray(weights, dtype=float)


def _erf(x):
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26), vectorised: NumPy has none."""
    x = np.asarray(x, dtype=float)
    sign = np.sign(x)
    ax = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * ax)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                        + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-ax * ax))
