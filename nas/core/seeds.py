"""Seeds derived from several integers: per-trial, per-worker and per-rank streams."""

from __future__ import annotations

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that depends on every part (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])
