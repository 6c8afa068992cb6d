"""The staging format shared by ``stage`` (here) and ``unstage`` (on the GPU machine): standard library only,
since it runs on a bare machine before any wheel is installed.

A staging is one tar stream of ``wheels/<file>.whl`` and ``cache/<path>`` (files of the rlhf_zoo cache: the gold
reward, the prompt data), gzip-compressed at level 1 (about 8 % off float32 weights and the GGUF, enough to save a
piece, at little CPU cost), cut into numbered pieces of at most ``piece_bytes`` bytes::

    gpu_stage/piece-01/piece-01.bin   the first piece_bytes bytes of the stream
    gpu_stage/piece-01/manifest.json  the whole staging's manifest (the same in every piece folder)
    gpu_stage/piece-02/...

Each piece folder travels in one device call (``carry: ["gpu_stage/piece-01"]``). The manifest names every
file of the stream with its size and sha256, and every piece with its size and sha256; its ``id`` is a hash
of both lists, so pieces of two stagings are never mixed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

FORMAT = 2  # 2: the stream is gzip-compressed
MANIFEST = "manifest.json"
READY = "READY"  # in the stage folder: the id of the staging that is joined, checked and installed
CHUNK = 1 << 20


class StagingError(Exception):
    """A one-line reason why staging or unstaging cannot go on."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def piece_name(i: int) -> str:
    """The name of piece ``i`` (counting from 1): ``piece-01``."""
    return f"piece-{i:02d}"


def manifest_id(files: list[dict[str, Any]], pieces: list[dict[str, Any]]) -> str:
    text = json.dumps([[f["path"], f["sha256"]] for f in files] + [[p["name"], p["sha256"]] for p in pieces])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def parse_kv(argv: list[str], defaults: dict[str, str], command: str) -> dict[str, str]:
    """``key=value`` arguments over ``defaults`` (an unknown key or a bare word: :class:`StagingError`)."""
    out = dict(defaults)
    for a in argv:
        key, eq, value = a.partition("=")
        if not eq or key not in defaults:
            raise StagingError(f"{command}: unknown argument {a!r}; known: {', '.join(f'{k}=' for k in defaults)}")
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------------
# Writing: one tar stream cut into piece files
# --------------------------------------------------------------------------------------------------


