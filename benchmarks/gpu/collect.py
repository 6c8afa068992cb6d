"""Put what a GPU run sent back into the repository (docs/gpu.md).

    python -m benchmarks.gpu.collect /work/.device/.../files     # the folder the device tool's files are in

From the folder that holds ``docs.tar.gz`` and ``records.tar.gz`` (:mod:`benchmarks.gpu.run`):

- the suite's page and plots go into ``docs`` (``docs/benchmarks/<suite>.md`` and ``<suite>/``);
- ``throughput-gpu.md`` replaces the ``## GPU`` section of ``docs/benchmarks/throughput.md``;
- the suite's compact records go into ``docs/benchmarks/records/<suite>/``, to be committed beside the other
  suites' (the page can then be redrawn from the repository alone, and other suites' pages list its points);
- the records pack is copied to ``gpu_stage/records.tar.gz``, where the next GPU run finds it (a fresh
  machine then continues instead of starting over), and unpacked under ``runs`` (``bench_runs/``), so that
  ``rlhf-zoo bench suite=full render_only=true`` redraws the page here.

Options: ``docs``, ``runs``, ``pieces``. Errors (a pack missing, damaged, or with a member outside its folder)
are one line, exit 2.
"""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.gpu.staging import StagingError, parse_kv

DEFAULTS = {"docs": "docs/benchmarks", "runs": "bench_runs", "pieces": "gpu_stage"}


def replace_section(page: str, heading: str, section: str) -> str:
    """``page`` with its ``heading`` section (up to the next heading of the same level) replaced by ``section``;
    appended when the page has none."""
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(page):
        return pattern.sub(lambda _: section.rstrip() + "\n\n", page, count=1).rstrip() + "\n"
    before = page.rstrip() + "\n\n" if page.strip() else ""  # a page of its own: no blank lines above it
    return before + section.rstrip() + "\n"


@contextmanager
def _unpacking(pack: Path) -> Iterator[tarfile.TarFile]:
    """``pack`` open for reading; damaged (cut short, not a tar file) or holding a member that would land outside
    the folder it is unpacked in (tarfile's ``data`` filter): one :class:`StagingError` line naming it."""
    try:
        with tarfile.open(pack) as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error) as e:
        why = str(e).splitlines()[0].rstrip(":") if str(e).strip() else type(e).__name__
        raise StagingError(f"collect: {pack} cannot be unpacked ({why}): fetch the GPU run's files again") from None


def collect(src: Path, o: dict[str, str]) -> list[Path]:
    docs, runs, pieces = Path(o["docs"]), Path(o["runs"]), Path(o["pieces"])
    pages, records = src / "docs.tar.gz", src / "records.tar.gz"
    for p in (pages, records):
        if not p.is_file():
            raise StagingError(f"collect: no {p.name} in {src}: give the folder the GPU run's files came back in")
    written = []
    with _unpacking(pages) as tar:
        members = tar.getmembers()
        section = next((m for m in members if m.name == "throughput-gpu.md"), None)
        tar.extractall(docs, members=[m for m in members if m is not section], filter="data")
        written += [docs / m.name for m in members if m.isfile() and m is not section]
        if section is not None:
            text = tar.extractfile(section).read().decode()
            page = docs / "throughput.md"
            page.write_text(replace_section(page.read_text() if page.is_file() else "", "## GPU", text))
            written.append(page)
    with _unpacking(records) as tar:
        members = tar.getmembers()
        kept = [m for m in members if m.name.startswith("bench_runs/")]
        for m in kept:
            m.name = m.name.removeprefix("bench_runs/")
        tar.extractall(runs, members=kept, filter="data")
        # the compact records (records/<suite>/<point>.json) beside the other suites', to be committed
        compact = [m for m in members if m.isfile() and m.name.startswith("records/")]
        tar.extractall(docs, members=compact, filter="data")
        written += [docs / m.name for m in compact]
    # only a pack that unpacked whole replaces the one the next GPU run continues from
    pieces.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(records, pieces / "records.tar.gz")
    written.append(pieces / "records.tar.gz")
    written.append(runs)
    return written


def main(argv: list[str]) -> int:
    try:
        if not argv or "=" in argv[0]:
            raise StagingError("collect: name the folder the GPU run's files came back in first")
        o = parse_kv(argv[1:], DEFAULTS, "collect")
        for path in collect(Path(argv[0]), o):
            print(f"collect: {path}")
    except StagingError as e:
        print(e, file=sys.stderr)
        return 2
    print("collect: review with `git diff docs/`, then commit the page, its plots, its records and the throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
