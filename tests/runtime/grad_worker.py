"""One process of the 2-process group of test_average_gradients: gradients that are None on some processes.
Writes ``<folder>/rank<r>.json`` (the folder is the one argument)."""

import json
import sys
from pathlib import Path

import torch

from rlhf_zoo.runtime import Runtime, end_process_group

rt = Runtime(device="cpu")
assert rt.world == 2
a, b, c = (torch.nn.Parameter(torch.zeros(n)) for n in (3, 2, 4))
# Step 1: b is used on rank 0 only, c on neither.
a.grad = torch.full((3,), 1.0 + 2 * rt.rank)
b.grad = torch.full((2,), 2.0) if rt.rank == 0 else None
rt.average_gradients([a, b, c])
first = [None if p.grad is None else p.grad.tolist() for p in (a, b, c)]
# Step 2: rank 1 has no gradient at all.
for p in (a, b, c):
    p.grad = None
b.grad = torch.full((2,), 4.0) if rt.rank == 0 else None
rt.average_gradients([a, b, c])
second = [None if p.grad is None else p.grad.tolist() for p in (a, b, c)]
# one file per process (two processes printing at once can run their lines together)
Path(sys.argv[1], f"rank{rt.rank}.json").write_text(json.dumps({"rank": rt.rank, "first": first, "second": second}))
end_process_group()  # as the command does: a group left to the exit can abort a finished process
