"""Run directories (config, metrics, summary, trackers), no overwriting, and interruption/resume."""

import json

import pytest

from tests.runtime.resume_helpers import interrupted_then_resumed, metrics_rows


def test_train_writes_config_metrics_and_summary(tmp_path, cli):
    run_dir = tmp_path / "run"
    code, out, _ = cli(
        "train",
        "algo=bond",
        "task=exact",
        "seed=1",
        f"run_dir={run_dir}",
        "train.steps=20",
        "train.eval_every=10",
        "train.progress=false",
    )
    assert code == 0
    assert (run_dir / "config.yaml").is_file() and (run_dir / "meta.json").is_file()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 10, 20]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("algo", "task", "steps", "reward/proxy", "kl/exact", "kl/to_bon", "kl/from_bon", "bon/kl_ref"):
        assert key in summary, key
    assert summary["algo"] == "bond" and summary["steps"] == 20
    assert "seed: 1" in (run_dir / "config.yaml").read_text()
    # stdout: the summary's headline numbers as JSON, then where the run is
    printed, _, where = out.rpartition("run directory: ")
    assert where.strip() == str(run_dir)
    shown = json.loads(printed)
    assert {"algo", "task", "steps", "reward/proxy", "reward/gold", "kl/exact", "kl/to_bon"} <= set(shown)
    assert shown == {k: summary[k] for k in shown}


def test_reinforce_summary_has_kl_to_optimal(tmp_path, cli):
    code, _, _ = cli("train", "algo=reinforce", f"run_dir={tmp_path}/r", "train.steps=5", "train.progress=false")
    assert code == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "kl/to_optimal" in summary and summary["kl/to_optimal"] >= 0


