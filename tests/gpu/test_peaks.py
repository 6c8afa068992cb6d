"""The datasheet peak that the update's MFU is measured against, by the name the GPU reports."""

from __future__ import annotations

import re

import pytest
import torch

from rlhf_zoo import profile


@pytest.mark.parametrize(
    ("name", "dtype", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989e12),  # SXM: 1,979 TFLOPS with sparsity
        ("NVIDIA H100 PCIe", "bfloat16", 756e12),
        ("NVIDIA H100 NVL", "bfloat16", 835e12),
        ("NVIDIA H200", "bfloat16", 989e12),
        ("NVIDIA H200 NVL", "float32", 60e12),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312e12),
        ("NVIDIA H100 80GB HBM3", "float32", 67e12),  # FP32, not the TF32 tensor-core figure
        ("NVIDIA A100-SXM4-80GB", "float32", 19.5e12),
    ],
)
def test_the_most_specific_datasheet_entry_wins(name, dtype, peak):
    value, source = profile.datasheet_peak(name, dtype)
    assert value == peak and "datasheet" in source and name in source


def test_peak_flops_on_a_cuda_device_reads_the_datasheet_and_says_so_when_unknown(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    value, source = profile.peak_flops(torch.device("cuda"), torch.bfloat16)
    assert value == 989e12 and "NVIDIA H200 Tensor Core GPU datasheet" in source
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    value, source = profile.peak_flops(torch.device("cuda"), torch.float32)
    assert value != value and "no datasheet peak known" in source
    assert profile.datasheet_peak("Some GPU", "bfloat16") is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_cpu_peak_is_the_matmuls_flops_over_their_seconds(monkeypatch, dtype):
    """On a CPU the peak is measured: each n×n by n×n matmul does 2·n³ FLOPs (a multiply and an add per term).
    Under a clock that moves 0.1 s per matmul and at no other time, the rate is one matmul's FLOPs per 0.1 s."""
    import time

    clock, shapes = [0.0], []

    def timed_matmul(a, b):  # the product is not used: not computed (a CPU's float16 matmul takes seconds)
        clock[0] += 0.1
        shapes.append((a.shape[0], a.shape[1], b.shape[1]))

    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(torch.Tensor, "__matmul__", timed_matmul)
    value, source = profile.peak_flops(torch.device("cpu"), dtype)
    assert len(set(shapes)) == 1 and len(shapes) > 2
    m, k, n = shapes[0]
    assert value == pytest.approx(2 * m * k * n / 0.1) and "measured" in source
    assert re.search(rf"\b{str(dtype).removeprefix('torch.')}\b", source)  # the dtype it measured
