"""The elastic dimensions of the BigNAS space: what each preset lets a child choose.

A preset fixes the supernet's layout (stage count, strides) and the choices of every
elastic dimension. ``imagenet`` is the paper's MobileNetV3-like space (PAPERS.md);
``tiny`` keeps its shape but is sized for the embedded 8x8 digits so that a supernet
trains on a laptop CPU in a minute or two.
"""

from __future__ import annotations

from dataclasses import dataclass


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


@dataclass(frozen=True)
class StageSpec:
    """Choices of one stage of MBConv blocks; the first block has the stage's stride."""

    widths: tuple[int, ...]  # output channels of every block of the stage
    depths: tuple[int, ...]  # blocks that run: the first `depth` of max(depths)
    kernels: tuple[int, ...]  # depthwise kernel size, per block
    expands: tuple[int, ...]  # expansion ratio of the block's input channels, per block
    stride: int

    @property
    def max_depth(self) -> int:
        return max(self.depths)


@dataclass(frozen=True)
class Preset:
    """Every elastic choice of the space, plus the regularisation defaults."""

    name: str
    resolutions: tuple[int, ...]  # input side the network resizes its images to
    stems: tuple[int, ...]  # output channels of the stem 3x3 conv
    stem_stride: int
    stages: tuple[StageSpec, ...]
    heads: tuple[int, ...]  # output channels of the last 1x1 conv before pooling
    dropout: float  # default dropout before the classifier (biggest child)
    drop_connect: float  # default stochastic-depth rate of the last block (biggest child)

    def __post_init__(self) -> None:
        # Presets are code, not input: a broken one is a programming error.
        choices = [self.resolutions, self.stems, self.heads]
        for stage in self.stages:
            choices += [stage.widths, stage.depths, stage.kernels, stage.expands]
            assert min(stage.depths) >= 1 and all(k % 2 == 1 for k in stage.kernels)
        assert self.stages and all(c and tuple(sorted(set(c))) == c for c in choices)
        assert all(v >= 1 for c in choices for v in c)


# The paper's space (BigNAS, Yu et al. 2020, as given in PAPERS.md): channel step 8,
# MB1..MB7, last conv 1280-1408, input resolution 192-320 (step 32).
IMAGENET = Preset(
    name="imagenet",
    resolutions=_steps(192, 320, 32),
    stems=_steps(32, 40, 8),
    stem_stride=2,
    stages=(
        StageSpec(_steps(16, 24, 8), (1, 2), (3,), (1,), stride=1),
        StageSpec(_steps(24, 32, 8), (2, 3), (3,), (6,), stride=2),
        StageSpec(_steps(40, 48, 8), (2, 3), (3, 5), (6,), stride=2),
        StageSpec(_steps(80, 88, 8), (2, 3, 4), (3, 5), (6,), stride=2),
        StageSpec(_steps(112, 128, 8), _steps(2, 6, 1), (3, 5), (6,), stride=1),
        StageSpec(_steps(192, 216, 8), _steps(2, 6, 1), (3, 5), (6,), stride=2),
        StageSpec(_steps(320, 352, 8), (1, 2), (3, 5), (6,), stride=1),
    ),
    heads=_steps(1280, 1408, 8),
    dropout=0.1,
    drop_connect=0.1,
)

# Sized for 8x8 grey digits on a CPU (the biggest child's training step on a batch of 64
# takes ~35 ms on two cores): inputs upsampled to 10-16 px, a stride-1 stem, an MB1-like
# stage without expansion, then two stride-2 stages (16 -> 8 -> 4 px at resolution 16).
# The biggest child has ~13x the FLOPs of the smallest.
TINY = Preset(
    name="tiny",
    resolutions=_steps(10, 16, 2),
    stems=(8, 16),
    stem_stride=1,
    stages=(
        StageSpec((8, 16), (1,), (3, 5), (1,), stride=1),
        StageSpec((16, 24), (2, 3), (3, 5), (2, 3), stride=2),
        StageSpec((32, 40, 48), (2, 3), (3, 5), (2, 3), stride=2),
    ),
    heads=(64, 96, 128),
    dropout=0.1,
    drop_connect=0.05,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (IMAGENET, TINY)}
