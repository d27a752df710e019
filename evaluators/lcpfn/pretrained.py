"""The LC-PFN that ships inside the package, and loading any network that ``nas lcpfn
train`` wrote (a safetensors file with a JSON card of the same name beside it).

Nothing is downloaded: the shipped weights are package data. Cards and weights are read
as untrusted input: the card's network sizes are checked field by field and the tensors
come through safetensors, so a tampered file is refused, never executed.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from evaluators.lcpfn.calibration import SpreadCalibration
from evaluators.lcpfn.model import LCPFN, LCPFNConfig
from nas.core.errors import ConfigError

PRETRAINED_NAME = "lcpfn-small.safetensors"


def pretrained_path() -> Path:
    """Path of the shipped network's safetensors file."""
    resource = importlib.resources.files("evaluators.lcpfn").joinpath("pretrained", PRETRAINED_NAME)
    return Path(str(resource))


def read_card(weights: Path) -> dict[str, Any]:
    """The JSON card written next to ``weights`` by ``nas lcpfn train``."""
    card_path = weights.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"No card {card_path} next to the LC-PFN weights {weights}; write both with "
            "`nas lcpfn train out=...`."
        ) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"Unreadable LC-PFN card {card_path}: {error}.") from None
    if not isinstance(card, dict) or not isinstance(card.get("network"), dict):
        raise ConfigError(f"LC-PFN card {card_path} has no 'network' object; rewrite it.")
    return card


def _network_config(card: dict[str, Any], where: Path) -> LCPFNConfig:
    raw = card["network"]
    known = {f.name for f in fields(LCPFNConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"LC-PFN card {where} has unknown network keys {unknown}.")
    for key, value in raw.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(
                f"LC-PFN card {where}: network.{key} must be a number, not {value!r}."
            )
    return LCPFNConfig(**raw)  # checks ranges itself


def load_lcpfn(weights: Path | str | None = None, *, calibrated: bool = True) -> LCPFN:
    """The network stored at ``weights`` (default: the shipped one), in eval mode on CPU,
    with the spread calibration its card holds, if any and ``calibrated`` (False: as
    trained, the card's calibration not even read)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = pretrained_path() if weights is None else Path(weights)
    if not path.is_file():
        raise ConfigError(
            f"No LC-PFN weights at {path}; train them with `nas lcpfn train out={path}`."
        )
    card = read_card(path)
    config = _network_config(card, path.with_suffix(".json"))
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"Unreadable LC-PFN weights {path}: {error}.") from None
    borders = tensors.get("distribution.borders")
    if borders is None:
        raise ConfigError(f"LC-PFN weights {path} lack 'distribution.borders'.")
    model = LCPFN(config, borders)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise ConfigError(f"LC-PFN weights {path} do not fit their card: {detail}.") from None
    if calibrated and card.get("calibration") is not None:
        where = f"LC-PFN card {path.with_suffix('.json')}"
        model.calibration = SpreadCalibration.from_card(card["calibration"], where)
    return model.eval()
