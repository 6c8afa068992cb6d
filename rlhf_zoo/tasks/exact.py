"""The exactly solvable testbed, ``task=exact`` (ALGORITHMS.md §8).

A few prompts; completions over a small alphabet plus EOS, at most ``max_len`` tokens, so that
every completion can be enumerated (with the defaults, 3 letters + EOS and length 4: 121
completions per prompt). π_ref is a random logit table per prefix; the *gold* reward is a fixed
standard-normal value per (prompt, completion) and the *proxy* reward adds independent noise to
it, so that optimising the proxy can over-optimise the gold.

Because everything is enumerable, the :class:`ExactOracle` computes exactly: π(y) for every
completion, π_BoN (§2), the quantiles p_≤ (§3), KL(π ‖ π_ref), KL(π ‖ π_BoN), KL(π_BoN ‖ π), and
the optimal KL-regularised policy π*_β(y) ∝ π_ref(y)·exp(r(y)/β) whose (KL, reward) pairs over β
trace the best achievable reward-vs-KL frontier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rlhf_zoo.functional.best_of_n import bon_probs
from rlhf_zoo.functional.kl import categorical_kl, masked_sum
from rlhf_zoo.functional.quantile import exact_quantiles
from rlhf_zoo.policies.base import Policy, Role, Rollout
from rlhf_zoo.policies.tabular import PrefixTree, TabularPolicy
from rlhf_zoo.tasks.base import Task


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


class ExactOracle:
    """Exact quantities on the testbed by enumerating every completion of every prompt.

    Distributions are tensors [P, M]: P prompts, M completions per prompt, in the order of
    :attr:`rollout` (prompt-major, group size M).
    """

    def __init__(self, prompts: list[str], tree: PrefixTree, proxy: Tensor, gold: Tensor):
        self.prompts = prompts
        self.tree = tree
        ids, mask = tree.completion_tensors()
        m = ids.shape[0]
        p = len(prompts)
        self.num_completions = m
        self.rollout = Rollout(
            prompts=[x for x in prompts for _ in range(m)],
            prompt_ids=torch.arange(p).repeat_interleave(m)[:, None],
            prompt_mask=torch.ones(p * m, 1),
            completion_ids=ids.repeat(p, 1),
            response_mask=mask.repeat(p, 1),
            sample_logp=None,
            texts=[tree.decode(c) for _ in prompts for c in tree.completions],
            group_size=m,
        )
        self.proxy = proxy  # [P, M]
        self.gold = gold  # [P, M]
        self.lengths = mask.sum(-1).expand(p, m)
        self._column = {(x, t): j for x in prompts for j, t in enumerate(self.rollout.texts[:m])}
        self._row = {x: i for i, x in enumerate(prompts)}

    # -- distributions ------------------------------------------------------------------------
    def probs(self, policy: Policy, role: Role = "policy") -> Tensor:
        """π_role(y | x) for every completion: [P, M] in float64 (no gradient), so that tiny
        probabilities do not round to 0 and turn a finite KL into inf."""
        with torch.no_grad():
            lp = policy.logprobs(self.rollout, role=role)
            seq = masked_sum(lp.double(), self.rollout.response_mask)
        return seq.exp().view(len(self.prompts), self.num_completions)

    def bon(self, base_probs: Tensor, n: int) -> Tensor:
        """Best-of-n of a base distribution under the proxy reward: [P, M]."""
        return bon_probs(base_probs, self.proxy.to(base_probs.dtype), n)

    def optimal(self, ref_probs: Tensor, beta: float) -> Tensor:
        """π*_β(y) ∝ π_ref(y)·exp(r(y)/β), the maximiser of E[r] − β·KL(π ‖ π_ref): [P, M]."""
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        logits = torch.log(ref_probs) + self.proxy.to(ref_probs.dtype) / beta
        return torch.softmax(logits, dim=-1)

    def frontier(self, ref_probs: Tensor, betas: Sequence[float]) -> list[tuple[float, float, float]]:
        """(β, KL(π*_β ‖ π_ref), E_{π*_β}[proxy]) averaged over prompts: the best reward at each KL."""
        out = []
        for b in betas:
            opt = self.optimal(ref_probs, b)
            kl = categorical_kl(opt, ref_probs).mean()
            out.append((float(b), float(kl), float((opt * self.proxy).sum(-1).mean())))
        return out

    # -- lookups for sampled rollouts -----------------------------------------------------------
    def columns(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        """(prompt row, completion column) of every row of a rollout: two [N] long tensors."""
        rows = torch.tensor([self._row[x] for x in rollout.prompts])
        cols = torch.tensor([self._column[(x, t)] for x, t in zip(rollout.prompts, rollout.texts, strict=True)])
        return rows, cols

    def quantiles(self, rollout: Rollout, base_probs: Tensor) -> tuple[Tensor, Tensor]:
        """Exact (p_≤, p_<) of each sampled completion's proxy reward against ``base_probs``: 2 × [N]."""
        rows, cols = self.columns(rollout)
        proxy = self.proxy.to(base_probs.dtype)
        p_le, p_lt = exact_quantiles(proxy[rows, cols][:, None], proxy[rows], base_probs[rows])
        return p_le[:, 0], p_lt[:, 0]

    def weighted_rollout(self, probs: Tensor) -> Rollout:
        """The enumeration, weighted so that a weighted sum over rows is E_x E_{y~probs}[·]."""
        w = (probs / len(self.prompts)).reshape(-1)
        return self.rollout.with_weights(w.to(torch.float32 if probs.dtype == torch.float32 else probs.dtype))


def build_exact_task(cfg: ExactTaskConfig) -> Task:
    """The testbed described by ``cfg``: prompts ``x0..x{P-1}``, a tabular π_ref, proxy and gold."""
    if cfg.num_prompts < 1:
        raise ValueError("num_prompts must be >= 1")
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
    )
