"""The LC-PFN network: a transformer that maps a partial learning curve to predictions.

Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data
Fitted Networks", NeurIPS 2023, after Müller et al., "Transformers Can Do Bayesian
Inference", ICLR 2022. Each (epoch, value) pair of the observed prefix is one token;
each epoch to predict is a token holding the epoch alone. Observed tokens attend to
each other, query tokens attend to the observed ones only, so every query is predicted
from the prefix alone and queries never see each other. There is no positional
encoding beyond the epoch itself: the prefix is treated as a set of pairs, as in PFNs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.lcpfn.bar_distribution import BarDistribution
from evaluators.lcpfn.calibration import SpreadCalibration
from nas.core.errors import ConfigError
from nas.core.validation import check_number


@dataclass(frozen=True, kw_only=True)
class LCPFNConfig:
    """Size of an LC-PFN; the defaults are the paper's large model.

    Attributes:
        emsize: Width of every token's embedding.
        layers: Transformer blocks (the paper also trains a 6-layer model).
        heads: Attention heads; must divide ``emsize``.
        hidden: Width of each block's feed-forward layer.
        buckets: Buckets of the output bar distribution.
        length: Epochs of a full curve; epochs are fed as ``epoch / length``.
        dropout: Dropout on attention weights and residual branches.
    """

    emsize: int = 512  # the paper's d_model
    layers: int = 12  # 12 for the large model, 6 for the small one
    heads: int = 4  # emsize / heads = 128 per head
    hidden: int = 1024  # feed-forward width, 2 x emsize
    buckets: int = 1000  # bar-distribution resolution
    length: int = 100  # epochs per curve in the prior
    dropout: float = 0.0  # the prior gives endless fresh data, so no regularisation

    def __post_init__(self) -> None:
        for name in ("emsize", "layers", "heads", "hidden", "buckets"):
            check_number(name, getattr(self, name), integer=True, low=1)
        check_number("length", self.length, integer=True, low=2)
        check_number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        if self.emsize % self.heads:
            raise ConfigError(
                f"heads must divide emsize, but got emsize={self.emsize}, heads={self.heads}."
            )


def run_grid_scale(run_epochs: int, length: int) -> float:
    """Where a run of ``run_epochs`` epochs puts its epochs on a grid of ``length``.

    The prior's curves are whole runs of ``length`` epochs, and a real run's learning rate
    schedule ends with the run (a cosine schedule flattens its last epochs), so a shorter
    run is stretched over the whole grid: epoch e at ``e * length / run_epochs``, its last
    epoch at ``length``. Read as the first epochs of a longer prior curve instead, its
    flat end looked like a curve that still had most of its growth ahead. Longer runs are
    subsampled onto the grid by the caller (``nas.early_stopping.to_model_epochs``).
    """
    check_number("run_epochs", run_epochs, integer=True, low=1)
    return length / run_epochs if run_epochs < length else 1.0


class _Block(nn.Module):
    """Pre-norm transformer block whose attention follows a boolean mask."""

    def __init__(self, config: LCPFNConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.norm1 = nn.LayerNorm(config.emsize)
        self.qkv = nn.Linear(config.emsize, 3 * config.emsize)
        self.proj = nn.Linear(config.emsize, config.emsize)
        self.norm2 = nn.LayerNorm(config.emsize)
        self.mlp = nn.Sequential(
            nn.Linear(config.emsize, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.emsize),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Outputs of tokens ``first`` on, each attending to the allowed ``keys``.

        Every token's keys and values are computed, but the attention, projection and
        feed-forward layer only for the tokens whose output is wanted: the last block of
        a prediction skips the observed tokens, whose outputs nothing reads.
        """
        B, T, C = x.shape  # batch, tokens, emsize
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=-1)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        q = q[:, :, first:]  # (B, nh, T', hs) with T' = T - first
        # keys: (B, T) True where a token may be attended to, broadcast over heads and queries.
        mask = keys[:, None, None, :]  # (B, 1, 1, T)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T', hs)
        attended = attended.transpose(1, 2).reshape(B, T - first, C)  # (B, T', C)
        x = x[:, first:] + self.drop(self.proj(attended))
        return x + self.drop(self.mlp(self.norm2(x)))  # (B, T', C)


