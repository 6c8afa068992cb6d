"""The one place where rewards, KL, win rate, quantiles and lengths are measured (DESIGN.md layer 4).

Every objective is evaluated by the same code on the same held-out prompts:

- ``reward/proxy``, ``reward/gold``: mean rewards of completions of the evaluated policy;
- ``kl/exact``: KL(π ‖ π_ref) in nats per sequence by the exact-token estimator (ALGORITHMS.md §1),
  with ``kl/k1`` and ``kl/k3`` beside it; for Best-of-N sampling, which has no per-token
  distribution, ``kl/exact`` is the quantile estimate E_BoN[(N−1)·log p̂_≤ + log B̂] (exact on the
  testbed; ``kl/estimator`` says which) and ``bon/kl_bound`` is log N − (N−1)/N;
- ``win_rate/gold``: P(gold(y) > gold(y_ref)) + ½·P(=) against reference completions;
- ``quantile/log_mean``: mean log p_≤ of the completions' proxy rewards against the reference;
- ``length/mean``: completion tokens (EOS included).

On a task with an exact oracle (``task=exact``) the completions are not sampled: the evaluation
runs over *every* completion weighted by its probability, so the same estimators return exact
expectations, and the oracle adds the distances to the algorithm's exact targets
(:meth:`rlhf_zoo.tasks.oracle.ExactOracle.distances`): ``kl/to_bon``, ``kl/from_bon``, ``bon/kl_ref``
(BOND and Best-of-N), ``kl/to_optimal`` (KL-regularised RL) and ``frontier/gap`` (the optimal
frontier's reward at the policy's KL minus the policy's reward: ≥ 0).

Sampled evaluations draw, for the held-out prompt at position i, from generators keyed by (seed, i,
the evaluation's step) (:mod:`rlhf_zoo.rng`; the reference completions from one keyed by (seed, i), drawn
once). With several processes each evaluates its share of the held-out prompts, and the averaged
metrics equal one process's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlhf_zoo.algorithms.base import Algorithm
from rlhf_zoo.functional.best_of_n import bon_kl_bound, bon_log_ratio
from rlhf_zoo.functional.kl import expectation, k1, k3
from rlhf_zoo.functional.quantile import exact_quantiles, quantile_estimate, quantile_estimate_strict
from rlhf_zoo.policies.base import Policy, Rollout
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import Costs, best_of_n_outputs, sample, score
from rlhf_zoo.shard import Shard, local_rows, positions
from rlhf_zoo.tasks.base import Task


def _mean(x: Tensor, w: Tensor | None) -> float:
    """E[x] in float64 as a Python float (sample mean, or weighted under the testbed's enumeration)."""
    return float(expectation(x.detach().to(torch.float64), None if w is None else w.to(torch.float64)))


class Evaluator:
    """Evaluates a policy (or Best-of-N of its reference) on held-out prompts.

    Args:
        task: the task (prompts, rewards, optional oracle).
        algo: the algorithm: evaluated as π itself, or as Best-of-n sampling from π_ref when it is that
            (:meth:`~rlhf_zoo.algorithms.base.Algorithm.best_of_n_sampling`); its exact targets.
        num_prompts: held-out prompts used (the first ones of ``task.eval_prompts``).
        samples: completions per prompt from the evaluated policy.
        ref_samples: reference completions per prompt (drawn once, cached) for win rate and quantiles.
        seed: keys the sampling generators (the run's seed).
        shard: with several processes, each evaluates its share ``prompts[rank::world]`` (equal shares).
    """

    def __init__(
        self,
        task: Task,
        algo: Algorithm,
        num_prompts: int,
        samples: int,
        ref_samples: int,
        seed: int = 0,
        shard: Shard | None = None,
    ):
        self.task = task
        self.algo = algo
        self.shard = shard
        self.positions = positions(len(task.eval_prompts[:num_prompts]), shard)
        self.prompts = [task.eval_prompts[i] for i in self.positions]
        self.samples = samples
        self.ref_samples = ref_samples
        self.seed = seed
        self.costs = Costs()
        self._ref: tuple[Tensor, Tensor | None, Tensor] | None = None  # proxy, gold, weights [B, R]
        self.bon_n = algo.best_of_n_sampling()
        self.last: tuple[Rollout, Tensor, Tensor | None] | None = None  # the last call's completions and rewards

    # -- what is evaluated ------------------------------------------------------------------------
    def _reference(self, policy: Policy, ref_probs: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        """Reference rewards [B, R] (proxy, gold) and their weights; exact probabilities on the testbed."""
        oracle = self.task.oracle
        if oracle is not None:
            gold = oracle.gold if self.task.gold is not None else None
            return oracle.proxy, gold, ref_probs
        if self._ref is None:
            gens = Streams(self.seed, 0).per_prompt("eval/ref", self.positions)
            roll = sample(policy, self.prompts, self.ref_samples, "ref", gens, self.costs)
            b = len(self.prompts)
            proxy = score(self.task, roll, self.costs).view(b, -1)
            gold = score(self.task, roll, self.costs, gold=True).view(b, -1) if self.task.gold else None
            self._ref = (proxy, gold, torch.full_like(proxy, 1.0 / self.ref_samples))
        return self._ref

    def _rollout(self, policy: Policy, ref_probs: Tensor | None, round: int) -> tuple[Rollout, Tensor | None]:
        """The evaluated completions and, on the testbed, the exact distribution [P, M] they carry."""
        oracle = self.task.oracle
        if oracle is not None:
            probs = oracle.bon(ref_probs, self.bon_n) if self.bon_n else oracle.probs(policy, "policy")
            return oracle.weighted_rollout(probs), probs
        streams = Streams(self.seed, round)
        if self.bon_n:
            gens = streams.per_prompt("eval/bon", self.positions)
            out = best_of_n_outputs(
                policy, self.task, self.prompts, self.bon_n, self.samples, generator=gens, costs=self.costs
            )
            return out, None
        gens = streams.per_prompt("eval/policy", self.positions)
        return sample(policy, self.prompts, self.samples, "policy", gens, self.costs), None

    # -- checkpoints --------------------------------------------------------------------------------
    def reference_state(self) -> tuple[Tensor, Tensor | None, Tensor] | None:
        """The cached reference rewards of *all* held-out prompts (gathered from every process)."""
        if self._ref is None or self.shard is None:
            return self._ref
        return tuple(None if x is None else self.shard.gather(x) for x in self._ref)

    def load_reference(self, state: tuple[Tensor, Tensor | None, Tensor] | None) -> None:
        self._ref = None if state is None else tuple(None if x is None else local_rows(x, self.shard) for x in state)

    # -- the measurement ----------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, policy: Policy, round: int = 0) -> dict[str, float]:
        """The metrics of ``policy``; ``round`` (the training step) keys the evaluation's samples."""
        exact = self.task.oracle is not None
        ref_probs = self.task.oracle.probs(policy, "ref") if exact else None  # [P, M], float64
        rollout, probs = self._rollout(policy, ref_probs, round)
        w = rollout.weights
        ref_proxy, ref_gold, ref_w = self._reference(policy, ref_probs)
        group = torch.arange(rollout.num_groups).repeat_interleave(rollout.group_size)
        proxy = score(self.task, rollout, self.costs)
        out: dict[str, float] = {"reward/proxy": _mean(proxy, w)}
        rp, rw = ref_proxy[group].to(proxy.dtype), ref_w[group].to(proxy.dtype)
        if exact:
            p_le, p_lt = exact_quantiles(proxy[:, None], rp, rw)
            p_le, p_lt = p_le[:, 0], p_lt[:, 0]
        else:
            p_le, p_lt = quantile_estimate(proxy[:, None], rp)[:, 0], quantile_estimate_strict(proxy[:, None], rp)[:, 0]
        out["quantile/log_mean"] = _mean(torch.log(p_le), w)
        gold = None
        if self.task.gold is not None:
            gold = score(self.task, rollout, self.costs, gold=True)
            g_le, g_lt = exact_quantiles(gold[:, None], ref_gold[group].to(gold.dtype), rw)
            out["reward/gold"] = _mean(gold, w)
            out["win_rate/gold"] = _mean(0.5 * (g_le + g_lt)[:, 0], w)
        if self.bon_n:
            n = self.bon_n
            log_ratio = bon_log_ratio(p_le, p_lt, n)
            out["kl/exact"] = _mean(log_ratio, w)
            out["kl/estimator"] = "exact" if exact else "bon_quantile"
            out["bon/kl_bound"] = bon_kl_bound(n)
            out["cost/samples_per_output"] = float(n)
        else:
            # One pair of forward passes gives the exact-token KL and the per-token log-probs.
            kl, lp, ref_lp = policy.token_kl(rollout, "policy", "ref", with_logprobs=True)
            out["kl/exact"] = _mean(kl, w)
            out["kl/k1"] = _mean(k1(lp, ref_lp, rollout.response_mask), w)
            out["kl/k3"] = _mean(k3(lp, ref_lp, rollout.response_mask), w)
            out["kl/estimator"] = "exact" if exact else "exact_token"
            out["cost/samples_per_output"] = 1.0
        out["length/mean"] = _mean(rollout.response_mask.sum(-1), w)
        self.last = (rollout, proxy, gold)  # what the run saves to samples.jsonl
        if exact:
            out.update(self.task.oracle.distances(ref_probs, probs, self.algo.exact_targets()))
        return out
