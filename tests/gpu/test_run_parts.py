"""The parts of benchmarks/gpu/run.py around the bounded steps, each on hand-made inputs with the
subprocesses faked: argument handling, the environment, the records carried in, the packs that come back,
the step bookkeeping, and which steps a slice runs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from benchmarks.gpu import run as gpu_run
from benchmarks.gpu.run import STOPPED, Log
from benchmarks.gpu.staging import StagingError, Unstaged

ROOT = Path(__file__).resolve().parents[2]


def _step(tmp_path: Path, deadline: float = 1000.0, grace: float = 30.0) -> gpu_run.Step:
    return gpu_run.Step(tmp_path / "stage", {}, deadline, grace, Log(tmp_path / "run.log"), {"failed": []})


def _tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def test_merge_replaces_keys_in_place_and_last_value_takes_the_last():
    assert gpu_run.merge(["a=1", "b=2", "c=3"], ["b=20", "d=4", "a=10"]) == ["a=10", "b=20", "c=3", "d=4"]
    assert gpu_run.last_value(["x=1", "y=2", "x=3"], "x") == "3"
    assert gpu_run.last_value(["x=1", "xx=2"], "xx") == "2" and gpu_run.last_value(["x=1"], "y") is None


def test_the_environment_puts_the_site_then_the_repository_first_and_the_cache_in_the_stage(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = gpu_run._environment(Path("/m/site"), Path("/m/stage"))
    assert env["PYTHONPATH"] == os.pathsep.join(["/m/site", str(ROOT), "/elsewhere"])
    assert env["RLHF_ZOO_CACHE"] == "/m/stage/cache" and env["PYTHONUNBUFFERED"] == "1"
    monkeypatch.delenv("PYTHONPATH")
    assert gpu_run._environment(Path("/m/site"), Path("/m/stage"))["PYTHONPATH"] == f"/m/site{os.pathsep}{ROOT}"


def test_a_records_pack_adds_only_what_the_machine_lacks(tmp_path):
    stage = tmp_path / "stage"
    (stage / "records" / "s").mkdir(parents=True)
    (stage / "records" / "s" / "a.json").write_text("mine")
    pack = _tar(tmp_path / "records.tar.gz", {"records/s/a.json": "packed a", "records/s/b.json": "packed b"})
    gpu_run._seed_records(pack, stage, Log(tmp_path / "run.log"))
    assert (stage / "records" / "s" / "a.json").read_text() == "mine"
    assert (stage / "records" / "s" / "b.json").read_text() == "packed b"
    assert "run: 1 file(s) of" in (tmp_path / "run.log").read_text()


def test_committed_records_go_by_suite_under_the_stage_without_replacing_the_machines(tmp_path, monkeypatch):
    committed, stage = tmp_path / "committed", tmp_path / "stage"
    for suite, name, text in (("s1", "a", "committed a"), ("s1", "b", "committed b"), ("s2", "a", "other suite")):
        (committed / suite).mkdir(parents=True, exist_ok=True)
        (committed / suite / f"{name}.json").write_text(text)
    (stage / "records" / "s1").mkdir(parents=True)
    (stage / "records" / "s1" / "a.json").write_text("newer, from this machine")
    monkeypatch.setattr(gpu_run, "COMMITTED", committed)
    gpu_run._committed_records(stage, Log(tmp_path / "run.log"))
    got = {str(p.relative_to(stage)): p.read_text() for p in stage.rglob("*.json")}
    assert got == {
        "records/s1/a.json": "newer, from this machine",
        "records/s1/b.json": "committed b",
        "records/s2/a.json": "other suite",
    }
    assert "run: 2 committed record(s)" in (tmp_path / "run.log").read_text()


def test_the_gpu_section_replaces_the_scripts_heading_and_names_the_gpu_and_the_libraries(tmp_path):
    section = tmp_path / "section.md"
    section.write_text("\n## cuda (NVIDIA H100)\n\n| objective | rate |\n| a | 1 |\n")  # as throughput.py writes it
    versions = {"torch": "2.11.0", "trl": None, "peft": "0.21.0", "gpu": "NVIDIA H100"}
    assert gpu_run._section(section, versions, "bash benchmarks/gpu/run.sh size=check") == (
        "## GPU\n\n"
        "Measured by `bash benchmarks/gpu/run.sh size=check` (docs/gpu.md) on NVIDIA H100 with torch 2.11.0, "
        "peft 0.21.0: the first\n"
        "table of this page on a GPU, SmolLM2-135M fully fine-tuned in bfloat16 unless the settings below say\n"
        "otherwise. Figures from different machines are not comparable.\n\n"
        "| objective | rate |\n| a | 1 |\n"
    )
    assert " on no GPU with torch 2.11.0:" in gpu_run._section(section, {"torch": "2.11.0", "gpu": None}, "c")


def test_the_packs_hold_the_page_its_plots_the_section_the_records_and_the_rows(tmp_path):
    stage, out = tmp_path / "stage", tmp_path / "out"
    files = {
        "docs/s.md": "page",
        "docs/s/plot.png": "png",
        "docs/other.md": "another suite's page",
        "bench_runs/s/suite.json": "{}",
        "bench_runs/s/p1/record.json": "{}",
        "bench_runs/s/p1/checkpoint.pt": "weights",
        "bench_runs/other/p9/record.json": "{}",
        "records/s/p1.json": "{}",
        "records/other/p9.json": "{}",
        "throughput/rows/reinforce.json": "{}",
        "throughput/throughput.json": "{}",
        "throughput/section.md": "not a record",
    }
    for name, text in files.items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_text(text)
    out.mkdir()
    gpu_run._pack(out, stage, "s", "## GPU\n", {"complete": False}, Log(out / "run.log"))
    assert sorted(p.name for p in out.iterdir()) == [
        "docs.tar.gz",
        "records.tar.gz",
        "run.log",
        "s.md",
        "status.json",
        "throughput-gpu.md",
    ]
    assert (out / "s.md").read_text() == "page" and (out / "throughput-gpu.md").read_text() == "## GPU\n"
    assert json.loads((out / "status.json").read_text()) == {"complete": False}
    with tarfile.open(out / "docs.tar.gz") as tar:
        assert {m.name for m in tar.getmembers() if m.isfile()} == {"s.md", "s/plot.png", "throughput-gpu.md"}
    with tarfile.open(out / "records.tar.gz") as tar:
        assert sorted(tar.getnames()) == [
            "bench_runs/s/p1/record.json",
            "bench_runs/s/suite.json",
            "records/s/p1.json",
            "throughput/rows/reinforce.json",
            "throughput/throughput.json",
        ]
    # no page yet, no section: nothing of either, the records still packed
    out2 = tmp_path / "out2"
    out2.mkdir()
    gpu_run._pack(out2, stage, "t", None, {}, Log(out2 / "run.log"))
    assert sorted(p.name for p in out2.iterdir()) == ["docs.tar.gz", "records.tar.gz", "run.log", "status.json"]


def test_a_step_runs_with_its_own_deadline_and_grace_and_records_exits_outside_ok(tmp_path, monkeypatch):
    calls, rc = [], {"v": 0}
    monkeypatch.setattr(
        gpu_run, "bounded", lambda cmd, env, deadline, grace, *a: calls.append((deadline, grace)) or rc["v"]
    )
    step = _step(tmp_path, deadline=1000.0, grace=30.0)
    step.run(["x"], "a")
    step.run(["x"], "b", deadline=1045.0, grace=5)
    assert calls == [(1000.0, 30.0), (1045.0, 5)] and step.status["failed"] == []
    rc["v"] = STOPPED
    step.run(["x"], "stopped, to continue")  # by default a stop for time is no failure
    step.run(["x"], "stopped page", ok=(0,))
    rc["v"] = 1
    step.run(["x"], "failed")
    assert step.status["failed"] == ["stopped page", "failed"]


def test_the_versions_are_asked_once_and_a_failed_answer_is_not_kept(tmp_path, monkeypatch):
    answers = [
        subprocess.CompletedProcess([], 1, "", "no torch"),
        subprocess.CompletedProcess([], 0, '{"torch": "2.11"}', ""),
    ]
    asked = []
    monkeypatch.setattr(gpu_run.subprocess, "run", lambda *a, **k: asked.append(a) or answers.pop(0))
    step = _step(tmp_path)
    step.stage.mkdir()
    assert gpu_run._versions(step) == {} and not (step.stage / "versions.json").exists()
    assert gpu_run._versions(step) == {"torch": "2.11"}
    assert gpu_run._versions(step) == {"torch": "2.11"} and len(asked) == 2


def test_the_page_is_complete_only_once_its_json_is_written(tmp_path, monkeypatch):
    step = _step(tmp_path)
    step.status["versions"] = {}
    tdir = step.stage / "throughput"

    def stopped_after_the_section(cmd, *a, **k):  # the section of the rows so far, but no throughput.json
        (tdir / "section.md").write_text("## cuda\n\npartial\n")
        return STOPPED

    monkeypatch.setattr(gpu_run, "bounded", stopped_after_the_section)
    gpu_run._throughput(step, ["steps=2"], "cmd")
    assert step.status["throughput"] == "not finished" and step.status["failed"] == []


def _bench_env(tmp_path, monkeypatch, counts, rc=0):
    """``_bench`` with the bench and the render faked: ``counts`` are what ``_suite_status`` answers in turn."""
    ran = []
    monkeypatch.setattr(gpu_run, "COMMITTED", tmp_path / "none")
    monkeypatch.setattr(gpu_run, "_suite_status", lambda *a: counts.pop(0))
    monkeypatch.setattr(
        gpu_run, "bounded", lambda cmd, env, deadline, grace, *a: ran.append((cmd, deadline, grace)) or rc
    )
    return ran


def test_a_finished_suite_with_a_fresh_page_runs_nothing(tmp_path, monkeypatch):
    ran = _bench_env(tmp_path, monkeypatch, [(2, 2)])
    step = _step(tmp_path)
    page = step.stage / "docs" / "s.md"
    page.parent.mkdir(parents=True)
    page.write_text("page")
    assert gpu_run._bench(step, "s", [], 2000.0) == (2, 2) and ran == []


def test_the_bench_counts_again_after_running_and_then_renders_by_the_budgets_end(tmp_path, monkeypatch):
    ran = _bench_env(tmp_path, monkeypatch, [(1, 2), (2, 2)])
    step = _step(tmp_path, deadline=1000.0, grace=30.0)
    assert gpu_run._bench(step, "s", ["seeds=0"], 1045.0) == (2, 2)
    (bench, d1, g1), (render, d2, g2) = ran
    assert bench[-1] == "seeds=0" and "render=false" in bench and (d1, g1) == (1000.0, 30.0)
    stage = step.stage
    assert render[-5:] == [
        "suite=s",
        f"out={stage / 'bench_runs'}",
        f"docs={stage / 'docs'}",
        f"records={stage / 'records'}",
        "render_only=true",
    ]
    assert (d2, g2) == (1045.0, 5) and step.status["failed"] == []


def test_a_render_cut_short_is_a_failure(tmp_path, monkeypatch):
    _bench_env(tmp_path, monkeypatch, [(2, 2)], rc=STOPPED)
    step = _step(tmp_path)
    assert gpu_run._bench(step, "s", [], 1045.0) == (2, 2) and step.status["failed"] == ["render"]


def test_the_bench_counts_the_committed_records_as_finished(tmp_path, monkeypatch):
    """Committed records of this suite's points (with its settings) make the suite finished: no bench runs."""
    from rlhf_zoo.bench.records import FORMAT, write_point_record
    from rlhf_zoo.bench.suites import GPU_CHECK, expand

    committed = tmp_path / "committed"
    for p in expand(GPU_CHECK):
        write_point_record(committed, {"format": FORMAT, "suite": p.suite, "id": p.id, "args": list(p.args)})
    monkeypatch.setattr(gpu_run, "COMMITTED", committed)
    ran = []
    monkeypatch.setattr(gpu_run, "bounded", lambda cmd, *a, **k: ran.append(cmd) or 0)
    n = len(expand(GPU_CHECK))
    assert gpu_run._bench(_step(tmp_path), GPU_CHECK.name, [], 2000.0) == (n, n)
    assert len(ran) == 1 and "render_only=true" in ran[0]  # the page only


