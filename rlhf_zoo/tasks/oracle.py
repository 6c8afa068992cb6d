"""The exact oracle of the solvable testbed (ALGORITHMS.md §8): every quantity by enumeration.

On ``task=exact`` every completion of every prompt can be listed, so instead of estimating from
samples the oracle computes, exactly:

- π_role(y) for every completion (:meth:`ExactOracle.probs`), and the enumeration as a rollout
  weighted by a distribution (:meth:`ExactOracle.weighted_rollout`), through which the evaluator's
  sample estimators become exact expectations;
- π_BoN = Best-of-n of a base distribution (§2, :meth:`ExactOracle.bon`), the quantiles p_≤ and
  p_< of sampled completions (§3, :meth:`ExactOracle.quantiles`);
- the optimal KL-regularised policy π*_β(y) ∝ π_ref(y)·exp(r(y)/β) (:meth:`ExactOracle.optimal`),
  whose (KL, reward) pairs over β are the best achievable reward-vs-KL frontier
  (:meth:`ExactOracle.reward_at_kl`, :meth:`ExactOracle.curves`);
- a policy's distances to its targets: KL(π ‖ π_BoN), KL(π_BoN ‖ π), KL(π ‖ π*_β) and its gap to
  the frontier (:meth:`ExactOracle.distances`).

Distributions are tensors [P, M]: P prompts, M completions per prompt, in the order of
:attr:`ExactOracle.rollout` (prompt-major, group size M).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rlhf_zoo.functional.best_of_n import bon_kl_bound, bon_probs
from rlhf_zoo.functional.kl import categorical_kl, masked_sum
from rlhf_zoo.functional.quantile import exact_quantiles
from rlhf_zoo.policies.base import Policy, Role, Rollout

if TYPE_CHECKING:
    from rlhf_zoo.policies.tabular import PrefixTree

BON_CURVE_N = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


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
        self.lengths = mask.sum(-1).expand(p, m)  # [P, M] (unused; kept: the bench's code version hashes this file)
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

    # -- what the evaluation and the bench read ---------------------------------------------------
    def reward_at_kl(self, ref_probs: Tensor, kl: float, iters: int = 60) -> float:
        """The optimal frontier's proxy reward at average KL ``kl``: E_{π*_β}[r] with β solving
        KL(π*_β ‖ π_ref) = kl (bisection on log β over [1e-4, 1e4]; the KL decreases as β grows)."""
        ref = ref_probs.to(torch.float64)
        proxy = self.proxy.to(torch.float64)
        if kl <= 0:
            return float((ref * proxy).sum(-1).mean())
        lo, hi = math.log(1e-4), math.log(1e4)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            if float(categorical_kl(self.optimal(ref, math.exp(mid)), ref).mean()) > kl:
                lo = mid
            else:
                hi = mid
        opt = self.optimal(ref, math.exp(0.5 * (lo + hi)))
        return float((opt * proxy).sum(-1).mean())

    def distances(self, ref_probs: Tensor, probs: Tensor, targets: dict[str, float]) -> dict[str, float]:
        """Exact distances of a policy's distribution ``probs`` [P, M] to its targets, averaged over prompts.

        ``targets`` (:meth:`rlhf_zoo.algorithms.base.Algorithm.exact_targets`): ``bon_n`` gives
        ``kl/to_bon`` = KL(π ‖ π_BoN), ``kl/from_bon`` = KL(π_BoN ‖ π), ``bon/kl_ref`` and
        ``bon/reward_proxy``; ``optimal_beta`` gives ``kl/to_optimal`` = KL(π ‖ π*_β),
        ``optimal/kl_ref`` and ``optimal/reward_proxy``. Always: ``frontier/reward_at_kl`` (the best
        reward at the policy's KL(π ‖ π_ref)) and ``frontier/gap`` = that minus the policy's reward (≥ 0).

        In float64: π_BoN for large n and π*_β for small β put mass ~1e-40 on some completions, which
        float32 rounds to 0 and turns finite KLs into inf.
        """
        ref, probs = ref_probs.double(), probs.double()
        proxy = self.proxy.double()
        out: dict[str, float] = {}
        if "bon_n" in targets:
            bon = self.bon(ref, int(targets["bon_n"]))
            out["kl/to_bon"] = float(categorical_kl(probs, bon).mean())
            out["kl/from_bon"] = float(categorical_kl(bon, probs).mean())
            out["bon/kl_ref"] = float(categorical_kl(bon, ref).mean())
            out["bon/reward_proxy"] = float((bon * proxy).sum(-1).mean())
        if "optimal_beta" in targets:
            opt = self.optimal(ref, float(targets["optimal_beta"]))
            out["kl/to_optimal"] = float(categorical_kl(probs, opt).mean())
            out["optimal/kl_ref"] = float(categorical_kl(opt, ref).mean())
            out["optimal/reward_proxy"] = float((opt * proxy).sum(-1).mean())
        kl = float(categorical_kl(probs, ref).mean())
        out["frontier/reward_at_kl"] = self.reward_at_kl(ref, kl)
        out["frontier/gap"] = out["frontier/reward_at_kl"] - float((probs * proxy).sum(-1).mean())
        return out

    def curves(self, ref_probs: Tensor) -> dict[str, Any]:
        """The reference curves of a benchmark page, exactly: the optimal frontier (π*_β over 121 values
        of β from 31.6 down to 0.01) and Best-of-n of π_ref for n from 1 to 64.

        Returns ``{"frontier": [{beta, kl, reward_proxy, reward_gold}], "best_of_n": [{n, kl, kl_bound,
        reward_proxy, reward_gold, log_quantile}], "kl_estimator": "exact"}``.
        """
        ref = ref_probs.to(torch.float64)
        proxy, gold = self.proxy.to(torch.float64), self.gold.to(torch.float64)
        frontier = []
        for i in range(121):
            beta = 10 ** (1.5 - 3.5 * i / 120)  # 31.6 … 0.01
            opt = self.optimal(ref, beta)
            frontier.append(
                {
                    "beta": beta,
                    "kl": float(categorical_kl(opt, ref).mean()),
                    "reward_proxy": float((opt * proxy).sum(-1).mean()),
                    "reward_gold": float((opt * gold).sum(-1).mean()),
                }
            )
        p_le, _ = exact_quantiles(proxy, proxy, ref)  # [P, M]: p_≤ of every completion against π_ref
        bon = []
        for n in BON_CURVE_N:
            b = self.bon(ref, n)
            bon.append(
                {
                    "n": n,
                    "kl": float(categorical_kl(b, ref).mean()),
                    "kl_bound": bon_kl_bound(n),
                    "reward_proxy": float((b * proxy).sum(-1).mean()),
                    "reward_gold": float((b * gold).sum(-1).mean()),
                    "log_quantile": float((b * torch.log(p_le)).sum(-1).mean()),
                }
            )
        return {"frontier": frontier, "best_of_n": bon, "kl_estimator": "exact"}
