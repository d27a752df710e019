"""``nas search`` under ``torchrun``: one supernet trained data-parallel, then K workers.

    torchrun --nproc_per_node=2 -m nas search space=bignas device=cuda

Rank 0 creates (or resumes) the study; then every process trains the supernet together
(``evaluators.distributed``: each process a share of every batch, gradients and BN
statistics synced), rank 0 writing the checkpoint. The process group is then left and
each process carries on as an ordinary worker on the shared study, scoring children
with the finished supernet (read back from the checkpoint, not retrained).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nas.core.errors import ConfigError

if TYPE_CHECKING:
    from nas.config import SearchConfig
    from nas.search import SearchOutcome


def torchrun_world_size() -> int:
    """Processes torchrun started for this job; 1 when not under torchrun."""
    value = os.environ.get("WORLD_SIZE", "1")
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"WORLD_SIZE={value!r} is not a process count; run under torchrun.")
    return int(value)


def check_torchrun_config(config: SearchConfig) -> None:
    """Refuse settings that cannot run data-parallel under torchrun (one line each)."""
    from evaluators import get_evaluator_class

    if not get_evaluator_class(config.evaluator).data_parallel:
        raise ConfigError(
            f"torchrun prepares an evaluator data-parallel (a supernet), but "
            f"evaluator={config.evaluator} has nothing to prepare that way; run without "
            "torchrun (workers=K runs trials in parallel)."
        )
    if config.workers > 1:
        raise ConfigError(
            f"workers={config.workers} under torchrun: torchrun's processes are the workers "
            "(--nproc_per_node); leave workers=1."
        )
    if config.backend != "local":
        raise ConfigError(
            f"backend={config.backend} under torchrun: Ray runs its own processes; "
            "run it without torchrun."
        )


def run_torchrun_search(config: SearchConfig) -> tuple[SearchOutcome, bool]:
    """This process's part of the search: (its outcome, whether it is rank 0)."""
    check_torchrun_config(config)
    from evaluators.distributed import init_from_torchrun, shutdown
    from nas.progress import LogReporter
    from nas.search import prepare_study, run_search

    # Each process on its own GPU (cuda:LOCAL_RANK, which nas.device.resolve_device
    # also picks under torchrun), for training and for its trials; the study records
    # the setting as given (device=cuda), not one process's GPU.
    context, _ = init_from_torchrun(config.device)
    try:
        prepare_study(config, echo=print if context.is_main else _quiet, parallel=context)
    except BaseException:
        shutdown(wait=False)  # the others learn of it from torchrun, not from a barrier
        raise
    shutdown()
    # Interrupted trials of an earlier run are queued once, by rank 0; the others are
    # workers on the supernet rank 0 published, each drawing its own proposals.
    reporter = None if context.is_main else LogReporter(name=f"rank{context.rank}")
    outcome = run_search(
        config,
        reporter=reporter,
        requeue=context.is_main,
        trains_supernet=context.is_main,
        sampler_stream=context.rank,
    )
    return outcome, context.is_main


def _quiet(*_: object) -> None:
    pass
