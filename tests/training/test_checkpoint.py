"""The checkpoint restores every field of the training state (rlhf_zoo/checkpoint.py).

Each field is checked against the trainer that wrote it, so restoring any one of them wrongly (or
not at all) fails here, including those that the resume-equals-uninterrupted tests cannot see
(torch's global generator, which keyed sampling does not use).
"""

import os

import pytest
import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.io import atomic_dir
from rlhf_zoo.train import Trainer, build

COMMON = ["train.steps=10", "train.eval_every=3", "train.progress=false"]
BOND = ["algo=bond", "algo.quantiles=mc", "algo.k=4"]


def _trainer(run_dir, *extra, algo=BOND):
    cfg = load_config([*algo, *COMMON, f"run_dir={run_dir}", *extra])
    return Trainer(cfg, *build(cfg))


def _run(tr, steps):
    tr.begin()
    tr.evaluate()
    for _ in range(steps):
        for key, v in tr.train_step().items():
            tr.train_acc[key].append(v)
        tr.elapsed += 0.25


def test_every_field_of_the_state_round_trips(tmp_path):
    a = _trainer(tmp_path / "r")
    _run(a, 4)  # the last evaluation at step 3: train_acc holds step 4's metrics
    torch.manual_seed(1234)
    torch.rand(7)  # move the global generator somewhere a fresh process would not be
    a.save()
    expected_rng = torch.rand(3)

    torch.manual_seed(0)  # a new process: another global generator state
    b = _trainer(tmp_path / "r", "resume=true")
    assert b.restore() == 4 and b.step == 4
    assert torch.equal(torch.rand(3), expected_rng)
    for (name, p), q in zip(a.policy.state_dict().items(), b.policy.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    sa, sb = a.opt.state_dict(), b.opt.state_dict()
    assert sa["state"].keys() == sb["state"].keys() and sa["state"]
    for i in sa["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(sa["state"][i][key]), torch.as_tensor(sb["state"][i][key]))
    assert b.sched.state_dict() == a.sched.state_dict() and b.sched.last_epoch == 4
    assert a.cache.entries.keys() == b.cache.entries.keys() and a.cache.entries
    for key, (roll, rewards) in a.cache.entries.items():
        assert torch.equal(b.cache.entries[key][1], rewards)
        assert torch.equal(b.cache.entries[key][0].completion_ids, roll.completion_ids)
    assert (b.costs.completions, b.costs.tokens, b.costs.reward_calls) == (
        a.costs.completions,
        a.costs.tokens,
        a.costs.reward_calls,
    )
    assert a.costs.completions > 0
    assert b.evaluator.costs.completions == a.evaluator.costs.completions
    assert dict(b.train_acc) == dict(a.train_acc) and b.train_acc
    assert b.elapsed == a.elapsed == 1.0
    assert b.evaluated_step == a.evaluated_step == 0
    # the phase timings (``time/<phase>_s`` of the summary) continue from the checkpoint's, not from 0
    assert b.costs.seconds == a.costs.seconds and {"generate", "reward"} <= set(a.costs.seconds)
    assert b.evaluator.costs.seconds == a.evaluator.costs.seconds and a.evaluator.costs.seconds
    assert b.evaluator.costs.as_dict() == a.evaluator.costs.as_dict()


def test_a_restored_run_drops_the_log_lines_written_after_its_checkpoint(tmp_path):
    """A run killed after an evaluation that no checkpoint followed has that evaluation's lines in
    ``metrics.jsonl`` and ``samples.jsonl``; the resumed run continues from the checkpoint's step and writes
    them again. Restoring must cut both files back to the checkpoint's step, or the step's lines appear twice
    (and the first from a run whose later state was lost)."""
    a = _trainer(tmp_path / "r", algo=["algo=reinforce"])
    a.begin()
    a.evaluate()
    for _ in range(2):
        a.train_step()
    a.evaluate()
    a.save()  # step 2
    a.train_step()
    a.evaluate()  # step 3, then killed: no checkpoint
    assert [m["step"] for m in a.log.read_metrics()] == [0, 2, 3]
    assert {r["step"] for r in a.log.read_samples()} == {0, 2, 3}

    b = _trainer(tmp_path / "r", "resume=true", algo=["algo=reinforce"])
    assert b.restore() == 2
    assert [m["step"] for m in b.log.read_metrics()] == [0, 2]
    assert {r["step"] for r in b.log.read_samples()} == {0, 2}


@pytest.mark.parametrize("fresh", [False, True], ids=["from-checkpoint", "no-checkpoint"])
def test_a_log_line_torn_by_a_kill_is_dropped_when_the_run_resumes(tmp_path, fresh):
    """A ``kill -9`` (or a power loss) during an evaluation's append to ``metrics.jsonl`` or ``samples.jsonl``
    leaves a part of its line at the end. The resumed run cuts both files back to its checkpoint's step (or,
    without a checkpoint, to nothing) and continues: it must not fail on that line, for ever. Found by
    killing runs at their appends."""
    a = _trainer(tmp_path / "r", algo=["algo=reinforce"])
    _run(a, 3)
    a.evaluate()
    if not fresh:
        a.save()  # step 3
    for _ in range(3):
        a.train_step()
    for path in (a.log.metrics_path, a.log.samples_path):  # step 6's lines, killed half-way
        with path.open("a") as f:
            f.write('{"step": 6, "reward/pro')
    a.end()
    b = _trainer(tmp_path / "r", "resume=true", algo=["algo=reinforce"])
    b.fit()
    whole = _trainer(tmp_path / "u", algo=["algo=reinforce"])
    whole.fit()

    def untimed(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    assert [m["step"] for m in b.log.read_metrics()] == [0, 3, 6, 9, 10]
    assert untimed(b.log.read_metrics()) == untimed(whole.log.read_metrics())
    assert b.log.read_samples() == whole.log.read_samples()
    # the lines kept by the cut are rewritten as they were written: key order too (prompt, completion, rewards)
    assert b.log.samples_path.read_text() == whole.log.samples_path.read_text()


def test_only_a_torn_last_line_is_dropped_when_the_log_is_cut_back(tmp_path):
    """A kill cuts short only the last append, so only the last line may be torn; a line that is not JSON before
    others (the file damaged otherwise) stops the cut with an error and leaves the file as it was, rather than
    losing that evaluation's line without a word (dropping any torn line passed every test)."""
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.runlog import RunLog

    log = RunLog(tmp_path / "r")
    text = '{"step": 0}\n{"step": 2, "reward/pro\n{"step": 4}\n'
    log.metrics_path.write_text(text)
    with pytest.raises(UserError, match=r"metrics.jsonl: line 2 of 3 is not JSON \(Unterminated string"):
        log.truncate_metrics(10)
    assert log.metrics_path.read_text() == text
    log.metrics_path.write_text('{"step": 0}\n{"step": 2}\n{"step": 4, "reward/pro')
    log.truncate_metrics(10)
    assert [m["step"] for m in log.read_metrics()] == [0, 2]


def test_sampled_evaluation_reference_is_restored(tmp_path):
    """The held-out reference rewards (drawn once per run) come back from the checkpoint rather than
    being drawn again: a restored evaluator that drew them again would have spent evaluation samples."""
    from rlhf_zoo.tasks.base import Task

    a = _trainer(tmp_path / "r", algo=["algo=reinforce"])
    sampled = Task(**{**a.task.__dict__, "oracle": None})  # sample the evaluation instead of enumerating
    a.evaluator.task = sampled
    a.evaluator(a.policy, round=0)
    assert a.evaluator.reference_state() is not None
    a.save()
    b = _trainer(tmp_path / "r", "resume=true", algo=["algo=reinforce"])
    b.evaluator.task = sampled
    b.restore()
    spent = b.evaluator.costs.completions
    for x, y in zip(a.evaluator.reference_state(), b.evaluator.reference_state(), strict=True):
        assert torch.equal(x, y)
    b.evaluator(b.policy, round=1)
    # only the evaluated policy's samples were drawn, not the reference completions again
    assert b.evaluator.costs.completions - spent == len(b.evaluator.prompts) * b.evaluator.samples


STOPPED_AT_2 = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "threads=1"]


def _stopped_at_step_2(d):
    """A 4-step run (``STOPPED_AT_2``) stopped after step 2 with its checkpoint: a directory to resume."""
    tr = _trainer(d, *STOPPED_AT_2, algo=[])
    _run(tr, 2)
    tr.save()
    tr.end()
    return d


def test_a_checkpoint_write_cut_short_leaves_nothing_behind_and_loses_no_checkpoint(tmp_path, capsys):
    """``kill -9`` during a checkpoint write leaves its temporary folder (``.checkpoint.tmp-*``, as large
    as a checkpoint; found after killing a zoo-lm run mid-write, and still there once the resumed run
    finished); one between the two renames of the swap leaves the previous checkpoint only under
    ``.checkpoint.old-*/``. The resumed run removes the first and continues from the second."""
    import shutil

    args = STOPPED_AT_2
    d = _stopped_at_step_2(tmp_path / "r")
    (d / ".checkpoint.tmp-killed").mkdir()
    (d / ".checkpoint.tmp-killed" / ".tmpXYZ").write_bytes(b"\0" * 1000)
    (d / ".checkpoint.old-killed").mkdir()
    shutil.move(d / "checkpoint", d / ".checkpoint.old-killed" / "checkpoint")

    resumed = _trainer(d, *args, "resume=true", algo=[])
    resumed.fit()
    assert "resuming" in capsys.readouterr().err  # from step 2, not over from step 0
    assert resumed.saved_step == 4 and sorted(p.name for p in d.glob(".checkpoint*")) == []
    assert [m["step"] for m in resumed.log.read_metrics()] == [0, 2, 4]
    assert torch.load(d / "checkpoint" / "state.pt", weights_only=False)["step"] == 4


def test_the_temporary_files_of_writes_cut_short_are_removed_when_the_run_resumes(tmp_path):
    """``kill -9`` during an atomic write of a run file (``config.yaml``, ``meta.json``, ``summary.json``, or a
    log cut back by a resume) leaves its temporary file, a new one at each kill; the next run of the directory
    removes them, and only them. Found by killing runs at every ``os.replace``."""
    args = STOPPED_AT_2
    d = _stopped_at_step_2(tmp_path / "r")
    left = [".meta.json.k1ll3d.tmp", ".config.yaml.a.tmp", ".summary.json.b.tmp", ".metrics.jsonl.c.tmp"]
    for name in [*left, ".samples.jsonl.d.tmp"]:
        (d / name).write_text("half")
    (d / ".mine.json.e.tmp").write_text("a user's")
    _trainer(d, *args, "resume=true", algo=[]).fit()
    assert sorted(p.name for p in d.glob(".*.tmp")) == [".mine.json.e.tmp"]


@pytest.mark.parametrize("existing", [False, True])
def test_atomic_dir_syncs_its_files_and_folders_before_the_rename(tmp_path, monkeypatch, existing):
    """A checkpoint folder is renamed into place only once its files and folders are on disk (fsync): else a
    power loss after the rename can leave the new name holding empty or torn files. ``existing``: a previous
    checkpoint is swapped out."""
    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def recorded_replace(src, dst):
        events.append(("replace", str(dst)))
        replace(src, dst)

    target = tmp_path / "checkpoint"
    if existing:
        target.mkdir()
        (target / "old.bin").write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"w" * 100)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "state.bin").write_bytes(b"s")
    into_place = events.index(("replace", str(target)))
    synced = {ino for kind, ino in events[:into_place] if kind == "fsync"}
    written = [target, target / "weights.bin", target / "sub", target / "sub" / "state.bin"]
    assert {p.stat().st_ino for p in written} <= synced
    assert ("fsync", tmp_path.stat().st_ino) in events[into_place:]  # the rename itself made durable
    assert sorted(p.name for p in target.iterdir()) == ["sub", "weights.bin"]


