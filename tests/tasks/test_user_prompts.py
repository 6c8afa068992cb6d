"""A user's prompts through the command line: used whole, an evaluation file, counts printed and
recorded, a too-small evaluation set visible, prompts that do not fit the model refused before loading."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_jsonl

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

LONG = "I watched this film last night with my whole family and we all agreed that it was far too long"
TEXTS = [LONG, "The acting was", "The acting was", "", *[f"review number {i} says the plot is thin" for i in range(16)]]


def _meta(tmp_path):
    return json.loads((tmp_path / "run" / "meta.json").read_text())


def test_own_prompts_are_used_whole_and_counted(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", "task.eval_fraction=0.5")
    assert code == 0, err
    counts = _meta(tmp_path)["prompts"]
    # 20 lines: the empty one skipped, the duplicate kept (as given), nothing cut or merged.
    assert counts["train"] + counts["eval_held_out"] == 19
    assert counts["eval"] == min(2, counts["eval_held_out"])
    line = [x for x in err.splitlines() if "prompts:" in x]
    assert len(line) == 1 and f"{counts['train']} for training" in line[0]

    from rlhf_zoo.config import as_dataclass, load_config
    from rlhf_zoo.tasks.sentiment import load_prompt_sets

    cfg = load_config(["algo=bond", *tiny_lm, f"task.prompts={prompts}"])
    sets = load_prompt_sets(as_dataclass(cfg, "task"))
    train, evals, _ = sets.train, sets.evals, sets.source
    assert LONG in train + evals  # whole, not its first six words
    assert (train + evals).count("The acting was") == 2


@pytest.mark.parametrize("other", ["b.txt", "sub/b.csv", "states.txt"])  # not taken for a dataset's state.json
def test_a_prompt_folder_of_several_file_formats_is_refused(cli, tiny_lm, tmp_path, other):
    """A folder of a.jsonl and b.txt trained on a.jsonl's prompts alone, without a word: datasets reads the
    files of one format of a folder and leaves the others out."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", TEXTS)
    (folder / other).parent.mkdir(exist_ok=True)
    (folder / other).write_text("text\nthree words here\n")
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={folder}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    kinds = ", ".join(sorted([".jsonl", "." + other.rsplit(".", 1)[1]]))
    assert f"task.prompts={folder} holds prompt files of several formats ({kinds}), of which one would" in err, err


def test_a_prompt_folder_whose_files_hold_other_columns_says_so(cli, tiny_lm, tmp_path):
    """A folder of two JSONL files, one with a column more, said "cannot load prompts from 'DIR': CastError:
    Couldn't cast"."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", TEXTS)
    (folder / "b.jsonl").write_text(json.dumps({"text": "three words here", "label": 1}) + "\n")
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={folder}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cannot load prompts from '{folder}': its files do not all hold the same columns (one holds " in err, err
    assert "label" in err and "give them the same columns, or name one file" in err, err
    # a folder of other files (a run directory) names a few of their many columns, not all
    (folder / "b.jsonl").write_text(json.dumps({f"column_{i}": i for i in range(30)}) + "\n")
    code, out, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={folder}")
    assert code == 2 and "column_5, ..., another text" in err and "column_6" not in err, err


def test_a_prompt_folder_with_a_card_and_a_licence_beside_its_data_is_read(cli, tiny_lm, tmp_path):
    """A dataset repository's README.md and LICENSE.txt are not prompt files of another format."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", TEXTS)
    (folder / "README.md").write_text("# my prompts\n")
    (folder / "LICENSE.txt").write_text("CC-BY\n")
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={folder}")
    assert code == 0, err


