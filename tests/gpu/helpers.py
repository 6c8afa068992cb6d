"""Small inputs for the GPU staging tests: a hand-made wheel, a cache holding the tiny Hugging Face model as
its gold reward and a prompt file, and a stand-in for the device tool's ``carry``."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

WORDS = (
    "the film was a quiet and honest look at a family that never quite learns to talk "
    "about what matters until it is far too late for any of them to change"
).split()


def make_wheel(folder: Path) -> Path:
    """``gpustagetest-1.0-py3-none-any.whl``: one module holding ``VALUE = 42``."""
    folder.mkdir(parents=True, exist_ok=True)
    info = "gpustagetest-1.0.dist-info"
    files = {
        "gpustagetest/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: gpustagetest\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = folder / "gpustagetest-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def make_cache(root: Path) -> Path:
    """A cache root with the tiny model (saved as a Hugging Face folder) where the gold reward goes, and a
    prompt file under ``data/``."""
    from rlhf_zoo.policies.models import build_tiny_model, build_tiny_tokenizer

    gold = root / "rewards" / "minilm_sentiment"
    tokenizer = build_tiny_tokenizer()
    build_tiny_model(tokenizer, seed=0).save_pretrained(gold)
    tokenizer.save_pretrained(gold)
    (gold / "meta.json").write_text(json.dumps({"note": "the tiny test model standing in for the gold reward"}))
    data = root / "data"
    data.mkdir(parents=True)
    rows = [{"text": " ".join(WORDS[i : i + 8])} for i in range(24)]
    (data / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def carry(staged: Path, call: Path, names: list[str]) -> None:
    """What one device call brings: exactly these piece folders in ``call`` (the others are gone)."""
    shutil.rmtree(call, ignore_errors=True)
    call.mkdir(parents=True)
    for name in names:
        shutil.copytree(staged / name, call / name)
