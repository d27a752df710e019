"""Size and cost of a network: parameter and FLOP counts.

Imports torch on first use, so ``import nas.metrics`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
