"""A network a whole study shares (a supernet, a teacher): trained once, published after
every epoch, resumed from the published copy, and awaited by workers elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

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
    result, done = train(checkpoint, main, False)
    if main and done and (files.published_epochs() or 0) < done:
        # Trained before artifact stores existed, or the last upload failed.
        files.publish(checkpoint, done)
    return result
