"""The pieces of the ``zoo-lm`` build that produce its numbers (packing, the two perplexities in ``meta.json``,
the learning-rate schedule, the training loop), each against an independent computation on a bigram model and
a character tokenizer small enough to follow by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from rlhf_zoo.policies import zoo_lm
from rlhf_zoo.policies.zoo_lm import ZooLMConfig

PAD, BOS, EOS = 0, 1, 2
VOCAB = 3 + 26


class CharTokenizer:
    """``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, then one id per lower-case letter; ``<s>`` opens every text."""

    pad_token_id, bos_token_id, eos_token_id = PAD, BOS, EOS

    def __len__(self):
        return VOCAB

    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [[BOS] * add_special_tokens + [3 + ord(c) - ord("a") for c in t] for t in texts]}


class Bigram(torch.nn.Module):
    """Next-token logits ``table[current token]``, whatever the attention mask; records what it was called with."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(seed)))
        self.bias = torch.nn.Parameter(torch.zeros(3))  # a vector: no weight decay
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_mask=None, labels=None):
        self.calls.append({"input_ids": input_ids.clone(), "labels": None if labels is None else labels.clone()})
        # the training loss's gradient is the count of each input token (+1 for the bias), whatever the weights
        loss = self.table[input_ids].sum() + self.bias.sum()
        self.calls[-1]["loss"] = float(loss.detach())
        return SimpleNamespace(logits=self.table[input_ids], loss=loss)


def bigram_nll(model: Bigram, seq: list[int]) -> float:
    """Σ −log p(next | current) over the consecutive pairs of ``seq``."""
    logp = torch.log_softmax(model.table.detach().double(), dim=-1)
    return -sum(float(logp[a, b]) for a, b in zip(seq, seq[1:], strict=False))


def test_pack_joins_every_text_between_bos_and_eos_and_pads_only_the_last_block():
    blocks = zoo_lm.pack(CharTokenizer(), ["ab", "cde", "f"], seq_len=5)
    a, b, c, d, e, f = range(3, 9)
    stream = [BOS, a, b, EOS, BOS, c, d, e, EOS, BOS, f, EOS]  # 12 tokens: 3 blocks of 5, 3 pads
    assert blocks.shape == (3, 5)
    assert blocks.reshape(-1).tolist() == stream + [PAD] * 3
    exact = zoo_lm.pack(CharTokenizer(), ["ab", "cd"], seq_len=4)  # 8 tokens fill 2 blocks: no block of padding
    assert exact.tolist() == [[BOS, a, b, EOS], [BOS, c, d, EOS]]


def test_perplexity_is_the_mean_next_token_nll_over_the_real_tokens_of_packed_blocks():
    model = Bigram()
    texts = ["thefilmwaswarm", "dull", "abc"]
    blocks = zoo_lm.pack(CharTokenizer(), texts, seq_len=8)
    stream = [t for t in blocks.reshape(-1).tolist() if t != PAD]
    # within a block every token predicts the next; the padding at the end is never a target
    nll = sum(bigram_nll(model, [t for t in row.tolist() if t != PAD]) for row in blocks)
    targets = sum(len([t for t in row.tolist() if t != PAD]) - 1 for row in blocks)
    assert targets == len(stream) - len(blocks) and blocks[-1, -1] == PAD
    assert zoo_lm.perplexity(model, blocks, PAD, batch_size=2) == pytest.approx(math.exp(nll / targets), rel=1e-5)


def test_snippet_perplexity_scores_each_text_on_its_own_up_to_its_eos():
    model = Bigram()
    tok = CharTokenizer()
    texts = ["warmstory", "ok", "sadending"]
    seqs = [ids + [EOS] for ids in tok(texts)["input_ids"]]  # <s> text </s>, no packing
    nll = sum(bigram_nll(model, s) for s in seqs)
    targets = sum(len(s) - 1 for s in seqs)
    got = zoo_lm.snippet_perplexity(model, tok, texts, batch_size=2)
    assert got == pytest.approx(math.exp(nll / targets), rel=1e-5)


