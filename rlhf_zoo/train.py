"""The one training loop (DESIGN.md layer 4): the same for every objective and every task.

Per step: draw B prompts → :func:`rlhf_zoo.rollout.collect` (samples, rewards, reference/anchor
log-probs, quantiles, targets: whatever the algorithm's ``Needs`` declare) → for each epoch and
minibatch, :func:`rlhf_zoo.rollout.make_batch` (log π with gradient) → ``algo.loss`` → optimiser
step → ``algo.after_step`` (anchor updates) → held-out evaluation every ``train.eval_every`` steps.

Interruptions lose nothing: a checkpoint (weights, optimiser, scheduler, torch's RNG states, the base
cache, costs) is written every ``train.checkpoint_every`` steps, at the end, and on Ctrl-C;
``resume=true`` continues from it, and on CPU a resumed run's metrics equal an uninterrupted run's.
Sampling needs no generator state: every draw comes from a generator keyed by (seed, step, the
prompt's position in the step's global batch) (:mod:`rlhf_zoo.rng`), which is also what makes N
processes give the result of one with the same global batch (``train.batch_prompts``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import torch
from omegaconf import DictConfig

from rlhf_zoo.algorithms.base import Algorithm
from rlhf_zoo.algorithms.registry import get_algorithm
from rlhf_zoo.config import algo_config, as_dataclass, to_yaml
from rlhf_zoo.errors import UserError
from rlhf_zoo.evaluate import Evaluator
from rlhf_zoo.policies.base import Policy
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, Costs, collect, make_batch
from rlhf_zoo.runlog import RunLog, provenance
from rlhf_zoo.runtime import Runtime
from rlhf_zoo.tasks.base import Task
from rlhf_zoo.tasks.registry import build_task


class Interrupted(Exception):
    """Training stopped by the user after a checkpoint was written."""

    def __init__(self, step: int, run_dir: str):
        super().__init__(f"interrupted at step {step}; checkpoint saved in {run_dir}: add resume=true to continue")
        self.step = step


def prompts_for_step(prompts: list[str], step: int, batch: int, seed: int) -> list[str]:
    """The B prompts of a step (steps count from 0): consecutive slices of seeded per-epoch
    permutations of the prompt list. Stateless, so a resumed run draws exactly the same prompts."""
    n = len(prompts)
    out = []
    for flat in range(step * batch, (step + 1) * batch):
        epoch, pos = divmod(flat, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out.append(prompts[int(perm[pos])])
    return out


def minibatches(num_groups: int, k: int) -> list[list[int]]:
    """k contiguous blocks of prompt groups (sizes differ by at most one). Contiguous, so that with
    several processes (global group g on process g % world) each process's blocks of its equal share
    make up the same global blocks as one process's."""
    return [list(range(i * num_groups // k, (i + 1) * num_groups // k)) for i in range(k)]


def check_equal_shares(world: int, batch_prompts: int, minibatches: int, eval_prompts: int | None) -> None:
    """Several processes give one process's result only if each holds an equal share of every step's
    prompts, of every minibatch, and of the held-out prompts (None: evaluation is not split)."""
    if world == 1:
        return
    k = min(minibatches, batch_prompts)
    if batch_prompts % (world * k):
        what = f"{world} processes" + (f" × {k} minibatches" if k > 1 else "")
        raise UserError(f"train.batch_prompts={batch_prompts} does not split evenly over {what}")
    if eval_prompts is not None and eval_prompts % world:
        raise UserError(
            f"{eval_prompts} evaluation prompts (train.eval_prompts) do not split evenly over {world} processes"
        )


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - frac if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))

    return f


class Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        algo: Algorithm,
        task: Task,
        policy: Policy,
        argv: list[str] | None = None,
        runtime: Runtime | None = None,
    ):
        self.cfg = cfg
        self.rt = runtime or Runtime("cpu")
        self.algo = algo
        self.task = task
        self.policy = policy
        self.t = cfg.train
        self.needs = algo.needs()
        self.log = RunLog(cfg.run_dir)
        self.argv = argv
        self.shard = self.rt if self.rt.distributed else None
        eval_split = None if task.oracle is not None else len(task.eval_prompts[: self.t.eval_prompts])
        check_equal_shares(self.rt.world, self.t.batch_prompts, self.needs.minibatches, eval_split)
        self.cache = BaseCache(self.needs.cache_size) if self.needs.cache_size else None
        self.costs = Costs()
        self.evaluator = Evaluator(
            task,
            algo,
            self.t.eval_prompts,
            self.t.eval_samples,
            self.t.eval_ref_samples,
            seed=cfg.seed,
            shard=self.shard,
        )
        self.sharded = self._shard_policy()
        params = policy.trainable_parameters() if algo.trainable else []
        self.opt = torch.optim.AdamW(params, lr=self.t.lr, weight_decay=self.t.weight_decay) if params else None
        self.sched = (
            torch.optim.lr_scheduler.LambdaLR(
                self.opt, lr_lambda(self.t.lr_schedule, self.t.warmup_steps, self.t.steps)
            )
            if self.opt
            else None
        )
        self.step = 0
        self.elapsed = 0.0
        self.train_acc: dict[str, list[float]] = defaultdict(list)

    def _shard_policy(self) -> bool:
        """Shard the policy with FSDP2 if the launch (``distributed_type: FSDP``) or ``train.fsdp`` asks
        for it and there are several processes (one process has nothing to shard with); True if sharded."""
        from rlhf_zoo.fsdp import FSDPSettings

        settings = self.rt.fsdp or (FSDPSettings() if self.t.fsdp else None)
        if settings is None or not self.rt.distributed:
            return False
        if not hasattr(self.policy, "shard"):
            raise UserError(
                f"FSDP shards the language-model policy; task={self.task.name} has none to shard: "
                "drop train.fsdp / use distributed_type: MULTI_GPU (docs/scaling.md)"
            )
        n = self.needs
        self.policy.shard(settings, self.rt.device_mesh(), anchor=n.anchor or n.anchor_logp or n.base == "anchor")
        return True

    # -- state -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The checkpoint's training state. Called in every process: what processes hold separately (cost
        counters, the held-out reference rewards) is gathered; everything else is the same everywhere."""
        return {
            "step": self.step,
            "optimizer": self._optimizer_state() if self.opt else None,
            "scheduler": self.sched.state_dict() if self.sched else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "cache": self.cache.state() if self.cache else None,
            "costs": self._summed(self.costs),
            "eval_costs": self._summed(self.evaluator.costs),
            "eval_reference": self.evaluator.reference_state(),
            "train_acc": dict(self.train_acc),
            "elapsed": self.elapsed,
        }

    def _optimizer_state(self) -> dict[str, Any]:
        if not self.sharded:
            return self.opt.state_dict()
        from rlhf_zoo.fsdp import full_optimizer_state

        return full_optimizer_state(self.opt.state_dict())  # the layout of an unsharded run's state

    def _summed(self, costs: Costs) -> Costs:
        """The counters summed over processes (this process's timings)."""
        total = self.rt.sum_ints(
            {"completions": costs.completions, "tokens": costs.tokens, "calls": costs.reward_calls}
        )
        return Costs(total["completions"], total["tokens"], total["calls"], dict(costs.seconds))

    def _own_share(self, costs: Costs) -> Costs:
        """Restored counters: the main process carries the checkpoint's totals, the others start at 0."""
        return costs if self.rt.is_main else Costs(seconds=dict(costs.seconds))

    def save(self) -> None:
        state = self.state()
        # Every process holds the same weights; sharded ones are gathered by every process.
        weights = self.policy.state_dict() if self.rt.is_main or self.sharded else None
        if self.rt.is_main:
            self.log.save_checkpoint(weights, state)
        self.rt.barrier()

    def restore(self) -> None:
        weights, s = self.log.load_checkpoint()
        self.policy.load_state_dict(weights)
        self.step = s["step"]
        if self.opt and s["optimizer"]:
            self.opt.load_state_dict(s["optimizer"])
            if self.sharded:
                from rlhf_zoo.fsdp import shard_optimizer_state

                shard_optimizer_state(self.opt)
            self.sched.load_state_dict(s["scheduler"])
        torch.set_rng_state(s["torch_rng"])
        if s["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda_rng"])
        if self.cache and s["cache"]:
            self.cache.load(s["cache"])
        self.costs = self._own_share(s["costs"])
        self.evaluator.costs = self._own_share(s["eval_costs"])
        self.evaluator.load_reference(s["eval_reference"])
        self.train_acc = defaultdict(list, s["train_acc"])
        self.elapsed = s["elapsed"]
        if self.rt.is_main:  # one writer: processes racing on the same temporary file could fail
            self.log.truncate_metrics(self.step)

    # -- the loop ----------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One step on this process's share of the step's prompts; returns metrics averaged over processes."""
        prompts = prompts_for_step(self.task.train_prompts, self.step, self.t.batch_prompts, self.cfg.seed)
        data = collect(
            self.needs,
            self.policy,
            self.task,
            prompts,
            streams=Streams(self.cfg.seed, self.step),
            cache=self.cache,
            costs=self.costs,
            shard=self.shard,
        )
        metrics: dict[str, list[float]] = defaultdict(list)
        k = min(self.needs.minibatches, len(prompts))
        blocks = minibatches(len(data.prompts), k) if k > 1 else [None]
        for _ in range(self.needs.epochs):
            for mb in blocks:
                # The policy's forward pass with gradient belongs to the update; "logprobs" is the
                # no-gradient scoring of stage 1 (reference, anchor, quantiles).
                with self.costs.timed("update"):
                    batch = make_batch(self.needs, self.policy, data, mb, shard=self.shard)
                loss, m = self.algo.loss(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.step + 1}")
                with self.costs.timed("update"):
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    self.rt.average_gradients(self.policy.trainable_parameters())
                    if self.t.grad_clip > 0:
                        norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.t.grad_clip)
                        if self.sharded:
                            from rlhf_zoo.fsdp import full

                            norm = full(norm)  # a DTensor over sharded gradients
                        metrics["train/grad_norm"].append(float(norm))
                    self.opt.step()
                metrics["loss/total"].append(float(loss.detach()))
                for key, v in m.items():
                    metrics[key].append(float(v))
        self.sched.step()
        self.step += 1
        self.algo.after_step(self.policy, self.step)
        metrics["train/reward_proxy"].append(float(data.rewards.mean()))
        return self.rt.mean_metrics({key: sum(v) / len(v) for key, v in metrics.items()})

    def evaluate(self) -> dict[str, Any]:
        was_training = getattr(self.policy, "training", False)
        if hasattr(self.policy, "eval"):
            self.policy.eval()
        metrics = self.evaluator(self.policy, round=self.step)
        if was_training:
            self.policy.train()
        train = {key: sum(v) / len(v) for key, v in self.train_acc.items() if v}
        self.train_acc.clear()
        record = {**self.rt.mean_metrics(metrics), **train}  # train metrics: already averaged per step
        record.update(self.rt.sum_ints(self.costs.as_dict()))
        record["time/elapsed_s"] = round(self.elapsed, 3)
        if self.rt.is_main:
            self.log.log(self.step, record)
        self.rt.track(record, self.step)
        return record

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        existing = self.log.read_config()
        if cfg.resume and self.log.has_checkpoint():
            if existing is not None and _without_resume(existing) != _without_resume(to_yaml(cfg)):
                raise UserError(f"resume=true but {cfg.run_dir}/config.yaml differs from this run's config")
            self.restore()
        else:
            if self.log.metrics_path.exists() and not cfg.resume:
                raise UserError(
                    f"{cfg.run_dir} already holds a run: pass resume=true to continue it, or choose another run_dir"
                )
            if cfg.resume and self.rt.is_main:
                self.log.truncate_metrics(-1)  # nothing to resume: start over from a clean log
            if self.needs.anchor:
                self.policy.update_anchor(1.0)  # π_anchor starts at π (= π_ref)
        self.rt.barrier()  # every process has checked the run directory before anything is written
        if self.rt.is_main:
            self.log.write_config(to_yaml(cfg))
            sharded = {"sharded": "fsdp2"} if self.sharded else {}
            self.log.write_meta({**provenance(self.argv), "processes": self.rt.world, **sharded})
        self.rt.start_trackers(f"{self.algo.name}-{self.task.name}", _flat_config(cfg))
        steps = self.t.steps if self.algo.trainable else 0
        last = None
        if self.step == 0:
            last = self.evaluate()
        bar = _progress(
            self.t.progress and steps > self.step and self.rt.is_main,
            total=steps,
            initial=self.step,
            desc=f"{self.algo.name}",
        )
        try:
            while self.step < steps:
                t0 = time.perf_counter()
                m = self.train_step()
                self.elapsed += time.perf_counter() - t0
                for key, v in m.items():
                    self.train_acc[key].append(v)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(reward=f"{m['train/reward_proxy']:.3f}", refresh=False)
                if self.step % self.t.eval_every == 0 or self.step == steps:
                    last = self.evaluate()
                if self.t.checkpoint_every and self.step % self.t.checkpoint_every == 0 and self.step < steps:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            raise Interrupted(self.step, cfg.run_dir) from None
        except Exception:
            # A failing reward or a bad prompt mid-run: keep what was done so far resumable.
            if self.algo.trainable and self.step > 0:
                self.save()
            raise
        finally:
            if bar is not None:
                bar.close()
        if last is None:
            records = self.log.read_metrics()
            last = records[-1] if records else self.evaluate()
        if self.algo.trainable:
            self.save()
        summary = {
            "algo": self.algo.name,
            "task": self.task.name,
            "steps": self.step,
            "seed": cfg.seed,
            **{k: v for k, v in last.items()},
            **self.rt.sum_ints(self.costs.as_dict()),
            "eval_cost/completions": self.rt.sum_ints({"n": self.evaluator.costs.completions})["n"],
            "time/train_s": round(self.elapsed, 3),
            **{f"time/{k}_s": round(v, 3) for k, v in sorted(self.costs.seconds.items())},
            "processes": self.rt.world,
        }
        if self.rt.is_main:
            self.log.write_summary(summary)
        self.rt.end_trackers()
        return summary