def test_prompt_words_cuts_every_source_when_set(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    evals = write_jsonl(tmp_path / "e.jsonl", ["one two three", "one two four", "five six"])
    files = [f"task.prompts={prompts}", f"task.eval_prompts={evals}"]
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *files, "task.prompt_words=2")
    assert code == 0, err
    counts = _meta(tmp_path)["prompts"]
    assert (counts["train"], counts["eval_held_out"]) == (3, 2)  # "I watched", "The acting", "review number"
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *files, "task.prompt_words=-1")
    assert code == 2 and "prompt_words" in err and len(err.strip().splitlines()) == 1


def test_separate_evaluation_file_replaces_the_hash_split(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    evals = tmp_path / "eval.txt"
    evals.write_text("a first evaluation prompt\na second one\na third one\n")
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", f"task.eval_prompts={evals}")
    assert code == 0, err
    counts = _meta(tmp_path)["prompts"]
    assert counts == {**counts, "train": 19, "eval": 2, "eval_held_out": 3}
    assert "3 held out" in err and str(evals) in counts["source"]


def test_too_few_held_out_prompts_is_a_visible_warning(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    evals = write_jsonl(tmp_path / "e.jsonl", ["only one evaluation prompt"])
    files = [f"task.prompts={prompts}", f"task.eval_prompts={evals}"]
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *files, "train.eval_prompts=8")
    assert code == 0, err
    assert "warning" in err and "fewer than train.eval_prompts=8" in err
    assert _meta(tmp_path)["prompts"]["eval"] == 1


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if a model's weights are loaded."""
    import rlhf_zoo.policies.models as models

    def refuse(*a, **kw):
        raise AssertionError("weights loaded before the prompts were checked")

    monkeypatch.setattr(models, "load_model_and_tokenizer", refuse)


def test_a_prompt_longer_than_the_limit_is_refused_before_weights_load(cli, tiny_lm, tmp_path, no_weights):
    prompts = write_jsonl(tmp_path / "p.jsonl", [" ".join(["word"] * 10_800), *TEXTS])
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "max_prompt_tokens=64" in err and "1024 positions" in err  # it could not fit even if raised
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", "model.max_prompt_tokens=2000")
    assert code == 2 and "1024 positions" in err and "at most 1018" in err


def test_a_prompt_over_max_prompt_tokens_names_the_setting(cli, tiny_lm, tmp_path, no_weights):
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", "model.max_prompt_tokens=6")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "max_prompt_tokens=6" in err and "raise model.max_prompt_tokens" in err


def test_a_model_whose_files_cannot_be_read_first_is_checked_after_loading(cli, tiny_lm, tmp_path, monkeypatch):
    import rlhf_zoo.policies.models as models

    monkeypatch.setattr(models, "tokenizer_and_context", lambda name: None)
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", "model.max_prompt_tokens=2000")
    assert code == 2 and "1024 positions" in err and len(err.strip().splitlines()) == 1, err


def test_rows_without_text_are_counted_in_the_line_and_meta(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [*TEXTS[4:], "", None])  # 16 texts, 2 rows without
    evals = write_jsonl(tmp_path / "e.jsonl", ["one evaluation prompt", "   ", "another one"])
    files = [f"task.prompts={prompts}", f"task.eval_prompts={evals}"]
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *files)
    assert code == 0, err
    line = [x for x in err.splitlines() if "prompts:" in x]
    assert len(line) == 1 and "2 of 18 rows skipped" in line[0] and "1 of 3 rows skipped" in line[0], err
    counts = _meta(tmp_path)["prompts"]
    assert (counts["train"], counts["eval_held_out"], counts["rows_skipped"]) == (16, 2, 3)
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *files[:1], "task.eval_fraction=0.5", "run_dir=" +
                       str(tmp_path / "run2"))  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "run2" / "meta.json").read_text())["prompts"]["rows_skipped"] == 2


