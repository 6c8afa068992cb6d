"""``rlhf-zoo profile``: seconds per step split into generate / reward / log-probs / update, and peak
memory, for each objective on the same model, prompts, batch and generation length.

    rlhf-zoo profile task=sentiment train.batch_prompts=16 model.max_new_tokens=24 steps=2
    rlhf-zoo profile algos=jbond,reinforce out=profile.json task=sentiment model.name=tiny

Each objective runs in its own process (so peak memory is its own): ``warmup`` untimed steps, then
``steps`` timed ones through the real training loop (:meth:`rlhf_zoo.train.Trainer.train_step`),
no evaluation. Best-of-N is not trained: its "step" is what it costs to produce the batch's outputs
(N reference samples per prompt and their rewards). Peak memory is the process's peak resident set
(CPU) or ``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

PHASES = ("generate", "reward", "logprobs", "update")
DEFAULT_ALGOS = ("best_of_n", "reinforce", "ppo_lite", "bond", "jbond")


def _split(args: list[str]) -> tuple[dict[str, str], list[str]]:
    own, rest = {}, []
    for a in args:
        key = a.split("=", 1)[0]
        if key in ("algos", "steps", "warmup", "out"):
            own[key] = a.split("=", 1)[1]
        else:
            rest.append(a)
    return own, rest


def worker(args: list[str]) -> dict:
    """Profile one objective in this process; returns the figures."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.rollout import best_of_n_outputs
    from rlhf_zoo.runtime import Runtime
    from rlhf_zoo.train import Trainer, build, prompts_for_step

    own, rest = _split(args)
    steps, warmup = int(own.get("steps", 2)), int(own.get("warmup", 1))
    cfg = load_config([*rest, "train.progress=false", "run_dir=/tmp/rlhf_zoo_profile_unused"])
    rt = Runtime(cfg.device)
    t0 = time.perf_counter()
    algo, task, policy = build(cfg, rt)
    load_s = time.perf_counter() - t0
    trainer = Trainer(cfg, algo, task, policy, runtime=rt)
    if trainer.needs.anchor:
        policy.update_anchor(1.0)
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def one_step(i: int) -> None:
        if algo.trainable:
            trainer.train_step()
        else:
            prompts = prompts_for_step(task.train_prompts, i, cfg.train.batch_prompts, cfg.seed)
            best_of_n_outputs(policy, task, prompts, algo.cfg.n, 1, generator=trainer.gen, costs=trainer.costs)

    for i in range(warmup):
        one_step(i)
    trainer.costs.seconds.clear()
    completions0 = trainer.costs.completions
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        one_step(i)
    wall = (time.perf_counter() - t0) / steps
    sec = {p: trainer.costs.seconds.get(p, 0.0) / steps for p in PHASES}
    outputs = cfg.train.batch_prompts * (getattr(algo.cfg, "samples", 1) if algo.trainable else 1)
    if rt.device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {
        "algo": cfg.algo.name,
        "step_s": wall,
        **{f"{p}_s": v for p, v in sec.items()},
        "other_s": max(0.0, wall - sum(sec.values())),
        "completions_per_step": (trainer.costs.completions - completions0) / steps,
        "policy_outputs_per_s": outputs / wall,
        "completions_per_s": (trainer.costs.completions - completions0) / steps / wall,
        "peak_memory_gb": peak_gb,
        "load_s": load_s,
        "device": str(rt.device),
        "threads": torch.get_num_threads(),
    }


def main(args: list[str]) -> int:
    from tabulate import tabulate

    from rlhf_zoo.config import load_config
    from rlhf_zoo.runlog import hardware

    own, rest = _split(args)
    algos = own.get("algos", ",".join(DEFAULT_ALGOS)).split(",")
    for a in algos:  # validate every configuration before spending minutes on the first
        load_config([f"algo={a}", *rest])
    rows = []
    for a in algos:
        cmd = [
            sys.executable,
            "-m",
            "rlhf_zoo.profile",
            f"algo={a}",
            *rest,
            f"steps={own.get('steps', 2)}",
            f"warmup={own.get('warmup', 1)}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return out.returncode
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{a}: {rows[-1]['step_s']:.2f} s/step", file=sys.stderr)
    headers = [
        "algo",
        "s/step",
        "generate",
        "reward",
        "log-probs",
        "update",
        "other",
        "completions/step",
        "completions/s",
        "peak GB",
    ]
    table = [
        [
            r["algo"],
            f"{r['step_s']:.2f}",
            f"{r['generate_s']:.2f}",
            f"{r['reward_s']:.3f}",
            f"{r['logprobs_s']:.2f}",
            f"{r['update_s']:.2f}",
            f"{r['other_s']:.2f}",
            f"{r['completions_per_step']:.0f}",
            f"{r['completions_per_s']:.1f}",
            f"{r['peak_memory_gb']:.2f}",
        ]
        for r in rows
    ]
    print(f"hardware: {hardware()}; torch threads: {rows[0]['threads']}; device: {rows[0]['device']}")
    print("command: rlhf-zoo profile " + " ".join(args))
    print(tabulate(table, headers=headers, tablefmt="github"))
    if "out" in own:
        with open(own["out"], "w") as f:
            json.dump({"hardware": hardware(), "args": args, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1:])))
