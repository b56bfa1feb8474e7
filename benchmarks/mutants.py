"""The mutants of benchmarks/mutation.py: a curated list of plausible bugs in simcomp.

Each :class:`Mutant` is an exact snippet of a source file, its replacement,
why the bug is plausible and the test files most related to it (run first).
A snippet must occur exactly once in its file; after a refactoring, check
with ``python benchmarks/mutation.py --list`` that none is stale, and update
``file``, ``old`` and ``new`` of those that are.  The runner, the numba-cache
handling and the report are in ``mutation.py`` and ``mutation_report.py``.
"""

from __future__ import annotations

import dataclasses


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
# In the order the tests had when they were one file: race, reduced dynamics, the rest.
T_THEORY = ("tests/test_theory_race.py", "tests/test_theory_reduced.py", "tests/test_theory.py",
            "tests/test_theory_golden.py")
T_DATA = ("tests/test_data.py", "tests/test_golden.py")
T_CONFIG = ("tests/test_config.py", "tests/test_methods_config.py")
T_SWEEP = ("tests/test_sweep.py", "tests/test_sweep_resume.py", "tests/test_sweep_execute.py")
T_RESULTS = ("tests/test_results.py",)
T_METHODS = ("tests/test_methods.py", "tests/test_shapley.py")
T_MORE = ("tests/test_methods_more.py", "tests/test_methods_more_reference.py")
T_MORE_B = ("tests/test_methods_more_b.py",)
# the compiled stage of ogm_boost, pmr, inforeg and opm against the NumPy reference
T_JOIN_KERNEL = ("tests/test_methods_join.py::test_kernel_rule_equals_the_numpy_reference",)
T_PRESENCE = ("tests/test_presence.py", "tests/test_theory_correlated.py")
T_CALIBRATE = ("tests/test_calibrate.py", "tests/test_methods_more.py")

