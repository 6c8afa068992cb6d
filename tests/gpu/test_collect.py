"""benchmarks/gpu/collect.py without a GPU run: hand-made ``docs.tar.gz`` and ``records.tar.gz`` packs (laid out
as benchmarks/gpu/run.py's ``_pack`` writes them) go into a repository-like folder."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from benchmarks.gpu import collect
from benchmarks.gpu.staging import StagingError

SECTION = "## GPU\n\n- hardware: 1x H100\n\n| objective | s/step |\n|---|---|\n| reinforce | 0.50 |\n"
PAGE = "# Throughput\n\n## CPU\n\ncpu figures\n\n## GPU\n\nNot run.\n\n## Notes\n\nnotes\n"


def _pack(path: Path, files: dict[str, str], dirs: tuple[str, ...] = ()) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


def _sent_back(src: Path, section: str | None = SECTION) -> Path:
    src.mkdir(parents=True)
    docs = {"gpu-check.md": "# Benchmark `gpu-check`\n", "gpu-check/reward_vs_kl.png": "png"}
    if section is not None:
        docs["throughput-gpu.md"] = section
    _pack(src / "docs.tar.gz", docs, dirs=("gpu-check",))
    records = {
        "bench_runs/gpu-check/manifest.json": "{}",
        "bench_runs/gpu-check/p1/record.json": '{"point": "p1"}',
        "records/gpu-check/p1.json": '{"compact": "p1"}',
        "throughput/rows/trl.json": '{"row": {}}',
        "throughput/throughput.json": "{}",
    }
    _pack(src / "records.tar.gz", records, dirs=("records/gpu-check",))
    return src


def _where(repo: Path) -> dict[str, str]:
    return {"docs": str(repo / "docs"), "runs": str(repo / "bench_runs"), "pieces": str(repo / "gpu_stage")}


def test_collect_puts_each_file_where_the_repository_keeps_it(tmp_path):
    src = _sent_back(tmp_path / "files")
    repo = tmp_path / "repo"
    docs, runs, pieces = repo / "docs", repo / "bench_runs", repo / "gpu_stage"
    docs.mkdir(parents=True)
    (docs / "throughput.md").write_text(PAGE)

    written = collect.collect(src, _where(repo))

    assert (docs / "gpu-check.md").read_text() == "# Benchmark `gpu-check`\n"
    assert (docs / "gpu-check" / "reward_vs_kl.png").read_text() == "png"
    # the section goes into the page, not beside it
    assert not (docs / "throughput-gpu.md").exists()
    assert (docs / "throughput.md").read_text() == PAGE.replace("## GPU\n\nNot run.\n", SECTION)
    # the pack as sent, for the next GPU run
    assert (pieces / "records.tar.gz").read_bytes() == (src / "records.tar.gz").read_bytes()
    # the runs without their bench_runs/ prefix; the compact records beside the committed ones
    assert (runs / "gpu-check" / "p1" / "record.json").read_text() == '{"point": "p1"}'
    assert (runs / "gpu-check" / "manifest.json").read_text() == "{}"
    assert not (runs / "bench_runs").exists()
    assert (docs / "records" / "gpu-check" / "p1.json").read_text() == '{"compact": "p1"}'
    # the throughput rows stay in the pack only
    assert not (docs / "throughput").exists() and not (runs / "throughput").exists()
    assert not (docs / "bench_runs").exists() and not (runs / "records").exists()
    assert written == [
        docs / "gpu-check.md",
        docs / "gpu-check" / "reward_vs_kl.png",
        docs / "throughput.md",
        docs / "records" / "gpu-check" / "p1.json",
        pieces / "records.tar.gz",
        runs,
    ]


def test_collect_without_a_throughput_page_leaves_the_page_alone(tmp_path):
    src = _sent_back(tmp_path / "files", section=None)
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "throughput.md").write_text(PAGE)
    written = collect.collect(src, _where(repo))
    assert (repo / "docs" / "throughput.md").read_text() == PAGE
    assert repo / "docs" / "throughput.md" not in written and (repo / "docs" / "gpu-check.md") in written


def test_collect_starts_the_throughput_page_when_there_is_none(tmp_path):
    """A page started by collect began with two blank lines (the empty page, stripped, then a separator)."""
    src = _sent_back(tmp_path / "files")
    repo = tmp_path / "repo"  # no docs folder yet: the packs' extraction makes it
    written = collect.collect(src, _where(repo))
    assert (repo / "docs" / "throughput.md").read_text() == SECTION
    assert repo / "docs" / "throughput.md" in written


@pytest.mark.parametrize("missing", ["docs.tar.gz", "records.tar.gz"])
def test_collect_names_the_pack_that_is_missing_and_writes_nothing(missing, tmp_path, capsys):
    src = _sent_back(tmp_path / "files")
    (src / missing).unlink()
    repo = tmp_path / "repo"
    with pytest.raises(StagingError, match=f"collect: no {missing} in {src}"):
        collect.collect(src, _where(repo))
    assert not repo.exists()
    assert collect.main([str(src), *(f"{k}={v}" for k, v in _where(repo).items())]) == 2
    err = capsys.readouterr().err
    assert f"collect: no {missing} in {src}" in err and len(err.strip().splitlines()) == 1
    assert not repo.exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "collect: name the folder the GPU run's files came back in first"),
        (["docs=x"], "collect: name the folder the GPU run's files came back in first"),
        (["folder", "nope=1"], "collect: unknown argument 'nope=1'"),
        (["folder", "docs"], "collect: unknown argument 'docs'"),
    ],
)
def test_collect_main_refuses_bad_arguments_in_one_line(argv, said, capsys):
    assert collect.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(said) and len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_collect_main_lists_what_it_wrote_and_exits_0(tmp_path, capsys):
    src = _sent_back(tmp_path / "files")
    repo = tmp_path / "repo"
    assert collect.main([str(src), *(f"{k}={v}" for k, v in _where(repo).items())]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"collect: {repo / 'docs' / 'throughput.md'}" in out and f"collect: {repo / 'bench_runs'}" in out
    assert out[-1].startswith("collect: review with `git diff docs/`")


def test_collect_main_defaults_to_the_repository_folders(tmp_path, monkeypatch):
    src = _sent_back(tmp_path / "files")
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    assert collect.main([str(src)]) == 0
    assert (repo / "docs" / "benchmarks" / "gpu-check.md").is_file()
    assert (repo / "docs" / "benchmarks" / "records" / "gpu-check" / "p1.json").is_file()
    assert (repo / "bench_runs" / "gpu-check" / "p1" / "record.json").is_file()
    assert (repo / "gpu_stage" / "records.tar.gz").is_file()


def test_replace_section_replaces_its_subsections_too_and_ends_in_one_newline():
    page = "# T\n\n## A\n\na\n\n## GPU\n\nold\n\n### detail\n\nold detail\n\n\n"
    assert collect.replace_section(page, "## GPU", "## GPU\n\nnew\n\n\n") == "# T\n\n## A\n\na\n\n## GPU\n\nnew\n"


def test_replace_section_keeps_backslashes_in_the_section_as_written():
    """The section is text, not a regular-expression template (a ``\\d`` or ``\\1`` in it is kept)."""
    section = "## GPU\n\nC:\\runs\\1 matched `\\d+`\n"
    assert collect.replace_section("# T\n\n## GPU\n\nold\n", "## GPU", section) == "# T\n\n" + section


def test_replace_section_does_not_take_a_longer_heading_for_its_own():
    page = "# T\n\n## GPU notes\n\nkeep\n"
    assert collect.replace_section(page, "## GPU", "## GPU\n\nnew\n") == page + "\n## GPU\n\nnew\n"


@pytest.mark.parametrize("empty", ["", "\n", "  \n\n"])
def test_replace_section_on_an_empty_page_is_the_section_alone(empty):
    assert collect.replace_section(empty, "## GPU", "## GPU\n\nnew\n\n") == "## GPU\n\nnew\n"


def test_replace_section_takes_its_heading_as_text_not_a_pattern():
    """A heading with brackets or a dot is the heading itself (as a pattern ``(H100)`` is a group)."""
    page = "# T\n\n## GPU (H100)\n\nold\n\n## GPU H100\n\nother\n"
    new = collect.replace_section(page, "## GPU (H100)", "## GPU (H100)\n\nnew\n")
    assert new == "# T\n\n## GPU (H100)\n\nnew\n\n## GPU H100\n\nother\n"


def test_collect_makes_the_pieces_folder_with_its_parents(tmp_path):
    src = _sent_back(tmp_path / "files")
    repo = tmp_path / "repo"
    where = {**_where(repo), "pieces": str(tmp_path / "elsewhere" / "stage" / "gpu_stage")}
    collect.collect(src, where)
    copied = tmp_path / "elsewhere" / "stage" / "gpu_stage" / "records.tar.gz"
    assert copied.read_bytes() == (src / "records.tar.gz").read_bytes()


def _main(src: Path, repo: Path) -> int:
    return collect.main([str(src), *(f"{k}={v}" for k, v in _where(repo).items())])


@pytest.mark.parametrize(
    ("pack", "name"),
    [
        ("docs.tar.gz", "../escape.md"),
        ("records.tar.gz", "bench_runs/../../escape.md"),
        ("records.tar.gz", "records/../../escape.md"),
    ],
)
def test_collect_refuses_a_pack_member_outside_its_folder_in_one_line(pack, name, tmp_path, capsys):
    """A pack is unpacked with tarfile's ``data`` filter: a member naming a path outside the folder is refused
    (it was a tarfile traceback), and nothing is written there."""
    src = _sent_back(tmp_path / "files")
    if pack == "docs.tar.gz":
        _pack(src / pack, {"gpu-check.md": "page", name: "outside"})
    else:
        _pack(src / pack, {"bench_runs/gpu-check/p1/record.json": "{}", name: "outside"})
    repo = tmp_path / "work" / "repo"
    assert _main(src, repo) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"collect: {src / pack} cannot be unpacked") and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.rglob("escape.md"))


@pytest.mark.parametrize("pack", ["docs.tar.gz", "records.tar.gz"])
@pytest.mark.parametrize("cut", [0.5, 0.0])
def test_collect_names_a_damaged_pack_in_one_line(pack, cut, tmp_path, capsys):
    """A pack cut short (a copy that did not come back whole) or not a pack at all: one line naming it, exit 2
    (it was an EOFError or ReadError traceback)."""
    src = _sent_back(tmp_path / "files")
    data = (src / pack).read_bytes()
    (src / pack).write_bytes(data[: int(len(data) * cut)] if cut else b"not a tar file")
    assert _main(src, tmp_path / "repo") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"collect: {src / pack} cannot be unpacked") and len(err.strip().splitlines()) == 1, err


def test_a_damaged_records_pack_does_not_replace_the_kept_one(tmp_path):
    """The next GPU run continues from ``gpu_stage/records.tar.gz``: a pack that cannot be unpacked (cut short
    here) was copied over it before unpacking failed."""
    src = _sent_back(tmp_path / "files")
    repo = tmp_path / "repo"
    kept = repo / "gpu_stage" / "records.tar.gz"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"the pack of the last run")
    data = (src / "records.tar.gz").read_bytes()
    (src / "records.tar.gz").write_bytes(data[: len(data) // 2])
    assert _main(src, repo) == 2
    assert kept.read_bytes() == b"the pack of the last run"
