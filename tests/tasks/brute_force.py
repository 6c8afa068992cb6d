"""The testbed's quantities computed by brute force, independently of the oracle and of the policy's
``logprobs``: walking the logit table token by token, and the inverse (a table for a given distribution).

Distributions are float64 tensors [P, M] over ``tree.completions`` in the oracle's order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlhf_zoo.policies.tabular import TabularPolicy


def role_table(policy: TabularPolicy, role: str) -> Tensor:
    return {"policy": policy.logits, "ref": policy.ref_logits, "anchor": policy.anchor_logits}[role].detach()


def completion_probs(policy: TabularPolicy, role: str = "policy") -> Tensor:
    """π_role(y | x) of every completion, as the product of its tokens' softmax probabilities: [P, M]."""
    tree = policy.tree
    probs = torch.softmax(role_table(policy, role).double(), dim=-1)  # [P, prefixes, V]
    out = torch.ones(probs.shape[0], len(tree.completions), dtype=torch.float64)
    for j, completion in enumerate(tree.completions):
        prefix: tuple[int, ...] = ()
        for tok in completion:
            out[:, j] *= probs[:, tree.index[prefix], tok]
            if tok != tree.eos:
                prefix = (*prefix, tok)
    return out


def reward_table(reward, prompts, policy: TabularPolicy) -> Tensor:
    """The reward of every completion of every prompt, through the reward model: [P, M]."""
    texts = [policy.tree.decode(c) for c in policy.tree.completions]
    return torch.stack([reward.score([x] * len(texts), texts) for x in prompts]).double()


def quantiles(ref: Tensor, rewards: Tensor) -> Tensor:
    """p_≤(y) = Σ_y' π_ref(y')·1[r(y') ≤ r(y)] for every completion: [P, M]."""
    return torch.stack([(ref[i] * (rewards[i][None, :] <= rewards[i][:, None])).sum(-1) for i in range(len(ref))])


def lengths(policy: TabularPolicy) -> Tensor:
    """Tokens of every completion, EOS included: [M]."""
    return torch.tensor([len(c) for c in policy.tree.completions], dtype=torch.float64)


def set_distribution(policy: TabularPolicy, probs: Tensor, role: str = "policy") -> None:
    """Overwrite a role's table so that it samples the completion distribution ``probs`` [P, M] exactly:
    the logit of token v at prefix h is log P(completions through h+v) (EOS: the completion h+EOS)."""
    tree = policy.tree
    table = torch.full(role_table(policy, role).shape, -1e4, dtype=torch.float64)
    mass: dict[tuple[int, ...], Tensor] = {}
    for j, completion in enumerate(tree.completions):
        for t in range(1, len(completion) + 1):
            key = completion[:t]
            mass[key] = mass.get(key, 0.0) + probs[:, j].double()
    for key, m in mass.items():
        prefix = tuple(k for k in key[:-1])
        table[:, tree.index[prefix], key[-1]] = torch.log(m.clamp_min(1e-300))
    with torch.no_grad():
        role_table(policy, role).copy_(table.to(role_table(policy, role).dtype))


def kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p ‖ q) per row, written out (terms with p = 0 are 0): [P]."""
    return torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p)).sum(-1)


def best_of_n(ref: Tensor, rewards: Tensor, n: int) -> Tensor:
    """π_BoN by the closed form p_≤(y)^n − p_<(y)^n (distinct rewards within a prompt): [P, M]."""
    assert all(len(set(row.tolist())) == row.numel() for row in rewards), "closed form needs distinct rewards"
    p_le = quantiles(ref, rewards)
    p_lt = p_le - ref
    return p_le**n - p_lt**n


def perturbed(task, seed: int, scale: float = 0.5) -> TabularPolicy:
    """The task's policy with π moved away from π_ref by Gaussian noise on its table."""
    policy = task.build_policy(0)
    with torch.no_grad():
        noise = torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(seed))
        policy.logits.add_(scale * noise)
    return policy
