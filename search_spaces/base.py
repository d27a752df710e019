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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

ArchT = TypeVar("ArchT")


@dataclass(frozen=True)
class DataSpec:
    """What a network needs to know about its input data."""

    in_channels: int  # image channels (1 for grey, 3 for RGB)
    num_classes: int
    image_size: int  # square images, height == width

    def input_shape(self, batch_size: int = 1) -> tuple[int, int, int, int]:
        return (batch_size, self.in_channels, self.image_size, self.image_size)


def check_data_spec(data: object) -> DataSpec:
    """``data`` if it is a DataSpec of positive ints; ``ConfigError`` otherwise."""
    from nas.errors import ConfigError

    if not isinstance(data, DataSpec):
        raise ConfigError(f"data must be a DataSpec, got {type(data).__name__}.")
    for field in ("in_channels", "num_classes", "image_size"):
        value = getattr(data, field)
        if type(value) is not int or value < 1:
            raise ConfigError(f"data.{field} must be an integer >= 1, got {value!r}.")
    return data


class SearchSpace(abc.ABC, Generic[ArchT]):
    """A family of architectures with a sampler, a builder and a code generator.

    Subclasses set ``name`` and accept their macro settings (the ``model:`` group of the
    study config) as keyword arguments; unknown or invalid settings raise ``ConfigError``.

    Contract:
        * ``sample`` only calls ``trial.suggest_*`` and is deterministic given the answers.
        * ``decode(encode(a)) == a`` for every valid architecture ``a``.
        * ``decode`` and ``validate`` raise ``ArchitectureError`` on any malformed input,
          whatever its type; they never execute or unpickle anything.
        * ``build`` returns a module whose ``forward(x)`` returns class logits of shape
          ``(batch, num_classes)``.
        * ``export_source`` returns Python source that imports only torch and defines
          ``build_network() -> nn.Module``; that module loads ``export_state_dict(model)``
          with ``strict=True`` and computes the same eval-mode outputs as ``model``.
    """

    name: ClassVar[str]

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

    @abc.abstractmethod
    def build(self, arch: ArchT, data: DataSpec) -> nn.Module:
        """A freshly initialised network for ``arch``."""

    @abc.abstractmethod
    def export_source(self, arch: ArchT, data: DataSpec) -> str:
        """Readable standalone PyTorch source defining ``build_network()``."""

    def describe(self, arch: ArchT) -> str:
        """A short human-readable form of ``arch`` (one line where possible)."""
        return str(arch)

    def named_architectures(self) -> Mapping[str, ArchT]:
        """Architectures from the literature that belong to this space, by name."""
        return {}

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The weights that the exported network loads (training-only parts dropped)."""
        return dict(model.state_dict())


class WeightSharingSpace(SearchSpace[ArchT]):
    """A space whose architectures are children of one supernet with shared weights.

    Contract (in addition to :class:`SearchSpace`):
        * ``supernet(data)`` returns a module with ``set_active(arch)`` (later forwards run
          the child ``arch``), ``set_regularization(dropout=..., drop_connect=...)`` and
          ``extract(arch)``: a static module (the same structure as ``build(arch, data)``)
          holding copies of the child's weights and BN buffers, whose outputs equal the
          active supernet's. Optionally ``set_batch_norm_sync(enabled)``: BN in training
          mode then uses statistics over every data-parallel process (see
          ``search_spaces.sync_batch_norm``); without it, data-parallel training
          normalises each process's share of the batch on its own.
        * ``largest()`` / ``smallest()`` are the biggest and smallest children (the
          sandwich rule trains both every step).
    """

    @abc.abstractmethod
    def supernet(self, data: DataSpec) -> nn.Module:
        """A freshly initialised supernet holding every child's weights."""

    @abc.abstractmethod
    def largest(self) -> ArchT:
        """The biggest child."""

    @abc.abstractmethod
    def smallest(self) -> ArchT:
        """The smallest child."""
