"""VADER (Hutto & Gilbert, ICWSM 2014) as a reward: the offline sentiment task's cheap *proxy*.

``score_i = polarity_scores(x_i)["compound"]`` in [-1, 1], where ``x_i`` is the completion
alone by default (``text="completion"``): the prompt is the same for every completion of a
group, and scoring only what the policy wrote keeps the proxy and the gold reward
(:mod:`rlhf_zoo.rewards.minilm`, same default) reading the same text. ``text="prompt+completion"``
scores ``prompt + completion`` instead (VADER is not additive, so the two differ beyond a
constant: negation or contrast in the prompt can flip a completion's sentiment).

VADER is a lexicon with rules (negation, intensifiers, "but", capitals, "!"), which makes it
easy to game (repeat "great!!!"), which is the point of a proxy. Pearson r against 3,000
held-out human ratings: 0.54 (RESOURCES.md), versus 0.83 for the gold model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlhf_zoo.errors import MissingPackageError
from rlhf_zoo.rewards._text import TextMode, check_text_mode, reward_texts


class VaderReward:
    """The VADER compound score of each completion (or prompt + completion), in [-1, 1]."""

    def __init__(self, text: TextMode = "completion", name: str = "vader"):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise MissingPackageError("vaderSentiment", "the 'vader' reward") from e
        self.text = check_text_mode(text)
        self.name = name
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
        """[N] float32 compound scores on CPU."""
        texts = reward_texts(prompts, completions, self.text)
        vals = [self._analyzer.polarity_scores(t)["compound"] for t in texts]
        return torch.tensor(vals, dtype=torch.float32)

    def __repr__(self) -> str:
        return f"VaderReward(text={self.text!r})"
