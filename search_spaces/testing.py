"""Helpers for testing a search space's exported code (for this project's and plugins' tests).

An export is only trustworthy when the generated file runs on its own: these helpers
import it in a fresh interpreter, with nothing of ``nas`` loaded, and compare outputs.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

_RUN_EXPORTS = """
import importlib.util, json, sys
import torch
from safetensors.torch import load_file

diffs = {}
for name in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(name, name + ".py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.build_network()
    net.load_state_dict(load_file(name + ".weights.safetensors"), strict=True)
    io = load_file(name + ".io.safetensors")
    with torch.no_grad():
        out = net.eval()(io["x"])
    diffs[name] = (out - io["y"]).abs().max().item()
assert "nas" not in sys.modules and "search_spaces" not in sys.modules
print(json.dumps(diffs))
"""


@dataclass
class ExportCase:
    """Generated source, the weights it should load, an input and the expected output."""

    source: str
    weights: Mapping[str, torch.Tensor]
    inputs: torch.Tensor
    expected: torch.Tensor


def imported_modules(source: str) -> set[str]:
    """Top-level modules that ``source`` imports."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    return modules


def max_abs_differences(cases: Mapping[str, ExportCase], workdir: Path) -> dict[str, float]:
    """Run every case's source in one fresh interpreter; max |output - expected| per case."""
    for name, case in cases.items():
        (workdir / f"{name}.py").write_text(case.source)
        weights = {k: v.detach().contiguous() for k, v in case.weights.items()}
        save_file(weights, str(workdir / f"{name}.weights.safetensors"))
        io = {"x": case.inputs.contiguous(), "y": case.expected.detach().contiguous()}
        save_file(io, str(workdir / f"{name}.io.safetensors"))
    result = subprocess.run(
        [sys.executable, "-c", _RUN_EXPORTS, *cases],
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"exported code failed in a fresh interpreter:\n{result.stderr}")
    diffs: dict[str, float] = json.loads(result.stdout)
    return diffs


DELETE = object()  # with ``mutate``: remove the key instead of replacing its value


def mutate(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], Any]:
    """A function that sets (or, with ``DELETE``, removes) ``path`` in an encoded
    architecture: a malformed input for a space's ``decode`` tests."""

    def apply(data: dict[str, Any]) -> Any:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return data

    return apply
