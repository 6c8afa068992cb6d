"""The GPU suite and the throughput page in one command, in slices that fit one device call (docs/gpu.md).

    bash benchmarks/gpu/run.sh                        # on the GPU machine, after staging: suite full + throughput
    bash benchmarks/gpu/run.sh size=check             # the short check: suite gpu-check, fewer timed steps
    bash benchmarks/gpu/run.sh budget=300 bench.seeds=0 throughput.trl=false

Each invocation, from the repository root:

1. joins the staging pieces carried in ``pieces`` (:mod:`benchmarks.gpu.staging`) and refuses, naming
   them, while some are missing; subprocesses then get ``PYTHONPATH=<site>:<repo>`` and
   ``RLHF_ZOO_CACHE=<stage>/cache``;
2. converts SmolLM2 from the staged GGUF once (``convert_smollm2``), if a run uses it;
3. the throughput page (``benchmarks/throughput.py``: every objective and TRL's RLOO on this GPU), each
   finished row kept in ``<stage>/throughput/rows`` so that a stopped page continues;
4. the suite (``rlhf-zoo bench``), whose finished points are never recomputed and whose interrupted runs
   resume from their checkpoints;
5. renders the suite's page from the records there are (with those committed in docs/benchmarks/records:
   the suite's own count as finished before step 4, the other suites' feed its claims table), and writes
   into ``out`` (``$OUT`` on the device):
   ``<suite>.md``, ``throughput-gpu.md`` (the "## GPU" section of docs/benchmarks/throughput.md),
   ``docs.tar.gz`` (both pages and the plots, as docs/benchmarks/ holds them), ``records.tar.gz`` (every
   record, the throughput rows), ``status.json`` and ``run.log``.

Every step is bounded by ``budget`` seconds from the start of the invocation: when time is up the step gets
SIGTERM (training runs finish their step and checkpoint), then SIGKILL after ``grace`` seconds. Run the same
command again, on the same warm machine, to continue; on a fresh machine, stage again and put the last
``records.tar.gz`` into ``gpu_stage/`` (``python -m benchmarks.gpu.collect`` does) to keep what finished.
Exit 0 when the suite and the page are complete, 3 when there is more to run, 1 when a step failed, 2 on
bad arguments or missing pieces.

Options: ``size`` (``full`` or ``check``), ``budget``, ``grace``, ``pieces``, ``stage``, ``site``, ``out``,
``throughput`` (``true``/``false``), ``records`` (a records pack to continue from); ``bench.KEY=VALUE`` is
given to ``rlhf-zoo bench`` (its options, e.g. ``bench.seeds=0``, or training overrides),
``throughput.KEY=VALUE`` to ``benchmarks/throughput.py``. Standard library only until the staging is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gpu.staging import StagingError, parse_kv, unstage

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "benchmarks" / "records"  # the records committed in the repository, by suite
SIZES = {
    "full": {"suite": "full", "throughput": ["steps=3", "warmup=1"]},
    "check": {"suite": "gpu-check", "throughput": ["steps=2", "warmup=1"]},
}
# The throughput page on a GPU: SmolLM2, full fine-tuning in bfloat16 (speed only; see FULL in
# rlhf_zoo/bench/suites.py on why the suite trains float32 weights), the suite's batch and length.
THROUGHPUT_ARGS = [
    "device=cuda",
    "model.name=smollm2-135m",
    "model.finetune=full",
    "model.dtype=bfloat16",
    "train.batch_prompts=32",
    "model.max_new_tokens=32",
    "threads=2",
]
SMOLLM2 = "smollm2-135m"
STOPPED = "stopped"  # a step that time cut short
RESERVE_S = 45  # kept for rendering and packing after the last step


def _defaults() -> dict[str, str]:
    return {
        "size": "full",
        "budget": "540",
        "grace": "60",
        "pieces": "gpu_stage",
        "stage": "/tmp/stage",
        "site": "/tmp/site",
        "out": os.environ.get("OUT") or "gpu_out",
        "throughput": "true",
        "records": "",
    }


def merge(base: list[str], over: list[str]) -> list[str]:
    """``key=value`` lists: ``over`` replaces the same keys of ``base`` (in place) and adds the others."""
    out = {a.partition("=")[0]: a for a in base}
    for a in over:
        out[a.partition("=")[0]] = a
    return list(out.values())


def last_value(args: list[str], key: str) -> str | None:
    vals = [a.partition("=")[2] for a in args if a.partition("=")[0] == key]
    return vals[-1] if vals else None


class Log:
    """Prints a line and appends it to ``run.log`` in ``out``, each with the seconds since the start."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def __call__(self, line: str) -> None:
        with self.lock:
            line = f"[{time.monotonic() - self.t0:6.1f} s] {line}"
            print(line, flush=True)
            self.f.write(line + "\n")
            self.f.flush()


