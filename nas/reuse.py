"""Results reused: an architecture the study already evaluated is not evaluated again.

Within one study the evaluator's settings are fixed (the study's identity), so an
architecture with the same equivalence key (``SearchSpace.equivalence_key``: the
canonical encoding, or what the network computes) would be scored again only to spend
the budget (samplers propose duplicates on small spaces, coarse-to-fine on few
skeletons, evolution equivalent graphs). Its trial takes the earlier trial's objectives
and costs instead, or its rejection, and is marked ``reused_from``. Each process knows
the study's trials when it starts and the ones it finishes itself; a duplicate finished
meanwhile by another worker is evaluated again. ``reuse_results=false`` evaluates every
trial.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.core.errors import NasError

if TYPE_CHECKING:
    import optuna

    from search_spaces.base import SearchSpace

# Trial attributes that describe the result, copied to a trial that reuses it.
RESULT_ATTRS = ("params", "flops", "latency_ms", "constraint", "curve", "weights")


def canonical(encoded: Any) -> str:
    """One string per architecture, whatever the key order of its encoding."""
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Result:
    number: int
    values: list[float]
    attrs: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    number: int
    reason: str
    protocol: str | None


@dataclass
class ResultCache:
    """Complete results and rejections of the study by equivalence key."""

    results: dict[str, Result] = field(default_factory=dict)
    rejections: dict[str, Rejection] = field(default_factory=dict)

    @classmethod
    def of(cls, study: optuna.Study, space: SearchSpace[Any]) -> ResultCache:
        """The study's complete and rejected trials (the first of each key), read once.

        Stored architectures are untrusted: one that ``space`` does not decode is skipped.
        """
        cache = cls()
        for trial in study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            complete = trial.state.name == "COMPLETE" and trial.values
            if "arch" not in attrs or not (complete or isinstance(attrs.get("rejected"), str)):
                continue
            try:
                key = space.equivalence_key(space.decode(attrs["arch"]))
            except NasError:
                continue
            if complete:
                cache.add(key, trial.number, trial.values, attrs)
            else:
                cache.reject(key, trial.number, attrs["rejected"], attrs.get("rejected_by"))
        return cache

    def add(self, key: str, number: int, values: list[float], attrs: Mapping[str, Any]) -> None:
        if key not in self.results:
            kept = {name: attrs[name] for name in RESULT_ATTRS if name in attrs}
            self.results[key] = Result(number, [float(v) for v in values], kept)

    def reject(self, key: str, number: int, reason: str, protocol: Any) -> None:
        if key not in self.rejections:
            kind = protocol if isinstance(protocol, str) else None
            self.rejections[key] = Rejection(number, reason, kind)

    def get(self, key: str) -> Result | None:
        return self.results.get(key)

    def rejection(self, key: str) -> Rejection | None:
        return self.rejections.get(key)
