"""Hugging Face sequence classifiers and regressors as rewards, by model id or local path.

The model is loaded with ``AutoModelForSequenceClassification`` and its own tokenizer, put in
eval mode, and run without gradients in batches; a checkpoint without the head's weights (a base
encoder, a causal LM), whose head transformers would initialise at random, is refused. With ``z``
the model's output logits for one text (``num_labels`` values), the score is

- ``z[0]`` for a regressor (``num_labels == 1``), e.g. the gold ``minilm_sentiment`` model;
- ``z[label]`` when ``label`` is given, or ``z[label] - z[negative_label]`` when both are
  (for a softmax classifier that difference is ``log p(label) - log p(negative_label)``);
- ``z[1] - z[0]`` for a two-label classifier when no label is given (log-odds of label 1), unless its
  labels are named positive-then-negative (label 0 ``pos…``, label 1 ``neg…``): then a ``UserError``
  asking for ``label``, since that default would reward the negative label;
- for more labels without ``label``: a ``UserError`` asking for one.

Labels may be indices or names from the model's ``config.label2id`` (case-insensitive).
Which text is read (``text``): ``"completion"``, ``"prompt+completion"`` (concatenated) or
``"pair"`` (prompt and completion as the tokenizer's text pair, for reward models trained on
(question, answer) pairs). Texts are truncated to ``max_length`` tokens (right side).

Texts are sorted by length before batching (less padding) and scores put back in input order;
the scores do not depend on ``batch_size`` beyond float rounding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from rlhf_zoo.errors import MissingPackageError, UserError
from rlhf_zoo.hub import local_or_hub, quiet_transformers
from rlhf_zoo.rewards._text import check_text_mode, reward_texts

HFTextMode = Literal["completion", "prompt+completion", "pair"]

# where a run sets ``label=``: the sentiment task names its own setting instead (task.gold_options for the gold)
RUN_HINT = "(in a run: task.proxy_options.label=..., or task.gold_options.label=...)"


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _label_index(label: int | str, config: Any) -> int:
    n = int(config.num_labels)
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        table = {str(k).lower(): int(v) for k, v in (config.label2id or {}).items()}
        if label.lower() not in table:
            raise UserError(f"label {label!r} is not one of the model's labels {sorted(table)}")
        return table[label.lower()]
    idx = int(label)
    if not -n <= idx < n:
        raise UserError(f"label index {idx} out of range for a model with {n} labels")
    return idx % n


def _load(source: str) -> tuple[Any, Any]:
    """The sequence classifier at ``source`` (a local folder or a hub id) in float32, and its tokenizer;
    a missing folder, a failed load and a checkpoint without the head's weights are refused in one line."""
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as e:
        raise MissingPackageError("transformers", "a Hugging Face reward model") from e
    local = Path(source).expanduser()
    if not local.exists() and (local.is_absolute() or source.startswith((".", "~"))):
        raise UserError(f"reward model folder {source!r} does not exist")
    src = local_or_hub(source)
    try:
        with quiet_transformers():  # model first: a hub failure then costs one retry cycle
            model, loaded = AutoModelForSequenceClassification.from_pretrained(
                src, dtype=torch.float32, output_loading_info=True
            )
            tokenizer = AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"could not load the reward model {source!r} ({first}); without network "
            f"access pass a local directory that holds the model and its tokenizer "
            f"(HF_HUB_OFFLINE=1 makes hub look-ups fail at once)"
        ) from e
    missing = sorted(loaded.get("missing_keys") or ())
    if missing:  # a head transformers initialised at random: its scores would be noise
        raise UserError(
            f"{source!r} has no trained classification head ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''} not in the checkpoint): it is not a sequence classifier "
            f"or reward model (a base or causal LM?); an hf: reward needs one"
        )
    return model, tokenizer


def _score_labels(
    config: Any, label: int | str | None, negative_label: int | str | None, source: str
) -> tuple[int, int | None]:
    """The logit indices of the score, ``z[label] - z[negative_label]`` (None: ``z[label]``), by the
    rules of the module docstring."""
    n = int(config.num_labels)
    if negative_label is not None and label is None:
        raise UserError("negative_label needs label too (score = logit[label] - logit[negative_label])")
    if label is not None:
        index = _label_index(label, config)
        negative = None if negative_label is None else _label_index(negative_label, config)
        if negative == index:  # z[i] - z[i]: every score 0
            raise UserError(
                f"label={label!r} and negative_label={negative_label!r} name the same logit ({index}): "
                "every score would be 0; name two different labels, or leave negative_label out"
            )
        return index, negative
    if n == 1:
        return 0, None
    if n == 2:
        names = [str((config.id2label or {}).get(i, "")).lower() for i in (0, 1)]
        if names[0].startswith("pos") and names[1].startswith("neg"):  # logit 1 − logit 0 would reward "negative"
            raise UserError(
                f"{source!r} names label 0 {config.id2label[0]!r} and label 1 {config.id2label[1]!r}: the "
                f"default score logit 1 − logit 0 would reward the second; pass label=... {RUN_HINT}"
            )
        return 1, 0
    names = [config.id2label[i] for i in range(n)] if config.id2label else list(range(n))
    raise UserError(
        f"{source!r} has {n} labels {names}: pass label=... (and optionally "
        f"negative_label=...) to choose the score {RUN_HINT}"
    )


