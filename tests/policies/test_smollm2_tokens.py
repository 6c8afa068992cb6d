"""SmolLM2's special tokens are the ones its GGUF file and config declare, whatever transformers reads.

transformers 5.17 (the GPU image's) reads SmolLM2's GGUF tokenizer with ``<|im_start|>`` (id 1) as its end
of text and no padding token, where 5.23 reads ``<|im_end|>`` (id 2) for both, as the model's config says: a
copy converted there stopped completions on both tokens and padded with ``<|im_start|>``. Here a tiny model
and tokenizer stand in for the GGUF file, with the tokenizer as 5.17 gives it.
"""

from __future__ import annotations

import transformers

from rlhf_zoo.policies import models


def _as_5_17_reads_it() -> tuple[object, object]:
    tokenizer = models.build_tiny_tokenizer()
    model = models.build_tiny_model(tokenizer, seed=0)
    assert (model.config.eos_token_id, model.config.pad_token_id) == (
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    tokenizer.eos_token = tokenizer.bos_token  # as transformers 5.17 reads SmolLM2's GGUF file
    tokenizer.pad_token = None
    return model, tokenizer


def test_the_converted_copy_saves_the_configs_end_of_text_and_padding(tmp_path, monkeypatch):
    model, tokenizer = _as_5_17_reads_it()
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: tmp_path / "gguf" / "model.gguf")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    target = models.convert_smollm2(tmp_path / "smollm2")
    monkeypatch.undo()
    saved = transformers.AutoTokenizer.from_pretrained(str(target))
    assert saved.eos_token == "</s>" and saved.eos_token_id == model.config.eos_token_id
    assert saved.pad_token == "<pad>" and saved.pad_token_id == model.config.pad_token_id


def test_a_copy_converted_before_takes_the_configs_tokens_when_loaded(tmp_path, monkeypatch):
    model, tokenizer = _as_5_17_reads_it()
    monkeypatch.setattr(models, "convert_smollm2", lambda: tmp_path)
    monkeypatch.setattr(models, "load_pretrained", lambda name, dt: (model, tokenizer))
    _, loaded = models.load_model_and_tokenizer(models.SMOLLM2)
    assert (loaded.eos_token, loaded.pad_token) == ("</s>", "<pad>")
