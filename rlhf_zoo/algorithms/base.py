"""What an algorithm is: declared needs, a pure loss on a :class:`Batch`, and hooks (DESIGN.md layer 2).

The one training loop (:mod:`rlhf_zoo.train`) reads an algorithm's :class:`Needs`, collects
exactly that (samples from π, log-probs under π_ref or π_anchor, quantiles, forward-term
targets), and calls :meth:`Algorithm.loss` with a :class:`Batch`. ``loss`` must be pure in the
batch: it reads fields by name, never mutates them, and returns ``(loss, metrics)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor

from rlhf_zoo.functional.kl import masked_sum
from rlhf_zoo.shard import Shard


@dataclass(frozen=True)
class Needs:
    """The data an algorithm's loss reads; the training loop provides exactly this.

    Attributes:
        samples: completions per prompt drawn from π (the rows of the batch).
        ref_logp / anchor_logp: per-token log-probs of those completions under π_ref / π_anchor.
        full_logprobs: full-vocabulary log-probs of π and π_ref at every completion position
            (for an exact-token KL in the loss).
        base: the distribution that quantiles and forward-term targets refer to.
        quantiles: p_≤ of π's samples against ``base``: ``exact`` (testbed oracle), ``mc``
            (the estimator of ALGORITHMS.md §3 against ``cache_size`` cached base samples), or
            ``none``.
        cache_size: k, base samples per prompt drawn once and cached (per anchor version).
        base_samples: fresh base samples per prompt per step; their proxy rewards go in
            ``Batch.base_rewards`` [B, base_samples].
        target: the forward (SFT) target per prompt: ``fresh`` = the best of the fresh base
            samples, ``cache`` = the best of ``target_n`` draws from the cache, ``none``.
        target_n: N, draws from the cache for a ``cache`` target.
        epochs / minibatches: optimisation passes over each rollout batch, and how many
            minibatches (split by prompt) each pass takes.
    """

    samples: int = 1
    ref_logp: bool = False
    anchor_logp: bool = False
    full_logprobs: bool = False
    base: Literal["ref", "anchor"] = "ref"
    quantiles: Literal["none", "exact", "mc"] = "none"
    cache_size: int = 0
    base_samples: int = 0
    target: Literal["none", "fresh", "cache"] = "none"
    target_n: int = 0
    epochs: int = 1
    minibatches: int = 1

    @property
    def anchor(self) -> bool:
        """The policy keeps an anchor copy π_anchor (= π before the first step): whenever anything is
        read under the anchor role (its log-probs, or it is the base of quantiles and targets)."""
        return self.anchor_logp or self.base == "anchor"


@dataclass(frozen=True)
class Batch:
    """One minibatch as an algorithm's loss sees it. Rows are prompt-major (B prompts × g samples).

    Shapes: N = B·g rows, T completion positions, V vocabulary entries.

    Attributes:
        group_size: g, samples per prompt.
        response_mask: [N, T].
        logp: [N, T] per-token log π, *with* gradient.
        old_logp: [N, T] per-token log π at sampling time (no gradient).
        rewards: [N] proxy rewards.
        ref_logp / anchor_logp: [N, T] (no gradient) or None.
        full_logprobs: [N, T, V] log π with gradient, or None; ref_full_logprobs likewise, no grad.
        quantiles: [N] p_≤ (exact or estimated) of each sample against the base distribution.
        quantiles_lt: [N] p_< likewise (Theorem 1's B(y) needs both).
        base_rewards: [B, m] proxy rewards of m fresh base samples per prompt.
        target_logp / target_mask: [B, T'] per-token log π (with gradient) of the forward-term
            target of each prompt, and its mask.
        weights: [N] expectation weights (enumeration on the testbed), None = sample mean.
        shard: when several processes each hold an equal share of the global batch, how it is split;
            losses that need a batch-level statistic (a batch-mean baseline) compute it on the gathered
            global batch (:func:`rlhf_zoo.algorithms.common.grouped_advantages`). None = one process.
    """

    group_size: int
    response_mask: Tensor
    logp: Tensor
    old_logp: Tensor
    rewards: Tensor
    ref_logp: Tensor | None = None
    anchor_logp: Tensor | None = None
    full_logprobs: Tensor | None = None
    ref_full_logprobs: Tensor | None = None
    quantiles: Tensor | None = None
    quantiles_lt: Tensor | None = None
    base_rewards: Tensor | None = None
    target_logp: Tensor | None = None
    target_mask: Tensor | None = None
    weights: Tensor | None = None
    shard: Shard | None = None

    @property
    def num_groups(self) -> int:
        return self.rewards.shape[0] // self.group_size

    def seq(self, name: str) -> Tensor:
        """Sequence-level sum of a per-token field (``logp``, ``old_logp``, ``ref_logp``, ...): [N]."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this batch has no {name!r}; declare it in the algorithm's Needs")
        return masked_sum(value, self.response_mask)

    def require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"batch lacks {', '.join(missing)}: declare them in Needs")


class Algorithm:
    """Base class of the five objectives. Subclasses set ``name`` and ``Config``."""

    name: ClassVar[str]
    Config: ClassVar[type]
    trainable: ClassVar[bool] = True

    def __init__(self, cfg: Any | None = None):
        self.cfg = cfg if cfg is not None else self.Config()
        self.validate()

    def validate(self) -> None:
        """Reject inconsistent settings (raises ValueError). Called on construction."""

    def needs(self) -> Needs:
        raise NotImplementedError

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def after_step(self, policy: Any, step: int) -> None:
        """Called after every optimiser step (``step`` counts from 1)."""

    def best_of_n_sampling(self) -> int | None:
        """n when this algorithm *is* Best-of-n sampling from π_ref (evaluated as that sampler, not as
        π); None for the trained objectives, which are evaluated as π itself."""
        return None

    def exact_targets(self) -> dict[str, float]:
        """What the exact testbed measures this algorithm against: ``bon_n`` and/or ``optimal_beta``."""
        return {}

    def unused_settings(self) -> list[str]:
        """Settings given a value other than their default that have no effect beside the others (each a
        line for a warning: the key, its value and why; :func:`rlhf_zoo.algorithms.common.set_but_unused`)."""
        return []
