"""The testbed's tabular policy (rlhf_zoo/policies/tabular.py): the documented order in which a prompt's
uniforms drive its tokens (and the texts they decode to), one generator's reproducibility, ``token_kl``'s direction
and the log-probs it hands back beside the KL, and the anchor's moving average."""

import torch

from rlhf_zoo.policies.tabular import LETTERS, PrefixTree, TabularPolicy


def test_row_j_step_t_takes_uniform_j_t_of_its_prompts_n_by_max_len_block():
    """Prompt i's n × max_len uniforms are drawn at once, row-major, from generator i (rlhf_zoo/policies/sampling.py):
    completion j's t-th token is the first whose cumulative probability at its prefix exceeds U[j, t] times the total.
    Re-derived here token by token with plain Python sums over the softmax of the table's row for the prefix; the
    text a reward reads is the completion's letters, without its EOS."""
    vocab, max_len, n = 3, 3, 6
    tree = PrefixTree(vocab_size=vocab, max_len=max_len)
    prompts = ["p", "q"]
    logits = torch.randn(len(prompts), tree.num_prefixes, vocab, generator=torch.Generator().manual_seed(1))
    logits[..., tree.eos] -= 1.0  # completions of every length
    policy = TabularPolicy(prompts, tree, logits)
    seeds = [7, 8]
    roll = policy.sample(prompts, n, generator=[torch.Generator().manual_seed(s) for s in seeds])
    lengths = set()
    for i, seed in enumerate(seeds):
        u = torch.rand(n, max_len, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).tolist()
        for j in range(n):
            prefix, tokens = (), []
            for t in range(max_len):
                probs = torch.softmax(logits[i, tree.index[prefix]].double(), -1).tolist()
                target, acc, tok = u[j][t] * sum(probs), 0.0, vocab - 1
                for v, p in enumerate(probs):
                    acc += p
                    if acc > target:
                        tok = v
                        break
                tokens.append(tok)
                if tok == tree.eos:
                    break
                prefix += (tok,)
            row = i * n + j
            k = int(roll.response_mask[row].sum())
            assert roll.completion_ids[row, :k].tolist() == tokens, (i, j)
            assert roll.texts[row] == "".join(LETTERS[v] for v in tokens if v != tree.eos)  # EOS is not text
            lengths.add(k)
    assert len(lengths) > 1  # completions that end early and ones that run to the cap


def test_token_kl_returns_the_p_roles_then_the_q_roles_token_log_probs(exact_task):
    """``with_logprobs=True``: (KL, log p of each completion token under ``p_role``, under ``q_role``), the very
    log-probs :meth:`logprobs` gives for each role; the roles differ, so a swap would show."""
    policy = exact_task.build_policy(0)
    with torch.no_grad():
        policy.logits.add_(torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(3)))
    roll = policy.sample(exact_task.train_prompts, 4, generator=torch.Generator().manual_seed(0))
    mask = roll.response_mask.bool()
    kl, lp, lq = policy.token_kl(roll, "policy", "ref", with_logprobs=True)
    p_own = policy.logprobs(roll, role="policy").detach()
    q_own = policy.logprobs(roll, role="ref")
    assert torch.allclose(lp[mask], p_own[mask]) and torch.allclose(lq[mask], q_own[mask])
    assert (p_own[mask] - q_own[mask]).abs().max() > 0.1
    assert torch.equal(kl, policy.token_kl(roll, "policy", "ref"))


def test_one_generator_makes_sampling_reproducible_and_leaves_the_global_rng_alone(exact_task):
    """One ``torch.Generator`` for the call (not one per prompt): the draws are that generator's, so a seeded call
    repeats whatever torch's global RNG holds, and the global stream does not move."""
    policy = exact_task.build_policy(0)
    prompts = exact_task.train_prompts

    def draw(global_seed):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        roll = policy.sample(prompts, 16, generator=torch.Generator().manual_seed(5))
        assert torch.equal(torch.get_rng_state(), before)
        return roll.completion_ids

    assert torch.equal(draw(0), draw(1))


def test_token_kl_is_kl_of_the_p_role_from_the_q_role_summed_over_the_visited_prefixes(exact_task):
    """KL(π_p ‖ π_q) = Σ_t Σ_v p_v (log p_v − log q_v) at each prefix a completion visits (its EOS step included),
    computed here from the two logit tables directly; KL is not symmetric, so the direction shows."""
    policy = exact_task.build_policy(0)
    tree = policy.tree
    with torch.no_grad():
        policy.logits.add_(2.0 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(4)))
    roll = policy.sample(exact_task.train_prompts, 3, generator=torch.Generator().manual_seed(1))
    expected = []
    for row in range(len(roll)):
        x = policy.prompt_index[roll.prompts[row]]
        prefix, total = (), 0.0
        for t in range(int(roll.response_mask[row].sum())):
            p = torch.softmax(policy.logits[x, tree.index[prefix]].detach().double(), -1)
            q = torch.softmax(policy.ref_logits[x, tree.index[prefix]].double(), -1)
            total += float((p * (p.log() - q.log())).sum())
            prefix += (int(roll.completion_ids[row, t]),)
        expected.append(total)
    got = policy.token_kl(roll, "policy", "ref")
    reverse = policy.token_kl(roll, "ref", "policy")
    assert torch.allclose(got.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    assert (got - reverse).abs().max() > 0.05


def test_update_anchor_moves_the_anchor_eta_of_the_way_to_the_policy(exact_task):
    """θ_anchor ← (1 − η)·θ_anchor + η·θ (ALGORITHMS.md §5–§6; J-BOND's EMA uses η = 0.02), and the version counts
    every update."""
    policy = exact_task.build_policy(0)
    old = policy.anchor_logits.clone()
    with torch.no_grad():
        policy.logits.add_(torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(2)))
    policy.update_anchor(0.25)
    assert torch.allclose(policy.anchor_logits, 0.75 * old + 0.25 * policy.logits.detach(), atol=1e-6)
    assert policy.anchor_version == 1
    policy.update_anchor(1.0)
    assert torch.equal(policy.anchor_logits, policy.logits.detach()) and policy.anchor_version == 2
