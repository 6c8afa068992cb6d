"""The reward interface: scores on *text*, so that a reward model may use its own tokenizer.

``score(prompts, completions) -> Tensor [N]`` (float32, CPU). Every implementation is checked
by :func:`checked_score`, which turns NaN/inf or an exception into a :class:`RewardError` with
a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from rlhf_zoo.errors import UserError


class RewardError(UserError):
    """A reward model failed or returned a non-finite score."""


@runtime_checkable
class RewardModel(Protocol):
    name: str

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
        """One scalar per (prompt, completion) pair: [N] float32 on CPU."""
        ...


class CallableReward:
    """Wraps a Python callable ``f(prompts, completions) -> sequence of floats`` (a list, a numpy array or a
    tensor; given two lists of strings)."""

    def __init__(self, fn: Callable[[Sequence[str], Sequence[str]], Sequence[float] | Tensor], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "callable")

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
        out = self.fn(list(prompts), list(completions))
        if isinstance(out, Tensor):
            out = out.detach()
        return torch.as_tensor(out, dtype=torch.float32).reshape(-1).cpu()


def checked_score(reward: RewardModel, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
    """``reward.score`` with its contract enforced: right length, finite, float32 on CPU."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    try:
        out = reward.score(prompts, completions)
    except RewardError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes one clear error
        raise RewardError(f"reward {reward.name!r} raised {type(e).__name__}: {e}") from e
    out = torch.as_tensor(out, dtype=torch.float32).reshape(-1).cpu()
    if out.shape[0] != len(completions):
        raise RewardError(f"reward {reward.name!r} returned {out.shape[0]} scores for {len(completions)} texts")
    bad = ~torch.isfinite(out)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise RewardError(
            f"reward {reward.name!r} returned {out[i].item()} for completion {completions[i]!r} "
            f"({int(bad.sum())} of {len(out)} scores not finite)"
        )
    return out
