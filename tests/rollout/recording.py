"""A policy wrapper that records what was sampled, so a test can recompute a metric from the very
completions the code under test saw, with log-probs it obtains itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlhf_zoo.policies.base import Rollout


@dataclass
class Call:
    prompts: list[Any]
    n: int
    role: str
    rollout: Rollout


class RecordingPolicy:
    """Delegates everything to ``policy``; ``calls`` lists every ``sample`` call in order."""

    def __init__(self, policy):
        self.policy = policy
        self.calls: list[Call] = []

    def sample(self, prompts, n, *, role="policy", generator=None) -> Rollout:
        rollout = self.policy.sample(prompts, n, role=role, generator=generator)
        self.calls.append(Call(list(prompts), n, role, rollout))
        return rollout

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def of(self, role: str, n: int | None = None) -> list[Call]:
        """The recorded calls of one role (and, if given, n completions per prompt)."""
        return [c for c in self.calls if c.role == role and (n is None or c.n == n)]


def ahead(generator: torch.Generator, count: int) -> torch.Tensor:
    """The next ``count`` float64 uniforms of ``generator``, read from a copy (the generator does not move)."""
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return torch.rand(count, generator=copy, dtype=torch.float64)


class UniformsPolicy(RecordingPolicy):
    """A :class:`RecordingPolicy` that also records, for each ``sample`` call given one generator per prompt, the
    uniforms those generators hold next (read from copies, so sampling is unchanged): ``uniforms[i]`` for
    ``calls[i]``. Two draws whose records share values drew from one random stream."""

    def __init__(self, policy, window: int = 8):
        super().__init__(policy)
        self.window = window  # uniforms per completion: at least the testbed's max_len
        self.uniforms: list[torch.Tensor] = []

    def sample(self, prompts, n, *, role="policy", generator=None) -> Rollout:
        self.uniforms.append(torch.cat([ahead(g, n * self.window) for g in generator]))
        return super().sample(prompts, n, role=role, generator=generator)


class LMOrderPolicy(RecordingPolicy):
    """A :class:`RecordingPolicy` whose per-prompt generators, after sampling, have moved on by one uniform per
    prompt of the batch, as a language model's do: it draws for every row at each token until the whole batch
    has stopped, so a generator's state after sampling depends on the other prompts (the samples do not)."""

    def sample(self, prompts, n, *, role="policy", generator=None) -> Rollout:
        rollout = super().sample(prompts, n, role=role, generator=generator)
        if isinstance(generator, list):
            for g in generator:
                torch.rand(len(prompts), generator=g)
        return rollout


class Flat:
    """A proxy reward under which every completion ties: every best-of choice is a tie-break."""

    name = "flat"

    def score(self, prompts, completions):
        return torch.zeros(len(completions))
