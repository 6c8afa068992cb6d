"""The policy interface shared by the exact testbed and language models (DESIGN.md layer 3).

A :class:`Policy` object owns up to three *roles* of one model:

- ``"policy"``: π, the trainable weights;
- ``"ref"``: π_ref, frozen (a LoRA model's base with adapters disabled, a frozen copy, or the
  reference table of the testbed);
- ``"anchor"``: π_anchor, a moving copy of the trainable weights only, updated by
  :meth:`Policy.update_anchor` (η = 1 is a hard swap, η < 1 an EMA, ALGORITHMS.md §5–§6).

Every algorithm samples and scores through this one interface, so that the exact testbed and a
language model go through the same sampling, per-token log-prob, mask and loss code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

Role = Literal["policy", "ref", "anchor"]
ROLES: tuple[str, ...] = ("policy", "ref", "anchor")
Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class Rollout:
    """A batch of completions, laid out prompt-major: rows ``i*g .. i*g+g-1`` share prompt i.

    Shapes: N rows, P prompt positions (left padded), T completion positions (right padded).

    Attributes:
        prompts: the N prompts (``str`` for language models, ``int`` ids on the testbed).
        prompt_ids: [N, P] prompt token ids, left padded.
        prompt_mask: [N, P] 1 on real prompt tokens.
        completion_ids: [N, T] completion token ids (EOS included when sampled), right padded.
        response_mask: [N, T] 1 on completion tokens, 0 on padding after EOS.
        sample_logp: [N, T] per-token log-probs under the role that sampled (detached), or None.
        texts: the N decoded completions (what a reward model scores).
        group_size: completions per prompt, g.
        weights: optional [N] expectation weights (summing to 1 over the rollout); the testbed
            enumerates all completions with weights π(y) instead of sampling. None = uniform.
    """

    prompts: list[Any]
    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    response_mask: Tensor
    sample_logp: Tensor | None
    texts: list[str]
    group_size: int
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.completion_ids.shape[0]
        if self.group_size < 1 or n % self.group_size:
            raise ValueError(f"{n} rows do not split into groups of {self.group_size}")
        if len(self.prompts) != n or len(self.texts) != n:
            raise ValueError("prompts, texts and completion_ids must have one entry per row")
        if self.response_mask.shape != self.completion_ids.shape:
            raise ValueError("response_mask must match completion_ids")

    def __len__(self) -> int:
        return self.completion_ids.shape[0]

    @property
    def num_groups(self) -> int:
        return len(self) // self.group_size

    def select(self, rows: Tensor | Sequence[int], group_size: int | None = None) -> Rollout:
        """The rollout restricted to ``rows`` (in that order), with a new group size.

        Not for a weighted rollout (an enumeration): its weights define an expectation over all of its rows, and
        no subset of them defines one (a ValueError), where a silent choice, kept or dropped, would be wrong."""
        if self.weights is not None:
            raise ValueError("rows of a weighted rollout (an enumeration) cannot be selected: use it whole")
        idx = torch.as_tensor(rows, dtype=torch.long)
        picked = [int(i) for i in idx]
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                out[f.name] = v[idx.to(v.device)]
            elif isinstance(v, list):
                out[f.name] = [v[i] for i in picked]
            else:
                out[f.name] = v
        out["group_size"] = group_size if group_size is not None else self.group_size
        return Rollout(**out)

    def groups(self, groups: Sequence[int]) -> Rollout:
        """The rows of the given prompt groups (a minibatch by prompt)."""
        g = self.group_size
        rows = [i * g + j for i in groups for j in range(g)]
        return self.select(rows, group_size=g)

    def with_weights(self, weights: Tensor | None) -> Rollout:
        return replace(self, weights=weights)

    def to(self, device: torch.device | str) -> Rollout:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in kw.items():
            if isinstance(v, Tensor):
                kw[k] = v.to(device)
        return Rollout(**kw)


def concat_rollouts(rollouts: Sequence[Rollout], pad_id: int = 0) -> Rollout:
    """Stack rollouts row-wise (same group size), padding prompts on the left, completions on the right."""
    if not rollouts:
        raise ValueError("nothing to concatenate")
    g = rollouts[0].group_size
    if any(r.group_size != g for r in rollouts):
        raise ValueError("rollouts must share a group size")
    p = max(r.prompt_ids.shape[1] for r in rollouts)
    t = max(r.completion_ids.shape[1] for r in rollouts)

    def lpad(x: Tensor, width: int, value: int) -> Tensor:
        return torch.nn.functional.pad(x, (width - x.shape[1], 0), value=value)

    def rpad(x: Tensor, width: int, value: float) -> Tensor:
        return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

    has_logp = all(r.sample_logp is not None for r in rollouts)
    has_w = all(r.weights is not None for r in rollouts)
    return Rollout(
        prompts=[x for r in rollouts for x in r.prompts],
        prompt_ids=torch.cat([lpad(r.prompt_ids, p, pad_id) for r in rollouts]),
        prompt_mask=torch.cat([lpad(r.prompt_mask, p, 0) for r in rollouts]),
        completion_ids=torch.cat([rpad(r.completion_ids, t, pad_id) for r in rollouts]),
        response_mask=torch.cat([rpad(r.response_mask, t, 0) for r in rollouts]),
        sample_logp=torch.cat([rpad(r.sample_logp, t, 0.0) for r in rollouts]) if has_logp else None,
        texts=[x for r in rollouts for x in r.texts],
        group_size=g,
        weights=torch.cat([r.weights for r in rollouts]) if has_w else None,
    )


@runtime_checkable
class Policy(Protocol):
    """What the training loop, the algorithms' data and the evaluation need from a model."""

    device: torch.device

    def sample(self, prompts: Sequence[Any], n: int, *, role: Role = "policy", generator: Generators = None) -> Rollout:
        """n completions for each prompt (prompt-major), without gradient.

        ``generator`` is one ``torch.Generator`` for the whole call (None: torch's global RNG), or a
        sequence of generators, one per prompt: prompt i's n completions are then drawn from generator i
        alone, and are the same whichever other prompts share the call. The state the generators are
        left in is unspecified (a batched ``generate`` may draw for as many steps as the longest row),
        so callers take any further draw from other generators. The training loop and the evaluation
        always pass one generator per prompt (:mod:`rlhf_zoo.rng`).
        """
        ...

    def logprobs(self, rollout: Rollout, *, role: Role = "policy", full: bool = False) -> Tensor:
        """Per-token log-probs of the rollout's completion tokens under ``role``: [N, T].

        With ``full=True``, the full-vocabulary log-softmax at each completion position:
        [N, T, V]. Gradients flow only for ``role="policy"`` (and only in training mode);
        the other roles are computed without gradient. Masked positions hold finite junk.
        """
        ...

    def token_kl(
        self, rollout: Rollout, p_role: Role = "policy", q_role: Role = "ref", *, with_logprobs: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Exact-token KL Σ_t KL(p(·|x,y<t) ‖ q(·|x,y<t)) per row: [N] (ALGORITHMS.md §1). With
        ``with_logprobs``, also both roles' per-token log-probs of the completion tokens ([N, T] each)
        from the same passes."""
        ...

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimiser updates (LoRA adapters, or all weights)."""
        ...

    def update_anchor(self, eta: float) -> None:
        """θ_anchor ← (1 − η)·θ_anchor + η·θ (η = 1: hard swap). Creates the anchor (= π) on first use."""
        ...

    @property
    def anchor_version(self) -> int:
        """Incremented by every :meth:`update_anchor`; caches of anchor samples key on it."""
        ...

    def state_dict(self) -> dict[str, Tensor]:
        """Trainable and anchor weights, for checkpoints (the frozen reference is not saved)."""
        ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


def per_prompt_generators(generator: Generators, num_prompts: int) -> list[torch.Generator] | None:
    """The per-prompt generators of a ``sample`` call, or None when one generator (or None) drives it."""
    if generator is None or isinstance(generator, torch.Generator):
        return None
    gens = list(generator)
    if len(gens) != num_prompts or not all(isinstance(g, torch.Generator) for g in gens):
        raise ValueError(f"expected one torch.Generator per prompt ({num_prompts}), got {len(gens)} items")
    return gens


def check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
