"""Sampling's parts (rlhf_zoo.policies.hf.generation) on their own: the token-drawing logits processor on
half-precision scores, at top_p = 1 and past the end of a completion; the generation defaults a wrapped model
keeps."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from rlhf_zoo.policies.hf.generation import TokenSampler  # noqa: E402


def fixed(u: float):
    """A uniform source that gives every row the same uniform ``u``."""
    return lambda rows: torch.full((rows,), u, dtype=torch.float64)


def test_the_sampler_records_float32_log_probs_of_half_precision_scores():
    """A bfloat16 model hands generate bfloat16 logits: the recorded log-probs are log_softmax(logits / T) computed
    in float32 (as scoring computes them), not in bfloat16, so sampling and scoring ratios stay exact."""
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.bfloat16)
    sampler = TokenSampler(0.7, 1.0, fixed(0.5))
    out = sampler(torch.zeros(2, 1, dtype=torch.long), scores)
    (step,) = sampler.steps
    tok = torch.tensor([0, 2])  # u = 0.5: the first token whose cumulative probability exceeds half
    assert torch.equal(out.argmax(-1), tok)
    assert step.dtype == torch.float32
    expected = torch.log_softmax(scores.float() / 0.7, -1).gather(1, tok[:, None]).squeeze(1)
    assert torch.allclose(step, expected, atol=1e-7, rtol=0)


def test_top_p_one_truncates_nothing_a_token_after_a_float32_mass_of_one_stays_reachable():
    """top_p = 1 means no nucleus: a token whose probability is tiny beside one that holds (in float32) all the
    mass is still drawn when the uniform falls in its step of the CDF. A nucleus cut at 1 would drop it, since the
    mass before it already rounds to 1."""
    scores = torch.tensor([[20.0, 0.0]])
    probs = torch.softmax(scores, -1)
    assert float(probs[0, 0]) == 1.0 and float(probs[0, 1]) > 0  # float32: the first token's mass rounds to 1
    sampler = TokenSampler(1.0, 1.0, fixed(1.0 - 1e-12))  # above 1 / (1 + p[1]): the second token's step
    out = sampler(torch.zeros(1, 1, dtype=torch.long), scores)
    assert int(out.argmax(-1)) == 1
    assert torch.allclose(sampler.steps[0], torch.log_softmax(scores, -1)[:, 1])


def test_finish_keeps_the_log_probs_of_the_returned_tokens_only():
    """Generate may step on after the returned tokens (sharded weights keep every process stepping until all have
    ended): the log-probs kept are those of the first T steps, the ones that drew the T tokens returned."""
    sampler = TokenSampler(1.0, 1.0, fixed(0.5))
    logits = [torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 5.0]])]
    drawn = [int(sampler(torch.zeros(1, 1, dtype=torch.long), s).argmax(-1)) for s in logits]
    completion = torch.tensor([drawn[:2]])  # generate returned the first two
    got = sampler.finish(completion)
    expected = [float(torch.log_softmax(s, -1)[0, t]) for s, t in zip(logits[:2], drawn[:2], strict=True)]
    assert got.shape == (1, 2) and torch.allclose(got[0], torch.tensor(expected))


def test_the_wrapped_models_generation_defaults_are_its_special_token_ids_and_nothing_else():
    """A checkpoint's generation defaults (top_k=50 is a common one) are all dropped when the policy wraps the
    model: ``generate`` would fill any option left unset from them. Only the BOS, EOS and pad ids remain."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy, HFPolicyConfig

    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0)
    gen = model.generation_config
    gen.top_k, gen.min_length, gen.suppress_tokens, gen.eos_token_id = 50, 5, [7], [2, 7]
    pol = HFPolicy(model, tokenizer, HFPolicyConfig(max_new_tokens=2))
    kept = pol.model.generation_config.to_diff_dict()
    kept.pop("transformers_version", None)
    assert kept == {"bos_token_id": 1, "eos_token_id": [2, 7], "pad_token_id": pol.pad_token_id}


def test_the_shared_prefill_keeps_the_logits_of_no_more_than_one_position():
    """The prefill (each distinct prompt once, all but its last token) is run for its KV cache only: its output
    holds the logits of one position per prompt, not a [B, P, V] tensor for a long prompt."""
    from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy

    pol = build_hf_policy(HFPolicyConfig(max_new_tokens=2), seed=0)
    shapes: list[tuple[int, ...]] = []
    pol.model.get_base_model().register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.logits.shape)))
    pol.sample(["The movie was", "Great"], 3, generator=torch.Generator().manual_seed(0))
    assert shapes[0] == (2, 1, pol.model.config.vocab_size)  # the prefill: one row per prompt, one position


def test_one_sample_per_prompt_runs_no_separate_prefill():
    """A prompt pass shared by one row saves nothing: with n = 1, generate's first forward runs the whole prompts
    (no prefill of all but their last token before it), and each later forward one token per row."""
    from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy

    pol = build_hf_policy(HFPolicyConfig(max_new_tokens=3), seed=0)
    calls: list[torch.Tensor] = []
    pol.model.get_base_model().register_forward_pre_hook(
        lambda _m, _a, kwargs: calls.append(kwargs["input_ids"].clone()), with_kwargs=True
    )
    pol.sample(["The movie was", "Great"], 1, generator=torch.Generator().manual_seed(0))
    ids, _ = pol.encode_prompts(["The movie was", "Great"])
    assert torch.equal(calls[0], ids)
    assert [tuple(c.shape) for c in calls[1:]] == [(2, 1)] * (len(calls) - 1)
