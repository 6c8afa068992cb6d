"""The default language-model task, ``task=sentiment``: continue a movie review positively.

Prompts are the first ``prompt_words`` words of the movie-review snippets of Hutto & Gilbert
(ICWSM 2014), shipped in the source distribution of vaderSentiment (see
:mod:`rlhf_zoo.data.hutto`): train prompts from the snippets the gold reward was trained on,
held-out eval prompts from snippets reserved before the gold reward was built, so no eval prompt
is among the texts the gold reward saw. The policy continues the text (as in the IMDb positive
continuation task of Ziegler et al. 2019).

- proxy reward (optimised): ``vader``, the VADER lexicon's compound score of the completion, in
  [−1, 1]: cheap and gameable;
- gold reward (only evaluated): ``minilm_sentiment``, a MiniLM regressor fine-tuned on the human
  ratings (Pearson r ≈ 0.8 on held-out ratings), predicting the mean human rating in about [−4, 4].
  ``task.gold=null`` skips it; a missing gold model is built on first use (about 10 minutes on
  2 CPU cores, with a progress bar) unless ``task.build_gold=false``, in which case the error
  names ``rlhf-zoo prepare``.

Prompts do **not** go through the chat template (``model.chat_template=false``): the task is a
text continuation, and a chat wrapper would make an instruct model answer the review instead of
continuing it. ``task.prompts`` may name any ``datasets`` source instead of the packaged snippets
(a hub id for users with a network, or a local ``json``/``csv``/``text`` file); its
``prompt_column`` is cut to ``prompt_words`` words and split into train and eval by a hash of the
text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_zoo.errors import MissingPackageError, UserError, one_line
from rlhf_zoo.tasks.base import Task


@dataclass(frozen=True)
class SentimentTaskConfig:
    """Attributes:
    name: always ``sentiment``.
    prompts: ``hutto`` (the packaged movie-review snippets) or a ``datasets`` source: a hub id, a
        local directory, or a local ``.json``/``.jsonl``/``.csv``/``.txt`` file.
    prompt_split: the dataset split to read (``datasets`` sources).
    prompt_column: the text column (``datasets`` sources).
    prompt_words: each prompt is the first ``prompt_words`` words of a text.
    eval_fraction: share of a ``datasets`` source held out for evaluation (hashed by text).
    max_train_prompts: 0 = all.
    proxy: the optimised reward (a name for :func:`rlhf_zoo.rewards.registry.build_reward`).
    gold: the evaluated reward, or null to skip it.
    build_gold: build a missing ``minilm_sentiment`` on first use (else fail naming ``rlhf-zoo prepare``).
    reward_device: device of neural reward models (``auto``: the policy's device).
    """

    name: str = "sentiment"
    prompts: str = "hutto"
    prompt_split: str = "train"
    prompt_column: str = "text"
    prompt_words: int = 6
    eval_fraction: float = 0.1
    max_train_prompts: int = 0
    proxy: str = "vader"
    gold: str | None = "minilm_sentiment"
    build_gold: bool = True
    reward_device: str = "auto"


def _hash_unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def _first_words(text: str, n: int) -> str:
    return " ".join(str(text).split()[:n])


def load_dataset_prompts(cfg: SentimentTaskConfig) -> tuple[list[str], list[str]]:
    """Train and eval prompts from any ``datasets`` source (split by a hash of each prompt)."""
    try:
        import datasets
    except ImportError:
        raise MissingPackageError("datasets", "task.prompts from a datasets source") from None
    datasets.disable_progress_bars()  # a prompt file loads in a blink; keep stderr for errors
    src = cfg.prompts
    suffix = Path(src).suffix.lower()
    builder = {".json": "json", ".jsonl": "json", ".csv": "csv", ".txt": "text"}.get(suffix)
    if builder and Path(src).is_file():
        rows = [line for line in Path(src).read_text(errors="replace").splitlines() if line.strip()]
        if len(rows) <= (builder == "csv"):
            raise UserError(f"{src} holds no prompts (it is empty{' but for its header' if rows else ''})")
    try:
        if builder and Path(src).is_file():
            ds = datasets.load_dataset(builder, data_files=src, split="train")
        else:
            ds = datasets.load_dataset(src, split=cfg.prompt_split)
    except Exception as e:  # noqa: BLE001 - any loading failure is the user's source
        raise UserError(f"cannot load prompts from {src!r}: {one_line(e)}") from None
    if cfg.prompt_column not in ds.column_names:
        raise UserError(f"{src!r} has no column {cfg.prompt_column!r}; columns: {', '.join(ds.column_names)}")
    seen, train, evals = set(), [], []
    for text in ds[cfg.prompt_column]:
        p = _first_words(text, cfg.prompt_words)
        if not p or p in seen:
            continue
        seen.add(p)
        (evals if _hash_unit(p) < cfg.eval_fraction else train).append(p)
    return train, evals


def build_sentiment_task(cfg: SentimentTaskConfig, model_cfg: Any, device: str = "cpu") -> Task:
    """Prompts, rewards and the policy builder of the sentiment task (see the module docstring)."""
    from rlhf_zoo.rewards.registry import build_reward

    if cfg.prompt_words < 1:
        raise UserError("task.prompt_words must be >= 1")
    if cfg.prompts == "hutto":
        from rlhf_zoo.data.hutto import prompt_texts

        train = prompt_texts("train", n_words=cfg.prompt_words)
        evals = prompt_texts("eval", n_words=cfg.prompt_words)
    else:
        train, evals = load_dataset_prompts(cfg)
    if cfg.max_train_prompts > 0:
        train = train[: cfg.max_train_prompts]
    if not train:
        raise UserError(f"the prompt set {cfg.prompts!r} gives no training prompts")
    if not evals:
        raise UserError(f"the prompt set {cfg.prompts!r} gives no held-out evaluation prompts")
    reward_device = device if cfg.reward_device == "auto" else cfg.reward_device
    proxy = _reward(build_reward, cfg.proxy, reward_device, build_if_missing=cfg.build_gold)
    gold = _reward(build_reward, cfg.gold, reward_device, build_if_missing=cfg.build_gold) if cfg.gold else None

    def build_policy(seed: int):
        from rlhf_zoo.policies.hf import build_hf_policy

        policy = build_hf_policy(model_cfg, device=device, seed=seed)
        policy.encode_prompts(train + evals)  # a prompt over the length limit fails here, before training
        return policy

    return Task(
        name="sentiment", train_prompts=train, eval_prompts=evals, proxy=proxy, gold=gold, build_policy=build_policy
    )


def _reward(build_reward, name: str, device: str, build_if_missing: bool):
    kw: dict[str, Any] = {}
    if name == "minilm_sentiment":
        kw = {"build_if_missing": build_if_missing, "device": device}
    elif name.startswith("hf:"):
        kw = {"device": device}
    return build_reward(name, **kw)
