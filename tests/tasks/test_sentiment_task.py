"""The sentiment task's pieces called directly: settings refused or accepted at their bounds, the prompts and the
words kept of each source, the source line, the rewards and devices the task wires in, and prompts that do not
fit the model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.tasks.sentiment import (
    SentimentTaskConfig,
    _hash_unit,
    build_sentiment_task,
    check_sentiment_task,
    load_prompt_sets,
)
from tests.conftest import write_jsonl

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

PROMPTS = [f"review number {i} says the plot is thin" for i in range(20)]
LONG = " ".join(["word"] * 40)


@pytest.fixture
def packaged(monkeypatch):
    """The packaged snippets replaced by five per split; records (split, n_words) asked."""
    import rlhf_zoo.data.hutto as hutto

    asked = []

    def texts(split, n_words=None, **kw):
        asked.append((split, n_words))
        return [f"packaged {split} snippet {i} of the movie reviews" for i in range(5)]

    monkeypatch.setattr(hutto, "prompt_texts", texts)
    return asked


@pytest.fixture
def files(tmp_path):
    """A prompt file and an evaluation file of whole texts longer than six words."""
    evals = [f"an evaluation prompt of eight words, number {i}" for i in range(3)]
    return str(write_jsonl(tmp_path / "p.jsonl", PROMPTS)), str(write_jsonl(tmp_path / "e.jsonl", evals)), evals


# -- settings at their bounds -----------------------------------------------------------------------------


def test_settings_at_their_bounds(files) -> None:
    """prompt_words=0 (whole texts) passes, -1 does not; eval_fraction must lie strictly inside (0, 1);
    max_train_prompts=-1 is refused; a blank source is refused."""
    prompts, evals, _ = files
    own = SentimentTaskConfig(prompts=prompts, gold=None)
    check_sentiment_task(replace(own, prompt_words=0))
    check_sentiment_task(replace(own, eval_fraction=0.999))
    for bad in ({"prompt_words": -1}, {"eval_fraction": 0.0}, {"eval_fraction": 1.0}, {"max_train_prompts": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            check_sentiment_task(replace(own, **bad))
    for blank in ({"prompts": "  "}, {"eval_prompts": ""}):
        with pytest.raises(ValueError, match="name a source"):
            check_sentiment_task(replace(own, **blank))
    # beside an evaluation file, eval_fraction has no meaning at all, in range or not
    with pytest.raises(UserError, match="no meaning here"):
        check_sentiment_task(replace(own, eval_prompts=evals, eval_fraction=1.5))


@pytest.mark.parametrize(("proxy", "gold"), [("vader", None), ("vader", "vader"), ("py:rewards.py:score", None)])
def test_a_reward_device_without_a_reward_model_is_refused(proxy, gold, monkeypatch) -> None:
    """``task.reward_device`` places the hf: and minilm_sentiment rewards; with neither (VADER, a Python function)
    it was taken and ignored. The default is never refused, and a gold MiniLM gives it a meaning."""
    from rlhf_zoo.rewards import registry

    monkeypatch.setattr(registry, "check_reward_spec", lambda *a: None)  # the py: file need not exist here
    cfg = SentimentTaskConfig(proxy=proxy, gold=gold)
    check_sentiment_task(cfg)
    with pytest.raises(UserError, match="task.reward_device=cpu has no meaning here"):
        check_sentiment_task(replace(cfg, reward_device="cpu"))
    check_sentiment_task(replace(cfg, reward_device="cpu", gold="minilm_sentiment"))


@pytest.mark.parametrize(("proxy", "gold"), [("vader", None), ("vader", "vader"), ("hf:some/classifier", None)])
def test_build_gold_without_the_minilm_reward_is_refused(proxy, gold, monkeypatch) -> None:
    """``task.build_gold=false`` says whether minilm_sentiment is built on first use; with no such reward it was
    taken and ignored. The default is never refused; a MiniLM proxy or gold gives it a meaning."""
    from rlhf_zoo.rewards import registry

    monkeypatch.setattr(registry, "check_reward_spec", lambda *a: None)  # the hub id is not looked up here
    cfg = SentimentTaskConfig(proxy=proxy, gold=gold)
    check_sentiment_task(cfg)
    with pytest.raises(UserError, match="task.build_gold=false has no meaning here"):
        check_sentiment_task(replace(cfg, build_gold=False))
    check_sentiment_task(replace(cfg, build_gold=False, gold="minilm_sentiment"))
    check_sentiment_task(replace(cfg, build_gold=False, proxy="minilm_sentiment"))


def test_a_missing_evaluation_file_is_refused_by_the_check(files, tmp_path) -> None:
    prompts, _, _ = files
    missing = str(tmp_path / "nowhere.jsonl")
    with pytest.raises(UserError, match=f"task.eval_prompts={missing}: no such file"):
        check_sentiment_task(SentimentTaskConfig(prompts=prompts, eval_prompts=missing, gold=None))


@pytest.mark.parametrize("name", ["prompts.foo", "prompts"])
def test_a_file_of_another_kind_is_refused_by_the_check(tmp_path, monkeypatch, name) -> None:
    """A file there, with a suffix that is no prompt format (or none), is refused as a file, not taken for a
    dataset folder or hub id."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text("a review\n")
    with pytest.raises(UserError, match="not read as prompts"):
        check_sentiment_task(SentimentTaskConfig(prompts=name, gold=None))


