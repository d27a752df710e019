"""The contract every search space implements.

A search space turns Optuna ``trial.suggest_*`` calls into an *architecture*: a small,
frozen, JSON-safe value. It never draws random numbers itself, so any Optuna sampler,
Ray Tune, or a replay of stored parameters drives it unchanged.

From an architecture a space can build a ``torch.nn.Module`` and write standalone
PyTorch source code for it. Architectures read back from a database are untrusted:
``decode`` validates them before anything is built or generated.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Protocol,
    TypeVar,
    cast,
    runtime_checkable,
)

from nas.core.dataspec import DataSpec
from nas.core.errors import CapabilityError, WeightsError
from nas.core.settings import NoSettings, make_settings

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

ArchT = TypeVar("ArchT")


class SearchSpace(abc.ABC, Generic[ArchT]):
    """A family of architectures with a sampler, a builder and a code generator.

    Subclasses set ``name`` and ``Settings``: a dataclass of their macro settings (the
    ``model.*`` group of the study config; every default lives there), built from the
    constructor's keyword arguments with ``nas.core.settings.make_settings``, so that
    unknown or invalid settings raise ``ConfigError``.

    A space that cannot build networks or write code (a lookup benchmark's table of
    results) leaves ``"build"`` / ``"export"`` out of ``capabilities`` and does not
    override ``build_network`` / ``export_source``: the contract tests skip them, and
    ``nas export`` says so.

    Contract:
        * ``sample`` only calls ``trial.suggest_*`` and is deterministic given the answers.
        * ``decode(encode(a)) == a`` for every valid architecture ``a``.
        * ``decode`` and ``validate`` raise ``ArchitectureError`` on any malformed input,
          whatever its type; they never execute or unpickle anything.
        * ``build_network`` returns a module whose ``forward(x)`` returns class logits of shape
          ``(batch, num_classes)``.
        * ``export_source`` returns Python source that imports only torch and defines
          ``build_network() -> nn.Module``; that module loads ``export_state_dict(model)``
          with ``strict=True`` and computes the same eval-mode outputs as ``model``.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "search"  # what kind of space, for messages ("weight-sharing")
    Settings: ClassVar[type[Any]] = NoSettings
    capabilities: ClassVar[frozenset[str]] = frozenset({"build", "export"})
    # Whether valid members may compute NaN or infinite values, which an evaluator's
    # screening rejects (EvoNorm's layers): the contract suite checks finite ones only.
    screened: ClassVar[bool] = False
    # Named bundles of settings (a published network's macro settings), chosen with the
    # setting ``preset`` (``model.preset=NAME``); settings given beside it win.
    setting_presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, **options: Any) -> None:
        preset = self.setting_presets.get(str(options.get("preset", "")), {})
        self.settings = make_settings(self.Settings, {**preset, **options}, "model")

    def can(self, capability: str) -> bool:
        """Whether the space does ``capability`` (``"build"``, ``"export"``)."""
        return capability in self.capabilities

    @abc.abstractmethod
    def sample(self, trial: optuna.trial.BaseTrial) -> ArchT:
        """Draw an architecture through ``trial.suggest_*`` calls only."""

    @abc.abstractmethod
    def encode(self, arch: ArchT) -> dict[str, Any]:
        """A JSON-safe representation of ``arch``."""

    @abc.abstractmethod
    def decode(self, data: Any) -> ArchT:
        """Parse and validate an untrusted encoded architecture."""

    @abc.abstractmethod
    def validate(self, arch: ArchT) -> None:
        """Raise ``ArchitectureError`` if ``arch`` is not a member of this space."""

    def build(
        self, arch: ArchT, data: DataSpec, weights: Mapping[str, torch.Tensor] | None = None
    ) -> nn.Module:
        """The network for ``arch``, freshly initialised, or starting from ``weights``.

        ``weights`` is a state dict of this very network (names and shapes must match;
        ``WeightsError`` says which do not). Weight-sharing spaces also take their
        supernet's, so that a child (a pruned network) inherits the trained weights.
        """
        model = self.build_network(arch, data)
        if weights is not None:
            load_weights(model, weights)
        return model

    def build_network(self, arch: ArchT, data: DataSpec) -> nn.Module:
        """A freshly initialised network for ``arch`` (spaces override this; ``build``
        adds the weights to start from)."""
        raise self._cannot("build", "builds no network")

    def export_source(self, arch: ArchT, data: DataSpec) -> str:
        """Readable standalone PyTorch source defining ``build_network()``."""
        raise self._cannot("export", "exports no code")

    def _cannot(self, capability: str, what: str) -> Exception:
        if self.can(capability):  # declared, but not written: a bug in the space
            return NotImplementedError(f"{type(self).__name__}.{capability} is missing.")
        return CapabilityError(f"Search space '{self.name}' {what}.")

    def describe(self, arch: ArchT) -> str:
        """A short human-readable form of ``arch`` (one line where possible)."""
        return str(arch)

    def equivalence_key(self, arch: ArchT) -> str:
        """One string per network ``arch`` computes: a study evaluates each key once
        (``reuse_results``) and evolution breeds only new keys. By default the canonical
        encoding; a space whose encodings can compute the same network (EvoNorm's graphs
        with dead or reordered nodes) gives a canonical form of what it computes."""
        import json

        return json.dumps(self.encode(arch), sort_keys=True, separators=(",", ":"))

    def suggestions(self, arch: ArchT) -> dict[str, Any]:
        """The ``suggest_*`` answers that make ``sample`` return ``arch`` (so that a
        named architecture can be enqueued as a trial: ``baselines=[...]``).

        Optional; the base class has none and ``baselines`` then refuses the space.
        """
        raise CapabilityError(
            f"Search space '{self.name}' cannot enqueue named architectures as trials; "
            "leave out baselines=."
        )

    def skeleton_params(self) -> set[str]:
        """Names of the coarse parameters ``sample`` asks (resolution, depth, width...).

        Optional: a space that has them can be searched with ``strategy=coarse_to_fine``
        (BigNAS's selection: skeletons first, then mutation of the fine choices around
        the best). The base class has none, and the strategy then refuses the space.
        """
        raise NotImplementedError

    def named_architectures(self) -> Mapping[str, ArchT]:
        """Architectures from the literature that belong to this space, by name."""
        return {}

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The weights that the exported network loads (training-only parts dropped)."""
        return dict(model.state_dict())


@runtime_checkable
class Supernet(Protocol):
    """What a weight-sharing space's supernet offers its trainer and evaluator.

    ``set_regularization`` takes rates by name (``dropout=..., drop_connect=...``): the
    ones a supernet knows; a trainer passes the rates its settings hold. Optionally a
    supernet has ``set_batch_norm_sync(enabled)`` (see ``WeightSharingSpace``).
    """

    def set_active(self, arch: Any) -> None:
        """Later forward passes run the child ``arch``."""

    def set_regularization(self, **rates: float) -> None:
        """Regularisation of the active child, by name (0 switches one off)."""

    def extract(self, arch: Any) -> nn.Module:
        """A static module holding copies of the child's weights and buffers."""


