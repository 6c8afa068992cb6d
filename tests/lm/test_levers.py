"""benchmarks/levers.py: each lever's "before" and "after" differ only in that lever."""

import pytest
import torch

import benchmarks.levers as levers
from rlhf_zoo.policies.hf import generation


@pytest.fixture
def bench():
    return levers.Bench(levers.LeversOptions(model="tiny", tokens=3, reps=1, samples=2))


@pytest.fixture
def prefills_per_measurement(monkeypatch):
    """For each ``timed`` measurement, in order: how many shared prompt passes (prefills) its calls ran."""
    prefills, out = [], []
    real_prefill, real_timed = generation.prefill, levers.timed

    def prefill(*args, **kwargs):
        prefills.append(1)
        return real_prefill(*args, **kwargs)

    def timed(fn, reps, sync):
        n0 = len(prefills)
        try:
            return real_timed(fn, reps, sync)
        finally:
            out.append(len(prefills) - n0)

    monkeypatch.setattr(generation, "prefill", prefill)
    monkeypatch.setattr(levers, "timed", timed)
    return out


@pytest.mark.parametrize("lever", ["sampler", "static"])
def test_sampler_and_static_cache_levers_do_not_also_toggle_prompt_sharing(bench, lever, prefills_per_measurement):
    """Prompt sharing (one prefill per prompt) is the ``share`` lever; the sampler's "before" (``generate``'s
    multinomial) and a static cache never share, so the other side of these levers must not either, or the
    speed-up printed for them includes share's."""
    getattr(bench, lever)()
    before, after = prefills_per_measurement[:2]
    assert (before > 0) == (after > 0), f"{lever}: prefills before {before}, after {after}"


def test_ref_and_anchor_levers_compare_against_a_plain_copy_of_the_base_weights(bench, monkeypatch):
    """The "before" of ``ref`` is the full-fine-tuning reference: a frozen copy of the base model, with no
    LoRA layers in its forward pass and no adapter weights in its size; the "third full copy" of ``anchor``
    is the base weights too."""
    from peft.tuners.lora import LoraLayer

    from rlhf_zoo.policies.hf.policy import HFPolicy

    scored = []  # the modules the reference log-probs ran through
    real = HFPolicy._chunk_logprobs

    def spy(self, module, rows, full):
        scored.append(module)
        return real(self, module, rows, full)

    monkeypatch.setattr(HFPolicy, "_chunk_logprobs", spy)
    bench.ref()
    copies = [m for m in scored if m is not bench.policy.model]
    assert copies, "the 'before' path never ran through a copy"
    assert not any(isinstance(x, LoraLayer) for m in copies for x in m.modules()), "the copy still has LoRA layers"

    bench.anchor()
    base = sum(p.numel() * p.element_size() for n, p in bench.policy.model.named_parameters() if "lora_" not in n)
    rows = {r[0]: r for r in bench.rows}
    expected = f"{base / 2**20:.4g} MiB"
    assert rows["ref memory"][2] == expected and rows["anchor memory"][2] == expected, (rows, expected)


def test_bf16_lever_runs_from_float16_weights():
    """``dtype=float16`` is a valid policy dtype: the lever compares it against bfloat16."""
    bench = levers.Bench(levers.LeversOptions(model="tiny", tokens=3, reps=1, samples=2, dtype="float16"))
    bench.bf16()
    labels = [(r[0], r[1], r[3]) for r in bench.rows]
    assert labels == [("bf16 generate", "float16", "bfloat16"), ("bf16 update", "float16", "bfloat16")]
    assert torch.isfinite(torch.tensor(float(bench.rows[0][2].split()[0])))
