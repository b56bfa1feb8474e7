"""One run's prediction: every theory quantity of docs/model.md section 5, assembled.

:func:`predict` takes the configuration, the trained modalities, the run's
initial alignments and its training patterns (never the simulator) and
returns a :class:`Prediction`.  Every per-modality quantity is taken from
that modality's own configuration entry (beta, presence, noise, dim).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from simcomp.config import Config
from simcomp.theory.errors import test_error_coinflip, test_error_noiseless
from simcomp.theory.patterns import presence_fraction
from simcomp.theory.race import (
    initial_gamma,
    predicted_winner,
    race_learn_step,
    race_learn_step_noisy,
    rate,
)
from simcomp.theory.reduced import ReducedDynamics, reduced_dynamics

__all__ = ["Prediction", "predict"]


def _json_value(x: Any):
    """Floats with inf/nan -> None, arrays -> lists, numpy scalars -> python."""
    if isinstance(x, np.ndarray):
        return [_json_value(v) for v in x.tolist()] if x.ndim else _json_value(x.item())
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


@dataclass
class Prediction:
    """Theory's prediction for one run (one trained set of modalities).

    Per-modality arrays are indexed like ``trained``; per-bank arrays have a
    second axis B (1 symmetric; 2 class banks, bank 0 is c = +1).
    """

    trained: list[int]
    pi: np.ndarray  # (K_run, B)
    kappa: np.ndarray  # (K_run, B)
    gamma: np.ndarray  # (K_run, B)
    race_learned_step_bank: np.ndarray  # (K_run, B) float, inf = never
    race_learned_step: np.ndarray  # (K_run,) float, min over banks
    predicted_winner: int | None  # index into trained
    reduced: ReducedDynamics = field(repr=False)
    predicted_learned_step: np.ndarray  # (K_run,) int, -1 never
    learned_by_horizon: np.ndarray  # (K_run,) bool
    test_error_noiseless: float
    test_error_coinflip: float
    # extension: the race with Gaussian input noise (None when every trained
    # modality is noise-free); (K_run,) float, inf = not within 10 T steps
    race_learned_step_noisy: np.ndarray | None = None
    # (K_run,) each encoder alone on fresh noise-free samples, from the reduced
    # dynamics' final alignments (as test_error_noiseless, one modality at a time)
    modality_test_error_noiseless: np.ndarray | None = None
    # the distribution-level noise-aware prediction (:class:`~simcomp.theory.NoisyPrediction`
    # of :func:`~simcomp.theory.distribution_predict`: configuration, initial weights and
    # pattern weights only), behind every ``predicted_*`` quantity; None: not computed
    noise_aware: Any = None
    # the run-conditioned tracked dynamics (the noise-aware dynamics fed with the run's own
    # training noise and initial noise pre-activations): a check of the signal-noise
    # decomposition behind the ``tracked_*`` quantities, not a prediction; None: not computed
    tracked: Any = None
    # the run under the config's training method (:class:`~simcomp.theory.mitigation.
    # MethodPrediction`; the joint run only, attached by the caller); None: plain training
    method: Any = None

    @property
    def theory(self) -> str:
        """Which theory the run's headline predictions use: "noise_aware" or "reduced"."""
        return "reduced" if self.noise_aware is None else "noise_aware"

    def __repr__(self) -> str:
        # the dataclass repr would print every recorded alignment (tens of thousands of numbers)
        steps = np.asarray(self.predicted_learned_step if self.noise_aware is None
                           else self.noise_aware.learned_step).tolist()
        return (f"<simcomp.theory.Prediction trained={self.trained} theory={self.theory} "
                f"predicted_winner={self.predicted_winner_index} predicted_learned_step={steps} "
                f"race_learned_step={np.round(self.race_learned_step, 1).tolist()}>")

    @property
    def predicted_winner_index(self) -> int | None:
        """The headline theory's winner (index into ``trained``)."""
        return self.predicted_winner if self.noise_aware is None else \
            self.noise_aware.predicted_winner

    def to_json(self, names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready dict; per-modality fields are dicts keyed by ``names[j]``.

        ``names`` are the names of the trained modalities, in ``trained`` order.
        Per-bank values are a float (B = 1) or a list [c = +1, c = -1] (B = 2);
        inf and -1 ("never") become None.
        """
        names = list(names)
        if len(names) != len(self.trained):
            raise ValueError(f"{len(names)} names for {len(self.trained)} trained modalities")

        def per_bank(arr):
            return {
                nm: _json_value(row[0] if row.size == 1 else row) for nm, row in zip(names, arr)
            }

        def per_mod(arr, never=None):
            return {
                nm: (None if never is not None and v == never else _json_value(v))
                for nm, v in zip(names, arr)
            }

        return {
            "pi": per_bank(self.pi),
            "kappa": per_bank(self.kappa),
            "gamma": per_bank(self.gamma),
            "race_learned_step": per_mod(self.race_learned_step),
            "race_learned_step_bank": per_bank(self.race_learned_step_bank),
            "predicted_winner": (
                None if self.predicted_winner is None else names[self.predicted_winner]
            ),
            "predicted_learned_step": per_mod(self.predicted_learned_step, never=-1),
            "learned_by_horizon": per_mod(self.learned_by_horizon),
            "test_error_noiseless": self.test_error_noiseless,
            "test_error_coinflip": self.test_error_coinflip,
            "race_learned_step_noisy": (
                None if self.race_learned_step_noisy is None
                else per_mod(self.race_learned_step_noisy)
            ),
        }


def predict(cfg: Config, trained: Sequence[int], alignment0, y_pat, s_pat, w_pat) -> Prediction:
    """All of docs/model.md section 5 for one run.

    ``trained`` indexes ``cfg.data.modality``; ``alignment0`` (K_run, B, m) are
    the run's initial alignments and the patterns its training data (or the
    population patterns).  The race uses pi from those patterns; the reduced
    dynamics runs cfg.train.steps steps at eta = cfg.train.lr, recording every
    cfg.train.trace_every steps; the test errors use the distribution's p_r
    and presence correlation.
    For plain ReLU the race is the constant-drift case (q = 1).  When a
    trained modality has noise, the noise-aware race (extension,
    :func:`race_learn_step_noisy`, with |w_perp| = init_scale sqrt(d - 1)) is
    added, capped at 10 cfg.train.steps.
    """
    trained = [int(r) for r in trained]
    mods = [cfg.data.modality[r] for r in trained]
    beta = np.array([mod.beta for mod in mods])
    presence = np.array([mod.presence for mod in mods])
    corr = cfg.data.presence_correlation
    model = cfg.model
    q, rho, thr, eta = model.q, model.rho, model.threshold, cfg.train.lr
    a0 = np.asarray(alignment0, dtype=float)
    if a0.shape[:2] != (len(trained), model.banks):
        raise ValueError(
            f"alignment0 has shape {a0.shape}; expected ({len(trained)}, {model.banks}, m)"
        )
    pi = presence_fraction(y_pat, s_pat, w_pat, model.banks)
    q_race, rho_race = (1.0, thr) if model.activation == "relu" else (q, rho)
    kappa = rate(beta, pi, q_race, rho_race)
    gamma = initial_gamma(a0)
    race_bank = race_learn_step(gamma, kappa, beta[:, None], q_race, rho_race, eta, thr)
    race = race_bank.min(axis=1)
    reduced = reduced_dynamics(
        a0, beta, y_pat, s_pat, w_pat, q, rho, eta, cfg.train.steps,
        learner=model.learner, activation=model.activation, threshold=thr,
        record_every=cfg.train.trace_every,
    )
    learned = reduced.learned_step >= 0
    noise = np.array([mod.noise for mod in mods])
    race_noisy = None
    if np.any(noise > 0.0):
        perp = model.init_scale * np.sqrt(np.array([mod.dim for mod in mods]) - 1.0)
        race_noisy = race_learn_step_noisy(
            a0.max(axis=2), kappa, beta[:, None], q_race, rho_race, eta,
            noise[:, None], perp[:, None], thr, symmetric=model.learner == "symmetric",
            max_steps=10 * cfg.train.steps,
        ).min(axis=1)
    return Prediction(
        trained=trained,
        pi=pi,
        kappa=kappa,
        gamma=gamma,
        race_learned_step_bank=race_bank,
        race_learned_step=race,
        predicted_winner=predicted_winner(race),
        reduced=reduced,
        predicted_learned_step=reduced.learned_step,
        learned_by_horizon=learned,
        test_error_noiseless=test_error_noiseless(
            reduced.final_alignment, beta, presence, model.learner, model.activation, q, rho,
            corr),
        test_error_coinflip=test_error_coinflip(learned, presence, corr),
        race_learned_step_noisy=race_noisy,
        modality_test_error_noiseless=np.array([
            test_error_noiseless(reduced.final_alignment[k:k + 1], beta[k:k + 1],
                                 presence[k:k + 1], model.learner, model.activation, q, rho)
            for k in range(len(trained))]),
    )
