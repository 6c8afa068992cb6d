"""The human-labelled sentiment data of Hutto & Gilbert (2014), and the split the project uses.

Data
----
C. J. Hutto and E. Gilbert, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis of
Social Media Text", Proc. ICWSM 2014 (MIT licence). 23,703 short English texts, each labelled
with the mean sentiment rating of about 20 people on a scale of -4 (most negative) to +4 (most
positive)::

    source            file                                   texts
    movie_reviews     movieReviewSnippets_GroundTruth.txt    10,605
    tweets            tweets_GroundTruth.txt                  4,200
    product_reviews   amazonReviewSnippets_GroundTruth.txt    3,708
    nytimes           nytEditorialSnippets_GroundTruth.txt    5,190

The files ship only in the *source* distribution of ``vaderSentiment==3.3.2`` (the wheel lacks
them), inside ``additional_resources/hutto_ICWSM_2014.tar.gz``. :func:`load_hutto` fetches that
sdist once with ``python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2``
(or reads ``$RLHF_ZOO_HUTTO_SDIST``, see there), parses the four ``*_GroundTruth.txt`` files
(``id<TAB>rating<TAB>text``, CRLF line ends, UTF-8) and caches them as one JSONL file in
``cache_dir("data")``. Texts are stripped of surrounding whitespace; nothing else is changed.

Split (:func:`split_hutto`)
---------------------------
Every text gets a *rank*, ``sha256("hutto-split:{seed}:{key}")``, where ``key`` is the text
case-folded with whitespace collapsed. Ranking by a hash of the text (not by file position or a
stateful RNG) makes the split a pure function of ``(records, seed)``, and makes duplicate texts
(147 keys occur more than once in the real data) share a rank, so they always land in the same
part. The parts, in the order they are chosen:

1. ``prompt_eval`` -- ``n_eval_prompts`` (500) movie-review snippets of at least
   ``min_prompt_words`` (8) words, the lowest-ranked such keys. These are the held-out EVAL
   prompts of the sentiment task. Every record (of any source) whose key is one of these is
   removed from all gold data: the gold reward model never trains or is validated on them.
2. ``gold_heldout`` -- ``n_heldout`` (3,000) of the remaining records, stratified by source
   (quotas proportional to each source's remaining size, largest remainder), taking keys in
   rank order and all records of a key together. Used only to measure the gold model's
   Pearson r against human ratings.
3. ``gold_train`` -- everything else (20,203 records with the defaults): the gold reward
   model's training data.
4. ``prompt_train`` -- the movie-review snippets of ``gold_train`` with at least
   ``min_prompt_words`` words, one per key: the task's TRAIN prompts. (The gold model has seen
   these texts, which is harmless: training prompts are only ever optimised against the proxy.)

So ``prompt_eval`` texts are disjoint, by normalised text, from ``gold_train``,
``gold_heldout`` and ``prompt_train``. :func:`prompt_texts` returns either prompt set, optionally
cut to the first ``n_words`` words; the cut keeps the two sets disjoint by dropping any train
prefix that equals an eval prefix.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import atomic_write_jsonl
from rlhf_zoo.paths import cache_dir

SDIST_REQUIREMENT = "vaderSentiment==3.3.2"
ENV_VAR = "RLHF_ZOO_HUTTO_SDIST"
CACHE_FILE = "hutto_icwsm2014.v1.jsonl"
INNER_TARBALL = "hutto_ICWSM_2014.tar.gz"
CITATION = (
    "C. J. Hutto and E. Gilbert. VADER: A Parsimonious Rule-based Model for Sentiment Analysis "
    "of Social Media Text. ICWSM 2014. MIT licence."
)

#: file-name prefix of each ``*_GroundTruth.txt`` file -> the source name used here
SOURCES: dict[str, str] = {
    "movieReviewSnippets": "movie_reviews",
    "tweets": "tweets",
    "amazonReviewSnippets": "product_reviews",
    "nytEditorialSnippets": "nytimes",
}
#: texts per source in vaderSentiment 3.3.2 (checked by the tests on a real download)
EXPECTED_COUNTS: dict[str, int] = {
    "movie_reviews": 10_605,
    "tweets": 4_200,
    "product_reviews": 3_708,
    "nytimes": 5_190,
}
PROMPT_SOURCE = "movie_reviews"

DOWNLOAD_ARGS: tuple[str, ...] = (
    "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
    "--disable-pip-version-check", SDIST_REQUIREMENT,
)  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One human-labelled text.

    Attributes:
        source: ``movie_reviews``, ``tweets``, ``product_reviews`` or ``nytimes``.
        id: the id in the original file (unique within a source), e.g. ``"17"`` or ``"3_12"``.
        rating: mean human rating in [-4, 4] (negative = negative sentiment).
        text: the text, stripped of surrounding whitespace.
    """

    source: str
    id: str
    rating: float
    text: str


