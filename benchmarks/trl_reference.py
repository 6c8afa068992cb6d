"""Hugging Face TRL's ``RLOOTrainer`` on exactly our model, prompts, reward and batch: the
reference point of ``benchmarks/throughput.py`` and ``benchmarks/trl_agreement.py``.

    python benchmarks/trl_reference.py steps=2 warmup=1 task=sentiment train.batch_prompts=16

Benchmark-only code: it lives beside the scripts that use it, not in the installed package. TRL
is pip-installed at the version pinned in ``constraints.txt`` (the ``dev`` extra) and used as a
library: nothing of it is copied here. Our ``reinforce`` with ``samples=2, baseline=loo,
kl_in=reward`` is the same algorithm as TRL's RLOO with ``num_generations=2`` (Ahmadian et al.
2024, "Back to Basics"): the sequence-level k1 KL penalty β·(log π − log π_ref) subtracted from
the reward, the leave-one-out baseline, no advantage normalisation, one policy-gradient step per
batch (so PPO's ratio is 1 and its clipping is inert), the loss averaged over sequences, AdamW
with gradient-norm clipping and a constant learning rate, no gradient checkpointing (TRL's
configs turn it on by default). :func:`trl_settings` maps one of our
configs onto TRL's and refuses configs that would not be the same algorithm.

Differences that remain, by design of each library (they change cost, not the algorithm):
TRL scores log π_old with an extra no-grad forward pass where we keep the log-probs recorded
while sampling, and it computes the per-token entropy for logging.
"""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

from rlhf_zoo.errors import MissingPackageError, UserError
from rlhf_zoo.options import split_options


@dataclass
class TrlOptions:
    """This script's own options (every other ``key=value`` is a config override; ``algo`` is reinforce).

    Attributes:
        steps: timed steps.
        warmup: untimed steps before them.
    """

    steps: int = 2
    warmup: int = 1


def trl_settings(cfg: Any) -> dict[str, Any]:
    """TRL ``RLOOConfig`` keyword arguments equal to our run config ``cfg`` (an OmegaConf config of
    ``algo=reinforce``). Raises :class:`UserError` where TRL's RLOO is a different algorithm."""
    a, t, m = cfg.algo, cfg.train, cfg.model
    if a.name != "reinforce" or a.baseline != "loo" or a.kl_in != "reward" or a.samples < 2:
        raise UserError("the TRL RLOO reference needs algo=reinforce algo.baseline=loo algo.kl_in=reward, samples >= 2")
    if t.lr_schedule != "constant":
        raise UserError("the TRL RLOO reference is set up for train.lr_schedule=constant")
    if m.top_p != 1.0:
        raise UserError("the TRL RLOO reference is set up for model.top_p=1")
    if m.chat_template:
        # ours would wrap each prompt in the chat template, TRL tokenises the same strings bare
        raise UserError("the TRL RLOO reference is set up for model.chat_template=false (TRL gets plain prompts)")
    return dict(
        num_generations=int(a.samples),
        per_device_train_batch_size=int(t.batch_prompts) * int(a.samples),
        gradient_accumulation_steps=1,
        num_iterations=1,
        beta=float(a.beta),
        normalize_advantages=False,
        max_completion_length=int(m.max_new_tokens),
        temperature=float(m.temperature),
        top_p=1.0,
        top_k=0,
        learning_rate=float(t.lr),
        lr_scheduler_type="constant_with_warmup" if t.warmup_steps else "constant",
        warmup_steps=int(t.warmup_steps),
        weight_decay=float(t.weight_decay),
        max_grad_norm=float(t.grad_clip) if t.grad_clip > 0 else 0.0,
        gradient_checkpointing=False,  # TRL's default is on; ours never recomputes activations
        seed=int(cfg.seed),
    )


