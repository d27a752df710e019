"""The LC-PFN shipped in the package: its card, its calibration, and refusing tampered files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evaluators.lcpfn import load_lcpfn, pretrained_path
from evaluators.lcpfn.evaluate import HELD_OUT_SEED, held_out_curves, score_at_cutoffs
from nas.core.errors import ConfigError


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(pretrained_path().with_suffix(".json").read_text(encoding="utf-8"))


def test_shipped_weights_are_small_and_documented(card: dict) -> None:
    assert pretrained_path().stat().st_size <= 20 * 2**20
    assert card["command"].startswith("nas lcpfn train ")
    settings = card["settings"]
    assert f"steps={settings['steps']}" in card["command"]
    assert f"seed={settings['seed']}" in card["command"]
    held_out = card["held_out"]
    assert held_out["seed"] == HELD_OUT_SEED
    assert [row["cutoff"] for row in held_out["scores"]] == [10, 20, 40, 80]


def test_the_card_scores_are_what_the_shipped_weights_score(card: dict) -> None:
    model = load_lcpfn()
    recorded = card["held_out"]
    curves = held_out_curves(recorded["curves"], length=model.config.length)
    for now, then in zip(score_at_cutoffs(model, curves), recorded["scores"], strict=True):
        assert now.log_likelihood == pytest.approx(then["log_likelihood"], abs=1e-3)
        assert now.coverage90 == pytest.approx(then["coverage90"], abs=1e-3)


def test_predictive_distribution_is_calibrated_on_held_out_prior_curves() -> None:
    model = load_lcpfn()
    # As trained: the card's spread calibration is fitted for the platform's real curves
    # and narrows late prior-curve intervals (coverage 0.81 after 80 of 100 epochs).
    model.calibration = None
    # A fresh seed: neither the training stream nor the card's held-out curves.
    curves = held_out_curves(2000, length=model.config.length, seed=12345)
    for scores in score_at_cutoffs(model, curves):
        assert 0.85 <= scores.coverage90 <= 0.95, scores
        # Better than a uniform guess over [0, 1] (log-likelihood 0) by a wide margin.
        assert scores.log_likelihood > 1.0, scores


REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "benchmarks" / "data" / "real_curves.json.gz"
PRIOR = REPO / "evaluators" / "lcpfn" / "pretrained" / "lcpfn-prior.safetensors"


def test_the_shipped_network_is_the_prior_network_fine_tuned_on_the_shipped_corpus(
    card: dict,
) -> None:
    from evaluators.lcpfn.corpus import load_curve_corpus

    assert card["init"] == "evaluators/lcpfn/pretrained/lcpfn-prior.safetensors"
    assert card["corpus"]["path"] == "benchmarks/data/real_curves.json.gz"
    held_out = load_curve_corpus(CORPUS, "held-out")
    assert card["corpus"]["digest"] == load_curve_corpus(CORPUS, "tuning").digest
    recorded = card["real_held_out"]
    assert recorded["digest"] == held_out.digest
    cutoffs = [row["cutoff"] for row in recorded["scores"]]
    scores = score_at_cutoffs(load_lcpfn(), held_out.curves, cutoffs)
    for now, then in zip(scores, recorded["scores"], strict=True):
        assert now.log_likelihood == pytest.approx(then["log_likelihood"], abs=1e-3)
        assert now.mse == pytest.approx(then["mse"], rel=1e-3)


def test_on_real_curves_the_shipped_network_beats_the_prior_one_and_is_calibrated() -> None:
    from evaluators.lcpfn.corpus import load_curve_corpus
    from evaluators.lcpfn.evaluate import rank_correlation
    from nas.lcpfn_command import real_cutoffs

    held_out = load_curve_corpus(CORPUS, "held-out")
    cutoffs = real_cutoffs(held_out.epochs)
    shipped = score_at_cutoffs(load_lcpfn(), held_out.curves, cutoffs)
    prior = score_at_cutoffs(load_lcpfn(PRIOR), held_out.curves, cutoffs)
    final = held_out.curves[:, -1].astype(float)
    for tuned, base in zip(shipped, prior, strict=True):
        assert tuned.log_likelihood > base.log_likelihood and tuned.mse < base.mse, (tuned, base)
        assert 0.85 <= tuned.coverage90 <= 0.95, tuned  # the range (15)
        # The last observed value, the baseline to beat at every cut (issue 15): by MSE
        # and by how the predicted median ranks the runs (0.9769 vs 0.9762 at 15 epochs).
        last = held_out.curves[:, tuned.cutoff - 1].astype(float)
        assert tuned.mse < float(((last - final) ** 2).mean()), tuned
        assert tuned.spearman_median > rank_correlation(last, final), tuned


def test_the_card_calibration_is_what_the_fold_networks_give(card: dict) -> None:
    from evaluators.lcpfn.calibration import fit_spread_calibration
    from evaluators.lcpfn.corpus import load_curve_corpus
    from evaluators.lcpfn.evaluate import predictions_at_every_cut

    folds = [REPO / path for path in card["calibration"]["folds"]]
    parts = [
        predictions_at_every_cut(
            load_lcpfn(folds[fold]), load_curve_corpus(CORPUS, "tuning", fold=1 - fold).curves
        )
        for fold in (0, 1)
    ]
    logits, finals, shares = (torch.cat(tensors) for tensors in zip(*parts, strict=True))
    assert len(finals) == card["calibration"]["predictions"]
    fitted = fit_spread_calibration(logits, finals, shares, load_lcpfn().distribution.borders)
    assert fitted.shares == tuple(card["calibration"]["shares"])
    assert fitted.log_stretch == pytest.approx(card["calibration"]["log_stretch"], abs=1e-4)


def test_calibration_brought_real_curve_coverage_into_range_and_kept_the_ranking(
    card: dict,
) -> None:
    before, after = card["uncalibrated"]["real_held_out"]["scores"], card["real_held_out"]["scores"]
    assert max(row["coverage90"] for row in before) > 0.95  # too wide late in a run
    for then, now in zip(before, after, strict=True):
        assert 0.85 <= now["coverage90"] <= 0.95, now
        # The map keeps each median, so the ranking by the median does not move.
        assert now["spearman_median"] == pytest.approx(then["spearman_median"], abs=1e-3)


def test_fine_tuning_kept_what_the_prior_network_knows(card: dict) -> None:
    prior = json.loads(PRIOR.with_suffix(".json").read_text(encoding="utf-8"))
    for tuned, base in zip(card["held_out"]["scores"], prior["held_out"]["scores"], strict=True):
        assert tuned["cutoff"] == base["cutoff"]
        # At most 5% of the prior-curve log-likelihood given up for the real curves.
        assert tuned["log_likelihood"] >= 0.95 * base["log_likelihood"], (tuned, base)


def _copy(tmp_path: Path) -> Path:
    weights = tmp_path / "net.safetensors"
    shutil.copy(pretrained_path(), weights)
    shutil.copy(pretrained_path().with_suffix(".json"), weights.with_suffix(".json"))
    return weights


def test_a_copy_loads_like_the_original(tmp_path: Path) -> None:
    original, copy = load_lcpfn(), load_lcpfn(_copy(tmp_path))
    for (name, a), (_, b) in zip(
        original.state_dict().items(), copy.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda card: card["network"].update(emsize="__import__('os')"), "must be a number"),
        (lambda card: card["network"].update(layers=99), "do not fit their card"),
        (lambda card: card["network"].update(evil=1), "unknown network keys"),
        (lambda card: card.pop("network"), "no 'network'"),
        (lambda card: card.update(calibration=[1.0]), "'calibration' must be an object"),
        (lambda card: card["calibration"].update(shares="eval"), "must be a list of numbers"),
        (lambda card: card["calibration"].update(log_stretch=[0, 0, 0, 50, 0]), "log_stretch.3."),
        (
            lambda card: card["calibration"].update(shares=[0.5, 0.25, 0.1, 0.7, 0.9]),
            "must increase",
        ),
    ],
)
def test_a_tampered_card_is_refused(tmp_path: Path, edit: object, message: str) -> None:
    weights = _copy(tmp_path)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text())
    edit(card)  # type: ignore[operator]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ConfigError, match=message):
        load_lcpfn(weights)


def test_bad_weights_are_refused(tmp_path: Path) -> None:
    weights = _copy(tmp_path)
    tensors = load_file(str(weights))
    tensors["head.weight"] = tensors["head.weight"][:, :3].contiguous()
    save_file(tensors, str(weights))
    with pytest.raises(ConfigError, match="do not fit their card"):
        load_lcpfn(weights)
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="Unreadable LC-PFN weights"):
        load_lcpfn(weights)
    with pytest.raises(ConfigError, match="No LC-PFN weights"):
        load_lcpfn(tmp_path / "missing.safetensors")
