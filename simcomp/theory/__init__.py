"""Theory the simulation is compared with (docs/model.md section 5).

Everything here is computed from the configuration, the pattern weights of a
run's training data and the run's initial alignments -- never from the
simulator's kernels, data generator or training loop, so that the two can
not share a mistake.  The derivations are in ``docs/theory.md``.

Modules (imports flow downwards only):

* :mod:`~simcomp.theory.activation` -- srelu and shared numeric helpers;
* :mod:`~simcomp.theory.orthant` -- probabilities of the presence patterns
  under correlated presence coins;
* :mod:`~simcomp.theory.patterns` -- (y, s) patterns, presence fraction,
  margins and loss in alignment coordinates;
* :mod:`~simcomp.theory.race` -- rates, learn times and the winner (5.1-5.3);
* :mod:`~simcomp.theory.reduced` -- the exact reduced dynamics (5.4);
* :mod:`~simcomp.theory.errors` -- test-error predictions (5.5);
* :mod:`~simcomp.theory.expected_error` -- exact expected test error of
  trained weights on noisy data with distractors;
* :mod:`~simcomp.theory.noisy_dynamics` -- the noise-aware (signal-noise
  decomposition) dynamics;
* :mod:`~simcomp.theory.distribution` -- that dynamics averaged over the
  noise law (the distribution-level prediction: no per-sample noise);
* :mod:`~simcomp.theory.prediction` -- one run's :class:`Prediction`.

Conventions shared with the simulator
-------------------------------------
* Alignment arrays have shape ``(K_run, B, m)``: ``B = 1`` for the symmetric
  learner, ``B = 2`` for class banks (bank 0 is c = +1, bank 1 is c = -1).
  An alignment is ``a = c <w, v_r>`` (c = 1 for the symmetric learner), signed
  so that positive points the useful way.
* Noise-free data are described by ``(y, s)`` patterns: ``y_pat`` (P,) of
  +-1, ``s_pat`` (P, K_run) of 0/1 and ``w_pat`` (P,) weights.
  :func:`population_patterns` lists all ``2^(K+1)`` patterns in
  ``itertools.product`` order over ``(y, s_1, ..., s_K)`` with ``y = -1``
  before ``y = +1`` and ``s_r = 0`` before ``s_r = 1``: pattern index
  ``p = [y = +1] * 2^K + sum_r s_r * 2^(K-1-r)`` (the first modality is the
  most significant presence bit).
* A modality is learned at the first step t (t = 0..T, every step checked)
  with ``beta_r * max(alignment) >= threshold``; ``-1`` means never.

The package imports only numpy, :mod:`simcomp.config` and the numba
decorator of :mod:`simcomp._jit`.
"""

from __future__ import annotations

from simcomp.theory.activation import srelu, srelu_prime
from simcomp.theory.errors import test_error_coinflip, test_error_noiseless
from simcomp.theory.expected_error import ExpectedTestError, expected_test_error
from simcomp.theory.orthant import all_absent_probability, presence_pattern_probabilities
from simcomp.theory.patterns import (
    pattern_margins,
    population_loss,
    population_patterns,
    presence_fraction,
)
from simcomp.theory.noisy_dynamics import (
    NoisyDynamics,
    NoisyPrediction,
    TrainingNoise,
    noise_aware_dynamics,
    noise_aware_predict,
    noise_aware_regime,
    predicted_gap,
    training_noise,
)
from simcomp.theory.distribution import distribution_predict, weight_geometry
from simcomp.theory.prediction import Prediction, predict
from simcomp.theory.race import (
    initial_gamma,
    phase_boundary,
    predicted_winner,
    race_learn_step,
    race_learn_step_iterated,
    race_learn_step_noisy,
    rate,
    winner_coordinate,
)
from simcomp.theory.reduced import ReducedDynamics, reduced_dynamics

__all__ = [
    "srelu",
    "srelu_prime",
    "rate",
    "race_learn_step",
    "race_learn_step_iterated",
    "race_learn_step_noisy",
    "population_patterns",
    "presence_pattern_probabilities",
    "all_absent_probability",
    "presence_fraction",
    "initial_gamma",
    "predicted_winner",
    "ReducedDynamics",
    "reduced_dynamics",
    "pattern_margins",
    "population_loss",
    "test_error_noiseless",
    "test_error_coinflip",
    "Prediction",
    "predict",
    "winner_coordinate",
    "phase_boundary",
    "ExpectedTestError",
    "expected_test_error",
    "TrainingNoise",
    "training_noise",
    "NoisyDynamics",
    "noise_aware_dynamics",
    "NoisyPrediction",
    "noise_aware_predict",
    "noise_aware_regime",
    "predicted_gap",
    "distribution_predict",
    "weight_geometry",
]
