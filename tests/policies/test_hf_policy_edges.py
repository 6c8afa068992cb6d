"""HFPolicy's edges that the main tests (test_hf_policy.py) leave open: every config refusal, the generation
config each setting gives, the global RNG and the model's mode left as they were, the pad id of a tokenizer
without one, one-token prompts and completions, prompt grouping in scoring, the positions of the shared prompt
passes, and checkpoint shapes and refusals."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.errors import UserError  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy  # noqa: E402
from rlhf_zoo.policies.hf.generation import sampling_generation_config  # noqa: E402

PROMPTS = ["The movie was", "Great"]


def make(finetune: str = "lora", seed: int = 0, **kw):
    return build_hf_policy(HFPolicyConfig(finetune=finetune, **kw), seed=seed)


def masked_max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((a - b) * mask).abs().max())


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"max_prompt_tokens": 0}, "max_prompt_tokens"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"logprob_batch_size": 0}, "logprob_batch_size"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": 0.0}, "top_p"),
        ({"lora_alpha": 0.0}, "lora_alpha"),
        ({"lora_alpha": -16.0}, "lora_alpha"),
        ({"lora_alpha": float("nan")}, "lora_alpha"),
        ({"lora_alpha": float("inf")}, "lora_alpha"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"lora_dropout": -0.1}, "lora_dropout"),
        ({"lora_target_modules": ()}, "lora_target_modules"),
        ({"compile_generation": "maybe"}, "compile_generation"),
        ({"dtype": "int8"}, "dtype"),
        ({"finetune": "qlora"}, "finetune"),
    ],
)
def test_every_bad_setting_is_refused_naming_its_field(bad, needle):
    """Each field's range is checked on its own: a refusal names the field, so a bad value is never loaded."""
    with pytest.raises(UserError, match=needle):
        HFPolicyConfig(**bad)


def test_the_edges_of_each_range_are_accepted():
    """The closed ends of the ranges are valid settings: top_p = 1 (no truncation), dropout 0, a rank of 1."""
    cfg = HFPolicyConfig(top_p=1.0, lora_dropout=0.0, lora_r=1, max_prompt_tokens=1, temperature=1e-3)
    assert (cfg.top_p, cfg.lora_dropout, cfg.lora_r) == (1.0, 0.0, 1)
    assert HFPolicyConfig(generation_cache="static", compile_generation="on").compile_generation == "on"


@pytest.mark.parametrize(("given", "means"), [(True, "on"), ("True", "on"), (False, "off"), ("False", "off")])
def test_compile_generation_read_as_a_boolean_means_on_or_off(given, means):
    """YAML reads ``on``/``off`` as booleans, and a str field receives them as "True"/"False"."""
    assert HFPolicyConfig(generation_cache="static", compile_generation=given).compile_generation == means


# ---------------------------------------------------------------------------------- generation config


def test_the_generation_config_follows_the_cache_and_compile_settings():
    """``generation_cache=static`` preallocates the cache (dynamic leaves transformers' default); compiling is
    forbidden when the setting is off, and whatever the setting when the caller forbids it (sharded weights)."""

    def gen(compile_=True, **kw):
        return sampling_generation_config(HFPolicyConfig(**kw), [2], 0, 1, compile_=compile_)

    assert gen(generation_cache="static").cache_implementation == "static"
    assert gen().cache_implementation != "static"
    assert gen(compile_generation="off").disable_compile is True
    assert gen(compile_=False).disable_compile is True  # "auto", but sharded
    assert gen(generation_cache="static", compile_generation="on", compile_=False).disable_compile is True
    assert not gen().disable_compile  # "auto": transformers decides (GPU only)
    on = gen(generation_cache="static", compile_generation="on")
    assert not on.disable_compile and on.compile_config._compile_all_devices is True
    cfg = gen(max_new_tokens=5)
    assert (cfg.max_new_tokens, cfg.do_sample, cfg.num_beams, cfg.eos_token_id) == (5, False, 1, [2])


# ---------------------------------------------------------------------------------- state left as it was


