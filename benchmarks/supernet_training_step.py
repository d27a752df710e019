"""Supernet training steps: a child inside the supernet vs the same child as a static
network, and the trainer's two sampling rules against the biggest child's step alone.

``--space bignas`` (default) or ``vit_resnas``, with the settings of the space's study
preset (studies/NAME.yaml). One batch (``--batch`` digits training images for the tiny
preset; random images of ``--resolution`` px and 1000 classes for ``--preset imagenet``),
the same batch every step. A *step* is ``zero_grad``, forward, label-smoothed
cross-entropy, backward and one SGD step (Nesterov momentum, the preset's lr and
momentum).

* ``largest``: the biggest child run by the supernet (``set_active(largest)``, its
  regularisation as the trainer sets it: dropout and drop-connect) vs the same child
  built statically (``space.build(largest, spec)``) holding ``supernet.extract``'s
  weights, with the same regularisation. Target: ratio <= 1.03 (BigNAS), <= 1.05
  (ViT-ResNAS).
* ``smallest``: the same for the smallest child, regularised as the space's sampling
  rule trains it (the sandwich rule: not at all). Target: ratio <= 1.10 (BigNAS).
* ``sandwich``: one full step of ``train_supernet`` -- the trainer's own sandwich step
  (biggest child on the labels plus the L2 penalty, then the smallest and
  ``random_children`` random children distilled from it, gradients accumulated),
  gradient clipping and one optimiser step -- vs the sum of the static steps of the
  same four children. The random children are the same two every step (the sampler's
  generator is reseeded before each step), so both sides run the same networks. The
  static side is four plain steps (cross-entropy, no distillation, L2 penalty or
  clipping: those are small next to the networks). No target: the ratio shows what
  sharing weights costs per step.
* ``multi_arch``: one step of multi-architectural sampling (ViT-ResNAS: the batch split
  into ``sub_batches`` chunks, a random child on each, one forward and backward pass)
  vs the static steps of the same children, each on its chunk.

A second table compares the three supernet steps on the same batch in the same run:
the sandwich and multi-architectural steps against the biggest child's step alone.

The two sides of a row alternate step by step (A, B, A, B, ...) after ``--warmup``
steps of each; ``ms`` is the median of ``--steps`` timed steps.

    python benchmarks/supernet_training_step.py [--space vit_resnas] [--steps 30] [--batch 64]
    python benchmarks/supernet_training_step.py --preset imagenet --resolution 192 --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from _table import Column, print_table

TARGETS = {
    "bignas": {"largest": 1.03, "smallest": 1.10},
    "vit_resnas": {"largest": 1.05},  # ViT-ResNAS's issue sets the biggest child's only
}
CHILD_SEED = 1  # seeds the two random children of the sandwich row


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per side first")
    parser.add_argument("--space", choices=tuple(TARGETS), default="bignas")
    parser.add_argument("--preset", choices=("tiny", "imagenet"), default="tiny")
    parser.add_argument("--batch", type=int, default=None, help="default: 64 (tiny), 8")
    parser.add_argument(
        "--resolution", type=int, default=None, help="image side of --preset imagenet"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 64 if args.preset == "tiny" else 8
    if args.resolution is None:  # BigNAS's smallest resolution; the transformer's only one
        args.resolution = 192 if args.space == "bignas" else 224
    for name in ("steps", "batch", "resolution", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, but got {args.warmup}.")
    return args


def _batch(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(spec, images, labels): digits for tiny, random ImageNet-sized images otherwise."""
    import torch

    from nas.core.dataspec import DataSpec

    if args.preset == "tiny":
        from nas.data import load_dataset

        data = load_dataset("digits")
        pairs = [data.train[i] for i in range(min(args.batch, data.num_train))]
        images = torch.stack([image for image, _ in pairs])
        labels = torch.as_tensor([int(label) for _, label in pairs])
        return data.spec, images, labels
    spec = DataSpec(in_channels=3, num_classes=1000, image_size=args.resolution)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(spec.input_shape(args.batch), generator=generator)
    labels = torch.randint(0, spec.num_classes, (args.batch,), generator=generator)
    return spec, images, labels


def _optimizer(params: Any, settings: Any) -> Any:
    """The trainer's optimizer for the settings (Nesterov SGD or AdamW)."""
    from evaluators.supernet_steps import OPTIMIZERS

    return OPTIMIZERS[settings.optimizer](list(params), settings)


def _plain_step(model: Any, optimizer: Any, criterion: Any, images: Any, labels: Any) -> None:
    optimizer.zero_grad(set_to_none=True)
    criterion(model(images), labels).backward()
    optimizer.step()


