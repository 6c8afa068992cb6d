"""The offline *gold* reward ``minilm_sentiment`` at run time: load the built model and score text.

Model: all-MiniLM-L6-v2 fine-tuned as a regressor (``BertForSequenceClassification``, one output)
on human sentiment ratings (Hutto & Gilbert, ICWSM 2014), built once by ``rlhf-zoo prepare``
(:mod:`rlhf_zoo.rewards.minilm_build`, which also describes the training).

Output scale: ``f(x)`` is the predicted mean human rating of the text, on the raters' scale of
about [-4, 4] (negative = negative sentiment; not clipped). Pearson r against the 3,000
``gold_heldout`` ratings is recorded in ``meta.json`` (target >= 0.8; VADER gets 0.54).

Files: a standard Hugging Face model folder (``save_pretrained`` of the model and tokenizer)
plus ``meta.json`` in ``cache_dir("rewards", "minilm_sentiment")``. ``meta.json`` is written
last and the folder is built under a temporary name and renamed into place, so a folder with
``meta.json`` is always complete. The builder owns these names and the location (``GOLD_NAME``,
``default_path``, ``is_built``, ``read_meta``); this module re-exports them.

The reward reads the completion alone by default (``text="completion"``), like ``vader``;
``text="prompt+completion"`` scores the whole review instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import build_lock
from rlhf_zoo.rewards import minilm_build
from rlhf_zoo.rewards._text import TextMode
from rlhf_zoo.rewards.hf import HFSequenceReward
from rlhf_zoo.rewards.minilm_build import GOLD_NAME, default_path, is_built, read_meta

PREPARE_COMMAND = "rlhf-zoo prepare"


class MiniLMSentimentReward(HFSequenceReward):
    """The gold reward: :class:`HFSequenceReward` over the built model, plus its ``meta``."""

    meta: dict[str, Any]


def load_minilm_sentiment(
    build_if_missing: bool = True,
    *,
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    text: TextMode = "completion",
    progress: bool = True,
) -> MiniLMSentimentReward:
    """The gold reward ``minilm_sentiment`` (score = predicted human rating, about [-4, 4]).

    If the model is not built yet at the default location: build it there when ``build_if_missing``
    (minutes; see :mod:`rlhf_zoo.rewards.minilm_build`), else raise ``UserError`` naming ``rlhf-zoo prepare``.
    A ``path`` given that holds no model is never built: a one-line ``UserError`` naming it.
    ``max_length`` for scoring (128) is above the training one (64) so that prompt + completion fit.
    """
    p = Path(path).expanduser() if path is not None else default_path()
    if not is_built(p):
        if path is not None and p != default_path():
            raise UserError(
                f"the gold reward {GOLD_NAME!r}: no model in {p} (no such built model; check the path, "
                f"or leave the path out to use the one `{PREPARE_COMMAND}` builds)"
            )
        if not build_if_missing:
            raise UserError(
                f"the gold reward {GOLD_NAME!r} is not built yet (no model in {p}): "
                f"run `{PREPARE_COMMAND}` once (about 10 minutes on CPU)"
            )
        with build_lock(p, GOLD_NAME):
            if not is_built(p):  # else another process built it while this one waited
                minilm_build.build_minilm_sentiment(path=p, progress=progress)
    reward = MiniLMSentimentReward(
        p, device=device, batch_size=batch_size, max_length=max_length, text=text, name=GOLD_NAME
    )
    reward.meta = read_meta(p)
    return reward


__all__ = [
    "GOLD_NAME",
    "PREPARE_COMMAND",
    "MiniLMSentimentReward",
    "default_path",
    "is_built",
    "load_minilm_sentiment",
    "read_meta",
]
