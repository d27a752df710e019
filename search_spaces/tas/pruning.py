"""Magnitude (L1-norm) filter pruning of an unpruned network, the classic baseline of TAS.

Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017): each conv keeps its
filters of largest L1 norm. Channels joined by an identity shortcut must be kept
together (the residual adds them one to one), so convs whose outputs meet in a residual
sum form one group ranked by its members' summed filter norms. The pruned network
inherits the kept filters, their BN and the matching input channels of the next layers.

Torch-Pruning's dependency graph would find the same groups; it is not a dependency here
because this baseline is not in-place pruning of a traced model by ratios but a choice of
filters, over a state dict, for the widths an architecture of the space gives per layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from search_spaces.tas.arch import TASArch, block_plans

State = dict[str, torch.Tensor]
Feature = tuple[int, int]  # (block, conv) producing a feature map; (-1, 0): the stem


def l1_pruned_state(
    teacher: Mapping[str, torch.Tensor], largest: TASArch, arch: TASArch, image_size: int
) -> State:
    """The state dict of ``arch``'s network holding ``teacher``'s largest-L1 filters.

    ``teacher`` is the state dict of the unpruned network ``largest``; ``arch`` keeps
    every block (pruning by width only) and gives joined channels one width.

    Raises:
        ValueError: ``arch`` drops blocks, or gives joined channels different widths.
    """
    full, pruned = list(block_plans(largest, image_size)), list(block_plans(arch, image_size))
    if len(full) != len(pruned):
        raise ValueError("L1 filter pruning keeps every block; prune widths only.")
    group = _Groups()
    width: dict[Feature, int] = {(-1, 0): arch.stem}
    previous: Feature = (-1, 0)
    for k, (plan, cut) in enumerate(zip(full, pruned, strict=True)):
        for i, w in enumerate(cut.widths):
            width[(k, i)] = w
        out = (k, len(plan.widths) - 1)
        if plan.shortcut == "identity":
            group.join(previous, out)
        previous = out
    # Per group, each channel's summed filter norm over the convs producing it.
    norms: dict[Feature, torch.Tensor] = {}

    def add(feature: Feature, name: str) -> None:
        filters = teacher[name].abs().flatten(1).sum(dim=1)
        root = group.find(feature)
        norms[root] = norms[root] + filters if root in norms else filters

    add((-1, 0), "stem.conv.weight")
    for k, plan in enumerate(full):
        for i in range(len(plan.widths)):
            add((k, i), f"blocks.{k}.layers.{i}.conv.weight")
        if plan.shortcut != "identity":
            add((k, len(plan.widths) - 1), f"blocks.{k}.{_shortcut_conv(plan.shortcut)}.weight")
    kept: dict[Feature, torch.Tensor] = {}
    for feature, w in width.items():
        root = group.find(feature)
        if root in kept and len(kept[root]) != w:
            raise ValueError("Channels joined by an identity shortcut need one width.")
        if root not in kept:
            kept[root] = norms[root].topk(w).indices.sort().values
    index = {feature: kept[group.find(feature)] for feature in width}

    state: State = {}
    _conv_bn(state, teacher, "stem", index[(-1, 0)], None)
    previous = (-1, 0)
    for k, plan in enumerate(pruned):
        inputs = index[previous]
        for i in range(len(plan.widths)):
            _conv_bn(state, teacher, f"blocks.{k}.layers.{i}", index[(k, i)], inputs)
            inputs = index[(k, i)]
        out = (k, len(plan.widths) - 1)
        if plan.shortcut != "identity":
            conv = f"blocks.{k}.{_shortcut_conv(plan.shortcut)}.weight"
            state[conv] = teacher[conv][index[out]][:, index[previous]].clone()
            if plan.shortcut == "project":
                _bn(state, teacher, f"blocks.{k}.shortcut.1", index[out])
        previous = out
    state["classifier.weight"] = teacher["classifier.weight"][:, index[previous]].clone()
    state["classifier.bias"] = teacher["classifier.bias"].clone()
    return state


def _shortcut_conv(kind: str) -> str:
    return "shortcut.1" if kind == "pool" else "shortcut.0"


def _conv_bn(
    state: State,
    teacher: Mapping[str, torch.Tensor],
    prefix: str,
    out: torch.Tensor,
    inputs: torch.Tensor | None,
) -> None:
    weight = teacher[f"{prefix}.conv.weight"][out]
    state[f"{prefix}.conv.weight"] = (weight if inputs is None else weight[:, inputs]).clone()
    _bn(state, teacher, f"{prefix}.bn", out)


def _bn(state: State, teacher: Mapping[str, torch.Tensor], prefix: str, out: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"{prefix}.{name}"] = teacher[f"{prefix}.{name}"][out].clone()
    state[f"{prefix}.num_batches_tracked"] = teacher[f"{prefix}.num_batches_tracked"].clone()


class _Groups:
    """Union-find over the feature maps whose channels must be kept together."""

    def __init__(self) -> None:
        self._parent: dict[Feature, Feature] = {}

    def find(self, feature: Feature) -> Feature:
        parent = self._parent.setdefault(feature, feature)
        if parent != feature:
            parent = self._parent[feature] = self.find(parent)
        return parent

    def join(self, a: Feature, b: Feature) -> None:
        self._parent[self.find(a)] = self.find(b)
