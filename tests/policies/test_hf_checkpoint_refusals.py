"""HFPolicy.load_state_dict checks a checkpoint fully (keys *and* shapes) before it changes anything,
and refuses a checkpoint whose tensors do not fit instead of broadcasting them; one LoRA target module
given as a string is that module."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.errors import UserError  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy  # noqa: E402

PROMPTS = ["The movie was", "Great"]


def _nudge(pol, scale: float) -> None:
    with torch.no_grad():
        for i, p in enumerate(pol.trainable_parameters()):
            p.add_(scale * (i + 1) / 100)


def test_a_checkpoint_of_another_lora_rank_is_refused_not_broadcast():
    """A rank-1 adapter's A [1, d] and B [d, 1] broadcast silently into a rank-8 policy's [8, d] / [d, 8]."""
    small = build_hf_policy(HFPolicyConfig(lora_r=1), seed=0)
    _nudge(small, 1.0)
    big = build_hf_policy(HFPolicyConfig(lora_r=8), seed=0)
    with pytest.raises(UserError, match="shape"):
        big.load_state_dict(small.state_dict())


def test_a_checkpoint_that_does_not_fit_is_a_user_error_naming_the_policy():
    a = build_hf_policy(HFPolicyConfig(lora_r=8), seed=0)
    b = build_hf_policy(HFPolicyConfig(lora_r=16), seed=0)
    with pytest.raises(UserError, match="does not match this policy"):
        b.load_state_dict(a.state_dict())


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_a_refused_checkpoint_leaves_the_policy_and_its_anchor_as_they_were(finetune):
    """A load that fails validation must not take the anchor out of use (the next update would then
    silently reset it to π) nor bring one into use."""
    pol = build_hf_policy(HFPolicyConfig(finetune=finetune), seed=0)
    pol.update_anchor(1.0)
    _nudge(pol, 1.0)
    pol.update_anchor(0.5)
    before = pol.state_dict()
    bad = {k: v for k, v in before.items() if not k.startswith("anchor.")}
    bad.pop(next(k for k in bad if k.startswith("policy.")))  # a broken checkpoint without an anchor
    with pytest.raises(UserError, match="missing"):
        pol.load_state_dict(bad)
    assert pol.has_anchor and pol.anchor_version == 2
    after = pol.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)

    fresh = build_hf_policy(HFPolicyConfig(finetune=finetune), seed=0)  # no anchor yet
    broken = dict(before)
    broken.pop(next(k for k in broken if k.startswith("policy.")))  # broken, with an anchor
    with pytest.raises(UserError, match="missing"):
        fresh.load_state_dict(broken)
    assert not fresh.has_anchor and fresh.anchor_version == 0


def test_a_checkpoint_with_a_key_this_policy_lacks_is_refused_naming_it_and_changes_nothing():
    """Every key the policy holds is there, plus one more (a weight of another model, a LoRA target this policy
    lacks): refused, not loaded with the extra weight silently dropped."""
    pol = build_hf_policy(HFPolicyConfig(), seed=0)
    before = {k: v.clone() for k, v in pol.state_dict().items()}
    other = build_hf_policy(HFPolicyConfig(), seed=1)
    _nudge(other, 1.0)
    state = other.state_dict()
    state["policy.model.extra.lora_A.default.weight"] = torch.zeros(8, 4)
    with pytest.raises(UserError, match=r"unexpected \['policy\.model\.extra\.lora_A\.default\.weight'\]"):
        pol.load_state_dict(state)
    after = pol.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_one_target_module_given_as_a_string_is_one_module_not_its_letters():
    """PEFT takes a string for target_modules ("all-linear"); tuple("all-linear") is ten one-letter names,
    and the build then fails telling the user to set lora_target_modules to ['all-linear'], what they did."""
    cfg = HFPolicyConfig(lora_target_modules="all-linear")
    assert cfg.lora_target_modules == ("all-linear",)
    assert HFPolicyConfig(lora_target_modules="q_proj").lora_target_modules == ("q_proj",)
    pol = build_hf_policy(cfg, seed=0)
    assert len(pol.trainable_parameters()) > 0


def test_a_model_folder_that_is_no_causal_lm_is_refused_in_one_line(tmp_path, cli, capsys, monkeypatch):
    """``model.name=`` a BERT regressor's folder (the gold reward's, say) printed transformers' load report of
    six randomly started head weights, then "the tokenizer has no EOS token": not what was wrong. Its config.json
    names a classifier, so it is refused before anything loads, or is built (the gold reward, minutes on a
    machine without it); a folder whose config names no class is refused once loaded, by its missing weights."""
    import json

    import torch

    from rlhf_zoo.policies import models
    from tests.rewards.conftest import _tiny_bert

    encoder = _tiny_bert(tmp_path / "bert", 1)
    capsys.readouterr()
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(tmp_path / "cache"))  # no gold reward built here
    short = ["model.max_prompt_tokens=40", "model.max_new_tokens=8"]  # within its 64 positions
    args = ["algo=reinforce", "task=sentiment", f"model.name={encoder}", *short, f"run_dir={tmp_path}/r"]
    code, _, err = cli("train", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds a BertForSequenceClassification" in err and "no causal language model" in err, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r").exists()
    config = json.loads((encoder / "config.json").read_text())
    del config["architectures"]
    (encoder / "config.json").write_text(json.dumps(config))
    # no gold reward: it is not what is checked, and on a machine without it the run would build it first (minutes)
    code, _, err = cli("train", *args, "task.gold=null")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "it is no causal LM" in err and "cls.predictions" in err, err
    causal = tmp_path / "causal"  # a causal LM's folder loads, with nothing missing
    tokenizer = models.build_tiny_tokenizer()
    models.build_tiny_model(tokenizer).save_pretrained(causal)
    tokenizer.save_pretrained(causal)
    model, _ = models.load_pretrained(str(causal), torch.float32)
    assert model.config.model_type == "llama"
