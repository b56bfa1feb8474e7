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

    def line(label, st):
        return f"{label:<{width}}" + "".join(f"{cell(st):>{w}}" for _, w, cell in _COLUMNS)

    total = _stats(result.rows)
    lines = [
        f"sweep: {result.total} runs ({len(plan.points)} grid "
        f"point{'s' * (len(plan.points) != 1)} x "
        f"{plan.seeds} seed{'s' * (plan.seeds != 1)}): {result.ran} run now, {result.done_before} "
        f"from earlier records, {total['not_ok']} not ok; {result.seconds:.1f} s",
        "",
        f"{'grid point':<{width}}" + "".join(f"{head:>{w}}" for head, w, _ in _COLUMNS),
    ]
    lines += [line(label, _stats(rows)) for label, rows in groups]
    lines.append(line("all", total))
    lines += [
        "",
        "(winner: the modality the joint network learned first, most often, and in how many "
        "runs; as predicted: runs whose measured winner is the predicted one; gap: joint test "
        "error minus the best uni-modal test error, so joint loses when it is positive, with the "
        "standard error of its mean over the point's runs; co-learned: runs whose joint network "
        "learned every modality within train.steps; joint "
        "error, best alone: mean test errors of the joint and the best uni-modal network)",
        f"results in {result.results_path} ({result.total} rows), {result.sweep_json_path}, "
        f"{result.out / Store.RUNS}/ (one record per run)",
    ]
    return "\n".join(lines)