def test_building_a_policy_and_its_anchor_leave_the_global_rng_alone():
    """Building (the tiny model's weights, LoRA's A) draws from a forked RNG seeded by ``seed``, and the anchor
    adapter's throwaway init forks too: neither shifts the caller's sampling stream."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    pol = make()
    assert torch.equal(torch.get_rng_state(), state)
    pol.update_anchor(1.0)  # builds the anchor adapter (a random init, overwritten by π)
    assert torch.equal(torch.get_rng_state(), state)


def test_sampling_and_measuring_leave_an_evaluating_policy_in_eval_mode():
    """Sampling and token_kl switch dropout off for their duration and then restore the mode they found: an
    eval-mode policy stays in eval mode (its log-probs then deterministic under LoRA dropout)."""
    pol = make(lora_dropout=0.5).eval()
    r = pol.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(0))
    assert not pol.model.training
    pol.token_kl(r)
    assert not pol.model.training
    assert not any(m.training for m in pol.model.modules())


def test_a_tokenizer_without_a_pad_token_pads_with_eos():
    """Many causal LMs have no pad token: the policy pads with EOS, and the masks still mark each completion
    up to and including its first EOS (ids after it are EOS too, masked out)."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy

    tokenizer = models.build_tiny_tokenizer()
    tokenizer.pad_token = None
    torch.manual_seed(0)
    pol = HFPolicy(models.build_tiny_model(tokenizer, seed=0), tokenizer, HFPolicyConfig(max_new_tokens=16))
    assert pol.pad_token_id == tokenizer.eos_token_id == 2
    r = pol.sample(["Great", "The movie was"], 8, generator=torch.Generator().manual_seed(1))
    assert (r.prompt_ids[r.prompt_mask == 0] == 2).all()  # the short prompt is left padded with EOS
    lengths = r.response_mask.sum(1)
    ended = lengths < r.completion_ids.shape[1]
    assert ended.any()  # not vacuous: some completions stop early
    for row, k in zip(r.completion_ids[ended], lengths[ended].tolist(), strict=True):
        assert row[k - 1] == 2 and (row[k:] == 2).all() and not (row[: k - 1] == 2).any()
    # Past its end a row holds no log-prob of whatever generate drew there: 0, as concat_rollouts pads it.
    assert (r.sample_logp[r.response_mask == 0] == 0).all()
    assert (r.sample_logp[r.response_mask == 1] < 0).all()


# ---------------------------------------------------------------------------------- anchor and checkpoints


def _nudge(pol, scale: float) -> None:
    """Move every trainable weight by a different amount (π then differs from π_ref and the anchor)."""
    with torch.no_grad():
        for i, p in enumerate(pol.trainable_parameters()):
            p.add_(scale * (i + 1) / 100)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_an_anchor_update_with_eta_zero_keeps_the_anchor_and_counts_as_an_update(finetune):
    """η lies in the closed range [0, 1]: η = 0 leaves the anchor where it was (bit for bit, lerp's end point)
    while π has moved, and still bumps the version; η outside [0, 1] is refused before anything changes."""
    pol = make(finetune)
    pol.update_anchor(1.0)
    before = {k: v for k, v in pol.state_dict().items() if k.startswith("anchor.")}
    _nudge(pol, 1.0)
    pol.update_anchor(0.0)
    assert pol.anchor_version == 2
    after = pol.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert any(not torch.equal(after[k], after["policy." + k[len("anchor.") :]]) for k in before)
    for eta in (-0.1, 1.01):
        with pytest.raises(ValueError, match="eta"):
            pol.update_anchor(eta)
    assert pol.anchor_version == 2


def test_a_checkpoint_whose_anchor_tensors_do_not_fit_is_refused_and_changes_nothing():
    """Shapes are checked for the anchor's tensors too, not only π's: an anchor of another shape would be
    broadcast into the anchor's weights by copy_ without a word."""
    pol = make()
    pol.update_anchor(1.0)
    _nudge(pol, 1.0)
    before = pol.state_dict()
    bad = dict(before)
    key = next(k for k in bad if k.startswith("anchor.") and "lora_A" in k)
    bad[key] = bad[key][:1].clone()  # [1, d]: broadcasts into the [r, d] weight
    fresh = make()
    fresh.update_anchor(1.0)
    with pytest.raises(UserError, match=f"shape differs for.*{key}"):
        fresh.load_state_dict(bad)
    assert torch.equal(fresh.state_dict()[key], make().state_dict()[key.replace("anchor.", "policy.", 1)])
    fresh.load_state_dict(before)
    got = fresh.state_dict()
    assert all(torch.equal(got[k], before[k]) for k in before)


