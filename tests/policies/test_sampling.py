"""The token draw both policies share (rlhf_zoo/policies/sampling.py), on hand-made probabilities, and the
two policies' sampling paths agreeing on it."""

from __future__ import annotations

import torch

from rlhf_zoo.policies.hf.generation import TokenSampler
from rlhf_zoo.policies.sampling import inverse_cdf, nucleus, uniform_source
from rlhf_zoo.policies.tabular import PrefixTree, TabularPolicy


def test_inverse_cdf_picks_the_first_token_whose_cumulative_probability_exceeds_u():
    # Dyadic probabilities, so every CDF value and boundary is exact: CDF = [1/8, 1/8, 1/2, 1].
    probs = torch.tensor([0.125, 0.0, 0.375, 0.5])
    cases = {0.0: 0, 0.1: 0, 0.125: 2, 0.3: 2, 0.5: 3, 0.999: 3}  # at a boundary: the next token
    u = torch.tensor(list(cases), dtype=torch.float64)
    assert inverse_cdf(probs.expand(len(u), 4), u).tolist() == list(cases.values())
    # A zero-probability token is never drawn, even at u = 0 in front of the row.
    assert inverse_cdf(torch.tensor([[0.0, 0.5, 0.5]]), torch.zeros(1, dtype=torch.float64)).tolist() == [1]
    # Weights need not sum to 1: u is scaled by the row's total (here 8), so they draw like probs.
    assert inverse_cdf((8 * probs).expand(len(u), 4), u).tolist() == list(cases.values())


def test_nucleus_keeps_the_smallest_most_probable_set_reaching_top_p():
    probs = torch.tensor([[0.0625, 0.5, 0.1875, 0.25]])  # ranked: 1, 3, 2, 0; mass before: 0, .5, .75, .9375
    assert nucleus(probs, 0.75).tolist() == [[0.0, 0.5, 0.0, 0.25]]  # 0.5 + 0.25 reaches 0.75 exactly
    assert nucleus(probs, 0.76).tolist() == [[0.0, 0.5, 0.1875, 0.25]]
    assert nucleus(probs, 0.3).tolist() == [[0.0, 0.5, 0.0, 0.0]]  # the most probable token is always kept
    assert torch.equal(nucleus(probs, 1.0), probs)


def test_tabular_policy_and_lm_sampler_draw_the_same_tokens_from_the_same_generators():
    """One-step completions (max_len = 1) from a logit table, drawn by the tabular policy and by the
    language model's logits processor fed the same logits: per-prompt generators with the same seeds give
    the same tokens and log-probs, so both policies really share one draw."""
    vocab, n, seeds = 6, 300, [3, 4, 5]
    tree = PrefixTree(vocab_size=vocab, max_len=1)
    prompts = ["a", "b", "c"]
    logits = 2.0 * torch.randn(len(prompts), tree.num_prefixes, vocab, generator=torch.Generator().manual_seed(0))
    policy = TabularPolicy(prompts, tree, logits)

    def gens():
        return [torch.Generator().manual_seed(s) for s in seeds]

    tabular = policy.sample(prompts, n, generator=gens())
    sampler = TokenSampler(1.0, 1.0, uniform_source(gens(), len(prompts), n))
    scores = sampler(torch.zeros(len(prompts) * n, 1, dtype=torch.long), logits[:, 0].repeat_interleave(n, 0))
    tokens = scores.argmax(-1)
    assert len(set(tokens.tolist())) == vocab  # every token drawn: the comparison is not vacuous
    assert torch.equal(tabular.completion_ids[:, 0], tokens)
    assert torch.allclose(tabular.sample_logp[:, 0], sampler.steps[0], atol=1e-6)


def test_inverse_cdf_accumulates_in_float64_so_tiny_tokens_after_a_large_one_stay_reachable():
    """float32 probabilities (a language model's): 1 + 1e-8 rounds to 1 in float32, which would merge the ten
    1e-8 tokens after the first into its CDF step. In float64, u just below the total reaches the 3rd of them."""
    probs = torch.tensor([[1.0] + [1e-8] * 10])
    u = torch.tensor([0.999999925], dtype=torch.float64)  # u · (1 + 1e-7) ≈ 1 + 2.5e-8: past two tiny ones
    assert inverse_cdf(probs, u).tolist() == [3]


def test_one_generator_drives_every_uniform_of_the_call():
    """With one generator (not one per prompt) the uniforms are that generator's, so a seeded call repeats."""
    uniforms = uniform_source(torch.Generator().manual_seed(5), num_prompts=2, n=3)(6)
    assert torch.equal(uniforms, torch.rand(6, generator=torch.Generator().manual_seed(5), dtype=torch.float64))


def test_a_process_with_no_prompt_samples_an_empty_rollout():
    tree = PrefixTree(vocab_size=3, max_len=2)
    policy = TabularPolicy(["x0"], tree, torch.zeros(1, tree.num_prefixes, 3))
    empty = policy.sample([], 2, generator=[])
    assert len(empty) == 0 and empty.completion_ids.shape == (0, 2) and empty.texts == []
