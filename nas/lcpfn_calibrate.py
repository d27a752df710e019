"""``nas lcpfn calibrate weights=W fold0=A fold1=B``: fit a fine-tuned LC-PFN's
predictive spread on curves it was not trained on, and rescore its card with it.

W was fine-tuned on the tuning half of a recorded corpus; A and B are the same fine-tune
on fold 0 and fold 1 of that half only (``nas lcpfn train ... corpus_fold=0|1``). Each
fold's network predicts the other fold's curves from every cut, and the spread
calibration fitted on these out-of-fold predictions (``evaluators.lcpfn.calibration``)
is written into W's card, with W's scores before and after. The weights are not touched;
the held-out half is only scored, never fitted on.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from nas.core.errors import ConfigError
from nas.lcpfn_command import (
    LCPFNCalibrateConfig,
    held_out_scores,
    real_held_out_scores,
    write_card,
)

METHOD = (
    "R(p) = Phi(k Phi^-1(p)) composed with the predictive CDF (Kuleshov et al., ICML 2018), "
    "log k linear in the observed share between the knots, fitted by maximum likelihood on "
    "out-of-fold predictions of the corpus's tuning half from every cut"
)
USAGE_HINT = (
    "nas lcpfn calibrate weights=W fold0=A fold1=B, where A and B are W's fine-tune "
    "command run again with corpus_fold=0 and corpus_fold=1."
)
# Settings that change how a fold network is trained, not where it is saved.
_NOT_RECIPE = ("checkpoint_every",)


def calibrate(config: LCPFNCalibrateConfig, args: Any) -> int:
    """Fit, score and write the calibration; 0 on success."""
    import torch

    from evaluators.lcpfn import load_lcpfn
    from evaluators.lcpfn.calibration import fit_spread_calibration
    from evaluators.lcpfn.corpus import load_curve_corpus
    from evaluators.lcpfn.evaluate import predictions_at_every_cut
    from evaluators.lcpfn.pretrained import read_card

    for key in ("weights", "fold0", "fold1"):
        if not getattr(config, key):
            raise ConfigError(f"{key}= is empty: {USAGE_HINT}")
    weights = Path(config.weights)
    card = read_card(weights)
    corpus_path = _tuned_corpus(card, weights)
    # As trained: scored so first, and a calibration already in the card is replaced.
    model = load_lcpfn(weights, calibrated=False)
    folds = [load_curve_corpus(corpus_path, "tuning", fold=fold) for fold in (0, 1)]
    parts = []
    for fold, other in ((0, 1), (1, 0)):
        path = Path(getattr(config, f"fold{fold}"))
        network = _fold_network(path, fold, card, folds[fold].digest, model)
        judged = folds[other]
        print(f"fold {fold}'s network predicts fold {other}'s {len(judged)} curves from every cut")
        parts.append(predictions_at_every_cut(network, judged.curves))
    logits, finals, shares = (torch.cat(tensors) for tensors in zip(*parts, strict=True))
    calibration = fit_spread_calibration(logits, finals, shares, model.distribution.borders)
    stretches = ", ".join(
        f"{share:g}: {math.exp(value):.3f}"
        for share, value in zip(calibration.shares, calibration.log_stretch, strict=True)
    )
    print(
        f"spread calibration fitted on {len(finals)} predictions; stretch k by share: {stretches}"
    )
    print("scores as trained:")
    before = {"held_out": held_out_scores(model, model.config.length)}
    before["real_held_out"] = real_held_out_scores(model, corpus_path)
    model.calibration = calibration
    print("scores calibrated:")
    card["held_out"] = held_out_scores(model, model.config.length)
    card["real_held_out"] = real_held_out_scores(model, corpus_path)
    card["uncalibrated"] = before
    card["calibration"] = {
        **calibration.as_card(),
        "method": METHOD,
        "command": shlex.join(["nas", "lcpfn", *args]),
        "predictions": len(finals),
        "folds": [str(getattr(config, f"fold{fold}")) for fold in (0, 1)],
    }
    write_card(weights.with_suffix(".json"), card)
    print(f"calibration -> {weights.with_suffix('.json')}")
    return 0


def _tuned_corpus(card: dict[str, Any], weights: Path) -> str:
    """The corpus ``weights`` was fine-tuned on, checked unchanged since."""
    from evaluators.lcpfn.corpus import load_curve_corpus

    corpus = card.get("corpus")
    if not isinstance(corpus, dict) or not isinstance(corpus.get("path"), str):
        raise ConfigError(
            f"{weights} was not fine-tuned on a recorded corpus (its card names none); "
            "calibration needs one: fine-tune it with corpus=CORPUS.json.gz first."
        )
    if corpus.get("fold") is not None:
        raise ConfigError(
            f"{weights} was fine-tuned on fold {corpus['fold']} only; calibrate the network "
            "fine-tuned on the whole tuning half."
        )
    path = corpus["path"]
    if load_curve_corpus(path, "tuning").digest != corpus.get("digest"):
        raise ConfigError(
            f"The corpus {path} differs from the one {weights} was fine-tuned on (its "
            "digest changed); fine-tune again on it before calibrating."
        )
    return path


def _fold_network(
    path: Path, fold: int, card: dict[str, Any], fold_digest: str, weights: Any
) -> Any:
    """The network of ``fold{fold}=path``, checked to be the fine-tune of ``card`` (whose
    network is ``weights``) on that fold alone, whose curves have ``fold_digest``;
    uncalibrated."""
    import torch

    from evaluators.lcpfn import load_lcpfn
    from evaluators.lcpfn.pretrained import read_card

    fold_card = read_card(path)
    remedy = f"run the command that trained the weights again with corpus_fold={fold}"
    corpus = fold_card.get("corpus")
    if not isinstance(corpus, dict) or corpus.get("digest") != fold_digest:
        raise ConfigError(
            f"fold{fold}={path} was not fine-tuned on fold {fold} of the tuning half of "
            f"{card['corpus']['path']}; {remedy}."
        )
    differing = _recipe_differences(card, fold_card)
    if differing:
        raise ConfigError(
            f"fold{fold}={path} was trained with other {', '.join(differing)} than the "
            f"weights; {remedy}."
        )
    network = load_lcpfn(path, calibrated=False)
    if not torch.equal(network.distribution.borders, weights.distribution.borders):
        raise ConfigError(
            f"fold{fold}={path} has other bucket borders than the weights: fine-tune both "
            "from the same init."
        )
    return network


def _recipe_differences(card: dict[str, Any], fold_card: dict[str, Any]) -> list[str]:
    """Names of what differs between two cards' training recipes."""
    differing = [key for key in ("network", "init") if card.get(key) != fold_card.get(key)]
    ours, theirs = card.get("settings"), fold_card.get("settings")
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return [*differing, "settings"]
    keys = sorted((set(ours) | set(theirs)) - set(_NOT_RECIPE))
    return differing + [f"settings.{k}" for k in keys if ours.get(k) != theirs.get(k)]
