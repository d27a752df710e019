"""Recorded real curves: read as untrusted input, and fine-tuning an LC-PFN on them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evaluators.lcpfn import LCPFN, LCPFNConfig, LCPFNTrainSettings, train_lcpfn
from evaluators.lcpfn.corpus import load_curve_corpus
from evaluators.lcpfn.evaluate import score_at_cutoffs
from nas.core.checkpoint import CheckpointError
from nas.core.errors import ConfigError

CPU = torch.device("cpu")
TINY = LCPFNConfig(emsize=32, layers=2, heads=2, hidden=64, buckets=50, length=20)


def _real_like(count: int, epochs: int, seed: int) -> list[list[float]]:
    """Curves shaped like the recorded ones: a low first epoch, then a plateau near 0.9."""
    rng = np.random.default_rng(seed)
    plateau = rng.uniform(0.85, 0.95, size=(count, 1))
    curves = plateau + rng.normal(0.0, 0.005, size=(count, epochs))
    curves[:, 0] = rng.uniform(0.1, 0.4, size=count)
    return np.clip(curves, 0.0, 1.0).round(6).tolist()


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump({"command": "test", "curves": records}, handle)
    return path


def _corpus(path: Path, count: int = 40, epochs: int = 10) -> Path:
    curves = _real_like(count, epochs, seed=0)
    records = [
        {"family": "f", "setting": "s", "split": ("tuning", "held-out")[i % 2], "curve": c}
        for i, c in enumerate(curves)
    ]
    return _write(path / "corpus.json.gz", records)


def _settings(**overrides: Any) -> LCPFNTrainSettings:
    values: dict[str, Any] = {
        "steps": 4,
        "batch_size": 8,
        "lr": 1e-3,
        "warmup_steps": 2,
        "border_curves": 500,
        "checkpoint_every": 1000,
        "seed": 3,
        "corpus_share": 0.5,
    }
    return LCPFNTrainSettings(**{**values, **overrides})


def test_the_halves_are_read_apart(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    tuning, held_out = load_curve_corpus(path, "tuning"), load_curve_corpus(path, "held-out")
    assert len(tuning) == len(held_out) == 20 and tuning.epochs == 10
    assert tuning.digest != held_out.digest
    assert not np.isin(tuning.curves[:, 0], held_out.curves[:, 0]).any()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"family": "f", "setting": "s", "split": "tuning", "curve": [0.1, float("nan")]},
            r"in \[0, 1\]",
        ),
        ({"family": "f", "setting": "s", "split": "tuning", "curve": [0.1, 1.5]}, r"in \[0, 1\]"),
        ({"family": "f", "setting": "s", "split": "test", "curve": [0.1, 0.5]}, "split 'test'"),
        ({"family": 3, "setting": "s", "split": "tuning", "curve": [0.1, 0.5]}, "'family'"),
    ],
)
def test_a_bad_record_is_refused_by_name(
    tmp_path: Path, record: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path / "c.json.gz", [record])
    with pytest.raises(ConfigError, match=message) as error:
        load_curve_corpus(path, "tuning")
    assert "curves[0]" in str(error.value) and "\n" not in str(error.value)


def test_a_missing_or_corrupt_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="record one with"):
        load_curve_corpus(tmp_path / "none.json.gz", "tuning")
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="Unreadable curve corpus"):
        load_curve_corpus(tmp_path / "bad.json.gz", "tuning")


def test_fine_tuning_on_real_curves_beats_the_prior_only_network(tmp_path: Path) -> None:
    path = _corpus(tmp_path, count=80)
    tuning, held_out = load_curve_corpus(path, "tuning"), load_curve_corpus(path, "held-out")
    settings = _settings(steps=150, batch_size=32, corpus_share=0.0, border_curves=2000)
    prior_only = train_lcpfn(TINY, settings, checkpoint=tmp_path / "prior.pt", device=CPU)
    tuned = train_lcpfn(
        TINY,
        _settings(steps=150, batch_size=32, lr=5e-4),
        checkpoint=tmp_path / "tuned.pt",
        device=CPU,
        corpus=tuning,
        init=prior_only,
    )
    before = score_at_cutoffs(prior_only, held_out.curves, [2, 5])
    after = score_at_cutoffs(tuned, held_out.curves, [2, 5])
    for old, new in zip(before, after, strict=True):
        assert new.log_likelihood > old.log_likelihood + 0.5, (old, new)
        assert new.mse < old.mse, (old, new)
    # Fine-tuning starts from the given weights and keeps their bucket borders.
    assert torch.equal(tuned.distribution.borders, prior_only.distribution.borders)


def test_a_checkpoint_of_another_corpus_or_init_is_refused(tmp_path: Path) -> None:
    first = load_curve_corpus(_corpus(tmp_path, epochs=10), "tuning")
    (tmp_path / "other").mkdir()
    other = load_curve_corpus(_corpus(tmp_path / "other", epochs=12), "tuning")
    path = tmp_path / "ft.pt"
    train_lcpfn(TINY, _settings(), checkpoint=path, device=CPU, corpus=first)
    with pytest.raises(CheckpointError, match="corpus"):
        train_lcpfn(TINY, _settings(), checkpoint=path, device=CPU, corpus=other)
    torch.manual_seed(0)
    with pytest.raises(CheckpointError, match="init"):
        train_lcpfn(TINY, _settings(), checkpoint=path, device=CPU, corpus=first, init=LCPFN(TINY))


def test_sources_are_checked(tmp_path: Path) -> None:
    corpus = load_curve_corpus(_corpus(tmp_path, epochs=30), "tuning")
    with pytest.raises(ConfigError, match="needs a corpus"):
        train_lcpfn(TINY, _settings(), checkpoint=tmp_path / "a.pt", device=CPU)
    with pytest.raises(ConfigError, match="30 epochs; the network takes 2 to 20"):
        train_lcpfn(TINY, _settings(), checkpoint=tmp_path / "b.pt", device=CPU, corpus=corpus)
    wider = LCPFN(LCPFNConfig(emsize=64, layers=2, heads=2, hidden=64, buckets=50, length=20))
    with pytest.raises(ConfigError, match="another size"):
        train_lcpfn(
            TINY, _settings(corpus_share=0.0), checkpoint=tmp_path / "c.pt", device=CPU, init=wider
        )


def test_the_two_folds_split_the_tuning_half_alternately_within_each_setting(
    tmp_path: Path,
) -> None:
    records = [
        {"family": family, "setting": setting, "split": split, "curve": [i / 100, 0.5]}
        for i, (family, setting, split) in enumerate(
            [("a", "x", "tuning"), ("b", "y", "tuning"), ("a", "x", "held-out"),
             ("a", "x", "tuning"), ("b", "y", "tuning"), ("a", "x", "tuning")]
        )
    ]  # fmt: skip
    path = _write(tmp_path / "c.json.gz", records)
    whole = load_curve_corpus(path, "tuning")
    folds = [load_curve_corpus(path, "tuning", fold=fold) for fold in (0, 1)]
    # Group (a, x): curves 0, 3, 5 -> folds 0, 1, 0; group (b, y): curves 1, 4 -> 0, 1.
    assert folds[0].curves[:, 0].tolist() == pytest.approx([0.0, 0.01, 0.05])
    assert folds[1].curves[:, 0].tolist() == pytest.approx([0.03, 0.04])
    assert len(folds[0]) + len(folds[1]) == len(whole) and folds[0].digest != folds[1].digest


@pytest.mark.parametrize(("split", "fold"), [("held-out", 0), ("tuning", 2), ("tuning", -1)])
def test_a_fold_outside_the_tuning_half_is_refused(tmp_path: Path, split: str, fold: int) -> None:
    with pytest.raises(ConfigError, match="fold must be one of"):
        load_curve_corpus(_corpus(tmp_path), split, fold=fold)
