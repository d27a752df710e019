"""``nas plot``: a study as a picture: its Pareto front, history, learning curves or the
parameters' importance.

``out=FILE.html`` writes an interactive plotly page, ``out=FILE.png`` an image drawn by
matplotlib. The front, the history and the importance are Optuna's own plots
(``optuna.visualization`` and its matplotlib twin); the learning curves are drawn here,
because they mark where a pruner (the LC-PFN too) stopped a trial, which Optuna's
intermediate-values plot does not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import store
from nas.core.errors import ConfigError
from nas.core.validation import check_choice
from nas.report import objective_names

if TYPE_CHECKING:
    import optuna

PLOT_KINDS = ("pareto", "history", "curves", "importance")
FORMATS = {".html": "plotly", ".png": "matplotlib"}
# Parameters kind=importance shows, the most important first.
TOP_PARAMS = 15
# The PNG's size in inches at its resolution: 1,500 x 900 pixels.
PNG_SIZE, PNG_DPI = (10.0, 6.0), 150


@dataclass(frozen=True)
class Curve:
    """One trial's learning curve as stored, and how the trial ended."""

    trial: int
    values: list[float]
    stopped: bool  # pruned: stopped early by the study's pruner


def write_plot(study: optuna.Study, kind: str, out: Path) -> Path:
    """Draw ``kind`` of ``study`` into ``out`` (.html or .png); returns ``out``.

    Raises:
        ConfigError: An unknown kind or file type, a study the kind does not fit (a
            front of one objective, nothing finished), or the plotting library missing.
    """
    check_choice("kind", kind, PLOT_KINDS)
    library = FORMATS.get(out.suffix.lower())
    if library is None:
        raise ConfigError(
            f"out={out} must end in .html (interactive, plotly) or .png (an image, matplotlib)."
        )
    _require(library)
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        # Optuna marks its matplotlib plots experimental; they have been stable for years.
        warnings.simplefilter("ignore", category=ExperimentalWarning)
        # Said whenever a target is given; _importance gives the one it asks for.
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
        figure = _DRAW[kind](study, library)
    if kind != "curves":  # Optuna's titles do not say which study
        title = f"{_TITLES[kind]} of '{study.study_name}'"
        if library == "plotly":
            figure.update_layout(title=title)
        else:
            figure.axes[0].set_title(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    if library == "plotly":
        figure.write_html(str(out), include_plotlyjs=True)
    else:
        figure.set_size_inches(*PNG_SIZE)
        figure.tight_layout()
        figure.savefig(out, dpi=PNG_DPI)
        import matplotlib.pyplot as plt

        plt.close(figure)
    return out


def _require(library: str) -> None:
    try:
        if library == "plotly":
            import plotly  # noqa: F401
        else:
            import matplotlib

            matplotlib.use("Agg")  # files only: never a window
    except ImportError:
        raise ConfigError(
            f"Plots as {'HTML' if library == 'plotly' else 'PNG'} need {library}: "
            "pip install 'nas[plots]'."
        ) from None


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(
            f"Study '{study.study_name}' has no complete trial to plot yet; run nas search first."
        )
    return complete


def _figure(result: Any) -> Any:
    """The figure of what an Optuna matplotlib plot returns (axes, or an array of them)."""
    axes = result.flat[0] if hasattr(result, "flat") else result
    return axes.figure


def _pareto(study: optuna.Study, library: str) -> Any:
    names = objective_names(study)
    if len(names) < 2:
        raise ConfigError(
            f"kind=pareto needs a study with several objectives; '{study.study_name}' has "
            f"{names[0]} only: use kind=history."
        )
    _finished(study)
    from optuna import visualization

    if library == "plotly":
        return visualization.plot_pareto_front(study, target_names=names)
    return _figure(visualization.matplotlib.plot_pareto_front(study, target_names=names))


def _history(study: optuna.Study, library: str) -> Any:
    _finished(study)
    from optuna import visualization

    name = objective_names(study)[0]
    target = _first_objective(study)
    if library == "plotly":
        return visualization.plot_optimization_history(study, target=target, target_name=name)
    plot = visualization.matplotlib.plot_optimization_history
    return _figure(plot(study, target=target, target_name=name))


def _importance(study: optuna.Study, library: str) -> Any:
    if len(_finished(study)) < 2:
        raise ConfigError(
            f"kind=importance needs at least 2 complete trials; '{study.study_name}' has 1."
        )
    from optuna import visualization
    from optuna.importance import get_param_importances

    name = objective_names(study)[0]
    # Optuna's importance evaluator ranks by what lowers a custom target: the first
    # objective (accuracy, maximised) goes in negated; importances have no sign.
    target = None if len(study.directions) == 1 else (lambda trial: -float(trial.values[0]))
    try:
        ranked = get_param_importances(study, target=target)
        # A cell space has dozens of choices: the most important ones are what a reader wants.
        params = list(ranked)[:TOP_PARAMS]
        if library == "plotly":
            return visualization.plot_param_importances(
                study, params=params, target=target, target_name=name
            )
        plot = visualization.matplotlib.plot_param_importances
        return _figure(plot(study, params=params, target=target, target_name=name))
    except (ValueError, RuntimeError) as error:  # e.g. every trial chose the same values
        raise ConfigError(f"Cannot rank the parameters of '{study.study_name}': {error}") from None


def _first_objective(study: optuna.Study) -> Callable[[Any], float] | None:
    """Optuna asks for a target on multi-objective studies: the first objective (accuracy)."""
    if len(study.directions) == 1:
        return None
    return lambda trial: float(trial.values[0])


def stored_curves(study: optuna.Study) -> list[Curve]:
    """The learning curves of the complete and pruned trials, checked as untrusted data;
    rejected, failed and running trials have none worth drawing."""
    import optuna

    State = optuna.trial.TrialState
    curves = []
    for trial in study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED)):
        if "rejected" in trial.user_attrs:
            continue
        raw = trial.user_attrs.get("curve")
        if not isinstance(raw, list) or not raw:
            continue
        if not all(_is_number(value) for value in raw):
            raise ConfigError(
                f"Trial {trial.number} of '{study.study_name}' holds a malformed curve; "
                "it cannot be plotted."
            )
        curves.append(Curve(trial.number, [float(v) for v in raw], trial.state == State.PRUNED))
    if not curves:
        raise ConfigError(
            f"Study '{study.study_name}' holds no learning curve (trials that train report "
            "one per epoch); use kind=history."
        )
    return curves


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _stopper(study: optuna.Study) -> str:
    """Who stopped the pruned trials: the study's pruner as configured."""
    config = study.user_attrs.get(store.ATTR_CONFIG)
    pruner = config.get("pruner") if isinstance(config, dict) else None
    return f"pruner={pruner}" if isinstance(pruner, str) else "the pruner"


