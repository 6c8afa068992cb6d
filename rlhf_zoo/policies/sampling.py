"""How every policy draws a token: the inverse CDF at one uniform number per row (DESIGN.md layer 3).

Both the testbed's tabular policy and a language model sample a token as

    y = min{ v : Σ_{w ≤ v} p_w > u · Σ_w p_w },   u ~ U[0, 1),

the first token whose cumulative probability exceeds u times the total mass (:func:`inverse_cdf`).
Why not ``torch.multinomial``:

- **Randomness per prompt.** ``sample(..., generator=[g_0, g_1, ...])`` takes one generator per
  prompt, and prompt i's uniforms come from g_i alone (:func:`per_prompt_uniforms`,
  :func:`uniform_source`), so a prompt's completions do not depend on which other prompts share the
  batch, or the process: the 2-process run equals the 1-process run (see ``rlhf_zoo/rng.py``).
- **Cost.** One uniform and a cumulative sum per row cost far less than ``torch.multinomial``'s
  exponential draw over the whole vocabulary (about 11 ms per step at 16 × 49,152 on 2 CPU cores,
  10 % of SmolLM2's generation).

The two policies consume a prompt's stream in different orders: the tabular policy draws its whole
n × L block at once (L, the length cap, is small), a language model draws n uniforms per generated
token, as it goes. Both orders are fixed, so each policy's samples are reproducible from the
generators; they are simply not each other's (no run mixes the two).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlhf_zoo.policies.base import Generators, per_prompt_generators


def inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """The first token of each row whose cumulative probability exceeds u · total: [N, V], [N] → [N] ids.

    Args:
        probs: [N, V] non-negative weights; they need not sum to 1 (a nucleus-truncated row, or one whose
            rounding leaves the total below 1: scaling u by the row's total keeps the draw in range).
        u: [N] uniforms in [0, 1).

    The CDF is accumulated in float64. ``right=True`` never picks a token of probability 0 (its CDF step
    is empty); the clamp only guards against u · total rounding up to the total.
    """
    cdf = probs.double().cumsum(-1)
    tok = torch.searchsorted(cdf, (u.to(cdf.device) * cdf[:, -1])[:, None], right=True).squeeze(-1)
    return tok.clamp_max(probs.shape[-1] - 1)


def nucleus(probs: Tensor, top_p: float) -> Tensor:
    """Zero all but the smallest set of most probable tokens whose mass reaches ``top_p``: [..., V] → [..., V].

    Nucleus (top-p) sampling, Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration". A token
    is kept when the mass of the tokens ranked strictly before it is below ``top_p``, so the most probable
    token is always kept. Not renormalised: :func:`inverse_cdf` scales by the remaining total.
    """
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # mass strictly before each token
    sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_p)


def uniform_source(generator: Generators, num_prompts: int, n: int) -> Callable[[int], Tensor]:
    """``rows -> [rows]`` float64 uniforms on CPU for one step of ``num_prompts × n`` prompt-major rows.

    From one generator (or torch's global RNG when ``generator`` is None) for all rows; or, with one
    generator per prompt, n draws from generator i for rows i·n … i·n+n−1 at every step (the language
    model's order: a step's uniforms are drawn when the step runs). Raises ``ValueError`` unless there is
    one generator per prompt.
    """
    gens = per_prompt_generators(generator, num_prompts)
    if gens is None:
        single = generator  # a torch.Generator or None here
        return lambda rows: torch.rand(rows, generator=single, dtype=torch.float64)
    return lambda rows: torch.cat([torch.rand(n, generator=g, dtype=torch.float64) for g in gens])


def per_prompt_uniforms(generators: list[torch.Generator], n: int, steps: int) -> Tensor:
    """[len(generators) · n, steps] float64 uniforms: prompt i's n × steps block drawn at once, row-major,
    from generator i (the tabular policy's order; column t serves step t)."""
    if not generators:
        return torch.zeros(0, steps, dtype=torch.float64)
    return torch.cat([torch.rand(n, steps, generator=g, dtype=torch.float64) for g in generators])
