"""Batch normalisation over the batch of every data-parallel process together.

``torch.nn.SyncBatchNorm`` does this for whole BN modules; a supernet's dynamic layers
normalise a slice of their channels with ``F.batch_norm`` instead, so they call
:func:`global_batch_norm`, which follows ``F.batch_norm``'s training arithmetic on the
global batch: normalise with the global mean and biased variance, move the running
statistics towards the global mean and unbiased variance. One all-reduce per call
carries the per-channel sums, sums of squares and the element count; it is
differentiable, so each rank's gradient includes what its examples did to the other
ranks' outputs through the shared statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks. Every rank's output is the same sum, so the gradient reaching
    one rank's input is the sum of the gradients all ranks send back.

    Written here because torch.distributed.nn.functional.all_reduce is deprecated (and
    its Gloo path aborted now and then in the global-BN test under torch 2.13)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the default process group, differentiably."""
    return _AllReduceSum.apply(tensor)


def global_batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """``F.batch_norm(x, ..., training=True)`` with statistics over every rank's ``x``.

    ``x`` is (N, C, ...) with a per-rank N (zero allowed). The running statistics are
    updated in place (views of larger buffers work, as with ``F.batch_norm``). Every rank
    must call this in the same order, as with any collective.
    """
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    # Statistics in float32 at least (as F.batch_norm does under autocast): fp16 sums of
    # squares overflow.
    stats_dtype = torch.promote_types(x.dtype, torch.float32)
    xs = x.to(stats_dtype)
    count = xs.new_full((1,), x.numel() // channels if channels else 0)
    stats = all_reduce_sum(torch.cat([xs.sum(dims), (xs * xs).sum(dims), count]))
    total, squares, n = stats[:channels], stats[channels : 2 * channels], stats[-1]
    mean = total / n  # (C,)
    # E[x^2] - E[x]^2 may dip below 0 by rounding.
    var = (squares / n - mean * mean).clamp_min(0.0)  # biased, for normalising
    with torch.no_grad():
        # Bessel's correction; reading n back to refuse n == 1 (as F.batch_norm does)
        # would stall an accelerator every layer, and one value has variance 0 anyway.
        unbiased = var * (n / (n - 1).clamp_min(1.0))
        running_mean.mul_(1.0 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
        running_var.mul_(1.0 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    shape = (1, channels) + (1,) * (x.dim() - 2)
    scale = torch.rsqrt(var + eps) * weight  # (C,)
    shift = bias - mean * scale
    return (xs * scale.view(shape) + shift.view(shape)).to(x.dtype)


def module_batch_norm(bn: torch.nn.BatchNorm2d, x: torch.Tensor, synced: bool) -> torch.Tensor:
    """``bn(x)``; in training with ``synced``, with statistics over every process
    (``bn``'s own momentum and running-statistics bookkeeping either way)."""
    if not (synced and bn.training):
        return bn(x)
    assert bn.running_mean is not None and bn.running_var is not None
    assert bn.num_batches_tracked is not None
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum
    factor = 1.0 / float(bn.num_batches_tracked) if momentum is None else momentum
    return global_batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, factor, bn.eps)
