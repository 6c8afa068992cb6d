"""The GPU command end to end on CPU with a tiny configuration (benchmarks/gpu/run.sh): staged pieces are
joined, the throughput page (our reinforce beside TRL's RLOO, full fine-tuning) and the gpu-check suite run,
the outputs come back as at most 8 files, a second invocation continues instead of recomputing, and the
collected files land in the repository's pages. Also: a slice's time limit stops a whole process group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from benchmarks.gpu import collect, stage
from benchmarks.gpu import run as gpu_run
from benchmarks.gpu.run import SIZES, STOPPED, Log, _seed_records, bounded
from rlhf_zoo.bench.suites import FULL, GPU_CHECK, QUICK, expand
from tests.gpu.helpers import carry, make_cache, make_wheel

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")
pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "model.name=tiny",
    "device=cpu",
    "model.dtype=float32",
    "task.gold=null",
    "model.max_new_tokens=4",
    "train.batch_prompts=2",
    "threads=1",
]


def _run(args: list[str], out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", str(ROOT / "benchmarks/gpu/run.sh"), *args], env=env, capture_output=True, text=True)


def _records(stage_dir: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in (stage_dir / "bench_runs" / "gpu-check").glob("*/record.json")}


def test_run_sh_stages_runs_both_parts_continues_and_collects(tmp_path, monkeypatch):
    cache = make_cache(tmp_path / "cache")
    make_wheel(tmp_path / "wheels")
    staged = tmp_path / "repo" / "gpu_stage"
    items = "cache_items=rewards/minilm_sentiment,data/prompts.jsonl"
    assert (
        stage.main([f"out={staged}", "piece_mib=0.25", f"wheel_dir={tmp_path / 'wheels'}", f"cache={cache}", items])
        == 0
    )
    pieces = sorted(p.name for p in staged.glob("piece-*"))
    call, where, out = tmp_path / "call", tmp_path / "stage", tmp_path / "out"
    prompts = f"task.prompts={where / 'cache' / 'data' / 'prompts.jsonl'}"  # as staged, where RLHF_ZOO_CACHE is
    bench = [f"bench.{a}" for a in [*TINY, prompts, "task.eval_fraction=0.25", "train.steps=2", "train.eval_every=2"]]
    bench += ["bench.train.eval_prompts=2", "bench.train.eval_ref_samples=2", "bench.jobs=1"]
    tput = [f"throughput.{a}" for a in [*TINY, prompts, "algos=reinforce", "steps=1", "warmup=1"]]
    args = ["size=check", f"pieces={call}", f"stage={where}", f"site={tmp_path / 'site'}", "grace=20", *bench, *tput]

    # every piece but the last carried: the command names what is missing and runs nothing
    carry(staged, call, pieces[:-1])
    done = _run(args, out)
    assert done.returncode == 2 and f"1 of {len(pieces)} pieces not joined yet ({pieces[-1]})" in done.stdout
    assert not (where / "bench_runs").exists()

    carry(staged, call, pieces[-1:])
    t0 = time.time()
    done = _run(args, out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "installed 1 wheel(s)" in done.stdout and "complete" in done.stdout.splitlines()[-1]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["docs.tar.gz", "gpu-check.md", "records.tar.gz", "run.log", "status.json", "throughput-gpu.md"]
    status = json.loads((out / "status.json").read_text())
    points = expand(GPU_CHECK, extra=TINY)
    assert status["complete"] and status["points"] == {"finished": len(points), "total": len(points)}
    assert status["suite"] == "gpu-check" and status["versions"]["trl"] and status["failed"] == []

    section = (out / "throughput-gpu.md").read_text()
    assert section.startswith("## GPU\n") and "bash benchmarks/gpu/run.sh size=check" in section
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    assert "reinforce" in rows and any(k.startswith("trl.RLOOTrainer") for k in rows)
    assert "model.finetune=full" in section and "reinforce (k=2, leave-one-out) / TRL RLOO (k=2):" in section
    page = (out / "gpu-check.md").read_text()
    assert "# Benchmark `gpu-check`" in page and "REINFORCE (2 samples, leave-one-out)" in page
    # its claims table reads the other suites from the records committed in the repository, as a page drawn
    # here does (a page drawn only from the machine's records said "not run" for exact and quick)
    assert {"exact", "quick"} <= {p.name for p in (ROOT / "docs" / "benchmarks" / "records").iterdir()}
    assert "no records under" not in page and "| exact " in page and "| quick " in page
    with tarfile.open(out / "records.tar.gz") as tar:
        packed = {m.name for m in tar.getmembers()}
    assert {f"bench_runs/gpu-check/{p.id}/record.json" for p in points} <= packed
    assert {"throughput/rows/reinforce.json", "throughput/rows/trl.json", "throughput/throughput.json"} <= packed
    with tarfile.open(out / "docs.tar.gz") as tar:
        assert {"gpu-check.md", "gpu-check/reward_vs_kl.png", "throughput-gpu.md"} <= set(tar.getnames())
    first_s = time.time() - t0

    # As if the last slice had been stopped: one point unfinished, the page's rows measured but not assembled.
    records = _records(where)
    lost = next(p for p in points if p.id.startswith("reinforce"))
    (where / "bench_runs" / "gpu-check" / lost.id / "record.json").unlink()
    (where / "records" / "gpu-check" / f"{lost.id}.json").unlink()  # and its compact copy (records=)
    (where / "throughput" / "throughput.json").unlink()
    kept = {p.name: p.read_text() for p in (where / "throughput" / "rows").iterdir()}
    done = _run(args, out)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "already joined, checked and installed" in done.stdout
    assert f"{len(points) - 1} of {len(points)} points finished before this slice" in done.stdout
    assert f"1 point(s) run (0 resumed, 1 redone), {len(points) - 1} already finished" in done.stdout
    assert "trl: kept from" in done.stdout and "reinforce: kept from" in done.stdout
    again = _records(where)
    assert {k: v for k, v in again.items() if k != lost.id} == {k: v for k, v in records.items() if k != lost.id}
    assert lost.id in again and {p.name: p.read_text() for p in (where / "throughput" / "rows").iterdir()} == kept
    assert "(2 row(s) kept from an earlier run, not counted)" in (out / "throughput-gpu.md").read_text()

    done = _run(args, out)  # nothing left: no bench, no page, no training
    assert done.returncode == 0 and f"all {len(points)} points finished" in done.stdout
    assert "throughput: complete in" in done.stdout and "rlhf_zoo bench" not in done.stdout
    assert first_s < 120

    # back here: the page and its plots into docs/benchmarks, the section into throughput.md
    repo = tmp_path / "repo"
    docs = repo / "docs" / "benchmarks"
    docs.mkdir(parents=True)
    (docs / "throughput.md").write_text("# Throughput\n\n## CPU\n\ncpu figures\n\n## GPU\n\nNot run.\n")
    opts = [f"docs={docs}", f"runs={repo / 'bench_runs'}", f"pieces={repo / 'gpu_stage'}"]
    assert collect.main([str(out), *opts]) == 0
    merged = (docs / "throughput.md").read_text()
    assert "cpu figures" in merged and "Not run." not in merged and merged.count("## GPU") == 1
    assert merged.endswith((out / "throughput-gpu.md").read_text())
    assert (docs / "gpu-check.md").read_text() == (out / "gpu-check.md").read_text()
    assert (docs / "gpu-check" / "reward_vs_kl.png").is_file() and (repo / "gpu_stage" / "records.tar.gz").is_file()
    assert len(list((repo / "bench_runs" / "gpu-check").glob("*/record.json"))) == len(points)
    # the compact records beside the committed ones, as the machine wrote them
    collected = {p.stem: p.read_text() for p in (docs / "records" / "gpu-check").glob("*.json")}
    assert collected == {p.stem: p.read_text() for p in (where / "records" / "gpu-check").glob("*.json")}
    assert len(collected) == len(points)

    # once committed, those records alone (no pack carried) make a fresh machine's suite finished: the command
    # on a bare stage (run in this process, so that the committed folder can be this test's) runs no bench
    bare = tmp_path / "bare"
    monkeypatch.setattr(gpu_run, "COMMITTED", docs / "records")
    monkeypatch.setattr(sys, "path", list(sys.path))  # main puts the installed site first
    monkeypatch.setenv("RLHF_ZOO_CACHE", "restored after the test")  # main points it at the stage's cache
    carry(staged, tmp_path / "bare-call", pieces)  # the staging pieces only, no records pack
    fresh = [a for a in args if not a.startswith(("pieces=", "stage=", "site=", "throughput."))]
    fresh += [
        f"pieces={tmp_path / 'bare-call'}",
        f"stage={bare}",
        f"site={tmp_path / 'bare-site'}",
        f"out={tmp_path / 'bare-out'}",
        "throughput=false",
    ]
    assert gpu_run.main(fresh) == 0
    said = (tmp_path / "bare-out" / "run.log").read_text()
    assert f"all {len(points)} points finished" in said and "before this slice" not in said
    assert json.loads((tmp_path / "bare-out" / "status.json").read_text())["complete"]

    # a fresh machine given that pack starts from the finished records (and keeps what it has)
    fresh = tmp_path / "fresh"
    (fresh / "bench_runs" / "gpu-check" / lost.id).mkdir(parents=True)
    (fresh / "bench_runs" / "gpu-check" / lost.id / "record.json").write_text("newer")
    _seed_records(repo / "gpu_stage" / "records.tar.gz", fresh, Log(tmp_path / "seed.log"))
    assert {k: v for k, v in _records(fresh).items() if k != lost.id} == {
        k: v for k, v in _records(where).items() if k != lost.id
    }
    assert _records(fresh)[lost.id] == "newer" and (fresh / "throughput" / "rows" / "trl.json").is_file()


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    for args, said in ((["size=huge"], "size must be full or check"), (["nope=1"], "unknown argument 'nope=1'")):
        done = _run(args, tmp_path / "out")
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_replace_section_keeps_the_others():
    page = "# T\n\n## A\n\na\n\n## GPU\n\nold\n\n## B\n\nb\n"
    assert (
        collect.replace_section(page, "## GPU", "## GPU\n\nnew\n") == "# T\n\n## A\n\na\n\n## GPU\n\nnew\n\n## B\n\nb\n"
    )
    assert collect.replace_section("# T\n", "## GPU", "## GPU\n\nnew\n") == "# T\n\n## GPU\n\nnew\n"


CHILD = """
import signal, subprocess, sys, time
from pathlib import Path
def stop(*_):
    Path(sys.argv[1]).write_text("checkpointed")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
