"""The one training loop (DESIGN.md layer 4): the same for every objective and every task.

:meth:`Trainer.fit` runs, per step (:meth:`Trainer.train_step`):

1. **rollout**: the step's B prompts (:func:`prompts_for_step`), samples from π;
2. **rewards**: the proxy reward of every sample;
3. **log-probs**: whatever the algorithm's ``Needs`` declare without gradient (reference / anchor
   log-probs, quantiles, base samples, forward-term targets) — 1 to 3 are
   :func:`rlhf_zoo.rollout.collect`;
4. **loss**: for each epoch and minibatch, log π with gradient (:func:`rlhf_zoo.rollout.make_batch`)
   and ``algo.loss(batch)``;
5. **step**: backward, gradient averaging across processes, clipping, the optimiser step;
6. **hooks**: ``algo.after_step`` (anchor updates);
7. **evaluation** on held-out prompts every ``train.eval_every`` steps (:mod:`rlhf_zoo.evaluate`);
8. **checkpoint** every ``train.checkpoint_every`` steps (:mod:`rlhf_zoo.checkpoint`).

Ctrl-C and SIGTERM stop the run at the next step boundary with a checkpoint (:mod:`rlhf_zoo.signals`);
``resume=true`` continues it, and on CPU a resumed run's metrics equal an uninterrupted run's.
Sampling needs no generator state: every draw comes from a generator keyed by (seed, step, the
prompt's position in the step's global batch) (:mod:`rlhf_zoo.rng`), which is also what makes N
processes give the result of one with the same global batch (``train.batch_prompts``).
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rlhf_zoo import checkpoint
from rlhf_zoo.algorithms.base import Algorithm
from rlhf_zoo.algorithms.registry import get_algorithm
from rlhf_zoo.config import NO_EFFECT, algo_config, as_dataclass, to_yaml
from rlhf_zoo.errors import UserError, printable
from rlhf_zoo.evaluate import Evaluator
from rlhf_zoo.inputs import changed, input_digests
from rlhf_zoo.io import yaml_error
from rlhf_zoo.options import set_away_from_default
from rlhf_zoo.policies.base import Policy
from rlhf_zoo.progress import step_bar
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, Costs, collect, make_batch
from rlhf_zoo.runlog import RunLog, WriteError, checkpoint_to_resume, in_use, provenance, sample_rows
from rlhf_zoo.runtime import Runtime, communication_failure, launched_rank, launched_world_size
from rlhf_zoo.signals import LAUNCHER_STOP, ForcedStop, StopRequests, lost_processes, told_if_stuck
from rlhf_zoo.tasks.base import Task, prompt_report
from rlhf_zoo.tasks.registry import build_task


class Diverged(UserError):
    """The loss became NaN or infinite (a learning rate far too large, most often): one error line naming the step,
    not a FloatingPointError traceback, for a run as for a sweep's point."""


class Interrupted(Exception):
    """Training stopped (Ctrl-C or SIGTERM) after a checkpoint was written; ``exit_code`` is 128 + the
    signal number (130 for Ctrl-C, 143 for SIGTERM).

    ``forced``: a second signal stopped it before that checkpoint was written (:class:`ForcedStop`); the
    message then names the checkpoint the run directory still holds (``last_checkpoint``, the step of the
    last one this run wrote or resumed from; None: none), since resuming continues from that one."""

    def __init__(
        self,
        step: int,
        run_dir: str,
        signum: int = signal.SIGINT,
        forced: bool = False,
        last_checkpoint: int | None = None,
    ):
        name = signal.Signals(signum).name
        if not forced:
            message = f"{name} at step {step}; checkpoint saved in {run_dir}: add resume=true to continue"
        elif last_checkpoint is None:
            message = (
                f"{name} again at step {step}: stopped without a checkpoint, and {run_dir} holds none yet: "
                "add resume=true to start it over"
            )
        else:
            message = (
                f"{name} again at step {step}: stopped without a checkpoint; {run_dir} holds the one of step "
                f"{last_checkpoint}: add resume=true to continue from it"
            )
        super().__init__(message)
        self.step = step
        self.run_dir = run_dir
        self.signum = int(signum)
        self.forced = forced
        self.last_checkpoint = last_checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __reduce__(self) -> tuple[Any, ...]:  # rebuilt from its arguments (a bench worker returns it)
        return (type(self), (self.step, self.run_dir, self.signum, self.forced, self.last_checkpoint))