def test_prompt_split_with_a_dataset_folder_beside_an_evaluation_file_is_accepted(tmp_path, files) -> None:
    """One source with splits is enough for prompt_split to mean something."""
    _, evals, _ = files
    folder = tmp_path / "reviews"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", PROMPTS)
    cfg = SentimentTaskConfig(prompts=str(folder), eval_prompts=evals, prompt_split="test", gold=None)
    check_sentiment_task(cfg)
    assert sorted(load_prompt_sets(cfg).train) == sorted(PROMPTS)


# -- prompts and their words ------------------------------------------------------------------------------


def test_prompt_words_zero_gives_the_whole_packaged_snippets(packaged) -> None:
    load_prompt_sets(SentimentTaskConfig(prompt_words=0))
    assert sorted(packaged) == [("eval", None), ("train", None)]


def test_the_packaged_evaluation_prompts_named_beside_the_packaged_prompts(packaged) -> None:
    """``task.eval_prompts=hutto`` beside the default prompts names what the default uses: the packaged held-out
    snippets evaluate and the packaged training snippets train, both cut to six words."""
    sets = load_prompt_sets(SentimentTaskConfig(eval_prompts="hutto"))
    assert sets.evals == [f"packaged eval snippet {i} of the movie reviews" for i in range(5)]
    assert sets.train == [f"packaged train snippet {i} of the movie reviews" for i in range(5)]
    assert sorted(packaged) == [("eval", 6), ("train", 6)]


def test_an_evaluation_file_beside_the_packaged_prompts_is_read_whole(packaged, files) -> None:
    """The six-word cut is the packaged prompts' own: an evaluation file beside them keeps its whole texts."""
    _, evals_path, evals = files
    sets = load_prompt_sets(SentimentTaskConfig(eval_prompts=evals_path))
    assert sets.evals == evals and packaged == [("train", 6)]
    assert sets.train == [f"packaged train snippet {i} of the movie reviews" for i in range(5)]


def test_the_source_line_says_where_each_set_came_from(packaged, files, tmp_path) -> None:
    prompts, evals, _ = files
    cases = [
        ({}, "the packaged movie-review snippets, first 6 words"),
        (
            {"prompts": prompts, "eval_fraction": 0.5},
            f"{prompts}, split by a hash of the text with task.eval_fraction=0.5",
        ),
        ({"prompts": prompts, "eval_prompts": evals}, f"{prompts}; evaluation: {evals}"),
        (
            {"prompts": prompts, "eval_prompts": "hutto"},
            f"{prompts}; evaluation: the packaged held-out movie-review snippets, first 6 words",
        ),
        (
            {"prompts": prompts, "eval_prompts": evals, "prompt_words": 3, "max_train_prompts": 2},
            f"{prompts}, first 3 words; evaluation: {evals}, first 3 words (1 distinct of 3); "
            "the first 2 for training (task.max_train_prompts)",
        ),
    ]
    for given, source in cases:
        assert load_prompt_sets(SentimentTaskConfig(**given)).source == source, given
    # prompts cut to their first words that become one: the line says how many are left (an error for no
    # evaluation prompts, which quotes it, said only to raise task.eval_fraction)
    alike = str(write_jsonl(tmp_path / "alike.jsonl", ["the plot is thin", "the plot is thick", "a fine film"]))
    sets = load_prompt_sets(SentimentTaskConfig(prompts=alike, prompt_words=2, eval_fraction=0.5))
    assert sets.source.startswith(f"{alike}, first 2 words (2 distinct of 3), split by a hash"), sets.source
    # exactly max_train_prompts training prompts: nothing is left out, and the line does not say so
    sets = load_prompt_sets(SentimentTaskConfig(prompts=prompts, eval_prompts=evals, max_train_prompts=20))
    assert len(sets.train) == 20 and sets.source == f"{prompts}; evaluation: {evals}"


