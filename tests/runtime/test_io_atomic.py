"""What :mod:`rlhf_zoo.io`'s writers, folder builds and build locks promise beyond the cases of
``test_io_signals`` and the checkpoint tests: the bytes are flushed before they are synced, a failed sync of a
file is not passed over, a write leaves no descriptor open, the temporary files a kill leaves are found by
name (and only those), and a second builder waits for the first."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlhf_zoo import io
from rlhf_zoo.errors import UserError


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_bytes_are_in_the_file_when_it_is_synced(tmp_path, monkeypatch):
    """fsync flushes what the kernel holds: the writer's buffer must reach it first, else the sync makes an
    empty file durable and a power loss after the rename leaves the target empty."""
    sizes = []
    fsync = os.fsync

    def recorded(fd):
        sizes.append(os.fstat(fd).st_size)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recorded)
    io.atomic_write_text(tmp_path / "summary.json", "x" * 100)
    assert sizes == [100]


def test_a_file_that_cannot_be_synced_in_a_folder_build_fails_it_and_keeps_the_old_target(tmp_path, monkeypatch):
    """Only a folder's sync may be refused (EINVAL on some file systems); a file's failed sync is a failed write:
    the build fails, the previous folder stays and no temporary folder is left."""
    target = tmp_path / "model"
    target.mkdir()
    (target / "w.bin").write_bytes(b"old")
    fsync = os.fsync

    def files_fail(fd):
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", files_fail)
    with pytest.raises(OSError), io.atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"new")
    assert (target / "w.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd (Linux)")
def test_a_folder_build_leaves_no_descriptor_open(tmp_path):
    """Each file and folder synced is closed again: a run that saves hundreds of checkpoints must not run
    out of file descriptors."""
    with io.atomic_dir(tmp_path / "warm-up") as tmp:
        (tmp / "a").write_text("a")
    before = _open_fds()
    for i in range(3):
        with io.atomic_dir(tmp_path / f"checkpoint-{i}") as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "w.bin").write_bytes(b"w")
            (tmp / "state.json").write_text("{}")
        io.atomic_write_text(tmp_path / f"f{i}.txt", "x")
    assert _open_fds() == before


def test_a_folder_with_a_dangling_link_is_built(tmp_path):
    """A link is left alone (not opened to be synced): one that points nowhere (yet) does not fail the build."""
    with io.atomic_dir(tmp_path / "model") as tmp:
        (tmp / "w.bin").write_bytes(b"w")
        (tmp / "latest").symlink_to(tmp_path / "not-there")
    assert (tmp_path / "model" / "latest").is_symlink() and (tmp_path / "model" / "w.bin").read_bytes() == b"w"


def test_a_write_killed_before_its_rename_leaves_a_temporary_that_is_found_by_name(tmp_path, monkeypatch):
    """``temp_files_of`` finds what a ``kill -9`` between the write and the rename leaves: here the rename is
    the point where the temporary exists, whole, beside the target (even for a name with glob characters)."""
    seen = []
    replace = os.replace

    def at_the_rename(src, dst):
        seen.append((Path(src), io.temp_files_of(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", at_the_rename)
    for name in ("metrics.jsonl", "run[1].json"):
        io.atomic_write_text(tmp_path / name, "{}\n")
    assert [found for _, found in seen] == [[src] for src, _ in seen]
    assert io.temp_files_of(tmp_path / "metrics.jsonl") == []


def test_a_file_gets_the_mode_a_plain_write_gives_under_any_umask(tmp_path):
    mask = os.umask(0o002)
    try:
        written = io.atomic_write_text(tmp_path / "a.txt", "a")
        plain = tmp_path / "b.txt"
        plain.write_text("b")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o664


def test_a_rewritten_file_keeps_its_mode_as_a_plain_write_does(tmp_path):
    """A page or log the user made private (0o600) or group-writable (0o664) stays so when it is written again."""
    for mode in (0o600, 0o664, 0o640):
        written, plain = tmp_path / f"a{mode:o}.md", tmp_path / f"b{mode:o}.md"
        for f in (written, plain):
            f.write_text("old")
            f.chmod(mode)
        io.atomic_write_text(written, "new")
        plain.write_text("new")
        assert written.read_text() == "new"
        assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == mode


@pytest.mark.skipif(not Path(io.PROC_STATUS).exists(), reason="the kernel shows no /proc/self/status")
def test_the_umask_is_read_without_setting_it(monkeypatch):
    """Setting the umask to read it leaves a moment in which another thread's new file gets no mask: where the
    kernel shows the umask, it is read, not set; elsewhere (here: no such file) it is set and put back."""
    mask = os.umask(0o027)
    try:
        calls = []
        real = os.umask
        monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
        assert io.umask_mode(0o666) == 0o640 and io.umask_mode(0o777) == 0o750
        assert calls == []
        monkeypatch.setattr(io, "PROC_STATUS", "/nonexistent/status")
        assert io.umask_mode(0o666) == 0o640 and calls == [0, 0o027]
        assert real(0o027) == 0o027  # put back
    finally:
        os.umask(mask)


def test_json_is_indented_with_sorted_keys_and_ends_its_line(tmp_path):
    """meta.json and summary.json are read by people and diffed: two-space indent, sorted keys, a last newline."""
    path = io.atomic_write_json(tmp_path / "meta.json", {"b": 1, "a": [1]})
    assert path.read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'


def test_missing_folders_are_created_for_a_file_or_a_folder(tmp_path):
    """A first run or a fresh cache: the folders above what is written do not exist yet."""
    path = io.atomic_write_text(tmp_path / "runs" / "x" / "config.yaml", "seed: 0\n")
    assert path.read_text() == "seed: 0\n"
    with io.atomic_dir(tmp_path / "cache" / "models" / "zoo-lm") as tmp:
        (tmp / "config.json").write_text("{}")
    assert (tmp_path / "cache" / "models" / "zoo-lm" / "config.json").read_text() == "{}"


@dataclass
class _Built:
    layers: int = 2
    heads: int = 4


def test_a_setting_a_build_did_not_record_is_named_as_differing():
    """A model built before a setting existed (its meta.json lacks it) is not taken for one built with it."""
    with pytest.raises(UserError, match=r"holds a toy model built with other settings \(heads=None \(asked 4\)\)"):
        io.check_built_settings(Path("m"), {"layers": 2}, _Built(), "toy", "rebuild it")


def test_every_differing_setting_is_named():
    with pytest.raises(UserError, match=r"\(layers=3 \(asked 2\), heads=8 \(asked 4\)\): rebuild it$"):
        io.check_built_settings(Path("m"), {"layers": 3, "heads": 8}, _Built(), "toy", "rebuild it")


def test_a_second_builder_waits_for_the_first_and_says_so(tmp_path, capsys):
    """Two processes that build one artefact (the two workers of ``bench jobs=2``): the second waits, saying
    why, until the first is done, and then holds the lock itself."""
    target = tmp_path / "models" / "zoo-lm"
    done = tmp_path / "first-done"
    first = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from rlhf_zoo.io import build_lock\n"
        f"with build_lock({str(target)!r}, 'zoo-lm'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(0.5)\n"
        f"    Path({str(done)!r}).write_text('built')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with subprocess.Popen([sys.executable, "-c", first], stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with io.build_lock(target, "zoo-lm"):
            assert done.read_text() == "built"
    assert proc.returncode == 0
    assert capsys.readouterr().out == "waiting for another process's build of zoo-lm ...\n"


def test_a_lock_is_free_again_once_its_build_is_done(tmp_path, capsys):
    from filelock import FileLock

    held = io.build_lock(tmp_path / "gold", "the gold model")
    with held:
        pass
    other = FileLock(str(tmp_path / ".gold.build.lock"))
    other.acquire(timeout=0)  # raises Timeout while the build still holds it
    other.release()
    with io.build_lock(tmp_path / "gold", "the gold model"):
        pass
    assert capsys.readouterr().out == ""


def test_a_value_that_is_not_json_is_written_as_its_text(tmp_path):
    path = io.atomic_write_json(tmp_path / "m.json", {"path": Path("a/b"), "n": 1})
    assert json.loads(path.read_text()) == {"n": 1, "path": "a/b"}


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replaced"])
def test_a_folder_put_in_place_is_made_durable_by_syncing_its_parent(tmp_path, monkeypatch, existing):
    """The rename that puts a folder (a checkpoint, a model) in place is a change of its parent folder: without the
    parent's fsync, a power loss could undo it. Removing the sync after a swap broke no test."""
    target = tmp_path / "ckpt"
    if existing:
        target.mkdir()
        (target / "old").write_text("old")
    synced = []
    real = io._fsync

    def fsync(path, directory=False):
        synced.append((Path(path), directory))
        real(path, directory)

    monkeypatch.setattr(io, "_fsync", fsync)
    with io.atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
    assert (target / "new").read_text() == "new" and not (target / "old").exists()
    assert synced[-1] == (tmp_path, True), synced  # the parent, after the rename


def test_a_folder_that_appeared_meanwhile_is_kept_without_replace(tmp_path):
    """``replace=False`` (a model built by two workers at once): the first one in place stays, the second is dropped."""
    target = tmp_path / "model"
    with io.atomic_dir(target, replace=False) as tmp:
        (tmp / "w").write_text("first")
    with io.atomic_dir(target, replace=False) as tmp:
        (tmp / "w").write_text("second")
    assert (target / "w").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left
