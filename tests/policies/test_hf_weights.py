"""The weights behind each role (rlhf_zoo.policies.hf.weights): the LoRA update's scale, the target names and
module types refused, the adapter left active when an anchor forward fails, and what a refused checkpoint's
message lists."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.errors import UserError  # noqa: E402
from rlhf_zoo.policies.base import Rollout  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy  # noqa: E402

PROMPTS = ["The movie was", "Great"]


def make(**kw):
    return build_hf_policy(HFPolicyConfig(**kw), seed=0)


def test_the_lora_update_is_b_a_scaled_by_alpha_over_r():
    """LoRA (Hu et al. 2021): an adapted layer computes W x + (α / r)·B A x, with the configured α and r; here
    α / r = 3 / 4, so a rank-4 update enters at three quarters of B A x."""
    pol = make(lora_r=4, lora_alpha=3.0, lora_target_modules=("q_proj",))
    layer = pol.model.get_base_model().model.layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert a.shape == (4, 64) and b.shape == (64, 4)
    with torch.no_grad():
        b.copy_(torch.randn(b.shape, generator=torch.Generator().manual_seed(0)))
        x = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
        delta = layer(x) - layer.base_layer(x)
    assert torch.allclose(delta, 0.75 * x @ a.T @ b.T, atol=1e-5)


def test_a_target_that_is_only_the_end_of_a_module_name_is_refused_beside_one_that_exists():
    """PEFT adapts a module named exactly as a target or ending in "." + the target: "proj" is the end of every
    "q_proj" but names no module, and would silently train fewer weights than asked beside "v_proj"."""
    with pytest.raises(UserError, match=r"lora_target_modules: proj names no module"):
        make(lora_target_modules=("v_proj", "proj"))


def test_a_target_of_a_module_type_lora_cannot_adapt_is_a_user_error():
    """A norm layer exists but LoRA cannot adapt it: PEFT's refusal becomes a UserError saying what to set."""
    with pytest.raises(UserError, match="cannot attach LoRA adapters to 'tiny'.*set lora_target_modules"):
        make(lora_target_modules=("input_layernorm",))


def test_a_failing_anchor_forward_leaves_the_policys_adapter_active():
    """An anchor forward runs with the anchor adapter active; when it fails (here a token id past the vocabulary)
    π's adapter is active again afterwards, with the same trainable weights: π's log-probs are π's, not the
    anchor's."""
    pol = make(max_new_tokens=4)
    r = pol.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(0))
    pol.update_anchor(1.0)
    with torch.no_grad():
        for p in pol.trainable_parameters():  # π moves away from the anchor
            p.add_(0.05)
        before = pol.logprobs(r)
        anchor = pol.logprobs(r, role="anchor")
    assert float(((before - anchor) * r.response_mask).abs().max()) > 1e-3
    trainable = [id(p) for p in pol.trainable_parameters()]
    bad = Rollout(
        prompts=r.prompts,
        prompt_ids=r.prompt_ids,
        prompt_mask=r.prompt_mask,
        completion_ids=torch.full_like(r.completion_ids, 10**6),
        response_mask=r.response_mask,
        sample_logp=None,
        texts=r.texts,
        group_size=r.group_size,
    )
    with pytest.raises(IndexError):
        pol.logprobs(bad, role="anchor")
    with torch.no_grad():
        assert torch.equal(pol.logprobs(r), before)
    assert [id(p) for _, p in pol.model.named_parameters() if p.requires_grad] == trainable


def test_a_refused_checkpoint_names_three_missing_keys_and_marks_the_rest():
    """A checkpoint of another model misses many keys: the message lists the first three (sorted) and '...' for
    the rest, enough to recognise the mismatch without a wall of names."""
    pol = make()
    state = pol.state_dict()
    dropped = sorted(k for k in state if k.startswith("policy."))[:5]
    for k in dropped:
        del state[k]
    with pytest.raises(UserError) as err:
        pol.load_state_dict(state)
    msg = str(err.value)
    assert f"missing {dropped[:3]}..." in msg and dropped[3] not in msg


def test_the_anchor_pairs_each_adapter_weight_even_in_a_module_whose_name_holds_default():
    """Each of π's LoRA weights is paired with the anchor adapter's weight of the same module: only the adapter's
    name segment ("default") changes, not a module name that happens to contain the word (``default_proj``);
    an anchor update with η = 1 then sets the anchor adapter to π's in that module."""
    from peft import LoraConfig, get_peft_model
    from torch import nn

    from rlhf_zoo.policies.hf.weights import Anchor

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.default_proj, self.out = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.default_proj(x))

    model = get_peft_model(Toy(), LoraConfig(r=2, lora_alpha=2, target_modules=["default_proj"]))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    anchor = Anchor(model, lora=True, device=torch.device("cpu"))
    anchor.build(trainable)
    anchor.in_use = True
    params = dict(model.named_parameters())
    assert [(n, a) for n, a, _ in anchor.pairs] == [
        (n, params[n.replace(".default.", ".anchor.")]) for n, _ in trainable
    ]
    with torch.no_grad():
        for _, p in trainable:
            p.add_(1.0)
    anchor.update(1.0)
    assert all(torch.equal(a, p) for _, a, p in anchor.pairs)
