"""Children of the BigNAS ``imagenet`` space at the published BigNASModels' sizes.

Yu et al., "BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models"
(ECCV 2020) give BigNASModel-S 242M multiply-adds / 4.5M parameters, M 418M / 5.5M,
L 586M / 6.4M and XL 1040M / 9.5M, but not their per-stage choices, and no public
reimplementation lists them. These are the children whose size, counted by the
project's counters, is nearest the published one, as found by
``benchmarks/bignas_published_children.py`` (seed 0): the sizes are the paper's, the
architectures are not.

Stored encoded, as a study stores architectures; ``BigNASSpace.named_architectures``
decodes (and so validates) them.
"""

from __future__ import annotations

from typing import Any

PUBLISHED_CHILDREN: dict[str, dict[str, Any]] = {
    # BigNASModel-S
    "bignas-s": {
        "resolution": 192,
        "stem": 32,
        "stages": [
            {"width": 16, "depth": 1, "kernels": [3], "expands": [1]},
            {"width": 24, "depth": 2, "kernels": [3, 3], "expands": [6, 6]},
            {"width": 40, "depth": 2, "kernels": [3, 3], "expands": [6, 6]},
            {"width": 80, "depth": 4, "kernels": [3, 3, 3, 5], "expands": [6, 6, 6, 6]},
            {"width": 112, "depth": 2, "kernels": [5, 3], "expands": [6, 6]},
            {"width": 208, "depth": 2, "kernels": [5, 5], "expands": [6, 6]},
            {"width": 352, "depth": 1, "kernels": [5], "expands": [6]},
        ],
        "head": 1408,
    },
    # BigNASModel-M
    "bignas-m": {
        "resolution": 192,
        "stem": 32,
        "stages": [
            {"width": 24, "depth": 2, "kernels": [3, 3], "expands": [1, 1]},
            {"width": 32, "depth": 3, "kernels": [3, 3, 3], "expands": [6, 6, 6]},
            {"width": 48, "depth": 2, "kernels": [3, 5], "expands": [6, 6]},
            {"width": 80, "depth": 3, "kernels": [3, 5, 3], "expands": [6, 6, 6]},
            {"width": 128, "depth": 4, "kernels": [3, 5, 5, 3], "expands": [6, 6, 6, 6]},
            {"width": 200, "depth": 3, "kernels": [5, 3, 3], "expands": [6, 6, 6]},
            {"width": 352, "depth": 1, "kernels": [5], "expands": [6]},
        ],
        "head": 1344,
    },
    # BigNASModel-L
    "bignas-l": {
        "resolution": 224,
        "stem": 32,
        "stages": [
            {"width": 24, "depth": 1, "kernels": [3], "expands": [1]},
            {"width": 32, "depth": 3, "kernels": [3, 3, 3], "expands": [6, 6, 6]},
            {"width": 48, "depth": 2, "kernels": [5, 5], "expands": [6, 6]},
            {"width": 88, "depth": 4, "kernels": [5, 3, 3, 5], "expands": [6, 6, 6, 6]},
            {"width": 112, "depth": 4, "kernels": [3, 3, 3, 3], "expands": [6, 6, 6, 6]},
            {"width": 208, "depth": 4, "kernels": [5, 5, 5, 5], "expands": [6, 6, 6, 6]},
            {"width": 352, "depth": 1, "kernels": [5], "expands": [6]},
        ],
        "head": 1408,
    },
    # BigNASModel-XL
    "bignas-xl": {
        "resolution": 288,
        "stem": 40,
        "stages": [
            {"width": 16, "depth": 2, "kernels": [3, 3], "expands": [1, 1]},
            {"width": 32, "depth": 2, "kernels": [3, 3], "expands": [6, 6]},
            {"width": 48, "depth": 3, "kernels": [5, 3, 5], "expands": [6, 6, 6]},
            {"width": 88, "depth": 3, "kernels": [5, 3, 3], "expands": [6, 6, 6]},
            {"width": 112, "depth": 3, "kernels": [5, 3, 5], "expands": [6, 6, 6]},
            {
                "width": 216,
                "depth": 6,
                "kernels": [5, 3, 5, 3, 5, 3],
                "expands": [6, 6, 6, 6, 6, 6],
            },
            {"width": 344, "depth": 2, "kernels": [5, 5], "expands": [6, 6]},
        ],
        "head": 1376,
    },
}