if len(sys.argv) > 2:
    subprocess.Popen([sys.executable, __file__, sys.argv[2]])
time.sleep(60)
"""


def test_a_slice_out_of_time_stops_the_whole_process_group_gracefully(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    parent, worker = tmp_path / "parent", tmp_path / "worker"
    log = Log(tmp_path / "out" / "run.log")
    t0 = time.monotonic()
    cmd = [sys.executable, str(script), str(parent), str(worker)]
    rc = bounded(cmd, dict(os.environ), t0 + 8, 2, log, "t", min_s=0)
    assert rc == STOPPED and time.monotonic() - t0 < 14
    assert parent.read_text() == "checkpointed" and worker.read_text() == "checkpointed"
    assert "time is up for this slice" in (tmp_path / "out" / "run.log").read_text()
    assert bounded([sys.executable, "-c", "pass"], dict(os.environ), time.monotonic() + 5, 2, log, "t") == STOPPED


def test_full_is_sized_for_about_40_gpu_minutes_and_check_for_a_short_session():
    assert SIZES["full"]["suite"] == FULL.name and SIZES["check"]["suite"] == GPU_CHECK.name
    steps = {
        s.name: int(next(a for a in s.task_args if a.startswith("train.steps=")).split("=")[1])
        for s in (FULL, GPU_CHECK)
    }
    batch = {s.name: next(a for a in s.task_args if a.startswith("train.batch_prompts=")) for s in (FULL, QUICK)}
    assert len(FULL.seeds) == 3 and "device=cuda" in FULL.task_args and "model.finetune=full" in FULL.task_args
    assert int(batch["full"].split("=")[1]) > int(batch["quick"].split("=")[1])
    assert "40 minutes on one H100" in FULL.budget and FULL.jobs > 1 and FULL.resumable
    trained = [p for p in expand(FULL, seeds=[0]) if not p.pool]
    assert 10 <= len(trained) <= 14
    assert len(GPU_CHECK.seeds) == 1 and steps["gpu-check"] < steps["full"] and len(expand(GPU_CHECK)) <= 4
    assert GPU_CHECK.resumable and "device=cuda" in GPU_CHECK.task_args


def test_a_point_counts_as_finished_only_with_a_record_of_its_settings(tmp_path):
    """As the bench decides (a record of other settings is redone), so that a slice is not called complete
    and the bench skipped while its records were made with other bench.* overrides."""
    from benchmarks.gpu.run import _suite_status
    from rlhf_zoo.bench.records import FORMAT, write_point_record

    runs, records = tmp_path / "bench_runs", tmp_path / "records"
    points = expand(GPU_CHECK, extra=["train.steps=5"])  # records of a slice run with bench.train.steps=5
    for p in points:
        write_point_record(records, {"format": FORMAT, "suite": p.suite, "id": p.id, "args": list(p.args)})
    assert _suite_status(GPU_CHECK.name, [], runs) == (0, len(points))
    assert _suite_status(GPU_CHECK.name, ["train.steps=5"], runs) == (len(points), len(points))


LEAVER = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a worker left running in the group
"""


