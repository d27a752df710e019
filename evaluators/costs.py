"""What a network costs to deploy: parameters, FLOPs and measured latency."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from evaluators.base import EvaluationContext
    from nas.core.dataspec import DataSpec
    from search_spaces.base import SearchSpace


def deployment_costs(context: EvaluationContext, model: nn.Module) -> dict[str, float]:
    """``params``, ``flops`` (one image of the context's data), ``latency`` (ms on the
    context's device, timed with its ``latency_threads`` CPU threads) and that thread
    count, of ``model``.

    ``model`` is moved to the device; see :func:`deployed_size` for what counts.
    """
    from nas.metrics import measure_latency

    spec, threads = context.data.spec, context.latency_threads
    model.to(context.device)
    size = deployed_size(context.space, model, spec)
    shape = spec.input_shape(1)
    latency = measure_latency(model, shape, device=context.device, threads=threads)
    return {**size, "latency": latency, "latency_threads": float(threads)}


def deployed_size(space: SearchSpace[Any], model: nn.Module, spec: DataSpec) -> dict[str, float]:
    """``params`` and ``flops`` (one image) of ``model`` as deployed.

    Training-only parts (auxiliary heads) are not deployed, so not counted: only the
    parameters the exported network loads count. Multiply-adds are half the FLOPs.
    """
    from nas.metrics import count_flops

    exported = space.export_state_dict(model)
    params = sum(p.numel() for name, p in model.named_parameters() if name in exported)
    return {"params": float(params), "flops": float(count_flops(model, spec.input_shape(1)))}