@dataclass(frozen=True)
class HuttoSplit:
    """The deterministic split of :func:`split_hutto` (see the module docstring).

    Every part is in rank order (a seeded, hash-defined shuffle).
    """

    seed: int
    gold_train: tuple[Record, ...]
    gold_heldout: tuple[Record, ...]
    prompt_train: tuple[Record, ...]
    prompt_eval: tuple[Record, ...]

    def sizes(self) -> dict[str, int]:
        """Number of records in each part."""
        return {
            "gold_train": len(self.gold_train),
            "gold_heldout": len(self.gold_heldout),
            "prompt_train": len(self.prompt_train),
            "prompt_eval": len(self.prompt_eval),
        }


# --------------------------------------------------------------------------- parsing


def parse_ground_truth(raw: str | bytes, source: str) -> list[Record]:
    """Parse one ``*_GroundTruth.txt`` file: lines ``id<TAB>rating<TAB>text``, CRLF (or LF) ends.

    Empty lines are skipped; any other malformed line, a rating outside [-4, 4], a duplicate id
    or an empty text raises ``ValueError`` naming the line.
    """
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    out: list[Record] = []
    seen: set[str] = set()
    # split on line ends only: str.splitlines would also split on \x0b, \x1c, \u2028, ...
    for lineno, line in enumerate(re.split(r"\r?\n", text), start=1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise ValueError(f"{source} line {lineno}: expected id<TAB>rating<TAB>text: {line!r}")
        rid, rating_s, body = parts[0].strip(), parts[1].strip(), parts[2].strip()
        try:
            rating = float(rating_s)
        except ValueError:
            raise ValueError(f"{source} line {lineno}: rating {rating_s!r} is not a number") from None
        if not (math.isfinite(rating) and -4.0 <= rating <= 4.0):
            raise ValueError(f"{source} line {lineno}: rating {rating} outside [-4, 4]")
        if not rid or not body:
            raise ValueError(f"{source} line {lineno}: empty id or text: {line!r}")
        if rid in seen:
            raise ValueError(f"{source} line {lineno}: duplicate id {rid!r}")
        seen.add(rid)
        out.append(Record(source=source, id=rid, rating=rating, text=body))
    return out


def _source_of(filename: str) -> str | None:
    base = os.path.basename(filename)
    if not base.endswith("_GroundTruth.txt"):
        return None
    return SOURCES.get(base[: -len("_GroundTruth.txt")])


def _ground_truth_from_tar(tf: tarfile.TarFile, depth: int = 0) -> dict[str, bytes]:
    """Raw GroundTruth files found in a tarball, looking one level into nested ``.tar.gz``."""
    found: dict[str, bytes] = {}
    for member in tf.getmembers():
        if not member.isfile():
            continue
        src = _source_of(member.name)
        if src is not None:
            f = tf.extractfile(member)
            if f is not None:
                found[src] = f.read()
        elif depth == 0 and member.name.endswith(INNER_TARBALL):
            f = tf.extractfile(member)
            if f is not None:
                with tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:*") as inner:
                    found.update(_ground_truth_from_tar(inner, depth + 1))
    return found


def _tarball_ground_truth(path: Path) -> dict[str, bytes]:
    """The GroundTruth files of the tarball ``path``: a file that is no tarball, or a damaged or cut-short one (an
    interrupted download, which gzip reports as an EOFError), is a ``UserError`` naming it."""
    try:
        with tarfile.open(path, mode="r:*") as tf:
            return _ground_truth_from_tar(tf)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        why = "it is cut short" if isinstance(e, EOFError) else type(e).__name__
        raise UserError(
            f"{path} is not a readable tarball ({why}): point {ENV_VAR} at the "
            f"vaderSentiment-3.3.2.tar.gz sdist or the folder it was extracted to"
        ) from e


def read_ground_truth(location: str | os.PathLike[str]) -> dict[str, bytes]:
    """The raw ``*_GroundTruth.txt`` bytes per source, from any of these ``location``\\ s:

    the vaderSentiment sdist (``.tar.gz``), the inner ``hutto_ICWSM_2014.tar.gz``, or a folder
    holding either of them or the extracted GroundTruth files (searched recursively).
    Raises ``UserError`` unless all four sources are found.
    """
    path = Path(location).expanduser()
    found: dict[str, bytes] = {}
    if path.is_dir():
        for f in sorted(path.rglob("*_GroundTruth.txt")):
            src = _source_of(f.name)
            if src is not None and src not in found:
                found[src] = f.read_bytes()
        if len(found) < len(SOURCES):
            tarballs = sorted(path.rglob(INNER_TARBALL)) + sorted(path.rglob("vaderSentiment-*.tar.gz"))
            for tb in tarballs:
                for src, raw in _tarball_ground_truth(tb).items():
                    found.setdefault(src, raw)
                if len(found) == len(SOURCES):
                    break
    elif path.is_file():
        found = _tarball_ground_truth(path)
    else:
        raise UserError(
            f"{path} does not exist: point {ENV_VAR} at the vaderSentiment-3.3.2.tar.gz "
            f"sdist or the folder it was extracted to"
        )
    missing = sorted(set(SOURCES.values()) - set(found))
    if missing:
        raise UserError(
            f"{path} lacks the Hutto & Gilbert GroundTruth files for {', '.join(missing)}: "
            f"point {ENV_VAR} at the vaderSentiment-3.3.2 sdist (pip download --no-deps "
            f"--no-binary :all: {SDIST_REQUIREMENT})"
        )
    return found


def records_from_ground_truth(files: Mapping[str, bytes | str]) -> list[Record]:
    """Parse the raw files of :func:`read_ground_truth` into records, sources in a fixed order."""
    out: list[Record] = []
    for src in SOURCES.values():
        if src in files:
            try:
                out.extend(parse_ground_truth(files[src], src))
            except ValueError as e:
                raise UserError(f"malformed Hutto & Gilbert data: {e}") from e
    return out


# --------------------------------------------------------------------------- download + cache


def download_command(dest: str = "DIR") -> str:
    """The shell command that fetches the sdist by hand."""
    return "python " + " ".join(DOWNLOAD_ARGS) + f" -d {dest}"


def _download_sdist(dest: Path) -> Path:
    """``pip download`` the vaderSentiment sdist into ``dest``; the path of the tarball."""
    cmd = [sys.executable, *DOWNLOAD_ARGS, "-d", str(dest)]
    hint = (
        f"run `{download_command()}` by hand (where PyPI is reachable) and set "
        f"{ENV_VAR}=DIR/vaderSentiment-3.3.2.tar.gz"
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"could not download the Hutto & Gilbert data ({type(e).__name__}): {hint}") from e
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        raise UserError(f"could not download the Hutto & Gilbert data (pip: {why}): {hint}")
    sdists = sorted(dest.glob("vaderSentiment-*.tar.gz"))
    if not sdists:
        raise UserError(f"pip download left no vaderSentiment sdist in {dest}: {hint}")
    return sdists[0]


def cache_path() -> Path:
    """Where the parsed records are cached (a JSONL file, one record a line)."""
    return cache_dir("data") / CACHE_FILE


def _write_jsonl_atomic(path: Path, records: Iterable[Record]) -> None:
    atomic_write_jsonl(path, (asdict(r) for r in records), sort_keys=False)


def _read_jsonl(path: Path) -> list[Record]:
    try:
        with open(path, encoding="utf-8") as f:
            return [Record(**json.loads(line)) for line in f if line.strip()]
    except (ValueError, TypeError) as e:
        raise UserError(
            f"the cached Hutto & Gilbert data {path} is unreadable ({e}): delete it and run `rlhf-zoo prepare` again"
        ) from e


def load_hutto(*, refresh: bool = False, verbose: bool = False) -> list[Record]:
    """All 23,703 human-labelled texts, parsed once and then read from the cache.

    Where the data comes from, on the first call (or with ``refresh=True``):

    1. ``$RLHF_ZOO_HUTTO_SDIST`` if set: the vaderSentiment-3.3.2 sdist tarball, the inner
       ``hutto_ICWSM_2014.tar.gz``, or a folder holding one of them or the extracted files;
    2. otherwise ``sys.executable -m pip download --no-deps --no-binary :all:
       vaderSentiment==3.3.2`` into a temporary folder (needs PyPI; about 2.5 MB).

    A failed download raises ``UserError`` naming the command to run by hand. The parsed
    records are written atomically to :func:`cache_path`; later calls read only that file.
    """
    path = cache_path()
    if path.exists() and not refresh:
        return _read_jsonl(path)
    env = os.environ.get(ENV_VAR)
    if env:
        files = read_ground_truth(env)
    else:
        with tempfile.TemporaryDirectory(prefix="rlhf_zoo_hutto_") as tmp:
            if verbose:
                print(f"downloading {SDIST_REQUIREMENT} (sdist) for the Hutto & Gilbert data ...")
            files = read_ground_truth(_download_sdist(Path(tmp)))
    records = records_from_ground_truth(files)
    _write_jsonl_atomic(path, records)
    if verbose:
        print(f"Hutto & Gilbert (2014): {len(records)} texts cached at {path}")
    return records


# --------------------------------------------------------------------------- split


def text_key(text: str) -> str:
    """The normalised text used for de-duplication: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def _rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"hutto-split:{seed}:{key}".encode()).hexdigest()


def _quotas(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over sources in proportion to ``sizes`` (largest remainder, ties by name)."""
    n = sum(sizes.values())
    exact = {s: total * c / n for s, c in sizes.items()}
    out = {s: math.floor(v) for s, v in exact.items()}
    left = total - sum(out.values())
    for s in sorted(sizes, key=lambda s: (-(exact[s] - out[s]), s))[:left]:
        out[s] += 1
    return out


def split_hutto(
    records: Sequence[Record],
    seed: int = 0,
    *,
    n_heldout: int = 3000,
    n_eval_prompts: int = 500,
    min_prompt_words: int = 8,
) -> HuttoSplit:
    """The deterministic gold-train / gold-heldout / prompt split described in the module docstring.

    A pure function of ``(records, seed, sizes)``: the input order does not matter.
    Raises ``ValueError`` if there are too few records for the requested sizes.
    """
    ordered = sorted(records, key=lambda r: (r.source, r.id))
    ids = [(r.source, r.id) for r in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("records contain a duplicate (source, id)")
    groups: dict[str, list[Record]] = {}
    for r in ordered:
        groups.setdefault(text_key(r.text), []).append(r)
    rank = {k: _rank(k, seed) for k in groups}
    keys = sorted(groups, key=lambda k: rank[k])

    def prompt_record(k: str) -> Record | None:
        for r in groups[k]:
            if r.source == PROMPT_SOURCE and len(r.text.split()) >= min_prompt_words:
                return r
        return None

    # 1. eval prompts: reserved movie-review snippets, removed from all gold data
    eval_prompts: list[Record] = []
    for k in keys:
        if len(eval_prompts) == n_eval_prompts:
            break
        p = prompt_record(k)
        if p is not None:
            eval_prompts.append(p)
    if len(eval_prompts) < n_eval_prompts:
        raise ValueError(
            f"only {len(eval_prompts)} {PROMPT_SOURCE} texts of >= {min_prompt_words} "
            f"words for {n_eval_prompts} eval prompts"
        )
    eval_keys = {text_key(r.text) for r in eval_prompts}
    rest = [k for k in keys if k not in eval_keys]

    # 2. gold heldout: stratified by source, whole keys in rank order
    sizes: dict[str, int] = {}
    for k in rest:
        for r in groups[k]:
            sizes[r.source] = sizes.get(r.source, 0) + 1
    if sum(sizes.values()) <= n_heldout:
        raise ValueError(f"{sum(sizes.values())} records left for {n_heldout} held-out ones")
    quota = _quotas(sizes, n_heldout)
    heldout_keys: set[str] = set()
    for k in rest:
        src = groups[k][0].source
        if len(groups[k]) <= quota[src]:
            quota[src] -= len(groups[k])
            heldout_keys.add(k)

    heldout = [r for k in rest if k in heldout_keys for r in groups[k]]
    train_keys = [k for k in rest if k not in heldout_keys]
    train = [r for k in train_keys for r in groups[k]]
    prompt_train = [p for k in train_keys if (p := prompt_record(k)) is not None]
    return HuttoSplit(
        seed=seed,
        gold_train=tuple(train),
        gold_heldout=tuple(heldout),
        prompt_train=tuple(prompt_train),
        prompt_eval=tuple(eval_prompts),
    )


class SplitSettings(Protocol):
    """The settings of :func:`split_hutto` that a build's config holds (``ZooLMConfig``, ``GoldTrainConfig``)."""

    split_seed: int
    n_heldout: int
    n_eval_prompts: int
    min_prompt_words: int


def split_by(records: Sequence[Record], settings: SplitSettings) -> HuttoSplit:
    """:func:`split_hutto` of ``records`` with a build's split settings: the builds that must keep the sentiment
    task's evaluation snippets out (zoo-lm's text, the gold reward's training set) split as the task does."""
    return split_hutto(
        records,
        seed=settings.split_seed,
        n_heldout=settings.n_heldout,
        n_eval_prompts=settings.n_eval_prompts,
        min_prompt_words=settings.min_prompt_words,
    )


def prompt_prefix(text: str, n_words: int) -> str:
    """The first ``n_words`` whitespace-separated words of ``text``, joined by single spaces."""
    return " ".join(text.split()[:n_words])


def prompt_texts(
    split: Literal["train", "eval"] = "train",
    *,
    n_words: int | None = None,
    seed: int = 0,
    records: Sequence[Record] | None = None,
    n_heldout: int = 3000,
    n_eval_prompts: int = 500,
    min_prompt_words: int = 8,
) -> list[str]:
    """Movie-review snippets for the sentiment task's prompts, in the split's rank order.

    ``split="eval"`` gives the reserved snippets that no gold data contains; ``"train"`` the
    movie-review snippets of ``gold_train``. With ``n_words``, each snippet is cut to its first
    ``n_words`` words, duplicates are dropped (first kept), and train prefixes that equal an
    eval prefix are dropped, so train and eval prompts stay disjoint. ``records`` defaults to
    :func:`load_hutto` (downloading on first use); the size arguments go to
    :func:`split_hutto`.
    """
    if split not in ("train", "eval"):
        raise UserError(f"unknown prompt split {split!r}: use 'train' or 'eval'")
    if n_words is not None and n_words < 1:
        raise UserError(f"n_words must be >= 1, got {n_words}")
    parts = split_hutto(
        load_hutto() if records is None else records,
        seed=seed,
        n_heldout=n_heldout,
        n_eval_prompts=n_eval_prompts,
        min_prompt_words=min_prompt_words,
    )
    chosen = parts.prompt_eval if split == "eval" else parts.prompt_train
    if n_words is None:
        return [r.text for r in chosen]
    banned = {prompt_prefix(r.text, n_words) for r in parts.prompt_eval} if split == "train" else set()
    out: list[str] = []
    seen: set[str] = set()
    for r in chosen:
        p = prompt_prefix(r.text, n_words)
        if p not in seen and p not in banned:
            seen.add(p)
            out.append(p)
    return out