def test_lora_targets_missing_from_the_architecture_are_a_user_error():
    """A module name the model does not have (another architecture's) is the user's setting to fix, named so."""
    with pytest.raises(UserError, match="lora_target_modules"):
        make(lora_target_modules=("c_attn",))


def test_one_lora_target_missing_beside_others_that_exist_is_a_user_error_naming_it():
    """PEFT skips a target that matches nothing when another one matches; a misspelt name must not
    silently train fewer weights than asked."""
    # the key as the command line writes it: it said "lora_target_modules: nope names no module"
    with pytest.raises(UserError, match=r"^model.lora_target_modules: nope names no module"):
        make(lora_target_modules=("q_proj", "nope"))
    # PEFT matches a whole module name or its last dotted part, so a cut-short name matches nothing either
    with pytest.raises(UserError, match=r"lora_target_modules: q_pro names no module"):
        make(lora_target_modules=("q_pro", "v_proj"))
    pol = make(lora_target_modules=("q_proj", "v_proj"))
    adapted = {n.split(".")[-4] for n, p in pol.model.named_parameters() if p.requires_grad and "lora_A" in n}
    assert adapted == {"q_proj", "v_proj"}


# ---------------------------------------------------------------------------------- one-token edges and grouping


def _alone(pol, prompt_ids: torch.Tensor, completion_ids: torch.Tensor) -> torch.Tensor:
    """Log-probs of ``completion_ids`` after ``prompt_ids`` (1-D, real tokens only) from one plain forward."""
    with torch.no_grad():
        logits = pol.model(input_ids=torch.cat([prompt_ids, completion_ids])[None]).logits[0].float()
    k = len(prompt_ids)
    return torch.log_softmax(logits[k - 1 : -1], -1).gather(-1, completion_ids[:, None]).squeeze(-1)


def test_one_token_prompts_and_one_token_completions_sample_and_score_with_shared_prompts():
    """An empty prompt is BOS alone (one token: nothing to prefill) and max_new_tokens=1 gives one-token
    completions (the shared pass then has no completion tokens to run): k samples of each still sample, and
    score like a plain forward of each row alone."""
    pol = make(max_new_tokens=1)
    r = pol.sample(["", ""], 3, generator=torch.Generator().manual_seed(0))
    assert r.prompt_ids.shape[1] == 1 and r.completion_ids.shape == (6, 1)
    with torch.no_grad():
        lp = pol.logprobs(r)
    for i in range(len(r)):
        assert abs(float(lp[i, 0] - _alone(pol, r.prompt_ids[i], r.completion_ids[i])[0])) < 1e-5
    assert masked_max_diff(lp, r.sample_logp, r.response_mask) < 1e-5
    longer = pol.sample(PROMPTS, 3, generator=torch.Generator().manual_seed(1))  # shared prefill, 1 token each
    with torch.no_grad():
        assert masked_max_diff(pol.logprobs(longer), longer.sample_logp, longer.response_mask) < 1e-5
    pol.cfg = HFPolicyConfig(max_new_tokens=4)
    r = pol.sample([""], 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert masked_max_diff(pol.logprobs(r), r.sample_logp, r.response_mask) < 1e-5
    assert (r.response_mask.sum(1) > 1).any()


def test_rows_with_the_same_ids_but_different_masks_are_not_one_prompt():
    """Grouping rows into one shared prompt pass needs the same ids *and* the same mask: a prompt that begins
    with the pad id's own token looks, id for id, like a shorter prompt left padded to the same width."""
    from rlhf_zoo.policies.base import Rollout

    pol = make()
    pad = pol.pad_token_id
    ids = torch.tensor([[pad, 1, 41, 279]] * 4)
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    completion = torch.tensor([[67, 86, 5], [90, 7, 2], [67, 86, 5], [90, 7, 2]])
    r = Rollout(
        prompts=["a", "a", "b", "b"],
        prompt_ids=ids,
        prompt_mask=mask,
        completion_ids=completion,
        response_mask=torch.ones_like(completion),
        sample_logp=None,
        texts=["", "", "", ""],
        group_size=2,
    )
    with torch.no_grad():
        lp = pol.logprobs(r)
    for i in range(4):
        expected = _alone(pol, ids[i][mask[i].bool()], completion[i])
        assert (lp[i] - expected).abs().max() < 1e-5, i
    assert (lp[0] - lp[2]).abs().max() > 1e-3  # the leading pad token really changes the prompt


def test_columns_of_padding_in_every_row_are_not_run():
    """Scoring cuts the prompt columns that are padding in every row and the completion columns past the longest
    completion, and keeps logits only where they predict a completion token: a rollout padded wider runs the same
    forward, and its log-probs are the same, padded back with zeros."""
    import torch.nn.functional as F

    from rlhf_zoo.policies.base import Rollout

    pol = make(share_prompts=False, max_new_tokens=6)
    r = pol.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(0))
    wide = Rollout(
        prompts=r.prompts,
        prompt_ids=F.pad(r.prompt_ids, (3, 0), value=pol.pad_token_id),
        prompt_mask=F.pad(r.prompt_mask, (3, 0)),
        completion_ids=F.pad(r.completion_ids, (0, 5), value=pol.pad_token_id),
        response_mask=F.pad(r.response_mask, (0, 5)),
        sample_logp=None,
        texts=r.texts,
        group_size=r.group_size,
    )
    seen: list[dict] = []
    pol.model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs), with_kwargs=True)
    with torch.no_grad():
        narrow_lp, wide_lp = pol.logprobs(r), pol.logprobs(wide)
    assert len(seen) == 2
    p, t = r.prompt_ids.shape[1], int(r.response_mask.sum(1).max())
    for kwargs in seen:
        assert kwargs["input_ids"].shape == (len(r), p + t)
        assert kwargs["logits_to_keep"] == t + 1
    assert torch.equal(wide_lp[:, : r.completion_ids.shape[1]], narrow_lp)
    assert wide_lp.shape == wide.completion_ids.shape and (wide_lp[:, r.completion_ids.shape[1] :] == 0).all()