def _static_child(space: Any, supernet: Any, arch: Any, spec: Any, regularization: Any) -> Any:
    """``space.build(arch)`` holding the supernet's weights for ``arch``, in training mode.

    A static network without ``set_regularization`` (a ViT-ResNAS child) takes its
    stochastic-depth rate from the space it is built by."""
    from search_spaces import create_space

    if not hasattr(space.build_network(arch, spec), "set_regularization"):
        settings = {**vars(space.settings), "drop_path": regularization["drop_connect"]}
        space = create_space(space.name, **settings)
    model = space.build(arch, spec)
    model.load_state_dict(supernet.extract(arch).state_dict())
    if hasattr(model, "set_regularization"):
        model.set_regularization(**regularization)
    return model.train()


def _interleave(
    a: Callable[[], None], b: Callable[[], None], steps: int, warmup: int
) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run alternately."""
    for _ in range(warmup):
        a()
        b()
    times_a, times_b = [], []
    for _ in range(steps):
        for step, times in ((a, times_a), (b, times_b)):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
    return statistics.median(times_a), statistics.median(times_b)


def _child_row(
    name: str, arch: Any, regularization: dict[str, float], ctx: dict[str, Any]
) -> dict[str, Any]:
    from torch import nn

    space, supernet, spec, settings = ctx["space"], ctx["supernet"], ctx["spec"], ctx["settings"]
    images, labels, args = ctx["images"], ctx["labels"], ctx["args"]
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    supernet.set_active(arch)
    supernet.set_regularization(**regularization)
    static = _static_child(space, supernet, arch, spec, regularization)
    shared_opt = _optimizer(supernet.parameters(), settings)
    static_opt = _optimizer(static.parameters(), settings)
    shared_s, static_s = _interleave(
        lambda: _plain_step(supernet, shared_opt, criterion, images, labels),
        lambda: _plain_step(static, static_opt, criterion, images, labels),
        args.steps,
        args.warmup,
    )
    return _row(ctx, name, space.describe(arch), shared_s, static_s, 1)


def _drawn_children(space: Any, count: int) -> list[Any]:
    """The random children a rule's step draws from ``CHILD_SEED``, in order."""
    import numpy as np

    from nas.core.random_trial import RandomTrial

    rng = np.random.default_rng(CHILD_SEED)
    return [space.sample(RandomTrial(rng)) for _ in range(count)]


def _rule_row(
    ctx: dict[str, Any], name: str, rule: Any, plan: list[tuple[Any, ...]], describe: str
) -> dict[str, Any]:
    """One step of the trainer's own sampling ``rule`` (its random children redrawn from
    ``CHILD_SEED`` every step, so each step runs the same networks), gradient clipping and
    an optimiser step, vs plain static steps of ``plan``'s children: (arch, regularisation,
    images, labels) each."""
    import numpy as np
    import torch
    from torch import nn

    from evaluators.supernet_steps import ChildPerChunk, StepContext

    space, supernet, spec, settings = ctx["space"], ctx["supernet"], ctx["spec"], ctx["settings"]
    images, labels, args = ctx["images"], ctx["labels"], ctx["args"]
    params = [p for p in supernet.parameters() if p.requires_grad]
    optimizer = _optimizer(params, settings)
    children = np.random.default_rng(CHILD_SEED)
    start = children.bit_generator.state
    chunks = ChildPerChunk(supernet)
    step = rule(StepContext(space, supernet, chunks, settings, params, children, chunks))

    def shared() -> None:
        children.bit_generator.state = start  # the same children every step
        optimizer.zero_grad(set_to_none=True)
        step.step(images, labels)
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()

    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    statics = []
    for arch, regularization, x, y in plan:
        model = _static_child(space, supernet, arch, spec, regularization)
        statics.append((model, _optimizer(model.parameters(), settings), x, y))

    def static_sum() -> None:
        for model, opt, x, y in statics:
            _plain_step(model, opt, criterion, x, y)

    supernet.train()
    torch.manual_seed(0)
    shared_s, static_s = _interleave(shared, static_sum, args.steps, args.warmup)
    return _row(ctx, name, describe, shared_s, static_s, len(plan))


def _sandwich_row(ctx: dict[str, Any]) -> dict[str, Any]:
    from evaluators.supernet_steps import SandwichRule

    space, settings = ctx["space"], ctx["settings"]
    images, labels = ctx["images"], ctx["labels"]
    randoms = _drawn_children(space, settings.random_children)
    biggest = {"dropout": settings.dropout, "drop_connect": settings.drop_connect}
    none = {"dropout": 0.0, "drop_connect": 0.0}
    plan = [(space.largest(), biggest, images, labels), (space.smallest(), none, images, labels)]
    plan += [(arch, none, images, labels) for arch in randoms]
    describe = f"{len(plan)} children: largest, smallest, 2 random (seed {CHILD_SEED})"
    return _rule_row(ctx, "sandwich", SandwichRule, plan, describe)


