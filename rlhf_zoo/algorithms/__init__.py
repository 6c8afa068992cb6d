"""The five objectives behind one registry: best_of_n, reinforce, ppo_lite, bond, jbond."""

from rlhf_zoo.algorithms.base import Algorithm, Batch, Needs
from rlhf_zoo.algorithms.registry import REGISTRY, get_algorithm, known_algorithms

__all__ = ["REGISTRY", "Algorithm", "Batch", "Needs", "get_algorithm", "known_algorithms"]
