"""Export a trial as a standalone PyTorch source file plus its weights (safetensors).

The architecture comes from the database, so it is decoded and validated before any
code is generated; stored weights are loaded with safetensors (no pickle) and checked
against the rebuilt network before they are written out.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import store
from nas.artifacts import Artifacts, checked_id, open_artifacts
from nas.core.errors import (
    CapabilityError,
    ConfigError,
    StudyError,
    WeightsError,
    close_match_hint,
)
from nas.core.files import atomic_write

if TYPE_CHECKING:
    import optuna
    import torch

    from nas.core.dataspec import DataSpec
    from search_spaces.base import SearchSpace


@dataclass
class ExportResult:
    trial: int
    source: Path
    weights: Path | None  # None when the trial kept no weights


def select_trial(study: optuna.Study, which: str) -> optuna.trial.FrozenTrial:
    """``best`` (the most accurate trial that meets the constraints; in multi-objective
    studies, of the Pareto front) or a trial number."""
    trials = study.get_trials(deepcopy=False)
    if which == "best":
        from nas.report import best_trials

        candidates = best_trials(study)
        if not candidates:
            raise StudyError(
                f"Study '{study.study_name}' has no complete trial (meeting its constraints) "
                "to export yet."
            )
        return max(candidates, key=lambda t: t.values[0])
    if not which.isdigit():
        raise StudyError(f"trial must be 'best' or a trial number, but got trial={which!r}.")
    by_number = {t.number: t for t in trials}
    if int(which) not in by_number:
        raise StudyError(
            f"Study '{study.study_name}' has no trial {which}; trials are 0..{len(trials) - 1}."
        )
    return by_number[int(which)]


def load_trial_weights(
    trial: optuna.trial.FrozenTrial, artifacts: Artifacts
) -> dict[str, torch.Tensor] | None:
    """The trial's stored weights, or None when it kept none."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    artifact_id = trial.user_attrs.get("weights")
    if artifact_id is None:
        return None
    what = f"the weights of trial {trial.number}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "weights.safetensors"
        artifacts.download(checked_id(artifact_id, what), local, what)
        try:
            return load_file(str(local))
        except (SafetensorError, OSError) as error:
            raise StudyError(f"Weights of trial {trial.number} are unreadable: {error}") from None


def study_artifacts(study: optuna.Study, location: str | None, storage_url: str) -> Artifacts:
    """The artifact store to read a study's files from: ``location`` if given, else the
    one recorded with the study (or the default folder beside the database)."""
    if location is None:
        recorded = study.user_attrs.get(store.ATTR_CONFIG)
        stored = recorded.get("artifacts") if isinstance(recorded, dict) else None
        location = stored if isinstance(stored, str) else None
    return open_artifacts(location, storage_url)


def checked_state_dict(
    space: SearchSpace[Any], arch: Any, spec: DataSpec, weights: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Load ``weights`` into a freshly built network (strict: names and shapes must match)
    and return what the exported network loads."""
    try:
        model = space.build(arch, spec, weights)
    except WeightsError as error:
        raise StudyError(f"Stored weights of the trial: {error}") from None
    return {k: v.detach().contiguous() for k, v in space.export_state_dict(model).items()}


def export_trial(
    study: optuna.Study, which: str, out: Path, *, artifacts: Artifacts
) -> ExportResult:
    """Write ``out`` (Python source) and, when the trial kept weights, ``out`` with the
    suffix ``.safetensors``."""
    from safetensors.torch import save_file

    space = store.read_space(study)
    if not space.can("export"):
        raise CapabilityError(
            f"Search space '{study.user_attrs.get(store.ATTR_SPACE)}' exports no code "
            "(it declares no 'export' capability); `nas show` lists its trials."
        )
    spec = store.read_data_spec(study)
    trial = select_trial(study, which)
    arch = store.read_architecture(space, trial)
    source = space.export_source(arch, spec)
    compile(source, str(out), "exec")  # a generator bug must not leave a broken file behind
    weights = load_trial_weights(trial, artifacts)
    exported = checked_state_dict(space, arch, spec, weights) if weights is not None else None

    atomic_write(out, lambda p: p.write_text(source, encoding="utf-8"))
    weights_path = None
    if exported is not None:
        weights_path = out.with_suffix(".safetensors")
        metadata = {"study": study.study_name, "trial": str(trial.number)}
        atomic_write(weights_path, lambda p: save_file(exported, str(p), metadata=metadata))
    return ExportResult(trial=trial.number, source=out, weights=weights_path)


def export_named(space: SearchSpace[Any], name: str, spec: DataSpec, out: Path) -> Path:
    """Write ``out``: the source of the space's architecture from the literature called
    ``name``, without a study. Only the source: the network was not trained here."""
    if not space.can("export"):
        raise CapabilityError(f"Search space '{space.name}' exports no code.")
    named = space.named_architectures()
    if name not in named:
        known = ", ".join(named) or "none"
        raise ConfigError(
            f"Search space '{space.name}' names no architecture '{name}'; it names: {known}."
            + close_match_hint(name, named)
        )
    source = space.export_source(named[name], spec)
    compile(source, str(out), "exec")
    atomic_write(out, lambda p: p.write_text(source, encoding="utf-8"))
    return out
