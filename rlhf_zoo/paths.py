"""Where rlhf_zoo caches what it builds once (converted models, the gold reward model, data).

``$RLHF_ZOO_CACHE`` if set, else ``$XDG_CACHE_HOME/rlhf_zoo``, else ``~/.cache/rlhf_zoo``.
Nothing here is ever written inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = os.environ.get("RLHF_ZOO_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "rlhf_zoo" if xdg else Path.home() / ".cache" / "rlhf_zoo"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
