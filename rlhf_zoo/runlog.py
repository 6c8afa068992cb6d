"""A run directory: resolved config, metrics, summary, provenance and checkpoints.

    run_dir/
      config.yaml      the resolved config (what was actually run; resume: false, so that it re-runs the run)
      meta.json        command, git commit, versions (rlhf_zoo's included), hardware, start time, prompt counts
                       of the run's first start; each resume appends its own (command, commit, versions,
                       hardware, start time, processes, the step it resumed from) to "resumes"
      metrics.jsonl    one JSON line per evaluation: {"step": s, "reward/proxy": ..., ...}
      samples.jsonl    one JSON line per saved completion of an evaluation (train.save_samples prompts):
                       {"step", "prompt", "completion", "sample", "reward/proxy", "reward/gold", "prob"}
      summary.json     the last evaluation plus algo, task, steps, costs and wall time
      checkpoint/      weights.safetensors + state.pt (optimizer, RNG, caches, step)

Files are written atomically (temporary name, then rename), so an interrupted run never leaves a
half-written file; a resumed run truncates ``metrics.jsonl`` and ``samples.jsonl`` to its checkpoint's step.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rlhf_zoo.errors import UserError, one_line
from rlhf_zoo.io import atomic_dir, atomic_write_text, read_json, temp_files_of, umask_mode


class WriteError(UserError):
    """The run directory cannot be written (a full disk, a quota, a read-only file system): one line
    naming the file. What was written before stays; the training loop does not try a checkpoint after it
    (it would fail alike, and print a second error chained to the first)."""


def _cannot_write(what: Path, e: BaseException, kept: str) -> WriteError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[-1]
    try:
        left = shutil.disk_usage(what.parent).free
        free = f"; {left / 2**20:.1f} MiB free there" if left >= 2**20 else f"; {left // 1024} KiB free there"
    except OSError:
        free = ""
    return WriteError(f"cannot write {what} ({reason}{free}): {kept}")


def git_commit(cwd: Path | None = None) -> str:
    """The commit of the git checkout holding ``cwd`` (default: this package's), ``-dirty`` when a tracked file
    outside ``docs/`` differs from it (as a bench record's ``git_dirty``, :func:`rlhf_zoo.bench.version.git_state`:
    a page or record the bench rewrote is no change of the code); ``unknown`` outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)docs"],
            cwd=cwd or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (commit + ("-dirty" if dirty else "")) if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    threads = torch.get_num_threads()
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores, {threads} thread{'s' * (threads != 1)})"


def in_use(run_dir: str | Path) -> bool:
    """Whether a run holds ``run_dir``'s lock now (:meth:`RunLog.lock`): it is writing there."""
    from filelock import FileLock, Timeout

    path = Path(run_dir) / ".lock"
    if not path.is_file():
        return False
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a lock that cannot be opened here (read-only): not known to be held
        return False
    lock.release()
    return False