def test_a_checkpoint_write_that_fails_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    """The disk fills while step 4's checkpoint is written (torch.save of its state fails after its weights
    were written): the run directory still holds step 2's checkpoint, its weights with its state, not step 4's
    weights beside step 2's state (a checkpoint written in place would be)."""
    from rlhf_zoo.runlog import WriteError

    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.checkpoint_every=0", algo=[])
    _run(tr, 2)
    tr.save()
    at_2 = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    for _ in range(2):
        tr.train_step()

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(WriteError, match="previous checkpoint is kept"):
        tr.save()
    monkeypatch.undo()
    tr.end()
    weights, state = tr.log.load_checkpoint()
    assert state["step"] == 2
    assert weights.keys() == at_2.keys() and all(torch.equal(weights[k], at_2[k]) for k in at_2)


def test_a_file_written_atomically_is_replaced_not_rewritten_in_place(tmp_path):
    """``atomic_write_text`` puts a new file in place by a rename: a reader that opened the old one reads it
    whole, never the new text over it (or a half-written one, had the writer been killed)."""
    from rlhf_zoo.io import atomic_write_text

    path = tmp_path / "metrics.jsonl"
    atomic_write_text(path, "old\n" * 100)
    with path.open() as reader:
        atomic_write_text(path, "new\n")
        assert reader.read() == "old\n" * 100
    assert path.read_text() == "new\n"


