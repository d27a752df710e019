"""Tables of what the store holds: all studies, and one study's best trials."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from nas import store
from nas.core.errors import ConfigError
from nas.core.pareto import non_dominated
from nas.store import violation

if TYPE_CHECKING:
    import optuna

    from nas.core.dataspec import DataSpec
    from search_spaces.base import SearchSpace


# cost column -> the trial user attribute holding it
COST_ATTRS = {"params": "params", "flops": "flops", "latency": "latency_ms"}
# Column titles that carry a unit.
_TITLES = {"latency": "latency ms"}
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


# study_rows' count columns -> the outcome they count
_COUNT_COLUMNS = {
    "complete": "COMPLETE",
    "pruned": "PRUNED",
    "rejected": "REJECTED",
    "failed": "FAIL",
    "running": "RUNNING",
}


def study_rows(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """One record per study: space, objectives, trial counts by outcome, best accuracy
    (``{"trial": n, "accuracy": v}`` or None); ``nas studies`` prints them."""
    rows = []
    for summary in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(summary.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts = Counter("REJECTED" if "rejected" in t.user_attrs else t.state.name for t in trials)
        identity = summary.user_attrs.get(store.ATTR_IDENTITY, {})
        objectives = identity.get("objectives") if isinstance(identity, dict) else None
        complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
        best = None
        if complete:
            # The first objective is accuracy (maximised) in every nas study.
            top = max(complete, key=lambda t: t.values[0])
            best = {"trial": top.number, "accuracy": top.values[0]}
        rows.append(
            {
                "study": summary.study_name,
                "space": summary.user_attrs.get(store.ATTR_SPACE),
                "objectives": list(objectives or []),
                **{column: counts[state] for column, state in _COUNT_COLUMNS.items()},
                "best": best,
            }
        )
    return rows


def studies_table(storage: optuna.storages.BaseStorage) -> Table:
    """One row per study: space, objectives, trial counts by state, best value."""
    table = Table(title="Studies")
    for column in ("study", "space", "objectives", *_COUNT_COLUMNS, "best"):
        table.add_column(column)
    for row in study_rows(storage):
        best = row["best"]
        cells = [
            row["study"],
            str(row["space"] or "?"),
            ",".join(map(str, row["objectives"])),
            *(str(row[column]) for column in _COUNT_COLUMNS),
            f"{best['accuracy']:.4f} (#{best['trial']})" if best else "-",
        ]
        table.add_row(*map(Text, cells))
    return table


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
    maximize = [d.name == "MAXIMIZE" for d in study.directions]
    front = [complete[i] for i in non_dominated([t.values for t in complete], maximize)]
    # Samplers may propose a child again; list each architecture once (its first trial).
    unique: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in sorted(front, key=lambda t: t.number):
        unique.setdefault(str(trial.user_attrs.get("arch", trial.number)), trial)
    return sorted(unique.values(), key=lambda t: (t.values[1], -t.values[0]))


def best_table(study: optuna.Study, top: int = 10) -> Table:
    """The best (or Pareto-optimal) trials with their objectives, costs and architectures."""
    multi = len(study.directions) > 1
    title = "Pareto front" if multi else f"Best {top} trials"
    return _trials_table(study, f"{title} of {study.study_name}", best_trials(study, top))


def baselines(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The complete trials of the study's named baselines (``baselines=[...]``)."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.values and isinstance(t.user_attrs.get("baseline"), str)
    ]


def baselines_table(study: optuna.Study) -> Table | None:
    """The named baselines, trained as the candidates were, or None without any."""
    trials = baselines(study)
    if not trials:
        return None
    return _trials_table(study, f"Baselines of {study.study_name}", trials)


def study_report(study: optuna.Study, top: int = 10) -> dict[str, Any]:
    """What ``nas show`` prints, as JSON-safe data: trial counts, the best trials (or the
    Pareto front) and the named baselines, each with objectives, costs, architecture."""
    return {
        "study": study.study_name,
        "objectives": objective_names(study),
        "summary": outcome_summary(study),
        "pareto_front": len(study.directions) > 1,
        "best": [trial_record(study, t) for t in best_trials(study, top)],
        "baselines": [trial_record(study, t) for t in baselines(study)],
    }


def trial_record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as JSON-safe data: its objectives by name, costs and architecture."""
    return {
        "trial": trial.number,
        "state": trial.state.name,
        "objectives": dict(zip(objective_names(study), trial.values or [], strict=False)),
        "costs": {attr: trial.user_attrs.get(attr) for attr in COST_ATTRS.values()},
        "architecture": trial.user_attrs.get("arch_str"),
        "arch": trial.user_attrs.get("arch"),
        "baseline": trial.user_attrs.get("baseline"),
    }


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objective names as searched (``objective0``... when not recorded)."""
    identity = study.user_attrs.get(store.ATTR_IDENTITY, {})
    names = identity.get("objectives") if isinstance(identity, dict) else None
    if not isinstance(names, list) or len(names) != len(study.directions):
        return [f"objective{i}" for i in range(len(study.directions))]
    return [str(name) for name in names]


def _trials_table(study: optuna.Study, title: str, trials: list[optuna.trial.FrozenTrial]) -> Table:
    names = objective_names(study)
    table = Table(title=title)
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(_TITLES.get(str(name), str(name)), justify="right")
    for extra in COST_ATTRS:
        if extra not in names:
            table.add_column(_TITLES.get(extra, extra), justify="right")
    table.add_column("architecture", overflow="fold")
    for trial in trials:
        row = [str(trial.number)] + [_fmt(v) for v in trial.values]
        row += [
            _fmt(trial.user_attrs.get(attr))
            for extra, attr in COST_ATTRS.items()
            if extra not in names
        ]
        row.append(str(trial.user_attrs.get("arch_str", "?")))
        table.add_row(*map(Text, row))  # Text: architecture strings hold [brackets]
    return table


def preparation_summary(study: optuna.Study) -> str | None:
    """One line on what the study's evaluator prepared (its supernet...), or None."""
    from evaluators import get_evaluator_class

    identity = study.user_attrs.get(store.ATTR_IDENTITY)
    name = identity.get("evaluator") if isinstance(identity, dict) else None
    try:
        evaluator = get_evaluator_class(name) if isinstance(name, str) else None
    except ConfigError:  # a plug-in not installed here: the trials still show
        return None
    if evaluator is None or evaluator.summary_attr is None:
        return None
    return evaluator.summarize(study.user_attrs.get(evaluator.summary_attr))