@pytest.fixture
def fake_main(tmp_path, monkeypatch):
    """``main`` with the staging, the versions, the steps and the subprocesses faked; returns what it saw."""
    seen = {"ran": [], "unstaged": Unstaged({"id": "x", "pieces": []}, ready=True)}
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("RLHF_ZOO_CACHE", "restored after the test")

    def unstage(*a, **k):
        if isinstance(seen["unstaged"], Exception):
            raise seen["unstaged"]
        return seen["unstaged"]

    def throughput(step, tput, command):
        seen["tput"], seen["command"] = tput, command
        step.status["throughput"] = "complete"

    def bench(step, suite, bench_args, render_deadline):
        seen["suite"], seen["bench_args"], seen["env"] = suite, bench_args, step.env
        seen["cache"] = os.environ["RLHF_ZOO_CACHE"]
        return 1, 1

    monkeypatch.setattr(gpu_run, "unstage", unstage)
    monkeypatch.setattr(gpu_run, "_versions", lambda step: {})
    monkeypatch.setattr(gpu_run, "bounded", lambda cmd, *a, **k: seen["ran"].append(cmd) or 0)
    monkeypatch.setattr(gpu_run, "_throughput", throughput)
    monkeypatch.setattr(gpu_run, "_bench", bench)
    base = [f"stage={tmp_path / 'stage'}", f"site={tmp_path / 'site'}", f"out={tmp_path / 'out'}"]
    base.append(f"pieces={tmp_path / 'pieces'}")
    seen["main"] = lambda *argv: gpu_run.main([*base, *argv])
    return seen