def _alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def bounded(
    cmd: list[str], env: dict[str, str], deadline: float, grace: float, log: Log, name: str, min_s: float = 10
) -> Any:
    """Run ``cmd`` (its own process group, output into ``log``) until ``deadline`` less ``grace``; then SIGTERM
    to the group and, ``grace`` seconds later, SIGKILL. Not started when less than ``grace + min_s`` seconds
    are left. Returns the exit code, or :data:`STOPPED`."""
    left = deadline - time.monotonic()
    if left < grace + min_s:
        log(f"run: {name}: no time left in this slice")
        return STOPPED
    log(f"run: {name}: {' '.join(cmd)}")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )

    def pump() -> None:
        for line in proc.stdout:
            log(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=left - grace)
        while _alive(proc.pid):  # workers of a finished parent, within the same time
            if time.monotonic() >= deadline - grace:
                raise subprocess.TimeoutExpired(cmd, left - grace)
            time.sleep(0.2)
    except subprocess.TimeoutExpired:
        log(f"run: {name}: time is up for this slice: SIGTERM (runs in flight finish their step and checkpoint)")
        _signal(proc.pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and (proc.poll() is None or _alive(proc.pid)):
            time.sleep(0.5)
        _signal(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        return STOPPED
    reader.join(timeout=5)
    return proc.returncode


def _environment(site: Path, stage: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(site), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        RLHF_ZOO_CACHE=str(stage / "cache"),
        PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


VERSIONS = """
import json, importlib.metadata as m, torch
v = {}
for p in ("torch", "transformers", "accelerate", "peft", "trl", "datasets", "omegaconf"):
    try:
        v[p] = m.version(p)
    except m.PackageNotFoundError:
        v[p] = None
v["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(json.dumps(v))
"""


def _seed_records(pack: Path, stage: Path, log: Log) -> None:
    """Unpack a records pack (one that came back from an earlier machine) where nothing is yet."""
    added = 0
    with tarfile.open(pack) as tar:
        for m in tar.getmembers():
            if m.isfile() and not (stage / m.name).exists():
                tar.extract(m, stage, filter="data")
                added += 1
    log(f"run: {added} file(s) of {pack} added to {stage} (the records finished on an earlier machine)")


def _committed_records(stage: Path, log: Log) -> None:
    """The records committed in the repository (docs/benchmarks/records, by suite), copied into
    ``<stage>/records`` where the machine has none of that name: the suite's own count as finished (a fresh
    machine continues from what earlier GPU sessions committed, pack or no pack), and the other suites' feed
    the page's claims table as on a page drawn in the repository."""
    copied = 0
    for src in sorted(COMMITTED.glob("*/*.json")) if COMMITTED.is_dir() else []:
        dest = stage / "records" / src.parent.name / src.name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            copied += 1
    log(f"run: {copied} committed record(s) added to {stage / 'records'}")


def _suite_status(suite: str, bench_args: list[str], runs: Path) -> tuple[int, int]:
    """(finished points, points) of the suite with these bench arguments."""
    from rlhf_zoo.bench.command import parse
    from rlhf_zoo.bench.records import read_point_record, record_path
    from rlhf_zoo.bench.runner import plan, point_dir
    from rlhf_zoo.bench.suite_file import get_suite
    from rlhf_zoo.bench.suites import expand

    opts, extra = parse([f"suite={suite}", *bench_args])
    points = expand(get_suite(suite), opts.seeds, extra, opts.only)
    # a point is finished, as the bench decides, with a record of its arguments: its compact one in the records
    # folder (the bench's records=, here <stage>/records/<suite>/<point-id>.json) or its full one in its run folder
    records = runs.parent / "records"
    stored = {p.id: read_point_record(record_path(records, suite, p.id)) for p in points}
    done = sum(plan(p, point_dir(runs, p), False, stored[p.id]) == "done" for p in points)
    return done, len(points)


def _section(section: Path, versions: dict[str, Any], command: str) -> str:
    """The "## GPU" section of docs/benchmarks/throughput.md from the throughput script's section."""
    body = section.read_text().strip().splitlines()
    if body and body[0].startswith("## "):
        body = body[1:]
    while body and not body[0].strip():  # the blank lines under that heading: the one below is enough
        body = body[1:]
    libs = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "gpu" and v)
    lines = [
        "## GPU",
        "",
        f"Measured by `{command}` (docs/gpu.md) on {versions.get('gpu') or 'no GPU'} with {libs}: the first",
        "table of this page on a GPU, SmolLM2-135M fully fine-tuned in bfloat16 unless the settings below say",
        "otherwise. Figures from different machines are not comparable.",
        "",
        *body,
    ]
    return "\n".join(lines).rstrip() + "\n"


def _stale(page: Path, suite_dir: Path) -> bool:
    """Whether the page is missing or older than one of the records it is drawn from."""
    if not page.is_file():
        return True
    records = [*suite_dir.glob("*/record.json"), *(suite_dir.parent.parent / "records" / suite_dir.name).glob("*.json")]
    return any(r.stat().st_mtime > page.stat().st_mtime for r in records)


def _pack(out: Path, stage: Path, suite: str, section_text: str | None, status: dict, log: Log) -> None:
    docs, runs, tput = stage / "docs", stage / "bench_runs", stage / "throughput"
    page = docs / f"{suite}.md"
    with tarfile.open(out / "docs.tar.gz", "w:gz") as tar:
        if page.is_file():
            tar.add(page, arcname=f"{suite}.md")
            (out / f"{suite}.md").write_text(page.read_text())
            if (docs / suite).is_dir():
                tar.add(docs / suite, arcname=suite)
        if section_text is not None:
            (out / "throughput-gpu.md").write_text(section_text)
            tar.add(out / "throughput-gpu.md", arcname="throughput-gpu.md")
    with tarfile.open(out / "records.tar.gz", "w:gz") as tar:
        suite_dir = runs / suite
        compact = sorted((stage / "records" / suite).glob("*.json"))
        for path in sorted(suite_dir.glob("*.json")) + sorted(suite_dir.glob("*/record.json")) + compact:
            tar.add(path, arcname=str(path.relative_to(stage)))
        for path in sorted(tput.rglob("*.json")) if tput.is_dir() else []:
            tar.add(path, arcname=str(path.relative_to(stage)))
    (out / "status.json").write_text(json.dumps(status, indent=1) + "\n")
    log(f"run: wrote {', '.join(sorted(p.name for p in out.iterdir()))} in {out}")


@dataclass
class Step:
    """What every step of one invocation shares: where things are, the time left and what happened."""

    stage: Path
    env: dict[str, str]
    deadline: float  # monotonic time at which a step is stopped (the budget less RESERVE_S)
    grace: float
    log: Log
    status: dict[str, Any]

    def run(
        self,
        cmd: list[str],
        what: str,
        ok: tuple[Any, ...] = (0, STOPPED),
        deadline: float | None = None,
        grace: float | None = None,
    ) -> None:
        """Run one bounded step; an exit outside ``ok`` (by default: success, or stopped for time to continue
        in the next slice) is added to ``status["failed"]``."""
        rc = bounded(cmd, self.env, deadline or self.deadline, grace or self.grace, self.log, what)
        if rc not in ok:
            self.status["failed"].append(what)


def _versions(step: Step) -> dict[str, Any]:
    """The versions of the staged packages (asked once, then kept in ``<stage>/versions.json``)."""
    env_file = step.stage / "versions.json"
    if not env_file.is_file():
        done = subprocess.run([sys.executable, "-c", VERSIONS], env=step.env, capture_output=True, text=True, cwd=ROOT)
        if done.returncode == 0:
            env_file.write_text(done.stdout)
    return json.loads(env_file.read_text()) if env_file.is_file() else {}


def _throughput(step: Step, tput: list[str], command: str) -> str | None:
    """Step 3: the throughput page (run again only when its arguments changed); its GPU section, or None."""
    tdir = step.stage / "throughput"
    tjson, tsection = tdir / "throughput.json", tdir / "section.md"
    full_tput = [*tput, f"rows={tdir / 'rows'}", f"out={tjson}", f"md={tsection}"]
    kept = json.loads(tjson.read_text()) if tjson.is_file() else None
    if kept is None or kept.get("argv") != full_tput:
        tjson.unlink(missing_ok=True)
        tsection.unlink(missing_ok=True)
        tdir.mkdir(parents=True, exist_ok=True)
        step.run([sys.executable, "benchmarks/throughput.py", *full_tput], "throughput")
    else:
        step.log(f"run: throughput: complete in {tjson}")
    step.status["throughput"] = "complete" if tjson.is_file() else "not finished"
    return _section(tsection, step.status["versions"], command) if tsection.is_file() else None


def _bench(step: Step, suite: str, bench_args: list[str], render_deadline: float) -> tuple[int, int]:
    """Steps 4 and 5: the suite's points not yet finished, then its page when records changed; (finished,
    total)."""
    runs = step.stage / "bench_runs"
    where = [f"out={runs}", f"docs={step.stage / 'docs'}", f"records={step.stage / 'records'}"]
    _committed_records(step.stage, step.log)
    finished, total = _suite_status(suite, bench_args, runs)
    if finished < total:
        step.log(f"run: bench {suite}: {finished} of {total} points finished before this slice")
        # redo=true: a slice has no one to ask, and a record its arguments no longer make (a records pack or a
        # committed record of other bench.* overrides) counts as unfinished above; bench.redo=false refuses instead
        bench = [f"suite={suite}", *where, "progress=false", "render=false", "redo=true"]
        cmd = [sys.executable, "-m", "rlhf_zoo", "bench", *bench, *bench_args]
        step.run(cmd, f"bench {suite}", ok=(0, STOPPED, 130, 143))  # 130, 143: stopped by its signal handler
        finished, total = _suite_status(suite, bench_args, runs)
    else:
        step.log(f"run: bench {suite}: all {total} points finished")
    if finished and _stale(step.stage / "docs" / f"{suite}.md", runs / suite):
        render = [sys.executable, "-m", "rlhf_zoo", "bench", f"suite={suite}", *where, "render_only=true"]
        step.run(render, "render", ok=(0,), deadline=render_deadline, grace=5)  # a page cut short is a failure
    return finished, total


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    own = [a for a in argv if not a.startswith(("bench.", "throughput."))]
    bench_args = [a.split(".", 1)[1] for a in argv if a.startswith("bench.")]
    tput_args = [a.split(".", 1)[1] for a in argv if a.startswith("throughput.")]
    try:
        o = parse_kv(own, _defaults(), "run")
        size = SIZES[o["size"]] if o["size"] in SIZES else None
        if size is None:
            raise StagingError(f"run: size must be {' or '.join(SIZES)}, got {o['size']!r}")
        budget, grace = float(o["budget"]), float(o["grace"])
    except (StagingError, ValueError) as e:
        print(f"run: {e}" if not str(e).startswith("run:") else e, file=sys.stderr)
        return 2
    stage, site, out = Path(o["stage"]), Path(o["site"]), Path(o["out"])
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "run.log")
    suite = size["suite"]
    log(f"run: size={o['size']} (suite {suite}), budget {budget:.0f} s, stage {stage}, out {out}")
    try:  # step 1
        staged = unstage(Path(o["pieces"]), stage, site, log=log)
    except StagingError as e:
        log(f"run: {e}")
        return 2
    if not staged.ready:
        log(f"run: {staged.missing_message(o['pieces'])}")
        return 2
    env = _environment(site, stage)
    sys.path[:0] = [str(site), str(ROOT)]
    os.environ["RLHF_ZOO_CACHE"] = env["RLHF_ZOO_CACHE"]
    pack = Path(o["records"]) if o["records"] else Path(o["pieces"]) / "records.tar.gz"
    if pack.is_file():
        _seed_records(pack, stage, log)
    step = Step(stage, env, t0 + budget - RESERVE_S, grace, log, {"size": o["size"], "suite": suite, "failed": []})
    status = step.status
    status["versions"] = _versions(step)
    log(f"run: versions {status['versions']}")

    from rlhf_zoo.bench.suite_file import get_suite

    tput = merge(merge(THROUGHPUT_ARGS, size["throughput"]), tput_args)
    models = {last_value([*get_suite(suite).task_args, *bench_args], "model.name")}
    if o["throughput"] == "true":
        models.add(last_value(tput, "model.name"))
    if SMOLLM2 in models:  # step 2
        code = "from rlhf_zoo.policies.models import convert_smollm2; print(convert_smollm2())"
        step.run([sys.executable, "-c", code], "convert SmolLM2")
    section_text = None
    if o["throughput"] == "true":
        section_text = _throughput(step, tput, " ".join(["bash benchmarks/gpu/run.sh", *argv]))
    finished, total = _bench(step, suite, bench_args, render_deadline=t0 + budget)
    status["points"] = {"finished": finished, "total": total}
    complete = finished == total and status.get("throughput", "complete") == "complete"
    status["complete"] = complete
    status["wall_s"] = round(time.monotonic() - t0, 1)
    _pack(out, stage, suite, section_text, status, log)
    what = f"suite {suite}: {finished} of {total} points finished; throughput: {status.get('throughput', 'off')}"
    if status["failed"]:
        log(f"run: {what}; FAILED: {', '.join(status['failed'])} (run.log says why)")
        return 1
    if not complete:
        log(f"run: {what}; run the same command again to continue")
        return 3
    log(f"run: {what}; complete")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