def run_trl_rloo(cfg: Any, steps: int, warmup: int = 0, task: Any = None, policy_out: Any = None) -> dict[str, Any]:
    """Train TRL's RLOO for ``warmup + steps`` steps on the task and model of ``cfg``; time the last
    ``steps``. Returns the figures of :func:`rlhf_zoo.profile.worker` (same keys).

    With ``model.finetune=full`` TRL trains every weight (no ``peft_config``); with LoRA, the same adapter
    settings as ours. If ``policy_out`` (one of our :class:`~rlhf_zoo.policies.hf.HFPolicy`, LoRA) is given,
    TRL's trained adapter weights are loaded into it, so our evaluator can score TRL's policy.
    """
    try:
        import trl
        from datasets import Dataset
        from peft import LoraConfig
    except ImportError as e:
        raise MissingPackageError("trl", "the TRL reference (pip install -e '.[dev]' -c constraints.txt)") from e
    from transformers import TrainerCallback

    from rlhf_zoo.config import as_dataclass
    from rlhf_zoo.policies.models import load_model_and_tokenizer
    from rlhf_zoo.rewards.base import checked_score
    from rlhf_zoo.tasks.registry import build_task
    from rlhf_zoo.train import prompts_for_step

    full = cfg.model.finetune == "full"  # TRL trains every weight (and keeps a frozen copy as its reference)
    if full and policy_out is not None:
        raise UserError("TRL's trained weights load into our policy only with model.finetune=lora")
    settings = trl_settings(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if task is None:
        task = build_task(as_dataclass(cfg, "task"), as_dataclass(cfg, "model"), device=cfg_device(cfg))
    total = warmup + steps
    # The same prompts in the same order as our trainer draws them; TRL must not reshuffle them.
    batch = cfg.train.batch_prompts
    prompts = [p for s in range(total) for p in prompts_for_step(task.train_prompts, s, batch, cfg.seed)]
    dataset = Dataset.from_dict({"prompt": prompts})

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model_and_tokenizer(cfg.model.name, seed=cfg.seed, dtype=cfg.model.dtype)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    targets: Any = list(cfg.model.lora_target_modules)
    lora = LoraConfig(
        r=cfg.model.lora_r,
        lora_alpha=cfg.model.lora_alpha,
        lora_dropout=cfg.model.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    reward = task.proxy
    seconds: dict[str, float] = {}  # phase -> seconds summed over the timed steps

    def add(phase: str, t0: float) -> None:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - t0

    def proxy_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return checked_score(reward, list(prompts), list(completions)).tolist()

    class TimedRLOO(trl.RLOOTrainer):
        """TRL's trainer with timers around its phases (no behaviour changed)."""

        def _generate_single_turn(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return super()._generate_single_turn(*args, **kwargs)
            finally:
                add("generate", t0)

        def _calculate_rewards(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return super()._calculate_rewards(*args, **kwargs)
            finally:
                add("reward", t0)

        def _generate_and_score_completions(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return super()._generate_and_score_completions(*args, **kwargs)
            finally:
                add("rollout", t0)

    step_times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()
            if state.global_step == warmup:
                seconds.clear()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out_dir:
        if full and not getattr(model.config, "_name_or_path", ""):
            # TRL loads its frozen reference from the policy's path: give a model built in code (tiny) one
            model.save_pretrained(f"{out_dir}/policy")
            model.config._name_or_path = f"{out_dir}/policy"
        args = trl.RLOOConfig(
            output_dir=out_dir,
            max_steps=total,
            shuffle_dataset=False,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=cfg_device(cfg) == "cpu",
            bf16=cfg.model.dtype == "bfloat16",
            fp16=False,
            dataloader_num_workers=0,
            disable_tqdm=True,
            generation_kwargs={"eos_token_id": _eos_ids(model, tokenizer)},
            **settings,
        )
        trainer = TimedRLOO(
            model=model,
            reward_funcs=proxy_reward,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=None if full else lora,
            callbacks=[StepClock()],
        )
        device = trainer.accelerator.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        if policy_out is not None:
            from peft import get_peft_model_state_dict, set_peft_model_state_dict

            trained = get_peft_model_state_dict(trainer.model)
            result = set_peft_model_state_dict(policy_out.model, trained)
            missing = [k for k in result.missing_keys if "lora_" in k and ".default." in k]
            if result.unexpected_keys or missing or not trained:
                raise RuntimeError(f"TRL's adapter does not match ours: {result}")
    timed = step_times[warmup:]
    wall = sum(timed) / len(timed)
    per = {k: v / len(timed) for k, v in seconds.items()}
    generate, reward_s = per.get("generate", 0.0), per.get("reward", 0.0)
    logprobs = max(0.0, per.get("rollout", 0.0) - generate - reward_s)
    update = max(0.0, wall - per.get("rollout", 0.0))
    completions = settings["per_device_train_batch_size"]
    if device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "algo": f"trl.RLOOTrainer {trl.__version__} (k={settings['num_generations']})",
        "step_s": wall,
        "generate_s": generate,
        "reward_s": reward_s,
        "logprobs_s": logprobs,
        "update_s": update,
        "other_s": 0.0,
        "completions_per_step": completions,
        "completions_per_s": completions / wall,
        "generate_share": generate / wall,
        "peak_memory_gb": peak_gb,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def cfg_device(cfg: Any) -> str:
    from rlhf_zoo.runtime import resolve_device

    return str(resolve_device(cfg.device))


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The end-of-completion ids our policy uses, so both stop on the same tokens."""
    from rlhf_zoo.policies.hf import HFPolicy

    return list(HFPolicy._collect_eos_ids(model, tokenizer))


def reference_config(overrides: list[str]) -> Any:
    """Our run config for the TRL reference: ``algo=reinforce`` with ``overrides`` (an ``algo=`` among them
    dropped), checked by :func:`trl_settings`, so that a script calling it before its own runs fails at once
    on a config TRL's RLOO cannot match rather than once those runs are done."""
    from rlhf_zoo.config import load_config

    rest = [a for a in overrides if a.split("=", 1)[0].strip() != "algo"]
    cfg = load_config(["algo=reinforce", *rest])
    trl_settings(cfg)
    return cfg


def main(args: list[str]) -> dict[str, Any]:
    """``python benchmarks/trl_reference.py steps=S warmup=W <config overrides>``: time TRL's RLOO
    in this process (its own peak memory) and return the figures."""
    opts, rest = split_options(args, TrlOptions, "trl_reference")
    return run_trl_rloo(reference_config(rest), steps=opts.steps, warmup=opts.warmup)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:])))