def test_dotted_options_go_whole_to_their_step_and_override_the_size(fake_main, tmp_path):
    argv = [
        "size=check",
        "bench.train.steps=5",
        "bench.seeds=0",
        "throughput.steps=7",
        "throughput.model.dtype=float32",
    ]
    assert fake_main["main"](*argv) == 0
    assert fake_main["suite"] == "gpu-check" and fake_main["bench_args"] == ["train.steps=5", "seeds=0"]
    tput = fake_main["tput"]
    assert gpu_run.last_value(tput, "steps") == "7" and gpu_run.last_value(tput, "warmup") == "1"
    assert gpu_run.last_value(tput, "model.dtype") == "float32" and gpu_run.last_value(tput, "device") == "cuda"
    assert len([a for a in tput if a.startswith("steps=")]) == 1
    assert fake_main["command"] == "bash benchmarks/gpu/run.sh " + " ".join(
        [
            f"stage={tmp_path / 'stage'}",
            f"site={tmp_path / 'site'}",
            f"out={tmp_path / 'out'}",
            f"pieces={tmp_path / 'pieces'}",
            *argv,
        ]
    )


def test_check_times_fewer_throughput_steps_than_full(fake_main):
    steps = {}
    for size in ("full", "check"):
        assert fake_main["main"](f"size={size}") == 0
        steps[size] = int(gpu_run.last_value(fake_main["tput"], "steps"))
    assert steps == {"full": 3, "check": 2}