def test_shared_scoring_runs_each_prompt_once_then_the_completions_against_its_cache():
    """With share_prompts, k rows of a prompt cost one prompt pass: a first forward of the distinct prompts
    alone, then one of the completions (all but the last token) whose mask covers the cached prompt plus the new
    tokens exactly, at the positions that continue each prompt's own."""
    pol = make(max_new_tokens=6)
    r = pol.sample(PROMPTS, 3, generator=torch.Generator().manual_seed(0))
    seen: list[dict] = []
    pol.model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs), with_kwargs=True)
    with torch.no_grad():
        pol.logprobs(r)
    p, t = r.prompt_ids.shape[1], int(r.response_mask.sum(1).max())
    assert len(seen) == 2
    head, tail = seen
    assert torch.equal(head["input_ids"], r.prompt_ids[::3])  # one row per distinct prompt
    assert tail["input_ids"].shape == (len(r), t - 1) and tail["attention_mask"].shape == (len(r), p + t - 1)
    real = r.prompt_mask.sum(1)  # each row's prompt length: its first completion token sits at that position
    kept = r.response_mask[:, : t - 1].bool()
    assert torch.equal(tail["position_ids"][kept], (real[:, None] + torch.arange(t - 1)).expand_as(kept)[kept])


def test_a_too_long_prompt_is_quoted_whole_up_to_80_characters_and_cut_with_dots_beyond():
    """The refusal quotes the prompt so the user can find it: whole when it fits 80 characters, else its first 77
    and "...", never a wall of text."""
    pol = make(max_prompt_tokens=4)
    fits = "the quick brown fox jumps over the lazy dog again and again"  # 59 characters
    with pytest.raises(UserError) as err:
        pol.encode_prompts([fits])
    assert repr(fits) in str(err.value)
    long = "word " * 30  # 150 characters
    with pytest.raises(UserError) as err:
        pol.encode_prompts(["ok", long])
    assert repr(long[:77] + "...") in str(err.value) and long[:78] not in str(err.value)


def _templated_tokenizer_and_its_calls() -> tuple[Any, Any, list[Any]]:
    """The tiny tokenizer with a chat template, a wrapper of it that records what each call tokenises, and
    that record."""
    from rlhf_zoo.policies import models

    tokenizer = models.build_tiny_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}bot:"
    calls: list[Any] = []

    class Counting:
        def __getattr__(self, name):
            return getattr(tokenizer, name)

        def __call__(self, text, **kw):
            calls.append(text)
            return tokenizer(text, **kw)

    return tokenizer, Counting(), calls


