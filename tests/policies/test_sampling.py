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
