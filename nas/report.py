"""Tables of what the store holds: all studies, and one study's best trials."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from nas import store
from nas.store import violation

if TYPE_CHECKING:
    import optuna


# cost column -> the trial user attribute holding it
COST_ATTRS = {"params": "params", "flops": "flops", "latency": "latency_ms"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def studies_table(storage: optuna.storages.BaseStorage) -> Table:
    """One row per study: space, objectives, trial counts by state, best value."""
    table = Table(title="Studies")
    for column in (
        "study",
        "space",
        "objectives",
        "complete",
        "pruned",
        "failed",
        "running",
        "best",
    ):
        table.add_column(column)
    for summary in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(summary.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts = Counter(t.state.name for t in trials)
        identity = summary.user_attrs.get(store.ATTR_IDENTITY, {})
        objectives = identity.get("objectives") if isinstance(identity, dict) else None
        best = "-"
        complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
        if complete:
            # The first objective is accuracy (maximised) in every nas study.
            top = max(complete, key=lambda t: t.values[0])
            best = f"{top.values[0]:.4f} (#{top.number})"
        row = [
            summary.study_name,
            str(summary.user_attrs.get(store.ATTR_SPACE, "?")),
            ",".join(map(str, objectives or [])),
            str(counts["COMPLETE"]),
            str(counts["PRUNED"]),
            str(counts["FAIL"]),
            str(counts["RUNNING"]),
            best,
        ]
        table.add_row(*map(Text, row))
    return table


def _dominates(a: list[float], b: list[float], signs: list[float]) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere."""
    pairs = [(x * s, y * s) for x, y, s in zip(a, b, signs, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def best_trials(study: optuna.Study, top: int = 10) -> list[optuna.trial.FrozenTrial]:
    """The trials worth showing, among those meeting the study's constraints.

    Multi-objective: the Pareto front, cheapest first (so accuracy rises down the table).
    Single objective: the ``top`` most accurate.
    """
    complete = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.values and violation(t) == 0
    ]
    if len(study.directions) == 1:
        return sorted(complete, key=lambda t: t.values[0], reverse=True)[:top]
    signs = [1.0 if d.name == "MAXIMIZE" else -1.0 for d in study.directions]
    front = [
        t for t in complete if not any(_dominates(o.values, t.values, signs) for o in complete)
    ]
    # Samplers may propose a child again; list each architecture once (its first trial).
    unique: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in sorted(front, key=lambda t: t.number):
        unique.setdefault(str(trial.user_attrs.get("arch", trial.number)), trial)
    return sorted(unique.values(), key=lambda t: (t.values[1], -t.values[0]))


def best_table(study: optuna.Study, top: int = 10) -> Table:
    """The best (or Pareto-optimal) trials with their objectives, costs and architectures."""
    multi = len(study.directions) > 1
    identity = study.user_attrs.get(store.ATTR_IDENTITY, {})
    names = identity.get("objectives") if isinstance(identity, dict) else None
    if not isinstance(names, list) or len(names) != len(study.directions):
        names = [f"objective{i}" for i in range(len(study.directions))]
    title = "Pareto front" if multi else f"Best {top} trials"
    table = Table(title=f"{title} of {study.study_name}")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(str(name), justify="right")
    for extra in COST_ATTRS:
        if extra not in names:
            table.add_column(extra, justify="right")
    table.add_column("architecture", overflow="fold")
    for trial in best_trials(study, top):
        row = [str(trial.number)] + [_fmt(v) for v in trial.values]
        row += [
            _fmt(trial.user_attrs.get(attr))
            for extra, attr in COST_ATTRS.items()
            if extra not in names
        ]
        row.append(str(trial.user_attrs.get("arch_str", "?")))
        table.add_row(*map(Text, row))  # Text: architecture strings hold [brackets]
    return table


def supernet_summary(study: optuna.Study) -> str | None:
    """One line on the study's supernet training, or None for stand-alone studies."""
    reports = study.user_attrs.get(store.ATTR_SUPERNET)
    if not isinstance(reports, list) or not reports or not isinstance(reports[-1], dict):
        return None
    last = reports[-1]
    try:
        epochs, biggest = int(last["epoch"]), float(last["biggest_accuracy"])
        smallest = float(last["smallest_accuracy"])
    except (KeyError, TypeError, ValueError):  # stored values are untrusted
        return None
    return (
        f"supernet: {epochs} epochs; validation accuracy of the biggest child "
        f"{biggest:.4f}, smallest {smallest:.4f}"
    )
