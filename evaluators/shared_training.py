"""A network a whole study shares (a supernet, a teacher): trained once, published after
every epoch, resumed from the published copy, and awaited by workers elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nas.core.checkpoint import CheckpointError

if TYPE_CHECKING:
    from evaluators.base import EvaluationContext

ResultT = TypeVar("ResultT")
# Trains into (or only loads, when ``require_finished``) the checkpoint at the path, calling
# ``publish`` after each new epoch when told to; returns its result and the epochs it holds.
TrainShared = Callable[[Path, bool, bool], tuple[ResultT, int]]


def prepare_shared(
    context: EvaluationContext, kind: str, epochs: int, train: TrainShared[ResultT]
) -> ResultT:
    """Train (or resume, or reuse) the study's ``kind`` network with ``train``; a worker
    (``context.trains`` false) waits for the finished one the study's trainer publishes.

    With ``context.parallel`` every data-parallel process trains, and the main one
    fetches the published copy first and publishes.
    """
    files = context.files
    checkpoint = files.checkpoint_path(kind)
    if not context.trains:
        checkpoint = files.wait_for_finished(checkpoint, epochs, kind)
        return train(checkpoint, False, True)[0]
    parallel = context.parallel
    main = parallel is None or parallel.is_main
    if main and files.fetch_for_resume(checkpoint):
        context.echo(f"resuming the {kind} from its published checkpoint ({files.location})")
    if parallel is not None and parallel.distributed:
        parallel.barrier()  # every process resumes from the file the main one fetched
    try:
        result, done = train(checkpoint, main, False)
    except CheckpointError as error:
        if not main:
            raise
        result, done = _recover(context, kind, checkpoint, train, error)
    if main and done and (files.published_epochs() or 0) < done:
        # Trained before artifact stores existed, or the last upload failed.
        files.publish(checkpoint, done)
    return result


def _recover(
    context: EvaluationContext,
    kind: str,
    checkpoint: Path,
    train: TrainShared[ResultT],
    error: CheckpointError,
) -> tuple[ResultT, int]:
    """The local checkpoint is unreadable: set it aside and resume from the published
    copy; if there is none, or it is unreadable too, set both aside so that the same
    command run again trains the network from scratch, and say so."""
    files = context.files
    kept = _set_aside(checkpoint)
    published = files.published_epochs()
    if published:
        context.echo(
            f"the local {kind} checkpoint is unreadable (kept as {kept.name}); resuming from "
            f"the published copy ({published} epochs, {files.location})"
        )
        files.fetch_for_resume(checkpoint)
        try:
            return train(checkpoint, True, False)
        except CheckpointError:
            _set_aside(checkpoint)
            files.discard_published()
    raise CheckpointError(
        f"The {kind} checkpoint {checkpoint} is unreadable"
        + (" and so is the copy published in the study" if published else "")
        + f" ({str(error).split(':')[0]}). Kept as {kept.name}"
        + (" and dropped from the study" if published else "")
        + f"; run the same command again to train the {kind} from scratch."
    ) from None


def _set_aside(path: Path) -> Path:
    """Rename an unreadable file to ``NAME.corrupt`` (replacing an older one)."""
    kept = path.with_name(f"{path.name}.corrupt")
    path.replace(kept)
    return kept
