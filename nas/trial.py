"""One trial's life: architecture, evaluation, outcome in the store.

``run_trial`` samples and validates the architecture, stores it with the trial's seed,
hands it to the evaluator through an :class:`OptunaTrialSession`, and tells the study
the outcome, with a heartbeat running all along:

* COMPLETE with the objectives read from the evaluator's metrics;
* PRUNED when a pruner (or LC-PFN against cheaper trials) stopped it;
* PRUNED with a ``rejected`` reason when the space or the evaluator refused the
  candidate by design: an outcome, never a failure;
* FAIL with an ``error`` for a user-caused error or an exhausted GPU (the search
  counts these), or ``interrupted`` after Ctrl-C (retried by the next run).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import store
from nas.config import report_steps
from nas.core.errors import ArchitectureError, CandidateRejected, NasError, first_line
from nas.core.seeds import derive_seed
from nas.reuse import ResultCache

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from evaluators.base import Evaluator
    from nas.artifacts import Artifacts
    from nas.config import SearchConfig
    from nas.early_stopping import CurveStopper
    from nas.progress import SearchReporter
    from search_spaces.base import SearchSpace

COSTS = {"params": "params", "flops": "flops", "latency": "latency_ms"}  # metric -> attribute


@dataclass
class TrialRules:
    """What every trial of one search shares: objectives, budgets, stopping, storage."""

    objectives: Sequence[str]
    epochs: int
    seed: int
    keep_weights: bool
    limits: Mapping[str, float | None]  # cost metric -> budget (None: no limit)
    artifacts: Artifacts
    reporter: SearchReporter
    # Multi-objective LC-PFN stopping: Optuna's pruners take one objective only.
    pareto_stopper: CurveStopper | None = None
    startup_trials: int = 0
    results: ResultCache | None = None  # reuse the study's earlier results (None: never)

    @classmethod
    def from_config(
        cls,
        config: SearchConfig,
        artifacts: Artifacts,
        reporter: SearchReporter,
        results: ResultCache | None = None,
    ) -> TrialRules:
        stopper = None
        if len(config.objectives) > 1 and config.pruner == "lcpfn":
            from nas.pruners import create_curve_stopper

            stopper = create_curve_stopper(config)
        limits = config.constraints
        return cls(
            objectives=list(config.objectives),
            epochs=report_steps(config),
            seed=config.seed,
            keep_weights=config.keep_weights,
            limits={
                "flops": limits.max_flops,
                "params": limits.max_params,
                "latency": limits.max_latency_ms,
            },
            artifacts=artifacts,
            reporter=reporter,
            pareto_stopper=stopper,
            startup_trials=config.lcpfn.startup_trials,
            results=results,
        )

    @property
    def prunable(self) -> bool:
        """Whether Optuna's report/should_prune apply (single-objective studies only)."""
        return len(self.objectives) == 1


# Attributes the platform writes itself; an evaluator's `record` may not replace them.
_RESERVED_ATTRS = frozenset(
    {
        "arch",
        "arch_str",
        "seed",
        "curve",
        "weights",
        "constraint",
        "latency_threads",
        "rejected",
        "rejected_by",
        "error",
        "interrupted",
        "retry_of",
        "baseline",
        "reused_from",
    }
)


