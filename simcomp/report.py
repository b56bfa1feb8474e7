"""Plain-text reports of summaries and predictions, for people (scripts read summary.json)."""

from __future__ import annotations

from typing import Any

__all__ = ["simulate_report", "theory_report", "fmt_step"]


def fmt_step(step) -> str:
    if step is None:
        return "never"
    if isinstance(step, float):
        return f"{step:.1f}"
    return str(step)


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _fmt_rate(kappa) -> str:
    """A rate, or the pair of per-bank rates (c = +1 / c = -1) of the class-banks learner."""
    if isinstance(kappa, list):
        return "/".join(format(k, ".3g") for k in kappa)
    return format(kappa, ".4g")


def _noisy(run: dict[str, Any], mod: str) -> str:
    noisy = run.get("race_learned_step_noisy")
    return "-" if noisy is None else fmt_step(noisy[mod])


def simulate_report(summary: dict[str, Any], out_dir: str | None = None) -> str:
    """What ``simcomp simulate`` prints: per run, per modality, then the comparison."""
    cfg = summary["config"]
    model, train = cfg["model"], cfg["train"]
    lines = [
        f"simcomp {summary['simcomp_version']}  seed {summary['seed']}  mode {train['mode']}  "
        f"{model['learner']} learner (q={model['q']:g}, rho={model['rho']:g}, m={model['width']})  "
        f"lr {train['lr']:g}, {train['steps']} steps",
        "",
        f"{'run':<16}{'modality':<10}{'pi':>7}{'Gamma(0)':>10}{'learned':>9}"
        f"{'race 5.2':>10}{'+noise':>8}{'reduced':>9}{'final L':>9}{'err alone':>11}",
    ]
    for name, run in summary["runs"].items():
        for k, mod in enumerate(run["trained_modalities"]):
            lines.append(
                f"{name if k == 0 else '':<16}{mod:<10}"
                f"{run['presence_fraction'][mod]:>7.3f}"
                f"{run['initial_leading_alignment'][mod]:>10.4f}"
                f"{fmt_step(run['learned_step'][mod]):>9}"
                f"{fmt_step(run['race_learned_step'][mod]):>10}"
                f"{_noisy(run, mod):>8}"
                f"{fmt_step(run['predicted_learned_step'][mod]):>9}"
                f"{_fmt(run['final_leading_alignment'][mod], '.3f'):>9}"
                f"{_fmt(run['modality_test_error'][mod]):>11}"
            )
        status = "" if run["status"] == "ok" else f"  [{run['status']} at step {run['steps_run']}]"
        pred_err = run["predicted_test_error"]
        lines.append(
            f"{'':<16}winner {run['winner'] or 'none'} (predicted {run['predicted_winner'] or 'none'})"
            f"  test error {_fmt(run['test_error'])} (predicted {_fmt(pred_err['noiseless'])} "
            f"noiseless, {_fmt(pred_err['coin_flip'])} coin flip)  train loss "
            f"{_fmt(run['train_loss'])}{status}"
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
            f"joint test error {comp['joint_test_error']:.4f} vs best uni-modal "
            f"({comp['best_unimodal']}) {comp['best_unimodal_test_error']:.4f}: "
            f"gap {comp['gap']:+.4f}, {verdict}",
        ]
    lines.append(
        "(learned: measured step; race 5.2: predicted by the leading-neuron race; +noise: the "
        "same race with the noise's share of the pre-activation; reduced: predicted by the "
        "reduced dynamics; never = not by the horizon)"
    )
    if out_dir:
        lines.append(f"results in {out_dir}/ (summary.json, config.toml, <run>/trace.npz, figures/)")
    return "\n".join(lines)


def theory_report(cfg, rows: list[dict[str, Any]]) -> str:
    """What ``simcomp theory`` prints: one block per planned run."""
    lines = [
        f"predictions for seed {cfg.seed}: {cfg.model.learner} learner, q={cfg.model.q:g}, "
        f"rho={cfg.model.rho:g}, lr {cfg.train.lr:g}, horizon {cfg.train.steps} steps",
        "",
        f"{'run':<16}{'modality':<10}{'pi':>7}{'Gamma(0)':>10}{'kappa':>10}"
        f"{'race 5.2':>10}{'reduced':>9}{'by T':>6}",
    ]
    for row in rows:
        pred = row["prediction"]
        for k, mod in enumerate(row["trained_modalities"]):
            lines.append(
                f"{row['run'] if k == 0 else '':<16}{mod:<10}"
                f"{row['presence_fraction'][mod]:>7.3f}"
                f"{row['initial_leading_alignment'][mod]:>10.4f}"
                f"{_fmt_rate(pred['kappa'][mod]):>10}"
                f"{fmt_step(pred['race_learned_step'][mod]):>10}"
                f"{fmt_step(pred['predicted_learned_step'][mod]):>9}"
                f"{'yes' if pred['predicted_learned_step'][mod] is not None else 'no':>6}"
            )
        lines.append(
            f"{'':<16}predicted winner {pred['predicted_winner'] or 'none'}; test error "
            f"{_fmt(pred['test_error_noiseless'])} noiseless, "
            f"{_fmt(pred['test_error_coinflip'])} coin flip"
        )
    return "\n".join(lines)
