"""Best-of-N sampling, the inference-time baseline (ALGORITHMS.md §7; Stiennon et al. 2020,
Nakano et al. 2021; its distribution: Sessa et al. 2024, Theorem 1).

Not trained: for each evaluation prompt, draw N completions from π_ref and keep the one with the
highest proxy reward (ties broken uniformly at random). The evaluation reports its gold and proxy
reward, its cost (N samples and N reward calls per output), and two KLs: the bound
log N − (N−1)/N and the estimate E_{y~BoN}[(N−1)·log p̂_≤(y) + log B̂(y)] from the quantiles
against cached reference samples. On the exact testbed the distribution itself is exact:
π_BoN = ``bon_probs(π_ref, r, N)``.

Its ``loss`` is a constant zero without gradient, so that it still satisfies the algorithm
contract; the training loop skips training for it (``trainable = False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlhf_zoo.algorithms.base import Algorithm, Batch, Needs


@dataclass(frozen=True)
class BestOfNConfig:
    """Attributes:
    name: registry name.
    n: N, samples drawn from π_ref per output (sweep 1, 2, 4, 8, 16, 32 for the curve).
    """

    name: str = "best_of_n"
    n: int = 4


class BestOfN(Algorithm):
    name = "best_of_n"
    Config = BestOfNConfig
    trainable = False

    def validate(self) -> None:
        if self.cfg.n < 1:
            raise ValueError("n must be >= 1")

    def needs(self) -> Needs:
        return Needs(samples=1)

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        zero = torch.zeros((), dtype=batch.rewards.dtype)
        return zero, {"bon/n": torch.tensor(float(self.cfg.n))}

    def best_of_n_sampling(self) -> int:
        return self.cfg.n

    def exact_targets(self) -> dict[str, float]:
        return {"bon_n": self.cfg.n}
