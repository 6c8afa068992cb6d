"""Reward models on text: callables, Hugging Face classifiers/regressors and offline defaults.

Heavy dependencies (transformers, vaderSentiment) load only when a reward is built.
"""

from rlhf_zoo.rewards.base import CallableReward, RewardError, RewardModel, checked_score
from rlhf_zoo.rewards.hf import HFSequenceReward
from rlhf_zoo.rewards.minilm import load_minilm_sentiment
from rlhf_zoo.rewards.minilm_build import build_minilm_sentiment
from rlhf_zoo.rewards.registry import build_reward, known_rewards
from rlhf_zoo.rewards.vader import VaderReward

__all__ = [
    "CallableReward",
    "HFSequenceReward",
    "RewardError",
    "RewardModel",
    "VaderReward",
    "build_minilm_sentiment",
    "build_reward",
    "checked_score",
    "known_rewards",
    "load_minilm_sentiment",
]
