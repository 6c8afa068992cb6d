"""Reward models on text: callables, Hugging Face classifiers/regressors and offline defaults."""

from rlhf_zoo.rewards.base import CallableReward, RewardError, RewardModel, checked_score

__all__ = ["CallableReward", "RewardError", "RewardModel", "checked_score"]
