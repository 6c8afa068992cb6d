"""The one registry of objectives: an explicit name → class map (no import side effects).

A duplicate name is an error; an unknown name lists the known ones.
"""

from __future__ import annotations

from rlhf_zoo.algorithms.base import Algorithm
from rlhf_zoo.algorithms.best_of_n import BestOfN
from rlhf_zoo.algorithms.bond import Bond
from rlhf_zoo.algorithms.jbond import JBond
from rlhf_zoo.algorithms.ppo_lite import PPOLite
from rlhf_zoo.algorithms.reinforce import Reinforce


def _build(classes: list[type[Algorithm]]) -> dict[str, type[Algorithm]]:
    out: dict[str, type[Algorithm]] = {}
    for cls in classes:
        if cls.name in out:
            raise ValueError(f"duplicate algorithm name {cls.name!r}")
        out[cls.name] = cls
    return out


REGISTRY: dict[str, type[Algorithm]] = _build([BestOfN, Reinforce, PPOLite, Bond, JBond])


class UnknownAlgorithmError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_algorithm(name: str) -> type[Algorithm]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownAlgorithmError(f"unknown algorithm {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def known_algorithms() -> list[str]:
    return sorted(REGISTRY)