def test_a_prompts_count_is_the_length_encode_gives_chat_template_included_tokenised_once():
    """The prompt-fit check counts a prompt as sampling will encode it (the chat template's tokens included), and
    the tokenizer runs once per prompt however often it is counted and encoded."""
    from rlhf_zoo.policies.hf.tokens import PromptEncoder

    tokenizer, counting, calls = _templated_tokenizer_and_its_calls()
    enc = PromptEncoder(counting, HFPolicyConfig(chat_template=True), pad_token_id=0, eos_token_ids=[2])
    prompt = "The movie was"
    (n,) = enc.token_counts([prompt])
    _, mask = enc.encode([prompt, prompt], torch.device("cpu"))
    assert enc.token_counts([prompt]) == [n] and n == int(mask[0].sum())
    plain = len(tokenizer(prompt)["input_ids"])
    assert n >= plain + 3  # "user:", the newline and "bot:" count too
    assert calls == [[tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False)]]


@pytest.mark.parametrize("chat_template", [False, True])
def test_a_prompt_set_is_tokenised_in_batched_calls_as_each_prompt_alone_and_encoded_from_that_cache(chat_template):
    """token_counts (the prompt-fit check, the policy's tokenising of its prompt set before training, and
    encode) gives each prompt the ids that the tokenizer gives its text alone, in one tokenizer call per chunk
    of distinct prompts; encoding those prompts later calls the tokenizer no more."""
    from rlhf_zoo.policies.hf.tokens import PromptEncoder

    tokenizer, counting, calls = _templated_tokenizer_and_its_calls()

    def alone(prompt):  # the template's text holds its special tokens; a plain prompt gets the tokenizer's
        if not chat_template:
            return tokenizer(prompt)["input_ids"]
        chat = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    cfg = HFPolicyConfig(chat_template=chat_template)
    prompts = ["The movie was", "", "bad", "The movie was", "a long and winding review of a film", "x y", "bad"]
    expected = {p: alone(p) for p in prompts}
    assert all(expected.values())  # the tiny tokenizer's BOS: no empty row (NoSpecials below tests that case)
    enc = PromptEncoder(counting, cfg, pad_token_id=0, eos_token_ids=[2])
    assert enc.token_counts(prompts, chunk=2) == [len(expected[p]) for p in prompts]
    assert [len(c) for c in calls] == [2, 2, 1]  # 5 distinct prompts in chunks of 2
    assert enc.cache == expected
    _, mask = enc.encode(prompts, torch.device("cpu"))
    assert mask.sum(1).tolist() == [len(expected[p]) for p in prompts] and len(calls) == 3


def test_load_checkpoint_state_checks_on_its_own_before_copying_anything():
    """The module-level loader is strict by itself, not only behind HFPolicy.load_state_dict: a tensor of another
    shape is refused and no weight changes."""
    from rlhf_zoo.policies.hf.weights import checkpoint_state, load_checkpoint_state

    pol = make()
    state = pol.state_dict()
    first, last = pol._trainable[0][0], pol._trainable[-1][0]
    state[f"policy.{first}"] = state[f"policy.{first}"] + 1.0  # would be copied first
    state[f"policy.{last}"] = state[f"policy.{last}"][:1].clone()  # broadcasts into the weight
    before = pol.state_dict()
    with pytest.raises(UserError, match="shape differs"):
        load_checkpoint_state(state, pol._trainable, pol._anchor, "test")
    after = checkpoint_state(pol._trainable, pol._anchor)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_a_tokenizer_with_neither_pad_nor_eos_pads_with_the_checkpoints_eos_or_is_a_user_error():
    """Padding falls back to an EOS id, the tokenizer's or else the checkpoint's generation config's; with no EOS
    anywhere the policy refuses in words (completions could never end), not with int(None)'s TypeError."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy

    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0)
    tokenizer.pad_token = tokenizer.eos_token = None
    model.generation_config.eos_token_id = 2
    pol = HFPolicy(model, tokenizer, HFPolicyConfig(max_new_tokens=4))
    assert pol.eos_token_ids == [2] and pol.pad_token_id == 2
    r = pol.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(0))
    assert (r.prompt_ids[r.prompt_mask == 0] == 2).all()

    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0)
    tokenizer.pad_token = tokenizer.eos_token = None
    model.generation_config.eos_token_id = None
    with pytest.raises(UserError, match="no EOS"):
        HFPolicy(model, tokenizer, HFPolicyConfig())


def test_without_a_pad_token_the_tokenizers_eos_pads_even_where_the_checkpoint_names_more_eos_ids():
    """An instruct checkpoint's generation config may list end-of-turn ids of its own beside the tokenizer's
    EOS (2 here): padding takes the tokenizer's, whatever order or ids the checkpoint gives."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy

    for gen_eos in ([5, 2], [2, 5], 7):
        tokenizer = models.build_tiny_tokenizer()
        model = models.build_tiny_model(tokenizer, seed=0)
        tokenizer.pad_token = None
        model.generation_config.eos_token_id = gen_eos
        pol = HFPolicy(model, tokenizer, HFPolicyConfig(max_new_tokens=2))
        assert tokenizer.eos_token_id == 2 and 2 in pol.eos_token_ids and len(pol.eos_token_ids) == 2
        assert pol.pad_token_id == 2 and tokenizer.pad_token_id == 2, gen_eos


