"""The static ViT-Res network of one child (Liao et al., "Searching for Efficient
Multi-Stage Vision Transformers", 2021).

A convolutional stem and patch projection make a grid of tokens; a class token and a
positional embedding join them; three stages of pre-norm transformer blocks follow, with
a residual spatial reduction between two stages (the token grid halves, the width grows);
a LayerNorm and a linear classifier read the class token.

The classes below are copied verbatim into exported files, so they import nothing but
torch and spell attention out as plain matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.vit_resnas.arch import ViTResArch, plan_blocks
from search_spaces.vit_resnas.presets import Preset


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias), batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class ConvPatchEmbedding(nn.Module):
    """A 3x3 conv, a residual pair of 3x3 convs, then a ``patch`` x ``patch`` projection
    with stride ``patch``: images (B, C, H, W) to tokens (B, H*W / (stride*patch)^2, dim)."""

    def __init__(self, in_channels: int, channels: int, stride: int, patch: int, dim: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, channels, stride)
        self.conv2 = ConvBNReLU(channels, channels)
        self.conv3 = ConvBNReLU(channels, channels)
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = x + self.conv3(self.conv2(x))
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (the class token included)."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim)  # [queries | keys | values]
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, heads, N, N)
        out = scores.softmax(dim=-1) @ v  # (B, heads, N, head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class Mlp(nn.Sequential):
    """Linear, GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for whole samples, rescale the others."""
    if not training or rate == 0.0:
        return x
    keep = torch.rand(x.shape[0], 1, 1, device=x.device, dtype=x.dtype) >= rate
    return x * keep / (1.0 - rate)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp: int, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_rate, self.training)


class SpatialReduction(nn.Module):
    """Residual spatial reduction between stages: the token grid halves, the width grows.

    The normalised patch tokens, as a 2D map, pass a stride-2 3x3 conv and get a new
    positional embedding; the class token passes a linear layer. Both add to a residual:
    the raw tokens (patches 2x2-average-pooled), zero-padded to the new width.
    """

    def __init__(self, dim_in: int, dim_out: int, side: int) -> None:
        super().__init__()
        self.side, self.pad = side, dim_out - dim_in
        self.norm = nn.LayerNorm(dim_in, eps=1e-6)
        self.conv = nn.Conv2d(dim_in, dim_out, 3, stride=2, padding=1)
        self.token = nn.Linear(dim_in, dim_out)
        self.pos_embed = nn.Parameter(torch.zeros(1, (side // 2) ** 2, dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape  # (B, 1 + side^2, dim_in)
        normed = self.norm(x)
        grid = normed[:, 1:].transpose(1, 2).reshape(b, c, self.side, self.side)
        patches = self.conv(grid).flatten(2).transpose(1, 2) + self.pos_embed
        raw = x[:, 1:].transpose(1, 2).reshape(b, c, self.side, self.side)
        pooled = F.avg_pool2d(raw, 2).flatten(2).transpose(1, 2)
        residual = F.pad(torch.cat([x[:, :1], pooled], dim=1), (0, self.pad))
        return torch.cat([self.token(normed[:, :1]), patches], dim=1) + residual


class ViTRes(nn.Module):
    """The multi-stage vision transformer of one child.

    ``stages`` holds, per stage, its width and its blocks as (heads, head width, MLP
    width, stochastic-depth rate); inputs of another size are resized to ``image_size``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        stem_channels: int,
        stem_stride: int,
        patch: int,
        stages: list[tuple[int, list[tuple[int, int, int, float]]]],
    ) -> None:
        super().__init__()
        self.image_size = image_size
        side = image_size // (stem_stride * patch)
        dim = stages[0][0]
        self.stem = ConvPatchEmbedding(in_channels, stem_channels, stem_stride, patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, dim))
        self.reductions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (width, blocks) in enumerate(stages):
            if i > 0:
                self.reductions.append(SpatialReduction(dim, width, side))
                side //= 2
            dim = width
            self.stages.append(nn.Sequential(*(Block(dim, *block) for block in blocks)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self.apply(_init_weights)
        for embedding in [self.cls_token, self.pos_embed, *self.reductions.parameters()]:
            if embedding.dim() == 3:  # the positional embeddings and the class token
                nn.init.trunc_normal_(embedding, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        tokens = self.stem(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.reductions[i - 1](x)
            x = stage(x)
        return self.head(self.norm(x[:, 0]))


def _init_weights(module: nn.Module) -> None:
    # As in DeiT: truncated-normal linear weights, zero biases; LayerNorm as identity.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def stage_table(
    arch: ViTResArch, preset: Preset, drop_path_rate: float
) -> list[tuple[int, list[tuple[int, int, int, float]]]]:
    """``ViTRes``'s ``stages`` argument for a validated child."""
    table: list[tuple[int, list[tuple[int, int, int, float]]]] = [
        (stage.dim, []) for stage in arch.stages
    ]
    for b in plan_blocks(arch, preset, drop_path_rate):
        table[b.stage][1].append((b.heads, b.head_dim, b.mlp, b.drop_path))
    return table


def build_network(
    arch: ViTResArch, preset: Preset, in_channels: int, num_classes: int, drop_path_rate: float
) -> ViTRes:
    """A freshly initialised static child."""
    return ViTRes(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=preset.image_size,
        stem_channels=preset.stem_channels,
        stem_stride=preset.stem_stride,
        patch=preset.patch,
        stages=stage_table(arch, preset, drop_path_rate),
    )
