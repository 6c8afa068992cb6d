#!/usr/bin/env bash
# The GPU suite and the throughput page in one command (docs/gpu.md). Run it from the repository root on
# the GPU machine, with the staging pieces carried (or already joined); each argument goes to
# benchmarks/gpu/run.py (size=check, budget=SECONDS, bench.KEY=VALUE, throughput.KEY=VALUE, ...).
# Exit 0: complete; 3: more to run, call it again; 1: a step failed; 2: bad arguments or missing pieces.
set -u
cd "$(dirname "$0")/../.." || exit 2
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m benchmarks.gpu.run "$@"
