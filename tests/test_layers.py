"""The layers: kernel <- data and costs <- search spaces <- evaluators <- platform, and
nothing imports from a layer above its own (import-linter, configured in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _layers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from importlinter.api import read_configuration

    monkeypatch.chdir(ROOT)
    (contract,) = read_configuration()["contracts_options"]
    return [
        module.strip()
        for layer in contract["layers"]
        for module in layer.replace("|", ":").split(":")
    ]


def test_every_module_of_nas_is_in_a_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new module must be placed in a layer, or the contract would not see it."""
    listed = set(_layers(monkeypatch))
    modules = {
        f"nas.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "nas").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - listed == set(), "add these to pyproject.toml's import-linter layers"


def test_no_module_imports_from_a_layer_above(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True, no_logo=True) == 0
