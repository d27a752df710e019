"""``nas lcpfn train``: train the learning-curve extrapolator (LC-PFN) on its prior;
``nas lcpfn calibrate``: fit its predictive spread on curves it was not trained on.

Resumable: the checkpoint is written every ``checkpoint_every`` steps, and running the
same command again continues from it. The finished network is written as safetensors
with a JSON card (command, seed, steps, sizes, held-out scores) next to it.

Fine-tuning on recorded curves: ``init=WEIGHTS corpus=CORPUS.json.gz corpus_share=0.5``
starts from trained weights and draws that share of every batch from the corpus's
tuning half; the card then also scores the corpus's held-out half. ``corpus_fold=0|1``
trains on one fold of the tuning half only: ``nas lcpfn calibrate weights=W fold0=A
fold1=B`` judges each fold's network on the other fold and writes the spread calibration
fitted on those out-of-fold predictions into W's card (see
``evaluators.lcpfn.calibration``).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import compose
from nas.core.errors import ConfigError, unknown_choice
from nas.core.files import atomic_write

# The paper's network, and one small enough to train on a laptop CPU in minutes.
SIZES = {
    "paper": {"emsize": 512, "layers": 12, "heads": 4, "hidden": 1024},
    "small": {"emsize": 128, "layers": 4, "heads": 4, "hidden": 256},
}
# Held-out prior curves scored into the card of every trained network.
HELD_OUT_CURVES = 2000
# Cut points of the real-curve scores, as shares of the recorded epochs.
REAL_CUT_SHARES = (0.1, 0.25, 0.5, 0.75)


@dataclass
class LCPFNTrainConfig:
    """Keys of ``nas lcpfn train``; the training keys are ``LCPFNTrainSettings``'s."""

    size: str = "small"  # small (4 layers of 128) | paper (12 layers of 512)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 100
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # the network, its card (.json) beside it, and while training its checkpoint (.ckpt)
    out: str = "nas-runs/lcpfn/lcpfn.safetensors"
    init: str = ""  # weights to fine-tune ("shipped": the packaged network); "" trains anew
    corpus: str = ""  # recorded real curves (gzip JSON); its tuning half is trained on
    corpus_share: float = 0.5  # share of each batch from the corpus, when one is given
    # only fold 0 or 1 of the corpus's tuning half (for `nas lcpfn calibrate`); none: all
    corpus_fold: int | None = None


@dataclass
class LCPFNCalibrateConfig:
    """Keys of ``nas lcpfn calibrate``."""

    weights: str = ""  # the fine-tuned network to calibrate; its card gets the calibration
    fold0: str = ""  # the same fine-tune on fold 0 of the tuning half only (corpus_fold=0)
    fold1: str = ""  # the same fine-tune on fold 1 of the tuning half only (corpus_fold=1)


def _progress_printer(every: int) -> object:
    started = time.monotonic()

    def on_step(step: int, steps: int, loss: float) -> None:
        if step == steps or step % every == 0:
            rate = step / max(time.monotonic() - started, 1e-9)
            print(f"[lcpfn] step {step}/{steps}: loss {loss:.4f} ({rate:.2f} steps/s)", flush=True)

    return on_step


def held_out_scores(model: Any, length: int) -> dict[str, Any]:
    """Final-value scores on fresh prior curves, for the card next to the weights."""
    from evaluators.lcpfn.evaluate import HELD_OUT_SEED, held_out_curves, score_at_cutoffs

    curves = held_out_curves(HELD_OUT_CURVES, length=length)
    scores = score_at_cutoffs(model.cpu(), curves)
    for row in scores:
        print(
            f"held-out cutoff {row.cutoff}: log-likelihood {row.log_likelihood:.3f}, "
            f"MSE {row.mse:.2e}, 90% coverage {row.coverage90:.3f}"
        )
    return {
        "curves": HELD_OUT_CURVES,
        "seed": HELD_OUT_SEED,
        "target": f"value at epoch {length}",
        "scores": [row.as_dict() for row in scores],
    }


def write_card(path: Path, card: dict[str, Any]) -> None:
    """Write a network's JSON card whole or not at all (an interrupt keeps the old one)."""
    text = json.dumps(card, indent=2) + "\n"
    atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def real_cutoffs(epochs: int) -> list[int]:
    """Cut points for real curves of ``epochs`` epochs: 10%, 25%, 50% and 75% of them."""
    return sorted({min(max(1, round(share * epochs)), epochs - 1) for share in REAL_CUT_SHARES})


