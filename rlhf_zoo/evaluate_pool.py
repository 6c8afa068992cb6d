"""Best-of-n for every n ≤ M from one pool of M reference samples per prompt (ALGORITHMS.md §7).

On a language model, Best-of-N is not trained: its reward-vs-n curve is a property of π_ref and the
proxy reward. Instead of drawing fresh Best-of-n outputs for each n (n·samples draws per prompt and
n, and a KL estimate from a few reference samples that is biased upward), this module draws one pool
of M completions per held-out prompt from π_ref, scores it once (proxy, gold, length), and reads the
whole curve n = 1…M from it with the unbiased order-statistic estimator
:func:`~rlhf_zoo.functional.best_of_n.bon_pool_mean` (Nakano et al. 2021, App. I; Gao et al. 2022).

Per n, averaged over prompts (the keys are the evaluator's, so tables, plots and claims read them
like any other Best-of-N evaluation):

- ``reward/proxy``, ``reward/gold``, ``length/mean``: E[g of the Best-of-n] for g = proxy, gold, length;
- ``kl/exact``: :func:`~rlhf_zoo.functional.best_of_n.bon_pool_kl`, the plug-in KL of Best-of-n of the
  pool's empirical distribution (``kl/estimator`` = ``bon_pool``): never above ``bon/kl_bound`` =
  log n − (n−1)/n, the analytic value for a continuous reward and a bound where ties occur (VADER
  gives many texts the same score);
- ``quantile/log_mean``: E[log p̂_≤] with p̂_≤(y_i) = #{j : r_j ≤ r_i}/M within the pool;
- ``win_rate/gold``: P(gold(y) > gold(y')) + ½·P(=) against the *other* members of the pool
  (leave-one-out, so n = 1 gives ½);
- ``cost/samples_per_output``: n.

The held-out prompts are the evaluator's (the first ``num_prompts`` of ``task.eval_prompts``), so the
curve is measured where the trained objectives are. Prompt i's pool is drawn from a generator keyed by
(seed, ``"eval/pool"``, i) (:mod:`rlhf_zoo.rng`), independent of batching.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from rlhf_zoo.functional.best_of_n import bon_kl_bound, bon_pool_kl, bon_pool_mean
from rlhf_zoo.policies.base import Policy
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import Costs, sample, score
from rlhf_zoo.tasks.base import Task

POOL_KEYS = (
    "reward/proxy",
    "reward/gold",
    "kl/exact",
    "bon/kl_bound",
    "quantile/log_mean",
    "win_rate/gold",
    "length/mean",
    "cost/samples_per_output",
)


def draw_pool(
    task: Task, policy: Policy, num_prompts: int, pool_size: int, seed: int, chunk: int = 4, costs: Costs | None = None
) -> dict[str, Tensor]:
    """M = ``pool_size`` reference completions for each of the first ``num_prompts`` held-out prompts,
    scored: ``proxy``, ``gold`` (absent without a gold reward) and ``length``, each [P, M] float64.
    Sampled ``chunk`` prompts at a time (memory); prompt i's pool depends on (seed, i) only."""
    prompts = list(task.eval_prompts[:num_prompts])
    gens = Streams(seed, 0).per_prompt("eval/pool", list(range(len(prompts))))
    proxy, gold, length = [], [], []
    for lo in range(0, len(prompts), chunk):
        part = prompts[lo : lo + chunk]
        roll = sample(policy, part, pool_size, "ref", gens[lo : lo + chunk], costs)
        proxy.append(score(task, roll, costs).view(len(part), pool_size))
        if task.gold is not None:
            gold.append(score(task, roll, costs, gold=True).view(len(part), pool_size))
        length.append(roll.response_mask.sum(-1).view(len(part), pool_size))
    out = {"proxy": torch.cat(proxy), "length": torch.cat(length)}
    if gold:
        out["gold"] = torch.cat(gold)
    return {k: v.to(torch.float64) for k, v in out.items()}


def pool_curve(pool: dict[str, Tensor], ns: list[int] | None = None) -> dict[int, dict[str, float]]:
    """n → the Best-of-n metrics (module docstring) from a scored pool (:func:`draw_pool`), every n ≤ M
    by default."""
    proxy = pool["proxy"]
    m = proxy.shape[-1]
    gold = pool.get("gold")
    log_q = torch.log((proxy.unsqueeze(-2) <= proxy.unsqueeze(-1)).sum(-1).to(torch.float64) / m)
    win = None
    if gold is not None and m >= 2:
        gt = (gold.unsqueeze(-2) < gold.unsqueeze(-1)).sum(-1).to(torch.float64)
        eq = (gold.unsqueeze(-2) == gold.unsqueeze(-1)).sum(-1).to(torch.float64) - 1.0  # not itself
        win = (gt + 0.5 * eq) / (m - 1)
    curve: dict[int, dict[str, float]] = {}
    for n in ns or range(1, m + 1):
        row = {
            "reward/proxy": _avg(bon_pool_mean(proxy, proxy, n)),
            "kl/exact": _avg(bon_pool_kl(proxy, n)),
            "bon/kl_bound": bon_kl_bound(n),
            "quantile/log_mean": _avg(bon_pool_mean(proxy, log_q, n)),
            "length/mean": _avg(bon_pool_mean(proxy, pool["length"], n)),
            "cost/samples_per_output": float(n),
        }
        if gold is not None:
            row["reward/gold"] = _avg(bon_pool_mean(proxy, gold, n))
        if win is not None:
            row["win_rate/gold"] = _avg(bon_pool_mean(proxy, win, n))
        curve[int(n)] = row
    return curve


def _avg(x: Tensor) -> float:
    return float(x.mean())


def pool_summary(curve: dict[int, dict[str, float]], pool_size: int, num_prompts: int) -> dict[str, Any]:
    """What a pool point's record stores: the pool's size and the whole curve (JSON-ready)."""
    return {
        "pool_size": pool_size,
        "prompts": num_prompts,
        "kl/estimator": "bon_pool",
        "curve": {str(n): {k: (v if math.isfinite(v) else None) for k, v in row.items()} for n, row in curve.items()},
    }


__all__ = ["POOL_KEYS", "draw_pool", "pool_curve", "pool_summary"]