def test_existing_run_dir_is_not_overwritten(tmp_path, cli):
    args = ["train", "algo=best_of_n", f"run_dir={tmp_path}/b", "train.progress=false"]
    assert cli(*args)[0] == 0
    before = (tmp_path / "b" / "metrics.jsonl").read_text()
    code, _, err = cli(*args)
    assert code == 2 and "resume=true" in err
    assert (tmp_path / "b" / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("algo", ["bond", "jbond", "ppo_lite", "iterative_bond"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, algo):
    """Interrupt after 7 steps (Ctrl-C), resume: the metrics file equals an uninterrupted run's."""
    common = [
        f"algo={algo}",
        "train.steps=12",
        "train.eval_every=4",
        "train.progress=false",
        "seed=3",
        "algo.quantiles=mc" if algo in ("bond", "iterative_bond") else "train.checkpoint_every=0",
    ]
    if algo == "iterative_bond":
        common.append("algo.anchor_period=5")
    full, part = interrupted_then_resumed(common, tmp_path, stop_after=7)
    assert metrics_rows(part / "metrics.jsonl") == metrics_rows(full / "metrics.jsonl")
    a = json.loads((tmp_path / "part" / "summary.json").read_text())
    b = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert a["kl/exact"] == b["kl/exact"] and a["reward/proxy"] == b["reward/proxy"]


def test_metrics_also_go_to_tensorboard(tmp_path, cli):
    code, _, err = cli(
        "train",
        "algo=reinforce",
        f"run_dir={tmp_path}/tb",
        "train.steps=4",
        "train.eval_every=2",
        "train.progress=false",
        "train.log_with=tensorboard",
    )
    assert code == 0, err
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("kl/exact")] == [0, 2, 4]


def test_the_python_api_takes_the_configs_runtime(tmp_path):
    """``Trainer(cfg, *build(cfg))`` without ``runtime=`` runs as ``rlhf-zoo train`` would: on ``cfg.device``
    and with ``cfg.train.log_with``'s tracker (it used a plain CPU runtime, so the tracker never saw a metric)."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    run_dir = tmp_path / "api"
    cfg = load_config(
        ["algo=reinforce", f"run_dir={run_dir}", "train.steps=2", "train.eval_every=2", "train.progress=false"]
        + ["train.log_with=tensorboard"]
    )
    trainer = Trainer(cfg, *build(cfg))
    assert trainer.rt.log_with == "tensorboard" and str(trainer.rt.device) == "cpu"
    trainer.fit()
    assert list(run_dir.rglob("events.out.tfevents.*"))


def test_a_checkpoint_saved_on_a_gpu_resumes_on_the_cpu(tmp_path, monkeypatch):
    """The training state's GPU tensors (base cache, reference rewards) load onto the run's device, not onto
    the GPU that saved them: on a machine without one (or in a process whose GPU is another) they would not
    load. The RNG state, saved on the CPU, stays there. GPU storage is simulated by its saved location tag."""
    import torch

    from rlhf_zoo.runlog import RunLog

    cache, rng = torch.arange(3.0), torch.get_rng_state()
    on_gpu = {cache.untyped_storage().data_ptr()}
    tag = torch.serialization.location_tag
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda s: "cuda:0" if s.data_ptr() in on_gpu else tag(s))
        RunLog(str(tmp_path / "run")).save_checkpoint({"w": torch.ones(2)}, {"cache": cache, "torch_rng": rng})
    weights, state = RunLog(str(tmp_path / "run")).load_checkpoint(torch.device("cpu"))
    assert torch.equal(state["cache"], cache) and state["cache"].device.type == "cpu"
    torch.set_rng_state(state["torch_rng"])  # a CPU ByteTensor, as set_rng_state needs
    assert torch.equal(weights["w"], torch.ones(2))


def test_the_gpu_generator_saved_and_restored_is_the_process_own(tmp_path, monkeypatch):
    """A checkpoint holds the generator of the run's own GPU and a resumed process restores it onto its own GPU
    (it held every visible GPU's state as the main process saw them, so rank 1's cuda:1 was reset to the main
    process's untouched copy). No GPU here: torch.cuda's generator calls are stand-ins that record the device."""
    import torch

    from rlhf_zoo.checkpoint import _restore_cuda_rng, training_state
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    read, written = [], []
    state = torch.tensor([7, 1], dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": read.append(torch.device(device)) or state)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(2, dtype=torch.uint8)] * 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": written.append((s, torch.device(device))))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: written.append(("all", len(states))))
    cfg = load_config(["algo=reinforce", f"run_dir={tmp_path / 'r'}", "train.steps=1", "train.progress=false"])
    trainer = Trainer(cfg, *build(cfg))
    trainer.rt.device = torch.device("cuda", 1)  # as the process of rank 1 sees its device
    saved = training_state(trainer)["cuda_rng"]  # by rank: one process here
    assert read == [torch.device("cuda", 1)] and list(saved) == [0] and saved[0] is state
    _restore_cuda_rng(saved[0], torch.device("cuda", 1))
    _restore_cuda_rng(saved[0], torch.device("cpu"))  # resumed on the CPU: no GPU generator to set
    _restore_cuda_rng([state, state], torch.device("cuda", 0))  # an older checkpoint: every GPU's, as before
    assert written == [(state, torch.device("cuda", 1)), ("all", 2)]


def test_resume_with_other_settings_names_what_differs_and_how_to_resume(tmp_path, cli):
    """``rlhf-zoo train ... resume=true`` with a setting changed (here the natural try to train longer) said
    only "config.yaml differs from this run's config": not which setting, nor how to continue the run."""
    run_dir = tmp_path / "r"
    args = ["algo=reinforce", "task=exact", "threads=1", "train.progress=false", f"run_dir={run_dir}"]
    code, _, err = cli("train", *args, "train.steps=2", "train.eval_every=1")
    assert code == 0, err
    code, _, err = cli("train", *args, "train.steps=4", "train.eval_every=1", "resume=true")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "train.steps" in err and "2" in err and "4" in err, err
    assert f"config={run_dir}/config.yaml resume=true" in err, err
    code, _, err = cli("train", f"config={run_dir}/config.yaml", "resume=true")  # as the message says
    assert code == 0, err
    # the run had finished: it said "resuming ... from step 2 (its last checkpoint)", as if there were more to do
    assert f"resume=true: {run_dir} has run all its 2 steps: nothing left to train" in err and "resuming" not in err
    slashed = [a if not a.startswith("run_dir=") else f"run_dir={run_dir}/" for a in args]
    code, _, err = cli("train", *slashed, "train.steps=5", "resume=true")
    assert code == 2 and f"config={run_dir}/config.yaml resume=true" in err, err  # not r//config.yaml


@pytest.mark.parametrize(
    ("other", "first"),
    [("algo=ppo_lite", "algo.name: reinforce → ppo_lite"), ("task=sentiment", "task.name: exact → sentiment")],
)
def test_resume_with_another_algorithm_names_the_algorithm_first(tmp_path, cli, other, first):
    """``resume=true algo=jbond`` into a BOND run said "(algo.anchor_period: 0 → None, algo.eta: None → 0.02,
    algo.gamma: None → 0.0 and 8 more)": the differing algorithm itself was among the 8 not shown; so was the task."""
    args = ["task=exact", "threads=1", "train.progress=false", "train.steps=1", f"run_dir={tmp_path}/r"]
    code, _, err = cli("train", "algo=reinforce", *args)
    assert code == 0, err
    args = [a for a in args if a != other.replace("sentiment", "exact")]
    code, _, err = cli("train", "algo=reinforce", *args, other, "resume=true")
    assert code == 2 and f"differs from this run's config ({first}" in err, err


def test_resume_of_a_run_whose_config_yaml_does_not_read_is_one_line(tmp_path, cli):
    """A hand-edited config.yaml that is not YAML any more was a yaml.parser.ParserError traceback at resume."""
    args = ["algo=reinforce", "task=exact", "threads=1", "train.progress=false", "train.steps=1", f"run_dir={tmp_path}"]
    code, _, err = cli("train", *args)
    assert code == 0, err
    with open(tmp_path / "config.yaml", "a") as f:
        f.write("algo: {name: reinforce\n")
    code, _, err = cli("train", *args, "resume=true")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"resume=true but {tmp_path}/config.yaml does not read as YAML (YAML syntax error at line" in err, err
    with open(tmp_path / "config.yaml", "wb") as f:  # saved by an editor in Latin-1: a UnicodeDecodeError traceback
        f.write(b"algo: {name: r\xe9inforce}\n")
    code, _, err = cli("train", *args, "resume=true")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "config.yaml does not read as YAML (not UTF-8 text (byte 0xe9 at offset 14)" in err, err


def test_a_run_resumes_with_other_settings_that_cannot_change_its_results(tmp_path, cli):
    """A run stopped and resumed without its progress bar (a preempted job restarted in a batch queue), or
    with another checkpoint cadence, was refused: config.yaml differed. None of config.NO_EFFECT changes the
    run's numbers, so it resumes, and its config.yaml holds the settings it now runs with."""
    import yaml

    run_dir = tmp_path / "r"
    args = ["algo=reinforce", "task=exact", "threads=1", "train.eval_every=1", f"run_dir={run_dir}"]
    code, _, err = cli("train", *args, "train.steps=2", "train.progress=true", "train.checkpoint_every=1")
    assert code == 0, err
    later = ["train.progress=false", "train.checkpoint_every=5", "train.checkpoint_minutes=0", "train.log_with=none"]
    code, out, err = cli("train", *args, "train.steps=2", *later, "resume=true")
    assert code == 0, err
    assert "has run all its 2 steps: nothing left to train" in err, out + err  # resumed, not refused
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]
    assert (saved["progress"], saved["checkpoint_every"], saved["checkpoint_minutes"]) == (False, 5, 0)


