"""The contract suite of ``SearchSpace``: checks any space passes, yours included.

    from search_spaces.contract import check_space

    def test_my_space_keeps_the_contract(tmp_path):
        check_space(MySpace(), tmp_path)

Each check raises ``AssertionError`` saying what broke. ``check_space`` runs every check
the space's ``capabilities`` allow (a lookup space that builds no network skips the
build and export checks), for a ``WeightSharingSpace`` that every extracted child
computes what the active supernet computes, and for a ``DifferentiableSpace`` that its
supernet derives a member of the space. It returns the names of the checks run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.core.dataspec import DataSpec
from nas.core.errors import ArchitectureError, WeightsError
from search_spaces.base import (
    DifferentiableSpace,
    DifferentiableSupernet,
    SearchSpace,
    WeightSharingSpace,
    check_supernet,
)

DEFAULT_SPECS = (
    DataSpec(in_channels=1, num_classes=10, image_size=8),
    DataSpec(in_channels=3, num_classes=5, image_size=16),
)
GARBAGE: tuple[object, ...] = (None, "arch", 3, [], {}, {"unexpected": 1}, [[1, 2]])


def sampled(
    space: SearchSpace[Any], count: int, seed: int = 0, spec: DataSpec | None = None
) -> list[Any]:
    """``count`` architectures drawn by Optuna's random sampler that ``validate`` accepts.

    A space may sample what it then refuses (EvoNorm's graphs whose output ignores the
    input), which a search records as a rejected candidate; the checks use members. For
    a ``screened`` space, given ``spec``, only members whose networks compute finite
    outputs (an evaluator rejects the others).
    """
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    members: list[Any] = []
    for _ in range(100 * count):
        arch = space.sample(study.ask())
        try:
            space.validate(arch)
        except ArchitectureError:
            continue
        if spec is not None and space.screened and not _finite(space, arch, spec):
            continue
        members.append(arch)
        if len(members) == count:
            return members
    raise AssertionError(f"fewer than {count} of {100 * count} sampled architectures validate")


def check_round_trip(space: SearchSpace[Any], count: int = 5) -> None:
    """Sampled architectures validate, decode(encode(a)) == a through JSON, and describe."""
    for arch in sampled(space, count):
        space.validate(arch)
        encoded = space.encode(arch)
        assert space.decode(encoded) == arch, f"decode(encode(a)) != a for {arch!r}"
        assert space.decode(json.loads(json.dumps(encoded))) == arch, "not JSON-safe"
        assert space.describe(arch), "describe() returned nothing"


def check_sampling_uses_only_the_trial(space: SearchSpace[Any]) -> None:
    """The same answers from the trial give the same architecture (no hidden randomness)."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    arch = space.sample(trial)
    replay = space.sample(optuna.trial.FixedTrial(trial.params))
    assert replay == arch, "sample() drew randomness of its own: a replay differs"


def check_decode_rejects_garbage(space: SearchSpace[Any]) -> None:
    """Malformed stored architectures raise ``ArchitectureError``, whatever their type."""
    for garbage in GARBAGE:
        try:
            space.decode(garbage)
        except ArchitectureError:
            continue
        raise AssertionError(f"decode({garbage!r}) did not raise ArchitectureError")


def check_build(space: SearchSpace[Any], spec: DataSpec, count: int = 3) -> None:
    """Built networks give finite logits of the right shape and train every parameter."""
    import torch

    torch.manual_seed(0)
    for arch in sampled(space, count, seed=1, spec=spec):
        model = space.build(arch, spec)
        model.train()
        logits = model(torch.randn(spec.input_shape(4)))
        assert logits.shape == (4, spec.num_classes), f"logits of shape {tuple(logits.shape)}"
        assert torch.isfinite(logits).all(), "non-finite logits"
        logits.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"parameters without gradient: {missing[:5]}"
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads), "non-finite gradients"


def check_build_from_weights(space: SearchSpace[Any], spec: DataSpec) -> None:
    """A network built from another's weights computes its outputs; weights that do not
    fit raise ``WeightsError``."""
    import torch

    torch.manual_seed(0)
    arch = sampled(space, 1, seed=11, spec=spec)[0]
    trained = space.build(arch, spec)
    _settle_batch_norm(trained, spec)
    weights = trained.state_dict()
    copy = space.build(arch, spec, weights).eval()
    x = torch.randn(spec.input_shape(2))
    with torch.no_grad():
        assert torch.equal(copy(x), trained(x)), "build(weights=...) differs from their network"
    first = next(iter(weights))
    try:
        space.build(arch, spec, {k: v for k, v in weights.items() if k != first})
    except WeightsError as error:
        assert first in str(error), f"WeightsError does not name {first!r}: {error}"
    else:
        raise AssertionError(f"build() took weights without {first!r}")


