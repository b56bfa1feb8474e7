"""What a run records (docs/model.md section 4) and the trace.npz file format.

The geometric measures (alignments, distractor alignment, orthogonal norm)
are computed here from the weights with plain NumPy: they are taken only at
trace points, so they cost nothing next to the gradient steps.  Losses and
errors come from the training module, which owns the forward pass.

``trace.npz`` keys and shapes (R = records, K = trained modalities,
B = banks, m = width):

=====================  ==============================================
steps                  (R,) int64, the GD step of each record
alignment              (R, K, m) symmetric, (R, K, 2, m) class banks
leading_alignment      (R, K)
distractor_alignment   (R, K)
orthogonal_norm        same shape as alignment
train_loss             (R,)
train_error            (R,)
test_error             (R,)
modality_test_error    (R, K)
method_score           (R, K) float64, only for runs trained with a
method_ratio           method (not plain training): the statistics of
method_scale           the step that led to the record (NaN at step 0
method_cosine          and where the method does not define them)
=====================  ==============================================

A trace holds at most ``MAX_TRACE_POINTS`` records (plus step 0 and the
last step), so that its memory does not grow with the number of steps:
when ``steps / trace_every`` exceeds it, the stride is raised to
``ceil(steps / MAX_TRACE_POINTS)`` and a one-line note says so on stderr
(:func:`trace_stride`). Learned steps are still checked at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sys

__all__ = ["Trace", "geometry", "weighted_error", "TRACE_KEYS", "METHOD_KEYS",
           "MAX_TRACE_POINTS", "trace_stride", "load_trace"]

TRACE_KEYS = (
    "steps",
    "alignment",
    "leading_alignment",
    "distractor_alignment",
    "orthogonal_norm",
    "train_loss",
    "train_error",
    "test_error",
    "modality_test_error",
)

MAX_TRACE_POINTS = 100_000
"""Upper bound on the recorded points of one run (about 30 MB at the default size)."""

METHOD_KEYS = ("method_score", "method_ratio", "method_scale", "method_cosine")


def trace_stride(steps: int, trace_every: int, name: str = "run") -> int:
    """The stride actually used: ``trace_every``, raised so that at most
    ``MAX_TRACE_POINTS`` points are recorded (said once on stderr)."""
    every = int(trace_every)
    if steps // every > MAX_TRACE_POINTS:
        every = -(-int(steps) // MAX_TRACE_POINTS)
        print(f"simcomp: {name}: train.trace_every = {trace_every} would record "
              f"{steps // int(trace_every)} points; recording every {every} steps instead "
              f"(at most {MAX_TRACE_POINTS} points per run)", file=sys.stderr)
    return every


def weighted_error(y: np.ndarray, f: np.ndarray, weight: np.ndarray) -> float:
    """Weighted 0-1 error of sign(f); a tie f = 0 counts half (a coin flip)."""
    margin = y * f
    wrong = np.where(margin < 0, 1.0, np.where(margin == 0, 0.5, 0.0))
    return float(np.dot(weight, wrong))


def geometry(W: list, dictionaries: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed alignments, largest |distractor alignment| and orthogonal norms.

    Parameters
    ----------
    W : list of ndarray
        Per trained modality, the (B, m, d_r) weights (unpadded).
    dictionaries : list of ndarray
        The matching (d_r, d_r) dictionaries; column 0 is the signal v_r and
        the others are the distractor atoms.

    Returns
    -------
    alignment : (K, B, m) ndarray
        c_b <w, v_r>, with c = +1 for bank 0 and -1 for bank 1.
    distractor : (K,) ndarray
        max over neurons and atoms j >= 2 of |<w, M_r e_j>|; 0 when d_r = 1.
    orthogonal : (K, B, m) ndarray
        ||w - <w, v_r> v_r||.
    """
    K = len(W)
    B, m = W[0].shape[:2]
    sign = np.array([1.0, -1.0])[:B, None]
    alignment = np.empty((K, B, m))
    orthogonal = np.empty((K, B, m))
    distractor = np.zeros(K)
    for r, (w, M) in enumerate(zip(W, dictionaries)):
        coords = w.astype(np.float64) @ M  # coordinates in the dictionary's basis
        alignment[r] = sign * coords[..., 0]
        rest = coords[..., 1:]
        orthogonal[r] = np.sqrt(np.sum(rest * rest, axis=-1))
        if rest.shape[-1]:
            distractor[r] = np.abs(rest).max()
    return alignment, distractor, orthogonal


@dataclass
class Trace:
    """Records of one run, appended at trace points."""

    banks: int
    records: dict = field(default_factory=lambda: {key: [] for key in TRACE_KEYS})

    def append(
        self,
        step: int,
        alignment: np.ndarray,
        distractor: np.ndarray,
        orthogonal: np.ndarray,
        train_loss: float,
        train_error: float,
        test_error: float,
        modality_test_error: np.ndarray,
        method: dict | None = None,
    ) -> None:
        rec = self.records
        if rec["steps"] and rec["steps"][-1] == step:
            return  # the last step can coincide with a trace point
        rec["steps"].append(step)
        rec["alignment"].append(alignment)
        rec["leading_alignment"].append(alignment.reshape(alignment.shape[0], -1).max(axis=1))
        rec["distractor_alignment"].append(distractor)
        rec["orthogonal_norm"].append(orthogonal)
        rec["train_loss"].append(train_loss)
        rec["train_error"].append(train_error)
        rec["test_error"].append(test_error)
        rec["modality_test_error"].append(modality_test_error)
        if method is not None:
            for key in METHOD_KEYS:
                rec.setdefault(key, []).append(np.asarray(method[key], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.records["steps"])

    def arrays(self) -> dict[str, np.ndarray]:
        """The trace as arrays in the documented ``trace.npz`` layout."""
        out = {}
        for key in TRACE_KEYS + METHOD_KEYS:
            if key not in self.records:
                continue
            values = self.records[key]
            arr = np.asarray(values, dtype=np.int64 if key == "steps" else np.float64)
            if key in ("alignment", "orthogonal_norm") and self.banks == 1 and arr.ndim == 4:
                arr = arr[:, :, 0, :]  # the symmetric learner has no bank axis in the file
            out[key] = arr
        return out

    def last(self, key: str):
        return self.records[key][-1]

    def save(self, path: str | Path) -> None:
        """Write ``trace.npz`` (compressed) to ``path``."""
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **self.arrays())


def load_trace(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``trace.npz`` into a dict of arrays."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