@runtime_checkable
class DifferentiableSupernet(Supernet, Protocol):
    """A supernet whose architecture is learned by gradient (``DifferentiableSpace``)."""

    def arch_parameters(self) -> list[nn.Parameter]:
        """The parameters of the distributions over the architecture's choices."""

    def derive(self) -> Any:
        """The most likely architecture under the current distributions."""


def check_supernet(module: object) -> Supernet:
    """``module`` as a :class:`Supernet`; ``TypeError`` naming what it lacks."""
    missing = [
        name
        for name in ("set_active", "set_regularization", "extract")
        if not callable(getattr(module, name, None))
    ]
    if missing:
        raise TypeError(
            f"{type(module).__name__} is not a supernet: it lacks {', '.join(missing)} "
            "(see search_spaces.base.Supernet)."
        )
    return cast(Supernet, module)


class WeightSharingSpace(SearchSpace[ArchT]):
    """A space whose architectures are children of one supernet with shared weights.

    Contract (in addition to :class:`SearchSpace`):
        * ``supernet(data)`` returns a module that is a :class:`Supernet`: ``set_active``,
          ``set_regularization`` (rates by name) and ``extract(arch)``: a static module
          (the same structure as ``build(arch, data)``) holding copies of the child's
          weights and BN buffers, whose outputs equal the active supernet's (the contract
          suite checks this: ``search_spaces.contract.check_extract_equals_active``).
          Optionally ``set_batch_norm_sync(enabled)``: BN in training mode then uses
          statistics over every data-parallel process (see
          ``search_spaces.sync_batch_norm``); without it, data-parallel training
          normalises each process's share of the batch on its own.
        * ``largest()`` / ``smallest()`` are the biggest and smallest children (the
          sandwich rule trains both every step).
    """

    kind: ClassVar[str] = "weight-sharing"

    def build(
        self, arch: ArchT, data: DataSpec, weights: Mapping[str, torch.Tensor] | None = None
    ) -> nn.Module:
        """The child ``arch``; ``weights`` may be its own or the whole supernet's: the
        child then inherits its share of them (``extract`` after loading them)."""
        if weights is None or _fits(self.build_network(arch, data), weights):
            return super().build(arch, data, weights)
        supernet = self.supernet(data)
        load_weights(supernet, weights, what="the supernet")
        return check_supernet(supernet).extract(arch)

    @abc.abstractmethod
    def supernet(self, data: DataSpec) -> nn.Module:
        """A freshly initialised supernet holding every child's weights."""

    @abc.abstractmethod
    def largest(self) -> ArchT:
        """The biggest child."""

    @abc.abstractmethod
    def smallest(self) -> ArchT:
        """The smallest child."""


class DifferentiableSpace(WeightSharingSpace[ArchT]):
    """A weight-sharing space searched by gradient (DARTS-like; TAS).

    Contract (in addition to :class:`WeightSharingSpace`): ``supernet(data)`` also has
    ``arch_parameters()``, the learnable parameters of the distributions over choices
    (kept apart from the network weights: they are updated on other data), and
    ``derive()``, the most likely architecture under them, a member of this space. A
    search that learns them derives one architecture per trial (or per study) and
    stores it as the trial's architecture, so ``nas show``, ``export``, resume and
    workers treat it like a sampled one.
    """

    kind: ClassVar[str] = "differentiable"


def _fits(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``weights`` has exactly ``model``'s tensor names and shapes."""
    own = model.state_dict()
    return own.keys() == weights.keys() and all(
        own[name].shape == weights[name].shape for name in own
    )


def load_weights(
    model: nn.Module, weights: Mapping[str, torch.Tensor], *, what: str = "the network"
) -> None:
    """Load ``weights`` strictly into ``model``; ``WeightsError`` naming the first misfit."""
    try:
        model.load_state_dict(dict(weights), strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise WeightsError(f"The weights do not fit {what}: {detail}") from None
