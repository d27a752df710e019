"""``nas dashboard``: optuna-dashboard on the study store, prepared for nas studies.

Before serving, every nas study gets what the dashboard shows by name: its objectives'
names (accuracy, flops, ...) and a plot of its learning curves with the trials a pruner
stopped marked where it stopped them (the dashboard's own intermediate-values plot has
single-objective studies only). Each trial's architecture is its ``arch_str`` user
attribute, shown on the trial's page; multi-objective studies get the dashboard's Pareto
front. These two additions are the only writes to the store.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from nas import store
from nas.core.errors import ConfigError
from nas.core.validation import check_number

if TYPE_CHECKING:
    import optuna


def _require_dashboard() -> Any:
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError(
            "nas dashboard needs optuna-dashboard: pip install 'nas[dashboard]'."
        ) from None
    return optuna_dashboard


def prepare_studies(storage: optuna.storages.BaseStorage) -> list[str]:
    """Name the objectives and attach the learning-curve plot of every nas study; returns
    the studies prepared."""
    import optuna

    from nas.plots import curves_figure, stored_curves
    from nas.report import objective_names

    dashboard = _require_dashboard()
    prepared = []
    for summary in storage.get_all_studies():
        if store.ATTR_IDENTITY not in summary.user_attrs:
            continue  # not a nas study: shown as it is
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and stable
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective_names(study))
        try:
            stored_curves(study)
        except ConfigError:  # no curves yet (or malformed ones): nothing to attach
            pass
        else:
            dashboard.save_plotly_graph_object(study, curves_figure(study, "plotly"))
        prepared.append(summary.study_name)
    return prepared


def serve(url: str, host: str, port: int) -> None:
    """Serve the dashboard on ``host:port`` until Ctrl-C."""
    check_number("port", port, integer=True, low=1, high=65535)
    dashboard = _require_dashboard()
    storage = store.open_storage(url, must_exist=True)
    prepared = prepare_studies(storage)
    print(
        f"dashboard of {store.redact(url)} ({len(prepared)} nas studies) on "
        f"http://{host}:{port}/  (Ctrl-C stops it)",
        flush=True,
    )
    try:
        dashboard.run_server(storage, host=host, port=port)
    except OSError as error:  # the port is taken, or the host is not this machine's
        raise ConfigError(
            f"Cannot serve on {host}:{port} ({error.strerror or error}); pick another port=."
        ) from None
