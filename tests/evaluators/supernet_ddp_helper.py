"""One rank of the data-parallel tests in test_supernet_ddp.py, started as a script with
torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):

    python supernet_ddp_helper.py bn OUT       # synced BN vs F.batch_norm on the whole batch
    python supernet_ddp_helper.py train OUT [SPACE]  # train a tiny supernet; OUT/rank{R}.pt

The shared recipe (data, settings, initial weights) is imported by the test too, so
that its single-process run trains exactly what these ranks train together.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from evaluators import SupernetSettings, train_supernet
from evaluators.distributed import init_from_torchrun, shutdown
from nas.data import DatasetSplits, load_dataset
from search_spaces import create_space
from search_spaces.sync_batch_norm import global_batch_norm

# 203 = 4 x 45 + 23: the last global batch is smaller, and with 2 ranks every share of
# the odd batch sizes is unequal (23 + 22, 12 + 11).
NUM_TRAIN, NUM_VAL = 203, 64
SETTINGS = SupernetSettings(
    epochs=2,
    batch_size=45,
    lr=0.1,
    warmup_epochs=1,
    random_children=1,
    dropout=0.0,  # masks cannot match one process's (per-rank generators)
    drop_connect=0.0,
    calibration_batches=1,
)
# ViT-ResNAS's multi-architectural sampling: three children share each global batch.
RECIPES = {
    "bignas": SETTINGS,
    "vit_resnas": replace(SETTINGS, sampling="multi_arch", sub_batches=3),
}
SEED = 5
# (global batch, first rank's share): unequal shares, and an empty one.
BN_CASES = ((7, 4), (5, 5), (6, 1))


def tiny_data() -> DatasetSplits:
    digits = load_dataset("digits")
    return replace(
        digits,
        train=Subset(digits.train, range(NUM_TRAIN)),
        val=Subset(digits.val, range(NUM_VAL)),
        num_train=NUM_TRAIN,
        num_val=NUM_VAL,
    )


def train(
    checkpoint: Path, parallel: Any = None, space_name: str = "bignas"
) -> tuple[nn.Module, list[Any]]:
    """The tiny supernet of ``space_name`` trained by its recipe (alone, or as one rank)."""
    space = create_space(space_name, preset="tiny")
    data = tiny_data()
    torch.manual_seed(0)  # the initial weights
    supernet = space.supernet(data.spec)
    reports = train_supernet(
        space,
        supernet,
        data,
        RECIPES[space_name],
        device=torch.device("cpu"),
        seed=SEED,
        checkpoint=checkpoint,
        parallel=parallel,
    )
    return supernet, reports


def _check_batch_norm(rank: int) -> None:
    """Outputs, running statistics and gradients of the synced BN equal F.batch_norm's on
    the concatenated batch (rank 0 holds the first ``share`` examples)."""
    for size, share in BN_CASES:
        generator = torch.Generator().manual_seed(size)
        x = torch.randn(size, 6, 3, 3, generator=generator) * 3 + 1
        upstream = torch.randn(size, 6, 3, 3, generator=generator)
        weight = torch.randn(8, generator=generator).requires_grad_()
        bias = torch.randn(8, generator=generator).requires_grad_()
        mean, var = torch.randn(8, generator=generator), torch.rand(8, generator=generator) + 0.5
        # Reference: one process, the whole batch, channel slices of 8-channel buffers.
        ref_x = x.clone().requires_grad_()
        ref_mean, ref_var = mean.clone(), var.clone()
        out = F.batch_norm(ref_x, ref_mean[:6], ref_var[:6], weight[:6], bias[:6], True, 0.1, 1e-5)
        (out * upstream).sum().backward()
        ref_w, ref_b = weight.grad.clone(), bias.grad.clone()  # type: ignore[union-attr]
        weight.grad = bias.grad = None
        rows = slice(0, share) if rank == 0 else slice(share, size)
        local_x = x[rows].clone().requires_grad_()
        got = global_batch_norm(local_x, mean[:6], var[:6], weight[:6], bias[:6], 0.1, 1e-5)
        (got * upstream[rows]).sum().backward()
        grads = torch.cat([weight.grad, bias.grad])  # type: ignore[list-item]
        dist.all_reduce(grads)  # what DistributedDataParallel sums (before averaging)
        tol = {"atol": 1e-5, "rtol": 1e-5}
        torch.testing.assert_close(got, out[rows], **tol)
        torch.testing.assert_close(local_x.grad, ref_x.grad[rows], **tol)  # type: ignore[index]
        torch.testing.assert_close(grads, torch.cat([ref_w, ref_b]), **tol)
        torch.testing.assert_close(mean, ref_mean, **tol)
        torch.testing.assert_close(var, ref_var, **tol)
        assert torch.equal(mean[6:], ref_mean[6:])  # channels outside the slice untouched
    print(f"rank {rank}: synced BN matches F.batch_norm on the global batch")


def main(mode: str, out: Path, space_name: str = "bignas") -> None:
    context, _ = init_from_torchrun("cpu", timeout=timedelta(seconds=60))
    try:
        if mode == "bn":
            _check_batch_norm(context.rank)
        else:
            supernet, reports = train(out / "supernet.ckpt", context, space_name)
            torch.save(
                {"state": supernet.state_dict(), "losses": [r.loss for r in reports]},
                out / f"rank{context.rank}.pt",
            )
    finally:
        shutdown()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