def test_a_training_policy_samples_without_dropout():
    """Sampling always runs in eval mode: with LoRA dropout in training mode, the sampling log-probs are the
    dropout-free ones (eval-mode scoring), and the policy is left in training mode."""
    pol = make(lora_dropout=0.5, max_new_tokens=6)
    _nudge(pol, 1.0)  # LoRA's B leaves 0, so dropout on its branch changes the output
    assert pol.training and pol.model.training  # a new policy trains
    r = pol.sample(PROMPTS, 3, generator=torch.Generator().manual_seed(0))
    assert pol.model.training
    with torch.no_grad():
        noisy = pol.logprobs(r)
        pol.eval()
        clean = pol.logprobs(r)
    assert masked_max_diff(noisy, clean, r.response_mask) > 1e-3  # dropout really is on in training mode
    assert masked_max_diff(r.sample_logp, clean, r.response_mask) < 1e-5


def test_repr_names_the_model_the_trainable_share_and_the_anchor_version():
    """What a log line shows of a policy: its name, fine-tuning, device, trainable/total weights and anchor."""
    pol = make()
    trainable = sum(p.numel() for p in pol.trainable_parameters())
    total = sum(p.numel() for p in pol.model.parameters())
    assert (
        repr(pol)
        == f"HFPolicy(name='tiny', finetune='lora', device=cpu, trainable={trainable:,}/{total:,}, anchor=none)"
    )
    pol.update_anchor(1.0)
    pol.update_anchor(0.5)
    assert repr(pol).endswith("anchor=v2)")


def test_a_sharded_policy_built_without_an_anchor_refuses_to_add_one():
    """No weights can be added to FSDP-sharded ones: the anchor must be built at shard(anchor=True), and asking a
    policy sharded without one for an anchor is a UserError saying so (here a stand-in unit marks it sharded)."""
    pol = make()

    class Unit:
        def reshard(self):
            pass

    pol._fsdp_units = [Unit()]
    assert pol.sharded
    with pytest.raises(UserError, match="without an anchor"):
        pol.update_anchor(1.0)
    assert not pol.has_anchor and pol.anchor_version == 0


def test_prompts_must_be_an_ordered_list_of_strings():
    """Rows follow the prompts' order, so an unordered set (or a bare string, a sequence of letters) is refused in
    words rather than encoded in whatever order iteration gives."""
    pol = make()
    for bad in ({"The movie was", "Great"}, "Great", 3):
        with pytest.raises(UserError, match="list of strings"):
            pol.encode_prompts(bad)
    with pytest.raises(UserError, match="must be strings"):
        pol.encode_prompts(["ok", 3])
    ids, mask = pol.encode_prompts(("Great", "The movie was"))  # any ordered sequence will do
    assert ids.shape[0] == 2 and int(mask[0].sum()) < int(mask[1].sum())