class LCPFN(nn.Module):
    """Predicts a bar distribution for later epochs of a curve from its observed prefix.

    Args:
        config: Sizes.
        borders: Bucket edges of the output distribution, shape (buckets + 1,); equal
            widths on [0, 1] when omitted (training replaces them with fitted ones,
            and they are part of the state dict).
    """

    def __init__(self, config: LCPFNConfig, borders: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        if borders is None:
            borders = torch.linspace(0.0, 1.0, config.buckets + 1)
        self.distribution = BarDistribution(borders)
        if self.distribution.num_buckets != config.buckets:
            raise ConfigError(
                f"borders must have buckets + 1 = {config.buckets + 1} edges, but got "
                f"{borders.numel()}."
            )
        self.epoch_embedding = nn.Linear(1, config.emsize)
        self.value_embedding = nn.Linear(1, config.emsize)
        # Marks a query token in place of a value, so that "value 0" and "no value" differ.
        self.query_embedding = nn.Parameter(torch.zeros(config.emsize))
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.emsize)
        self.head = nn.Linear(config.emsize, config.buckets)
        # Fitted after training on curves the network did not see (``nas lcpfn
        # calibrate``) and stored in its card, not its weights; None: predictions as trained.
        self.calibration: SpreadCalibration | None = None

    def forward(
        self,
        epochs: torch.Tensor,
        values: torch.Tensor,
        observed: torch.Tensor,
        *,
        first_output: int = 0,
    ) -> torch.Tensor:
        """Logits over the buckets for every token from ``first_output`` on.

        Args:
            epochs: Epoch of each token, counted from 1, shape (B, T).
            values: Curve value of each token, shape (B, T); read only where observed.
            observed: True for the tokens of the observed prefix, shape (B, T); each
                curve needs at least one. Every other token is a query.
            first_output: Tokens before it get no logits; prediction puts every query
                last and skips the observed tokens, whose logits it would not read
                (the output layer is the widest one).

        Returns:
            Logits of shape (B, T - first_output, buckets); those of observed tokens
            are meaningless for prediction (they see their own value) and are ignored
            by training.
        """
        if not bool(observed.any(dim=-1).all()):
            raise ConfigError("Every curve needs at least one observed epoch to predict from.")
        length = self.config.length
        t = (epochs.to(self.head.weight.dtype) / length).unsqueeze(-1)  # (B, T, 1)
        # A query's value is replaced before the embedding, so no input there can leak.
        y = torch.where(observed, values, torch.zeros_like(values)).unsqueeze(-1)  # (B, T, 1)
        marker = torch.where(
            observed.unsqueeze(-1),
            self.value_embedding(y.to(t.dtype)),
            self.query_embedding.expand(*observed.shape, -1),
        )  # (B, T, C)
        x = self.epoch_embedding(t) + marker  # (B, T, C)
        for block in self.blocks[:-1]:
            x = block(x, observed)  # (B, T, C)
        x = self.blocks[-1](x, observed, first_output)  # (B, T - first_output, C)
        return self.head(self.norm(x))  # (B, T - first_output, buckets)

    @torch.no_grad()
    def predict(
        self,
        observed: Sequence[torch.Tensor] | torch.Tensor,
        query_epochs: Sequence[int] | torch.Tensor,
        *,
        lengths: Sequence[int] | torch.Tensor | None = None,
        epoch_scale: float = 1.0,
    ) -> torch.Tensor:
        """Logits for ``query_epochs`` of each curve, given its first observed epochs.

        Args:
            observed: One 1-D tensor per curve with the values of epochs 1, 2, ..., or a
                padded tensor of shape (B, N) together with ``lengths``.
            query_epochs: Epochs to predict (counted from 1), shape (Q,) for every curve
                alike or (B, Q) per curve.
            lengths: Observed epochs per curve, shape (B,), for a padded ``observed``;
                all N when omitted. Values past a curve's length are ignored.
            epoch_scale: Every epoch, observed or queried, sits at this multiple of its
                number on the network's grid: ``length / E`` stretches a run of E epochs
                over the whole grid (see ``run_grid_scale``).

        Returns:
            Logits of shape (B, Q, buckets); ``self.distribution`` turns them into
            means, quantiles or probabilities. With a ``calibration``, they are the
            calibrated log bucket masses.
        """
        device = self.head.weight.device
        if isinstance(observed, torch.Tensor):
            values = observed.to(device=device, dtype=torch.float32)
            if values.dim() != 2:
                raise ConfigError(
                    f"A padded observed tensor must be 2-D, but got shape {tuple(values.shape)}."
                )
            if lengths is None:
                lengths = [values.shape[1]] * values.shape[0]
        else:
            if lengths is not None:
                raise ConfigError("lengths goes with a padded tensor, not a list of curves.")
            curves = [torch.as_tensor(c, dtype=torch.float32).reshape(-1) for c in observed]
            lengths = [c.numel() for c in curves]
            values = torch.zeros(len(curves), max(lengths, default=0), device=device)
            for row, curve in enumerate(curves):
                values[row, : curve.numel()] = curve.to(device)
        count = torch.as_tensor(lengths, device=device).reshape(-1)  # (B,)
        B, N = values.shape
        if count.numel() != B or bool((count < 1).any()) or bool((count > N).any()):
            raise ConfigError(
                f"lengths must hold one count in [1, {N}] per curve, but got "
                f"{count.tolist()!r} for {B} curves."
            )
        queries = torch.as_tensor(query_epochs, device=device, dtype=torch.float32)
        queries = queries.expand(B, -1) if queries.dim() == 1 else queries  # (B, Q)
        if queries.dim() != 2 or queries.shape[0] != B:
            raise ConfigError(
                f"query_epochs must have shape (Q,) or ({B}, Q), but got {tuple(queries.shape)}."
            )
        prefix = torch.arange(1, N + 1, device=device, dtype=torch.float32).expand(B, N)
        epochs = torch.cat([prefix, queries], dim=1) * epoch_scale  # (B, N + Q)
        inputs = torch.cat([values, torch.zeros_like(queries)], dim=1)  # (B, N + Q)
        seen = torch.arange(N, device=device) < count[:, None]  # (B, N)
        mask = torch.cat([seen, torch.zeros_like(queries, dtype=torch.bool)], dim=1)
        logits = self(epochs, inputs, mask, first_output=N)  # (B, Q, buckets)
        if self.calibration is None:
            return logits
        return self.calibration.apply(logits, count[:, None] / queries)  # share of each run