def outcome_summary(study: optuna.Study, reasons: int = 3) -> str:
    """Trial counts by outcome; rejected candidates by the protocol that refused them
    (``invalid: 4, quality: 2``), or by their most common reasons where none is named."""
    trials = study.get_trials(deepcopy=False)
    rejected = [t.user_attrs for t in trials if "rejected" in t.user_attrs]
    counts = Counter(t.state.name for t in trials if "rejected" not in t.user_attrs)
    parts = [f"{counts[state]} {state.lower()}" for state in STATES if counts[state]]
    if rejected:
        by_protocol = Counter(str(a["rejected_by"]) for a in rejected if "rejected_by" in a)
        by_reason = Counter(str(a["rejected"]) for a in rejected if "rejected_by" not in a)
        common = [f"{name}: {n}" for name, n in sorted(by_protocol.items())]
        common += [f"{n}x {reason}" for reason, n in by_reason.most_common(reasons)]
        parts.append(f"{len(rejected)} rejected ({'; '.join(common)})")
    return "trials: " + (", ".join(parts) or "none")


def named_table(space: SearchSpace[Any], spec: DataSpec) -> Table:
    """The space's architectures from the literature: parameters and multiply-adds as
    deployed (counted by ``evaluators.costs.deployed_size``), and their description."""
    table = Table(title=f"Named architectures of {space.name} ({_spec_text(spec)})")
    for column in ("name", "params", "mult-adds", "architecture"):
        table.add_column(column, justify="right" if column in ("params", "mult-adds") else "left")
    for name, arch in space.named_architectures().items():
        params = macs = "-"
        if space.can("build"):
            size = named_size(space, arch, spec)
            params, macs = f"{size['params'] / 1e6:.2f}M", f"{size['flops'] / 2e6:.1f}M"
        table.add_row(name, params, macs, Text(space.describe(arch)))  # [..] is no markup
    return table


def named_size(space: SearchSpace[Any], arch: Any, spec: DataSpec) -> dict[str, float]:
    """``params`` and ``flops`` of ``arch``'s network as deployed."""
    from evaluators.costs import deployed_size

    return deployed_size(space, space.build(arch, spec), spec)


def _spec_text(spec: DataSpec) -> str:
    size = spec.image_size
    return f"{spec.in_channels}x{size}x{size} images, {spec.num_classes} classes"
