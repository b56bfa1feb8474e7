"""Test-error predictions from the final alignments (docs/model.md section 5.5).

Both count an output of exactly 0 as half an error (the tie rule of
docs/model.md section 4.1).  :mod:`simcomp.theory.expected_error` computes
the exact expected test error of trained weights on noisy data.
"""

from __future__ import annotations

import numpy as np

from simcomp.theory.orthant import all_absent_probability
from simcomp.theory.patterns import pattern_margins, population_patterns

__all__ = ["test_error_noiseless", "test_error_coinflip"]


def test_error_noiseless(final_alignment, beta, presence, learner="symmetric", activation="srelu",
                         q: float = 3.0, rho: float = 1.0, correlation: float = 0.0) -> float:
    """Test error of the fused model on fresh noise-free samples (docs/model.md section 5.5).

    A sample (y, s) is wrong when y f(y, s) < 0 and counts one half when
    y f(y, s) = 0 exactly; its weight is P(y, s) from the distribution's
    presence probabilities.  For the symmetric learner y f does not depend on
    y, which gives sum_s P(s) ([f(+1,s) < 0] + 0.5 [f(+1,s) = 0]).  ``correlation``
    is the presence correlation c of the data (P(s) of :func:`population_patterns`).
    """
    y_pat, s_pat, w_pat = population_patterns(presence, correlation)
    g = pattern_margins(final_alignment, beta, y_pat, s_pat, q, rho, learner, activation)
    return float(w_pat @ ((g < 0.0) + 0.5 * (g == 0.0)))


test_error_noiseless.__test__ = False  # not a pytest test despite the name


def test_error_coinflip(learned_mask, presence, correlation: float = 0.0) -> float:
    """0.5 P(no learned modality present): a learned modality with signal decides, else a coin flip.

    With independent coins (c = 0) that is 0.5 prod_{r learned} (1 - p_r).
    """
    mask = np.asarray(learned_mask, dtype=bool).reshape(-1)
    p = np.asarray(presence, dtype=float).reshape(-1)
    if mask.size != p.size:
        raise ValueError(f"learned_mask has {mask.size} entries, presence {p.size}")
    if correlation == 0.0:
        return float(0.5 * np.prod(1.0 - p[mask]))
    return 0.5 * all_absent_probability(p[mask], correlation)


test_error_coinflip.__test__ = False
