"""The elastic dimensions of the ViT-ResNAS space: what each preset lets a child choose.

``imagenet`` is the authors' Tiny supernet (Liao et al., "Searching for Efficient
Multi-Stage Vision Transformers", 2021; ``sr_tiny_mh`` in their code, the space their
Tiny scripts search): 224 px images, a convolutional stem and a 14x14 patch projection
(16x16 tokens), three stages of six pre-norm transformer blocks with head widths 32 / 48
/ 64, of which blocks 2, 4 and 6 of each stage may be skipped. ``tiny`` keeps that shape,
sized for the embedded 8x8 digits so that a supernet trains on a CPU in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


@dataclass(frozen=True)
class StageSpec:
    """Choices of one stage of transformer blocks.

    Attributes:
        dims: Embedding widths of the stage (one per child, shared by its blocks).
        heads: Attention heads of a block, each ``head_dim`` wide.
        head_dim: Width of one attention head (not searched).
        mlp: Hidden widths of a block's MLP.
        blocks: Blocks in the supernet's stage.
        skippable: Indices (from 0) of the blocks a child may skip.
    """

    dims: tuple[int, ...]
    heads: tuple[int, ...]
    head_dim: int
    mlp: tuple[int, ...]
    blocks: int
    skippable: tuple[int, ...]


@dataclass(frozen=True)
class Preset:
    """Every elastic choice of the space, plus the fixed layout and regularisation.

    Attributes:
        image_size: The side the network runs at (inputs of another size are resized).
        stem_channels: Width of the convolutional stem before the patch projection.
        stem_stride: Stride of the stem's first 3x3 conv.
        patch: Kernel and stride of the patch projection after the stem.
        stages: The stages; a residual spatial reduction (stride 2) sits between two.
        drop_path: Stochastic-depth rate of the last block (linear in depth).
    """

    name: str
    image_size: int
    stem_channels: int
    stem_stride: int
    patch: int
    stages: tuple[StageSpec, ...]
    drop_path: float

    def __post_init__(self) -> None:
        # Presets are code, not input: a broken one is a programming error.
        assert self.stages and self.image_size % (self.stem_stride * self.patch) == 0
        previous = 0
        for stage in self.stages:
            for choices in (stage.dims, stage.heads, stage.mlp):
                assert choices and tuple(sorted(set(choices))) == choices and choices[0] >= 1
            assert all(0 <= j < stage.blocks for j in stage.skippable)
            # The residual path zero-pads channels, so a stage never narrows.
            assert stage.dims[0] >= previous
            previous = stage.dims[-1]

    @property
    def tokens_side(self) -> int:
        """Side of the first stage's token grid."""
        return self.image_size // (self.stem_stride * self.patch)


IMAGENET = Preset(
    name="imagenet",
    image_size=224,
    stem_channels=24,
    stem_stride=2,
    patch=7,
    stages=(
        StageSpec((160, 176, 192, 224, 256), (3, 4, 5, 6), 32, _steps(384, 768, 64), 6, (1, 3, 5)),
        StageSpec(
            (320, 352, 384, 448, 512), (6, 8, 10, 12), 48, _steps(768, 1536, 128), 6, (1, 3, 5)
        ),
        StageSpec(
            (640, 704, 768, 896, 1024), (6, 8, 10, 12), 64, _steps(1536, 3072, 256), 6, (1, 3, 5)
        ),
    ),
    drop_path=0.2,
)

# Sized for 8x8 grey digits on a CPU: a stride-1 stem, 2x2 patches (4x4 tokens), then
# 2x2 and 1x1 token grids; two to three blocks per stage.
TINY = Preset(
    name="tiny",
    image_size=8,
    stem_channels=16,
    stem_stride=1,
    patch=2,
    stages=(
        StageSpec((24, 32, 40), (2, 3, 4), 8, (48, 64, 80, 96), 3, (1, 2)),
        StageSpec((48, 56, 64), (2, 3, 4), 12, (96, 128, 160, 192), 3, (1, 2)),
        StageSpec((80, 96, 112), (3, 4, 5), 16, (160, 224, 288, 352), 2, (1,)),
    ),
    drop_path=0.05,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (IMAGENET, TINY)}