def test_a_step_whose_parent_exits_before_its_workers_is_still_bounded(tmp_path):
    log = Log(tmp_path / "out" / "run.log")
    t0 = time.monotonic()
    rc = bounded([sys.executable, "-c", LEAVER], dict(os.environ), t0 + 6, 1, log, "t", min_s=0)
    assert rc == STOPPED and time.monotonic() - t0 < 12
    assert "time is up for this slice" in (tmp_path / "out" / "run.log").read_text()


DEAF = """
import signal, subprocess, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if len(sys.argv) > 1:
    Path(sys.argv[1]).write_text(str(subprocess.Popen([sys.executable, __file__]).pid))
time.sleep(60)
"""


def test_a_group_that_ignores_sigterm_is_killed_by_the_deadline(tmp_path):
    """SIGTERM at the deadline less grace, SIGKILL to the whole group at the deadline: the step returns then,
    and no worker outlives it."""
    script, pid_file = tmp_path / "deaf.py", tmp_path / "worker.pid"
    script.write_text(DEAF)
    log = Log(tmp_path / "out" / "run.log")
    deadline = time.monotonic() + 5
    rc = bounded([sys.executable, str(script), str(pid_file)], dict(os.environ), deadline, 2, log, "t", min_s=0)
    assert rc == STOPPED and time.monotonic() < deadline + 1.5
    worker = Path(f"/proc/{pid_file.read_text()}/stat")
    for _ in range(20):  # reaped by init, or a zombie until then
        if not worker.exists() or worker.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the worker outlived its step")


