"""benchmarks/throughput.py's own figures with the measuring faked: the ratio to TRL, the memory ratio, the page
lines, the JSON and Markdown outputs, the rows kept from an earlier run and the settings every run gets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import benchmarks.throughput as throughput
from rlhf_zoo.errors import UserError

BASE = {
    "step_s": 2.0,
    "generate_s": 1.0,
    "reward_s": 0.1,
    "logprobs_s": 0.3,
    "update_s": 0.5,
    "other_s": 0.1,
    "completions_per_step": 32,
    "mfu_update": 0.25,
    "device": "cpu",
    "dtype": "float32",
    "threads": 3,
    "peak_flops": 2.5e12,
    "peak_flops_source": "measured matmul",
}
# completions/s and peak GiB per objective: reinforce is neither the first nor the fastest
FIGURES = {
    "best_of_n": (9.0, 4.0),
    "reinforce": (3.0, 1.5),
    "ppo_lite": (2.5, 1.7),
    "bond": (1.2, 2.2),
    "jbond": (1.0, 2.6),
    "sft": (8.0, 2.0),
}
TRL = {**BASE, "algo": "trl.RLOOTrainer", "completions_per_s": 2.0, "peak_memory_gb": 3.0}


class Fakes:
    def __init__(self, monkeypatch):
        self.profiled: list[tuple] = []
        self.trl: list[tuple] = []
        self.references: list[list[str]] = []
        self.clock = iter([100.0, 190.0])
        monkeypatch.setattr(throughput, "profile_rows", self.profile_rows)
        monkeypatch.setattr(throughput, "run_in_subprocess", self.run_in_subprocess)
        monkeypatch.setattr(throughput, "reference_config", self.reference_config)
        monkeypatch.setattr(throughput, "hardware", lambda: "TestBox")
        monkeypatch.setattr(throughput, "time", SimpleNamespace(time=lambda: next(self.clock)))

    def profile_rows(self, algos, rest, steps, warmup):
        self.profiled.append((list(algos), list(rest), steps, warmup))
        cps, mem = FIGURES[algos[0]]
        return [{**BASE, "algo": algos[0], "completions_per_s": cps, "peak_memory_gb": mem}]

    def run_in_subprocess(self, target, args):
        self.trl.append((target, list(args)))
        return dict(TRL)

    def reference_config(self, rest):
        self.references.append(list(rest))
        return SimpleNamespace(algo=SimpleNamespace(samples=3))


@pytest.fixture
def fakes(monkeypatch):
    return Fakes(monkeypatch)


def _lines(out: str) -> list[str]:
    return out.splitlines()


def test_ratio_to_trl_and_memory_ratio_are_worked_from_the_right_rows(fakes, capsys):
    assert throughput.main(["algos=best_of_n,reinforce,jbond,sft", "model.name=tiny"]) == 0
    lines = _lines(capsys.readouterr().out)
    # reinforce 3.0 / TRL 2.0 completions per second; J-BOND 2.6 / sft 2.0 GiB
    assert lines[-2] == (
        "**reinforce (k=3, leave-one-out) / TRL RLOO (k=3): 1.50x completions per second** "
        "(3.00 vs 2.00; goal: >= 1.5x)."
    )
    assert lines[-1] == (
        "J-BOND peak memory / plain fine-tuning (sft) peak memory: 1.30x "
        "(2.60 GiB vs 2.00 GiB; goal with LoRA: <= 1.3x)."
    )


def test_page_lines_name_the_hardware_command_settings_time_and_peak(fakes, capsys):
    argv = ["algos=sft,reinforce", "model.name=tiny", "steps=4", "warmup=2"]
    assert throughput.main(argv) == 0
    lines = _lines(capsys.readouterr().out)
    defaults = " ".join(throughput.DEFAULTS)
    assert lines[0] == "- hardware: TestBox; device: cpu; dtype: float32; torch threads: 3"
    assert (
        lines[1] == "- command: `python benchmarks/throughput.py algos=sft,reinforce model.name=tiny steps=4 warmup=2`"
    )
    assert lines[2] == f"- settings: {defaults} model.name=tiny; 2 warm-up + 4 timed steps per objective"
    assert lines[3].startswith("- commit: ") and lines[3].endswith("; wall time 1.5 min")  # 90 s
    assert lines[4] == "- MFU peak: 2,500 GFLOP/s (measured matmul)"
    table = [line for line in lines if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in table] == ["objective", "sft", "reinforce", "trl.RLOOTrainer"]
    # no J-BOND: no memory line; the ratio line last
    assert lines[-1].startswith("**reinforce (k=3") and not any("J-BOND" in line for line in lines)


def test_every_run_gets_the_defaults_less_those_the_command_line_gives(fakes, capsys):
    argv = ["algos=reinforce", "model.name=tiny", "train.batch_prompts=4", "model.max_new_tokens=8", "steps=2"]
    assert throughput.main(argv) == 0
    rest = [
        "task=sentiment",
        "task.gold=null",
        "train.warmup_steps=0",
        "train.lr_schedule=constant",
        "model.name=tiny",
        "train.batch_prompts=4",
        "model.max_new_tokens=8",
    ]
    assert fakes.profiled == [(["reinforce"], rest, 2, 1)]
    assert fakes.references == [rest]
    assert fakes.trl == [(throughput.TRL_REFERENCE, [*rest, "steps=2", "warmup=1"])]
    assert throughput.TRL_REFERENCE.endswith("benchmarks/trl_reference.py")


def test_without_trl_there_is_no_ratio_and_no_trl_run(fakes, capsys, tmp_path):
    out = tmp_path / "t.json"
    assert throughput.main(["algos=reinforce,jbond,sft", "model.name=tiny", "trl=false", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert not fakes.trl and not fakes.references and "TRL RLOO" not in printed
    assert _lines(printed)[-1].startswith("J-BOND peak memory / plain fine-tuning (sft) peak memory: 1.30x")
    saved = json.loads(out.read_text())
    assert (
        saved["trl"] is None
        and saved["ratio"] is None
        and [r["algo"] for r in saved["rows"]]
        == [
            "reinforce",
            "jbond",
            "sft",
        ]
    )


def test_without_reinforce_there_is_no_ratio(fakes, capsys):
    assert throughput.main(["algos=jbond", "model.name=tiny"]) == 0
    printed = capsys.readouterr().out
    assert "TRL RLOO (k=" not in printed and "J-BOND peak memory" not in printed
    assert "| trl.RLOOTrainer" in printed  # TRL measured all the same


def test_out_is_the_figures_as_json_and_md_appends_the_printed_section(fakes, capsys, tmp_path):
    out, md = tmp_path / "t.json", tmp_path / "page.md"
    md.write_text("# Throughput\n\nearlier\n")
    argv = ["algos=reinforce,sft", "model.name=tiny", f"out={out}", f"md={md}"]
    assert throughput.main(argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["argv"] == argv and saved["settings"] == [*throughput.DEFAULTS, "model.name=tiny"]
    assert [(r["algo"], r["completions_per_s"]) for r in saved["rows"]] == [("reinforce", 3.0), ("sft", 8.0)]
    assert saved["trl"] == TRL and saved["ratio"] == pytest.approx(1.5)
    assert md.read_text() == "# Throughput\n\nearlier\n" + "\n## cpu (TestBox)\n\n" + printed


def test_rows_kept_from_an_earlier_run_are_reused_and_counted(fakes, capsys, tmp_path, monkeypatch):
    rows = tmp_path / "rows"
    argv = ["algos=reinforce,sft", "model.name=tiny", f"rows={rows}"]
    assert throughput.main(argv) == 0
    first = capsys.readouterr().out
    assert "kept from an earlier run" not in first
    assert sorted(p.name for p in rows.iterdir()) == ["reinforce.json", "sft.json", "trl.json"]
    assert len(fakes.profiled) == 2 and len(fakes.trl) == 1

    # as if stopped after reinforce: sft measured again, reinforce and TRL kept
    (rows / "sft.json").unlink()
    fakes.clock = iter([0.0, 30.0])
    assert throughput.main(argv) == 0
    captured = capsys.readouterr()
    assert [p[0] for p in fakes.profiled] == [["reinforce"], ["sft"], ["sft"]] and len(fakes.trl) == 1
    assert "; wall time 0.5 min (2 row(s) kept from an earlier run, not counted)" in captured.out
    assert f"reinforce: kept from {rows / 'reinforce.json'}" in captured.err
    assert f"trl: kept from {rows / 'trl.json'}" in captured.err
    assert "1.50x completions per second" in captured.out  # the kept rows' figures

    # other steps, then other warm-up steps, then other settings (one change at a time): nothing kept
    for i, other in enumerate(("steps=5", "warmup=0", "model.max_new_tokens=8"), start=1):
        argv.append(other)
        fakes.clock = iter([0.0, 30.0])
        assert throughput.main(argv) == 0
        assert "kept from an earlier run" not in capsys.readouterr().out
        assert len(fakes.profiled) == 3 + 2 * i and len(fakes.trl) == 1 + i


def test_one_kept_row_is_counted_once(fakes, capsys, tmp_path):
    rows = tmp_path / "rows"
    argv = ["algos=reinforce", "model.name=tiny", "trl=false", f"rows={rows}"]
    assert throughput.main(argv) == 0
    capsys.readouterr()
    fakes.clock = iter([0.0, 0.0])
    assert throughput.main(argv) == 0
    assert "(1 row(s) kept from an earlier run, not counted)" in capsys.readouterr().out


KEY = {"settings": ["task=sentiment", "model.name=tiny"], "steps": 3, "warmup": 1, "algo": "reinforce"}


def _measure(calls: list, row: dict):
    return lambda: calls.append(1) or dict(row)


def test_measured_keeps_the_row_with_its_key_and_reuses_it_only_for_the_same_key(tmp_path, capsys):
    calls: list = []
    rows = tmp_path / "deep" / "rows"  # made when first written
    assert throughput.measured(str(rows), "reinforce", KEY, _measure(calls, {"x": 1})) == {"x": 1}
    assert json.loads((rows / "reinforce.json").read_text()) == {"key": KEY, "row": {"x": 1}}
    assert [p.name for p in rows.iterdir()] == ["reinforce.json"]  # no temporary file left

    assert throughput.measured(str(rows), "reinforce", dict(KEY), _measure(calls, {"x": 2})) == {"x": 1, "kept": True}
    assert len(calls) == 1 and f"reinforce: kept from {rows / 'reinforce.json'}" in capsys.readouterr().err

    for other in ({**KEY, "steps": 4}, {**KEY, "warmup": 0}, {**KEY, "settings": ["task=sentiment"]}):
        assert throughput.measured(str(rows), "reinforce", other, _measure(calls, {"x": 3})) == {"x": 3}
        assert json.loads((rows / "reinforce.json").read_text()) == {"key": other, "row": {"x": 3}}
    assert len(calls) == 4
    # another name is another file
    assert throughput.measured(str(rows), "sft", {**KEY, "algo": "sft"}, _measure(calls, {"y": 1})) == {"y": 1}
    assert len(calls) == 5 and (rows / "sft.json").is_file()


def test_measured_without_a_rows_folder_measures_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls: list = []
    assert throughput.measured(None, "reinforce", KEY, _measure(calls, {"x": 1})) == {"x": 1}
    assert throughput.measured(None, "reinforce", KEY, _measure(calls, {"x": 1})) == {"x": 1}
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_measured_stopped_while_writing_leaves_the_earlier_row_whole(tmp_path, monkeypatch):
    """The row is written beside its file and renamed over it: a run stopped mid-write leaves the old row
    readable (a torn ``reinforce.json`` would be a JSON traceback on the next run)."""
    rows = tmp_path / "rows"
    throughput.measured(str(rows), "reinforce", KEY, lambda: {"x": 1})
    before = (rows / "reinforce.json").read_text()
    real = Path.write_text

    def torn(self, text, *a, **k):
        real(self, text[:5], *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", torn)
    with pytest.raises(KeyboardInterrupt):
        throughput.measured(str(rows), "reinforce", {**KEY, "steps": 9}, lambda: {"x": 2})
    monkeypatch.undo()
    assert (rows / "reinforce.json").read_text() == before
    assert throughput.measured(str(rows), "reinforce", KEY, lambda: {"x": 3}) == {"x": 1, "kept": True}


def test_by_default_every_objective_and_trl_on_the_documented_settings(fakes, capsys):
    """The docstring's default: SmolLM2 + LoRA, 16 prompts x 2 (reinforce's own k), 24 new tokens, sentiment
    with no gold model, a constant learning rate without warm-up; 1 warm-up + 3 timed steps per objective."""
    assert throughput.main([]) == 0
    rest = [
        "task=sentiment",
        "task.gold=null",
        "train.batch_prompts=16",
        "model.max_new_tokens=24",
        "train.warmup_steps=0",
        "train.lr_schedule=constant",
    ]
    names = ["best_of_n", "reinforce", "ppo_lite", "bond", "jbond", "sft"]
    assert fakes.profiled == [([a], rest, 3, 1) for a in names]
    assert fakes.trl == [(throughput.TRL_REFERENCE, [*rest, "steps=3", "warmup=1"])]


def test_an_objective_the_config_refuses_fails_before_any_is_measured(fakes):
    with pytest.raises(UserError, match="unknown algorithm 'nope'"):
        throughput.main(["algos=reinforce,nope", "model.name=tiny", "trl=false"])
    assert not fakes.profiled and not fakes.trl


def test_without_trl_a_config_trl_cannot_match_is_no_error(monkeypatch, capsys):
    """``trl=false``: TRL's own limits (its RLOO has no cosine schedule) do not stop our objectives."""
    row = {**BASE, "algo": "reinforce", "completions_per_s": 3.0, "peak_memory_gb": 1.5}
    monkeypatch.setattr(throughput, "profile_rows", lambda algos, *a: [dict(row)])
    monkeypatch.setattr(throughput, "run_in_subprocess", lambda *a: pytest.fail("TRL measured with trl=false"))
    argv = ["algos=reinforce", "model.name=tiny", "trl=false", "train.lr_schedule=cosine"]
    assert throughput.main(argv) == 0
    assert "train.lr_schedule=cosine" in capsys.readouterr().out
