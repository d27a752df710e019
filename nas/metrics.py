"""Size and cost of a network: parameter and FLOP counts, measured latency.

Imports torch on first use, so ``import nas.metrics`` stays cheap.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def count_parameters(model: nn.Module, *, exclude_prefixes: tuple[str, ...] = ()) -> int:
    """Number of parameters of ``model``, each shared tensor counted once.

    Args:
        model: The network.
        exclude_prefixes: Skip parameters whose dotted name starts with any of these,
            e.g. ``("auxiliary.",)`` to leave out a training-only head. Matching is on
            plain string prefixes, so include the trailing dot to match one sub-module.
    """
    return sum(
        parameter.numel()
        for name, parameter in model.named_parameters()
        if not name.startswith(exclude_prefixes)
    )


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one eval-mode forward pass on an input of ``input_shape``.

    Counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
    multiply-accumulate of convolutions and matrix products only; element-wise work
    (activations, batch norm, pooling, additions, biases) is not counted. Papers that
    quote "multiply-adds" (MACs) report half this number.

    The model runs in eval mode under ``torch.no_grad()`` on a zero tensor placed on
    the device and dtype of its first parameter; every sub-module's training flag is
    restored afterwards.

    Args:
        model: The network.
        input_shape: Full input shape including the batch dimension, e.g.
            ``DataSpec.input_shape(1)``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    inputs = torch.zeros(tuple(input_shape), device=device, dtype=dtype)
    # Restore per module, not model.train(mode): a caller may have frozen parts in eval.
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(inputs)
    finally:
        for module, training in modes:
            module.training = training
    return int(counter.get_total_flops())


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: torch.device,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> float:
    """Median wall time of one eval-mode forward pass, in milliseconds.

    The model runs under ``torch.inference_mode()`` on a zero tensor of ``input_shape``
    on ``device``, in the dtype of its first parameter. ``warmup`` passes run first and
    are not timed: the first calls pay for memory allocation, kernel selection and
    caches. On CUDA the device is synchronised before and after each timed pass, so the
    time covers the queued kernels and not just their launch. The median resists the odd
    pass slowed by other processes. Every sub-module's training flag is restored.

    Args:
        model: The network, already on ``device``.
        input_shape: Full input shape including the batch dimension.
        device: Where ``model`` is; the latency is that device's.
        warmup: Untimed passes before timing, at least 0.
        repeats: Timed passes, at least 1.
        threads: CPU threads torch uses while timing (restored afterwards); None keeps
            the current setting. A fixed count makes CPU latencies comparable between
            runs: torch's default follows the machine's cores and, on a shared machine,
            its load.

    Raises:
        ValueError: ``warmup`` is negative or ``repeats`` is below 1.
    """
    import torch

    if warmup < 0 or repeats < 1:
        raise ValueError(
            f"measure_latency needs warmup >= 0 and repeats >= 1, but got "
            f"warmup={warmup}, repeats={repeats}."
        )
    first = next(model.parameters(), None)
    dtype = first.dtype if first is not None else torch.float32
    inputs = torch.zeros(tuple(input_shape), device=device, dtype=dtype)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    timings: list[float] = []
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(inputs)
            for _ in range(repeats):
                synchronize()
                started = time.perf_counter()
                model(inputs)
                synchronize()
                timings.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous_threads)
        for module, training in modes:
            module.training = training
    return statistics.median(timings) * 1000.0