def test_a_csv_file_empty_blank_or_with_only_its_header_holds_no_prompts(tmp_path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("text\n")
    with pytest.raises(UserError, match="holds no prompts \\(it is empty but for its header\\)"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
    for text, why in [("", "it is empty"), ("\n  \n\t\n", "it holds only blank lines")]:
        path.write_text(text)
        with pytest.raises(UserError, match=f"holds no prompts \\({why}\\)"):
            load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
    path.write_text("text\na review\n")  # one row: read (then too few to split, which is another matter)
    assert load_prompt_sets(SentimentTaskConfig(prompts=str(path), eval_fraction=0.5)).source.startswith(str(path))


def test_a_missing_column_and_a_column_of_numbers_are_named(tmp_path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", PROMPTS, column="review")
    with pytest.raises(UserError, match="has no column 'text'; columns: review"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
    path = tmp_path / "n.jsonl"
    rows = [{"text": None}, {"text": 5}, {"text": 6}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"holds int values, not text \(row 2: 5\)"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
    # with blank lines (a walkthrough's file ended in one), the same message, rows counted without them: datasets said
    # only "Expected object or value"
    path.write_text('{"text": "a"}\n\n{"text": 5}\n\n')
    with pytest.raises(
        UserError, match=r"^task.prompts=.*n.jsonl: column 'text' holds int values, not text \(row 2: 5\)"
    ):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
    path.write_text('{"review": 5}\n\n{"text": "a"}\n\n{"review": 7, "text": "b"}\n')  # another column's numbers
    assert load_prompt_sets(SentimentTaskConfig(prompts=str(path), eval_fraction=0.5)).source.startswith(str(path))
    rows = [{"text": list(range(40))}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"\(row 1: \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16\.\.\.\)"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))


# -- what build_sentiment_task wires in -------------------------------------------------------------------


@pytest.fixture
def built(monkeypatch):
    """build_reward replaced by a recorder: returns the list of (name, options) it was called with."""
    import rlhf_zoo.rewards.registry as registry

    calls = []

    def record(name, **kw):
        calls.append((name, kw))
        return name

    monkeypatch.setattr(registry, "build_reward", record)
    return calls


def test_the_task_builds_the_proxy_and_gold_with_their_own_options(built, files) -> None:
    prompts, evals, _ = files
    cfg = SentimentTaskConfig(
        prompts=prompts,
        eval_prompts=evals,
        proxy="hf:some/proxy",
        proxy_options={"label": 1},
        gold_options={"batch_size": 4},
        build_gold=False,
    )
    task = build_sentiment_task(cfg, None, device="cuda:1")
    assert built == [
        ("hf:some/proxy", {"label": 1, "device": "cuda:1"}),
        ("minilm_sentiment", {"batch_size": 4, "build_if_missing": False, "device": "cuda:1"}),
    ]
    assert (task.proxy, task.gold) == ("hf:some/proxy", "minilm_sentiment")
    assert task.train_prompts == PROMPTS and task.prompt_source == f"{prompts}; evaluation: {evals}"
    built.clear()
    task = build_sentiment_task(replace(cfg, gold=None, gold_options={}, reward_device="cpu"), None, device="cuda:1")
    assert built == [("hf:some/proxy", {"label": 1, "device": "cpu"})] and task.gold is None


@pytest.mark.parametrize("key", ["proxy", "gold"])
def test_a_reward_that_refuses_its_options_while_it_loads_names_its_setting(files, monkeypatch, key) -> None:
    """What only loading the reward model finds (a label out of range, a max_length with no room for text)
    said "label index 3 out of range for a model with 1 labels": neither which reward nor which setting."""
    import rlhf_zoo.rewards.registry as registry

    def build(name, **kw):
        if name == getattr(cfg, key):
            raise UserError("label index 3 out of range for a model with 1 labels")
        return name

    monkeypatch.setattr(registry, "build_reward", build)
    prompts, evals, _ = files
    cfg = SentimentTaskConfig(prompts=prompts, eval_prompts=evals, proxy="hf:some/proxy", gold="hf:some/gold")
    with pytest.raises(UserError, match=rf"^task\.{key}: label index 3 out of range for a model with 1 labels$"):
        build_sentiment_task(cfg, None)


def test_a_reward_whose_package_is_missing_says_so_as_it_is(files, monkeypatch) -> None:
    """A missing package is not a setting to fix: its message (the package and the command that installs it) and
    its kind reach the caller as raised, not prefixed like a reward's refused option."""
    import rlhf_zoo.rewards.registry as registry
    from rlhf_zoo.errors import MissingPackageError

    def build(name, **kw):
        raise MissingPackageError("vaderSentiment", "the vader reward")

    monkeypatch.setattr(registry, "build_reward", build)
    prompts, evals, _ = files
    with pytest.raises(MissingPackageError, match="^the vader reward needs the package 'vaderSentiment'"):
        build_sentiment_task(SentimentTaskConfig(prompts=prompts, eval_prompts=evals, gold=None), None)


def test_a_cuda_reward_device_without_cuda_is_refused_before_the_prompts_load(built, packaged, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="task.reward_device=cuda:0 but no CUDA device"):
        build_sentiment_task(SentimentTaskConfig(reward_device="cuda:0", gold=None), None)
    assert packaged == [] and built == []


def test_no_training_or_no_evaluation_prompts_is_an_error(built, tmp_path) -> None:
    # a text whose hash lies below 0.99: held out, none left to train on
    prompts = [p for p in PROMPTS if _hash_unit(p) < 0.99]
    one = str(write_jsonl(tmp_path / "one.jsonl", prompts[:1]))
    with pytest.raises(UserError, match="gives no training prompts"):
        build_sentiment_task(SentimentTaskConfig(prompts=one, eval_fraction=0.99, gold=None), None)
    many = str(write_jsonl(tmp_path / "p.jsonl", PROMPTS))
    blank = str(write_jsonl(tmp_path / "blank.jsonl", ["", " "]))
    with pytest.raises(
        UserError, match=rf"'{blank}' gives no held-out evaluation prompts \(.*2 of 2 rows skipped.*\)$"
    ):
        build_sentiment_task(SentimentTaskConfig(prompts=many, eval_prompts=blank, gold=None), None)
    kept = [p for p in PROMPTS if _hash_unit(p) >= 0.01]
    few = str(write_jsonl(tmp_path / "few.jsonl", kept))
    with pytest.raises(UserError, match=r"evaluation file \(task.eval_prompts=FILE\) or raise task.eval_fraction$"):
        build_sentiment_task(SentimentTaskConfig(prompts=few, eval_fraction=0.01, gold=None), None)
    assert built == []


# -- prompts that do not fit the model --------------------------------------------------------------------


def _model(**kw):
    from rlhf_zoo.policies.hf import HFPolicyConfig

    return HFPolicyConfig(name="tiny", max_new_tokens=6, **kw)


def test_an_evaluation_prompt_over_the_limit_is_refused_before_any_weights_load(built, files, tmp_path) -> None:
    prompts, _, _ = files
    evals = str(write_jsonl(tmp_path / "long.jsonl", ["a short one", LONG]))
    cfg = SentimentTaskConfig(prompts=prompts, eval_prompts=evals, gold=None)
    with pytest.raises(UserError, match="a prompt is longer than model.max_prompt_tokens=64 tokens: 'word word"):
        build_sentiment_task(cfg, _model())
    assert built == []  # before the rewards, too


@pytest.mark.parametrize("readable_first", [True, False])
def test_the_policy_takes_the_fit_checks_ids_and_tokenises_no_prompt_again(monkeypatch, files, readable_first):
    """The prompt set is tokenised once, by the fit check (before the weights load, or after where the tokenizer
    cannot be read first), and the policy starts with those ids: the same ids as its own encoder gives."""
    import rlhf_zoo.policies.models as models
    from rlhf_zoo.policies.hf.tokens import PromptEncoder

    if not readable_first:
        monkeypatch.setattr(models, "tokenizer_and_context", lambda name: None)
    tokenised: list[str] = []
    texts = PromptEncoder._texts
    monkeypatch.setattr(PromptEncoder, "_texts", lambda self, ps: (tokenised.extend(ps), texts(self, ps))[1])
    prompts, evals, _ = files
    task = build_sentiment_task(SentimentTaskConfig(prompts=prompts, eval_prompts=evals, gold=None), _model())
    before = len(tokenised)
    policy = task.build_policy(0)
    every = task.train_prompts + task.eval_prompts
    assert sorted(tokenised) == sorted(set(every)) and before == (len(every) if readable_first else 0)
    fresh = PromptEncoder(policy.tokenizer, policy.cfg, policy.pad_token_id, policy.eos_token_ids)
    fresh.token_counts(every)
    assert {p: policy._prompts.cache[p] for p in every} == fresh.cache


def test_an_evaluation_prompt_over_the_limit_is_refused_after_loading_when_not_before(monkeypatch, files, tmp_path):
    """A model whose tokenizer cannot be read first: its evaluation prompts are checked once it is loaded, with
    the same one-line error naming the setting."""
    import rlhf_zoo.policies.models as models

    monkeypatch.setattr(models, "tokenizer_and_context", lambda name: None)
    prompts, _, _ = files
    evals = str(write_jsonl(tmp_path / "long.jsonl", ["a short one", LONG]))
    task = build_sentiment_task(SentimentTaskConfig(prompts=prompts, eval_prompts=evals, gold=None), _model())
    with pytest.raises(UserError, match="a prompt is longer than model.max_prompt_tokens=64"):
        task.build_policy(0)


def test_the_error_names_the_longest_prompt_and_how_many_are_over(monkeypatch) -> None:
    """Of several prompts over the limit, the longest is shown with its count; one that would fit the context
    asks to raise the limit to its count, one that would not says how many prompt tokens the context holds."""
    from types import SimpleNamespace

    from rlhf_zoo.policies.models import build_tiny_tokenizer
    from rlhf_zoo.tasks.sentiment import check_prompts_fit

    tok = build_tiny_tokenizer()
    short, mid, longest = "a film", "the film was good and long", "the film was good and long and then it ended"
    n = {p: len(tok(p)["input_ids"]) for p in (short, mid, longest)}
    assert n[short] < n[mid] < n[longest]
    cfg = SimpleNamespace(name="tiny", max_prompt_tokens=n[short], max_new_tokens=2, chat_template=False)
    with pytest.raises(UserError) as info:
        check_prompts_fit([short, mid, longest, short], cfg, tok, context=None)
    assert str(info.value) == (
        f"2 of 4 prompts are longer than model.max_prompt_tokens={n[short]} tokens: {longest!r} has {n[longest]}; "
        f"shorten it or raise model.max_prompt_tokens to {n[longest]}"
    )
    # exactly filling the context with the new tokens: raising the limit would do
    with pytest.raises(UserError, match=f"a prompt is longer .* raise model.max_prompt_tokens to {n[mid]}$"):
        check_prompts_fit([mid], cfg, tok, context=n[mid] + 2)
    with pytest.raises(UserError, match=f"holds {n[mid] + 1} positions, {n[mid] - 1} prompt tokens with 2 new$"):
        check_prompts_fit([mid], cfg, tok, context=n[mid] + 1)
    # the longest wherever it stands, not the last one over
    with pytest.raises(UserError, match=f"^2 of 3 prompts .*: {longest!r} has {n[longest]};"):
        check_prompts_fit([longest, mid, short], cfg, tok, context=None)


def test_a_proxy_named_minilm_sentiment_takes_build_gold_too(built, files) -> None:
    """``task.build_gold=false`` holds for the MiniLM model wherever it is used, the proxy included."""
    prompts, evals, _ = files
    cfg = SentimentTaskConfig(
        prompts=prompts, eval_prompts=evals, proxy="minilm_sentiment", gold=None, build_gold=False
    )
    build_sentiment_task(cfg, None, device="cpu")
    assert built == [("minilm_sentiment", {"build_if_missing": False, "device": "cpu"})]
