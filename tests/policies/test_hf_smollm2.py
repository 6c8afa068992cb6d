"""The real SmolLM2-135M path, run only where its converted copy is already cached.

Converting the packaged GGUF takes about 25-40 s on 2 cores, too slow for the default test run,
so this test never converts: run ``python -c "from rlhf_zoo.policies.models import
convert_smollm2; convert_smollm2()"`` once to enable it (later loads take about a second).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.policies import models  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy  # noqa: E402


def _converted() -> bool:
    try:
        models.smollm2_gguf_path()
    except Exception:  # noqa: BLE001 - package missing: nothing to test
        return False
    return (models.smollm2_cache_path() / "config.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not _converted(), reason="SmolLM2 not converted yet (see module docstring)")
def test_smollm2_lora_samples_and_scores_consistently():
    pol = build_hf_policy(HFPolicyConfig(name="smollm2-135m", max_new_tokens=6), seed=0)
    assert pol.num_parameters() > 100_000_000
    r = pol.sample(["The movie was", "I loved"], 2, generator=torch.Generator().manual_seed(0))
    assert r.completion_ids.shape[0] == 4 and all(isinstance(t, str) for t in r.texts)
    with torch.no_grad():
        lp = pol.logprobs(r)
    assert float(((lp - r.sample_logp) * r.response_mask).abs().max()) < 1e-3
    assert pol.token_kl(r).abs().max() < 1e-5  # LoRA B = 0: π = π_ref
