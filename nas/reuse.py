"""Results reused: an architecture the study already evaluated is not evaluated again.

Within one study the evaluator's settings are fixed (the study's identity), so an
architecture with the same canonical encoding would be scored again only to spend the
budget (samplers propose duplicates on small spaces, coarse-to-fine on few skeletons).
Its trial takes the earlier trial's objectives and costs instead, and is marked
``reused_from``. Each process knows the complete trials of the study when it starts and
the ones it finishes itself; a duplicate finished meanwhile by another worker is
evaluated again. ``reuse_results=false`` evaluates every trial.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

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


@dataclass
class ResultCache:
    """Complete results of the study by canonical architecture."""

    results: dict[str, Result] = field(default_factory=dict)

    @classmethod
    def of(cls, study: optuna.Study) -> ResultCache:
        """The study's complete trials (first one of each architecture), read once."""
        cache = cls()
        for trial in study.get_trials(deepcopy=False):
            arch = trial.user_attrs.get("arch")
            if trial.state.name == "COMPLETE" and trial.values and arch is not None:
                cache.add(canonical(arch), trial.number, trial.values, trial.user_attrs)
        return cache

    def add(self, key: str, number: int, values: list[float], attrs: Mapping[str, Any]) -> None:
        if key not in self.results:
            kept = {name: attrs[name] for name in RESULT_ATTRS if name in attrs}
            self.results[key] = Result(number, [float(v) for v in values], kept)

    def get(self, key: str) -> Result | None:
        return self.results.get(key)