@pytest.mark.parametrize("other", ["train.eval_every=1", "train.eval_prompts=2", "train.save_samples=1"])
def test_settings_that_shape_the_logs_are_not_among_those_without_effect(tmp_path, cli, other):
    """``config.NO_EFFECT`` lets a run resume, a bench keep a finished point and compare pool runs whatever those
    settings say: the evaluation cadence and what it logs shape metrics.jsonl and the training-path curves, so a
    change of them is refused on resume, and makes another run for the bench (no test held the list's contents)."""
    from rlhf_zoo.bench.records import same_run

    run_dir = tmp_path / "r"
    args = ["algo=reinforce", "task=exact", "threads=1", "train.steps=2", "train.eval_every=2", f"run_dir={run_dir}"]
    code, _, err = cli("train", *args, "train.progress=false")
    assert code == 0, err
    code, _, err = cli("train", *args, other, "resume=true")
    assert code == 2 and other.split("=")[0] in err and "differs from this run's config" in err, err
    assert not same_run(args, [*args, other])


def test_a_resume_keeps_the_first_start_provenance_in_meta_json_and_records_itself(tmp_path):
    """meta.json is the provenance of the run's first start (command, commit, versions, hardware, start
    time), which a resumed run rewrote with its own; each resume now appends its own provenance and the step
    it resumed from to ``resumes``."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build
    from tests.runtime.resume_helpers import interrupt_after

    common = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "train.progress=false", f"run_dir={tmp_path}"]
    cfg = load_config(common)
    interrupt_after(Trainer(cfg, *build(cfg), argv=["rlhf-zoo", "train", "first"]), 1)
    first = json.loads((tmp_path / "meta.json").read_text())
    assert first["command"] == "rlhf-zoo train first" and "resumes" not in first
    for argv, stop_after in ((["rlhf-zoo", "train", "second"], 1), (["rlhf-zoo", "train", "third"], None)):
        cfg = load_config([*common, "resume=true"])
        trainer = Trainer(cfg, *build(cfg), argv=argv)
        if stop_after is None:
            trainer.fit()
        else:
            interrupt_after(trainer, stop_after)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert {k: v for k, v in meta.items() if k != "resumes"} == first
    assert [(r["command"], r["step"], r["processes"]) for r in meta["resumes"]] == [
        ("rlhf-zoo train second", 1, 1),
        ("rlhf-zoo train third", 2, 1),
    ]
    assert {"started", "git_commit", "versions", "hardware"} <= set(meta["resumes"][0])


def test_a_run_started_over_without_a_checkpoint_writes_its_own_provenance_not_a_resume(tmp_path):
    """resume=true where no checkpoint is left (a run killed before its first one) starts over at step 0: its
    meta.json is this start's provenance, as a fresh run's, not the first run's with this start appended to
    ``resumes`` (that run's metrics are gone; nothing of this run came from it)."""
    import shutil

    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build
    from tests.runtime.resume_helpers import interrupt_after

    common = ["algo=reinforce", "train.steps=2", "train.progress=false", f"run_dir={tmp_path}"]
    cfg = load_config(common)
    interrupt_after(Trainer(cfg, *build(cfg), argv=["rlhf-zoo", "train", "first"]), 1)
    shutil.rmtree(tmp_path / "checkpoint")
    cfg = load_config([*common, "resume=true"])
    Trainer(cfg, *build(cfg), argv=["rlhf-zoo", "train", "again"]).fit()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["command"] == "rlhf-zoo train again" and "resumes" not in meta
    assert "prompts" in meta


@pytest.mark.parametrize(("rank", "expected"), [(1, 1), (0, 0), (2, 0)])
def test_a_resumed_process_takes_its_own_ranks_cpu_generator(tmp_path, rank, expected):
    """The checkpoint holds every process's CPU generator by rank; a resumed process restores its own rank's, and
    a rank the checkpoint lacks (written by fewer processes) rank 0's. Before, only a 56 s two-process run with
    LoRA dropout (tests/lm/test_distributed.py) failed when rank 1 took rank 0's. Two processes are simulated by
    the saved states and the resumed trainer's rank."""
    import torch

    from rlhf_zoo.checkpoint import restore, save
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    cfg = load_config(["algo=reinforce", f"run_dir={tmp_path / 'r'}", "train.steps=1", "train.progress=false"])
    trainer = Trainer(cfg, *build(cfg))
    save(trainer)
    path = tmp_path / "r" / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=False)
    states = {r: torch.Generator().manual_seed(100 + r).get_state() for r in (0, 1)}
    state["torch_rng"] = states
    torch.save(state, path)
    trainer.rt.rank = rank
    restore(trainer)
    assert torch.equal(torch.get_rng_state(), states[expected])


