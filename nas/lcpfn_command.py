"""``nas lcpfn train``: train the learning-curve extrapolator (LC-PFN) on its prior.

Resumable: the checkpoint is written every ``checkpoint_every`` steps, and running the
same command again continues from it. The finished network is written as safetensors
with a JSON card (command, seed, steps, sizes, held-out scores) next to it.
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

# The paper's network, and one small enough to train on a laptop CPU in minutes.
SIZES = {
    "paper": {"emsize": 512, "layers": 12, "heads": 4, "hidden": 1024},
    "small": {"emsize": 128, "layers": 4, "heads": 4, "hidden": 256},
}
# Held-out prior curves scored into the card of every trained network.
HELD_OUT_CURVES = 2000


@dataclass
class LCPFNTrainConfig:
    size: str = "small"  # small | paper
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 100
    device: str = "auto"
    out: str = "nas-runs/lcpfn/lcpfn.safetensors"  # the checkpoint sits next to it


def _progress_printer(every: int) -> object:
    started = time.monotonic()

    def on_step(step: int, steps: int, loss: float) -> None:
        if step == steps or step % every == 0:
            rate = step / max(time.monotonic() - started, 1e-9)
            print(f"[lcpfn] step {step}/{steps}: loss {loss:.4f} ({rate:.2f} steps/s)", flush=True)

    return on_step


def _held_out_scores(model: Any, length: int) -> dict[str, Any]:
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


def cmd_lcpfn(args: Sequence[str]) -> int:
    """``nas lcpfn train [key=value ...]``."""
    if not args or args[0] != "train":
        raise ConfigError("Usage: nas lcpfn train [size=small|paper steps=N seed=S out=PATH].")
    config = compose(LCPFNTrainConfig, args[1:])
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
    )
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
        "held_out": _held_out_scores(model, network.length),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"LC-PFN -> {out} (+ {out.with_suffix('.json').name})")
    return 0