def test_generation_stops_once_every_row_has_ended_on_any_eos_id():
    """An instruct checkpoint's own end-of-turn id ends a completion as EOS does, in generate too: the rollout is
    as wide as its longest completion, not run on until every row draws the tokenizer's EOS."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy

    cfg = HFPolicyConfig(max_new_tokens=40)
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    first = build_hf_policy(cfg, seed=0).sample(PROMPTS, 4, generator=gens())
    drawn = first.completion_ids[first.response_mask.bool() & (first.completion_ids != 2)]
    turn_end = int(drawn.mode().values)  # the token the model draws most: make it the end-of-turn id
    assert turn_end != 2
    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0)
    model.generation_config.eos_token_id = [2, turn_end]
    torch.manual_seed(0)
    pol = HFPolicy(model, tokenizer, cfg)
    assert pol.eos_token_ids == [2, turn_end]
    r = pol.sample(PROMPTS, 4, generator=gens())
    lengths = r.response_mask.sum(1)
    ends = r.completion_ids.gather(1, (lengths - 1)[:, None]).squeeze(1)
    assert (ends == turn_end).any() and r.completion_ids.shape[1] == int(lengths.max())
    assert int(lengths.max()) < first.completion_ids.shape[1]  # not vacuous: EOS alone runs on longer


def test_a_policy_wrapping_a_model_loaded_in_eval_mode_starts_in_training_mode():
    """from_pretrained hands models over in eval mode; the policy starts training (LoRA dropout on) as it says."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy

    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0).eval()
    pol = HFPolicy(model, tokenizer, HFPolicyConfig(lora_dropout=0.1))
    assert pol.training and pol.model.training
    assert all(m.training for m in pol.model.modules())


def test_shared_sampling_runs_each_prompt_once_and_generates_from_its_last_token():
    """With share_prompts, the n samples of a prompt share one prompt pass in sampling too (the prefill): the first
    forward holds each distinct prompt once, all but its last token, and every later forward is one token per row
    (``generate`` starts from the last prompt token), so no prompt is run again for each of its n rows."""
    pol = make(max_new_tokens=4)
    calls: list[torch.Tensor] = []
    pol.model.get_base_model().register_forward_pre_hook(
        lambda _m, _a, kwargs: calls.append(kwargs["input_ids"].clone()), with_kwargs=True
    )
    r = pol.sample(PROMPTS, 3, generator=torch.Generator().manual_seed(0))
    ids, _ = pol.encode_prompts(PROMPTS)
    assert ids.shape[1] > 2  # prompts of several tokens, so a prompt pass per row would show
    assert torch.equal(calls[0], ids[:, :-1])
    assert len(calls) > 1 and [tuple(c.shape) for c in calls[1:]] == [(len(r), 1)] * (len(calls) - 1)


def test_a_frozen_copy_is_a_separate_eval_mode_model_with_no_gradients():
    """Full fine-tuning's π_ref: equal weights in storage of its own, never trained (no requires_grad, no .grad,
    eval mode), while the original keeps training."""
    from rlhf_zoo.policies.hf.weights import frozen_copy

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).train()
    model(torch.ones(1, 3)).sum().backward()
    ref = frozen_copy(model)
    assert not ref.training and not any(m.training for m in ref.modules())
    for (name, p), (ref_name, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert name == ref_name and torch.equal(p, q) and p.data_ptr() != q.data_ptr()
        assert not q.requires_grad and q.grad is None
        assert p.requires_grad and p.grad is not None
    assert model.training


def test_wrapping_a_model_drops_its_checkpoints_sampling_defaults():
    """``generate`` fills unset options from ``model.generation_config``: a checkpoint's repetition penalty,
    temperature or sampling switch must not survive into it, only its special token ids."""
    from rlhf_zoo.policies import models
    from rlhf_zoo.policies.hf import HFPolicy

    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0)
    gen = model.generation_config
    gen.do_sample, gen.temperature, gen.top_p, gen.repetition_penalty, gen.no_repeat_ngram_size = True, 0.3, 0.5, 1.3, 2
    gen.eos_token_id = [2, 7]
    pol = HFPolicy(model, tokenizer, HFPolicyConfig(max_new_tokens=2))
    gen = pol.model.generation_config
    # unset (None, transformers 5) or the library default that changes nothing
    assert gen.do_sample in (None, False) and gen.temperature in (None, 1.0) and gen.top_p in (None, 1.0)
    assert gen.repetition_penalty in (None, 1.0) and gen.no_repeat_ngram_size in (None, 0)
    assert gen.eos_token_id == [2, 7] and gen.pad_token_id == pol.pad_token_id