def real_held_out_scores(model: Any, corpus_path: str) -> dict[str, Any]:
    """Final-value scores on the corpus's held-out half, for the card."""
    from evaluators.lcpfn.corpus import load_curve_corpus
    from evaluators.lcpfn.evaluate import rank_correlation, score_at_cutoffs

    held_out = load_curve_corpus(corpus_path, "held-out")
    scores = score_at_cutoffs(model.cpu(), held_out.curves, real_cutoffs(held_out.epochs))
    final = held_out.curves[:, -1].astype(float)
    rows = []
    for row in scores:
        # The last observed value as the prediction: the baseline to beat.
        last = held_out.curves[:, row.cutoff - 1].astype(float)
        baseline = {
            "mse": float(((last - final) ** 2).mean()),
            "spearman": rank_correlation(last, final),
        }
        print(
            f"real held-out cutoff {row.cutoff}/{held_out.epochs}: log-likelihood "
            f"{row.log_likelihood:.3f}, MSE {row.mse:.2e} (last value {baseline['mse']:.2e}), "
            f"90% coverage {row.coverage90:.3f}, Spearman of the mean {row.spearman:.3f} and "
            f"of the median {row.spearman_median:.3f} (last value {baseline['spearman']:.3f})"
        )
        rows.append({**row.as_dict(), "last_value": baseline})
    return {
        "corpus": corpus_path,
        "curves": len(held_out),
        "digest": held_out.digest,
        "target": f"value at epoch {held_out.epochs}",
        "scores": rows,
    }


def _sources(config: LCPFNTrainConfig, network: Any) -> tuple[Any, Any]:
    """(corpus tuning half or None, initial network or None) of a training command."""
    from evaluators.lcpfn import load_lcpfn
    from evaluators.lcpfn.corpus import load_curve_corpus

    if config.corpus_fold is not None and not config.corpus:
        raise ConfigError("corpus_fold picks a fold of a corpus: give corpus=CORPUS.json.gz too.")
    corpus = (
        load_curve_corpus(config.corpus, "tuning", fold=config.corpus_fold)
        if config.corpus
        else None
    )
    init = None
    if config.init:
        init = load_lcpfn(None if config.init == "shipped" else config.init)
        if init.config != network:
            raise ConfigError(
                f"init={config.init} is a network of another size than size={config.size}; "
                "pick the size it was trained with."
            )
    return corpus, init


USAGE = (
    "Usage: nas lcpfn train [size=small|paper steps=N seed=S out=PATH] | "
    "nas lcpfn calibrate weights=W fold0=A fold1=B."
)


def cmd_lcpfn(args: Sequence[str]) -> int:
    """``nas lcpfn train|calibrate [key=value ...]``."""
    if args[:1] == ["calibrate"]:
        from nas.lcpfn_calibrate import calibrate

        return calibrate(compose(LCPFNCalibrateConfig, args[1:]), args)
    if args[:1] != ["train"]:
        raise ConfigError(USAGE)
    return _train(compose(LCPFNTrainConfig, args[1:]), args)


def _train(config: LCPFNTrainConfig, args: Sequence[str]) -> int:
    if config.size not in SIZES:
        raise unknown_choice("size", config.size, SIZES)

    from safetensors.torch import save_file

    from evaluators.lcpfn import LCPFNConfig, LCPFNTrainSettings, train_lcpfn
    from nas.device import resolve_device

    network = LCPFNConfig(**SIZES[config.size])
    settings = LCPFNTrainSettings(
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        seed=config.seed,
        checkpoint_every=config.checkpoint_every,
        corpus_share=config.corpus_share if config.corpus else 0.0,
    )
    corpus, init = _sources(config, network)
    out = Path(config.out)
    checkpoint = out.with_suffix(".ckpt")
    print(f"training LC-PFN ({config.size}) for {config.steps} steps; checkpoint {checkpoint}")
    try:
        model = train_lcpfn(
            network,
            settings,
            checkpoint=checkpoint,
            device=resolve_device(config.device),
            on_step=_progress_printer(max(1, config.steps // 50)),  # type: ignore[arg-type]
            corpus=corpus,
            init=init,
        )
    except KeyboardInterrupt:
        command = shlex.join(["nas", "lcpfn", *args])
        print(f"Interrupted; the last checkpoint is kept. Resume with: {command}", file=sys.stderr)
        return 130
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out))
    card = {
        "command": shlex.join(["nas", "lcpfn", *args]),
        "size": config.size,
        "network": vars(network),
        "settings": settings.as_dict(),
        "init": config.init or None,
        "corpus": (
            {
                "path": config.corpus,
                "fold": config.corpus_fold,
                "tuning_curves": len(corpus),
                "digest": corpus.digest,
            }
            if corpus is not None
            else None
        ),
        "held_out": held_out_scores(model, network.length),
    }
    if config.corpus:
        card["real_held_out"] = real_held_out_scores(model, config.corpus)
    write_card(out.with_suffix(".json"), card)
    print(f"LC-PFN -> {out} (+ {out.with_suffix('.json').name})")
    return 0
