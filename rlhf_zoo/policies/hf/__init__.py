"""Hugging Face causal language models as rlhf_zoo policies (DESIGN.md layer 3).

:class:`HFPolicy` implements the :class:`~rlhf_zoo.policies.base.Policy` protocol on any
``AutoModelForCausalLM``: the offline ``"tiny"``, ``"smollm2-135m"`` and ``"zoo-lm"`` models of
:mod:`rlhf_zoo.policies.models`, or any hub id / local path. One module per job:

- ``config.py``: :class:`HFPolicyConfig`, every setting documented and validated;
- ``policy.py``: :class:`HFPolicy`, which ties the parts together, and :func:`build_hf_policy`;
- ``weights.py``: the weights behind each role (π's LoRA adapter, frozen copies, the anchor and its
  moving average);
- ``generation.py``: sampling with ``generate`` (the token-drawing logits processor, shared-prompt
  prefill, the cut at EOS); the draw itself is :mod:`rlhf_zoo.policies.sampling`, shared with the
  tabular testbed policy;
- ``scoring.py``: per-token log-probs of given completions, micro-batched, prompts shared.

The three roles share weights wherever they can:

- **LoRA** (Hu et al., arXiv 2106.09685, 2021), through PEFT. π = base + adapter ``"default"``;
  π_ref = the same model with adapters disabled (no copy at all); π_anchor = a second PEFT adapter
  ``"anchor"`` on the same base, active only during an anchor forward or generation: one more set of
  adapter weights, not a third model.
- **Full fine-tuning**: π = the model; π_ref = a frozen copy made at construction; π_anchor = one
  more frozen copy, made on first use. At most three copies of the weights.

The anchor is created equal to π by the first :meth:`HFPolicy.update_anchor` (whatever η) or by the
first use of the ``"anchor"`` role, whichever comes first. Algorithms that need an anchor (BOND,
J-BOND) call ``update_anchor(1.0)`` before the first optimiser step, so that it starts as π = π_ref
(ALGORITHMS.md §5–§6).

With several processes the weights can be sharded with FSDP2 (:meth:`HFPolicy.shard`): sampling, the
anchor's update and checkpoints then work on the shards, through the same code (docs/scaling.md).

Log-probabilities are always ``log_softmax(logits / temperature)``: sampling (``sample_logp``) and
scoring (:meth:`HFPolicy.logprobs`) use the same tempered distribution, so importance ratios between
them are exactly 1 when nothing has changed. ``top_p < 1`` truncates what is *sampled* but is not
reflected in these log-probs (the usual convention in RLHF code; keep ``top_p = 1`` when exact
on-policy ratios matter).
"""

from rlhf_zoo.policies.hf.config import LLAMA_LORA_TARGETS, HFPolicyConfig
from rlhf_zoo.policies.hf.policy import HFPolicy, build_hf_policy

__all__ = ["LLAMA_LORA_TARGETS", "HFPolicy", "HFPolicyConfig", "build_hf_policy"]