class LostProcess(Exception):
    """Another process of a multi-process run stopped (killed, by the OOM killer or ``kill -9``; or failed with its
    own error), so this process's next collective failed (``cause``: what it said, in short,
    :func:`rlhf_zoo.runtime.communication_failure`), or, while the run was starting, the launcher stopped this
    process with SIGTERM after the other had ended (torchrun stops every process then). No checkpoint is
    written (one is a collective the lost process cannot join): the message names the one the run directory
    holds (``last_checkpoint``: the step of the last one this run wrote or resumed from; None: none, unless
    ``checkpointed`` says that the run directory holds one whose step this process does not know).

    ``step``: the step at which training stopped; None: the run was still starting (building its model, its
    reward, its process group), before its training loop. ``rank`` and ``world``: this process's place in the
    group; with 2 processes the lost one is the other. ``lost``: the ranks known to have ended (None: not known).
    """

    def __init__(
        self,
        step: int | None,
        run_dir: str,
        cause: str,
        last_checkpoint: int | None = None,
        rank: int = 0,
        world: int = 2,
        checkpointed: bool = False,
        lost: list[int] | None = None,
    ):
        if last_checkpoint is not None:
            resume = f"{run_dir} holds the checkpoint of step {last_checkpoint}: add resume=true to continue from it"
        elif checkpointed:
            resume = f"{run_dir} holds a checkpoint: add resume=true to continue from it"
        else:
            resume = f"{run_dir} holds no checkpoint yet: add resume=true to start it over"
        when = f"at step {step}" if step is not None else "while the run was starting"
        super().__init__(
            f"{lost_processes(rank, world, lost)} stopped {when} (killed, out of memory?, or failed with its own "
            f"error above), so this one (rank {rank}) stops too ({cause}); {resume}"
        )
        self.step = step
        self.run_dir = run_dir
        self.cause = cause
        self.last_checkpoint = last_checkpoint
        self.rank = rank
        self.world = world
        self.checkpointed = checkpointed
        self.lost = lost

    exit_code = 1

    def __reduce__(self) -> tuple[Any, ...]:  # rebuilt from its arguments, as Interrupted
        args = (self.step, self.run_dir, self.cause, self.last_checkpoint, self.rank, self.world, self.checkpointed)
        return (type(self), (*args, self.lost))


def prompts_for_step(prompts: list[str], step: int, batch: int, seed: int) -> list[str]:
    """The B prompts of a step (steps count from 0): consecutive slices of seeded per-epoch
    permutations of the prompt list. Stateless, so a resumed run draws exactly the same prompts."""
    n = len(prompts)
    perms: dict[int, torch.Tensor] = {}  # one permutation per epoch the step touches (not one per prompt)
    out = []
    for flat in range(step * batch, (step + 1) * batch):
        epoch, pos = divmod(flat, n)
        if epoch not in perms:
            perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out.append(prompts[int(perms[epoch][pos])])
    return out


