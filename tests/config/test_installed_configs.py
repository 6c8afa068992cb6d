"""The task settings and presets (``rlhf_zoo/configs``) are package data: a wheel (``pip install .``, not the
editable install of ``make install``) used to ship without them, and every run then trained on the dataclasses'
bare defaults (``task=exact`` at lr 1e-4 and batch 16, not its tuned 0.1 and 64) while ``algo=rloo`` was an
unknown algorithm."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from rlhf_zoo import config

ROOT = Path(__file__).resolve().parents[2]


def test_a_built_wheel_holds_every_config_file_where_the_package_reads_them(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "rlhf_zoo", src / "rlhf_zoo", ignore=shutil.ignore_patterns("__pycache__"))
    build = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")], cwd=src, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = tmp_path / "dist" / done.stdout.strip().splitlines()[-1]
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".yaml")}
    package = Path(config.__file__).resolve().parent
    assert config.CONFIG_DIR.is_relative_to(package)
    shipped = {p.relative_to(package.parent).as_posix() for p in config.CONFIG_DIR.rglob("*.yaml")}
    assert shipped >= {"rlhf_zoo/configs/task/exact.yaml", "rlhf_zoo/configs/algo/rloo.yaml"}
    assert in_wheel == shipped
