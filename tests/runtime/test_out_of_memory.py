"""A failed allocation (``algo.n`` or a batch too large for the memory) ends with one line that says how much was
asked for and which settings to lower, not an allocator's traceback; other errors keep theirs."""

import pytest
import torch

from rlhf_zoo.runtime import out_of_memory


def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the test keeps whatever was raised
        return e
    raise AssertionError("nothing was raised")


def test_the_cpu_allocators_refusal_says_how_much_was_asked_for():
    e = _raised(lambda: torch.empty(2**62, dtype=torch.uint8))  # 4 EiB: refused at once, nothing touched
    assert out_of_memory(e) == "the CPU allocator was asked for 4096.0 PiB at once"
    e = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 5120000000000 bytes. Error code 12 (Cannot allocate memory)"
    )
    assert out_of_memory(e) == "the CPU allocator was asked for 4.7 TiB at once"


def test_an_accelerators_out_of_memory_error_says_its_size():
    e = torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB "
        "is free."
    )
    assert out_of_memory(e) == "the GPU was asked for 2.50 GiB more"
    assert out_of_memory(torch.OutOfMemoryError("out of memory")) == "on the GPU"
    assert out_of_memory(MemoryError()) == "Python's MemoryError"


@pytest.mark.parametrize(
    "error",
    [RuntimeError("boom"), ValueError("can't allocate memory: you tried to allocate 12 bytes"), KeyError("x")],
    ids=["other-runtime-error", "not-a-runtime-error", "key-error"],
)
def test_other_errors_are_not_taken_for_a_lack_of_memory(error):
    assert out_of_memory(error) is None


def test_a_training_run_asking_too_much_ends_with_one_line_and_exit_code_1(cli, tmp_path):
    """BOND with exact quantiles samples algo.n base completions per prompt each step: 10^10 of them cannot be
    held (it was 5 s and a 20-line traceback from DefaultCPUAllocator)."""
    code, _, err = cli(
        "train",
        "algo=bond",
        "task=exact",
        "algo.n=10000000000",
        "train.steps=1",
        "train.progress=false",
        f"run_dir={tmp_path / 'r'}",
    )
    assert (code, err.count("\n")) == (1, 1), err
    assert err.startswith("rlhf-zoo: error: out of memory (the CPU allocator was asked for ") and "algo.n" in err
