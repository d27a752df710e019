"""The ViT-ResNAS supernet: every child's weights as leading slices of one max-size network.

Each elastic layer holds its largest weight and computes with the slice the active child
uses: the first ``dim`` embedding channels of a stage, a block's first ``heads`` attention
heads (queries, keys and values sliced apart), its first ``mlp`` hidden units; a skipped
block is the identity. The authors zero the unused channels with masks instead, which
computes the same function at the largest width on every sub-network; slicing costs only
the child's own arithmetic. ``extract`` copies the same slices, computed by the same
methods, into the static network of ``search_spaces.vit_resnas.model``.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.sync_batch_norm import module_batch_norm
from search_spaces.vit_resnas.arch import BlockArch, ViTResArch, extreme_arch, plan_blocks
from search_spaces.vit_resnas.model import (
    ConvBNReLU,
    ConvPatchEmbedding,
    build_network,
    drop_path,
)
from search_spaces.vit_resnas.presets import Preset

State = dict[str, torch.Tensor]


def lead(tensor: torch.Tensor, *sizes: int) -> torch.Tensor:
    """The leading ``sizes`` slice of ``tensor`` (the tensor itself when it is whole: a
    slice would still cost its backward a full-size zero tensor)."""
    if tuple(tensor.shape[: len(sizes)]) == sizes:
        return tensor
    return tensor[tuple(slice(size) for size in sizes)]


def _norm_state(norm: nn.LayerNorm, dim: int) -> State:
    return {"weight": lead(norm.weight, dim), "bias": lead(norm.bias, dim)}


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm`` over the first ``x.shape[-1]`` channels (the active width)."""
    dim = x.shape[-1]
    return F.layer_norm(x, (dim,), lead(norm.weight, dim), lead(norm.bias, dim), norm.eps)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None  # built with one
    return conv.bias


def _prefixed(prefix: str, state: State) -> State:
    return {f"{prefix}.{name}": tensor for name, tensor in state.items()}