def test_evaluation_prompts_that_are_also_training_prompts_are_a_warning(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", TEXTS)
    evals = write_jsonl(tmp_path / "e.jsonl", ["The acting was", TEXTS[5], "a prompt of its own"])
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", f"task.eval_prompts={evals}")
    assert code == 0, err
    warning = [x for x in err.splitlines() if "also training prompts" in x]
    assert len(warning) == 1 and "warning" in warning[0] and "2 of the 3 held-out" in warning[0], err
    assert "prompts are also training prompts" in warning[0], err
    assert _meta(tmp_path)["prompts"]["eval_in_train"] == 2
    # apart (a hash split never overlaps): no warning, and the count is 0
    split = [f"task.prompts={prompts}", "task.eval_fraction=0.5", f"run_dir={tmp_path}/run2"]
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *split)
    assert code == 0 and "also training prompts" not in err, err
    assert json.loads((tmp_path / "run2" / "meta.json").read_text())["prompts"]["eval_in_train"] == 0


def test_the_hash_split_holds_out_about_eval_fraction_and_is_stable():
    """hash_split: about eval_fraction of the texts are held out (binomial bounds), the same text always lands on
    the same side, a larger fraction only adds held-out texts, and no text is lost or reordered."""
    from rlhf_zoo.tasks.sentiment import hash_split

    texts = [f"user prompt number {i}, a review of film {i % 37}" for i in range(1000)]
    train, evals = hash_split(texts, 0.1)
    assert 60 <= len(evals) <= 140  # mean 100, sd 9.5
    assert sorted(train + evals) == sorted(texts) and not set(train) & set(evals)
    assert train == [t for t in texts if t not in set(evals)]  # order kept
    _, wider = hash_split(texts, 0.3)
    assert set(evals) < set(wider) and 220 <= len(wider) <= 380
    again_train, again_evals = hash_split(list(reversed(texts)) + evals[:5], 0.1)
    assert set(again_evals) == set(evals) and again_evals.count(evals[0]) == 2  # by text: duplicates together


def test_max_train_prompts_keeps_the_first_training_prompts(tmp_path):
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    texts = [f"training prompt {i} of the file" for i in range(8)]
    prompts = write_jsonl(tmp_path / "p.jsonl", texts)
    evals = write_jsonl(tmp_path / "e.jsonl", ["an evaluation prompt"])
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(prompts), eval_prompts=str(evals), max_train_prompts=3))
    assert sets.train == texts[:3] and sets.evals == ["an evaluation prompt"]


def test_the_packaged_prompts_train_on_the_train_split_and_evaluate_on_the_eval_split(monkeypatch):
    import rlhf_zoo.data.hutto as hutto
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    asked = []

    def packaged(split, n_words=None, **kw):
        asked.append((split, n_words))
        return [f"packaged {split} snippet {i}" for i in range(5)]

    monkeypatch.setattr(hutto, "prompt_texts", packaged)
    sets = load_prompt_sets(SentimentTaskConfig())
    assert sets.train == [f"packaged train snippet {i}" for i in range(5)]
    assert sets.evals == [f"packaged eval snippet {i}" for i in range(5)]
    assert sorted(asked) == [("eval", 6), ("train", 6)]


def test_prompts_that_exactly_fill_the_limits_are_accepted():
    """check_prompts_fit refuses only what is over a limit: a prompt of exactly max_prompt_tokens tokens, and
    max_prompt_tokens + max_new_tokens equal to the context, fit."""
    from types import SimpleNamespace

    from rlhf_zoo.errors import UserError
    from rlhf_zoo.policies.models import build_tiny_tokenizer
    from rlhf_zoo.tasks.sentiment import check_prompts_fit

    tok = build_tiny_tokenizer()
    prompt = "I did not expect the ending of this long film"
    k = len(tok(prompt)["input_ids"])

    def cfg(room, new=6):
        return SimpleNamespace(name="tiny", max_prompt_tokens=room, max_new_tokens=new, chat_template=False)

    check_prompts_fit([prompt], cfg(k), tok, context=k + 6)
    with pytest.raises(UserError, match=f"max_prompt_tokens={k - 1}"):
        check_prompts_fit([prompt], cfg(k - 1), tok, context=None)
    with pytest.raises(UserError, match="positions"):
        check_prompts_fit([prompt], cfg(k), tok, context=k + 5)


