"""English prose from the test data inside the ``gensim`` wheel on PyPI (read, never installed).

The wheel of ``gensim==4.4.0`` ships, under ``gensim/test/test_data/``, a few plain-text files of
human-written English, used here as general prose beside the Hutto & Gilbert snippets in the
training text of the ``zoo-lm`` language model (:mod:`rlhf_zoo.policies.zoo_lm`)::

    file                  what                                                     docs   chars
    lee_background.cor    Australian news articles (Lee, Pincombe & Welsh 2005)     300   360 k
    lee.cor               more articles of the same corpus                           50    25 k
    para2para_text1.txt   Wikipedia prose about New York                              6    12 k
    para2para_text2.txt   Wikipedia prose about Berlin                                7    13 k

Each non-empty line is one document. ``lee.cor`` is Latin-1 (one ``£``), the others UTF-8;
Wikipedia's footnote marks (``[1]``) are removed. Other files of the folder are left out on
purpose: ``pang_lee_polarity.cor`` holds the same Rotten Tomatoes snippets as the sentiment task
(lower-cased and tokenised, so it would duplicate, in another spelling, the texts its evaluation
prompts come from), ``alldata-id-10.txt`` is tokenised lower-case IMDb text (14 KB), and the rest
is stemmed, Russian or not prose.

:func:`load_gensim_texts` fetches the wheel once with ``python -m pip download --no-deps
--only-binary :all: --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp
--abi cp311 gensim==4.4.0`` (a fixed file whatever the machine, since only its data is read; about
28 MB), reads these files out of the zip and caches them as one JSON file in ``cache_dir("data")``;
the wheel itself is not kept. ``$RLHF_ZOO_GENSIM_WHEEL`` may point at the wheel (or a folder
holding it or the extracted ``test_data`` files) for machines without PyPI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import atomic_write_json
from rlhf_zoo.paths import cache_dir

VERSION = "4.4.0"
REQUIREMENT = f"gensim=={VERSION}"
ENV_VAR = "RLHF_ZOO_GENSIM_WHEEL"
CACHE_FILE = f"gensim-{VERSION}-test-texts.v1.json"
DATA_DIR = "gensim/test/test_data/"
#: file in the wheel's test_data folder -> what it is (recorded in the zoo-lm meta)
FILES: dict[str, str] = {
    "lee_background.cor": "Australian news articles (Lee, Pincombe & Welsh 2005)",
    "lee.cor": "Australian news articles (Lee, Pincombe & Welsh 2005)",
    "para2para_text1.txt": "Wikipedia prose (New York)",
    "para2para_text2.txt": "Wikipedia prose (Berlin)",
}
DOWNLOAD_ARGS: tuple[str, ...] = (
    "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
    "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
    "--implementation", "cp", "--abi", "cp311", "--disable-pip-version-check", REQUIREMENT,
)  # fmt: skip

_FOOTNOTE = re.compile(r"\[\d+\]")


def download_command(dest: str = "DIR") -> str:
    """The shell command that fetches the wheel by hand."""
    return "python " + " ".join(DOWNLOAD_ARGS) + f" -d {dest}"


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def documents(files: dict[str, str]) -> dict[str, list[str]]:
    """One document per non-empty line of each file, footnote marks removed, whitespace collapsed."""
    out: dict[str, list[str]] = {}
    for name in FILES:
        lines = (" ".join(_FOOTNOTE.sub("", ln).split()) for ln in files.get(name, "").splitlines())
        out[name] = [ln for ln in lines if ln]
    return out


def read_wheel_texts(location: str | os.PathLike[str]) -> dict[str, str]:
    """The text of each of :data:`FILES`, from a gensim wheel, or a folder holding one or the files.

    Raises ``UserError`` naming the files it could not find.
    """
    path = Path(location).expanduser()
    found: dict[str, str] = {}
    if path.is_dir():
        for name in FILES:
            hits = sorted(path.rglob(name))
            if hits:
                found[name] = _decode(hits[0].read_bytes())
        wheels = sorted(path.glob("gensim-*.whl"))
        if len(found) < len(FILES) and wheels:
            return read_wheel_texts(wheels[0])
    elif path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                for name in FILES:
                    if DATA_DIR + name in names:
                        found[name] = _decode(zf.read(DATA_DIR + name))
        except zipfile.BadZipFile as e:
            raise UserError(f"{path} is not a wheel (zip) file: point {ENV_VAR} at {REQUIREMENT}'s wheel") from e
    else:
        raise UserError(f"{path} does not exist: point {ENV_VAR} at the {REQUIREMENT} wheel or a folder holding it")
    missing = sorted(set(FILES) - set(found))
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)} (looked for {DATA_DIR}...): use the {REQUIREMENT} wheel")
    return found


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, *DOWNLOAD_ARGS, "-d", str(dest)]
    hint = f"run `{download_command()}` where PyPI is reachable and set {ENV_VAR}=DIR"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"could not download {REQUIREMENT} for the zoo-lm text ({type(e).__name__}): {hint}") from e
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        raise UserError(f"could not download {REQUIREMENT} for the zoo-lm text (pip: {why}): {hint}")
    wheels = sorted(dest.glob("gensim-*.whl"))
    if not wheels:
        raise UserError(f"pip download left no gensim wheel in {dest}: {hint}")
    return wheels[0]


def cache_path() -> Path:
    """Where the extracted texts are cached (one JSON object: file name -> text)."""
    return cache_dir("data") / CACHE_FILE


def load_gensim_texts(*, refresh: bool = False, verbose: bool = False) -> dict[str, str]:
    """The raw text of each of :data:`FILES` (file name -> text), fetched once and then cached.

    Source on the first call: ``$RLHF_ZOO_GENSIM_WHEEL`` if set, else ``pip download`` of the
    pinned wheel into a temporary folder. A failed download raises ``UserError`` with the command
    to run by hand.
    """
    path = cache_path()
    if path.exists() and not refresh:
        try:
            with open(path, encoding="utf-8") as f:
                return dict(json.load(f))
        except ValueError as e:
            raise UserError(f"the cached gensim texts {path} are unreadable ({e}): delete the file") from e
    env = os.environ.get(ENV_VAR)
    if env:
        files = read_wheel_texts(env)
    else:
        with tempfile.TemporaryDirectory(prefix="rlhf_zoo_gensim_") as tmp:
            if verbose:
                print(f"downloading the {REQUIREMENT} wheel (about 28 MB) for its English test texts ...")
            files = read_wheel_texts(_download_wheel(Path(tmp)))
    atomic_write_json(path, files, indent=None)
    return files