class RunLog:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the run directory {run_dir}: {e.strerror or e}") from None
        self.metrics_path = self.dir / "metrics.jsonl"
        self.samples_path = self.dir / "samples.jsonl"
        self.ckpt_dir = self.dir / "checkpoint"

    def lock(self) -> Any:
        """Hold ``run_dir/.lock`` for as long as a run writes here (release with ``.release()``); a
        second run on the same directory is refused with a one-line :class:`UserError`. The lock is
        the operating system's (``flock``), so a killed run leaves nothing held."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.dir / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UserError(f"{self.dir} is in use by another run; wait for it or choose another run_dir") from None
        return lock

    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.dir / "config.yaml", yaml_text)

    def read_config(self) -> str | None:
        p = self.dir / "config.yaml"
        return p.read_text() if p.is_file() else None

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def read_meta(self) -> dict[str, Any] | None:
        """``meta.json`` (None: none, or not a JSON object)."""
        meta = read_json(self.dir / "meta.json")
        return meta if isinstance(meta, dict) else None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        _append(self.metrics_path, [{"step": step, **metrics}])

    def log_samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Append one evaluation's saved completions (:func:`sample_rows`) to ``samples.jsonl``."""
        _append(self.samples_path, [{"step": step, **r} for r in rows], sort_keys=False)

    def read_metrics(self) -> list[dict[str, Any]]:
        return _read(self.metrics_path)

    def read_samples(self) -> list[dict[str, Any]]:
        return _read(self.samples_path)

    def truncate_metrics(self, max_step: int) -> None:
        """Keep the lines of ``metrics.jsonl`` and ``samples.jsonl`` up to ``max_step`` (-1: none), so that a
        resumed run appends to what its checkpoint had written. A last line that is not whole (an append cut
        short by a ``kill -9`` or a power loss) goes too: every line before the checkpoint was synced before it."""
        for path in (self.metrics_path, self.samples_path):
            if path == self.metrics_path or path.is_file():
                kept = [m for m in _read(path, torn_tail=True) if m["step"] <= max_step]
                sort = path == self.metrics_path  # samples keep their written key order
                atomic_write_text(path, "".join(json.dumps(m, sort_keys=sort) + "\n" for m in kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def remove_summary(self) -> None:
        """Delete ``summary.json``: a run starting over here writes its own at its end, and until then the
        directory must not read as the run before, finished (``rlhf-zoo compare`` finds runs by it)."""
        (self.dir / "summary.json").unlink(missing_ok=True)

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        try:
            with atomic_dir(self.ckpt_dir) as tmp:
                weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
                save_file(weights, str(tmp / "weights.safetensors"))
                (tmp / "weights.safetensors").chmod(umask_mode(0o666))  # safetensors writes it private (0600)
                torch.save(state, tmp / "state.pt")
        except (OSError, RuntimeError, SafetensorError) as e:  # torch.save: a full disk is a RuntimeError
            kept = "the previous checkpoint is kept" if self.has_checkpoint() else "no checkpoint was written"
            raise _cannot_write(self.ckpt_dir, e, kept) from None

    def clear_interrupted_writes(self) -> None:
        """What a checkpoint write killed half-way (``kill -9``, a lost node) left, as
        :func:`rlhf_zoo.io.atomic_dir` names it: its temporary folder ``.checkpoint.tmp-*`` (as large as a
        checkpoint, and a new one each time) is deleted; a previous checkpoint set aside under
        ``.checkpoint.old-*/`` for the swap, with the new one not yet in place, is put back. So are the temporary
        files that :func:`rlhf_zoo.io.atomic_write_text` was writing of the run's own files (``.meta.json.*.tmp``,
        ``.samples.jsonl.*.tmp`` of a log cut back by a resume: a new one at each kill). Called by the run that
        holds the directory's lock, before it looks for a checkpoint."""
        for file in ("config.yaml", "meta.json", "summary.json", self.metrics_path.name, self.samples_path.name):
            for tmp in temp_files_of(self.dir / file):
                tmp.unlink(missing_ok=True)
        name = self.ckpt_dir.name
        for old in sorted(self.dir.glob(f".{name}.old-*")):
            if not self.ckpt_dir.exists() and (old / name / "state.pt").is_file():
                os.replace(old / name, self.ckpt_dir)
            shutil.rmtree(old, ignore_errors=True)
        for tmp in self.dir.glob(f".{name}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def has_checkpoint(self) -> bool:
        return (self.ckpt_dir / "state.pt").is_file()

    def load_checkpoint(self, device: torch.device | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The checkpoint's weights (on the CPU) and training state, whose GPU tensors (the base cache, the
        reference rewards) go to ``device`` when it is a GPU and to the CPU otherwise: not to the GPU that
        saved them, which is another process's (rank 0's) or, on a machine without one, none. Raises
        FileNotFoundError where there is none (see :meth:`read_checkpoint`)."""
        loaded = self.read_checkpoint(device)
        if loaded is None:
            raise FileNotFoundError(f"no checkpoint in {self.dir}")
        return loaded

    def read_checkpoint(
        self, device: torch.device | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """As :meth:`load_checkpoint`, also for a reader that does not hold the directory's lock while a run
        may be writing (``rlhf-zoo export``): both files come from one checkpoint, though the run replaces it
        meanwhile (both are opened in the same folder before either is read, and :func:`rlhf_zoo.io.atomic_dir`
        never changes a folder once in place), and a previous checkpoint set aside by a swap (under way, or cut
        short by a kill) is read where it lies. None: no checkpoint."""
        from safetensors import SafetensorError
        from safetensors.torch import load, load_file

        files = self._open_checkpoint()
        if files is None:
            return None
        with os.fdopen(files[0], "rb") as w, os.fdopen(files[1], "rb") as s:
            by_fd = Path(f"/dev/fd/{w.fileno()}")  # the opened file, mapped rather than read whole (Linux, macOS)
            file = "weights.safetensors"
            try:  # a file cut short (a partial copy) was a PytorchStreamReader or SafetensorError traceback
                weights = load_file(str(by_fd)) if by_fd.exists() else load(w.read())
                file = "state.pt"
                state = torch.load(s, weights_only=False, map_location=_onto(device))
            except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, SafetensorError) as e:
                # a RuntimeError that is not the reader's (out of memory, a device that is not there) says
                # nothing of the files: never told to delete a checkpoint for it
                if isinstance(e, RuntimeError) and "PytorchStreamReader" not in str(e):
                    raise
                raise UserError(
                    f"the checkpoint in {self.ckpt_dir} does not load ({file}: {one_line(e)[:160]}): it is damaged "
                    "(a partial copy?): copy it again, or delete it to start the run over"
                ) from None
        return weights, state

    def _open_checkpoint(self, tries: int = 5) -> tuple[int, int] | None:
        """Descriptors of a checkpoint's ``weights.safetensors`` and ``state.pt``, opened in the same folder:
        ``checkpoint/``, else the newest one set aside as ``.checkpoint.old-*/checkpoint/``. A folder swapped
        out or deleted between the look and the opening is looked for again (``tries`` rounds)."""
        name = self.ckpt_dir.name
        for _ in range(tries):
            aside = sorted(self.dir.glob(f".{name}.old-*"), key=_mtime, reverse=True)
            places = [self.ckpt_dir, *(old / name for old in aside)]
            if not any((p / "state.pt").is_file() for p in places):
                return None
            for place in places:
                try:
                    return _open_both(place, "weights.safetensors", "state.pt")
                except (FileNotFoundError, NotADirectoryError):  # swapped out, or being deleted
                    continue
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _open_both(folder: Path, first: str, second: str) -> tuple[int, int]:
    """Read-only descriptors of two files of ``folder``, both opened through one descriptor of the folder, so
    that a rename of the folder between the two openings cannot give them from different folders."""
    if os.open not in os.supports_dir_fd:  # no openat (Windows): by path
        a = os.open(folder / first, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            return a, os.open(folder / second, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except BaseException:
            os.close(a)
            raise
    d = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        a = os.open(first, os.O_RDONLY, dir_fd=d)
        try:
            return a, os.open(second, os.O_RDONLY, dir_fd=d)
        except BaseException:
            os.close(a)
            raise
    finally:
        os.close(d)


def checkpoint_to_resume(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume from: in place, or set aside by a checkpoint swap that a
    kill cut short (:meth:`RunLog.clear_interrupted_writes` puts it back when the run starts). Creates
    nothing."""
    d = Path(run_dir)
    return (d / "checkpoint" / "state.pt").is_file() or any(
        (old / "checkpoint" / "state.pt").is_file() for old in d.glob(".checkpoint.old-*")
    )


def _onto(device: torch.device | None):
    """A ``torch.load`` map_location: a storage saved on a GPU goes to ``device`` if that is a GPU, else
    stays on the CPU; one saved on the CPU stays there (the RNG states must)."""

    def place(storage: Any, location: str) -> Any:
        if location.startswith("cuda") and device is not None and device.type == "cuda":
            return storage.cuda(device.index if device.index is not None else torch.cuda.current_device())
        return storage

    return place


def _append(path: Path, rows: list[dict[str, Any]], sort_keys: bool = True) -> None:
    """Append the rows, one JSON line each. A failed write (a full disk writes part of it) is cut back to
    the lines before it, so that no torn line stops a later read (the resumed run's)."""
    size = path.stat().st_size if path.is_file() else 0
    try:
        with path.open("a") as f:
            f.write("".join(json.dumps(r, sort_keys=sort_keys) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        try:
            os.truncate(path, size)
        except OSError:
            pass
        raise _cannot_write(path, e, "the lines before it are kept") from None


def _read(path: Path, torn_tail: bool = False) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file. ``torn_tail``: a last line that is not whole JSON (what an append that a kill
    or a power loss cut short leaves) is left out, instead of failing the read."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(errors="replace" if torn_tail else "strict").splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            if not (torn_tail and i == len(lines) - 1):
                # damaged otherwise than by a cut-short append: said, not dropped (that evaluation's line would go)
                raise UserError(
                    f"{path}: line {i + 1} of {len(lines)} is not JSON ({getattr(e, 'msg', e)}); only the last line "
                    "may be torn by a kill: repair or delete that line"
                ) from None
    return rows


def sample_rows(
    rollout: Any, proxy: torch.Tensor, gold: torch.Tensor | None, positions: list[int], prompts: int, per_prompt: int
) -> list[dict[str, Any]]:
    """The rows of ``samples.jsonl`` for one evaluation: the completions of the held-out prompts at global
    positions below ``prompts`` (``positions[g]`` is group g's), with their proxy and gold rewards.

    A sampled evaluation saves every completion of those prompts. On the testbed the evaluated "samples"
    are every completion weighted by its exact probability; the ``per_prompt`` most probable ones of each
    prompt are saved, with ``prob``. Rows carry ``position`` (for ordering rows gathered from several
    processes; dropped when written) and ``sample`` (the completion's index in its prompt's group).
    """
    g = rollout.group_size
    rows: list[dict[str, Any]] = []
    for group, pos in enumerate(positions[: rollout.num_groups]):
        if pos >= prompts:
            continue
        idx = list(range(group * g, (group + 1) * g))
        probs = None
        if rollout.weights is not None:  # exact: P(y | x) = weight × number of prompts
            probs = rollout.weights[idx].double() * rollout.num_groups
            order = torch.argsort(probs, descending=True, stable=True)[:per_prompt].tolist()
            idx = [idx[j] for j in order]
        for j, i in enumerate(idx):
            row = {"position": pos, "sample": j, "prompt": rollout.prompts[i], "completion": rollout.texts[i]}
            row["reward/proxy"] = float(proxy[i])
            if gold is not None:
                row["reward/gold"] = float(gold[i])
            if probs is not None:
                row["prob"] = float(probs[order[j]])
            rows.append(row)
    return rows


def package_versions() -> dict[str, str]:
    """The versions of rlhf_zoo, Python, torch and of the optional libraries this process has loaded
    (transformers, peft, accelerate: a run on the exact task loads none of them)."""
    from rlhf_zoo import version

    versions = {"rlhf_zoo": version(), "python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "peft", "accelerate"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    return versions


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    versions = package_versions()
    return {
        "command": shlex.join(argv if argv is not None else sys.argv),  # quoted as a shell reads it back
        "cwd": os.getcwd(),  # the folder that config.yaml's relative paths (prompts, rewards, models) start from
        "git_commit": git_commit(),
        "hardware": hardware(),
        "versions": versions,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