def test_atomic_write_text_syncs_the_file_before_the_rename(tmp_path, monkeypatch):
    """As a checkpoint folder: the new file's bytes are on disk before its name replaces the old one, else a
    power loss after the rename can leave config.yaml or summary.json empty."""
    from rlhf_zoo.io import atomic_write_text

    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def recorded_replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    path = atomic_write_text(tmp_path / "summary.json", "{}\n")
    inode = path.stat().st_ino
    assert ("replace", inode) in events
    assert ("fsync", inode) in events[: events.index(("replace", inode))]


def test_atomic_dir_leaves_the_target_as_it_was_on_an_error_and_without_replace(tmp_path):
    """A build that fails leaves the target as it was and no temporary folder; with ``replace=False`` a target
    that another process put in place first is kept (the new one is discarded, leaving nothing behind)."""
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_dir(target) as tmp:
        (tmp / "a.bin").write_bytes(b"new")
        raise RuntimeError("killed")
    with atomic_dir(target, replace=False) as tmp:
        (tmp / "a.bin").write_bytes(b"new")
    assert (target / "a.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_checkpoint_swap_cut_between_its_renames_leaves_the_previous_one_to_resume(tmp_path, monkeypatch):
    """A kill after the previous checkpoint was renamed aside and before the new one took its name: the run
    directory counts as resumable (``checkpoint_to_resume``, which the bench's runner asks), and the next run
    puts the previous checkpoint back whole."""
    from rlhf_zoo.runlog import RunLog, checkpoint_to_resume

    log = RunLog(tmp_path / "r")
    log.save_checkpoint({"w": torch.zeros(2)}, {"step": 2})
    assert checkpoint_to_resume(tmp_path / "r")
    replace, calls = os.replace, []

    def killed_at_the_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill
        replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        log.save_checkpoint({"w": torch.ones(2)}, {"step": 4})
    monkeypatch.undo()
    assert not log.has_checkpoint() and checkpoint_to_resume(tmp_path / "r")
    log.clear_interrupted_writes()
    weights, state = log.load_checkpoint()
    assert state["step"] == 2 and torch.equal(weights["w"], torch.zeros(2))


def test_a_checkpoint_set_aside_mid_swap_is_read_where_it_lies(tmp_path, monkeypatch):
    """A reader without the run's lock (``rlhf-zoo export``) that looks between the swap's two renames, or after
    a kill there, reads the checkpoint set aside, not "no checkpoint" (it used to fail: no ``checkpoint/``)."""
    from rlhf_zoo.runlog import RunLog

    log = RunLog(tmp_path / "r")
    log.save_checkpoint({"w": torch.zeros(2)}, {"step": 2})
    replace, seen = os.replace, []

    def read_between_the_renames(src, dst):
        replace(src, dst)
        if ".checkpoint.old-" in str(dst):  # the previous one set aside, the new one not yet in place
            seen.append(log.read_checkpoint())

    monkeypatch.setattr(os, "replace", read_between_the_renames)
    log.save_checkpoint({"w": torch.ones(2)}, {"step": 4})
    monkeypatch.undo()
    weights, state = seen[0]
    assert state["step"] == 2 and torch.equal(weights["w"], torch.zeros(2))
    assert log.read_checkpoint()[1]["step"] == 4
    assert RunLog(tmp_path / "empty").read_checkpoint() is None


def test_of_two_checkpoints_set_aside_the_newest_is_read(tmp_path):
    """With no ``checkpoint/`` (a swap under way) and two set aside (an earlier one that its swap failed to delete),
    a reader takes the newest one set aside, the later step; reading the older first passed every test."""
    import shutil

    from rlhf_zoo.runlog import RunLog

    log = RunLog(tmp_path / "r")
    for step, name, when in ((4, ".checkpoint.old-z", 2000), (2, ".checkpoint.old-a", 1000)):
        log.save_checkpoint({"w": torch.full((2,), float(step))}, {"step": step})
        (tmp_path / "r" / name).mkdir()
        shutil.move(log.ckpt_dir, tmp_path / "r" / name / "checkpoint")
        os.utime(tmp_path / "r" / name, (when, when))
    weights, state = log.read_checkpoint()
    assert state["step"] == 4 and torch.equal(weights["w"], torch.full((2,), 4.0))


def test_weights_and_state_come_from_one_checkpoint_though_a_run_saves_between_the_reads(tmp_path, monkeypatch):
    """A run writing its next checkpoint while another process reads the last: the state read after the weights
    is that of the same checkpoint (by path, it was the next one's: step 4 beside step 2's weights)."""
    import safetensors.torch

    from rlhf_zoo.runlog import RunLog

    log = RunLog(tmp_path / "r")
    log.save_checkpoint({"w": torch.zeros(2)}, {"step": 2})
    load_file = safetensors.torch.load_file

    def then_the_run_saves(*args, **kwargs):
        weights = load_file(*args, **kwargs)
        log.save_checkpoint({"w": torch.ones(2)}, {"step": 4})
        return weights

    monkeypatch.setattr(safetensors.torch, "load_file", then_the_run_saves)
    weights, state = log.read_checkpoint()
    assert state["step"] == 2 and torch.equal(weights["w"], torch.zeros(2))


def test_files_written_atomically_get_the_umask_mode_not_a_private_one(tmp_path):
    """A temporary file is created private (0600); the file put in place has the mode a plain write gives it
    (0644 under umask 022), so that others can read a run's config.yaml and metrics."""
    from rlhf_zoo.io import atomic_write_text

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "config.yaml", "seed: 0\n")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_checkpoints_weights_get_the_mode_of_the_runs_other_files(tmp_path):
    """safetensors writes its file private (0600): a run's checkpoint weights could not be read by the colleague
    who could read its config, metrics and state.pt."""
    from rlhf_zoo.runlog import RunLog

    mask = os.umask(0o022)
    try:
        RunLog(tmp_path / "r").save_checkpoint({"w": torch.ones(2)}, {"step": 1})
    finally:
        os.umask(mask)
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "r" / "checkpoint").iterdir()}
    assert modes == {"weights.safetensors": 0o644, "state.pt": 0o644}