class HFSequenceReward:
    """A reward read from a Hugging Face ``AutoModelForSequenceClassification`` model.

    Args:
        model_name_or_path: hub id (needs network) or a local directory with the model and its
            tokenizer.
        device: where the model runs; ``None`` = cuda if available, else cpu. Scores come
            back as float32 on CPU.
        batch_size: texts per forward pass.
        max_length: maximum tokens per text (longer texts are truncated on the right); capped
            by the tokenizer's ``model_max_length`` and the model's ``max_position_embeddings``.
        text: ``"completion"``, ``"prompt+completion"`` or ``"pair"`` (see module docstring).
        label / negative_label: which logit(s) make the score (see module docstring).
        name: the reward's name in metrics; default ``"hf:<model_name_or_path>"``.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        max_length: int = 512,
        text: HFTextMode = "completion",
        label: int | str | None = None,
        negative_label: int | str | None = None,
        name: str | None = None,
    ):
        if batch_size < 1 or max_length < 1:
            raise UserError(f"batch_size and max_length must be >= 1, got {batch_size}, {max_length}")
        self.text = check_text_mode(text, ("completion", "prompt+completion", "pair"))
        self.source = str(model_name_or_path)
        self.name = name or f"hf:{self.source}"
        self.batch_size = int(batch_size)
        self.device = torch.device(device) if device is not None else default_device()
        self.model, self.tokenizer = _load(self.source)
        self.model.to(self.device).eval()
        self.model.requires_grad_(False)
        if self.tokenizer.pad_token is None:  # e.g. GPT-2 style classifiers
            if self.tokenizer.eos_token is None:
                raise UserError(f"the tokenizer of {self.source!r} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = self._usable_length(max_length)
        self.label, self.negative_label = _score_labels(self.model.config, label, negative_label, self.source)

    def _usable_length(self, max_length: int) -> int:
        """``max_length`` capped by the tokenizer's limit and the model's positions (a tokenizer saved
        without ``model_max_length`` has none: a longer text then failed inside the model, mid-run); refused
        where it leaves no room beside the tokenizer's special tokens, which it cannot cut (it would read
        every text whole, or those tokens alone)."""
        limits = [
            getattr(self.tokenizer, "model_max_length", None),
            getattr(self.model.config, "max_position_embeddings", None),
        ]
        usable = int(min([max_length, *(n for n in limits if isinstance(n, int) and n > 0)]))
        special = self.tokenizer.num_special_tokens_to_add(pair=self.text == "pair")
        if usable <= special:
            raise UserError(
                f"max_length={usable} leaves no room for text: the tokenizer of {self.source!r} adds "
                f"{special} special tokens to each{' pair' if self.text == 'pair' else ''}; use max_length >= "
                f"{special + 1}"
            )
        return usable

    def _encode(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, Tensor]:
        kw: dict[str, Any] = dict(padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        if self.text == "pair":
            enc = self.tokenizer(list(prompts), list(completions), **kw)
        else:
            enc = self.tokenizer(reward_texts(prompts, completions, self.text), **kw)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _scores(self, logits: Tensor) -> Tensor:
        s = logits[:, self.label]
        if self.negative_label is not None:
            s = s - logits[:, self.negative_label]
        return s

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
        """[N] float32 scores on CPU, in input order (see the module docstring for the formula)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        n = len(completions)
        out = torch.empty(n, dtype=torch.float32)
        order = sorted(
            range(n),
            key=lambda i: len(prompts[i]) * (self.text != "completion") + len(completions[i]),
        )
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._encode([prompts[i] for i in idx], [completions[i] for i in idx])
            logits = self.model(**enc).logits.float()
            out[torch.tensor(idx)] = self._scores(logits).cpu()
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, text={self.text!r}, label={self.label}, "
            f"negative_label={self.negative_label}, device={str(self.device)!r})"
        )
