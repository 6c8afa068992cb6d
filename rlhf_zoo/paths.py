"""Where rlhf_zoo caches what it builds once (converted models, the gold reward model, data).

``$RLHF_ZOO_CACHE`` if set, else ``$XDG_CACHE_HOME/rlhf_zoo``, else ``~/.cache/rlhf_zoo``.
Nothing here is ever written inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder, without creating it."""
    root = os.environ.get("RLHF_ZOO_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "rlhf_zoo" if xdg else Path.home() / ".cache" / "rlhf_zoo"


def cache_dir(*parts: str) -> Path:
    """A folder under :func:`cache_root`, created if missing."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