class _OfTwoProcesses:
    """The trainer's runtime seen as rank ``rank`` of two processes that counted alike (a sum doubles)."""

    def __init__(self, rt, rank):
        self._rt, self.rank = rt, rank

    def __getattr__(self, name):
        return getattr(self._rt, name)

    @property
    def is_main(self):
        return self.rank == 0

    def sum_ints(self, counts):
        return {k: 2 * v for k, v in counts.items()}

    def gather_objects(self, obj):
        return [obj, obj]


def test_costs_are_summed_over_processes_and_restored_once(tmp_path):
    """The checkpoint holds the costs of every process; on resume the main process carries that total and the
    others start at 0, so that the next sum over processes is the total again (not twice it)."""
    a = _trainer(tmp_path / "r")
    _run(a, 2)
    a.rt = _OfTwoProcesses(a.rt, 0)
    a.save()
    counts = (a.costs.completions, a.costs.tokens, a.costs.reward_calls)
    eval_calls = a.evaluator.costs.reward_calls  # the testbed's evaluation enumerates: reward calls, no samples
    assert min(counts) > 0 and eval_calls > 0
    for rank, share in ((0, 2), (1, 0)):
        b = _trainer(tmp_path / "r", "resume=true")
        b.rt = _OfTwoProcesses(b.rt, rank)
        assert b.restore() == 2
        assert (b.costs.completions, b.costs.tokens, b.costs.reward_calls) == tuple(share * c for c in counts)
        assert b.evaluator.costs.reward_calls == share * eval_calls
        assert b.costs.seconds == a.costs.seconds  # each process's own timings continue
        # every process holds the whole base cache (a process without it would draw its entries again, alone)
        assert b.cache.entries.keys() == a.cache.entries.keys() and a.cache.entries