@pytest.mark.parametrize(
    ("argv", "converts"),
    [
        ([], True),
        (["throughput=false"], True),  # the suite's SmolLM2
        (["bench.model.name=tiny"], True),  # the page's SmolLM2
        (["bench.model.name=tiny", "throughput=false"], False),
        (["bench.model.name=tiny", "throughput.model.name=tiny"], False),
    ],
)
def test_smollm2_is_converted_only_when_a_step_uses_it(argv, converts, fake_main):
    assert fake_main["main"]("size=check", *argv) == 0
    assert [c[-1] for c in fake_main["ran"]] == (
        ["from rlhf_zoo.policies.models import convert_smollm2; print(convert_smollm2())"] if converts else []
    )


def test_the_steps_see_the_staged_site_and_cache(fake_main, tmp_path):
    assert fake_main["main"]() == 0
    stage = tmp_path / "stage"
    assert fake_main["env"]["RLHF_ZOO_CACHE"] == fake_main["cache"] == str(stage / "cache")
    assert fake_main["env"]["PYTHONPATH"].split(os.pathsep)[:2] == [str(tmp_path / "site"), str(ROOT)]


def test_the_records_pack_is_taken_from_the_pieces_or_from_records(fake_main, tmp_path):
    (tmp_path / "pieces").mkdir()
    _tar(tmp_path / "pieces" / "records.tar.gz", {"records/full/a.json": "carried"})
    _tar(tmp_path / "named.tar.gz", {"records/full/b.json": "named"})
    assert fake_main["main"]() == 0
    assert (tmp_path / "stage" / "records" / "full" / "a.json").read_text() == "carried"
    assert fake_main["main"](f"records={tmp_path / 'named.tar.gz'}") == 0
    assert (tmp_path / "stage" / "records" / "full" / "b.json").read_text() == "named"