TT, TH = "tests/test_train.py::", "tests/test_theory.py::"
THR = "tests/test_theory_reduced.py::"
SW, DA = "tests/test_sweep.py::", "tests/test_data.py::"
SWR = "tests/test_sweep_resume.py::"
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
      "er = eta * par[P_STEP, r]", "er = eta * par[P_STEP, 0]",
      "lr_scale: the first modality's factor c_r applied to every modality", T_RULES),
    M("K10-k-r-modality", "simcomp/kernels/rules.py",
      "kr = stats[S_K, r]", "kr = stats[S_K, 0]",
      "ogm/agm: the modulation k_r of modality 0 applied to every modality", T_RULES),
    M("K11-dropout-rescale", "simcomp/kernels/rules.py",
      "keep = keep / (1.0 - par[P_DROP, r])", "keep = keep / (1.0 - par[P_DROP, 0])",
      "dropout: the rescale uses the first modality's drop rate", 
      ("tests/test_rules.py::test_dropout_rescale_uses_each_modalitys_own_rate",) + T_RULES),
    M("K12-aux-weight", "simcomp/kernels/rules.py",
      "par[P_AUX_WEIGHT, r] * _dlogistic(yj, phi[r, jj])",
      "par[P_AUX_WEIGHT, 0] * _dlogistic(yj, phi[r, jj])",
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
      "mix = None if predictor is None else self.rule.setting(predictor)",
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
      (THR + "test_reduced_learned_check_counts_an_alignment_exactly_at_the_threshold",)
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
    M("C04-drop-one", "simcomp/registry/spec.py",
      "(value >= self.hi if self.hi_open else value > self.hi)",
      "(value > self.hi if self.hi_open else value > self.hi)",
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
      "elif record.get(\"checksum\") != _checksum_or_none(record):",
      "elif record.get(\"checksum\") is None:",
      "a tampered record accepted as long as it has a checksum",
      (SWR + "test_tampered_record_is_recomputed",)
      + T_SWEEP),
    M("S06-grid-digits", "simcomp/sweep/grid.py",
      "return [float(f\"{v:.12g}\") for v in values]", "return [float(v) for v in values]",
      "linspace values keep their binary noise (1.4000000000000001)",
      (SW + "test_linspace_floats_and_lists", SW + "test_linspace_values_are_the_decimals_meant",)
      + T_SWEEP),
    M("S07-skip-done", "simcomp/sweep/run.py",
      "pending = [run for run in plan.runs if run.run_id not in records]",
      "pending = list(plan.runs)",
      "a resumed sweep runs the finished runs again", (SWR + "test_rerun_and_deleted_records",)
      + T_SWEEP),
    # ---------------------------------------------------------------- results
    M("E01-csv-missing", "simcomp/columns.py",
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
    M("E06-csv-bool", "simcomp/columns.py",
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
    # ---------------------------------------------------------------- survivors of a later round
    M("K14-mmpareto-conflict", "simcomp/kernels/rules.py",
      "k0 = (uu - mu) / diff if diff > 0.0 else 0.5",
      "k0 = (mm - mu) / diff if diff > 0.0 else 0.5",
      "mmpareto's min-norm weight for conflicting gradients from the wrong inner product",
      ("tests/test_rules.py::test_mmpareto_weights_conflicting_gradients_by_the_min_norm_point",
       "tests/test_methods_join.py::"
       "test_kernel_mmpareto_conflict_branch_equals_the_numpy_reference") + T_RULES),
    M("H12-noisy-spread-own", "simcomp/theory/race.py",
      "tau = noise[e] * np.sqrt(lam * lam + perp[e] * perp[e])",
      "tau = noise[e] * np.sqrt(perp[e] * perp[e])",
      "the noisy race's spread without the neuron's own alignment",
      ("tests/test_theory_race.py::test_noisy_race_spread_counts_the_neurons_own_alignment",)
      + T_THEORY),
    M("E08-regime-all", "simcomp/theory/noisy_dynamics.py",
      "    return any(cfg.data.modality[r].noise > 0.0",
      "    return all(cfg.data.modality[r].noise > 0.0",
      "the noise-aware theory only when every trained modality is noisy (instead of any)",
      ("tests/test_results.py::test_the_figure_draws_the_theory_the_results_use",) + T_RESULTS),
    # ---------------------------------------------------------------- this round's new code
    # (the method registry and nine methods, correlated presence, calibrate, the fusion
    # engine's population GD theory and mmcosine recursion, the LLVM-IR hot loops)
    M("N01-ogm-boost-leader", "simcomp/kernels/rules.py",
      "k = hyper[H_BOOST] if (active and rho < 1.0) else 1.0",
      "k = hyper[H_BOOST] if (active and rho > 1.0) else 1.0",
      "ogm_boost boosts the modality ahead (rho_r > 1) instead of the one behind",
      T_JOIN_KERNEL + T_MORE),
    M("N02-pmr-margin-sign", "simcomp/kernels/rules.py",
      "sp[jj] = np.float64(yb[jj]) * (r0 - r1)  # the margin Delta_j",
      "sp[jj] = np.float64(yb[jj]) * (r1 - r0)  # the margin Delta_j",
      "pmr's prototype margin with the two class prototypes' distances swapped",
      T_JOIN_KERNEL + T_MORE),
    M("N03-pmr-momentum-side", "simcomp/kernels/rules.py",
      "v = (1.0 - mom) * cm + mom * st[c * BM + bi] if ready else cm",
      "v = mom * cm + (1.0 - mom) * st[c * BM + bi] if ready else cm",
      "pmr's prototype refresh keeps 1 - momentum of the old prototype instead of momentum",
      T_JOIN_KERNEL + T_MORE),
    M("N04-opm-rescale-sum", "simcomp/kernels/rules.py",
      "g = 1.0 / (1.0 - theta / K)", "g = 1.0 / (1.0 - theta)",
      "opm rescales the kept outputs by 1 / (1 - sum q) instead of 1 / (1 - mean q)",
      T_JOIN_KERNEL + T_MORE),
    M("N05-opm-drops-the-laggard", "simcomp/kernels/rules.py",
      "g = math.tanh(max(stats[S_RATIO, r] - 1.0, 0.0))",
      "g = math.tanh(abs(stats[S_RATIO, r] - 1.0))",
      "opm's drop probability q_r > 0 for a modality behind too (|rho - 1| for max(rho - 1, 0))",
      T_JOIN_KERNEL + T_MORE),
    M("N06-opm-coin", "simcomp/kernels/rules.py",
      "if not (_uniform(key, t, 0, 0) < hyper[H_EXECUTE_PROB]):",
      "if not (_uniform(key, t, 0, 0) >= hyper[H_EXECUTE_PROB]):",
      "opm drops in a step with probability 1 - execute_prob instead of execute_prob",
      T_JOIN_KERNEL + T_MORE),
    M("N07-reconboost-q-of-all", "simcomp/kernels/rules.py",
      "u = np.float64(yb[jj]) * (F[jj] - phi[rs, jj])",
      "u = np.float64(yb[jj]) * F[jj]",
      "reconboost's boost weight (w1 - w2 q)/2 with q of the fused output, not of the others",
      T_MORE_B),
    M("N08-reconboost-stage-length", "simcomp/kernels/rules.py",
      "    if t % L < bs:\n        return (t // L) % K\n",
      "    if t % L <= bs:\n        return (t // L) % K\n",
      "reconboost boosts one step too many per stage (boost_steps + 1)",
      T_MORE_B),
    M("N09-greedy-window", "simcomp/kernels/rules.py",
      "if ctl[2] == hyper[H_WINDOW]:", "if ctl[2] > hyper[H_WINDOW]:",
      "greedy re-balances window + 1 steps per trigger",
      T_MORE_B),
    M("N10-greedy-others-mean", "simcomp/kernels/rules.py",
      "        M = tot - state[0, c]\n", "        M = tot\n",
      "greedy's re-balancing output adds the cared modality's own mean output to the others'",
      T_MORE_B),
    M("N11-gblending-weights-swapped", "simcomp/kernels/rules.py",
      "state[1, 0] * Fd[jj] + state[0, r] * _dlogistic(yj, phi[r, jj]))",
      "state[0, r] * Fd[jj] + state[1, 0] * _dlogistic(yj, phi[r, jj]))",
      "gblending: the fused head's weight on the uni-modal losses and the reverse",
      T_MORE_B),
    M("N12-gblending-overfit-squared", "simcomp/registry/gblending.py",
      "w = np.abs(G) / np.maximum(O * O, O2_FLOOR)",
      "w = np.abs(G) / np.maximum(np.abs(O), O2_FLOOR)",
      "gblending's weight |G| / |O| instead of |G| / O^2 (shared by the trainer and the theory)",
      ("tests/test_reference_methods_more_b.py::test_gblending_weights",) + T_MORE_B),
    M("N13-inforeg-window-ratio", "simcomp/kernels/rules.py",
      "kr = (tr1 - tr2) / tr1 if tr1 != 0.0 else 0.0\n            st[BMD + ring + 1] = kr",
      "kr = (tr1 - tr2) / tr2 if tr2 != 0.0 else 0.0\n            st[BMD + ring + 1] = kr",
      "inforeg's window statistic relative to the older window instead of the newer",
      T_JOIN_KERNEL + T_MORE),
    M("N14-relearning-strength-abs", "simcomp/registry/relearning.py",
      "return math.tanh(reset_scale * abs(purity_train - purity_holdout))",
      "return math.tanh(reset_scale * (purity_train - purity_holdout))",
      "relearning's reset strength negative when the held-out purity is the higher "
      "(shared by the trainer and the theory)",
      T_MORE_B + ("tests/test_reference_methods_more_b.py",)),
    M("N15-theory-extra-slots", "simcomp/theory/method_kernel.py",
      "\"opm\": (\"q_base\", \"execute_prob\"),",
      "\"opm\": (\"execute_prob\", \"q_base\"),",
      "the theory's settings array of opm in the wrong slot order (q_base read as execute_prob)",
      ("tests/test_methods_more_reference.py", "tests/test_method_kernel.py",
       "tests/test_theory_methods.py")),
    M("N16-theory-pmr-own-prototype", "simcomp/theory/method_kernel.py",
      "            own = 1 if y[p] > 0 else 0\n",
      "            own = 0 if y[p] > 0 else 1\n",
      "the theory's pmr: each pattern's own class prototype taken from the other class",
      ("tests/test_method_kernel.py", "tests/test_methods_more_reference.py")),
    M("N17-presence-common-factor", "simcomp/presence.py",
      "common = math.sqrt(max(0.0, 1.0 + (K - 1) * c))",
      "common = math.sqrt(max(0.0, 1.0 + c))",
      "correlated presence: the common factor right for K = 2 only (K - 1 pairs forgotten)",
      T_PRESENCE),
    M("N18-presence-factor-variance", "simcomp/presence.py",
      "below = normal_cdf((h[None, :] - root_c * t[:, None]) / root_1c)",
      "below = normal_cdf((h[None, :] - root_c * t[:, None]) / (1.0 - c))",
      "population weights of correlated presence with the variance 1 - c as the spread",
      T_PRESENCE),
    M("N19-calibrate-median", "simcomp/calibrate/answers.py",
      "return float(np.median(ok)), float(np.min(ok)), float(np.max(ok)), 0",
      "return float(np.mean(ok)), float(np.min(ok)), float(np.max(ok)), 0",
      "calibrate's gain summarised by the mean over the consistent set, not the median",
      ("tests/test_calibrate.py::"
       "test_a_gain_range_is_the_median_min_and_max_of_the_configurations_gains",)
      + T_CALIBRATE),
    M("N20-calibrate-joint-tolerance", "simcomp/calibrate/search.py",
      "checks[\"joint.accuracy\"] = np.abs(joint - meas.joint) <= tol + 1e-12",
      "checks[\"joint.accuracy\"] = np.abs(joint - meas.joint) <= 2 * tol + 1e-12",
      "calibrate's consistency check of the joint accuracy with the simulation's looser "
      "tolerance (2 tol)", T_CALIBRATE),
    M("N21-calibrate-verdict-median", "simcomp/calibrate/answers.py",
      "if low > 0.0 and median >= tol_points:", "if low > 0.0 and median > 0.0:",
      "calibrate says 'helps' for a median gain above 0 but within the tolerance",
      T_CALIBRATE),
    M("N22-fusion-gd-half-step", "simcomp/theory/fusion_gd.py",
      "halves[r] = step - 1 + (0.5 - f0) / (f1 - f0)",
      "halves[r] = step + (0.5 - f0) / (f1 - f0)",
      "the population GD theory's half step interpolated one step late",
      ("tests/test_theory_fusion_gd.py", "tests/test_fusion_api.py")),
    M("N23-fusion-gd-shared-grad", "simcomp/theory/fusion_gd.py",
      "acc += g[r] * fuse[r] * _prod_except(enc[r], -1)",
      "acc += g[r] * _prod_except(enc[r], -1)",
      "the shared layers' gradient without the fusion weight (only deeper-than-fusion nets)",
      ("tests/test_theory_fusion_gd.py", "tests/test_fusion_api.py")),
    M("N24-mmcosine-head-projection", "simcomp/theory/fusion_cosine.py",
      "* (hhat - cos[:, :, None] * uhat[None]), axis=0)",
      "* hhat, axis=0)",
      "mmcosine's recursion: the head's gradient without the projection off u (d cos / d u)",
      ("tests/test_fusion_mmcosine.py",)),
    M("N25-drive-partial-sum", "simcomp/theory/drive.py",
      "total = builder.fadd(builder.fadd(v[0], v[1]), builder.fadd(v[2], v[3]))",
      "total = builder.fadd(builder.fadd(v[0], v[1]), builder.fadd(v[2], v[2]))",
      "the drive's reduction tree adds the third vector of partial sums twice, the fourth never",
      ("tests/test_noisy_drive.py", "tests/test_noisy_dynamics.py")),
    M("N26-coefficients-ln2-lo", "simcomp/theory/coefficients.py",
      "r = builder.fsub(builder.fsub(x, builder.fmul(kf, c(_LN2_HI))), "
      "builder.fmul(kf, c(_LN2_LO)))",
      "r = builder.fsub(x, builder.fmul(kf, c(_LN2_HI)))",
      "the vector exp's argument reduction without the low part of ln 2 (Cody-Waite halved)",
      ("tests/test_noisy_coefficients.py", "tests/test_noisy_dynamics.py")),
)

# Mutants that cannot change any observable result: listed with the argument,
# checked to apply (so that a refactoring is noticed), never counted.
EQUIVALENT: tuple[tuple[Mutant, str], ...] = (
    (M("X01-presence-le", "simcomp/data.py",
       "presence[:, r] = (rng.random(n) < mod.presence).astype(np.int8)",
       "presence[:, r] = (rng.random(n) <= mod.presence).astype(np.int8)",
       "presence drawn with <= instead of <", T_DATA),
     "Independent presence (data.presence_correlation 0): Generator.random draws from the "
     "2^53 multiples of 2^-53 in [0, 1); the two "
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
