"""Plain-text reports of summaries and predictions, for people (scripts read summary.json)."""

from __future__ import annotations

from typing import Any

from .registry import label

__all__ = ["simulate_report", "theory_report", "fmt_step"]


def fmt_step(step) -> str:
    if step is None:
        return "never"
    if isinstance(step, float):
        return f"{step:.1f}" if abs(step) < 1e6 else f"{step:.3g}"
    return str(step)


def _fmt(value, spec: str = ".4f") -> str:
    """``value`` formatted, "-" when missing; huge or non-finite values in short form,
    so that a diverged run's columns stay readable."""
    if value is None:
        return "-"
    if isinstance(value, float) and not (abs(value) < 1e6):
        return format(value, ".3g")
    return format(value, spec)


def _fmt_rate(kappa) -> str:
    """A rate, or the pair of per-bank rates (c = +1 / c = -1) of the class-banks learner."""
    if isinstance(kappa, list):
        return "/".join(format(k, ".3g") for k in kappa)
    return format(kappa, ".4g")


def _noisy(run: dict[str, Any], mod: str, noise: dict[str, float]) -> str:
    """The noisy race's step; "-" when no trained modality has noise (the plain race applies)."""
    if not any(noise.get(name, 0.0) > 0 for name in run["trained_modalities"]):
        return "-"
    return fmt_step(run["race_learned_step_noisy"][mod])


def _correlation_note(data: dict[str, Any]) -> str:
    """The header's mention of correlated presence coins; nothing when they are independent."""
    c = data.get("presence_correlation", 0.0)
    return "" if c == 0.0 else f"  presence correlation {c:g}"


def simulate_report(summary: dict[str, Any], out_dir: str | None = None) -> str:
    """What ``simcomp simulate`` prints: per run, per modality, then the comparison."""
    cfg = summary["config"]
    model, train = cfg["model"], cfg["train"]
    noise = {m["name"]: m["noise"] for m in cfg["data"]["modality"]}
    lines = [
        f"simcomp {summary['simcomp_version']}  seed {summary['seed']}  mode {train['mode']}  "
        f"{model['learner']} learner (q={model['q']:g}, rho={model['rho']:g}, m={model['width']})  "
        f"lr {train['lr']:g}, {train['steps']} steps" + _correlation_note(cfg["data"]),
        "",
        f"{'run':<16}{'modality':<10}{'presence':>9}{'align(0)':>10}{'learned':>9}"
        f"{'race':>9}{'noisy race':>12}{'predicted':>11}{'align(T)':>10}{'encoder err':>13}",
    ]
    for name, run in summary["runs"].items():
        for k, mod in enumerate(run["trained_modalities"]):
            lines.append(
                f"{name if k == 0 else '':<16}{mod:<10}"
                f"{_fmt(run['presence_fraction'][mod], '.3f'):>9}"
                f"{_fmt(run['initial_leading_alignment'][mod]):>10}"
                f"{fmt_step(run['learned_step'][mod]):>9}"
                f"{fmt_step(run['race_learned_step'][mod]):>9}"
                f"{_noisy(run, mod, noise):>12}"
                f"{fmt_step(run['predicted_learned_step'][mod]):>11}"
                f"{_fmt(run['final_leading_alignment'][mod], '.3f'):>10}"
                f"{_fmt(run['modality_test_error'][mod]):>13}"
            )
        method = run.get("method")
        if method not in (None, "none"):
            predicted = run.get("method_predicted_learned_step") or {}

            def measured(mod, run=run, method=method):
                # ume trains no joint network: its prediction is for the uni-modal runs
                if method != "ume":
                    return fmt_step(run["learned_step"][mod])
                alone = summary["runs"].get(f"unimodal-{mod}")
                return "-" if alone is None else fmt_step(alone["learned_step"][mod]) + " alone"

            steps = ", ".join(f"{mod} {measured(mod)} (predicted {fmt_step(predicted.get(mod))})"
                              for mod in run["trained_modalities"])
            lines.append(
                f"{'':<16}method {method}: its predictor's test error "
                f"{_fmt(run.get('method_test_error'))} (predicted "
                f"{_fmt(run.get('method_predicted_test_error'))}); learned steps {steps}; "
                f"every modality learned: {_yes(run.get('co_learned'))} (predicted "
                f"{_yes(run.get('method_predicted_co_learned'))})"
            )
        status = "" if run["status"] == "ok" else f"  [{run['status']} at step {run['steps_run']}]"
        lines.append(
            f"{'':<16}winner {run['winner'] or 'none'} (predicted {run['predicted_winner'] or 'none'})"
            f"  test error {_fmt(run['test_error'])} (expected {_fmt(run['expected_test_error'])}, "
            f"predicted {_fmt(run['predicted_test_error'])} by the {run['prediction_theory']} "
            f"theory)  train loss {_fmt(run['train_loss'])}{status}"
        )
    ens = summary.get("ensemble")
    if ens:
        lines.append(
            f"{'ensemble':<16}{'+'.join(ens['trained_modalities'])}: sum of the uni-modal "
            f"networks' outputs, test error {_fmt(ens['test_error'])} (predicted "
            f"{_fmt(ens.get('predicted_test_error'))} noiseless)"
        )
    comp = summary.get("comparison")
    if comp:
        verdict = (
            "the best uni-modal network beats the joint one"
            if comp["gap"] > 0
            else "joint training is at least as good as every uni-modal network"
        )
        lines += [
            "",
            f"joint test error {_fmt(comp['joint_test_error'])} vs best uni-modal "
            f"({comp['best_unimodal']}) {_fmt(comp['best_unimodal_test_error'])}: "
            f"gap {_fmt(comp['gap'], '+.4f')}, {verdict}",
            f"expected gap {_fmt(comp['expected_gap'], '+.4f')}, predicted gap "
            f"{_fmt(comp['predicted_gap'], '+.4f')} (plain joint training)"
            + ("" if comp.get("method_predicted_gap") is None or _joint_method(summary) == "none"
               else f", under method {label(_joint_method(summary))} "
                    f"{_fmt(comp['method_predicted_gap'], '+.4f')} (its predictor, noiseless)")
            + ("" if comp.get("tracked_gap") is None else
               f"; tracked gap {_fmt(comp['tracked_gap'], '+.4f')} (the run's own noise fed "
               "to the theory: a check of its decomposition, not a prediction)"),
        ]
        if comp.get("gap_to_ensemble") is not None:
            lines.append(
                f"method predictor's test error minus the ensemble's: "
                f"{comp['gap_to_ensemble']:+.4f} (positive: the uni-modal ensemble is better)"
            )
    lines.append(
        "(presence: share of the training samples in which the modality carries signal; "
        "align(0), align(T): its leading alignment at the start and at the end; learned: the "
        "step at which it was learned; race, noisy race, predicted: that step as predicted by "
        "the leading-neuron race, by the same race counting the noise, and by the run's theory "
        "(where a trained modality has noise or distractors, the noise-aware dynamics averaged "
        "over the noise's law -- initial weights and configuration only, never the drawn "
        "noise -- else the reduced dynamics; docs/theory.md); encoder err: test error of its encoder alone; "
        "expected: the exact expected test error of the trained weights; never: not within "
        "the steps run)"
    )
    if out_dir:
        lines.append(f"results in {out_dir}/ (summary.json, config.toml, <run>/trace.npz, figures/)")
    return "\n".join(lines)


