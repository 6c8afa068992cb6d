"""The reward interface: scores on *text*, so that a reward model may use its own tokenizer.

``score(prompts, completions) -> Tensor [N]`` (float32, CPU). Every implementation is checked
by :func:`checked_score`, which turns NaN/inf or an exception into a :class:`RewardError` with
a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from rlhf_zoo.errors import UserError, one_line


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
        return as_scores(self.fn(list(prompts), list(completions)), self.name, len(completions), completions)


def as_scores(out: object, name: str, n: int, texts: Sequence[str] | None = None) -> Tensor:
    """A reward's result as [n] float32 on CPU: one real number per text, as a sequence, an array or a
    tensor of shape [n] (or [n, 1], a regressor's column), dense or sparse. Anything else (another shape,
    which flattening would silently re-pair with the texts, complex or non-numeric values, a finite number
    beyond float32's range, which the cast would make inf) is a one-line :class:`RewardError`."""
    try:
        t = torch.as_tensor(out.detach() if isinstance(out, Tensor) else out)
        if not isinstance(out, Tensor) and t.dtype == torch.float32 and not bool(t.isfinite().all()):
            t = torch.as_tensor(out, dtype=torch.float64)  # Python floats: what was returned, before the cast
    except (TypeError, ValueError, RuntimeError) as e:
        items = enumerate(out) if isinstance(out, (list, tuple)) else ()
        bad = next(((i, v) for i, v in items if not isinstance(v, (int, float, list, tuple, Tensor))), None)
        if bad is not None:  # a string among the scores ("1.0"), a None, a dict: say which
            i, v = bad
            raise RewardError(
                f"reward {name!r} returned a {type(out).__name__} whose item {i + 1} is {type(v).__name__} "
                f"{repr(v)[:80]}, not a number: return one float per completion"
            ) from None
        raise RewardError(f"reward {name!r} returned {type(out).__name__}, not numbers ({one_line(e)})") from None
    if t.layout != torch.strided:  # a sparse result (a classifier's thresholded output) holds the same numbers
        t = t.to_dense()
    if t.is_complex():
        raise RewardError(f"reward {name!r} returned {t.dtype} scores: one real number per text")
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1:
        raise RewardError(f"reward {name!r} returned scores of shape {tuple(t.shape)} for {n} texts: use [{n}]")
    if t.shape[0] != n:
        raise RewardError(f"reward {name!r} returned {t.shape[0]} scores for {n} texts")
    over = t.isfinite() & (t.abs() > torch.finfo(torch.float32).max) if t.dtype == torch.float64 else None
    if over is not None and over.any():
        i = int(over.nonzero()[0, 0])
        where = f"completion {texts[i]!r}" if texts is not None else f"text {i + 1} of {n}"
        raise RewardError(
            f"reward {name!r} returned {t[i].item()!r} for {where}, beyond float32's range (about ±3.4e38): "
            "scale the scores down"
        )
    return t.to(torch.float32).cpu()


def _raised_at(e: BaseException) -> str:
    """`` (at FILE:LINE in FUNCTION)``: where in the reward's own code ``e`` was raised, for one line to debug from
    (a user's reward raised "ValueError: ..." and nothing said where): the innermost frame outside the installed
    packages and the standard library (the user's module, not numpy's internals it called), else the innermost."""
    import sysconfig
    import traceback

    frames = traceback.extract_tb(e.__traceback__)[1:]  # the first is checked_score's own call of score
    if not frames:
        return ""
    library = tuple(
        str(Path(sysconfig.get_paths()[k]).resolve())
        for k in ("stdlib", "purelib", "platlib")
        if k in sysconfig.get_paths()
    )
    own = [f for f in frames if not str(Path(f.filename).resolve()).startswith(library)]
    f = (own or frames)[-1]
    return f" (at {f.filename}:{f.lineno} in {f.name})"


def checked_score(reward: RewardModel, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
    """``reward.score`` with its contract enforced: one finite score per text (:func:`as_scores`), float32 on
    CPU."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    try:
        out = reward.score(prompts, completions)
    except RewardError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes one clear error
        raise RewardError(f"reward {reward.name!r} raised {one_line(e)}{_raised_at(e)}") from e
    except SystemExit as e:  # sys.exit() in the reward (or a CLI helper it calls): the run ended with no line
        raise RewardError(
            f"reward {reward.name!r} exited (SystemExit: {e.code}){_raised_at(e)} while scoring: "
            "a reward returns its scores; raise an exception to stop the run"
        ) from e
    out = as_scores(out, reward.name, len(completions), completions)
    bad = ~torch.isfinite(out)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise RewardError(
            f"reward {reward.name!r} returned {out[i].item()} for completion {completions[i]!r} "
            f"({int(bad.sum())} of {len(out)} scores not finite)"
        )
    return out
