"""Pure tensor math of rlhf_zoo (layer 1).

No models, no config objects, no ``.item()``: every function takes tensors and returns tensors,
so that it can be property-tested in float64 and used unchanged on CPU and GPU.
The formulas follow ``ALGORITHMS.md`` (the project's spec) and Sessa et al., "BOND: Aligning
LLMs with Best-of-N Distillation" (arXiv 2407.14622).
"""

from rlhf_zoo.functional import advantages, best_of_n, ema, kl, quantile, rewards, surrogate

__all__ = ["advantages", "best_of_n", "ema", "kl", "quantile", "rewards", "surrogate"]