@dataclass
class OptunaTrialSession:
    """``evaluators.base.TrialSession`` on an Optuna trial of the study store.

    Attributes are written in batches, one commit each. The first batch (architecture,
    seed, the first heartbeat) waits for the evaluator's first call (costs, a step, a
    report) or its result, so that a trial that costs nothing writes once; later ones
    go with the next epoch's curve, or with ``flush`` before the study is told.
    """

    trial: optuna.Trial
    seed: int
    rules: TrialRules
    costs: dict[str, float] | None = None
    curve: list[float] = field(default_factory=list)
    pending: dict[str, Any] = field(default_factory=dict)
    arch_key: str | None = None  # the canonical architecture, once sampled
    started: bool = False  # whether the first batch (with the first heartbeat) is written

    def flush(self) -> None:
        """Write the attributes not yet stored."""
        store.write_trial_attrs(self.trial, self.pending, heartbeat=not self.started)
        self.pending, self.started = {}, True

    @property
    def number(self) -> int:
        return int(self.trial.number)

    def report(self, epoch: int, epochs: int, accuracy: float) -> None:
        import optuna

        self.curve.append(accuracy)
        self.pending["curve"] = self.curve
        self.flush()
        self.show(epoch, epochs, accuracy)
        if self.rules.prunable:
            self.trial.report(accuracy, epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")
        elif self._dominated():
            raise optuna.TrialPruned(f"stopped after epoch {epoch}: dominated")

    def show(self, epoch: int, epochs: int, accuracy: float) -> None:
        if not self.started:
            self.flush()
        self.rules.reporter.epoch(self.number, epoch, epochs, accuracy)

    def step(self, step: int, steps: int) -> None:
        if not self.started:
            self.flush()
        self.rules.reporter.step(self.number, step, steps)

    def record_costs(self, costs: Mapping[str, float]) -> None:
        self.costs = {name: float(costs[name]) for name in COSTS if name in costs}
        for name, value in self.costs.items():
            self.pending[COSTS[name]] = int(value) if name != "latency" else value
        if "latency" in self.costs and "latency_threads" in costs:
            self.pending["latency_threads"] = int(costs["latency_threads"])
        limited = [(name, limit) for name, limit in self.rules.limits.items() if limit is not None]
        missing = [name for name, _ in limited if name not in self.costs]
        if missing:
            raise NasError(
                f"The evaluator measures no {', '.join(missing)}, which constraints.* limit; "
                "drop those constraints or use an evaluator that measures them."
            )
        if limited:
            self.pending["constraint"] = [self.costs[n] - lim for n, lim in limited]
        self.flush()  # costs come before training: stored with the trial's first batch

    def record(self, name: str, value: Any) -> None:
        if name in _RESERVED_ATTRS:
            raise ValueError(f"trial attribute '{name}' is the platform's own")
        self.pending[name] = value
        self.flush()

    def keep_weights(self, model: nn.Module) -> None:
        if not self.rules.keep_weights:
            return
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial-{self.number}.safetensors"
            save_file(tensors, str(path))
            artifact_id = self.rules.artifacts.upload(self.trial, path)
        self.pending["weights"] = artifact_id

    def _dominated(self) -> bool:
        """Whether cheaper-or-equal finished trials will most likely beat this one."""
        from nas.early_stopping import finished_front, pareto_target

        stopper, objectives = self.rules.pareto_stopper, self.rules.objectives
        if stopper is None or self.costs is None:
            return False
        front = finished_front(self.trial.study, range(1, len(objectives)))
        if len(front) < self.rules.startup_trials:
            return False
        own = [self.costs[name] for name in objectives[1:]]
        target = pareto_target(own, front)
        return stopper.should_stop(self.curve, self.rules.epochs, target)


def trial_seed(trial: optuna.Trial, base_seed: int) -> int:
    """The trial's recorded seed (a retry keeps its first run's), else a derived one."""
    stored = trial.user_attrs.get("seed")
    if type(stored) is int and 0 <= stored < 2**32:
        return stored
    return derive_seed(base_seed, trial.number)


def evaluate_trial(
    session: OptunaTrialSession, space: SearchSpace[Any], evaluator: Evaluator[Any]
) -> list[float]:
    """Sample (or let the evaluator derive), store and evaluate the session's
    architecture; its objective values."""
    trial, rules = session.trial, session.rules
    if type(evaluator).derives_architecture:
        # The search may take long: its seed is stored (with a heartbeat) before it runs.
        session.pending["seed"] = session.seed
        session.flush()
        arch = evaluator.derive(session, trial)
    else:
        arch = space.sample(trial)
    space.validate(arch)
    described = space.describe(arch)
    encoded = space.encode(arch)
    session.arch_key = space.equivalence_key(arch)
    attrs = {"arch": encoded, "arch_str": described, "seed": session.seed}
    results = rules.results
    earlier = results.get(session.arch_key) if results is not None else None
    if earlier is not None:  # evaluated before in this study: its result, marked so
        session.pending.update(attrs, **earlier.attrs, reused_from=earlier.number)
        rules.reporter.trial_started(trial.number, f"{described} (as trial {earlier.number})", 0)
        return list(earlier.values)
    refused = results.rejection(session.arch_key) if results is not None else None
    if refused is not None:  # rejected before: rejected again at no cost
        session.pending.update(attrs, reused_from=refused.number)
        raise CandidateRejected(refused.reason, protocol=refused.protocol)
    session.pending.update(attrs)  # written with the evaluator's first call (see flush)
    rules.reporter.trial_started(trial.number, described, rules.epochs)
    metrics = dict(evaluator.evaluate(arch, session))
    if session.costs is None:  # the evaluator knew its costs only at the end
        session.record_costs(metrics)
    missing = [name for name in rules.objectives if name not in metrics]
    if missing:
        raise NasError(
            f"evaluator={evaluator.name} gives no {', '.join(missing)}; it gives "
            f"{', '.join(sorted(metrics))}. Choose objectives among those."
        )
    return [float(metrics[name]) for name in rules.objectives]


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended, for the search loop and its display."""

    state: str  # complete | pruned | rejected | failed | interrupted
    message: str

    @property
    def failed(self) -> bool:
        return self.state == "failed"


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace[Any],
    evaluator: Evaluator[Any],
    rules: TrialRules,
    heartbeat: store.Heartbeat,
) -> TrialOutcome:
    """Evaluate ``trial`` with ``heartbeat`` watching it and tell the study its outcome.

    Raises:
        BaseException: Anything but the outcomes above (a bug) after marking the trial
            FAIL, so that no trial is left RUNNING.
    """
    import optuna

    State = optuna.trial.TrialState
    session = OptunaTrialSession(trial, trial_seed(trial, rules.seed), rules)

    def tell(state: Any, **attrs: Any) -> None:
        session.pending.update(attrs)
        session.flush()
        store.tell(study, trial, state=state)

    with heartbeat.watch(trial, first_beat=False):
        try:
            values = evaluate_trial(session, space, evaluator)
        except optuna.TrialPruned:
            tell(State.PRUNED)
            return TrialOutcome("pruned", "pruned")
        except (ArchitectureError, CandidateRejected) as error:
            reason = _one_line(error)
            # A space's refusal is the "invalid" protocol; an evaluator may name its own.
            protocol = getattr(error, "protocol", "invalid")
            tell(State.PRUNED, rejected=reason, **({"rejected_by": protocol} if protocol else {}))
            if rules.results is not None and session.arch_key is not None:
                rules.results.reject(session.arch_key, trial.number, reason, protocol)
            return TrialOutcome("rejected", f"rejected: {reason}")
        except KeyboardInterrupt:
            tell(State.FAIL, interrupted=True)
            return TrialOutcome("interrupted", "interrupted")
        except BaseException as error:
            if not _is_user_error(error):
                tell(State.FAIL)
                raise
            tell(State.FAIL, error=_one_line(error))
            return TrialOutcome("failed", f"failed: {error}")
        session.flush()
    store.tell(study, trial, values)
    if rules.results is not None and session.arch_key is not None:
        rules.results.add(session.arch_key, trial.number, values, trial.user_attrs)
    summary = ", ".join(f"{n}={v:.4g}" for n, v in zip(rules.objectives, values, strict=True))
    return TrialOutcome("complete", f"complete: {summary}")


def _is_user_error(error: BaseException) -> bool:
    """Errors a trial may end with without stopping the search at once."""
    if isinstance(error, NasError):
        return True
    import sys

    torch = sys.modules.get("torch")  # an exhausted GPU is only possible once torch runs
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def _one_line(error: BaseException) -> str:
    return first_line(error)[:500]
