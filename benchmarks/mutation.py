"""Mutation testing of simcomp: a curated list of plausible bugs, the suite run against each.

Each mutant is one small, plausible bug (a comparison turned, an index
slipped, a cast dropped, a stream swapped) written as an exact snippet of a
source file and its replacement.  For every mutant the script

1. copies the repository (this checkout, as it is on disk: sources, tests,
   docs) once per job slot into a scratch directory, never touching the
   working tree;
2. applies the mutant there (the snippet must occur exactly once; a snippet
   that is not found, or found more than once, makes the mutant *stale*:
   reported, not counted -- update its text after a refactoring);
3. drops the numba cache entries that could hold the mutated code or code
   compiled against it (see below);
4. runs ``pytest -x`` on the test files most related to the mutated module
   and, if they all pass, the whole suite; the mutant is *killed* when a
   test fails (or the run times out: a hang is a detected bug), *survived*
   when the whole suite passes;
5. restores the file.

Why a curated list and not mutmut or cosmic-ray: both rewrite a module and
run the tests in place, and numba's on-disk cache does not notice that a
callee in another file changed (a cached caller keeps the old callee
compiled into it), so a mutant in a kernel would silently run the unmutated
code and "survive".  Here every slot has its own ``NUMBA_CACHE_DIR``; before
and after each mutant the cache entries of the mutated file and of every
simcomp module that imports it (transitively) are deleted, so that they are
compiled from the mutated source during the run and from the restored
source afterwards.  Entries of unrelated modules stay warm.

Usage (from the repository root)::

    python benchmarks/mutation.py            # everything; writes docs/testing.md
    python benchmarks/mutation.py --list     # the mutants and whether they apply
    python benchmarks/mutation.py --only ID [--only ID ...]
    python benchmarks/mutation.py --jobs 2   # two mutants at a time
    python benchmarks/mutation.py --quick    # related tests only (no whole-suite pass)

Every run without --only writes docs/testing.md (saying whether it was --quick).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import dataclasses
import hashlib
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root
    old: str  # exact snippet, must occur exactly once
    new: str
    why: str  # why the bug is plausible
    tests: tuple[str, ...]  # the most related test files, run first
    timeout: float | None = None  # seconds: for a mutant known to make the tests hang


# Test files per area (run first with -x; the whole suite follows if they all pass).
T_KERNEL = ("tests/test_kernels.py", "tests/test_train.py")
T_TRAIN = ("tests/test_train.py", "tests/test_batch.py")
T_RULES = ("tests/test_rules.py", "tests/test_methods_reference.py")
T_THEORY = ("tests/test_theory.py", "tests/test_theory_golden.py")
T_DATA = ("tests/test_data.py", "tests/test_golden.py")
T_CONFIG = ("tests/test_config.py", "tests/test_methods_config.py")
T_SWEEP = ("tests/test_sweep.py",)
T_RESULTS = ("tests/test_results.py",)
T_METHODS = ("tests/test_methods.py", "tests/test_shapley.py")

TT, TH = "tests/test_train.py::", "tests/test_theory.py::"
SW, DA = "tests/test_sweep.py::", "tests/test_data.py::"
ME, CO = "tests/test_methods.py::", "tests/test_config.py::"
SH = "tests/test_shapley.py::"
F32 = TT + "test_float32_runs_compute_in_float32_on_every_path"
LAST_RECORD = TT + "test_last_record_matches_a_numpy_reference_on_the_final_weights"
STEP_ZERO = TT + "test_a_modality_learned_at_step_zero_is_learned_and_can_win"
PREDICT_TRAIN_SET = DA + "test_a_runs_prediction_uses_its_training_set"
VALUE_HELPERS = "tests/test_results.py::test_value_helpers_keep_step_zero_and_drop_non_finite"
OWN_PARAMETERS = TH + "test_predict_uses_each_modalitys_own_parameters"
WINNER_Q = "tests/test_results.py::test_winner_coordinate_uses_the_race_exponent"

M = Mutant
MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- kernels
    M("K01-learned-gt", "simcomp/kernels/gd.py",
      "if beta[r] * best >= threshold:", "if beta[r] * best > threshold:",
      "the learned check is 'reaches' (>=); '>' is the usual slip",
      (TT + "test_learned_check_counts_an_alignment_exactly_at_the_threshold",) + T_KERNEL),
    M("K02-learned-bank-sign", "simcomp/kernels/gd.py",
      "if b == 1:\n                    s = -s", "if b == 0:\n                    s = -s",
      "class banks: the sign c_b of the learned check put on the wrong bank", T_KERNEL),
    M("K03-learned-step-plus-one", "simcomp/kernels/gd.py",
      "_check_learned(W, dims, signal, beta, threshold, learned, t)\n",
      "_check_learned(W, dims, signal, beta, threshold, learned, t + 1)\n",
      "the learned step off by one (labelled with the step after the update)", T_KERNEL),
    M("K04-no-final-check", "simcomp/kernels/gd.py",
      "    _check_learned(W, dims, signal, beta, threshold, learned, t_end)\n",
      "",
      "the weights after the last update are never checked",
      (TT + "test_learned_step_is_first_crossing_checked_every_step",) + T_KERNEL),
    M("K05-dot-tail", "simcomp/kernels/gd.py",
      "                while k < d:\n                    s0 +=",
      "                while k < d - 1:\n                    s0 +=",
      "the remainder loop of the unrolled dot product drops the last column",
      (TT + "test_learned_check_reads_every_column_of_the_signal",) + T_KERNEL),
    M("K06-stop-loss-le", "simcomp/kernels/gd.py",
      "need_loss = stop_loss > 0.0 or t == t_end - 1",
      "need_loss = t == t_end - 1",
      "the loss is only computed at the end of a call, so the early stop never sees it",
      (TT + "test_stop_loss_stops_early",) + T_KERNEL),
    M("K07-pow-q4", "simcomp/kernels/units.py",
      "    if qcode == 4:\n        return t * t * t\n",
      "    if qcode == 4:\n        return t * t * t * t\n",
      "the q = 4 fast path computes t^q instead of t^(q-1)", T_KERNEL),
    M("K08-srelu-offset", "simcomp/kernels/units.py",
      "off = (1.0 - 1.0 / q) * rho", "off = (1.0 / q) * rho",
      "the linear piece of srelu shifted by rho/q instead of (1 - 1/q) rho", T_KERNEL),
    M("K09-lr-scale-modality", "simcomp/kernels/rules.py",
      "er = eta * par[0, r]", "er = eta * par[0, 0]",
      "lr_scale: the first modality's factor c_r applied to every modality", T_RULES),
    M("K10-k-r-modality", "simcomp/kernels/rules.py",
      "kr = stats[S_K, r]", "kr = stats[S_K, 0]",
      "ogm/agm: the modulation k_r of modality 0 applied to every modality", T_RULES),
    M("K11-dropout-rescale", "simcomp/kernels/rules.py",
      "keep = keep / (1.0 - par[1, r])", "keep = keep / (1.0 - par[1, 0])",
      "dropout: the rescale uses the first modality's drop rate", 
      ("tests/test_rules.py::test_dropout_rescale_uses_each_modalitys_own_rate",) + T_RULES),
    M("K12-aux-weight", "simcomp/kernels/rules.py",
      "par[2, r] * _dlogistic(yj, phi[r, jj])", "par[2, 0] * _dlogistic(yj, phi[r, jj])",
      "aux: the first modality's uni-modal loss weight used for all", T_RULES),
    M("K13-agm-mean", "simcomp/kernels/rules.py",
      "sbar[r] = (t * sbar[r] + S[1, r]) / (t + 1.0)",
      "sbar[r] = (t * sbar[r] + S[1, r]) / (t + 2.0)",
      "agm: the running mean of the scores divided by the wrong count", T_RULES),
    # ---------------------------------------------------------------- training
    M("T01-pad-cast", "simcomp/train.py",
      "return np.stack(arrays).astype(dtype, copy=False)", "return np.stack(arrays)",
      "float32 runs: equal widths skip the cast, so X stays float64", (F32,) + T_TRAIN),
    M("T02-label-cast", "simcomp/train.py",
      "self.y = data.y.astype(dtype)", "self.y = data.y",
      "float32 runs: the labels passed to the kernels stay float64", (F32,) + T_TRAIN),
    M("T03-weight-cast", "simcomp/train.py",
      "self.weight = data.weight.astype(dtype)", "self.weight = data.weight",
      "float32 runs: the sample weights passed to the kernels stay float64", (F32,) + T_TRAIN),
    M("T04-min-learned-step0", "simcomp/train.py",
      "masked = np.where(learned >= 0,", "masked = np.where(learned > 0,",
      "a modality learned at step 0 reported as never learned", (STEP_ZERO,) + T_TRAIN),
    M("T05-winner-step0", "simcomp/train.py",
      "learned = [(step, k) for k, step in enumerate(self.learned_step) if step >= 0]",
      "learned = [(step, k) for k, step in enumerate(self.learned_step) if step > 0]",
      "the empirical winner ignores a modality learned at step 0", (STEP_ZERO,) + T_TRAIN),
    M("T06-alternating-mix", "simcomp/train.py",
      "mix = self.rule.par[3].copy() if alternating else None",
      "mix = None",
      "alternating: the traced errors use the fused output, not its own predictor",
      (TT + "test_alternating_joint_run_equals_the_unimodal_runs",) + T_TRAIN),
    M("T07-call-overshoot", "simcomp/pacing.py",
      "return max(1, min(wanted, self.steps))", "return max(1, self.steps)",
      "a compiled call runs past the trace point it was asked to stop at (the segment "
      "loop then never ends: killed by the time limit)",
      (TT + "test_calls_cut_short_do_not_change_results",) + T_TRAIN, timeout=300),
    M("T08-eval-test-set", "simcomp/train.py",
      "_, test_err, modality_err = test_eval(self.W, self.dims)",
      "_, test_err, modality_err = self.train_eval(self.W, self.dims)",
      "the test errors evaluated on the training set", (LAST_RECORD,) + T_TRAIN),
    # ---------------------------------------------------------------- trace
    M("R01-tie-full-error", "simcomp/trace.py",
      "np.where(margin == 0, 0.5, 0.0)", "np.where(margin == 0, 1.0, 0.0)",
      "an output of exactly 0 counted as a full error instead of half",
      (TT + "test_an_output_of_exactly_zero_counts_as_half_an_error",) + T_TRAIN),
    M("R02-bank-sign", "simcomp/trace.py",
      "sign = np.array([1.0, -1.0])[:B, None]", "sign = np.array([1.0, 1.0])[:B, None]",
      "the traced alignment of bank c = -1 not multiplied by its sign", (LAST_RECORD,) + T_TRAIN),
    M("R03-distractor-abs", "simcomp/trace.py",
      "distractor[r] = np.abs(rest).max()", "distractor[r] = rest.max()",
      "the distractor alignment takes the signed max, missing negative alignments",
      (LAST_RECORD,) + T_TRAIN),
    M("R04-orthogonal-sqrt", "simcomp/trace.py",
      "orthogonal[r] = np.sqrt(np.sum(rest * rest, axis=-1))",
      "orthogonal[r] = np.sum(rest * rest, axis=-1)",
      "the orthogonal norm reported squared", (LAST_RECORD,) + T_TRAIN),
    M("R05-stride-floor", "simcomp/trace.py",
      "every = -(-int(steps) // MAX_TRACE_POINTS)", "every = int(steps) // MAX_TRACE_POINTS",
      "the raised trace stride rounded down, so the cap is exceeded",
      (TT + "test_trace_stride_is_the_ceiling_and_keeps_the_cap",
       TT + "test_trace_points_are_capped") + T_TRAIN),
    M("R06-duplicate-last", "simcomp/trace.py",
      "        if rec[\"steps\"] and rec[\"steps\"][-1] == step:\n"
      "            return  # the last step can coincide with a trace point\n",
      "",
      "the last step recorded twice when it is also a trace point",
      (TT + "test_a_trace_records_a_step_once",) + T_TRAIN),
    # ---------------------------------------------------------------- theory
    M("H01-race-beta", "simcomp/theory/prediction.py",
      "race_bank = race_learn_step(gamma, kappa, beta[:, None], q_race, rho_race, eta, thr)",
      "race_bank = race_learn_step(gamma, kappa, beta[:1, None], q_race, rho_race, eta, thr)",
      "the race of every modality computed with the first modality's beta",
      (TH + "test_predict_uses_each_modalitys_own_parameters",) + T_THEORY),
    M("H02-pi-config", "simcomp/theory/prediction.py",
      "pi = presence_fraction(y_pat, s_pat, w_pat, model.banks)",
      "pi = np.repeat((presence / model.banks)[:, None], model.banks, axis=1)",
      "pi taken from the configured presence instead of the training set",
      (TH + "test_presence_fraction_is_the_training_sets",) + T_THEORY),
    M("H03-race-bank-max", "simcomp/theory/prediction.py",
      "race = race_bank.min(axis=1)", "race = race_bank.max(axis=1)",
      "a modality's predicted step taken from its slower bank", (OWN_PARAMETERS,) + T_THEORY),
    M("H04-relu-race", "simcomp/theory/prediction.py",
      "q_race, rho_race = (1.0, thr) if model.activation == \"relu\" else (q, rho)",
      "q_race, rho_race = (q, rho)",
      "plain ReLU predicted with the srelu race", T_THEORY),
    M("H05-perp-dim", "simcomp/theory/prediction.py",
      "np.sqrt(np.array([mod.dim for mod in mods]) - 1.0)",
      "np.sqrt(np.array([mod.dim for mod in mods]))",
      "the noise-aware race's |w_perp| counts the signal direction too", T_THEORY),
    M("H06-reduced-learned-gt", "simcomp/theory/reduced.py",
      "if beta[r] * mx >= thr:", "if beta[r] * mx > thr:",
      "the theory's learned check turned into '>'",
      (TH + "test_reduced_learned_check_counts_an_alignment_exactly_at_the_threshold",)
      + T_THEORY),
    M("H07-pi-bank-label", "simcomp/theory/patterns.py",
      "(w * (y > 0)) @ s, (w * (y < 0)) @ s", "(w * (y > 0)) @ s, (w * (y > 0)) @ s",
      "class banks: bank c = -1 given the weight of the y = +1 samples", T_THEORY),
    M("H08-rate-rho", "simcomp/theory/race.py",
      "pi * beta**q / (2.0 * rho ** (q - 1.0))", "pi * beta**q / (2.0 * rho ** q)",
      "the growth rate kappa with rho^q instead of rho^(q-1)", T_THEORY),
    M("H09-coinflip-half", "simcomp/theory/errors.py",
      "return float(0.5 * np.prod(1.0 - p[mask]))", "return float(np.prod(1.0 - p[mask]))",
      "the coin-flip error forgets that a coin is right half the time", T_THEORY),
    M("H10-noiseless-tie", "simcomp/theory/errors.py",
      "((g < 0.0) + 0.5 * (g == 0.0))", "((g <= 0.0) + 0.0 * (g == 0.0))",
      "the theory's test error counts an output of 0 as a full error", T_THEORY),
    M("H11-patterns-train", "simcomp/experiment.py",
      "y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)\n"
      "    pred = theory.predict(",
      "y_pat, s_pat, w_pat = empirical_patterns(data.test, trained)\n"
      "    pred = theory.predict(",
      "a run's prediction built from the test set instead of its training set",
      (PREDICT_TRAIN_SET,
       "tests/test_theory.py", "tests/test_results.py")),
    # ---------------------------------------------------------------- data
    M("D01-stream-swap", "simcomp/data.py",
      "_STREAM_DICTIONARY, _STREAM_TRAIN, _STREAM_TEST, _STREAM_INIT = range(4)",
      "_STREAM_DICTIONARY, _STREAM_TEST, _STREAM_TRAIN, _STREAM_INIT = range(4)",
      "the training and test sets drawn from each other's seed stream", ("tests/test_golden.py",)
      + T_DATA),
    M("D02-signal-presence", "simcomp/data.py",
      "z[:, 0] = y * mod.beta * s", "z[:, 0] = y * mod.beta",
      "the signal put into every sample, ignoring the drawn presence",
      (DA + "test_sample_structure_without_noise",)
      + T_DATA),
    M("D03-distractor-atom0", "simcomp/data.py",
      "[:, : mod.distractors] + 1", "[:, : mod.distractors]",
      "distractor atoms drawn from 1..d-1 (0-based: including the signal atom)",
      (DA + "test_sample_structure_without_noise",)
      + T_DATA),
    M("D04-noise-variance", "simcomp/data.py",
      "X += rng.normal(0.0, mod.noise, size=X.shape)",
      "X += rng.normal(0.0, mod.noise**2, size=X.shape)",
      "the noise level used as a variance instead of a standard deviation",
      (DA + "test_noise_level",)
      + T_DATA),
    M("D05-population-weight", "simcomp/data.py",
      "weight = np.full(len(patterns), 0.5)", "weight = np.full(len(patterns), 1.0)",
      "population mode: the label probability 1/2 forgotten (weights sum to 2)",
      (DA + "test_population_mode_points_and_weights",)
      + T_DATA),
    M("D06-pattern-label", "simcomp/data.py",
      "keys = np.concatenate([(dataset.y > 0)", "keys = np.concatenate([(dataset.y < 0)",
      "the empirical patterns with their labels flipped",
      (PREDICT_TRAIN_SET,) + T_DATA),
    M("D07-pattern-weights", "simcomp/data.py",
      "w_pat = np.bincount(inverse.ravel(), weights=dataset.weight, minlength=len(uniq))",
      "w_pat = np.bincount(inverse.ravel(), minlength=len(uniq)) / len(inverse)",
      "the pattern weights counted instead of summing the sample weights",
      (DA + "test_empirical_patterns_sum_the_sample_weights", PREDICT_TRAIN_SET) + T_DATA),
    # ---------------------------------------------------------------- config
    M("C01-beta-zero", "simcomp/validation.py",
      "\"data.modality.beta\": (0.0, 1e6, True),", "\"data.modality.beta\": (0.0, 1e6, False),",
      "beta = 0 (no signal at all) accepted", (CO + "test_bad_values_name_the_key",)
      + T_CONFIG),
    M("C02-distractors-dim", "simcomp/config.py",
      "lo=0, hi=self.dim - 1)", "lo=0, hi=self.dim)",
      "as many distractors as dimensions accepted (one must stay for the signal)",
      (CO + "test_bad_values_name_the_key",)
      + T_CONFIG),
    M("C03-threshold", "simcomp/config.py",
      "return self.rho if self.learned_threshold is None else self.learned_threshold",
      "return self.rho",
      "model.learned_threshold ignored", (CO + "test_boundary_values_are_accepted",)
      + T_CONFIG + ("tests/test_train.py",)),
    M("C04-drop-one", "simcomp/method_config.py",
      "if value >= 1.0:\n                raise ConfigError(f\"{label} must be in [0, 1)",
      "if value > 1.0:\n                raise ConfigError(f\"{label} must be in [0, 1)",
      "method.drop = 1 accepted (every unit dropped, rescale divides by 0)", T_CONFIG),
    M("C05-open-bound", "simcomp/validation.py",
      "(value <= lo if lo_open else value < lo)", "(value < lo if lo_open else value <= lo)",
      "open and closed lower bounds swapped",
      (CO + "test_bad_values_name_the_key", CO + "test_boundary_values_are_accepted",)
      + T_CONFIG),
    M("C06-presence-open", "simcomp/validation.py",
      "\"data.modality.presence\": (0.0, 1.0, False),",
      "\"data.modality.presence\": (0.0, 1.0, True),",
      "presence = 0 (a modality that never carries signal) refused",
      (CO + "test_boundary_values_are_accepted",)
      + T_CONFIG),
    # ---------------------------------------------------------------- sweep
    M("S01-seed-shift", "simcomp/sweep/plan.py",
      "return int(word) >> 1", "return int(word)",
      "derived seeds up to 2**64, beyond the valid seed range",
      (SW + "test_seed_rule_is_the_documented_one",)
      + T_SWEEP),
    M("S02-seed-order", "simcomp/sweep/plan.py",
      "items = sorted((dict(point)).items(), key=lambda kv: kv[0])",
      "items = list(dict(point).items())",
      "a run's seed depends on the order of the grid axes",
      (SW + "test_seed_depends_on_content_not_position",)
      + T_SWEEP),
    M("S03-seed-repeat", "simcomp/sweep/plan.py",
      "\"repeat\": int(repeat)}", "\"repeat\": 0}",
      "every repeat of a point gets the same seed",
      (SW + "test_seed_rule_is_the_documented_one",
       SW + "test_seed_depends_on_content_not_position",)
      + T_SWEEP),
    M("S04-csv-columns", "simcomp/sweep/store.py",
      "[csv_cell(run.repeat), csv_cell(run.seed)]", "[csv_cell(run.seed), csv_cell(run.repeat)]",
      "results.csv: repeat and seed written in each other's column",
      (SW + "test_csv_columns_and_values_k2",)
      + T_SWEEP),
    M("S05-checksum", "simcomp/sweep/store.py",
      "elif record.get(\"checksum\") != record_checksum(record):",
      "elif record.get(\"checksum\") is None:",
      "a tampered record accepted as long as it has a checksum",
      (SW + "test_tampered_record_is_recomputed",)
      + T_SWEEP),
    M("S06-grid-digits", "simcomp/sweep/grid.py",
      "return [float(f\"{v:.12g}\") for v in values]", "return [float(v) for v in values]",
      "linspace values keep their binary noise (1.4000000000000001)",
      (SW + "test_linspace_floats_and_lists", SW + "test_linspace_values_are_the_decimals_meant",)
      + T_SWEEP),
    M("S07-skip-done", "simcomp/sweep/run.py",
      "pending = [run for run in plan.runs if run.run_id not in records]",
      "pending = list(plan.runs)",
      "a resumed sweep runs the finished runs again", (SW + "test_rerun_and_deleted_records",)
      + T_SWEEP),
    # ---------------------------------------------------------------- results
    M("E01-csv-missing", "simcomp/results.py",
      "    if value is None:\n        return \"\"\n",
      "    if value is None:\n        return \"-1\"\n",
      "a missing value written to results.csv as the kernels' -1", T_RESULTS + T_SWEEP),
    M("E02-step-zero", "simcomp/results.py",
      "return None if x is None or x < 0 else int(x)",
      "return None if x is None or x <= 0 else int(x)",
      "a learned step of 0 reported as never", (VALUE_HELPERS,) + T_RESULTS),
    M("E03-nonfinite", "simcomp/results.py",
      "return x if math.isfinite(x) else None", "return x",
      "inf and nan passed into summary.json and results.csv", (VALUE_HELPERS,) + T_RESULTS),
    M("E04-best-unimodal", "simcomp/results.py",
      "return min(unimodal, key=lambda name: (errors[name], name))",
      "return max(unimodal, key=lambda name: (errors[name], name))",
      "the best uni-modal network chosen as the worst", T_RESULTS),
    M("E05-gap-sign", "simcomp/results.py",
      "\"gap\": joint - alone}", "\"gap\": alone - joint}",
      "the gap's sign flipped (positive would mean joint training wins)", T_RESULTS),
    M("E06-csv-bool", "simcomp/results.py",
      "    if isinstance(value, bool):\n        return \"1\" if value else \"0\"\n", "",
      "booleans written as True/False in results.csv", T_RESULTS + T_SWEEP),
    M("E07-winner-coordinate-q", "simcomp/results.py",
      "q = 1.0 if cfg.model.activation == \"relu\" else cfg.model.q",
      "q = cfg.model.q",
      "ReLU runs: the winner coordinate computed with the srelu exponent", (WINNER_Q,) + T_RESULTS),
    # ---------------------------------------------------------------- methods
    M("M01-pick-modality", "simcomp/methods.py",
      "return [float(values[r]) for r in trained]",
      "return [float(values[i]) for i, r in enumerate(trained)]",
      "a per-modality setting of a uni-modal run taken from modality 0",
      (ME + "test_per_modality_lists_are_restricted_to_the_trained_modalities",)
      + T_METHODS),
    M("M02-method-stream", "simcomp/methods.py",
      "return np.random.SeedSequence(seed).spawn(_STREAM_METHOD + 1)[_STREAM_METHOD]",
      "return np.random.SeedSequence(seed).spawn(_STREAM_METHOD)[-1]",
      "the method's random numbers drawn from the initial weights' stream",
      (ME + "test_method_stream_leaves_the_data_streams_alone",)
      + T_METHODS),
    M("M03-key-top-bit", "simcomp/methods.py",
      "return int(word) & 0x7FFF_FFFF_FFFF_FFFF", "return int(word)",
      "a method key that does not fit a signed 64-bit integer",
      (ME + "test_method_stream_leaves_the_data_streams_alone",) + T_METHODS),
    M("M04-shapley-tie", "simcomp/shapley.py",
      "return weight @ ((margin > 0) + 0.5 * (margin == 0))",
      "return weight @ (margin >= 0)",
      "Shapley accuracy counts an output of 0 as right", (SH + "test_hand_example",)
      + T_METHODS),
    M("M05-shapley-coef", "simcomp/shapley.py",
      "factorial(k) * factorial(K - k - 1)", "factorial(k) * factorial(K - k)",
      "the Shapley weights |S|! (K-|S|-1)!/K! off by one", (SH + "test_efficiency_and_brute_force",)
      + T_METHODS),
    M("M06-method-mix", "simcomp/methods.py",
      "own = predictor_error(phi, y, weight, mix)", "own = predictor_error(phi, y, weight)",
      "alternating: the method's error computed without its mix", (ME + "test_method_results",)
      + T_METHODS),
    M("M07-unit-srelu", "simcomp/methods.py",
      "z - (1.0 - 1.0 / q) * rho))", "z - (1.0 / q) * rho))",
      "umt's teacher units with the wrong srelu offset", (ME + "test_unit_outputs_are_psi_and_act",)
      + T_METHODS + T_RULES),
    M("M08-ume-ensemble", "simcomp/methods.py",
      "ensemble = None if phi_unimodal is None else predictor_error(phi_unimodal, y, weight)",
      "ensemble = None if phi_unimodal is None else predictor_error(phi, y, weight)",
      "the uni-modal ensemble's error computed from the joint network's outputs",
      (ME + "test_method_results",)
      + T_METHODS),
)

# Mutants that cannot change any observable result: listed with the argument,
# checked to apply (so that a refactoring is noticed), never counted.
EQUIVALENT: tuple[tuple[Mutant, str], ...] = (
    (M("X01-presence-le", "simcomp/data.py",
       "s = (rng.random(n) < mod.presence).astype(np.int8)",
       "s = (rng.random(n) <= mod.presence).astype(np.int8)",
       "presence drawn with <= instead of <", T_DATA),
     "Generator.random draws from the 2^53 multiples of 2^-53 in [0, 1); the two "
     "comparisons differ only when a draw equals the presence exactly, which for "
     "presence 0 (the only value where it matters) has probability 2^-53 per sample, "
     "and for any other presence changes P(s = 1) by at most 2^-53."),
    (M("X02-dlogistic-branch", "simcomp/kernels/rules.py",
       "    sig = (1.0 if u >= 0.0 else e) / (1.0 + e)\n    return -yj * sig",
       "    sig = (1.0 if u > 0.0 else e) / (1.0 + e)\n    return -yj * sig",
       "the other branch of the stable sigmoid at u = 0", T_RULES),
     "At u = 0 (and u = -0) e = exp(-|u|) = 1 exactly, so both branches give 1/(1+1) = "
     "0.5 bit for bit; for u != 0 the branches are the same."),
)


# --------------------------------------------------------------------------- applying


def status_of(mutant: Mutant, root: Path = ROOT) -> str:
    """'ok' when the snippet occurs exactly once, else 'stale (...)'."""
    path = root / mutant.file
    if not path.exists():
        return "stale (file missing)"
    count = path.read_text(encoding="utf-8").count(mutant.old)
    if count == 1:
        return "ok"
    return "stale (snippet not found)" if count == 0 else f"stale (snippet found {count} times)"


def _module_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """simcomp module -> the simcomp modules it imports (absolute and relative imports)."""
    graph: dict[str, set[str]] = {}
    files = {_module_of(p, root): p for p in (root / "simcomp").rglob("*.py")}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps.update(n for n in names if n in files)
        graph[mod] = deps - {mod}
    return graph


def affected_stems(rel: str, root: Path) -> set[tuple[str, str]]:
    """(directory name, file stem) of the mutated module and everything importing it."""
    graph = import_graph(root)
    target = _module_of(root / rel, root)
    hit, changed = {target}, True
    while changed:
        changed = False
        for mod, deps in graph.items():
            if mod not in hit and deps & hit:
                hit.add(mod)
                changed = True
    out = set()
    for mod in hit:
        parts = mod.split(".")
        path = root.joinpath(*parts)
        if path.is_dir():
            out.add((parts[-1], "__init__"))
        else:
            out.add((parts[-2], parts[-1]))
    return out


def drop_cache(cache: Path, stems: set[tuple[str, str]]) -> int:
    """Delete numba cache files of the given (directory, stem) pairs; returns how many.

    numba names a cache subdirectory ``<source dir name>_<hash of its path>`` and
    the files in it ``<file stem>.<function>-<line>.py<ver>.nb[ic]``.
    """
    removed = 0
    if not cache.exists():
        return 0
    for sub in cache.rglob("*"):
        if not sub.is_file() or sub.suffix not in (".nbi", ".nbc"):
            continue
        dirname = sub.parent.name.rpartition("_")[0]
        stem = sub.name.split(".", 1)[0]
        if (dirname, stem) in stems:
            sub.unlink()
            removed += 1
    return removed


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    result: str  # killed, survived, stale, error
    detail: str = ""  # the failing test (killed) or the reason
    phase: str = ""  # related, full
    seconds: float = 0.0


def _tree_files(root: Path) -> dict[str, Path]:
    skip = {".git", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")]
        for name in filenames:
            if name.endswith((".nbi", ".nbc", ".pyc")):
                continue
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path
    return out


def sync_tree(src: Path, dst: Path) -> list[str]:
    """Make ``dst`` a copy of ``src`` (modification times kept); returns the changed paths."""
    want, have = _tree_files(src), (_tree_files(dst) if dst.exists() else {})
    changed = []
    for rel, path in want.items():
        target = dst / rel
        if rel in have and have[rel].read_bytes() == path.read_bytes():
            if have[rel].stat().st_mtime_ns != path.stat().st_mtime_ns:
                shutil.copystat(path, target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        changed.append(rel)
    for rel in set(have) - set(want):
        have[rel].unlink()
        changed.append(rel)
    return changed


class Slot:
    """A scratch copy of the repository with its own numba cache.

    The copy and the cache persist between invocations (in ``--scratch``), so
    a second run does not compile everything again: at start the copy is
    synchronised with this checkout, and the cache entries of every simcomp
    module that changed (and of its importers) are deleted.
    """

    def __init__(self, base: Path, index: int):
        self.dir = base / f"slot{index}"
        self.repo = self.dir / "repo"
        self.cache = self.dir / "numba-cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        changed = sync_tree(ROOT, self.repo)
        stems: set[tuple[str, str]] = set()
        for rel in changed:
            if rel.startswith("simcomp/") and rel.endswith(".py"):
                if (self.repo / rel).exists():
                    stems |= affected_stems(rel, self.repo)
                else:  # a removed module: drop its own entries
                    parts = Path(rel).with_suffix("").parts
                    stems.add((parts[-2], parts[-1]))
        if stems:
            drop_cache(self.cache, stems)

    def env(self) -> dict:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(self.cache), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONHASHSEED="0")
        env.pop("PYTHONPATH", None)
        return env

    def pytest(self, files, timeout: float) -> tuple[int, str, float]:
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-o", "addopts=-rf", *files]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=self.repo, env=self.env(), capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout:.0f} s", time.perf_counter() - start
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0].split(" ", 1)[1]
    tail = [line for line in output.splitlines() if line.strip()][-1:]
    return tail[0][:120] if tail else "no output"


def run_mutant(slot: Slot, mutant: Mutant, quick: bool, timeout: float) -> Outcome:
    status = status_of(mutant, slot.repo)
    if status != "ok":
        return Outcome(mutant, "stale", status)
    path = slot.repo / mutant.file
    original = path.read_text(encoding="utf-8")
    stat = path.stat()
    stems = affected_stems(mutant.file, slot.repo)
    start = time.perf_counter()
    try:
        drop_cache(slot.cache, stems)
        path.write_text(original.replace(mutant.old, mutant.new, 1), encoding="utf-8")
        if mutant.timeout is not None:
            timeout = min(timeout, mutant.timeout)
        code, out, _ = slot.pytest(mutant.tests, timeout)
        phase = "related"
        if code == 0 and not quick:
            code, out, _ = slot.pytest([], timeout)
            phase = "full"
        seconds = time.perf_counter() - start
        if code == 0:
            return Outcome(mutant, "survived", "", phase, seconds)
        if code == -1:
            return Outcome(mutant, "killed", out, phase, seconds)
        if code in (1,):
            return Outcome(mutant, "killed", _first_failure(out), phase, seconds)
        # 2-5: interrupted, internal error, usage error, no tests: a broken run, not a kill
        if "error" in out.lower() and code == 2:
            return Outcome(mutant, "killed", "collection error: " + _first_failure(out),
                           phase, seconds)
        return Outcome(mutant, "error", f"pytest exit {code}: {_first_failure(out)}", phase,
                       seconds)
    finally:
        path.write_text(original, encoding="utf-8")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        drop_cache(slot.cache, stems)


# --------------------------------------------------------------------------- report


def render(outcomes: list[Outcome], baseline: float, total: float, jobs: int,
           quick: bool = False, report: bool = False) -> str:
    killed = [o for o in outcomes if o.result == "killed"]
    survived = [o for o in outcomes if o.result == "survived"]
    stale = [o for o in outcomes if o.result == "stale"]
    errors = [o for o in outcomes if o.result == "error"]
    pending = [o for o in outcomes if o.result == "not run"]
    counted = len(killed) + len(survived)
    score = 100.0 * len(killed) / counted if counted else float("nan")
    lines = [
        "# Testing: mutation score",
        "",
        "<!-- generated by benchmarks/mutation.py; do not edit by hand -->",
        "",
        "How strong is the test suite? `benchmarks/mutation.py` seeds small, plausible bugs",
        "(*mutants*) into `simcomp/`, one at a time, and runs the tests against each. A mutant",
        "is *killed* when a test fails (or the run hangs past the time limit), *survived* when",
        "the whole suite passes. Mutants whose snippet no longer occurs exactly once in the",
        "source are *stale*: listed, not counted (update their text after a refactoring).",
        "Equivalent mutants, which cannot change any result, are listed with the argument and",
        "not counted.",
        "",
        "The list of mutants is curated by hand rather than generated by a tool such as mutmut",
        "or cosmic-ray: those rewrite modules in place and rely on re-importing them, while",
        "numba's on-disk cache keeps a compiled caller with its old callee when only the",
        "callee's file changed, so kernel mutants would silently run unmutated code. The",
        "script runs each mutant in a scratch copy of the repository (kept between runs and",
        "synchronised at start) with its own `NUMBA_CACHE_DIR`, and deletes the cache entries of",
        "the mutated module and of every module importing it, before and after the mutant.",
        "Each mutant runs the tests most related to its module first (`pytest -x`; a test",
        "written against that very bug, then the module's test files), then, if it survives",
        "them, the whole suite.",
        "",
        "Run it from the repository root: `python benchmarks/mutation.py` (all mutants; writes",
        "this file), `--list`, `--only ID`, `--jobs 2`, `--quick` (related tests only),",
        "`--resume` (reuse the kills recorded for the same `simcomp/` sources, and the",
        "survivals recorded for the same sources and tests). After a refactoring, a mutant",
        "whose snippet is gone shows as stale here; update its `old`/`new` text in the script.",
        "",
        "## Result",
        "",
        f"- mutants: {len(outcomes)} ({counted} counted, {len(stale)} stale, "
        f"{len(errors)} broken runs, {len(pending)} not run yet), plus {len(EQUIVALENT)} "
        f"equivalent (not run)",
        f"- **mutation score: {len(killed)} / {counted} = {score:.1f}%**"
        + (f" (of the mutants run so far; {len(pending)} not run)" if pending else ""),
        f"- time: {sum(o.seconds for o in outcomes) / 60:.1f} min summed over the mutants "
        f"(this invocation: {total / 60:.1f} min wall with {jobs} job(s), baseline run "
        f"{baseline:.0f} s), on {os.cpu_count()} cores, Python {platform.python_version()}",
        "- mode: " + ("`--quick`: only the related tests were run, so a survivor here may "
                      "still be killed by the whole suite (the score is a lower bound)"
                      if quick else "related tests first, the whole suite for their survivors")
        + ("; assembled with `--report` from the outcomes recorded by earlier runs on these "
           "same `simcomp/` sources (a kill stands while the sources are unchanged)"
           if report else ""),
        "",
    ]
    if survived:
        lines += ["## Survivors", "", "| mutant | file | bug |", "|---|---|---|"]
        lines += [f"| {o.mutant.id} | `{o.mutant.file}` | {o.mutant.why} |" for o in survived]
        lines.append("")
    else:
        lines += ["## Survivors", "", "None.", ""]
    if stale or errors:
        lines += ["## Stale mutants and broken runs", "", "| mutant | file | problem |",
                  "|---|---|---|"]
        lines += [f"| {o.mutant.id} | `{o.mutant.file}` | {o.detail} |" for o in stale + errors]
        lines.append("")
    lines += ["## Equivalent mutants (not counted)", "", "| mutant | file | change | why it "
              "cannot be detected |", "|---|---|---|---|"]
    for mut, argument in EQUIVALENT:
        lines.append(f"| {mut.id} | `{mut.file}` | {mut.why} | {argument} |")
    lines += ["", "## Every mutant", "",
              "| mutant | file | bug | result | killed by | phase | seconds |",
              "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        by = o.detail if o.result == "killed" else ""
        by = by.replace("|", "\\|")
        lines.append(f"| {o.mutant.id} | `{o.mutant.file}` | {o.mutant.why} | {o.result} | "
                     f"{'`' + by + '`' if by else ''} | {o.phase} | {o.seconds:.0f} |")
    lines.append("")
    return "\n".join(lines)


def tree_digest(root: Path, prefix: str) -> str:
    """SHA-256 over the files under ``prefix`` (paths and contents)."""
    h = hashlib.sha256()
    for rel, path in sorted(_tree_files(root).items()):
        if rel.startswith(prefix):
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def mutant_key(m: Mutant) -> str:
    """What identifies a mutant's code change (its test list is only an order hint)."""
    return hashlib.sha256(repr((m.file, m.old, m.new)).encode()).hexdigest()[:16]


