"""The ViT-Res-Tiny reference network and the searched ViT-ResNAS-Tiny as children of the
``imagenet`` space (Liao et al., "Searching for Efficient Multi-Stage Vision
Transformers", 2021; network definitions as printed in the authors' repository,
yilunliao/vit-search: the reference network's and the searched Tiny network's).

Per stage: its width, then one entry per block position, ``(heads, MLP width)`` or None
for a skipped block. Two translations were needed, neither of which changes a parameter
or multiply-add count:

* ViT-Res-Tiny uses 64-wide heads everywhere; the searched space fixes 32 / 48 / 64 per
  stage, so its 3 and 6 heads of 64 in stages 1-2 are written as 6 heads of 32 and 8 of
  48 (the same attention widths, 192 and 384). Its 4 blocks per stage keep positions 0,
  1, 2 and 4 of the space's 6.
* The searched network's definition lists only the blocks that run (5 / 6 / 5), not
  which skippable position a stage dropped; here the last one (position 5) is.
"""

from __future__ import annotations

from search_spaces.vit_resnas.arch import BlockArch, StageArch, ViTResArch

Blocks = list[tuple[int, int] | None]


def _stage(dim: int, blocks: Blocks) -> StageArch:
    return StageArch(dim, tuple(None if b is None else BlockArch(*b) for b in blocks))


def _reference_stage(dim: int, heads: int, mlp: int) -> StageArch:
    block = (heads, mlp)
    return _stage(dim, [block, block, block, None, block, None])


VIT_RES_TINY = ViTResArch(
    (
        _reference_stage(192, 6, 768),
        _reference_stage(384, 8, 1536),
        _reference_stage(768, 12, 3072),
    )
)

VIT_RESNAS_TINY = ViTResArch(
    (
        _stage(176, [(3, 704), (3, 576), (3, 640), (4, 576), (4, 704), None]),
        _stage(352, [(10, 1408), (8, 1408), (8, 1280), (8, 1408), (10, 1280), (10, 1024)]),
        _stage(704, [(10, 2560), (10, 1792), (10, 2816), (8, 2816), (8, 2560), None]),
    )
)

PUBLISHED: dict[str, ViTResArch] = {
    "vit-res-tiny": VIT_RES_TINY,
    "vit-resnas-tiny": VIT_RESNAS_TINY,
}
