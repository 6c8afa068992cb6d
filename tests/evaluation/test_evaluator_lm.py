"""The evaluator on the tiny language model: its KL estimates from the log-probs the policy gives for the
completions it sampled (the evaluator takes them from one pair of forward passes, ``token_kl``)."""

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.algorithms.reinforce import Reinforce  # noqa: E402
from rlhf_zoo.evaluate import Evaluator  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy  # noqa: E402
from rlhf_zoo.rewards.base import CallableReward  # noqa: E402
from rlhf_zoo.tasks.base import Task  # noqa: E402
from tests.rollout.recording import RecordingPolicy  # noqa: E402

PROMPTS = ["The movie was", "I did not expect the ending of this film to", "Great"]


def test_lm_kl_estimates_equal_those_of_independently_computed_logprobs():
    pol = build_hf_policy(HFPolicyConfig(max_new_tokens=6, logprob_batch_size=4), seed=0)
    with torch.no_grad():  # move π away from π_ref: LoRA's B matrices start at 0
        g = torch.Generator().manual_seed(0)
        for p in pol.trainable_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    task = Task(
        name="lm",
        train_prompts=PROMPTS,
        eval_prompts=PROMPTS,
        proxy=CallableReward(lambda prompts, texts: [len(t) / 10 for t in texts], "length"),
        gold=CallableReward(lambda prompts, texts: [t.count("e") for t in texts], "e_count"),
        build_policy=lambda seed: pol,
    )
    policy = RecordingPolicy(pol)
    got = Evaluator(task, Reinforce(), num_prompts=3, samples=3, ref_samples=2, seed=1)(policy, round=0)
    (call,) = policy.of("policy")
    roll = call.rollout
    with torch.no_grad():
        lp, lq = pol.logprobs(roll, role="policy"), pol.logprobs(roll, role="ref")
        full_p, full_q = pol.logprobs(roll, role="policy", full=True), pol.logprobs(roll, role="ref", full=True)
    mask = roll.response_mask.float()
    log_ratio = lq - lp
    token_kl = (full_p.exp() * (full_p - full_q)).sum(-1)
    assert got["kl/exact"] > 0.01
    assert got["kl/exact"] == pytest.approx(float((token_kl * mask).sum(-1).mean()), rel=1e-4)
    assert got["kl/k1"] == pytest.approx(float(((lp - lq) * mask).sum(-1).mean()), rel=1e-4)
    assert got["kl/k3"] == pytest.approx(float(((log_ratio.exp() - 1 - log_ratio) * mask).sum(-1).mean()), rel=1e-4)
    # tokens up to the first EOS, included (all of them when none was generated)
    ends = [[i for i, t in enumerate(row.tolist()) if t in pol.eos_token_ids] for row in roll.completion_ids]
    lengths = [e[0] + 1 if e else roll.completion_ids.shape[1] for e in ends]
    assert got["length/mean"] == pytest.approx(sum(lengths) / len(lengths))
    assert got["reward/proxy"] == pytest.approx(sum(len(t) / 10 for t in roll.texts) / len(roll))
