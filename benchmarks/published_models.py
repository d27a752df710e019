"""The published models inside the platform's spaces, counted against the papers.

Each row builds a named architecture of a space (with the space's preset of the paper's
macro settings) for the paper's input size and 1000 ImageNet classes (10 CIFAR-10
classes for the CIFAR model) and counts, with the project's own counters, the parameters
the exported network loads (``evaluators.costs.deployed_size``: training-only heads left
out) and the multiply-adds of one image (half of ``nas.metrics.count_flops``). The ratio
columns compare them with the paper's figures; the target is within 1% (parameters) and
2% (multiply-adds).

Papers: Zoph et al., "Learning Transferable Architectures for Scalable Image
Recognition" (CVPR 2018), Tables 1-2; Yu et al., "BigNAS: Scaling Up Neural
Architecture Search with Big Single-Stage Models" (ECCV 2020); Liao et al., "Searching
for Efficient Multi-Stage Vision Transformers" (2021). For the two ViT networks the
reference is the authors' own figure: their Tiny search's MAC limit, 1,794.4M, which is
ViT-Res-Tiny's count by their estimator; the searched ViT-ResNAS-Tiny must lie within
[0.975, 1] of it. Their parameter counts are not given here ("-").

TAS (Dong & Yang, "Network Pruning via Transformable Architecture Search", NeurIPS 2019)
prunes He et al.'s CIFAR ResNets ("Deep Residual Learning for Image Recognition", CVPR
2016, Table 6: 0.27M / 0.46M / 0.85M / 1.7M parameters; ResNet-164 1.7M in "Identity
Mappings in Deep Residual Networks", ECCV 2016), whose strided blocks here have the TAS
authors' pooled 1x1 projection shortcut. The pruned networks are the authors' released
shapes, against the multiply-adds their search estimated (``estimated_FLOP``): exact
where every block is kept; where blocks are dropped, their estimate counts a dropped
block's width as the next stage's input, which the pruned network does not have.

    python benchmarks/published_models.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from _table import Column, print_table


@dataclass(frozen=True)
class Published:
    """A model from a paper and where it lives in the platform."""

    model: str
    space: str
    arch: str  # the space's named architecture
    settings: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224
    num_classes: int = 1000
    params: float | None = None  # as published (None: not given)
    mult_adds: float | None = None  # as published (None: not given)


MODELS = (
    Published(
        "NASNet-A 6@768 (CIFAR-10)", "nasnet", "nasnet-a", {"preset": "cifar"}, 32, 10, 3.3e6
    ),
    Published(
        "NASNet-A Mobile 4@1056",
        "nasnet",
        "nasnet-a",
        {"preset": "mobile"},
        224,
        1000,
        5.3e6,
        564e6,
    ),
    Published(
        "NASNet-A Large 6@4032",
        "nasnet",
        "nasnet-a",
        {"preset": "large"},
        331,
        1000,
        88.9e6,
        23.8e9,
    ),
    # Children fitted to the published sizes (the paper gives no per-stage choices).
    Published(
        "BigNASModel-S", "bignas", "bignas-s", {"preset": "imagenet"}, 192, 1000, 4.5e6, 242e6
    ),
    Published(
        "BigNASModel-M", "bignas", "bignas-m", {"preset": "imagenet"}, 192, 1000, 5.5e6, 418e6
    ),
    Published(
        "BigNASModel-L", "bignas", "bignas-l", {"preset": "imagenet"}, 224, 1000, 6.4e6, 586e6
    ),
    Published(
        "BigNASModel-XL", "bignas", "bignas-xl", {"preset": "imagenet"}, 288, 1000, 9.5e6, 1040e6
    ),
    Published(
        "ViT-Res-Tiny",
        "vit_resnas",
        "vit-res-tiny",
        {"preset": "imagenet"},
        224,
        1000,
        None,
        1794.4e6,
    ),
    Published(
        "ViT-ResNAS-Tiny",
        "vit_resnas",
        "vit-resnas-tiny",
        {"preset": "imagenet"},
        224,
        1000,
        None,
        1794.4e6,
    ),
    Published("CIFAR ResNet-20", "tas", "resnet20", {"preset": "resnet20"}, 32, 10, 0.27e6),
    Published("CIFAR ResNet-32", "tas", "resnet32", {"preset": "resnet32"}, 32, 10, 0.46e6),
    Published("CIFAR ResNet-56", "tas", "resnet56", {"preset": "resnet56"}, 32, 10, 0.85e6),
    Published("CIFAR ResNet-110", "tas", "resnet110", {"preset": "resnet110"}, 32, 10, 1.7e6),
    Published("CIFAR ResNet-164", "tas", "resnet164", {"preset": "resnet164"}, 32, 10, 1.7e6),
    Published(
        "TAS ResNet-20 (C-10)",
        "tas",
        "tas-resnet20-c10",
        {"preset": "resnet20"},
        32,
        10,
        None,
        22.444472e6,
    ),
    Published(
        "TAS ResNet-32 (C-10)",
        "tas",
        "tas-resnet32-c10",
        {"preset": "resnet32"},
        32,
        10,
        None,
        34.945344e6,
    ),
    Published(
        "TAS ResNet-56 (C-10)",
        "tas",
        "tas-resnet56-c10",
        {"preset": "resnet56"},
        32,
        10,
        None,
        57.93305e6,
    ),
    Published(
        "TAS ResNet-56 (C-100)",
        "tas",
        "tas-resnet56-c100",
        {"preset": "resnet56"},
        32,
        100,
        None,
        59.472556e6,
    ),
    Published(
        "TAS ResNet-164 (C-10)",
        "tas",
        "tas-resnet164-c10",
        {"preset": "resnet164"},
        32,
        10,
        None,
        173.023672e6,
    ),
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="rows whose model name contains any of these")
    return parser.parse_args(argv)


def count(published: Published) -> dict[str, Any]:
    import torch

    from nas.core.dataspec import DataSpec
    from nas.report import named_size
    from search_spaces import create_space

    torch.manual_seed(0)
    space = create_space(published.space, **published.settings)
    arch = space.named_architectures()[published.arch]
    spec = DataSpec(3, published.num_classes, published.image_size)
    size = named_size(space, arch, spec)
    macs = size["flops"] / 2
    return {
        "model": published.model,
        "size": published.image_size,
        "paper_params": "-" if published.params is None else f"{published.params / 1e6:.2f}",
        "params": size["params"] / 1e6,
        "params_ratio": "-"
        if published.params is None
        else f"{size['params'] / published.params:.3f}",
        "paper_macs": "-" if published.mult_adds is None else f"{published.mult_adds / 1e6:.0f}",
        "macs": macs / 1e6,
        "macs_ratio": "-" if published.mult_adds is None else f"{macs / published.mult_adds:.3f}",
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import torch

    args = _parse(argv)
    torch.set_num_threads(1)  # counting only; one thread is as fast and never oversubscribes
    chosen = [m for m in MODELS if not args.only or any(o in m.model for o in args.only)]
    rows = [count(m) for m in chosen]
    print_table(
        "published models: parameters (M) and multiply-adds (M) counted by nas vs the papers",
        [
            Column("model", "model", "<28"),
            Column("px", "size", ">4"),
            Column("paper params", "paper_params", ">12"),
            Column("nas params", "params", ">10.3f"),
            Column("ratio", "params_ratio", ">6"),
            Column("paper MACs", "paper_macs", ">10"),
            Column("nas MACs", "macs", ">10.1f"),
            Column("ratio", "macs_ratio", ">6"),
        ],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
