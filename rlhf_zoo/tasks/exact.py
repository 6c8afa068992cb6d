"""The exactly solvable testbed, ``task=exact`` (ALGORITHMS.md §8).

A few prompts; completions over a small alphabet plus EOS, at most ``max_len`` tokens, so that
every completion can be enumerated (with the defaults, 3 letters + EOS and length 4: 121
completions per prompt). π_ref is a random logit table per prefix; the *gold* reward is a fixed
standard-normal value per (prompt, completion) and the *proxy* reward adds independent noise to
it, so that optimising the proxy can over-optimise the gold.

Because everything is enumerable, the task carries an :class:`~rlhf_zoo.tasks.oracle.ExactOracle`
that computes every quantity of ALGORITHMS.md exactly (π_BoN, quantiles, KLs, π*_β and the frontier).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rlhf_zoo.policies.tabular import PrefixTree, TabularPolicy
from rlhf_zoo.tasks.base import Task
from rlhf_zoo.tasks.oracle import ExactOracle


@dataclass(frozen=True)
class ExactTaskConfig:
    """The testbed's shape. Its ``seed`` fixes π_ref and the rewards, independently of the run seed.

    Attributes:
        name: always ``exact``.
        num_prompts: number of prompts x (each is both a train and an eval prompt: evaluation is
            exact over the whole prompt distribution, so nothing is held out).
        vocab_size: letters + 1 (the EOS token).
        max_len: the length cap L; completions number Σ_{t<L} (V−1)^t + (V−1)^L per prompt.
        ref_scale: standard deviation of π_ref's random logits (larger: a more peaked π_ref).
        eos_logit: added to EOS's logit in π_ref (negative: longer completions).
        proxy_noise: standard deviation of the noise that separates the proxy from the gold reward.
        seed: fixes π_ref and the rewards.
    """

    name: str = "exact"
    num_prompts: int = 4
    vocab_size: int = 4
    max_len: int = 4
    ref_scale: float = 1.0
    eos_logit: float = -1.0
    proxy_noise: float = 0.5
    seed: int = 0


class TableReward:
    """A reward stored as a table keyed by (prompt, completion text)."""

    def __init__(self, name: str, table: dict[tuple[str, str], float]):
        self.name = name
        self.table = table

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
        try:
            return torch.tensor([self.table[(p, c)] for p, c in zip(prompts, completions, strict=True)])
        except KeyError as e:
            raise ValueError(f"no reward for (prompt, completion) {e.args[0]!r}") from None


MAX_COMPLETIONS = 200_000  # per prompt: every one is enumerated at every evaluation
# the exact evaluation compares each completion of a prompt with every other (its quantiles under π_ref):
# P·M² float64 values per tensor; 4.3e7 (4 prompts, vocab_size 4, max_len 7) peaked at 1.2 GB in one run
MAX_PAIRS = 50_000_000


def check_exact_task(cfg: ExactTaskConfig) -> None:
    """Reject a testbed that cannot be built, or not enumerated in reasonable memory (ValueError)."""
    if cfg.num_prompts < 1:
        raise ValueError("num_prompts must be >= 1")
    if not 2 <= cfg.vocab_size <= 27:
        raise ValueError(f"vocab_size must lie in [2, 27] (letters + EOS), got {cfg.vocab_size}")
    if cfg.max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {cfg.max_len}")
    letters = cfg.vocab_size - 1
    count, at_least = 0, ""  # Σ_{t<L} (V−1)^t + (V−1)^L, summed until it is too many (a huge L never ends)
    for t in range(cfg.max_len + 1):
        count += letters**t
        if count * cfg.num_prompts > MAX_COMPLETIONS:
            at_least = "at least " if t < cfg.max_len else ""
            break
    if count * cfg.num_prompts > MAX_COMPLETIONS:
        raise ValueError(
            f"{at_least}{count} completions per prompt × {cfg.num_prompts} prompts is more than the {MAX_COMPLETIONS} "
            "that are enumerated exactly: lower vocab_size, max_len or num_prompts"
        )
    if count * count * cfg.num_prompts > MAX_PAIRS:
        raise ValueError(
            f"{count} completions per prompt × {cfg.num_prompts} prompts: the exact evaluation compares every "
            f"completion of a prompt with every other, {count * count * cfg.num_prompts} pairs, more than the "
            f"{MAX_PAIRS} it holds in memory: lower vocab_size, max_len or num_prompts"
        )


def build_exact_task(cfg: ExactTaskConfig) -> Task:
    """The testbed described by ``cfg``: prompts ``x0..x{P-1}``, a tabular π_ref, proxy and gold."""
    check_exact_task(cfg)
    tree = PrefixTree(cfg.vocab_size, cfg.max_len)
    g = torch.Generator().manual_seed(cfg.seed)
    prompts = [f"x{i}" for i in range(cfg.num_prompts)]
    ref_logits = cfg.ref_scale * torch.randn(cfg.num_prompts, tree.num_prefixes, cfg.vocab_size, generator=g)
    ref_logits[..., tree.eos] += cfg.eos_logit
    m = len(tree.completions)
    gold = torch.randn(cfg.num_prompts, m, generator=g)
    proxy = gold + cfg.proxy_noise * torch.randn(cfg.num_prompts, m, generator=g)
    oracle = ExactOracle(prompts, tree, proxy, gold)
    texts = oracle.rollout.texts[:m]

    def table(values: Tensor) -> dict[tuple[str, str], float]:
        return {(x, t): float(values[i, j]) for i, x in enumerate(prompts) for j, t in enumerate(texts)}

    return Task(
        name="exact",
        train_prompts=list(prompts),
        eval_prompts=list(prompts),
        proxy=TableReward("exact_proxy", table(proxy)),
        gold=TableReward("exact_gold", table(gold)),
        build_policy=lambda seed: TabularPolicy(prompts, tree, ref_logits),
        oracle=oracle,
        prompt_source="the testbed's; evaluation is exact over every prompt",
    )