@pytest.mark.parametrize("damaged", ["state.pt", "weights.safetensors"])
def test_a_damaged_checkpoint_is_one_line_at_resume(tmp_path, cli, damaged):
    """A checkpoint file cut short (a partial copy from another machine) was a PytorchStreamReader traceback."""
    args = ["algo=bond", "task=exact", "threads=1", "train.progress=false", "train.steps=1", f"run_dir={tmp_path}"]
    code, _, err = cli("train", *args)
    assert code == 0, err
    path = tmp_path / "checkpoint" / damaged
    path.write_bytes(path.read_bytes()[:100])
    code, _, err = cli("train", *args, "resume=true")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"the checkpoint in {tmp_path}/checkpoint does not load ({damaged}:" in err, err
    assert "it is damaged (a partial copy?): copy it again, or delete it to start the run over" in err, err


def test_an_error_of_loading_that_is_not_the_files_is_not_called_a_damaged_checkpoint(tmp_path, cli, monkeypatch):
    """Out of memory while the state loads (a RuntimeError, as a CUDA one is) says nothing of the files: it is
    reported as out of memory, never turned into advice to delete the checkpoint."""
    args = ["algo=bond", "task=exact", "threads=1", "train.progress=false", "train.steps=1", f"run_dir={tmp_path}"]
    code, _, err = cli("train", *args)
    assert code == 0, err

    def out_of_memory(*a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch, "load", out_of_memory)
    code, _, err = cli("train", *args, "resume=true")
    assert code != 0 and "out of memory" in err and "damaged" not in err, err
