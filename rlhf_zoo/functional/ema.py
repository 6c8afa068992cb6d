"""Exponential moving average of weights (ALGORITHMS.md §6.5; J-BOND, paper §5).

θ_anchor ← (1 − η)·θ_anchor + η·θ after every optimiser step (paper: η = 0.02).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def ema(anchor: Tensor, online: Tensor, eta: float) -> Tensor:
    """Return (1 − η)·anchor + η·online (pure)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    return anchor + eta * (online - anchor)


@torch.no_grad()
def ema_(anchors: Iterable[Tensor], online: Iterable[Tensor], eta: float) -> None:
    """In place: every anchor tensor ← (1 − η)·anchor + η·online. η = 1 is a hard swap."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    for a, o in zip(anchors, online, strict=True):
        a.lerp_(o.detach().to(a.dtype), eta)
