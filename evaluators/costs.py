"""What a network costs to deploy: parameters, FLOPs and measured latency."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nas.core.dataspec import DataSpec
    from search_spaces.base import SearchSpace


def deployment_costs(
    space: SearchSpace[Any], model: nn.Module, spec: DataSpec, device: torch.device
) -> dict[str, float]:
    """``params``, ``flops`` (one image) and ``latency`` (ms on ``device``) of ``model``.

    Training-only parts (auxiliary heads) are not deployed, so not counted: only the
    parameters the exported network loads count. ``model`` is moved to ``device``.
    """
    from nas.metrics import count_flops, measure_latency

    exported = space.export_state_dict(model)
    params = sum(p.numel() for name, p in model.named_parameters() if name in exported)
    shape = spec.input_shape(1)
    model.to(device)
    return {
        "params": float(params),
        "flops": float(count_flops(model, shape)),
        "latency": measure_latency(model, shape, device=device),
    }
