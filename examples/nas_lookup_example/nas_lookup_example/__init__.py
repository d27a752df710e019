"""A tabular benchmark for nas: the ``toy_cells`` space and the ``lookup`` evaluator.

A cell as in NAS-Bench-201 (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible
Neural Architecture Search", ICLR 2020), with 4 of its edges: node j sums op(node i) over
the edges i->j. ``make_table.py`` trained all 256 cells once on digits; the evaluator looks
each one up in that table (no data, no training). Needs nas installed.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
from typing import Any

import optuna

from evaluators import Evaluator, TrialSession
from nas.core.errors import ArchitectureError, CandidateRejected
from search_spaces import SearchSpace

EDGES = ("0->1", "0->2", "1->2", "2->3")  # node 0 is the cell's input, node 3 its output
OPS = ("none", "skip", "conv3x3", "avgpool3x3")
Arch = tuple[str, ...]  # one op per edge, in the order of EDGES
COLUMNS = {"val_accuracy": "accuracy", "params": "params", "flops": "flops"}  # table -> metric


@functools.cache
def load_table() -> dict[Arch, dict[str, float]]:
    """The recorded results by architecture: accuracy (validation), params, flops."""
    text = importlib.resources.files(__name__).joinpath("toy_cells.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {tuple(r["arch"].split("|")): {m: float(r[c]) for c, m in COLUMNS.items()} for r in rows}


class ToyCellSpace(SearchSpace[Arch]):
    """NAS-Bench-201-style cells, 4 edges x 4 ops (a lookup table: builds no network)."""

    name = "toy_cells"
    capabilities = frozenset()  # a table: builds no network, exports no code

    def sample(self, trial: optuna.trial.BaseTrial) -> Arch:
        return tuple(trial.suggest_categorical(edge, OPS) for edge in EDGES)

    def encode(self, arch: Arch) -> dict[str, Any]:
        return {"ops": list(arch)}

    def decode(self, data: Any) -> Arch:
        ops = data.get("ops") if isinstance(data, dict) else None
        if not isinstance(ops, list):
            raise ArchitectureError(f"Expected {{'ops': [op, ...]}}, got {data!r:.80}")
        self.validate(tuple(ops))
        return tuple(ops)

    def validate(self, arch: Arch) -> None:
        well_formed = isinstance(arch, tuple) and len(arch) == len(EDGES)
        if not (well_formed and all(op in OPS for op in arch)):
            raise ArchitectureError(f"Not a toy_cells architecture: {arch!r:.80} (ops: {OPS})")

    def describe(self, arch: Arch) -> str:
        return "|".join(arch)  # as in the table


class LookupEvaluator(Evaluator[Any]):
    """Reads a toy_cells cell's accuracy, params and flops from the shipped table."""

    name = "lookup"
    needs_data = False

    def evaluate(self, arch: Arch, trial: TrialSession) -> dict[str, float]:
        try:
            return dict(load_table()[arch])
        except (KeyError, TypeError):  # TypeError: an unhashable architecture of another space
            raise CandidateRejected("not in the table") from None
