"""Training LC-PFN on curves drawn fresh from the prior, with exact resume.

Each step draws ``batch_size`` curves with ``sample_curves``, cuts each at a point
uniform in [1, length - 1], shows the network the prefix and scores its predictions for
every later epoch by their negative log-likelihood under the bar distribution. There
are no epochs and no data set: the prior is the data.

Fine-tuning on real curves: given a recorded corpus (``CurveCorpus``, its tuning half)
and ``corpus_share`` > 0, that share of every batch is corpus curves drawn with
replacement, each cut uniformly in [1, epochs - 1] and scored on its own later epochs
only, and the rest stays prior curves, so what the network knows of the prior is kept
(the card scores both). Fine-tuning starts from trained weights (``init``) and keeps
their bucket borders.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evaluators.lcpfn.bar_distribution import fit_borders
from evaluators.lcpfn.corpus import CurveCorpus
from evaluators.lcpfn.model import LCPFN, LCPFNConfig, run_grid_scale
from evaluators.lcpfn.prior import sample_curves
from nas.core.checkpoint import (
    CheckpointError,
    check_fingerprint,
    entry,
    load_checkpoint,
    save_checkpoint,
)
from nas.core.errors import ConfigError, NasError
from nas.core.validation import check_number

# Bumped whenever the payload changes shape, so an old file is refused by name.
_FORMAT = 1
_RESTART = "delete it to train from scratch"
# Separate streams from one seed: the border sample must not shift the training curves.
_BORDER_STREAM, _CURVE_STREAM = 0, 1
# Values kept for fitting the borders: sorting more costs memory, not accuracy.
_BORDER_VALUES = 1 << 22


@dataclass(frozen=True, kw_only=True)
class LCPFNTrainSettings:
    """How to train an LC-PFN on its prior.

    Attributes:
        steps: Optimiser steps; each sees ``batch_size`` fresh curves.
        batch_size: Curves per step.
        lr: Peak AdamW learning rate, reached at the end of the warm-up.
        warmup_steps: Steps of linear warm-up from 0; then cosine decay to 0 at ``steps``.
        weight_decay: AdamW decoupled weight decay.
        grad_clip: Largest gradient norm; 0 disables clipping.
        seed: Seeds the prior samples, the initial weights and dropout.
        checkpoint_every: Steps between checkpoints; one is written at the end too.
        border_curves: Prior curves whose values place the bucket borders.
        corpus_share: Share of each batch drawn from a recorded corpus (0: the prior only).
    """

    steps: int
    batch_size: int = 64
    lr: float = 1e-4
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1000
    border_curves: int = 100_000
    corpus_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "border_curves"):
            check_number(name, getattr(self, name), integer=True, low=1)
        check_number("warmup_steps", self.warmup_steps, integer=True, low=0)
        check_number("seed", self.seed, integer=True, low=0)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("grad_clip", self.grad_clip, low=0.0)
        check_number("corpus_share", self.corpus_share, low=0.0, high=1.0)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a flat JSON-safe dict."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def lcpfn_learning_rate(settings: LCPFNTrainSettings, step: int) -> float:
    """The learning rate of step ``step`` (from 0): linear warm-up, then cosine to 0."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    span = max(settings.steps - settings.warmup_steps, 1)
    progress = (step - settings.warmup_steps) / span
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_lcpfn(
    config: LCPFNConfig,
    settings: LCPFNTrainSettings,
    *,
    checkpoint: Path,
    device: torch.device,
    on_step: Callable[[int, int, float], None] | None = None,
    corpus: CurveCorpus | None = None,
    init: LCPFN | None = None,
) -> LCPFN:
    """Train an LC-PFN on the prior, resuming from ``checkpoint`` if it exists.

    The bucket borders are fitted first, on ``border_curves`` noisy prior curves, unless
    ``init`` gives trained weights to start from (and their borders). The
    same settings give bitwise the same weights on the same device, with or without
    interruptions: the prior's numpy generator and torch's global generator (seeded
    with ``seed``, used for the initial weights and dropout) are saved in each
    checkpoint along with the model and optimizer.

    Args:
        config: Network size; ``config.length`` is also the prior curves' length.
        settings: Recipe.
        checkpoint: File to resume from, written every ``checkpoint_every`` steps and
            at the end.
        device: Where to train.
        on_step: Called after each step with (step from 1, steps, loss).
        corpus: Recorded curves for ``settings.corpus_share`` of every batch; each no
            longer than ``config.length``.
        init: Trained network of the same config to fine-tune.

    Returns:
        The trained network, in eval mode, its borders the fitted ones.

    Raises:
        CheckpointError: ``checkpoint`` is unreadable or comes from another config,
            other settings, another corpus or other initial weights.
        ConfigError: ``corpus_share`` > 0 without a corpus, corpus curves longer than
            the network's length, or ``init`` of another config.
        NasError: The loss became NaN or infinite.
    """
    checkpoint = Path(checkpoint)
    _check_sources(config, settings, corpus, init)
    fingerprint = {
        **asdict(config),
        **settings.as_dict(),
        "corpus": corpus.digest if corpus is not None and settings.corpus_share else None,
        "init": _weights_digest(init) if init is not None else None,
    }
    curves = np.random.default_rng([settings.seed, _CURVE_STREAM])
    torch.manual_seed(settings.seed)
    payload = load_checkpoint(checkpoint) if checkpoint.exists() else None
    if payload is None and init is not None:
        borders = init.distribution.borders.detach().cpu()
    elif payload is None:
        borders = _fit_borders(config, settings)
    else:
        _check(payload, fingerprint, checkpoint)
        borders = _get(payload, "borders", torch.Tensor, checkpoint)
    model = LCPFN(config, borders)
    if init is not None and payload is None:
        model.load_state_dict(init.state_dict())
    model = model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    start = 0
    if payload is not None:
        start = _restore(payload, checkpoint, model, optimizer, curves, device)

    model.train()
    for step in range(start, settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = lcpfn_learning_rate(settings, step)
        noisy, lengths, cuts = _draw_batch(config, settings, curves, corpus)
        # Every query of the batch counts once, so late cuts weigh less than early ones.
        loss = -torch.cat(
            [
                _scored_log_probs(model, noisy[rows], lengths[rows], cuts[rows], device)
                for rows in _rows_by_length(lengths)
            ]
        ).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NasError(
                f"LC-PFN training diverged at step {step + 1} (loss {value}); lower lr="
                f"{settings.lr:g} or raise warmup_steps={settings.warmup_steps}."
            )
        done = step + 1
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            save_checkpoint(
                checkpoint,
                {
                    "format": _FORMAT,
                    "fingerprint": fingerprint,
                    "step": done,
                    "borders": model.distribution.borders.cpu(),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "curves": json.dumps(curves.bit_generator.state),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
            )
        if on_step is not None:
            on_step(done, settings.steps, value)
    return model.eval()


def _rows_by_length(lengths: np.ndarray) -> list[np.ndarray]:
    """Row indices per curve length: corpus curves shorter than the network's length go
    through a pass of their own width instead of being padded to it (5x fewer tokens
    for 20-epoch curves and a length of 100)."""
    return [np.flatnonzero(lengths == length) for length in np.unique(lengths)]


def _scored_log_probs(
    model: LCPFN, values: np.ndarray, lengths: np.ndarray, cuts: np.ndarray, device: torch.device
) -> torch.Tensor:
    """Log-likelihood of every query token of rows that share one length."""
    width = int(lengths[0])
    curves = torch.from_numpy(np.ascontiguousarray(values[:, :width])).to(device)  # (b, W)
    positions = torch.arange(width, device=device)
    # A corpus curve is a whole run, stretched over the grid as predictions will see it.
    scale = run_grid_scale(width, model.config.length)
    epochs = ((positions + 1).to(torch.float32) * scale).expand(len(curves), -1)  # (b, W)
    observed = positions < torch.from_numpy(cuts).to(device)[:, None]  # (b, W)
    logits = model(epochs, curves, observed)  # (b, W, buckets)
    return model.distribution.log_prob(logits, curves)[~observed]


def _draw_batch(
    config: LCPFNConfig,
    settings: LCPFNTrainSettings,
    generator: np.random.Generator,
    corpus: CurveCorpus | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Curves (B, L) padded with zeros, their lengths (B,) and cut points (B,).

    The first ``round(corpus_share * B)`` rows are corpus curves; a prior-only batch
    draws exactly as it always did, so earlier trainings reproduce bitwise.
    """
    size, length = settings.batch_size, config.length
    real = round(settings.corpus_share * size) if corpus is not None else 0
    if real == 0:
        noisy, _ = sample_curves(size, length=length, generator=generator)
        cuts = generator.integers(1, length, size=size)  # in [1, L - 1]
        return noisy, np.full(size, length), cuts
    assert corpus is not None
    values = np.zeros((size, length), dtype=np.float32)
    lengths = np.full(size, length)
    picked = generator.integers(0, len(corpus), size=real)
    values[:real, : corpus.epochs] = corpus.curves[picked]
    lengths[:real] = corpus.epochs
    if real < size:
        values[real:], _ = sample_curves(size - real, length=length, generator=generator)
    cuts = generator.integers(1, lengths)  # in [1, length - 1] per row
    return values, lengths, cuts


def _check_sources(
    config: LCPFNConfig,
    settings: LCPFNTrainSettings,
    corpus: CurveCorpus | None,
    init: LCPFN | None,
) -> None:
    if settings.corpus_share > 0 and corpus is None:
        raise ConfigError("corpus_share > 0 needs a corpus of recorded curves to draw from.")
    if corpus is not None and not 2 <= corpus.epochs <= config.length:
        raise ConfigError(
            f"Corpus curves have {corpus.epochs} epochs; the network takes 2 to {config.length}."
        )
    if init is not None and init.config != config:
        raise ConfigError(
            f"The weights to fine-tune are of another size ({init.config}) than the "
            f"network to train ({config})."
        )


def _weights_digest(model: LCPFN) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _fit_borders(config: LCPFNConfig, settings: LCPFNTrainSettings) -> torch.Tensor:
    generator = np.random.default_rng([settings.seed, _BORDER_STREAM])
    noisy, _ = sample_curves(settings.border_curves, length=config.length, generator=generator)
    values = noisy.reshape(-1)
    if values.size > _BORDER_VALUES:
        values = generator.choice(values, size=_BORDER_VALUES, replace=False)
    return fit_borders(torch.from_numpy(values), config.buckets)


def _check(payload: dict[str, Any], fingerprint: dict[str, Any], path: Path) -> None:
    if payload.get("format") != _FORMAT:
        raise CheckpointError(
            f"Checkpoint {path} has format {payload.get('format')!r}, not {_FORMAT}: it was "
            f"written by another version; {_RESTART}."
        )
    stored = _get(payload, "fingerprint", dict, path)
    check_fingerprint(
        stored, fingerprint, path, remedy=f"use another checkpoint path, or {_RESTART}"
    )


def _restore(
    payload: dict[str, Any],
    path: Path,
    model: LCPFN,
    optimizer: torch.optim.Optimizer,
    curves: np.random.Generator,
    device: torch.device,
) -> int:
    step = _get(payload, "step", int, path)
    torch_rng = _get(payload, "torch_rng", torch.Tensor, path)
    cuda_rng = payload.get("cuda_rng")
    try:
        model.load_state_dict(_get(payload, "model", dict, path), strict=True)
        optimizer.load_state_dict(_get(payload, "optimizer", dict, path))
        curves.bit_generator.state = json.loads(_get(payload, "curves", str, path))
        torch.set_rng_state(torch_rng)
        if device.type == "cuda" and isinstance(cuda_rng, torch.Tensor):
            torch.cuda.set_rng_state(cuda_rng, device)
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(
            f"Checkpoint {path} does not fit this model ({detail}); {_RESTART}."
        ) from error
    return step


def _get(payload: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    return entry(payload, key, kind, path, remedy=_RESTART)
