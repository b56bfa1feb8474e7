"""The table ``simcomp sweep`` prints: per grid point and overall, measured against predicted."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .store import Store

__all__ = ["sweep_report"]


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _stderr(values: list) -> float | None:
    """Standard error of the mean (None below two values)."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return (var / len(values)) ** 0.5


def _is_fusion(row: dict[str, Any]) -> bool:
    """A fusion-engine row (it has a final loss; the original learner's rows do not)."""
    return row.get("final_loss_joint") is not None


def _names(rows: list[dict[str, Any]]) -> list[str]:
    """The modality names of the fusion rows' half_step columns, in column order."""
    prefix = "half_step_joint_"
    names: list[str] = []
    for row in rows:
        for key in row:
            if key.startswith(prefix) and key[len(prefix):] not in names:
                names.append(key[len(prefix):])
    return names


def _fusion_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fusion engine's quantities over the fusion rows: first learned against the theory's
    first, mean half steps measured and predicted, their ratio, the misattribution."""
    fusion = [r for r in rows if _is_fusion(r)]
    names = _names(fusion)
    winners = Counter(r.get("winner_joint") or "none" for r in fusion)
    top = sorted(winners.items(), key=lambda kv: (-kv[1], kv[0]))
    predicted = [r for r in fusion if r.get("predicted_winner_joint") is not None]

    def halves(key):
        means = [_mean([r.get(f"{key}_joint_{n}") for r in fusion]) for n in names]
        return "/".join(_fmt(m, ".0f") for m in means) if names else "-"

    return {
        "f_runs": len(fusion),
        "f_winner": f"{top[0][0]} {top[0][1]}/{len(fusion)}" if top else "-",
        "f_match": sum(1 for r in predicted
                       if r.get("winner_joint") == r.get("predicted_winner_joint")),
        "f_predicted": len(predicted),
        "f_names": "/".join(names),
        "f_halves": halves("half_step"),
        "f_pred_halves": halves("predicted_half_step"),
        "f_ratio": _mean([r.get("half_step_ratio_joint") for r in fusion]),
        "f_pred_ratio": _mean([r.get("predicted_half_step_ratio_joint") for r in fusion]),
        "f_mis": _mean([r.get("misattribution_joint") for r in fusion]),
        "f_pred_mis": _mean([r.get("predicted_misattribution_joint") for r in fusion]),
    }


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    with_joint = [r for r in rows if r.get("test_error_joint") is not None]
    gaps = [r["gap"] for r in rows if r.get("gap") is not None]
    colearned = [r.get("co_learned_joint") for r in with_joint
                 if r.get("co_learned_joint") is not None]
    winners = Counter(r.get("winner_joint") or "none" for r in with_joint)
    top = sorted(winners.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "runs": len(rows),
        "not_ok": sum(1 for r in rows if r.get("status") != "ok"),
        "joint": len(with_joint),
        "winner": f"{top[0][0]} {top[0][1]}/{len(with_joint)}" if top else "-",
        "match": sum(1 for r in with_joint
                     if r.get("winner_joint") == r.get("predicted_winner_joint")),
        "gap": _mean(gaps),
        "gap_se": _stderr(gaps),
        "gaps": len(gaps),
        "colearned": sum(1 for c in colearned if c in (True, 1, "True", "true")),
        "colearned_n": len(colearned),
        "loses": sum(1 for g in gaps if g > 0),
        "err_joint": _mean([r.get("test_error_joint") for r in rows]),
        "err_best": _mean([r.get("best_unimodal_test_error") for r in rows]),
        **_fusion_stats(rows),
    }


# (header, width, cell of a stats dict)
_COLUMNS = (
    ("runs", 6, lambda st: str(st["runs"])),
    ("winner", 12, lambda st: st["winner"]),
    ("as predicted", 14, lambda st: f"{st['match']}/{st['joint']}" if st["joint"] else "-"),
    ("mean gap +- se", 18, lambda st: _fmt(st["gap"], "+.4f")
     + ("" if st["gap_se"] is None else f" +-{st['gap_se']:.4f}")),
    ("co-learned", 12, lambda st: f"{st['colearned']}/{st['colearned_n']}"
     if st["colearned_n"] else "-"),
    ("joint loses", 13, lambda st: f"{st['loses']}/{st['gaps']}" if st["gaps"] else "-"),
    ("joint error", 13, lambda st: _fmt(st["err_joint"], ".4f")),
    ("best alone", 12, lambda st: _fmt(st["err_best"], ".4f")),
)


# The fusion engine's columns (docs/fusion.md), shown when the sweep has fusion-engine runs.
_FUSION_COLUMNS = (
    ("runs", 6, lambda st: str(st["f_runs"])),
    ("first learned", 15, lambda st: st["f_winner"]),
    ("as predicted", 14, lambda st: f"{st['f_match']}/{st['f_predicted']}"
     if st["f_predicted"] else "-"),
    ("half steps", 14, lambda st: st["f_halves"]),
    ("predicted", 14, lambda st: st["f_pred_halves"]),
    ("ratio", 9, lambda st: _fmt(st["f_ratio"], ".3f")),
    ("predicted", 11, lambda st: _fmt(st["f_pred_ratio"], ".3f")),
    ("misattribution", 16, lambda st: _fmt(st["f_mis"], "+.3f")),
    ("predicted", 11, lambda st: _fmt(st["f_pred_mis"], "+.3f")),
)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def sweep_report(result, max_points: int = 20) -> str:
    """The summary of a :class:`~simcomp.sweep.run.SweepResult`: per grid point (up to
    ``max_points``) and overall."""
    plan = result.plan
    groups = []
    if 1 < len(plan.points) <= max_points:
        per = plan.seeds
        for p, point in enumerate(plan.points):
            label = " ".join(f"{key}={value}" for key, value in point)
            groups.append((label, result.rows[p * per:(p + 1) * per]))
    width = max([len(label) for label, _ in groups] + [12]) + 2
    n_fusion = sum(1 for r in result.rows if _is_fusion(r))
    columns = (() if n_fusion == len(result.rows) else _COLUMNS) + (
        _FUSION_COLUMNS if n_fusion else ())

    def line(label, st):
        return f"{label:<{width}}" + "".join(f"{cell(st):>{w}}" for _, w, cell in columns)

    total = _stats(result.rows)
    lines = [
        f"sweep: {result.total} runs ({len(plan.points)} grid "
        f"point{'s' * (len(plan.points) != 1)} x "
        f"{plan.seeds} seed{'s' * (plan.seeds != 1)}): {result.ran} run now, {result.done_before} "
        f"from earlier records, {total['not_ok']} not ok; {result.seconds:.1f} s",
        "",
        f"{'grid point':<{width}}" + "".join(f"{head:>{w}}" for head, w, _ in columns),
    ]
    lines += [line(label, _stats(rows)) for label, rows in groups]
    lines.append(line("all", total))
    legend = []
    if n_fusion < len(result.rows):
        legend.append(
            "(winner: the modality the joint network learned first, most often, and in how many "
            "runs; as predicted: runs whose measured winner is the predicted one; gap: joint test "
            "error minus the best uni-modal test error, so joint loses when it is positive, with "
            "the standard error of its mean over the point's runs; co-learned: runs whose joint "
            "network learned every modality within train.steps; joint error, best alone: mean "
            "test errors of the joint and the best uni-modal network)")
    if n_fusion:
        legend.append(
            f"(fusion engine, {n_fusion} runs: first learned: the modality whose half step "
            "comes first, most often; as predicted: runs where it is the one with the smallest "
            "predicted half step, out of the runs with a prediction; half steps and predicted: "
            f"mean half step per modality ({total['f_names'] or '-'}) measured and predicted; "
            "ratio: mean last over first half step, measured and predicted; misattribution: "
            "mean, measured and predicted; docs/fusion.md)")
    lines += [""] + legend + [
        f"results in {result.results_path} ({result.total} rows), {result.sweep_json_path}, "
        f"{result.out / Store.RUNS}/ (one record per run)",
    ]
    return "\n".join(lines)