def test_learning_rate_warms_up_linearly_then_decays_by_a_cosine_to_its_floor():
    cfg = ZooLMConfig(steps=104, warmup_steps=4, min_lr_frac=0.1)
    factors = [zoo_lm._lr_factor(s, cfg) for s in range(cfg.steps + 1)]
    assert factors[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])  # no step at rate 0
    assert factors[54] == pytest.approx(0.55)  # half-way through the decay: half-way to the floor
    assert factors[-1] == pytest.approx(0.1) and factors[-2] < 0.1 + 1e-3
    after = factors[cfg.warmup_steps :]
    assert all(x >= y for x, y in zip(after, after[1:], strict=False))


def test_training_steps_see_every_block_once_per_pass_with_fresh_clipped_gradients(monkeypatch):
    """One run of the loop, recording the optimiser: each step's gradient is its own batch's (clipped to norm 1),
    at the scheduled rate, with weight decay on matrices only; pads are ignored by the loss; every pass over the
    blocks sees each once."""
    steps_seen: list[dict] = []

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            steps_seen.append(
                {
                    "lr": [g["lr"] for g in self.param_groups],
                    "decay": {n: g["weight_decay"] for g in self.param_groups for n in map(id, g["params"])},
                    "grad": torch.cat([p.grad.reshape(-1).clone() for p in (model.table, model.bias)]),
                }
            )
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    cfg = ZooLMConfig(seq_len=4, batch_size=3, steps=4, lr=0.01, warmup_steps=2, weight_decay=0.1, grad_clip=1.0)
    blocks = torch.tensor([[BOS, 3 + i, 3 + (i * 7) % 26, EOS] for i in range(6)])
    blocks[-1, -2:] = PAD  # the last block ends in padding
    model = Bigram()
    stats = zoo_lm.train_model(model, blocks, cfg, PAD, progress=False)

    assert stats["tokens_seen"] == 4 * 3 * 4 and stats["epochs"] == 2.0
    assert len(model.calls) == len(steps_seen) == 4
    seen = [row.tolist() for call in model.calls for row in call["input_ids"]]
    for half in (seen[:6], seen[6:]):  # 12 rows: two passes over the 6 blocks
        assert sorted(half) == sorted(blocks.tolist())
    for call in model.calls:
        x, y = call["input_ids"], call["labels"]
        assert (y[x == PAD] == -100).all() and torch.equal(y[x != PAD], x[x != PAD])
    for k, (call, rec) in enumerate(zip(model.calls, steps_seen, strict=True)):
        counts = torch.bincount(call["input_ids"].reshape(-1), minlength=VOCAB).float()
        fresh = torch.cat([counts[:, None].expand(VOCAB, VOCAB).reshape(-1), torch.ones(3)])
        assert torch.allclose(rec["grad"], fresh / fresh.norm(), atol=1e-5), k  # this batch's only, clipped
        assert rec["lr"] == pytest.approx([cfg.lr * zoo_lm._lr_factor(k, cfg)] * 2), k
    decay = steps_seen[0]["decay"]
    assert decay[id(model.table)] == cfg.weight_decay and decay[id(model.bias)] == 0.0


def test_a_pass_that_does_not_fill_the_last_batch_tops_it_up_from_the_next_pass():
    """5 blocks in batches of 3: every step still trains on 3 blocks (a step of 2 would weigh its blocks more,
    and ``tokens_seen`` would be off), the 2 left of a pass joined by the first of a fresh order: over the 12
    rows the first 5 are one whole pass, and each block appears two or three times."""
    cfg = ZooLMConfig(seq_len=4, batch_size=3, steps=4, lr=0.01, warmup_steps=2)
    blocks = torch.tensor([[BOS, 3 + i, 4 + i, EOS] for i in range(5)])
    model = Bigram()
    stats = zoo_lm.train_model(model, blocks, cfg, PAD, progress=False)
    assert [len(call["input_ids"]) for call in model.calls] == [3, 3, 3, 3]
    assert stats["tokens_seen"] == 4 * 3 * 4
    seen = [tuple(row.tolist()) for call in model.calls for row in call["input_ids"]]
    assert sorted(set(seen[:5])) == sorted(map(tuple, blocks.tolist()))  # the first pass, whole
    counts = {b: seen.count(b) for b in map(tuple, blocks.tolist())}
    assert set(counts.values()) <= {2, 3} and sum(counts.values()) == 12