@pytest.mark.parametrize(("rank", "expected"), [(1, 1), (0, 0), (2, 0)])
def test_a_resumed_process_takes_its_own_ranks_gpu_generator(tmp_path, monkeypatch, rank, expected):
    """As the CPU generator: the checkpoint holds each process's GPU generator by rank, and a resumed process sets
    its own rank's (rank 0's where the checkpoint lacks it) onto its own GPU. Restoring rank 0's in every process
    gave each process the main one's dropout masks on its GPU, and no test failed. No GPU here: the checkpoint's
    states are edited in, and torch.cuda.set_rng_state is a stand-in that records what it is given."""
    import torch

    from rlhf_zoo.checkpoint import restore, save
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    cfg = load_config(["algo=reinforce", f"run_dir={tmp_path / 'r'}", "train.steps=1", "train.progress=false"])
    trainer = Trainer(cfg, *build(cfg))
    save(trainer)
    path = tmp_path / "r" / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=False)
    states = {r: torch.tensor([r, 100 + r], dtype=torch.uint8) for r in (0, 1)}
    state["cuda_rng"] = states
    torch.save(state, path)
    written = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": written.append((s, torch.device(device))))
    trainer.rt.rank = rank
    trainer.rt.device = torch.device("cuda", rank)  # as the process of this rank sees its GPU
    restore(trainer)
    assert len(written) == 1
    assert torch.equal(written[0][0], states[expected]) and written[0][1] == torch.device("cuda", rank)