def _step(tmp_path: Path) -> gpu_run.Step:
    """A step with a long deadline (the tests replace ``bounded``: nothing is run)."""
    status = {"failed": [], "versions": {}}
    return gpu_run.Step(tmp_path / "stage", {}, time.monotonic() + 100, 5, Log(tmp_path / "run.log"), status)


def test_the_page_is_measured_again_only_when_its_arguments_change(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(gpu_run, "bounded", lambda cmd, *a, **k: ran.append(cmd) or 0)
    step = _step(tmp_path)
    tdir = tmp_path / "stage" / "throughput"
    tdir.mkdir(parents=True)
    args = ["steps=2", f"rows={tdir / 'rows'}", f"out={tdir / 'throughput.json'}", f"md={tdir / 'section.md'}"]
    (tdir / "throughput.json").write_text(json.dumps({"argv": args}))
    (tdir / "section.md").write_text("## cuda\n\nrows\n")
    assert gpu_run._throughput(step, ["steps=2"], "cmd") is not None and not ran
    assert step.status["throughput"] == "complete"
    assert gpu_run._throughput(step, ["steps=3"], "cmd") is None  # other settings: the old page is no answer
    assert len(ran) == 1 and "steps=3" in ran[0] and step.status["throughput"] == "not finished"


@pytest.mark.parametrize(("rc", "failed"), [(0, []), (STOPPED, []), (143, []), (130, []), (1, ["bench gpu-check"])])
def test_a_bench_stopped_by_its_signal_handler_is_no_failure(rc, failed, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(gpu_run, "bounded", lambda cmd, *a, **k: ran.append(cmd) or rc)
    monkeypatch.setattr(gpu_run, "COMMITTED", tmp_path / "none")
    monkeypatch.setattr(gpu_run, "_suite_status", lambda *a: (0, 2))
    step = _step(tmp_path)
    assert gpu_run._bench(step, "gpu-check", [], time.monotonic() + 100) == (0, 2)
    assert step.status["failed"] == failed and len(ran) == 1  # nothing finished: no page rendered


def test_a_page_is_stale_when_missing_or_older_than_a_record(tmp_path):
    page, suite_dir = tmp_path / "docs" / "s.md", tmp_path / "stage" / "bench_runs" / "s"
    run_record, compact = suite_dir / "p1" / "record.json", tmp_path / "stage" / "records" / "s" / "p2.json"
    for p in (run_record, compact):
        p.parent.mkdir(parents=True)
        p.write_text("{}")
        os.utime(p, (1000, 1000))
    assert gpu_run._stale(page, suite_dir)
    page.parent.mkdir()
    page.write_text("page")
    os.utime(page, (2000, 2000))
    assert not gpu_run._stale(page, suite_dir)
    for p in (run_record, compact):
        os.utime(p, (3000, 3000))
        assert gpu_run._stale(page, suite_dir)
        os.utime(p, (1000, 1000))


@pytest.mark.parametrize(
    ("points", "tput", "failed", "argv", "code"),
    [
        ((2, 2), "complete", [], [], 0),
        ((1, 2), "complete", [], [], 3),  # more to run
        ((2, 2), "not finished", [], [], 3),
        ((2, 2), None, [], ["throughput=false"], 0),  # no page asked for
        ((1, 2), "not finished", ["render"], [], 1),  # a failure before more to run
    ],
)
def test_the_exit_code_says_complete_more_to_run_or_failed(points, tput, failed, argv, code, tmp_path, monkeypatch):
    from benchmarks.gpu.staging import Unstaged

    seen = {}
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("RLHF_ZOO_CACHE", "restored after the test")
    monkeypatch.setattr(gpu_run, "unstage", lambda *a, **k: Unstaged({"id": "x", "pieces": []}, ready=True))
    monkeypatch.setattr(gpu_run, "_versions", lambda step: {})
    ran = []  # the SmolLM2 conversion (the suite's model) is not run: it took 30 s here
    monkeypatch.setattr(gpu_run, "bounded", lambda cmd, *a, **k: ran.append(cmd) or 0)

    def throughput(step, *a):
        seen["throughput"] = step.deadline
        step.status["throughput"] = tput
        return None

    def bench(step, suite, bench_args, render_deadline):
        seen["bench"], seen["render"] = step.deadline, render_deadline
        step.status["failed"] += failed
        return points

    monkeypatch.setattr(gpu_run, "_throughput", throughput)
    monkeypatch.setattr(gpu_run, "_bench", bench)
    t0 = time.monotonic()
    out = tmp_path / "out"
    assert gpu_run.main(["size=check", "budget=300", f"stage={tmp_path}", f"out={out}", *argv]) == code
    status = json.loads((out / "status.json").read_text())
    assert status["complete"] == (code == 0) and status["points"] == dict(
        zip(("finished", "total"), points, strict=True)
    )
    # the steps stop in time to leave the render and the packing their reserve; the render, the budget's end
    assert seen["bench"] <= t0 + 300 - gpu_run.RESERVE_S + 1 and seen["render"] <= time.monotonic() + 300
    assert seen["render"] > seen["bench"] and ("throughput" in seen) == (tput is not None)
    assert len(ran) == 1 and "convert_smollm2" in ran[0][-1]