def _joint_method(summary: dict[str, Any]) -> str:
    return (summary.get("runs", {}).get("joint") or {}).get("method") or "none"


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "no")


def theory_report(cfg, rows: list[dict[str, Any]], comparison: dict[str, Any] | None = None) -> str:
    """What ``simcomp theory`` prints: one block per planned run (rows of ``theory_summary``)."""
    lines = [
        f"predictions for seed {cfg.seed}: {cfg.model.learner} learner, q={cfg.model.q:g}, "
        f"rho={cfg.model.rho:g}, lr {cfg.train.lr:g}, horizon {cfg.train.steps} steps"
        + _correlation_note({"presence_correlation": cfg.data.presence_correlation}),
        "",
        f"{'run':<16}{'modality':<10}{'presence':>9}{'align(0)':>10}{'rate':>10}"
        f"{'race':>9}{'reduced':>9}{'predicted':>11}{'by end':>8}{'encoder err':>13}",
    ]
    for row in rows:
        for k, mod in enumerate(row["trained_modalities"]):
            step = row["predicted_learned_step"][mod]
            lines.append(
                f"{row['run'] if k == 0 else '':<16}{mod:<10}"
                f"{_fmt(row['presence_fraction'][mod], '.3f'):>9}"
                f"{_fmt(row['initial_leading_alignment'][mod]):>10}"
                f"{_fmt_rate(row['kappa'][mod]):>10}"
                f"{fmt_step(row['race_learned_step'][mod]):>9}"
                f"{fmt_step(row['reduced_learned_step'][mod]):>9}"
                f"{fmt_step(step):>11}"
                f"{'yes' if step is not None else 'no':>8}"
                f"{_fmt(row['predicted_modality_test_error'][mod]):>13}"
            )
        lines.append(
            f"{'':<16}theory {row['prediction_theory']}: predicted winner "
            f"{row['predicted_winner'] or 'none'}, test error "
            f"{_fmt(row['predicted_test_error'])} (noiseless "
            f"{_fmt(row['predicted_test_error_noiseless'])}, coin flip "
            f"{_fmt(row['predicted_test_error_coin_flip'])})"
        )
        mp = row.get("method_prediction")
        if mp is not None and mp["method"] != "none":
            steps = ", ".join(f"{mod} {fmt_step(mp['predicted_learned_step'][mod])}"
                              for mod in row["trained_modalities"])
            note = "; DIVERGES (lower the method's weight)" if mp["diverged"] else ""
            lines.append(
                f"{'':<16}under method {label(mp['method'])}: learned steps {steps}; "
                f"every modality "
                f"learned by the horizon: {_yes(mp['co_learned'])}; its predictor's test error "
                f"{_fmt(mp['test_error_noiseless'])} noiseless{note}"
            )
    if comparison and comparison.get("predicted_gap") is not None:
        best = comparison["predicted_best_unimodal"]
        lines += ["", f"predicted gap (joint - best uni-modal, {best}): "
                      f"{_fmt(comparison['predicted_gap'], '+.4f')} (plain joint training)"]
        if cfg.method.name != "none" and comparison.get("method_predicted_gap") is not None:
            lines[-1] += (f"; under method {label(cfg.method.name)}: "
                          f"{_fmt(comparison['method_predicted_gap'], '+.4f')} (its predictor, "
                          "noiseless)")
    lines.append(
        "(presence: share of the training samples in which the modality carries signal; "
        "align(0): its leading alignment at the start; rate: the growth rate kappa of that "
        "alignment (c=+1/c=-1 for class banks); race, reduced: the step at which it is learned "
        "as predicted by the leading-neuron race and by the noise-free reduced dynamics; "
        "predicted: by the run's theory (noise_aware -- the noise-aware dynamics averaged over "
        "the noise's law -- where a trained modality has noise or distractors, else reduced; "
        "docs/theory.md); by end: learned within train.steps; "
        "encoder err: predicted test error of its encoder alone; never: not within the steps run)"
    )
    return "\n".join(lines)
