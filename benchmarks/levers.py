"""Each speed and memory lever of the shared path, measured before and after, in one run.

    python benchmarks/levers.py                     # SmolLM2-135M + LoRA on this machine's CPU
    python benchmarks/levers.py model=tiny only=sampler,tokenise
    python benchmarks/levers.py device=cuda dtype=bfloat16 compile=true     # on a GPU

Levers (``only=`` picks some, comma-separated):

- ``cache``: BOND's cached reference completions for quantiles: a step whose prompts are all in
  the cache (after) against one that must draw k = 16 reference completions per prompt (before).
- ``ref``: reference log-probs from the policy with its adapters disabled (after) against a frozen
  copy of the base model (before): time and the extra weight memory.
- ``anchor``: the anchor as a second LoRA adapter (after) against a third full copy (before).
- ``tokenise``: prompts tokenised once per run (after) against every call (before).
- ``reward``: the MiniLM reward scoring a batch in one call (after) against one call per text.
- ``sampler``: generation drawing tokens by an inverse CDF inside a logits processor (after)
  against ``generate``'s own ``torch.multinomial`` sampling (before), same model and batch.
- ``share``: rows that continue the same prompt (k samples per prompt) run the prompt once, in
  sampling and in scoring with gradient (after), against every row running its prompt (before).
- ``static``: a static KV cache, and with ``compile=true`` torch.compile of the decoding step (CUDA
  graphs on a GPU), against the default dynamic cache (compile time reported separately).
- ``bf16``: bfloat16 weights against float32, for generation and for the update.

Times are medians of ``reps`` repetitions after one warm-up. Figures depend on the machine: the
table header names it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlhf_zoo.options import split_options

PROMPTS = [
    "This movie was really quite",
    "I did not expect the plot",
    "The acting in this one",
    "What a waste of time and",
    "An honest and moving portrait",
    "The director clearly had no",
    "By the end of it",
    "Nothing about this film is",
]


def timed(fn: Callable[[], Any], reps: int, sync: bool) -> float:
    fn()
    out = []
    for _ in range(reps):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def base_bytes(module: torch.nn.Module) -> int:
    """The bytes of ``module``'s base weights, leaving out every LoRA adapter's (what a full copy of the model
    without adapters holds)."""
    return sum(p.numel() * p.element_size() for n, p in module.named_parameters() if "lora_" not in n)


LEVERS = ("cache", "ref", "anchor", "tokenise", "reward", "sampler", "share", "static", "bf16")


@dataclass
class LeversOptions:
    """This script's options (it takes no config overrides).

    Attributes:
        only: the levers to measure (default: all of :data:`LEVERS`).
        model: the policy's model name or path.
        device: where it runs.
        dtype: its weights' dtype.
        reps: timed repetitions (the median is reported) after one warm-up.
        tokens: new tokens per completion.
        samples: completions per prompt.
        repeat: the batch is the built-in prompts repeated this many times.
        compile: the ``static`` lever also times torch.compile of the decoding step.
        threads: torch CPU threads (none: torch's default).
    """

    only: list[str] = field(default_factory=lambda: list(LEVERS))
    model: str = "smollm2-135m"
    device: str = "cpu"
    dtype: str = "float32"
    reps: int = 3
    tokens: int = 24
    samples: int = 2
    repeat: int = 1
    compile: bool = False
    threads: int | None = None


class Bench:
    def __init__(self, opts: LeversOptions):
        from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy

        self.opts = opts
        self.model = opts.model
        self.device = opts.device
        self.dtype = opts.dtype
        self.reps = opts.reps
        self.tokens = opts.tokens
        self.samples = opts.samples
        self.prompts = PROMPTS * opts.repeat
        self.sync = self.device.startswith("cuda")
        self.cfg = HFPolicyConfig(name=self.model, max_new_tokens=self.tokens, dtype=self.dtype)
        self.build = lambda **kw: build_hf_policy(dataclasses.replace(self.cfg, **kw), device=self.device, seed=0)
        self.policy = self.build()
        self.rows: list[list[str]] = []

    @functools.cached_property
    def plain(self):
        """The policy with prompt sharing off: "before" of ``share``, and both sides of the levers whose other
        side cannot share a prompt pass (``generate``'s own sampling, a static cache), so that their figures
        do not include ``share``'s speed-up."""
        return self.build(share_prompts=False)

    def gens(self, seed: int = 0) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(len(self.prompts))]

    def row(self, lever: str, before: str, after: str, b: float, a: float, unit: str, note: str = "") -> None:
        speed = f"{b / a:.2f}x" if a > 0 and unit == "s" else ""
        self.rows.append([lever, before, f"{b:.4g} {unit}", after, f"{a:.4g} {unit}", speed, note])
        print(f"{lever}: {b:.4g} -> {a:.4g} {unit} {note}", file=sys.stderr)

    # -- levers ------------------------------------------------------------------------------------
    def sampler(self) -> None:
        from transformers import GenerationConfig

        pol = self.plain  # generate(do_sample) runs every row's prompt: so must the inverse-CDF side
        ids, mask = pol.encode_prompts(self.prompts)
        ids, mask = ids.repeat_interleave(self.samples, 0), mask.repeat_interleave(self.samples, 0)
        cfg = GenerationConfig(
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=self.tokens,
            eos_token_id=pol.eos_token_ids,
            pad_token_id=pol.pad_token_id,
        )

        def multinomial():
            with torch.no_grad():
                pol.model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg)

        b = timed(multinomial, self.reps, self.sync)
        a = timed(lambda: pol.sample(self.prompts, self.samples, generator=self.gens()), self.reps, self.sync)
        rows = len(self.prompts) * self.samples
        note = f"{rows} x {self.tokens} tokens"
        self.row("sampler", "generate(do_sample) multinomial", "inverse-CDF processor", b, a, "s", note)

    def share(self) -> None:
        plain = self.plain

        def step(pol):
            roll = pol.sample(self.prompts, self.samples, generator=self.gens())
            with torch.no_grad():
                pol.logprobs(roll, role="ref")
            (pol.logprobs(roll) * roll.response_mask).sum().backward()
            for q in pol.trainable_parameters():
                q.grad = None

        b = timed(lambda: step(plain), self.reps, self.sync)
        a = timed(lambda: step(self.policy), self.reps, self.sync)
        self.row("share", "every row runs its prompt", "one prompt pass per prompt", b, a, "s", "sample+ref+fwd/bwd")

    def static(self) -> None:
        # A static cache runs every row's prompt (no shared prefill): the dynamic-cache side does too.
        a_pol = self.build(generation_cache="static")
        b = timed(lambda: self.plain.sample(self.prompts, self.samples, generator=self.gens()), self.reps, self.sync)
        a = timed(lambda: a_pol.sample(self.prompts, self.samples, generator=self.gens()), self.reps, self.sync)
        self.row("static", "dynamic KV cache", "static KV cache", b, a, "s")
        if self.opts.compile:
            c_pol = self.build(generation_cache="static", compile_generation="on")
            t0 = time.perf_counter()
            c_pol.sample(self.prompts, self.samples, generator=self.gens())
            first = time.perf_counter() - t0
            c = timed(lambda: c_pol.sample(self.prompts, self.samples, generator=self.gens()), self.reps, self.sync)
            self.row("compile", "dynamic KV cache", "static + torch.compile", b, c, "s", f"first call {first:.0f} s")

    def tokenise(self) -> None:
        pol = self.policy
        prompts = self.prompts * 4

        def cold():
            pol._prompts.cache.clear()
            pol.encode_prompts(prompts)

        b = timed(cold, max(self.reps, 20), False)
        a = timed(lambda: pol.encode_prompts(prompts), max(self.reps, 20), False)
        self.row("tokenise", "tokenise every call", "tokenise once", b, a, "s", f"{len(prompts)} prompts")

    def ref(self) -> None:
        pol = self.policy
        roll = pol.sample(self.prompts, self.samples, generator=self.gens())
        # The full-fine-tuning reference: a frozen copy of the base model, its LoRA layers removed (a copy of
        # get_base_model() keeps them, so its forward pass would still go through PEFT's dispatch)
        frozen = copy.deepcopy(pol.model).unload().eval().requires_grad_(False)
        copy_bytes = param_bytes(frozen)

        def with_copy():
            pol._ref_model, pol._lora = frozen, False  # the full-copy reference path of HFPolicy
            try:
                with torch.no_grad():
                    pol.logprobs(roll, role="ref")
            finally:
                pol._ref_model, pol._lora = None, True

        b = timed(with_copy, self.reps, self.sync)
        a = timed(lambda: pol.logprobs(roll, role="ref"), self.reps, self.sync)
        self.row("ref", "frozen copy of the model", "same model, adapters off", b, a, "s")
        mib = copy_bytes / 2**20
        self.row("ref memory", "frozen copy of the model", "same model, adapters off", mib, 0.0, "MiB", "extra weights")

    def anchor(self) -> None:
        pol = self.policy
        pol.update_anchor(1.0)
        adapter = sum(p.numel() * p.element_size() for n, p in pol.model.named_parameters() if ".anchor." in n)
        full = base_bytes(pol.model)  # a third full model holds the base weights (not the adapters)
        full_mib, adapter_mib = full / 2**20, adapter / 2**20
        self.row("anchor memory", "third full copy", "second LoRA adapter", full_mib, adapter_mib, "MiB", "weights")

    def reward(self) -> None:
        from rlhf_zoo.rewards.registry import build_reward

        try:
            rm = build_reward("minilm_sentiment", device=self.device, build_if_missing=False)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            print(f"reward lever skipped: {e}", file=sys.stderr)
            return
        texts = [f"{p} good and then some more words" for p in self.prompts * 4]
        prompts = [""] * len(texts)
        b = timed(lambda: [rm.score([p], [t]) for p, t in zip(prompts, texts, strict=True)], self.reps, self.sync)
        a = timed(lambda: rm.score(prompts, texts), self.reps, self.sync)
        self.row("reward", "one call per text", "one batched call", b, a, "s", f"MiniLM, {len(texts)} texts")

    def cache(self) -> None:
        from rlhf_zoo.config import load_config
        from rlhf_zoo.runtime import Runtime
        from rlhf_zoo.train import Trainer, build

        n = len(self.prompts)
        cfg = load_config(
            [
                "algo=bond",
                "task=sentiment",
                "task.gold=null",
                f"task.max_train_prompts={n}",  # every step revisits the same prompts
                f"train.batch_prompts={n}",
                f"model.name={self.model}",
                f"model.max_new_tokens={self.tokens}",
                f"model.dtype={self.dtype}",
                f"device={self.device}",
                "train.progress=false",
                "run_dir=/tmp/rlhf_zoo_levers_unused",
            ]
        )
        rt = Runtime(cfg.device)
        algo, task, policy = build(cfg, rt)
        trainer = Trainer(cfg, algo, task, policy, runtime=rt)
        t0 = time.perf_counter()
        trainer.train_step()  # every prompt misses: k reference samples each
        cold = time.perf_counter() - t0
        warm = timed(trainer.train_step, self.reps, self.sync)
        self.row("cache", f"draw k={algo.cfg.k} per prompt", "cached", cold, warm, "s", f"BOND step, {n} prompts")

    def bf16(self) -> None:
        # bfloat16 against the run's dtype (float32 or float16); from bfloat16 weights, against float32
        other = "float32" if self.dtype == "bfloat16" else "bfloat16"
        before, after = (other, self.dtype) if self.dtype == "bfloat16" else (self.dtype, other)
        pol_b = self.build(dtype=other)
        pols = {self.dtype: self.policy, other: pol_b}
        gen = {
            k: timed(lambda p=p: p.sample(self.prompts, self.samples, generator=self.gens()), self.reps, self.sync)
            for k, p in pols.items()
        }
        roll = self.policy.sample(self.prompts, self.samples, generator=self.gens())

        def update(p):
            loss = -(p.logprobs(roll) * roll.response_mask).sum()
            loss.backward()
            for q in p.trainable_parameters():
                q.grad = None

        upd = {k: timed(lambda p=p: update(p), self.reps, self.sync) for k, p in pols.items()}
        with torch.no_grad():
            diff = (self.policy.logprobs(roll) - pol_b.logprobs(roll)).abs().mul(roll.response_mask).max()
        note = f"max |Δ log p| {float(diff):.3f}"
        self.row("bf16 generate", before, after, gen[before], gen[after], "s", note)
        self.row("bf16 update", before, after, upd[before], upd[after], "s", "forward + backward")


def main(argv: list[str]) -> int:
    from tabulate import tabulate

    from rlhf_zoo.runlog import hardware

    opts, rest = split_options(argv, LeversOptions, "levers")
    if rest:
        print(f"levers takes no config overrides: {' '.join(rest)}", file=sys.stderr)
        return 2
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    only = opts.only
    unknown = [x for x in only if x not in LEVERS]
    if unknown:
        print(f"unknown lever(s) {unknown}; known: {', '.join(LEVERS)}", file=sys.stderr)
        return 2
    bench = Bench(opts)
    t0 = time.time()
    for lever in only:
        getattr(bench, lever)()
    print(f"hardware: {hardware()}; model: {bench.model}; device: {bench.device}; dtype: {bench.dtype}")
    print(
        f"command: python benchmarks/levers.py {' '.join(argv)}; batch {len(bench.prompts)} prompts x "
        f"{bench.samples}, {bench.tokens} new tokens; wall {time.time() - t0:.0f} s"
    )
    headers = ["lever", "before", "", "after", "", "speed-up", "note"]
    print(tabulate(bench.rows, headers=headers, tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