def check_export(space: SearchSpace[Any], spec: DataSpec, workdir: Path) -> None:
    """The exported source imports only torch and, run in a fresh interpreter with the
    exported weights, computes the built model's eval-mode outputs (to 1e-5)."""
    import torch

    from search_spaces.testing import ExportCase, imported_modules, max_abs_differences

    torch.manual_seed(0)
    arch = sampled(space, 1, seed=7, spec=spec)[0]
    model = space.build(arch, spec)
    _settle_batch_norm(model, spec)
    x = torch.randn(spec.input_shape(3))
    expected = model(x).detach()
    source = space.export_source(arch, spec)
    assert imported_modules(source) <= {"__future__", "torch"}, "export imports more than torch"
    case = ExportCase(source, space.export_state_dict(model), x, expected)
    difference = max_abs_differences({"net": case}, workdir)["net"]
    assert difference <= 1e-5, f"exported network differs by {difference}"


def check_extract_equals_active(space: WeightSharingSpace[Any], spec: DataSpec) -> None:
    """Every extracted child, and every child built from the supernet's weights (a
    pruned network inheriting them) where the space builds networks, computes the
    active supernet's eval-mode outputs (to 1e-5).

    The supernet's weights are perturbed and its BN statistics moved first, so that
    zero-initialised or untouched parts cannot hide a slicing mistake.
    """
    import torch

    torch.manual_seed(0)
    archs = [space.largest(), space.smallest(), *sampled(space, 3, seed=5)]
    module = space.supernet(spec)
    supernet = check_supernet(module)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        module.train()
        for arch in archs:
            supernet.set_active(arch)
            module(torch.randn(spec.input_shape(16)))
    module.eval()
    x = torch.randn(spec.input_shape(2))
    weights = module.state_dict()
    for arch in archs:
        supernet.set_active(arch)
        with torch.no_grad():
            active = module(x)
            children = [("extract", supernet.extract(arch))]
            if space.can("build"):
                children.append(("build(weights=supernet's)", space.build(arch, spec, weights)))
            for how, child in children:
                difference = (active - child.eval()(x)).abs().max().item()
                assert difference <= 1e-5, f"{space.describe(arch)}: {how} differs by {difference}"


def check_derived_architecture(space: DifferentiableSpace[Any], spec: DataSpec) -> None:
    """A differentiable space's supernet has architecture parameters (apart from its
    weights) and derives a member of the space, as a search by gradient stores it."""
    supernet = space.supernet(spec)
    assert isinstance(supernet, DifferentiableSupernet), "supernet lacks arch_parameters/derive"
    arch_ids = {id(p) for p in supernet.arch_parameters()}
    assert arch_ids, "arch_parameters() is empty"
    space.validate(supernet.derive())
    encoded = space.encode(supernet.derive())
    assert space.decode(json.loads(json.dumps(encoded))) == supernet.derive()


def check_space(
    space: SearchSpace[Any], workdir: Path, specs: Sequence[DataSpec] = DEFAULT_SPECS
) -> list[str]:
    """Run every check that applies to ``space``; the names of those run."""
    run = ["round_trip", "sampling_uses_only_the_trial", "decode_rejects_garbage"]
    check_round_trip(space)
    check_sampling_uses_only_the_trial(space)
    check_decode_rejects_garbage(space)
    if space.can("build"):
        for spec in specs:
            check_build(space, spec)
        check_build_from_weights(space, specs[0])
        run += ["build", "build_from_weights"]
        if space.can("export"):
            check_export(space, specs[0], workdir)
            run.append("export")
    if isinstance(space, WeightSharingSpace):
        for spec in specs:
            check_extract_equals_active(space, spec)
        run.append("extract_equals_active")
    if isinstance(space, DifferentiableSpace):
        check_derived_architecture(space, specs[0])
        run.append("derived_architecture")
    return run


def _finite(space: SearchSpace[Any], arch: Any, spec: DataSpec) -> bool:
    """Whether ``arch``'s network gives finite outputs, training and inference mode."""
    import torch

    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        model = space.build(arch, spec)
        x = torch.randn(spec.input_shape(16))
        return all(bool(torch.isfinite(model.train(mode)(x)).all()) for mode in (True, False))


def _settle_batch_norm(model: Any, spec: DataSpec) -> None:
    """Move BN statistics off their initial values, so that comparisons cover them."""
    import torch

    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(spec.input_shape(16)))
    model.eval()
