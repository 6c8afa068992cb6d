"""Pieces that several objectives share, so that each objective's file reads as its math."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from rlhf_zoo.algorithms.base import Batch
from rlhf_zoo.functional.advantages import BASELINES, advantages
from rlhf_zoo.functional.kl import exact_token_kl, expectation, k3, masked_sum
from rlhf_zoo.options import set_away_from_default
from rlhf_zoo.shard import Shard, local_rows

KL_IN = ("reward", "loss")
KL_LOSS_ESTIMATORS = ("k3", "exact")


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r} is not one of {', '.join(choices)}")


def check_baseline(baseline: str, samples: int) -> None:
    check_choice("baseline", baseline, BASELINES)
    if baseline == "group_norm" and samples < 2:
        raise ValueError("baseline=group_norm needs samples >= 2")


def grouped_advantages(returns: Tensor, group_size: int, baseline: str, shard: Shard | None = None) -> Tensor:
    """Advantages of [N] returns grouped by prompt (prompt-major rows): [N].

    The ``mean`` baseline, and ``loo`` with one sample per prompt, average over the whole batch: with a
    ``shard`` (several processes) they are computed on the gathered global batch, in its global order,
    so that each process gets the advantages one process would compute for its rows.
    """
    grouped = returns.view(-1, group_size)
    batch_level = baseline == "mean" or (baseline == "loo" and group_size == 1)
    if shard is None or shard.world == 1 or not batch_level:
        return advantages(grouped, baseline).reshape(-1)
    everything = advantages(shard.gather(grouped.detach()), baseline)
    return local_rows(everything, shard).reshape(-1)


def kl_penalised_returns(batch: Batch, beta: float, kl_in: Literal["reward", "loss"]) -> Tensor:
    """R = r − β·(log π(y) − log π_ref(y)) with the sampling-time log π (KL in the reward, no
    gradient), or R = r when the KL goes in the loss. [N]."""
    if kl_in == "reward":
        return batch.rewards - beta * (batch.seq("old_logp") - batch.seq("ref_logp"))
    return batch.rewards


def kl_loss(batch: Batch, estimator: Literal["k3", "exact"]) -> Tensor:
    """E[KL estimate] with gradient through log π only (the "KL in the loss" option, ALGORITHMS.md §1).

    Neither option is the gradient of KL(π ‖ π_ref); only the KL-in-reward default is (REINFORCE with
    R = r − β·(log π − log π_ref) is the exact gradient of E[r] − β·KL(π ‖ π_ref)):

    - ``k3`` sums ρ_t − 1 − log ρ_t over tokens, ρ_t = π_ref(y_t|·)/π(y_t|·). Its pathwise gradient is
      Σ_t (1 − ρ_t)·∇log π(y_t|·), whose expectation under y ~ π is ∇KL(π_ref ‖ π): the *reverse*
      direction (Tang & Munos 2025, arXiv 2506.09477). It pulls π towards covering π_ref's mass.
    - ``exact`` sums the full-vocabulary KL(π(·|x,y<t) ‖ π_ref(·|x,y<t)) at each visited prefix and
      differentiates it in place: the right direction per position, but the term that flows through
      which prefixes are visited (the score function of the prefix) is dropped, as in GRPO.
    """
    if estimator == "k3":
        per_seq = k3(batch.logp, batch.ref_logp, batch.response_mask)
    else:
        batch.require("full_logprobs", "ref_full_logprobs")
        per_seq = exact_token_kl(batch.full_logprobs, batch.ref_full_logprobs, batch.response_mask)
    return expectation(per_seq, batch.weights)


def sft_loss(batch: Batch) -> Tensor:
    """−mean log π(target) over prompts: a likelihood step on the forward-term targets [B, T']."""
    batch.require("target_logp", "target_mask")
    return -masked_sum(batch.target_logp, batch.target_mask).mean()


def set_but_unused(c: Any, name: str, why: str) -> list[str]:
    """``[f"algo.{name}=VALUE has no effect {why}"]`` when config ``c`` sets ``name`` away from its default,
    else ``[]`` (a default that goes unused says nothing)."""
    return [f"algo.{name}={getattr(c, name)} has no effect {why}"] if set_away_from_default(c, name) else []


def kl_estimator_unused(c: Any) -> list[str]:
    """REINFORCE's and PPO-lite's ``kl_estimator`` only picks the estimate that ``kl_in=loss`` adds to the loss."""
    if c.kl_in != "reward":
        return []
    why = "with algo.kl_in=reward: the penalty in the reward is log π_old(y) − log π_ref(y) of each sample"
    return set_but_unused(c, "kl_estimator", why)


def check_kl_regularised(c) -> None:
    """Checks shared by the KL-regularised RL objectives (REINFORCE, PPO-lite): a config with
    ``samples``, ``beta``, ``baseline``, ``kl_in`` and ``kl_estimator``."""
    if c.samples < 1:
        raise ValueError("samples must be >= 1")
    if c.beta < 0:
        raise ValueError("beta must be >= 0")
    check_baseline(c.baseline, c.samples)
    check_choice("kl_in", c.kl_in, KL_IN)
    check_choice("kl_estimator", c.kl_estimator, KL_LOSS_ESTIMATORS)


def add_kl_loss(total: Tensor, batch: Batch, c, metrics: dict[str, Tensor]) -> Tensor:
    """total + β·E[KL estimate] when the config puts the KL in the loss (``kl_in=loss``); else total."""
    if c.kl_in != "loss":
        return total
    kl = kl_loss(batch, c.kl_estimator)
    metrics["loss/kl"] = kl.detach()
    return total + c.beta * kl


def add_forward_term(total: Tensor, beta: float, batch: Batch, metrics: dict[str, Tensor]) -> Tensor:
    """total + (1 − β)·[−log π(target)], the forward (mode-covering) term of BOND's and J-BOND's
    Jeffreys objective; nothing to add at β = 1 (vBoN), so no target is needed then."""
    if beta >= 1.0:
        return total
    forward = sft_loss(batch)
    metrics["loss/sft"] = forward.detach()
    return total + (1.0 - beta) * forward


def mean_metric(x: Tensor, weights: Tensor | None = None) -> Tensor:
    return expectation(x.detach().to(torch.float32), None if weights is None else weights.to(torch.float32))