def minibatches(num_groups: int, k: int) -> list[list[int]]:
    """k contiguous blocks of prompt groups (sizes differ by at most one). Contiguous, so that with
    several processes (global group g on process g % world) each process's blocks of its equal share
    make up the same global blocks as one process's."""
    return [list(range(i * num_groups // k, (i + 1) * num_groups // k)) for i in range(k)]


def fewer_minibatches(algo: Any, batch_prompts: int) -> list[str]:
    """A warning line when ``algo.minibatches``, set away from its default, is more than a step's prompts: a
    minibatch is split by prompt, so each pass takes ``batch_prompts`` minibatches of one prompt."""
    k = algo.needs().minibatches
    if k <= batch_prompts or not set_away_from_default(algo.cfg, "minibatches"):  # the default says nothing
        return []
    return [
        f"algo.minibatches={k} is more than train.batch_prompts={batch_prompts}: a minibatch is split by prompt, "
        f"so each pass takes {batch_prompts} minibatch{'es' if batch_prompts > 1 else ''} of one prompt"
    ]


def check_equal_shares(world: int, batch_prompts: int, minibatches: int, eval_prompts: int | None) -> None:
    """Several processes give one process's result only if each holds an equal share of every step's
    prompts, of every minibatch, and of the held-out prompts (None: evaluation is not split)."""
    if world == 1:
        return
    k = min(minibatches, batch_prompts)
    if batch_prompts % (world * k):
        what = f"{world} processes" + (f" × {k} minibatches" if k > 1 else "")
        raise UserError(
            f"train.batch_prompts={batch_prompts} does not split evenly over {what}: "
            f"{_multiples(batch_prompts, world * k)}"
        )
    if eval_prompts is not None and eval_prompts % world:
        raise UserError(
            f"{eval_prompts} evaluation prompts (train.eval_prompts) do not split evenly over {world} processes: "
            f"{_multiples(eval_prompts, world)}"
        )


def _multiples(value: int, of: int) -> str:
    """The nearest multiples of ``of`` around ``value`` that would do, for a refusal's line."""
    below = value // of * of
    return f"use a multiple of {of}, such as " + (f"{below} or {below + of}" if below else f"{of}")


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
    """One run: the algorithm, the task, the policy, the optimiser, and the loop of :meth:`fit`."""

    def __init__(
        self,
        cfg: DictConfig,
        algo: Algorithm,
        task: Task,
        policy: Policy,
        argv: list[str] | None = None,
        runtime: Runtime | None = None,
        held_lock: Any = None,
    ):
        """``held_lock``: the run directory's lock (:meth:`RunLog.lock`), taken by the caller before it
        loaded the model (a bench point does, so that nothing deletes the directory while it loads); the
        caller releases it. None: :meth:`begin` takes it and :meth:`end` releases it."""
        self.cfg = cfg
        self._held_lock = held_lock
        self.rt = runtime or runtime_for(cfg)
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
        self.sharded = self.rt.prepare_policy(policy, self.t.fsdp, anchor=self.needs.anchor, task=task.name)
        params = policy.trainable_parameters() if algo.trainable else []
        self.opt = torch.optim.AdamW(params, lr=self.t.lr, weight_decay=self.t.weight_decay) if params else None
        schedule = lr_lambda(self.t.lr_schedule, self.t.warmup_steps, self.t.steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule) if self.opt else None
        self.step = 0
        self.evaluated_step: int | None = None  # the step of the last evaluation in metrics.jsonl
        self.elapsed = 0.0
        self._saved_at = time.monotonic()
        self.stop = StopRequests()  # active while fit runs
        self.train_acc: dict[str, list[float]] = defaultdict(list)

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train ``train.steps`` steps (Best-of-N: none), evaluating and checkpointing; returns the summary."""
        # A stop signal from here on ends the run at a step boundary, with a checkpoint.
        with StopRequests() as self.stop:
            try:
                self.begin()
                return self.finish(self.run_steps())
            except Exception as e:  # another process gone: one line naming the checkpoint to resume from
                if (cause := communication_failure(e)) is None:
                    raise
                checkpointed = self.saved_step is None and bool(self.cfg.resume) and checkpoint_to_resume(self.log.dir)
                raise LostProcess(
                    self.step, self.cfg.run_dir, cause, self.saved_step, self.rt.rank, self.rt.world, checkpointed
                ) from e
            finally:
                self.end()

    def run_steps(self) -> dict[str, Any] | None:
        """The steps from the current one to ``train.steps``; returns the last evaluation (None: none ran)."""
        steps = self.t.steps if self.algo.trainable else 0
        # Step 0's evaluation, or one that a failure interrupted before the run was resumed
        last = self.evaluate() if self.eval_due(self.step) and self.evaluated_step != self.step else None
        bar = step_bar(self.t.progress and steps > self.step and self.rt.is_main, steps, self.step, self.algo.name)
        try:
            while self.step < steps:
                t0 = time.perf_counter()
                m = self.train_step()  # rollout → rewards → log-probs → loss → step → hooks
                self.elapsed += time.perf_counter() - t0
                for key, v in m.items():
                    self.train_acc[key].append(v)
                self.rt.track(m, self.step)  # TensorBoard / W&B: training metrics every step
                _advance(bar, m)
                if self.eval_due(self.step):
                    last = self.evaluate()
                saved = self.step < steps and self.checkpoint_due()
                if saved:
                    self.save()
                if (signum := self.rt.any_signal(self.stop.signum)) is not None:  # this process's or another's
                    if not saved:  # a periodic checkpoint of this step is the stop's: not written twice
                        self.save()
                    raise Interrupted(self.step, self.cfg.run_dir, signum)
        except KeyboardInterrupt as e:  # not a second signal (ForcedStop): resumable
            signum = getattr(e, "signum", None) or self.stop.signum or signal.SIGINT
            if isinstance(e, ForcedStop) or self._mid_step:  # no checkpoint: say which one remains
                raise Interrupted(self.step, self.cfg.run_dir, signum, True, self.saved_step) from None
            self.save()
            raise Interrupted(self.step, self.cfg.run_dir, signum) from None
        except Interrupted:  # a stop signal's: its checkpoint is written (not again as a failure's below)
            raise
        except Exception as e:
            # A failing reward or a bad prompt mid-run: keep the last completed step resumable (the
            # failed step or evaluation has put back its counters, :meth:`_undone_on_failure`), unless
            # the failed step already changed the weights (the last periodic checkpoint then stays). Not
            # with several processes: the failure may be this process's alone while the others wait in
            # their next collective, so a checkpoint (a collective of every process) would not match it.
            # Nor after a failed write to the run directory (a full disk): a checkpoint would fail alike.
            resumable = self.algo.trainable and self.step > 0 and not self._mid_step and not self.rt.distributed
            if resumable and not isinstance(e, WriteError):
                self.save()
                # a failing reward, fixed, continues; a diverged loss needs another train.lr: another run
                continues = isinstance(e, UserError) and not isinstance(e, Diverged) and len(e.args) == 1
                if continues and self._held_lock is None:  # not a bench's or sweep's point (the same command goes on)
                    e.args = (
                        f"{e}; the run stopped after step {self.step}, whose checkpoint {self.cfg.run_dir} holds: fix "
                        "that, then add resume=true to continue from it",
                    )
            raise
        finally:
            if bar is not None:
                bar.close()
        return last

    def train_step(self) -> dict[str, float]:
        """One step on this process's share of the step's prompts; returns metrics averaged over processes."""
        with self._undone_on_failure(self.costs, self.cache):
            return self._train_step()

    def _train_step(self) -> dict[str, float]:
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
        # Each metric: its minibatches' values weighted by their size (prompts), a mean over the step's prompts
        # also when the minibatches are unequal (one process, a batch that does not split evenly).
        metrics: dict[str, list[tuple[float, int]]] = defaultdict(list)
        k = min(self.needs.minibatches, len(prompts))
        blocks = minibatches(len(data.prompts), k) if k > 1 else [None]
        for _ in range(self.needs.epochs):
            for groups in blocks:
                size = len(groups) if groups is not None else 1
                # The forward pass with gradient, the loss, backward and the optimiser step are the
                # "update" phase; "logprobs" is collect's no-gradient scoring.
                with self.costs.timed("update"):
                    batch = make_batch(self.needs, self.policy, data, groups, shard=self.shard)
                    loss, m = self.algo.loss(batch)
                    grad_norm = self.optimise(loss)
                if grad_norm is not None:
                    metrics["train/grad_norm"].append((grad_norm, size))
                metrics["loss/total"].append((float(loss.detach()), size))
                for key, v in m.items():
                    metrics[key].append((float(v), size))
        self.sched.step()
        self.step += 1
        self.algo.after_step(self.policy, self.step)
        self._mid_step = False
        metrics["train/reward_proxy"].append((float(data.rewards.mean()), 1))
        return self.rt.mean_metrics({key: _weighted_mean(v) for key, v in metrics.items()})

    def optimise(self, loss: torch.Tensor) -> float | None:
        """Backward, gradients averaged across processes, clipped; one optimiser step. Returns the
        gradient norm before clipping (None when clipping is off)."""
        if not torch.isfinite(loss):
            raise Diverged(
                f"training diverged: the loss is {loss.item()} at step {self.step + 1} (train.lr={self.t.lr}): "
                "a smaller train.lr usually helps"
            )
        params = self.policy.trainable_parameters()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.rt.average_gradients(params)
        norm = self.rt.clip_grad_norm(params, self.t.grad_clip) if self.t.grad_clip > 0 else None
        self.opt.step()
        self._mid_step = True  # the weights have left the last completed step's
        return norm

    def evaluate(self) -> dict[str, Any]:
        """Evaluate on held-out prompts, log one line to ``metrics.jsonl`` (and the trackers); returns it."""
        was_training = getattr(self.policy, "training", False)
        if hasattr(self.policy, "eval"):
            self.policy.eval()
        with self._undone_on_failure(self.evaluator.costs):
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
        self.evaluated_step = self.step
        self.save_samples()
        self.rt.track({k: v for k, v in record.items() if k not in train}, self.step)  # train/*: tracked per step
        return record

    def save_samples(self) -> None:
        """After an evaluation: its first ``train.save_samples`` held-out prompts with their completions and
        rewards (:func:`~rlhf_zoo.runlog.sample_rows` of what the evaluator scored) → ``samples.jsonl``,
        gathered from every process in prompt order (every process calls this; on the testbed each holds
        the whole enumeration)."""
        t, ev = self.t, self.evaluator
        if not t.save_samples or ev.last is None:
            return
        rollout, proxy, gold = ev.last
        positions = list(range(rollout.num_groups)) if self.task.oracle is not None else ev.positions
        rows = sample_rows(rollout, proxy, gold, positions, t.save_samples, t.eval_samples)
        gathered = {(r["position"], r["sample"]): r for part in self.rt.gather_objects(rows) for r in part}
        if self.rt.is_main:
            ordered = [gathered[k] for k in sorted(gathered)]
            self.log.log_samples(self.step, [{k: v for k, v in r.items() if k != "position"} for r in ordered])

    def eval_due(self, step: int) -> bool:
        """Whether ``step`` ends with an evaluation: the start, every ``train.eval_every`` steps, the last."""
        return step == 0 or step % self.t.eval_every == 0 or step == self.t.steps

    @contextmanager
    def _undone_on_failure(self, costs: Costs, cache: BaseCache | None = None) -> Iterator[None]:
        """If the block fails before the weights change, ``costs`` (and the base cache's entries) are put
        back as they were, so that a checkpoint written after the failure holds the last completed step's
        and the resumed run pays for the failed work once, as an uninterrupted run does."""
        counters, entries = costs.copy(), dict(cache.entries) if cache else None
        try:
            yield
        except BaseException:
            if not self._mid_step:
                for f in fields(Costs):  # counters and timings; the probes stay
                    if f.name != "probes":
                        setattr(costs, f.name, getattr(counters, f.name))
                if cache:
                    cache.entries = entries
            raise

    # -- start, end, checkpoints ---------------------------------------------------------------------
    _mid_step = False

    def checkpoint_due(self) -> bool:
        """Every ``train.checkpoint_every`` steps, and when ``train.checkpoint_minutes`` have passed since
        the last checkpoint (or the start): the most a ``kill -9`` can lose. Decided alike in every process."""
        every, minutes = self.t.checkpoint_every, self.t.checkpoint_minutes
        by_steps = bool(every) and self.step % every == 0
        by_time = minutes > 0 and time.monotonic() - self._saved_at >= 60 * minutes
        return by_steps or self.rt.any_process(by_time)

    saved_step: int | None = None  # the step of the checkpoint in the run directory (None: none yet)

    def save(self) -> None:
        checkpoint.save(self)  # sets saved_step
        self._saved_at = time.monotonic()

    def restore(self) -> int:
        self.saved_step = checkpoint.restore(self)
        return self.saved_step

    def begin(self) -> None:
        """Take the run directory (one run at a time), resume from its checkpoint (``resume=true``) or
        start a fresh run there; write the resolved config and the provenance (``meta.json``: a resumed run
        keeps the first start's and appends its own to ``resumes``); start the trackers."""
        cfg = self.cfg
        self._lock = self.log.lock() if self.rt.is_main and self._held_lock is None else None
        if self.rt.is_main:
            self.log.clear_interrupted_writes()
        self.rt.barrier()  # the checkpoint is in place before any process looks for it
        resumed = cfg.resume and self.log.has_checkpoint()
        check_run_dir(cfg)  # again, with the lock held: checked first by run(), before anything was built
        if resumed:
            self.restore()
            if self.step >= (self.t.steps if self.algo.trainable else 0):  # said "resuming ... from step 3000"
                self.say(f"resume=true: {cfg.run_dir} has run all its {self.step} steps: nothing left to train")
            else:
                self.say(f"resuming {cfg.run_dir} from step {self.step} (its last checkpoint)")
        else:
            if cfg.resume:
                self.say(f"resume=true: no checkpoint in {cfg.run_dir}, so nothing to resume: starting at step 0")
            if cfg.resume and self.rt.is_main:
                self.log.truncate_metrics(-1)  # nothing to resume: start over from a clean log
                self.log.remove_summary()  # the run before's
            if self.needs.anchor:
                self.policy.update_anchor(1.0)  # π_anchor starts at π (= π_ref)
        self.rt.barrier()  # every process has checked the run directory before anything is written
        prompts, lines = prompt_report(self.task, self.t.eval_prompts)
        for line in lines:
            self.say(line)
        for line in [*self.algo.unused_settings(), *fewer_minibatches(self.algo, self.t.batch_prompts)]:
            self.say(f"warning: {line}")
        if self.rt.is_main:
            # resume=false: the file re-runs the run as it is (config=...), and resume=true resumes it
            self.log.write_config(to_yaml(OmegaConf.merge(cfg, {"resume": False})))
            sharded = {"sharded": "fsdp2"} if self.sharded else {}
            this = {**provenance(self.argv), "processes": self.rt.world, **sharded}
            first = self.log.read_meta() if resumed else None
            if first:  # the first start's provenance stays; this start is recorded beside it
                resumes = [*first.get("resumes", []), {**this, "step": self.step}]
                self.log.write_meta({**first, "resumes": resumes})
            else:
                inputs = input_digests(_flat_config(cfg))
                self.log.write_meta({**this, "prompts": prompts, "inputs": inputs})
        self.rt.start_trackers(f"{self.algo.name}-{self.task.name}", _flat_config(cfg))

    def end(self) -> None:
        """Release the run directory."""
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def say(self, message: str) -> None:
        """One line on stderr from the main process (what the run is doing, not a metric)."""
        if self.rt.is_main:
            print(f"rlhf-zoo: {message}", file=sys.stderr, flush=True)

    def finish(self, last: dict[str, Any] | None) -> dict[str, Any]:
        """The final checkpoint and ``summary.json`` (the last evaluation, costs and times).

        ``last`` is None when no evaluation ran here (a run resumed after its last step): the last line of
        ``metrics.jsonl`` is then that evaluation, less its ``step`` key, which :meth:`evaluate` returns
        without (the summary has ``steps``), so that the summary equals an uninterrupted run's."""
        if last is None:
            records = self.log.read_metrics()
            last = {k: v for k, v in records[-1].items() if k != "step"} if records else self.evaluate()
        if self.algo.trainable:
            self.save()
        summary = {
            "algo": self.algo.name,
            "task": self.task.name,
            "steps": self.step,
            "seed": self.cfg.seed,
            **last,
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


def _weighted_mean(values: list[tuple[float, int]]) -> float:
    """The mean of (value, weight) pairs weighted by their weights."""
    return sum(v * w for v, w in values) / sum(w for _, w in values)


def _flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The configuration as dotted keys for the trackers and :mod:`rlhf_zoo.inputs` (scalars as they are, anything
    else as text)."""
    from rlhf_zoo.config import flatten

    flat = flatten(OmegaConf.to_container(cfg), "the configuration")
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}


def check_run_dir(cfg: DictConfig) -> None:
    """Refuse, with a one-line UserError, a run that its ``run_dir`` cannot take: a sweep's or a bench's folder,
    another run's directory without ``resume=true``, or ``resume=true`` with settings that differ from the
    directory's ``config.yaml``. With a checkpoint or without (a finished sweep's runs keep none), resume=true
    continues the run of the directory's config.yaml: it never starts another run over that one's. Reads a few
    files, builds nothing."""
    d = Path(cfg.run_dir)
    if (d / "bench.json").is_file():  # rlhf_zoo.bench.records.BENCH: the run would hide the points from compare
        raise UserError(f"run_dir={cfg.run_dir} is a sweep's or a bench's folder (its bench.json): name another folder")
    suite = next((c for c in sorted(d.glob("*/bench.json")) if c.is_file()), None) if d.is_dir() else None
    if suite is not None:  # a bench's out= folder: the run's files would mix with its pages
        raise UserError(f"run_dir={cfg.run_dir} holds a bench's suites ({suite.parent.name}/): name another folder")
    its = d / "config.yaml"  # a path: run_dir=runs/x/ names runs/x/config.yaml, not runs/x//
    existing = None  # read by resume=true only, which continues the run it describes
    if cfg.resume and its.is_file():
        import yaml

        try:
            existing = its.read_text(encoding="utf-8")
            yaml.safe_load(existing)
        except (yaml.YAMLError, UnicodeDecodeError) as e:  # hand-edited: a ParserError traceback
            raise UserError(
                f"resume=true but {its} does not read as YAML ({yaml_error(e)}): restore it, or choose another run_dir"
            ) from None
    if existing is not None and (differences := _config_difference(existing, to_yaml(cfg))):
        raise UserError(
            f"resume=true but {its} differs from this run's config ({differences}): resume it with its own "
            f"settings (rlhf-zoo train config={its} resume=true), or choose another run_dir"
        )
    if existing is not None:
        _check_inputs_unchanged(cfg, d)
    if not cfg.resume and (d / "metrics.jsonl").exists():
        if in_use(d):  # resume=true would only be refused next: the run is still going
            raise UserError(f"{cfg.run_dir} is in use by another run; wait for it or choose another run_dir")
        raise UserError(
            f"{cfg.run_dir} already holds a run: pass resume=true to continue it, or choose another run_dir"
        )


def _check_inputs_unchanged(cfg: DictConfig, d: Path) -> None:
    """Refuse ``resume=true`` when a file of the user's that the run reads (its ``py:`` reward, its reward model's or
    model's folder, its prompts: :mod:`rlhf_zoo.inputs`) changed since the run started: the run would go on as
    another run, its metrics half of one and half of the other."""
    from rlhf_zoo.io import read_json

    meta = read_json(d / "meta.json")
    before = meta.get("inputs") if isinstance(meta, dict) else None
    if not isinstance(before, dict):
        return
    settings = _flat_config(cfg)
    now = input_digests(settings)
    if edited := changed(before, now):
        k = edited[0]
        raise UserError(
            f"resume=true but {k}={settings[k]} changed since this run started ({before[k]} then, {now[k]} now): "
            "restore it to continue the run, or start another run_dir with it"
        )


CHOSEN = ("algo.name", "task.name")  # algo=NAME, task=NAME


def _config_difference(saved: str, now: str, shown: int = 3) -> str:
    """The first settings in which two resolved configs (YAML) differ, as ``key: saved → now`` ("": none; the
    algorithm's and the task's names before the rest), but for ``resume``, the settings without effect on the
    results (:data:`rlhf_zoo.config.NO_EFFECT`: a run may resume without its progress bar, or with another
    checkpoint cadence) and ``run_dir``: the saved config
    is the one in the run directory being resumed, whichever way its path is written (``runs/x/``, ``./runs/x``,
    an absolute path, from another folder) or wherever the directory was moved."""
    import yaml

    def flat(node: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(node, dict):
            return {prefix[:-1]: node}
        return {k: v for key, sub in node.items() for k, v in flat(sub, f"{prefix}{key}.").items()}

    a, b = flat(yaml.safe_load(saved) or {}), flat(yaml.safe_load(now) or {})
    keys = [k for k in sorted(set(a) | set(b)) if k not in ("resume", "run_dir", *NO_EFFECT) and a.get(k) != b.get(k)]
    keys.sort(key=lambda k: k not in CHOSEN)  # another algorithm or task first: it explains the settings after it
    text = ", ".join(f"{k}: {a.get(k)} → {b.get(k)}" for k in keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _advance(bar: Any, metrics: dict[str, float]) -> None:
    if bar is not None:
        # The postfix first: update() draws the line, which then shows this step's reward.
        bar.set_postfix(reward=f"{metrics['train/reward_proxy']:.3f}", refresh=False)
        bar.update(1)


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


def runtime_for(cfg: DictConfig) -> Runtime:
    """The runtime a config asks for: its ``device`` and its tracker (``train.log_with``)."""
    return Runtime(cfg.device, log_with=cfg.train.log_with, project_dir=cfg.run_dir)


def run(cfg: DictConfig, argv: list[str] | None = None, held_lock: Any = None) -> dict[str, Any]:
    """Train (or, for Best-of-N, only evaluate) one configuration; returns the summary. ``held_lock``:
    see :class:`Trainer`."""
    check_run_dir(cfg)  # before a model loads
    rt = None
    try:
        if launched_world_size() > 1:  # the rendezvous waits for every process: a lost one never comes
            with told_if_stuck(lambda signum, ended: _stopped_in_rendezvous(cfg.run_dir, signum, ended)):
                rt = runtime_for(cfg)
        else:
            rt = runtime_for(cfg)
        algo, task, policy = build(cfg, rt)
        trainer = Trainer(cfg, algo, task, policy, argv=argv, runtime=rt, held_lock=held_lock)
    except (Exception, KeyboardInterrupt) as e:  # another process lost while this one still started
        lost = lost_while_starting(e, cfg.run_dir, rt)
        if lost is None:
            raise
        raise lost from e
    return trainer.fit()


def _stopped_in_rendezvous(run_dir: str, signum: int, ended: list[int] | None) -> tuple[str, int]:
    """The line and exit code of a process that a stop signal found waiting for the others to join the process
    group (:func:`rlhf_zoo.signals.told_if_stuck`): as the command says them (``rlhf_zoo.cli``)."""
    if not ended:
        return f"rlhf-zoo: interrupted ({signal.Signals(signum).name})", 128 + signum
    cause = f"{LAUNCHER_STOP}, while this one waited for it in the process group's rendezvous"
    world, rank = launched_world_size(), launched_rank()
    lost = LostProcess(None, run_dir, cause, None, rank, world, checkpoint_to_resume(run_dir), ended)
    return f"rlhf-zoo: error: {printable(str(lost))}", lost.exit_code


def lost_while_starting(e: BaseException, run_dir: str, rt: Runtime | None = None) -> LostProcess | None:
    """``e`` as a :class:`LostProcess` (with no step: the run was starting) if it says that another process of a
    launch is gone: a collective's communication failure (:func:`rlhf_zoo.runtime.communication_failure`), or
    torchrun's SIGTERM after a process of the launch ended (:attr:`rlhf_zoo.signals.StopSignal.ended`); None for
    any other error or stop (the user's Ctrl-C or SIGTERM stays "interrupted")."""
    rank, world = (rt.rank, rt.world) if rt is not None else (launched_rank(), launched_world_size())
    if world < 2:
        return None
    ended = getattr(e, "ended", None) if isinstance(e, KeyboardInterrupt) else None
    cause = LAUNCHER_STOP if ended else communication_failure(e) if isinstance(e, Exception) else None
    if cause is None:
        return None
    return LostProcess(None, run_dir, cause, None, rank, world, checkpoint_to_resume(run_dir), ended or None)
