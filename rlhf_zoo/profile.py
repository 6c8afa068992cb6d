"""``rlhf-zoo profile``: seconds per step split into generate / reward / log-probs / update,
completions per second, peak memory and the model FLOP utilisation of the update, for each
objective on the same model, prompts, batch and generation length.

    rlhf-zoo profile task=sentiment train.batch_prompts=16 model.max_new_tokens=24 steps=2
    rlhf-zoo profile algos=jbond,reinforce,sft out=profile.json task=sentiment model.name=tiny

Each objective runs in its own process (so peak memory is its own): ``warmup`` untimed steps, then
``steps`` timed ones through the real training loop (:meth:`rlhf_zoo.train.Trainer.train_step`),
no evaluation (so no gold reward is built or loaded); on a terminal one bar counts every objective's steps as
they go. The phases:

- ``generate``: sampling (policy, and reference or anchor samples where the objective draws them);
- ``reward``: proxy reward calls;
- ``logprobs``: no-gradient scoring (reference / anchor log-probs, quantiles);
- ``update``: the policy's forward pass with gradient, the backward pass and the optimiser step.

Best-of-N is not trained: its "step" is what it costs to produce the batch's outputs (N reference
samples per prompt and their rewards). ``sft`` is not an objective but the memory baseline of
"plain fine-tuning": the policy samples the batch and takes one supervised step on it, with no
reference, anchor or quantiles. Peak memory is the process's peak resident set (CPU) or
``torch.cuda.max_memory_allocated`` (GPU).

MFU of the update = FLOPs of the timed updates (counted by ``torch.utils.flop_counter`` on the
warm-up steps, scaled by the token positions the timed updates ran on: :class:`UpdateFlops`) / their
seconds / peak FLOP/s. The peak is the datasheet dense figure for known GPUs, and
on CPU a measured large matmul in the run's dtype and thread count (so a CPU MFU says how close
the update comes to what this machine's matmul achieves, not to a vendor figure).
"""

from __future__ import annotations

import contextlib
import gc
import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from rlhf_zoo.errors import UserError
from rlhf_zoo.options import split_options

PHASES = ("generate", "reward", "logprobs", "update")
DEFAULT_ALGOS = ("best_of_n", "reinforce", "ppo_lite", "bond", "jbond")
SFT = "sft"


@dataclass
class ProfileOptions:
    """The ``profile`` command's own options (every other ``key=value`` is a config override).

    Attributes:
        algos: the objectives to profile, each in its own process (``sft``: the plain fine-tuning baseline).
        steps: timed steps per objective.
        warmup: untimed steps before them (the update's FLOPs are counted on these).
        out: a JSON file for the figures (none: only the table is printed).
    """

    algos: list[str] = field(default_factory=lambda: list(DEFAULT_ALGOS))
    steps: int = 2
    warmup: int = 1
    out: str | None = None


# Dense datasheet peaks (FLOP/s) by device-name fragment and weight dtype; the most specific fragment
# that the device name contains wins (``"H100 PCIe"`` before ``"H100"``). NVIDIA's datasheets print
# tensor-core figures "with sparsity": the dense figure is half of it. Sources: the NVIDIA H100 Tensor Core
# GPU datasheet (SXM: bf16 1,979 with sparsity, fp32 67 TFLOPS; PCIe: 1,513 and 51; NVL: 1,671 and 60), the
# NVIDIA H200 Tensor Core GPU datasheet (SXM: 1,979 and 67; NVL: 1,671 and 60), the NVIDIA A100 datasheet
# (bf16 312 dense, fp32 19.5). ``nvidia-smi`` names the SXM parts plainly ("NVIDIA H100 80GB HBM3",
# "NVIDIA H200").
GPU_PEAKS = {
    "H100 PCIe": {"bfloat16": 756e12, "float16": 756e12, "float32": 51e12},
    "H100 NVL": {"bfloat16": 835e12, "float16": 835e12, "float32": 60e12},
    "H100": {"bfloat16": 989e12, "float16": 989e12, "float32": 67e12},
    "H200 NVL": {"bfloat16": 835e12, "float16": 835e12, "float32": 60e12},
    "H200": {"bfloat16": 989e12, "float16": 989e12, "float32": 67e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 19.5e12},
}
GPU_PEAK_SOURCES = {
    "H100": "NVIDIA H100 Tensor Core GPU datasheet",
    "H200": "NVIDIA H200 Tensor Core GPU datasheet",
    "A100": "NVIDIA A100 Tensor Core GPU datasheet",
}


