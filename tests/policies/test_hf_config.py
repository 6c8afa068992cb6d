"""HFPolicyConfig's defaults and accepted values as its documentation states them, and the default LoRA targets
as the Llama block they name."""

from __future__ import annotations

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.policies.hf.config import HFPolicyConfig


def test_the_defaults_the_docstring_states_are_the_dataclasss():
    """The docstring says: float32 weights by default, chat template off by default, the dynamic cache by default.
    And a default policy trains LoRA adapters, leaves compiling to transformers (``auto``), samples the model's
    own distribution (temperature 1, top_p 1 = off) and shares prompt passes."""
    doc = " ".join(HFPolicyConfig.__doc__.split())
    cfg = HFPolicyConfig()
    assert '``"float32"`` (the default' in doc and cfg.dtype == "float32"
    assert "Off by default" in doc and cfg.chat_template is False
    assert '``"dynamic"`` (a KV cache that grows each step; the default)' in doc and cfg.generation_cache == "dynamic"
    assert (cfg.finetune, cfg.compile_generation) == ("lora", "auto")
    assert (cfg.temperature, cfg.top_p, cfg.share_prompts) == (1.0, 1.0, True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_every_documented_weight_dtype_is_accepted(dtype):
    """``dtype`` is "float32", "bfloat16" or "float16" (the docstring's list; the refusal names the same three)."""
    assert HFPolicyConfig(dtype=dtype).dtype == dtype
    with pytest.raises(UserError, match="float32, bfloat16 or float16"):
        HFPolicyConfig(dtype="float64")


def test_the_default_lora_targets_are_every_linear_layer_of_a_llama_block():
    """LLAMA_LORA_TARGETS adapts every linear projection of a Llama block (attention and MLP) and nothing else:
    every nn.Linear of the tiny Llama but the output layer gets an adapter."""
    pytest.importorskip("peft")
    from torch import nn

    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import build_hf_policy

    tokenizer = models.build_tiny_tokenizer()
    plain = models.build_tiny_model(tokenizer, seed=0)
    linear = {n.split(".")[-1] for n, m in plain.named_modules() if isinstance(m, nn.Linear)} - {"lm_head"}
    pol = build_hf_policy(HFPolicyConfig(), seed=0)
    adapted = {n.split(".")[-4] for n, p in pol.model.named_parameters() if p.requires_grad and "lora_A" in n}
    assert adapted == linear == set(HFPolicyConfig().lora_target_modules)
    assert len(linear) == 7  # q, k, v, o and the MLP's gate, up and down
