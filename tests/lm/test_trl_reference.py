"""The TRL RLOO reference of benchmarks/throughput.py and benchmarks/trl_agreement.py."""

import pytest
import torch

pytest.importorskip("trl")

# benchmark-only code: it lives in benchmarks/ (importable from the repository root), not in the package
from benchmarks.trl_reference import run_trl_rloo, trl_settings  # noqa: E402
from rlhf_zoo.config import load_config  # noqa: E402
from rlhf_zoo.errors import UserError  # noqa: E402
from rlhf_zoo.rewards.base import CallableReward  # noqa: E402
from rlhf_zoo.train import build  # noqa: E402


def test_settings_map_our_rloo_onto_trls_and_refuse_other_algorithms(lm_args):
    cfg = load_config(["algo=reinforce", "algo.beta=0.07", "train.lr_schedule=constant", *lm_args])
    s = trl_settings(cfg)
    assert s["num_generations"] == 2 and s["per_device_train_batch_size"] == 2 * cfg.train.batch_prompts
    assert s["beta"] == 0.07 and s["normalize_advantages"] is False and s["num_iterations"] == 1
    assert s["max_completion_length"] == cfg.model.max_new_tokens and s["top_k"] == 0
    for bad in (["algo=jbond"], ["algo=reinforce", "algo.baseline=mean"], ["algo=reinforce", "algo.kl_in=loss"]):
        with pytest.raises(UserError):
            trl_settings(load_config([*bad, "train.lr_schedule=constant", *lm_args]))


def test_trl_trains_our_task_and_its_adapter_loads_into_our_policy(lm_args):
    cfg = load_config(["algo=reinforce", "train.lr_schedule=constant", "train.lr=0.05", *lm_args])
    _, task, policy = build(cfg)
    task.proxy = CallableReward(lambda ps, cs: [float(len(c)) for c in cs], name="length")  # never all equal
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    row = run_trl_rloo(cfg, steps=1, warmup=1, task=task, policy_out=policy)
    assert row["completions_per_step"] == 2 * cfg.train.batch_prompts
    assert row["completions_per_s"] > 0 and row["step_s"] > 0 and row["generate_s"] > 0
    # TRL's two updates moved its LoRA B matrices off zero, and ours now hold them.
    moved = [not torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters(), strict=True)]
    assert any(moved)


def test_trl_trains_without_recomputing_activations_as_ours_does(lm_args, monkeypatch):
    """TRL's configs turn gradient checkpointing on by default; our trainer never does. Left on, TRL's update
    redoes every layer's forward pass in the backward pass (slower, less memory), so the throughput page would
    not compare the same work."""
    import rlhf_zoo.policies.models as models

    seen = []  # per forward pass with gradient: whether a layer of the model would recompute its activations
    load = models.load_model_and_tokenizer

    def watched(*args, **kwargs):
        model, tokenizer = load(*args, **kwargs)

        def hook(module, inputs):
            if torch.is_grad_enabled() and module.training:
                seen.append(any(getattr(m, "gradient_checkpointing", False) for m in module.modules()))

        model.register_forward_pre_hook(hook)
        return model, tokenizer

    monkeypatch.setattr(models, "load_model_and_tokenizer", watched)
    for finetune in ("full", "lora"):
        seen.clear()
        cfg = load_config(["algo=reinforce", "train.lr_schedule=constant", f"model.finetune={finetune}", *lm_args])
        _, task, policy = build(cfg)
        assert not any(getattr(m, "gradient_checkpointing", False) for m in policy.model.modules())  # ours
        run_trl_rloo(cfg, steps=1, warmup=0, task=task)
        assert seen and not any(seen), f"TRL ({finetune}) trained with gradient checkpointing on"


def test_settings_refuse_a_chat_template_that_trl_would_not_apply(lm_args):
    """With model.chat_template=true our policy wraps each prompt in the chat template; TRL gets the prompts
    as plain strings and tokenises them bare, so the two would not sample from the same prompts."""
    cfg = load_config(["algo=reinforce", "train.lr_schedule=constant", "model.chat_template=true", *lm_args])
    with pytest.raises(UserError, match="chat_template"):
        trl_settings(cfg)