def test_a_prompt_file_suffix_is_read_whatever_its_case(tmp_path):
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    texts = [f"an upper-case file's prompt {i}" for i in range(4)]
    prompts = write_jsonl(tmp_path / "P.JSONL", texts)
    evals = write_jsonl(tmp_path / "E.JsonL", ["an evaluation prompt"])
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(prompts), eval_prompts=str(evals)))
    assert sets.train == texts and sets.evals == ["an evaluation prompt"]


@pytest.mark.parametrize("name", ["minilm_sentiment", "hf:some/classifier", " minilm_sentiment ", " hf:a/b"])
def test_neural_rewards_run_on_the_tasks_reward_device(name, monkeypatch):
    """The gold MiniLM and an hf: reward get the task's device (and MiniLM the task's build_gold), whatever spaces
    surround the name (build_reward strips them); vader and a py: function get neither."""
    from rlhf_zoo.rewards import registry
    from rlhf_zoo.tasks.sentiment import _reward

    seen = []
    monkeypatch.setattr(registry, "build_reward", lambda n, **kw: seen.append((n, kw)))
    _reward(name, {"batch_size": 4}, "cuda:1", build_if_missing=False)
    expected = {"batch_size": 4, "device": "cuda:1"}
    if "minilm_sentiment" in name:
        expected["build_if_missing"] = False
    assert seen == [(name, expected)]
    for other in ("vader", "py:rewards.py:score"):
        _reward(other, {}, "cuda:1", build_if_missing=True)
        assert seen[-1] == (other, {})


@pytest.mark.parametrize("suffix", ["jsonl", "txt", "csv"])
def test_a_prompt_file_that_is_not_utf8_is_one_line_naming_it(tmp_path, suffix):
    # Latin-1 (a file saved by an older Windows editor): pyarrow read the JSON lines and failed on the first prompt
    # taken out, a UnicodeDecodeError traceback
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    lines = {"jsonl": '{"text": "caf\xe9 au lait"}\n', "txt": "caf\xe9 au lait\n", "csv": "text\ncaf\xe9 au lait\n"}
    prompts = tmp_path / f"p.{suffix}"
    prompts.write_bytes(lines[suffix].encode("latin-1"))
    evals = write_jsonl(tmp_path / "e.jsonl", ["an evaluation prompt"])
    with pytest.raises(UserError, match=f"task.prompts={prompts} is not UTF-8 text \\(byte 0xe9 at offset"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(prompts), eval_prompts=str(evals)))


@pytest.mark.parametrize("suffix", ["txt", "csv", "jsonl"])
def test_a_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path, suffix):
    # Notepad writes one: a .txt file's first prompt began with an invisible U+FEFF
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    texts = ["the first review opening", "the second one"]
    body = {
        "txt": "\n".join(texts),
        "csv": "\n".join(["text", *texts]),
        "jsonl": write_jsonl(tmp_path / "x.jsonl", texts),
    }
    content = body[suffix] if suffix != "jsonl" else body[suffix].read_text()
    prompts = tmp_path / f"p.{suffix}"
    prompts.write_bytes(b"\xef\xbb\xbf" + content.encode())
    evals = write_jsonl(tmp_path / "e.jsonl", ["an evaluation prompt"])
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(prompts), eval_prompts=str(evals)))
    assert sets.train == texts


def test_one_evaluation_prompt_also_trained_on_is_said_in_the_singular():
    from rlhf_zoo.tasks.base import Task, prompt_report

    task = Task(name="t", train_prompts=["a", "b"], eval_prompts=["a", "c"], proxy=None, gold=None, build_policy=None)
    record, lines = prompt_report(task, eval_prompts=2)
    assert record["eval_in_train"] == 1
    assert "1 of the 2 held-out evaluation prompts is also a training prompt" in lines[-1], lines
