"""What the HFSequenceReward tests share: texts and prompts to score, and the model's logits computed apart."""

from __future__ import annotations

from pathlib import Path

import torch

TEXTS = [
    "the movie was good",
    "bad",
    "i hated this boring film !",
    "wonderful acting and a great story , i loved it",
    "ok",
    "the plot was not fun but the acting was fine",
    "awful awful awful",
    "this film is a movie",
    "so good",
    "too long and too boring",
]
PROMPTS = ["the film", "a", "it", "this", "so", "the", "i", "it is", "the story", "but"]


def logits(path: Path, texts: list[str], **tok_kw) -> torch.Tensor:
    """The float32 model's logits for each text alone (no padding), tokenized with ``tok_kw``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return torch.cat([model(**tok([t], return_tensors="pt", **tok_kw)).logits for t in texts])