class ElasticAttention(nn.Module):
    """Self-attention whose first ``heads`` heads (of ``max_heads``) run."""

    def __init__(self, dim: int, max_heads: int, head_dim: int) -> None:
        super().__init__()
        self.head_dim, self.max_heads = head_dim, max_heads
        self.qkv = nn.Linear(dim, 3 * max_heads * head_dim)
        self.proj = nn.Linear(max_heads * head_dim, dim)

    def child_state(self, dim: int, heads: int) -> State:
        """The static ``Attention(dim, heads, head_dim)``'s weights."""
        width = heads * self.head_dim
        qkv_weight: torch.Tensor = self.qkv.weight
        qkv_bias: torch.Tensor = self.qkv.bias
        if width < self.max_heads * self.head_dim or dim < self.qkv.in_features:
            # Queries, keys and values are three row blocks: each keeps its first heads.
            qkv_weight = qkv_weight.view(3, -1, self.qkv.in_features)[:, :width, :dim]
            qkv_weight = qkv_weight.reshape(3 * width, dim)
            qkv_bias = qkv_bias.view(3, -1)[:, :width].reshape(3 * width)
        return {
            "qkv.weight": qkv_weight,
            "qkv.bias": qkv_bias,
            "proj.weight": lead(self.proj.weight, dim, width),
            "proj.bias": lead(self.proj.bias, dim),
        }

    def forward(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, dim = x.shape
        w = self.child_state(dim, heads)
        qkv = F.linear(x, w["qkv.weight"], w["qkv.bias"]).view(b, n, 3, heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, heads * self.head_dim)
        return F.linear(out, w["proj.weight"], w["proj.bias"])


class ElasticMlp(nn.Module):
    """An MLP whose first ``hidden`` units (of the largest) run."""

    def __init__(self, dim: int, max_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, max_hidden)
        self.fc2 = nn.Linear(max_hidden, dim)

    def child_state(self, dim: int, hidden: int) -> State:
        """The static ``Mlp(dim, hidden)``'s weights (``0`` / ``2``: its two linears)."""
        return {
            "0.weight": lead(self.fc1.weight, hidden, dim),
            "0.bias": lead(self.fc1.bias, hidden),
            "2.weight": lead(self.fc2.weight, dim, hidden),
            "2.bias": lead(self.fc2.bias, dim),
        }

    def forward(self, x: torch.Tensor, hidden: int) -> torch.Tensor:
        w = self.child_state(x.shape[-1], hidden)
        x = F.gelu(F.linear(x, w["0.weight"], w["0.bias"]))
        return F.linear(x, w["2.weight"], w["2.bias"])


class ElasticBlock(nn.Module):
    """A pre-norm transformer block at any width, heads and MLP width of its stage."""

    def __init__(self, dim: int, max_heads: int, head_dim: int, max_mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ElasticAttention(dim, max_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ElasticMlp(dim, max_mlp)

    def child_state(self, dim: int, block: BlockArch) -> State:
        return {
            **_prefixed("norm1", _norm_state(self.norm1, dim)),
            **_prefixed("attn", self.attn.child_state(dim, block.heads)),
            **_prefixed("norm2", _norm_state(self.norm2, dim)),
            **_prefixed("mlp", self.mlp.child_state(dim, block.mlp)),
        }

    def forward(self, x: torch.Tensor, block: BlockArch, rate: float) -> torch.Tensor:
        x = x + drop_path(self.attn(_layer_norm(self.norm1, x), block.heads), rate, self.training)
        mlp = self.mlp(_layer_norm(self.norm2, x), block.mlp)
        return x + drop_path(mlp, rate, self.training)


class ElasticSpatialReduction(nn.Module):
    """``model.SpatialReduction`` between any widths of the two stages it joins."""

    def __init__(self, max_in: int, max_out: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.norm = nn.LayerNorm(max_in, eps=1e-6)
        self.conv = nn.Conv2d(max_in, max_out, 3, stride=2, padding=1)
        self.token = nn.Linear(max_in, max_out)
        self.pos_embed = nn.Parameter(torch.zeros(1, (side // 2) ** 2, max_out))

    def child_state(self, dim_in: int, dim_out: int) -> State:
        return {
            "pos_embed": lead(self.pos_embed, 1, self.pos_embed.shape[1], dim_out),
            **_prefixed("norm", _norm_state(self.norm, dim_in)),
            "conv.weight": lead(self.conv.weight, dim_out, dim_in),
            "conv.bias": lead(_bias(self.conv), dim_out),
            "token.weight": lead(self.token.weight, dim_out, dim_in),
            "token.bias": lead(self.token.bias, dim_out),
        }

    def forward(self, x: torch.Tensor, dim_out: int) -> torch.Tensor:
        b, _, c = x.shape
        w = self.child_state(c, dim_out)
        normed = _layer_norm(self.norm, x)
        grid = normed[:, 1:].transpose(1, 2).reshape(b, c, self.side, self.side)
        patches = F.conv2d(grid, w["conv.weight"], w["conv.bias"], stride=2, padding=1)
        patches = patches.flatten(2).transpose(1, 2) + w["pos_embed"]
        raw = x[:, 1:].transpose(1, 2).reshape(b, c, self.side, self.side)
        pooled = F.avg_pool2d(raw, 2).flatten(2).transpose(1, 2)
        residual = F.pad(torch.cat([x[:, :1], pooled], dim=1), (0, dim_out - c))
        cls = F.linear(normed[:, :1], w["token.weight"], w["token.bias"])
        return torch.cat([cls, patches], dim=1) + residual


class ViTResSupernet(nn.Module):
    """All children of a ViT-ResNAS preset; ``set_active`` picks the one that runs.

    Regularisation: ``set_regularization(drop_connect=r)`` sets the stochastic-depth rate
    of the active child's last block (rising linearly from 0 over its blocks, as in the
    static network); ``dropout`` is accepted and unused (the network has none).
    """

    def __init__(
        self, preset: Preset, in_channels: int, num_classes: int, *, drop_path_rate: float
    ) -> None:
        super().__init__()
        self.preset, self.in_channels, self.num_classes = preset, in_channels, num_classes
        self.image_size = preset.image_size
        side = preset.tokens_side
        widest = [max(spec.dims) for spec in preset.stages]
        self.stem = ConvPatchEmbedding(
            in_channels, preset.stem_channels, preset.stem_stride, preset.patch, widest[0]
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, widest[0]))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, widest[0]))
        self.reductions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, spec in enumerate(preset.stages):
            if i > 0:
                self.reductions.append(ElasticSpatialReduction(widest[i - 1], widest[i], side))
                side //= 2
            blocks = [
                ElasticBlock(widest[i], max(spec.heads), spec.head_dim, max(spec.mlp))
                for _ in range(spec.blocks)
            ]
            self.stages.append(nn.ModuleList(blocks))
        self.norm = nn.LayerNorm(widest[-1], eps=1e-6)
        self.head = nn.Linear(widest[-1], num_classes)
        # The static network's initialisation, at the largest size.
        reference = build_network(
            extreme_arch(preset, max), preset, in_channels, num_classes, drop_path_rate
        )
        self.load_state_dict(self._from_largest(reference.state_dict()))
        self.drop_path_rate = drop_path_rate
        self.sync_batch_norm = False  # set by set_batch_norm_sync for data-parallel training
        self.set_active(extreme_arch(preset, max))

    def _from_largest(self, state: State) -> State:
        """The largest child's state dict renamed to the supernet's module names."""
        renamed = {}
        for name, tensor in state.items():
            parts = name.split(".")
            if parts[0] == "stages":
                block = ".".join(parts[3:])
                block = block.replace("mlp.0.", "mlp.fc1.").replace("mlp.2.", "mlp.fc2.")
                name = ".".join([*parts[:3], block])
            renamed[name] = tensor
        return renamed

    def _reduction(self, index: int) -> ElasticSpatialReduction:
        return cast(ElasticSpatialReduction, self.reductions[index])

    def _block(self, stage: int, position: int) -> ElasticBlock:
        return cast(ElasticBlock, cast(nn.ModuleList, self.stages[stage])[position])

    # ------------------------------------------------------------------ the Supernet protocol
    def set_active(self, arch: ViTResArch) -> None:
        self.active = arch
        self._rates = {
            (b.stage, b.position): b.drop_path
            for b in plan_blocks(arch, self.preset, self.drop_path_rate)
        }

    def set_batch_norm_sync(self, enabled: bool) -> None:
        """Normalise the stem's training batches with statistics over every data-parallel
        process, so that W processes each with a share of a batch compute what one
        process computes (see ``search_spaces.sync_batch_norm``)."""
        self.sync_batch_norm = enabled

    def set_regularization(self, **rates: float) -> None:
        self.drop_path_rate = float(rates.get("drop_connect", self.drop_path_rate))
        self.set_active(self.active)

    def child_state(self, arch: ViTResArch) -> State:
        """The static child's state dict, as slices (views) of the supernet's weights."""
        dims = [stage.dim for stage in arch.stages]
        state: State = {
            "cls_token": self.cls_token[:, :, : dims[0]],
            "pos_embed": self.pos_embed[:, :, : dims[0]],
            "norm.weight": self.norm.weight[: dims[-1]],
            "norm.bias": self.norm.bias[: dims[-1]],
            "head.weight": self.head.weight[:, : dims[-1]],
            "head.bias": self.head.bias,
        }
        for name, tensor in self.stem.state_dict(keep_vars=True).items():
            state[f"stem.{name}"] = tensor[: dims[0]] if name.startswith("proj.") else tensor
        for i in range(1, len(dims)):
            reduction = self._reduction(i - 1).child_state(dims[i - 1], dims[i])
            state.update(_prefixed(f"reductions.{i - 1}", reduction))
        for i, stage in enumerate(arch.stages):
            kept = [(j, b) for j, b in enumerate(stage.blocks) if b is not None]
            for n, (j, block) in enumerate(kept):
                own = self._block(i, j).child_state(stage.dim, block)
                state.update(_prefixed(f"stages.{i}.{n}", own))
        return state

    def extract(self, arch: ViTResArch) -> nn.Module:
        """The static child holding copies of its weights and the stem's BN statistics."""
        child = build_network(
            arch, self.preset, self.in_channels, self.num_classes, self.drop_path_rate
        )
        child.to(device=self.head.weight.device, dtype=self.head.weight.dtype)
        with torch.no_grad():
            state = {name: t.detach().clone() for name, t in self.child_state(arch).items()}
        child.load_state_dict(state, strict=True)
        return child

    # ------------------------------------------------------------------ forward
    def _conv_bn_relu(self, block: ConvBNReLU, x: torch.Tensor) -> torch.Tensor:
        conv, bn = block[0], block[1]
        assert isinstance(bn, nn.BatchNorm2d)
        return F.relu(module_batch_norm(bn, conv(x), self.sync_batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self.active
        if x.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        dim, stem = arch.stages[0].dim, self.stem
        x = self._conv_bn_relu(stem.conv1, x)
        x = x + self._conv_bn_relu(stem.conv3, self._conv_bn_relu(stem.conv2, x))
        proj = stem.proj
        tokens = F.conv2d(x, lead(proj.weight, dim), lead(_bias(proj), dim), stride=proj.stride)
        tokens = tokens.flatten(2).transpose(1, 2)
        cls = lead(self.cls_token, 1, 1, dim).expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + lead(self.pos_embed, 1, self.pos_embed.shape[1], dim)
        for i, stage in enumerate(arch.stages):
            if i > 0:
                x = self._reduction(i - 1)(x, stage.dim)
            for j, block in enumerate(stage.blocks):
                if block is not None:
                    x = self._block(i, j)(x, block, self._rates[(i, j)])
        features = _layer_norm(self.norm, x[:, 0])
        weight = lead(self.head.weight, self.head.out_features, features.shape[-1])
        return F.linear(features, weight, self.head.bias)