def load_journal(path: Path, src: str, tests: str, quick: bool) -> dict[str, Outcome]:
    """Outcomes recorded by earlier runs that still hold for this source and these tests.

    A kill stands while simcomp/ is unchanged (tests are only ever added); a
    survival only while the tests are unchanged too, and a --quick survival only
    for another --quick run.
    """
    by_id = {m.id: m for m in MUTANTS}
    found: dict[str, Outcome] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        m = by_id.get(e.get("id"))
        if m is None or e.get("key") != mutant_key(m) or e.get("src") != src:
            continue
        if e["result"] == "killed" or (e["result"] == "survived" and e.get("tests") == tests
                                       and (quick or not e.get("quick"))):
            found[m.id] = Outcome(m, e["result"], e["detail"], e["phase"], e["seconds"])
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="ID",
                        help="run only this mutant (repeatable; a prefix such as K0 works)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--jobs", type=int, default=1, choices=(1, 2),
                        help="mutants run at a time (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="related tests only: no whole-suite pass for survivors")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per pytest call (default 3x the baseline run + 120)")
    parser.add_argument("--baseline", choices=("full", "related", "none"), default="full",
                        help="check the unmutated suite first: the whole suite (default), only "
                             "the chosen mutants' related files, or not at all")
    parser.add_argument("--resume", action="store_true",
                        help="reuse outcomes of earlier runs that still hold (kills while "
                             "simcomp/ is unchanged; survivals while the tests are unchanged too)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: write docs/testing.md from the recorded outcomes "
                             "(as --resume would reuse them; the others show as not run)")
    parser.add_argument("--merge", type=Path, action="append", default=[], metavar="JOURNAL",
                        help="also read the outcomes recorded in another scratch's "
                             "outcomes.jsonl (repeatable)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the scratch copies and their numba caches live (kept "
                             "between runs; default: a directory in the system's temp dir)")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTANTS] + [m.id for m, _ in EQUIVALENT]
    if len(set(ids)) != len(ids):
        raise SystemExit("mutation.py: duplicate mutant ids")
    if args.list:
        for m in MUTANTS:
            print(f"{m.id:28} {status_of(m):26} {m.file}: {m.why}")
        for m, _ in EQUIVALENT:
            print(f"{m.id:28} {'equivalent, ' + status_of(m):26} {m.file}: {m.why}")
        return 0
    chosen = list(MUTANTS)
    if args.only:
        chosen = [m for m in MUTANTS if any(m.id.startswith(p) for p in args.only)]
        if not chosen:
            print(f"mutation.py: no mutant matches {args.only}; see --list", file=sys.stderr)
            return 2
    for mut, _ in EQUIVALENT:
        if status_of(mut) != "ok":
            print(f"mutation.py: equivalent mutant {mut.id} is {status_of(mut)}", file=sys.stderr)

    t0 = time.perf_counter()
    tag = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]
    base = args.scratch or Path(tempfile.gettempdir()) / f"simcomp-mutation-{tag}"
    slots = [] if args.report else [Slot(base, i) for i in range(args.jobs)]
    # Baseline: the unmutated tests must pass (this also fills each slot's numba cache).
    baseline = 0.0
    if args.baseline != "none" and not args.report:
        files = ([] if args.baseline == "full"
                 else sorted({f for m in chosen for f in m.tests}))
        print(f"baseline: {'whole suite' if not files else ' '.join(files)} "
              f"in {len(slots)} slot(s) ...", flush=True)
        with cf.ThreadPoolExecutor(len(slots)) as pool:
            base_runs = list(pool.map(lambda s: s.pytest(files, 7200), slots))
        for code, out, _ in base_runs:
            if code != 0:
                print(f"mutation.py: the unmutated tests fail ({_first_failure(out)}); "
                      "fix them first", file=sys.stderr)
                return 1
        baseline = max(sec for _, _, sec in base_runs)
    timeout = args.timeout or (3 * baseline + 120 if args.baseline == "full" else 3600)
    print(f"baseline {baseline:.0f} s; per-run timeout {timeout:.0f} s; scratch {base}",
          flush=True)

    free: queue.Queue = queue.Queue()
    for slot in slots:
        free.put(slot)

    def work(mutant: Mutant) -> Outcome:
        slot = free.get()
        try:
            return run_mutant(slot, mutant, args.quick, timeout)
        finally:
            free.put(slot)

    journal = base / "outcomes.jsonl"
    src, tests = tree_digest(ROOT, "simcomp/"), tree_digest(ROOT, "tests/")
    outcomes: dict[str, Outcome] = {}
    if args.resume or args.report:
        for path in args.merge + [journal]:
            outcomes.update(load_journal(path, src, tests, args.quick))
    outcomes = {k: v for k, v in outcomes.items() if any(m.id == k for m in chosen)}
    if outcomes:
        print(f"reusing {len(outcomes)} recorded outcome(s) (--resume)", flush=True)

    def write_doc():
        if not args.only:
            ordered = [outcomes.get(m.id) or Outcome(m, "not run") for m in chosen]
            DOC.write_text(render(ordered, baseline, time.perf_counter() - t0, args.jobs,
                                  args.quick, args.report), encoding="utf-8")

    todo = [] if args.report else [m for m in chosen if m.id not in outcomes]
    with cf.ThreadPoolExecutor(max(1, len(slots))) as pool:
        # Kernel mutants last: they recompile most of the kernels (the slowest part).
        order = sorted(todo, key=lambda m: m.file.startswith("simcomp/kernels/"))
        futures = {pool.submit(work, m): m for m in order}
        for done, fut in enumerate(cf.as_completed(futures), 1):
            o = fut.result()
            outcomes[o.mutant.id] = o
            with open(journal, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"id": o.mutant.id, "key": mutant_key(o.mutant),
                                         "src": src, "tests": tests, "quick": args.quick,
                                         "result": o.result, "detail": o.detail,
                                         "phase": o.phase, "seconds": o.seconds}) + "\n")
            print(f"[{done:2}/{len(todo)}] {o.mutant.id:28} {o.result:8} "
                  f"{o.phase:7} {o.seconds:5.0f} s  {o.detail[:90]}", flush=True)
            write_doc()
    ordered = [outcomes.get(m.id) or Outcome(m, "not run") for m in chosen]
    total = time.perf_counter() - t0
    killed = sum(o.result == "killed" for o in ordered)
    counted = sum(o.result in ("killed", "survived") for o in ordered)
    print(f"\nscore: {killed} / {counted} killed"
          + (f" = {100.0 * killed / counted:.1f}%" if counted else "")
          + f"; {total / 60:.1f} min")
    for o in ordered:
        if o.result != "killed":
            print(f"  {o.result}: {o.mutant.id} ({o.mutant.file}) {o.detail}")
    if not args.only:
        write_doc()
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
