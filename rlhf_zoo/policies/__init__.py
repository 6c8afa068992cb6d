"""Policies: the exact tabular testbed policy and Hugging Face causal LMs, behind one interface."""

from rlhf_zoo.policies.base import ROLES, Policy, Role, Rollout, concat_rollouts

__all__ = ["ROLES", "Policy", "Role", "Rollout", "concat_rollouts"]