def _multi_arch_row(ctx: dict[str, Any]) -> dict[str, Any]:
    from evaluators.supernet_steps import MultiArchSampling

    space, settings = ctx["space"], ctx["settings"]
    images, labels = ctx["images"], ctx["labels"]
    count = min(settings.sub_batches, len(labels))
    rates = {"dropout": settings.dropout, "drop_connect": settings.drop_connect}
    # Example i goes to child i mod count.
    plan = [
        (arch, rates, images[k::count], labels[k::count])
        for k, arch in enumerate(_drawn_children(space, count))
    ]
    describe = f"{count} random children, one per sub-batch (seed {CHILD_SEED})"
    return _rule_row(ctx, "multi_arch", MultiArchSampling, plan, describe)


def _row(
    ctx: dict[str, Any], name: str, arch: str, shared: float, static: float, children: int
) -> dict[str, Any]:
    ratio = shared / static
    target = TARGETS[ctx["args"].space].get(name)
    return {
        "variant": name,
        "arch": arch,
        "children": children,
        "supernet_ms": shared * 1000,
        "static_ms": static * 1000,
        "ratio": ratio,
        "target": target,
        "passed": None if target is None else ratio <= target,
    }


def _print_table(rows: list[dict[str, Any]], header_line: str) -> None:
    def target(row: Mapping[str, Any]) -> str:
        return "-" if row["target"] is None else f"{row['target']:.2f}"

    def result(row: Mapping[str, Any]) -> str:
        return "-" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")

    print_table(
        header_line,
        [
            Column("variant", "variant", "<10"),
            Column("supernet ms", "supernet_ms", ">11.2f"),
            Column("static ms", "static_ms", ">10.2f"),
            Column("ratio", lambda row: f"{row['ratio']:.3f}x", ">7"),
            Column("target", target, ">7"),
            Column("result", result, ">6"),
            Column(" child", lambda row: f" {row['arch']}", ""),
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print its table and return its rows."""
    import torch

    from evaluators import SupernetSettings
    from nas.config import compose_search, to_container
    from search_spaces import create_space

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    config = compose_search([f"space={args.space}"])
    settings = SupernetSettings(**to_container(config.supernet))
    space = create_space(args.space, **{**to_container(config.model), "preset": args.preset})
    spec, images, labels = _batch(args)
    torch.manual_seed(0)
    supernet = space.supernet(spec).train()
    ctx = {
        "space": space,
        "supernet": supernet,
        "spec": spec,
        "settings": settings,
        "images": images,
        "labels": labels,
        "args": args,
    }
    biggest = {"dropout": settings.dropout, "drop_connect": settings.drop_connect}
    # The sandwich rule regularises the biggest child only; multi_arch every child.
    others = biggest if settings.sampling == "multi_arch" else dict.fromkeys(biggest, 0.0)
    rows = [
        _child_row("largest", space.largest(), biggest, ctx),
        _child_row("smallest", space.smallest(), others, ctx),
        _sandwich_row(ctx),
        _multi_arch_row(ctx),
    ]
    _print_table(
        rows,
        f"{args.space} training step: preset {args.preset}, batch {args.batch} x "
        f"{tuple(images.shape[1:])}, {settings.optimizer} lr {settings.lr:g}, "
        f"sub-batches {settings.sub_batches}, median of {args.steps} interleaved steps "
        f"after {args.warmup} warm-up, {torch.get_num_threads()} torch threads, cpu",
    )
    _print_rules(rows)
    return rows


def _print_rules(rows: list[dict[str, Any]]) -> None:
    """The sampling rules' steps against the biggest child's step alone (same batch)."""
    alone = next(row for row in rows if row["variant"] == "largest")["supernet_ms"]
    rules = [
        {"step": "biggest child alone", "ms": alone, "children": 1},
        *(
            {"step": row["variant"], "ms": row["supernet_ms"], "children": row["children"]}
            for row in rows
            if row["variant"] in ("sandwich", "multi_arch")
        ),
    ]
    print()
    print_table(
        "one supernet step per rule, same batch, same run",
        [
            Column("step", "step", "<20"),
            Column("children", "children", ">8"),
            Column("ms", "ms", ">9.2f"),
            Column("vs alone", lambda row: f"{row['ms'] / alone:.2f}x", ">9"),
        ],
        rules,
    )


if __name__ == "__main__":
    main()