def curves_figure(study: optuna.Study, library: str) -> Any:
    """The learning curves of ``study``, trials stopped early marked where they stopped
    (a plotly figure, or a matplotlib one for ``library="matplotlib"``)."""
    curves = stored_curves(study)
    stopper = _stopper(study)
    title = f"Learning curves of '{study.study_name}' (x: stopped by {stopper})"
    if library == "plotly":
        return _curves_plotly(curves, title, stopper)
    return _curves_matplotlib(curves, title, stopper)


def _curves_plotly(curves: list[Curve], title: str, stopper: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for curve in curves:
        steps = list(range(1, len(curve.values) + 1))
        state = f"stopped by {stopper} after report {len(steps)}" if curve.stopped else "complete"
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=curve.values,
                mode="lines",
                name=f"trial {curve.trial}",
                line={"dash": "dot", "color": "grey", "width": 1}
                if curve.stopped
                else {"width": 1.5},
                hovertemplate=f"trial {curve.trial} ({state})<br>report %{{x}}: %{{y:.4f}}"
                "<extra></extra>",
                legendgroup="stopped" if curve.stopped else "complete",
            )
        )
    stopped = [curve for curve in curves if curve.stopped]
    if stopped:
        figure.add_trace(
            go.Scatter(
                x=[len(curve.values) for curve in stopped],
                y=[curve.values[-1] for curve in stopped],
                mode="markers",
                marker={"symbol": "x", "size": 10, "color": "crimson"},
                name=f"stopped by {stopper}",
                text=[f"trial {curve.trial}" for curve in stopped],
                hovertemplate="%{text} stopped here<extra></extra>",
            )
        )
    figure.update_layout(
        title=title, xaxis_title="validation report (epoch)", yaxis_title="accuracy"
    )
    return figure


def _curves_matplotlib(curves: list[Curve], title: str, stopper: str) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    for curve in curves:
        steps = list(range(1, len(curve.values) + 1))
        if curve.stopped:
            axes.plot(steps, curve.values, ":", color="grey", linewidth=1.0, alpha=0.7)
        else:
            axes.plot(steps, curve.values, "-", linewidth=1.4, alpha=0.9)
    stopped = [curve for curve in curves if curve.stopped]
    if stopped:
        axes.scatter(
            [len(curve.values) for curve in stopped],
            [curve.values[-1] for curve in stopped],
            marker="x",
            color="crimson",
            zorder=3,
            label=f"stopped by {stopper} ({len(stopped)} trials)",
        )
        axes.legend(loc="lower right")
    axes.set_title(title)
    axes.set_xlabel("validation report (epoch)")
    axes.set_ylabel("accuracy")
    axes.grid(alpha=0.3)
    return figure


_TITLES = {"pareto": "Pareto front", "history": "Optimization history", "importance": "Importance"}
_DRAW: dict[str, Callable[[optuna.Study, str], Any]] = {
    "pareto": _pareto,
    "history": _history,
    "curves": curves_figure,
    "importance": _importance,
}