def test_meta_json_names_the_folder_that_config_yamls_relative_paths_start_from(tmp_path, cli, monkeypatch):
    """config.yaml keeps paths as written (``run_dir=run``, ``task.prompts=p.jsonl``): re-running it from another
    folder needs the one they were relative to, which nothing recorded."""
    import yaml

    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    args = ("train", "algo=reinforce", "task=exact", "run_dir=run", "train.steps=1", "train.progress=false")
    code, _, err = cli(*args)
    assert code == 0, err
    run = tmp_path / "here" / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["run_dir"] == "run"
    assert json.loads((run / "meta.json").read_text())["cwd"] == str(tmp_path / "here")


def test_the_last_step_is_evaluated_when_it_is_not_a_multiple_of_eval_every(tmp_path, cli):
    """Evaluations at step 0, every ``train.eval_every`` steps, and the last step: with 5 steps and
    ``eval_every=2``, at 0, 2, 4 and 5, and the summary is step 5's evaluation (not step 4's)."""
    run_dir = tmp_path / "r"
    args = ["train", "algo=reinforce", f"run_dir={run_dir}", "train.steps=5", "train.eval_every=2"]
    assert cli(*args, "train.progress=false")[0] == 0
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 2, 4, 5]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["kl/exact"] == lines[-1]["kl/exact"] != lines[-2]["kl/exact"]


def test_a_run_started_over_without_a_checkpoint_writes_the_metrics_of_a_fresh_run(tmp_path):
    """resume=true in a directory with metrics.jsonl but no checkpoint (a finished sweep's run, a run killed
    before its first checkpoint) starts over at step 0: its metrics.jsonl must be the fresh run's, not the
    old lines followed by the new ones."""
    import shutil

    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    args = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "train.progress=false", f"run_dir={tmp_path}/r"]
    cfg = load_config(args)
    Trainer(cfg, *build(cfg)).fit()
    fresh = metrics_rows(tmp_path / "r" / "metrics.jsonl")
    shutil.rmtree(tmp_path / "r" / "checkpoint")
    cfg = load_config([*args, "resume=true"])
    Trainer(cfg, *build(cfg)).fit()
    assert metrics_rows(tmp_path / "r" / "metrics.jsonl") == fresh


def test_iterative_bond_swaps_its_anchor_after_every_anchor_period_steps(tmp_path):
    """``algo.anchor_period=3``: π_anchor becomes π after steps 3 and 6 (steps count from 1), and stays
    behind it after the others."""
    import torch

    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    cfg = load_config(
        ["algo=iterative_bond", "algo.anchor_period=3", "train.steps=6", "train.progress=false"]
        + [f"run_dir={tmp_path}/r"]
    )
    tr = Trainer(cfg, *build(cfg))
    tr.begin()
    swapped = []
    for _ in range(6):
        tr.train_step()
        swapped.append(torch.equal(tr.policy.anchor_logits, tr.policy.logits.detach()))
    tr.end()
    assert swapped == [False, False, True, False, False, True]