class PieceWriter:
    """A write-only file object that fills ``folder/piece-NN/piece-NN.bin`` files of at most ``size`` bytes."""

    def __init__(self, folder: Path, size: int):
        if size < 1:
            raise StagingError("the piece size must be at least one byte")
        self.folder, self.size = folder, size
        self.pieces: list[Path] = []
        self._file: BinaryIO | None = None
        self._left = 0

    def _next(self) -> None:
        if self._file is not None:
            self._file.close()
        name = piece_name(len(self.pieces) + 1)
        path = self.folder / name / f"{name}.bin"
        path.parent.mkdir(parents=True)
        self.pieces.append(path)
        self._file, self._left = open(path, "wb"), self.size

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._file is None or self._left == 0:
                self._next()
            n = min(self._left, len(view))
            self._file.write(view[:n])
            self._left -= n
            view = view[n:]
        return len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_staging(files: list[tuple[str, Path]], folder: Path, piece_bytes: int) -> dict[str, Any]:
    """Write ``files`` (name in the stream, source path) as pieces into the empty ``folder``; returns the
    manifest, also written into every piece folder."""
    entries = [{"path": name, "bytes": src.stat().st_size, "sha256": sha256_file(src)} for name, src in files]
    writer = PieceWriter(folder, piece_bytes)
    zipped = gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=1, mtime=0)
    with tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, src in files:
            info = tar.gettarinfo(str(src), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(src, "rb") as f:
                tar.addfile(info, f)
    zipped.close()
    writer.close()
    pieces = [{"name": p.parent.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in writer.pieces]
    manifest = {
        "format": FORMAT,
        "id": manifest_id(entries, pieces),
        "piece_bytes": piece_bytes,
        "pieces": pieces,
        "files": entries,
    }
    text = json.dumps(manifest, indent=1) + "\n"
    for p in writer.pieces:
        (p.parent / MANIFEST).write_text(text)
    return manifest


# --------------------------------------------------------------------------------------------------
# Reading: join the carried pieces, check, install (on the GPU machine)
# --------------------------------------------------------------------------------------------------


@dataclass
class Unstaged:
    """Where a staging stands on this machine."""

    manifest: dict[str, Any]
    joined: list[str] = field(default_factory=list)  # joined by this call
    skipped: list[str] = field(default_factory=list)  # carried again, already joined
    missing: list[str] = field(default_factory=list)
    ready: bool = False

    def missing_message(self, pieces_dir: str) -> str:
        n = len(self.manifest["pieces"])
        carry = ", ".join(f'"{pieces_dir}/{m}"' for m in self.missing)
        return (
            f"staging {self.manifest['id']}: {len(self.missing)} of {n} pieces not joined yet "
            f"({', '.join(self.missing)}): carry [{carry}] in the next call(s) while this machine is warm"
        )


def _carried(pieces_dir: Path) -> list[tuple[dict[str, Any], Path]]:
    """(manifest, piece file) for every piece folder under ``pieces_dir``."""
    out = []
    for d in sorted(pieces_dir.glob("piece-*")) if pieces_dir.is_dir() else []:
        m, data = d / MANIFEST, d / f"{d.name}.bin"
        if m.is_file() and data.is_file():
            out.append((json.loads(m.read_text()), data))
    return out


def _copy_checked(src: Path, dest: Path, sha: str) -> None:
    tmp = dest.with_suffix(".tmp")
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        while block := fi.read(CHUNK):
            h.update(block)
            fo.write(block)
    if h.hexdigest() != sha:
        tmp.unlink()
        raise StagingError(f"{src} does not match its manifest (sha256 {h.hexdigest()[:12]}…): stage it again")
    tmp.replace(dest)


class _Joined:
    """The pieces, read back to back as one stream."""

    def __init__(self, paths: list[Path]):
        self._paths = iter(paths)
        self._file: BinaryIO | None = None

    def read(self, n: int = -1) -> bytes:
        out = b""
        while n < 0 or len(out) < n:
            if self._file is None:
                nxt = next(self._paths, None)
                if nxt is None:
                    break
                self._file = open(nxt, "rb")
            block = self._file.read(-1 if n < 0 else n - len(out))
            if not block:
                self._file.close()
                self._file = None
                continue
            out += block
        return out


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name


def unstage(
    pieces_dir: Path,
    stage: Path,
    site: Path,
    *,
    python: str = sys.executable,
    log=print,
) -> Unstaged:
    """Join the pieces carried in ``pieces_dir`` into ``stage``; once every piece is there, check every file's
    sha256, install the wheels into ``site`` and put the cache files into ``stage/cache`` (the folder that
    ``RLHF_ZOO_CACHE`` names). Idempotent: a piece already joined is skipped, a finished staging is left as it is."""
    carried = _carried(pieces_dir)
    kept = stage / MANIFEST
    if carried:
        ids = {m["id"] for m, _ in carried}
        if len(ids) > 1:
            raise StagingError(f"{pieces_dir} holds pieces of {len(ids)} stagings ({', '.join(sorted(ids))})")
        manifest = carried[0][0]
        if manifest.get("format") != FORMAT:
            raise StagingError(f"staging format {manifest.get('format')} is not {FORMAT}: stage again with this code")
    elif kept.is_file():
        manifest = json.loads(kept.read_text())
    else:
        raise StagingError(f"no pieces in {pieces_dir} and nothing staged in {stage}: carry gpu_stage/piece-01 first")
    stage.mkdir(parents=True, exist_ok=True)
    if kept.is_file() and json.loads(kept.read_text()).get("id") != manifest["id"]:
        log(f"unstage: a new staging ({manifest['id']}) replaces the one in {stage}")
        for name in ("pieces", "files", "cache", READY):
            p = stage / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    kept.write_text(json.dumps(manifest, indent=1) + "\n")
    status = Unstaged(manifest)
    n = len(manifest["pieces"])
    ready = stage / READY
    if ready.is_file() and ready.read_text().strip() == manifest["id"]:
        status.ready = True
        status.skipped = [data.parent.name for _, data in carried]
        log(f"unstage: staging {manifest['id']} is already joined, checked and installed")
        return status
    joined_dir = stage / "pieces"
    joined_dir.mkdir(exist_ok=True)
    by_name = {p["name"]: p for p in manifest["pieces"]}
    for _, data in carried:
        name = data.parent.name
        piece = by_name.get(name)
        if piece is None:
            raise StagingError(f"{data} is not a piece of staging {manifest['id']}")
        dest = joined_dir / f"{name}.bin"
        i = list(by_name).index(name) + 1
        if dest.is_file() and dest.stat().st_size == piece["bytes"]:
            status.skipped.append(name)
            log(f"unstage: piece {i} of {n} ({name}) already joined, skipped")
            continue
        _copy_checked(data, dest, piece["sha256"])
        status.joined.append(name)
        log(f"unstage: piece {i} of {n} ({name}, {mib(piece['bytes'])}) joined, sha256 checked")
    status.missing = [p["name"] for p in manifest["pieces"] if not (joined_dir / f"{p['name']}.bin").is_file()]
    if status.missing:
        return status
    _finish(manifest, stage, site, python, log)
    status.ready = True
    return status


def _same(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


def _finish(manifest: dict[str, Any], stage: Path, site: Path, python: str, log) -> None:
    files = stage / "files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir()
    paths = [stage / "pieces" / f"{p['name']}.bin" for p in manifest["pieces"]]
    log(f"unstage: all {len(paths)} pieces here; unpacking {len(manifest['files'])} files")
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=_Joined(paths), mode="rb"), mode="r|") as tar:
        tar.extractall(files, filter="data")
    bad = [f["path"] for f in manifest["files"] if not _same(files / f["path"], f["sha256"])]
    if bad:
        raise StagingError(f"{len(bad)} file(s) differ from the manifest ({', '.join(bad[:3])}): stage again")
    log(f"unstage: every file's sha256 matches the manifest ({mib(sum(f['bytes'] for f in manifest['files']))})")
    wheels = sorted((files / "wheels").glob("*.whl")) if (files / "wheels").is_dir() else []
    if wheels:
        site.mkdir(parents=True, exist_ok=True)
        cmd = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir"]
        cmd += ["--upgrade", "--target", str(site), *map(str, wheels)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StagingError(f"pip could not install the staged wheels into {site}: {tail[0]}")
        log(f"unstage: installed {len(wheels)} wheel(s) into {site}: {', '.join(w.name.split('-')[0] for w in wheels)}")
    cache_src, cache = files / "cache", stage / "cache"
    if cache_src.is_dir():
        for src in sorted(_files(cache_src)):
            dest = cache / src.relative_to(cache_src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dest)
        log(f"unstage: cache files in {cache} (RLHF_ZOO_CACHE={cache})")
    (stage / READY).write_text(manifest["id"] + "\n")
    (stage / "env.sh").write_text(f'export PYTHONPATH="{site}:$PYTHONPATH" RLHF_ZOO_CACHE="{cache}"\n')
    log(f"unstage: staging {manifest['id']} ready; for commands of your own: source {stage / 'env.sh'}")


__all__ = [
    "FORMAT",
    "MANIFEST",
    "READY",
    "PieceWriter",
    "StagingError",
    "Unstaged",
    "manifest_id",
    "mib",
    "parse_kv",
    "piece_name",
    "sha256_file",
    "unstage",
    "write_staging",
]
