"""Join the staging pieces carried into this call, and once all are here install them (on the GPU machine).

    python3 -m benchmarks.gpu.unstage                 # pieces from gpu_stage/, into /tmp/stage and /tmp/site
    python3 -m benchmarks.gpu.unstage pieces=gpu_stage stage=/tmp/stage site=/tmp/site

Standard library only: it runs on a bare machine. Each call copies the carried ``gpu_stage/piece-NN/`` into
``stage`` (sha256 checked; a piece joined before is skipped) and says which pieces are still missing. When
the last one arrives it unpacks the stream, checks every file's sha256 against the manifest, installs the
wheels into ``site`` (``pip install --no-index --no-deps --target``) and puts the cache files in
``stage/cache``; ``source stage/env.sh`` then sets ``PYTHONPATH`` and ``RLHF_ZOO_CACHE``. Exit 0 (also
while pieces are missing: that is the normal state between staging calls), 2 on an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.gpu.staging import StagingError, parse_kv, unstage

DEFAULTS = {"pieces": "gpu_stage", "stage": "/tmp/stage", "site": "/tmp/site"}


def main(argv: list[str]) -> int:
    try:
        o = parse_kv(argv, DEFAULTS, "unstage")
        status = unstage(Path(o["pieces"]), Path(o["stage"]), Path(o["site"]))
    except StagingError as e:
        print(f"unstage: {e}", file=sys.stderr)
        return 2
    if status.missing:
        print(f"unstage: {status.missing_message(o['pieces'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