def datasheet_peak(gpu: str, dtype_name: str) -> tuple[float, str] | None:
    """(dense FLOP/s, source) for the GPU called ``gpu`` in ``dtype_name``, or None when it is not listed."""
    for key in sorted(GPU_PEAKS, key=len, reverse=True):
        if key in gpu:
            source = GPU_PEAK_SOURCES[key.split()[0]]
            return GPU_PEAKS[key][dtype_name], f"{gpu}: {source}, dense {dtype_name} ({key})"
    return None


def peak_flops(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(FLOP/s, where the figure comes from) for MFU."""
    name = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        return datasheet_peak(gpu, name) or (float("nan"), f"{gpu}: no datasheet peak known")
    n = 1024
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        a @ b
        reps += 1
    rate = 2 * n**3 * reps / (time.perf_counter() - t0)
    threads = torch.get_num_threads()
    return rate, f"measured {n}x{n} {name} matmul, {threads} thread{'s' * (threads != 1)}"


class UpdateFlops:
    """The FLOPs of the ``update`` phases, as a probe of the trainer's :class:`~rlhf_zoo.rollout.Costs`
    (``costs.probe("update", counter.probe)``).

    ``torch.utils.flop_counter`` slows what it counts, so it counts only while :attr:`counting` (the
    warm-up steps). Every update, counted or timed, also adds the token positions its forward passes run
    on (rows × length of each call of ``model``, read by a forward pre-hook), so the timed updates'
    FLOPs are :meth:`flops_of_timed`: the counted FLOPs per position times the timed positions. The
    FLOPs of a transformer's matmuls are proportional to the positions; taking the warm-up's FLOPs per
    *step* instead would be off by the difference in completion lengths between warm-up and timed steps.
    Without a ``model`` (the tabular testbed) it falls back to the counted FLOPs per step.
    """

    def __init__(self, model: torch.nn.Module | None = None) -> None:
        self.flops = 0  # counted
        self.counted_updates = 0
        self.counted_positions = 0
        self.timed_updates = 0
        self.timed_positions = 0
        self.counting = True
        self._in_update = False
        self._hook = model.register_forward_pre_hook(self._seen, with_kwargs=True) if model is not None else None

    def _seen(self, module: Any, args: tuple, kwargs: dict) -> None:
        if not self._in_update:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, torch.Tensor):
            embeds = kwargs.get("inputs_embeds")
            ids = embeds[..., 0] if isinstance(embeds, torch.Tensor) else None
        if ids is None:
            return
        if self.counting:
            self.counted_positions += ids.numel()
        else:
            self.timed_positions += ids.numel()

    @contextlib.contextmanager
    def probe(self):
        from torch.utils.flop_counter import FlopCounterMode

        self._in_update = True
        try:
            if self.counting:
                mode = FlopCounterMode(display=False)
                with mode:
                    yield
                self.flops += mode.get_total_flops()
                self.counted_updates += 1
            else:
                yield
                self.timed_updates += 1
        finally:
            self._in_update = False

    def flops_of_timed(self) -> float:
        """The timed updates' FLOPs in all (0 when none were counted)."""
        if not self.flops:
            return 0.0
        if self.counted_positions and self.timed_positions:
            return self.flops / self.counted_positions * self.timed_positions
        return self.flops / max(1, self.counted_updates) * self.timed_updates

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


def register_probes(costs: Any, device: torch.device, counter: UpdateFlops | None) -> None:
    """Set the probes around the phases of ``costs`` (a :class:`~rlhf_zoo.rollout.Costs`): ``counter``, if given,
    counts the update's FLOPs; on a GPU every phase also waits for the device before its clock stops. CUDA runs
    kernels asynchronously, so a phase timed to its last launch would leave its unfinished work to whichever
    later phase first waits (the reference pass's to the update, the optimiser step's to the next generation)."""
    for phase in PHASES:
        inner = counter.probe if counter is not None and phase == "update" else None
        costs.probe(phase, _synced(inner, device) if device.type == "cuda" else inner)


def _synced(inner: Any, device: torch.device) -> Any:
    @contextlib.contextmanager
    def probe():
        with inner() if inner is not None else contextlib.nullcontext():
            yield
        torch.cuda.synchronize(device)

    return probe


def _generators(seed: int, step: int, name: str, prompts: list[str]) -> list[torch.Generator]:
    from rlhf_zoo.rng import Streams

    return Streams(seed, step).per_prompt(name, range(len(prompts)))


def _sft_step(trainer, prompts: list[str], step: int) -> None:
    """Plain fine-tuning: sample the batch from π, one supervised step on it (memory baseline)."""
    from rlhf_zoo.rollout import sample

    policy, costs = trainer.policy, trainer.costs
    gens = _generators(trainer.cfg.seed, step, "policy", prompts)
    with torch.no_grad():
        rollout = sample(policy, prompts, trainer.needs.samples, "policy", gens, costs)
    with costs.timed("update"):
        logp = policy.logprobs(rollout, role="policy")
        loss = -(logp * rollout.response_mask).sum() / rollout.response_mask.sum()
        trainer.opt.zero_grad(set_to_none=True)
        loss.backward()
        trainer.opt.step()  # on a GPU the update's probe waits for it (register_probes)


class _Timing(NamedTuple):
    """Figures per timed step of :meth:`_Subject.timed`."""

    wall: float  # seconds of the whole step
    sec: dict[str, float]  # seconds by phase (:data:`PHASES`)
    completions: float
    update_flops: float


@dataclass
class _Subject:
    """One objective built for profiling in this process: its trainer, and whether it is the plain fine-tuning
    baseline (``sft``, built as reinforce)."""

    trainer: Any
    sft: bool
    load_s: float  # seconds to build the task and policy (models loaded)

    @classmethod
    def build(cls, rest: list[str]) -> _Subject:
        """The objective that ``rest`` (``algo=...`` and config overrides) names, ready to step: an anchored
        objective's anchor set to the policy; the baseline without a frozen reference copy; a GPU's peak memory
        counted from here."""
        from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config
        from rlhf_zoo.runtime import Runtime
        from rlhf_zoo.train import Trainer, build

        sft = any(a == f"algo={SFT}" for a in rest)
        if sft:
            rest = [a for a in rest if a != f"algo={SFT}"] + ["algo=reinforce"]
        cfg = load_config([*rest, "train.progress=false", BUILD_ONLY_RUN_DIR])  # nothing is written there
        if cfg.task.get("gold") is not None:  # only evaluations score the gold reward, and none runs here: a first
            cfg.task.gold = None  # profile built the gold model (minutes, silently) and spent memory on it
        rt = Runtime(cfg.device)
        t0 = time.perf_counter()
        algo, task, policy = build(cfg, rt)
        load_s = time.perf_counter() - t0
        trainer = Trainer(cfg, algo, task, policy, runtime=rt)
        if trainer.needs.anchor and not sft:
            policy.update_anchor(1.0)
        if sft and getattr(policy, "_ref_model", None) is not None:
            # Built as reinforce, a full-fine-tuning policy holds a frozen reference copy (HFPolicy); plain
            # fine-tuning has none, and the baseline's peak memory must not count one.
            policy._ref_model = None
            gc.collect()
        if rt.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        return cls(trainer, sft, load_s)

    @property
    def device(self) -> torch.device:
        return self.trainer.rt.device

    def step(self, i: int) -> None:
        """Step ``i``: a training step, the baseline's, or Best-of-N's outputs for the step's prompts."""
        from rlhf_zoo.rollout import best_of_n_outputs
        from rlhf_zoo.train import prompts_for_step

        trainer = self.trainer
        cfg, algo = trainer.cfg, trainer.algo
        prompts = prompts_for_step(trainer.task.train_prompts, i, cfg.train.batch_prompts, cfg.seed)
        if self.sft:
            _sft_step(trainer, prompts, i)
        elif algo.trainable:
            trainer.train_step()
        else:
            gens = _generators(cfg.seed, i, "bon", prompts)
            best_of_n_outputs(trainer.policy, trainer.task, prompts, algo.cfg.n, 1, generator=gens, costs=trainer.costs)

    def timed(self, warmup: int, steps: int) -> _Timing:
        """``warmup`` untimed steps (the update's FLOPs counted on them), then ``steps`` timed ones; their
        figures per timed step."""
        costs = self.trainer.costs
        model = getattr(self.trainer.policy, "model", None)
        counter = UpdateFlops(model if isinstance(model, torch.nn.Module) else None)
        register_probes(costs, self.device, counter)
        for i in range(warmup):
            self.step(i)
            _progress(i + 1, warmup + steps)
        counter.counting = False  # the timed updates only add their positions
        costs.seconds.clear()
        completions0 = costs.completions
        self._sync()
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            self.step(i)
            _progress(i + 1, warmup + steps)
        self._sync()
        wall = (time.perf_counter() - t0) / steps
        counter.close()
        return _Timing(
            wall=wall,
            sec={p: costs.seconds.get(p, 0.0) / steps for p in PHASES},
            completions=(costs.completions - completions0) / steps,
            update_flops=counter.flops_of_timed() / steps,
        )

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def figures(self, timed: _Timing) -> dict[str, Any]:
        """The objective's row of the profile from its :meth:`timed` seconds: the phases' split, completions
        per second, peak memory and the update's MFU against :func:`peak_flops`."""
        wall, sec, completions, update_flops = timed
        if self.device.type == "cuda":
            peak_gb = torch.cuda.max_memory_allocated() / 2**30
        else:
            peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        dtype = getattr(getattr(self.trainer.policy, "model", None), "dtype", torch.float32)
        peak, peak_source = peak_flops(self.device, dtype)
        update_rate = update_flops / sec["update"] if sec["update"] > 0 and update_flops else 0.0
        return {
            "algo": SFT if self.sft else self.trainer.cfg.algo.name,
            "step_s": wall,
            **{f"{p}_s": v for p, v in sec.items()},
            "other_s": max(0.0, wall - sum(sec.values())),
            "completions_per_step": completions,
            "completions_per_s": completions / wall,
            "generate_share": sec["generate"] / wall,
            "peak_memory_gb": peak_gb,
            "update_flops": update_flops,
            "update_flops_per_s": update_rate,
            "mfu_update": update_rate / peak if update_rate else 0.0,
            "peak_flops": peak,
            "peak_flops_source": peak_source,
            "load_s": self.load_s,
            "device": str(self.device),
            "dtype": str(dtype).replace("torch.", ""),
            "threads": torch.get_num_threads(),
        }


def worker(args: list[str]) -> dict[str, Any]:
    """Profile one objective in this process; returns the figures."""
    opts, rest = split_options(args, ProfileOptions, "profile")
    subject = _Subject.build(rest)
    return subject.figures(subject.timed(opts.warmup, opts.steps))


ERROR_LINE = "rlhf-zoo: error: "
PROGRESS_LINE = "rlhf-zoo-progress: "  # an objective's process after each step: "done/total" (read, not shown)


def run_in_subprocess(target: str, args: list[str], on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run ``python -m target args`` (``python target args`` when ``target`` is a ``.py`` file) and
    parse the JSON on its last stdout line. A process that ends with exit code 2 after an error line (bad
    input, :func:`_worker_main`) raises that line's :class:`UserError`. ``on_progress`` receives the steps done
    of each progress line the process writes on stderr (:data:`PROGRESS_LINE`), as it writes it."""
    how = [target] if target.endswith(".py") else ["-m", target]
    proc = subprocess.Popen([sys.executable, *how, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said: list[str] = []

    def read_stderr() -> None:
        for line in proc.stderr:
            if line.startswith(PROGRESS_LINE):
                if on_progress is not None:
                    on_progress(int(line[len(PROGRESS_LINE) :].partition("/")[0]))
            else:
                said.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        stdout = proc.stdout.read()
        proc.wait()
    finally:
        if proc.poll() is None:  # interrupted here (Ctrl-C): the process goes too
            proc.kill()
            proc.wait()
        reader.join()
    stderr = "".join(said)
    errors = [line for line in stderr.splitlines() if line.startswith(ERROR_LINE)]
    if proc.returncode == 2 and errors:  # the user's input, as the process said it (:func:`_worker_main`)
        raise UserError(errors[-1][len(ERROR_LINE) :])
    if proc.returncode != 0:
        raise RuntimeError(f"{target} {' '.join(args)} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def profile_rows(algos: list[str], rest: list[str], steps: int, warmup: int) -> list[dict[str, Any]]:
    """Each objective's row, profiled in its own process, under one bar over every objective's steps (on a
    terminal)."""
    from tqdm.auto import tqdm

    rows = []
    per = warmup + steps
    with tqdm(total=len(algos) * per, unit="step", desc="profile", disable=None, dynamic_ncols=True) as bar:
        for i, a in enumerate(algos):
            bar.set_postfix_str(a)
            args = [f"algo={a}", *rest, f"steps={steps}", f"warmup={warmup}"]
            rows.append(run_in_subprocess("rlhf_zoo.profile", args, lambda n, i=i: bar.update(i * per + n - bar.n)))
            bar.update((i + 1) * per - bar.n)
            tqdm.write(f"{a}: {seconds(rows[-1]['step_s'])} s/step", file=sys.stderr)
    return rows


HEADERS = [
    "objective",
    "s/step",
    "generate",
    "reward",
    "log-probs",
    "update",
    "other",
    "completions/step",
    "completions/s",
    "generate share",
    "update MFU",
    "peak GiB",
]


def seconds(x: float) -> str:
    """A time in seconds as the table prints it: 2 decimals from 1 s, 3 significant digits below (a testbed step of
    7 ms printed as 0.01 s and its phases as 0)."""
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["algo"],
            *(seconds(r[k]) for k in ("step_s", "generate_s", "reward_s", "logprobs_s", "update_s", "other_s")),
            f"{r['completions_per_step']:.0f}",
            f"{r['completions_per_s']:.2f}",
            f"{r.get('generate_share', r['generate_s'] / r['step_s']):.0%}",
            f"{r['mfu_update']:.1%}" if r.get("mfu_update") else "-",
            f"{r['peak_memory_gb']:.2f}",
        ]
        for r in rows
    ]


def validate(algos: list[str], rest: list[str]) -> None:
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config

    for a in algos:  # every configuration before spending minutes on the first, with the worker's run_dir
        load_config([f"algo={'reinforce' if a == SFT else a}", *rest, BUILD_ONLY_RUN_DIR])


def main(args: list[str]) -> int:
    from tabulate import tabulate

    from rlhf_zoo.io import atomic_write_json
    from rlhf_zoo.runlog import hardware

    opts, rest = split_options(args, ProfileOptions, "profile")
    chosen = [a for a in rest if a.partition("=")[0] == "algo"]
    if chosen:  # it would follow each objective's own algo= and win: every row would profile it
        raise UserError(f"profile: {chosen[-1]} does not apply: choose the objectives with algos=a,b")
    if opts.steps < 1 or opts.warmup < 0:
        what = "steps must be >= 1" if opts.steps < 1 else "warmup must be >= 0"
        raise UserError(f"profile: {what} (steps={opts.steps}, warmup={opts.warmup})")
    if opts.out is not None:  # written after every objective has run: checked before the first
        from rlhf_zoo.config import check_writable_file

        check_writable_file(opts.out, "profile", "out", "JSON")
    validate(opts.algos, rest)
    try:
        rows = profile_rows(opts.algos, rest, opts.steps, opts.warmup)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"hardware: {hardware()}; torch threads: {rows[0]['threads']}; device: {rows[0]['device']}")
    print(f"MFU peak: {rows[0]['peak_flops'] / 1e9:.0f} GFLOP/s ({rows[0]['peak_flops_source']})")
    print("command: rlhf-zoo profile " + " ".join(args))
    print(tabulate(table_rows(rows), headers=HEADERS, tablefmt="github"))
    if opts.out is not None:
        atomic_write_json(opts.out, {"hardware": hardware(), "args": args, "rows": rows})
    return 0


def _progress(done: int, total: int) -> None:
    """A progress line for the parent's bar (:func:`run_in_subprocess` reads it). Written inside the timed loop: a
    line to a pipe (microseconds) and no GPU synchronisation (the loop synchronises once, after its last step)."""
    print(f"{PROGRESS_LINE}{done}/{total}", file=sys.stderr, flush=True)


def _worker_main(args: list[str]) -> int:
    """One objective's process: its figures as JSON on stdout; bad input found only now (a prompt too long, a
    reward model's label) as one error line on stderr and exit code 2, as ``rlhf-zoo`` says it."""
    from rlhf_zoo.errors import printable

    try:
        row = worker(args)
    except UserError as e:
        print(f"{ERROR_LINE}{printable(str(e))}", file=sys.stderr)
        return 2
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
