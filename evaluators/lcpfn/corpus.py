"""Recorded real learning curves: read a corpus file as untrusted input.

A corpus is gzip-compressed JSON (``benchmarks/record_corpus.py`` writes one from the
platform's own trials): provenance fields, and ``curves``, a list of records with at
least ``family``, ``setting``, ``split`` (``"tuning"`` or ``"held-out"``) and ``curve``,
the validation accuracy after every epoch. Fine-tuning an LC-PFN reads the tuning half;
scoring reads the held-out half, which nothing is fitted or tuned on.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.errors import ConfigError

SPLITS = ("tuning", "held-out")
# The tuning half splits again into two folds, alternate curves of each family and
# setting, so that a network fitted on one fold can be judged on the other (calibration).
FOLDS = 2


@dataclass(frozen=True)
class CurveCorpus:
    """The curves of one split of a corpus, all of one length.

    Attributes:
        curves: Accuracies in [0, 1], shape (n, epochs).
        families: Family of each curve, length n.
        settings: Training setting of each curve, length n.
        digest: SHA-256 of the curves, so a fine-tuning checkpoint can refuse another corpus.
    """

    curves: np.ndarray
    families: tuple[str, ...]
    settings: tuple[str, ...]
    digest: str

    @property
    def epochs(self) -> int:
        return int(self.curves.shape[1])

    def __len__(self) -> int:
        return int(self.curves.shape[0])


def read_corpus_file(path: Path | str) -> dict[str, Any]:
    """The corpus as parsed JSON; a one-line ``ConfigError`` when it cannot be read."""
    path = Path(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            corpus = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"No curve corpus at {path}; record one with `python benchmarks/record_corpus.py`."
        ) from None
    except (OSError, EOFError, ValueError) as error:
        raise ConfigError(f"Unreadable curve corpus {path}: {error}.") from None
    if not isinstance(corpus, dict) or not isinstance(corpus.get("curves"), list):
        raise ConfigError(f"Curve corpus {path} has no 'curves' list; record it again.")
    return corpus


def load_curve_corpus(path: Path | str, split: str, *, fold: int | None = None) -> CurveCorpus:
    """The ``split`` half of the corpus at ``path``, every record checked.

    Args:
        path: A corpus file.
        split: ``"tuning"`` or ``"held-out"``.
        fold: Only fold 0 or 1 of the tuning half: the even or the odd curves of each
            family and setting, in file order. None: the whole split.

    Raises:
        ConfigError: Unknown split or fold, unreadable file, a malformed record, curves
            of different lengths, or no curve in the split.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, but got {split!r}.")
    if fold is not None and (split != "tuning" or fold not in range(FOLDS)):
        raise ConfigError(
            f"fold must be one of {list(range(FOLDS))}, of the tuning split only, but got "
            f"fold={fold!r} of the {split!r} split."
        )
    raw = read_corpus_file(path)
    rows: list[list[float]] = []
    families: list[str] = []
    settings: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for index, record in enumerate(raw["curves"]):
        _check_record(record, index, path)
        if record["split"] != split:
            continue
        group = (record["family"], record["setting"])
        position = seen[group] = seen.get(group, -1) + 1
        if fold is None or position % FOLDS == fold:
            rows.append([float(v) for v in record["curve"]])
            families.append(record["family"])
            settings.append(record["setting"])
    if not rows:
        part = f"fold {fold} of the {split!r} split" if fold is not None else f"{split!r} split"
        raise ConfigError(f"Curve corpus {path} has no curve in the {part}.")
    if len({len(row) for row in rows}) != 1:
        raise ConfigError(f"Curve corpus {path}: the {split!r} curves differ in length.")
    curves = np.asarray(rows, dtype=np.float32)
    digest = hashlib.sha256(curves.tobytes()).hexdigest()
    return CurveCorpus(curves, tuple(families), tuple(settings), digest)


def _check_record(record: object, index: int, path: Path | str) -> None:
    where = f"Curve corpus {path}, curves[{index}]"
    if not isinstance(record, dict):
        raise ConfigError(f"{where} is not an object.")
    for key in ("family", "setting", "split"):
        if not isinstance(record.get(key), str):
            raise ConfigError(f"{where} lacks the text field {key!r}.")
    if record["split"] not in SPLITS:
        raise ConfigError(f"{where} has split {record['split']!r}, not one of {SPLITS}.")
    curve = record.get("curve")
    if (
        not isinstance(curve, list)
        or len(curve) < 2
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            for v in curve
        )
    ):
        raise ConfigError(f"{where}: 'curve' must be at least 2 accuracies in [0, 1].")
