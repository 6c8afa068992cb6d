"""rlhf_zoo: BOND, J-BOND, REINFORCE, PPO-lite and Best-of-N on one rollout, one reward
interface, one KL measurement and one evaluation."""

__version__ = "0.1.0"