def test_a_batch_larger_than_the_blocks_trains_on_batch_size_blocks_drawn_from_whole_passes():
    """2 blocks in batches of 5 (a tiny corpus): every step still trains on 5 blocks, from passes that each hold
    every block once (the top-up drew one pass, and a step trained on 2 blocks); no blocks at all is refused."""
    cfg = ZooLMConfig(seq_len=4, batch_size=5, steps=2, lr=0.01, warmup_steps=1)
    blocks = torch.tensor([[BOS, 3 + i, 4 + i, EOS] for i in range(2)])
    model = Bigram()
    stats = zoo_lm.train_model(model, blocks, cfg, PAD, progress=False)
    assert [len(call["input_ids"]) for call in model.calls] == [5, 5]
    assert stats["tokens_seen"] == 2 * 5 * 4 and stats["epochs"] == 5.0
    seen = [tuple(row.tolist()) for call in model.calls for row in call["input_ids"]]
    for k in range(0, 10, 2):  # passes of 2 rows, each both blocks
        assert sorted(seen[k : k + 2]) == sorted(map(tuple, blocks.tolist())), k
    with pytest.raises(ValueError, match="no blocks"):
        zoo_lm.train_model(Bigram(), blocks[:0], cfg, PAD, progress=False)


def tiny_llama(tokenizer, seed: int = 0):
    """A randomly initialised ``zoo-lm`` Llama of a tiny shape (its attention heeds the mask and positions)."""
    pytest.importorskip("transformers")
    cfg = ZooLMConfig(
        vocab_size=300, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48, max_positions=64, seq_len=32
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return zoo_lm.new_model(cfg, tokenizer).eval()


def llama_nll(model, seq: list[int]) -> float:
    """Σ −log p(next | prefix) of ``seq`` run on its own: no padding, no mask, positions from 0."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([seq])).logits[0, :-1].double()
    return float(torch.nn.functional.cross_entropy(logits, torch.tensor(seq[1:]), reduction="sum"))


def test_both_perplexities_of_a_llama_equal_each_text_scored_on_its_own():
    """On a real (attention) model, padding and batching change nothing: the packed blocks' perplexity is that of
    each block's real tokens run alone, and the snippets' that of each ``<s> text </s>`` run alone."""
    tok = CharTokenizer()
    model = tiny_llama(tok)
    blocks = zoo_lm.pack(tok, ["thefilmwaswarm", "dull", "abc"], seq_len=8)
    rows = [[t for t in row.tolist() if t != PAD] for row in blocks]
    assert len(rows) == 4 and len(rows[-1]) < 8  # the last block is padded, alone in the last batch of 3
    want = math.exp(sum(map(lambda r: llama_nll(model, r), rows)) / sum(len(r) - 1 for r in rows))
    assert zoo_lm.perplexity(model, blocks, PAD, batch_size=3) == pytest.approx(want, rel=1e-4)
    texts = ["warmstory", "ok", "sadendingofaverylongfilm"]  # of three lengths, in one batch
    seqs = [ids + [EOS] for ids in tok(texts)["input_ids"]]
    want = math.exp(sum(map(lambda s: llama_nll(model, s), seqs)) / sum(len(s) - 1 for s in seqs))
    assert zoo_lm.snippet_perplexity(model, tok, texts, batch_size=3) == pytest.approx(want, rel=1e-4)


class SizedTokenizer:
    """Only what ``new_model`` reads: a size and special ids other than Llama's defaults."""

    pad_token_id, bos_token_id, eos_token_id = 5, 6, 7

    def __init__(self, size: int):
        self.size = size

    def __len__(self):
        return self.size


def test_the_default_model_has_the_documented_shape_with_tied_embeddings_and_the_tokenizer_s_ids():
    """Llama of width h, MLP m, vocabulary v: per layer q, k, v, o (h × h each: as many key/value heads as heads),
    SwiGLU gate, up and down (h × m each) and two RMSNorm weights (h); a final norm (h); one embedding (v × h)
    shared by input and output: 5.3 M parameters, 2.1 M of them the embedding (the module docstring)."""
    pytest.importorskip("transformers")
    cfg = ZooLMConfig()
    tok = SizedTokenizer(cfg.vocab_size)
    model = zoo_lm.new_model(cfg, tok)
    h, m, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    n = sum(p.numel() for p in model.parameters())
    assert n == v * h + cfg.num_layers * (4 * h * h + 3 * h * m + 2 * h) + h
    assert (round(n / 1e6, 1), round(v * h / 1e6, 1)) == (5.3, 2.1)
    ids = (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == ids
    gen = model.generation_config
    assert (gen.pad_token_id, gen.bos_token_id, gen.eos_token_id) == ids


def test_the_smoothed_training_loss_and_the_block_order_follow_the_losses_and_the_seed():
    """``final_train_loss_ema`` is the exponential moving average (weight 0.05 on each new step, from the first
    step's loss) of the losses the model returned; the order of the blocks is a function of the seed."""
    cfg = ZooLMConfig(seq_len=4, batch_size=2, steps=6, lr=0.01, warmup_steps=2)
    blocks = torch.tensor([[BOS, 3 + i, 4 + i, EOS] for i in range(7)])

    def run(seed: int) -> tuple[Bigram, dict]:
        model = Bigram()
        return model, zoo_lm.train_model(model, blocks, ZooLMConfig(**{**cfg.__dict__, "seed": seed}), PAD, False)

    model, stats = run(0)
    losses = [c["loss"] for c in model.calls]
    assert len(set(losses)) > 1
    ema = losses[0]
    for x in losses[1:]:
        ema += 0.05 * (x - ema)
    assert stats["final_train_loss_ema"] == pytest.approx(ema, abs=1e-4)

    def order(m: Bigram) -> list:
        return [row.tolist() for c in m.calls for row in c["input_ids"]]

    assert order(run(0)[0]) == order(model) != order(run(1)[0])


def test_sampled_continuations_draw_from_the_whole_distribution_seeded_without_touching_the_global_rng():
    """Temperature 1 with no top-p and no top-k: over a near-uniform model, most sampled tokens lie outside the 50
    most probable ones (a top-k of 50 would allow none); the same seed gives the same samples; the caller's
    random state is left as it was."""
    tok = zoo_lm.train_tokenizer(["a warm film", "a cold story"] * 5, 300)
    model = tiny_llama(tok)
    generated: list[torch.Tensor] = []
    generate = model.generate

    def recording(**kw):
        out = generate(**kw)
        generated.append(out[0, kw["input_ids"].shape[1] :])
        return out

    model.generate = recording
    prompts = ["a warm", "the cold"]
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = zoo_lm.sample_continuations(model, tok, prompts, max_new_tokens=20, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert zoo_lm.sample_continuations(model, tok, prompts, max_new_tokens=20, seed=4) == first
    assert [len(g) for g in generated] == [20] * 4  # no </s> drawn at this seed: every sample runs to the limit
    ranks = []
    for p, new in zip(prompts, generated[: len(prompts)], strict=True):
        seq = tok([p])["input_ids"][0] + new.tolist()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0]
        start = len(seq) - len(new)
        ranks += [int((logits[t - 1] > logits[t - 1, seq[t]]).sum()) for t in range(start, len(seq))]
    assert len(ranks) >= 20 and sum(r >= 50 for r in ranks) > len(ranks) / 2


def test_a_continuation_is_the_text_of_the_new_tokens_without_the_end_of_text_mark():
    """A model that answers every prompt with two words and ``</s>``: the recorded continuation is those words."""
    tok = zoo_lm.train_tokenizer(["a warm film", "a cold story"] * 5, 300)
    answer = tok(" cold story", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    class Answering:
        def eval(self):
            return self

        def generate(self, input_ids, attention_mask=None, **kw):
            return torch.cat([input_ids, torch.tensor([answer] * len(input_ids))], dim=1)

    got = zoo_lm.sample_continuations(Answering(), tok, ["a warm", "the"], max_new_tokens=4, seed=0)
    assert got == [["a warm", " cold story"], ["the", " cold story"]]
