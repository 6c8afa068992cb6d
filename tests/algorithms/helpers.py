"""Batches built through the real rollout code, for the algorithm tests."""

from __future__ import annotations

import dataclasses

import torch

from rlhf_zoo.algorithms.base import Batch
from rlhf_zoo.functional.kl import masked_sum
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, collect, make_batch


def sampled_batch(algo, task, policy, prompts=None, seed=0):
    needs = algo.needs()
    if needs.anchor:
        policy.update_anchor(1.0)
    cache = BaseCache(needs.cache_size) if needs.cache_size else None
    data = collect(needs, policy, task, prompts or task.train_prompts, streams=Streams(seed, 0), cache=cache)
    return make_batch(needs, policy, data)


def enumerated_batch(task, policy, *, quantile_role="ref", **overrides) -> tuple[Batch, torch.Tensor]:
    """Every completion of every prompt as one row, weighted by π(y)/P: a weighted sum over the batch
    is an exact expectation. Returns the batch and π's sequence probabilities [P, M] (with grad)."""
    oracle = task.oracle
    roll = oracle.rollout
    logp = policy.logprobs(roll, role="policy")
    seq = masked_sum(logp, roll.response_mask)
    probs = seq.exp().view(len(oracle.prompts), -1)
    base = oracle.probs(policy, quantile_role)
    rows = torch.arange(len(oracle.prompts)).repeat_interleave(oracle.num_completions)
    from rlhf_zoo.functional.quantile import exact_quantiles

    proxy = oracle.proxy.to(base.dtype)
    p_le, p_lt = exact_quantiles(proxy.reshape(-1)[:, None], proxy[rows], base[rows])
    fields = dict(
        group_size=oracle.num_completions,
        response_mask=roll.response_mask,
        logp=logp,
        old_logp=logp.detach(),
        rewards=oracle.proxy.reshape(-1),
        ref_logp=policy.logprobs(roll, role="ref"),
        anchor_logp=policy.logprobs(roll, role="anchor"),
        quantiles=p_le[:, 0],
        quantiles_lt=p_lt[:, 0],
        weights=(probs.detach() / len(oracle.prompts)).reshape(-1),
    )
    fields.update(overrides)
    return Batch(**fields), probs


def clone_batch(batch: Batch) -> dict:
    return {
        f.name: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
        for f in dataclasses.fields(batch)
        for v in [getattr(batch, f.name)]
    }
