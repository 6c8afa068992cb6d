"""Our ``reinforce`` (k = 2, leave-one-out, KL in the reward) and TRL's ``RLOOTrainer`` (k = 2) are
the same algorithm: after the same number of steps on the same model, prompts, reward and batch,
their held-out reward and KL should agree within seed noise.

    python benchmarks/trl_agreement.py                        # 3 seeds x 30 steps, SmolLM2 + LoRA
    python benchmarks/trl_agreement.py seeds=0,1,2,3 steps=40 train.batch_prompts=16

For each seed, each side trains in its own process from the same initial model; then *our*
evaluator scores both final policies on the same held-out prompts with the same sampling keys
(TRL's trained LoRA weights are loaded into our policy class): proxy reward, exact-token
KL(π‖π_ref), and the k1 estimate. The table gives the per-seed figures, each side's mean ± sd,
and the difference of the means with a Welch 95 % interval; "agree" means the interval covers 0.
The untrained policy's figures (step 0) show how far training moved both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rlhf_zoo.errors import UserError
from rlhf_zoo.options import split_options

try:  # run as a script, benchmarks/ is on sys.path; imported (the tests), the repository root is
    from trl_reference import reference_config, run_trl_rloo
except ImportError:
    from benchmarks.trl_reference import reference_config, run_trl_rloo

DEFAULTS = [
    "task=sentiment",
    "task.gold=null",
    "algo=reinforce",
    "algo.samples=2",
    "algo.baseline=loo",
    "algo.kl_in=reward",
    "train.batch_prompts=8",
    "model.max_new_tokens=24",
    "train.warmup_steps=0",
    "train.lr_schedule=constant",
    "train.eval_prompts=64",
    "train.eval_samples=2",
    "train.eval_ref_samples=2",
]
METRICS = ("reward/proxy", "kl/exact", "kl/k1")


@dataclass
class AgreementOptions:
    """This script's own options (every other ``key=value`` is a config override for both sides).

    Attributes:
        seeds: one run of each side per seed.
        steps: training steps of each run.
        out: a JSON file for the figures.
    """

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 30
    out: str | None = None


def worker(side: str, steps: int, overrides: list[str]) -> dict[str, float]:
    """Train one side for ``steps`` steps (``side=init`` trains nothing); evaluate with our evaluator."""
    import torch

    from rlhf_zoo.config import load_config
    from rlhf_zoo.evaluate import Evaluator
    from rlhf_zoo.runtime import Runtime
    from rlhf_zoo.train import Trainer, build

    cfg = load_config([*overrides, "train.progress=false", "run_dir=/tmp/rlhf_zoo_trl_agreement"])
    rt = Runtime(cfg.device)
    algo, task, policy = build(cfg, rt)
    t0 = time.perf_counter()
    if side == "ours":
        trainer = Trainer(cfg, algo, task, policy, runtime=rt)
        for _ in range(steps):
            trainer.train_step()
    elif side == "trl":
        run_trl_rloo(cfg, steps=steps, warmup=0, task=task, policy_out=policy)
    train_s = time.perf_counter() - t0
    policy.eval()
    evaluator = Evaluator(task, algo, cfg.train.eval_prompts, cfg.train.eval_samples, cfg.train.eval_ref_samples)
    torch.manual_seed(0)
    out = evaluator(policy, round=10**6)  # the same sampling keys for every side and seed
    return {**{m: float(out[m]) for m in METRICS}, "train_s": train_s}


def _mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}"


def main(argv: list[str]) -> int:
    from tabulate import tabulate

    from rlhf_zoo.bench.stats import diff_ci
    from rlhf_zoo.config import check_writable_file
    from rlhf_zoo.runlog import hardware

    opts, overrides = split_options(argv, AgreementOptions, "trl_agreement")
    given = {a.split("=", 1)[0] for a in overrides}
    rest = [d for d in DEFAULTS if d.split("=", 1)[0] not in given] + overrides
    seeds, steps = opts.seeds, opts.steps
    # Checked before the first run: each would otherwise fail only once every run before it had finished.
    if len(seeds) < 2:
        raise UserError(f"trl_agreement: needs 2 seeds or more (each side's sd, the Welch interval), got {seeds}")
    if reference_config(rest).model.finetune != "lora":
        raise UserError("trl_agreement: TRL's trained weights load into our policy only with model.finetune=lora")
    if opts.out is not None:
        check_writable_file(opts.out, "trl_agreement")
    t0 = time.time()

    def run(side: str, seed: int) -> dict[str, float]:
        cmd = [sys.executable, __file__, "worker", side, str(steps), *rest, f"seed={seed}"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{side} seed {seed} failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{side} seed {seed}: {res}", file=sys.stderr)
        return res

    init = run("init", seeds[0])
    results = {side: [run(side, s) for s in seeds] for side in ("ours", "trl")}
    rows = [["untrained (step 0)", "-", *(f"{init[m]:.4f}" for m in METRICS), "-"]]
    for side, name in (("ours", "rlhf_zoo reinforce"), ("trl", "TRL RLOOTrainer")):
        for s, r in zip(seeds, results[side], strict=True):
            rows.append([name, s, *(f"{r[m]:.4f}" for m in METRICS), f"{r['train_s']:.0f}"])
    for side, name in (("ours", "rlhf_zoo reinforce"), ("trl", "TRL RLOOTrainer")):
        vals = results[side]
        rows.append(
            [
                f"{name}: mean ± sd",
                "",
                *(_mean_sd([v[m] for v in vals]) for m in METRICS),
                f"{statistics.mean(v['train_s'] for v in vals):.0f}",
            ]
        )
    verdicts = []
    for m in METRICS:
        a, b = [r[m] for r in results["ours"]], [r[m] for r in results["trl"]]
        diff, half = diff_ci(a, b)
        half = half if half is not None else float("nan")
        agree = abs(diff) <= half
        verdicts.append(f"- {m}: ours − TRL = {diff:+.4f} ± {half:.4f} (95 % Welch) → {'agree' if agree else 'DIFFER'}")
    headers = ["run", "seed", *METRICS, "train s"]
    text = "\n".join(
        [
            f"- hardware: {hardware()}",
            f"- command: `python benchmarks/trl_agreement.py {' '.join(argv)}`",
            f"- settings: {' '.join(rest)}; {steps} steps; seeds {seeds}; wall {(time.time() - t0) / 60:.1f} min",
            "",
            tabulate(rows, headers=headers, tablefmt="github"),
            "",
            *verdicts,
        ]
    )
    print(text)
    if opts.out is not None:
        with open(opts.out, "w") as f:
            json.dump({"settings": rest, "steps": steps, "seeds": seeds, "init": init, **results}, f, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]), sys.argv[4:])))
    else:
        try:
            sys.exit(main(sys.argv[1:]))
        except UserError as e:
            print(e, file=sys.stderr)
            sys.exit(2)