def test_missing_pieces_or_a_bad_staging_exit_2_before_any_step(fake_main, tmp_path):
    fake_main["unstaged"] = Unstaged({"id": "x", "pieces": ["piece-01", "piece-02"]}, missing=["piece-02"])
    assert fake_main["main"]() == 2
    assert "1 of 2 pieces not joined yet (piece-02)" in (tmp_path / "out" / "run.log").read_text()
    fake_main["unstaged"] = StagingError("piece-01: sha256 mismatch")
    assert fake_main["main"]() == 2
    assert "run: piece-01: sha256 mismatch" in (tmp_path / "out" / "run.log").read_text()
    assert "suite" not in fake_main and fake_main["ran"] == [] and not (tmp_path / "out" / "status.json").exists()


LEAVER = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a worker left running in the group
"""


def test_workers_left_by_a_finished_parent_get_sigterm_at_the_deadline_less_grace(tmp_path):
    t0 = time.monotonic()
    cmd = [sys.executable, "-c", LEAVER]
    assert gpu_run.bounded(cmd, dict(os.environ), t0 + 4.5, 3, Log(tmp_path / "run.log"), "t", min_s=0) == STOPPED
    assert time.monotonic() - t0 < 3.5  # SIGTERM at 1.5 s ends the sleeping worker at once (at 4.5 s if late)


ZOMBIE = """
import os, subprocess, sys, time
from pathlib import Path
if sys.argv[1] == "parent":  # starts the worker, waits until it has left the group, exits
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # not the pipe of the step's output
    subprocess.Popen([sys.executable, __file__, "worker", sys.argv[2]], **quiet)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.05)
else:  # a child in the group that exits unreaped, then the worker leaves the group and lingers
    z = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)
    os.setpgid(0, 0)
    Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(30)
"""


def test_a_zombie_left_in_the_group_does_not_hold_the_step(tmp_path):
    """A process of the group that has exited but is not yet reaped is no running worker: the step ends with
    its parent's exit code, not at the deadline."""
    script, pid_file = tmp_path / "zombie.py", tmp_path / "worker.pid"
    script.write_text(ZOMBIE)
    t0 = time.monotonic()
    try:
        cmd = [sys.executable, str(script), "parent", str(pid_file)]
        assert gpu_run.bounded(cmd, dict(os.environ), t0 + 10, 1, Log(tmp_path / "run.log"), "t", min_s=0) == 0
        assert time.monotonic() - t0 < 7  # its parent exits after 1 to 3 s, the deadline less grace is 9 s
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
