"""What can be known about a Hugging Face hub id or a local model folder without loading it.

A hub id that is neither cached nor reachable would otherwise fail only when its weights load, after
transformers' retries (about a minute), and after whatever was built before it; these checks run with
the config and fail in seconds, in one line that says how to work offline.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import truthy


def is_local_path(name: str) -> bool:
    """``name`` means a directory on this machine rather than a hub id (``owner/name`` or ``name``)."""
    return Path(name).expanduser().exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1


def local_or_hub(name: str) -> str:
    """What to hand ``from_pretrained`` or ``load_dataset`` for ``name``: its path on this machine with ``~``
    expanded (the shell leaves the ``~`` of ``model.name=~/m`` as it is, and a loader would read it as part of a
    hub id) when that path exists, else ``name`` as written (a hub id)."""
    local = Path(name).expanduser()
    return str(local) if local.exists() else name


def check_hub_model(name: str, what: str | None = None, timeout: float = 5.0, local: str | None = None) -> None:
    """A hub model id must be in the local cache or the hub must answer within ``timeout`` seconds;
    otherwise one line that says how to work offline (instead of transformers' minute of retries later).
    ``what`` names the setting in the message (default ``model.name=<name>``), ``local`` what to use offline
    instead (default: a local directory or a packaged language model)."""
    what = what or f"model.name={name}"
    from huggingface_hub import model_info, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError as e:  # a space, a colon, "..": neither a directory here nor a hub id
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{what}: no such directory, and not a hub id ({first[:160]})") from None
    if isinstance(cached, str):
        return  # cached: loads without a network
    hint = local or "a local directory, a packaged model ('tiny', 'smollm2-135m', ...)"
    _check_reachable(name, what, model_info, ("HF_HUB_OFFLINE",), hint, timeout)


def check_hub_dataset(name: str, what: str, timeout: float = 5.0) -> None:
    """The same for a hub dataset id (prompts): cached by the hub or by ``datasets``, or reachable;
    otherwise one line instead of ``datasets``' retries (about 20 s of warnings) after the models load."""
    from datasets import config as datasets_config
    from huggingface_hub import constants, dataset_info

    hub_copy = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
    prepared = Path(datasets_config.HF_DATASETS_CACHE) / name.replace("/", "___")
    if hub_copy.is_dir() or prepared.is_dir():
        return
    hint = "a local file or directory of prompts"
    _check_reachable(name, what, dataset_info, ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"), hint, timeout)


def _check_reachable(name: str, what: str, info: Any, offline: tuple[str, ...], local: str, timeout: float) -> None:
    """Not cached: refused at once if one of the ``offline`` variables is set, else the hub must answer
    ``info(name)`` within ``timeout`` seconds; the error names ``local``, what to use instead."""
    offline_hint = f"work offline with {local} or a copy already in the Hugging Face cache (HF_HUB_OFFLINE=1)"
    typo = _missing_here(name)
    for variable in offline:
        if truthy(os.environ.get(variable)):
            here = f"; {typo}" if typo else ""
            cache = f"{what} is not in the local Hugging Face cache and {variable} is set{here}"
            raise UserError(f"{cache}: {offline_hint}")
    try:
        info(name, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - no network, unknown repo, gated repo: all say "cannot use it"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        here = f"{typo}, and " if typo else ""
        hub = f"{here}the Hugging Face hub cannot provide it ({first[:160]})"
        raise UserError(f"{what}: {hub}: {offline_hint}") from None


def _missing_here(name: str) -> str:
    """For a name that reads as a path below a folder that is here (``rm/nope`` beside a folder ``rm``): that it
    is not there, before the hub's answer, which alone said nothing of the local folder meant (a typo)."""
    parent = Path(name).expanduser().parent
    if str(parent) in ("", ".") or not parent.is_dir():
        return ""
    names = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"no {Path(name).name} in the folder {parent} here (it holds {shown or 'nothing'})"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and "Loading weights" bars for the duration."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