def _flat_config(cfg: DictConfig) -> dict[str, Any]:
    from omegaconf import OmegaConf

    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = node if isinstance(node, (int, float, str, bool)) else str(node)

    walk("", OmegaConf.to_container(cfg))
    return flat


def _without_resume(yaml_text: str) -> str:
    return "\n".join(line for line in yaml_text.splitlines() if not line.startswith("resume:"))


def _progress(enabled: bool, **kw):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit="step", dynamic_ncols=True, **kw)


def build(cfg: DictConfig, runtime: Runtime | None = None) -> tuple[Algorithm, Task, Policy]:
    """Algorithm, task and policy for a validated config."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rt = runtime or Runtime(cfg.device)
    torch.manual_seed(cfg.seed)
    algo = get_algorithm(cfg.algo.name)(algo_config(cfg))
    task = build_task(as_dataclass(cfg, "task"), as_dataclass(cfg, "model"), device=str(rt.device))
    policy = task.build_policy(cfg.seed)  # identical initial weights in every process
    return algo, task, policy


def run(cfg: DictConfig, argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or, for Best-of-N, only evaluate) one configuration; returns the summary."""
    rt = Runtime(cfg.device, log_with=cfg.train.log_with, project_dir=cfg.run_dir)
    algo, task, policy = build(cfg, rt)
    return Trainer(cfg, algo, task, policy, argv=argv, runtime=rt).fit()
