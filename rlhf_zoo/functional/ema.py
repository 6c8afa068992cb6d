"""Exponential moving average of weights (ALGORITHMS.md §6.5; J-BOND, paper §5).

θ_anchor ← (1 − η)·θ_anchor + η·θ after every optimiser step (paper: η = 0.02).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def ema(anchor: Tensor, online: Tensor, eta: float) -> Tensor:
    """Return (1 − η)·anchor + η·online (pure).

    Computed with ``torch.lerp`` (as :func:`ema_` is), so that η = 0 returns ``anchor`` and
    η = 1 returns ``online`` exactly (a hard swap), and the two functions agree bit for bit;
    ``anchor + η·(online − anchor)`` can miss ``online`` at η = 1 by rounding.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    dtype = torch.result_type(anchor, online)
    return torch.lerp(anchor.to(dtype), online.to(dtype), eta)


@torch.no_grad()
def ema_(anchors: Iterable[Tensor], online: Iterable[Tensor], eta: float) -> None:
    """In place: every anchor tensor ← (1 − η)·anchor + η·online. η = 1 is a hard swap."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    for a, o in zip(anchors, online, strict=True):
        a.lerp_(o.detach().to(a.dtype), eta)
