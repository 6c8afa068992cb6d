"""The run directory's files as :class:`rlhf_zoo.runlog.RunLog` writes and reads them, in the cases a killed,
copied or hand-edited directory holds: a checkpoint folder without its state, a swap cut short beside a newer
checkpoint, blank lines and a torn multi-byte character in a log, weights that are views. Found untested by
mutation testing of runlog.py."""

from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch

from rlhf_zoo.errors import UserError
from rlhf_zoo.runlog import RunLog, WriteError, checkpoint_to_resume


def test_a_checkpoint_folder_without_its_state_is_no_checkpoint(tmp_path):
    """A copy cut short (``weights.safetensors`` alone): the run starts over instead of failing to load it, and
    the bench's runner does not count the directory as resumable."""
    log = RunLog(tmp_path / "r")
    log.ckpt_dir.mkdir()
    (log.ckpt_dir / "weights.safetensors").write_bytes(b"")
    assert not log.has_checkpoint()
    assert not checkpoint_to_resume(tmp_path / "r")
    assert log.read_checkpoint() is None


def test_a_checkpoint_set_aside_beside_a_newer_one_in_place_is_removed_not_put_back(tmp_path):
    """A kill after the swap's second rename and before the old folder's removal leaves the previous checkpoint
    under ``.checkpoint.old-*/`` beside the new one in place: the new one stays, the old one goes."""
    log = RunLog(tmp_path / "r")
    log.save_checkpoint({"w": torch.zeros(2)}, {"step": 2})
    aside = log.dir / ".checkpoint.old-killed"
    aside.mkdir()
    shutil.copytree(log.ckpt_dir, aside / "checkpoint")
    log.save_checkpoint({"w": torch.ones(2)}, {"step": 4})
    log.clear_interrupted_writes()
    weights, state = log.load_checkpoint()
    assert state["step"] == 4 and torch.equal(weights["w"], torch.ones(2))
    assert sorted(p.name for p in log.dir.glob(".checkpoint*")) == []


def test_a_half_copied_checkpoint_set_aside_is_not_put_back(tmp_path):
    """A folder set aside without its ``state.pt`` is no checkpoint: with none in place, it is removed, not moved
    into place as one (the run then starts over rather than failing to load half a checkpoint)."""
    log = RunLog(tmp_path / "r")
    (log.dir / ".checkpoint.old-x" / "checkpoint").mkdir(parents=True)
    (log.dir / ".checkpoint.old-x" / "checkpoint" / "weights.safetensors").write_bytes(b"")
    log.clear_interrupted_writes()
    assert not log.ckpt_dir.exists() and not log.has_checkpoint()
    assert sorted(p.name for p in log.dir.glob(".checkpoint*")) == []


def test_weights_that_are_views_are_saved_and_read_back(tmp_path):
    """A transposed or sliced tensor (a tied or fused weight's view) is not contiguous, which safetensors refuses:
    the checkpoint saves its values."""
    log = RunLog(tmp_path / "r")
    base = torch.arange(12.0).reshape(3, 4)
    log.save_checkpoint({"t": base.t(), "s": base[:, 1]}, {"step": 1})
    weights, _ = log.load_checkpoint()
    assert torch.equal(weights["t"], base.t()) and torch.equal(weights["s"], base[:, 1])


def test_a_first_checkpoint_that_cannot_be_written_says_none_was(tmp_path, monkeypatch):
    """A full disk at the first checkpoint: the line says that there is none to resume from, not that a previous
    one is kept."""
    import safetensors.torch

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    log = RunLog(tmp_path / "r")
    with pytest.raises(WriteError, match="no checkpoint was written"):
        log.save_checkpoint({"w": torch.zeros(2)}, {"step": 2})


def test_blank_lines_and_a_torn_character_at_the_end_of_a_log_are_read_over(tmp_path):
    """A blank line (an editor's, a copy's) is no row; an append cut short inside a multi-byte character leaves
    bytes that are not UTF-8: a resume still cuts the log back to its whole lines."""
    log = RunLog(tmp_path / "r")
    log.log(0, {"reward": 1.0})
    with log.metrics_path.open("a") as f:
        f.write("\n   \n")
    log.log(2, {"reward": 2.0})
    with log.metrics_path.open("ab") as f:
        f.write('{"step": 4, "note": "caf\u00e9'.encode()[:-1])  # the é cut after its first byte
    log.truncate_metrics(10)
    assert [m["step"] for m in log.read_metrics()] == [0, 2]


def test_samples_keep_the_order_their_fields_were_written_in(tmp_path):
    """``samples.jsonl`` is read by people: each line starts with the step, then the fields as given (prompt before
    completion), not sorted by name."""
    log = RunLog(tmp_path / "r")
    log.log_samples(3, [{"prompt": "p", "completion": "c", "proxy": 0.5}])
    line = log.samples_path.read_text().splitlines()[0]
    assert list(json.loads(line)) == ["step", "prompt", "completion", "proxy"]
    assert line.index('"prompt"') < line.index('"completion"')


def test_meta_that_is_not_an_object_reads_as_none(tmp_path):
    """A ``meta.json`` holding a list (hand-edited, or another tool's): a resumed run writes its own rather than
    failing on it."""
    log = RunLog(tmp_path / "r")
    (log.dir / "meta.json").write_text("[1, 2]")
    assert log.read_meta() is None
    log.write_meta({"a": 1})
    assert log.read_meta() == {"a": 1}


def test_a_run_directory_that_cannot_be_made_is_one_line(tmp_path):
    """``run_dir`` under a file: a UserError naming the folder, not a FileExistsError traceback."""
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match=rf"^cannot create the run directory {tmp_path / 'f' / 'r'}: "):
        RunLog(tmp_path / "f" / "r")
