"""zoo-lm's text (rlhf_zoo/data/lm_corpus.py) on hand-made documents: the held-out documents never train, repeats
and blank documents are dropped, the character cap, the per-source sizes and the evaluation-prompt guard."""

import random

import pytest

from rlhf_zoo.data.lm_corpus import Doc, EvalGuard, build_corpus

NO_EVAL = EvalGuard([], 6)


def docs(n, source="hutto/tweets", length=None):
    """n distinct documents (of ``length`` characters each, if given)."""
    if length is None:
        return [Doc(source, f"document number {i} about a film") for i in range(n)]
    return [Doc(source, f"doc {i:04d}".ljust(length, "x")) for i in range(n)]


def test_held_out_documents_never_train_and_every_kept_document_is_in_one_part():
    corpus = build_corpus(docs(1000), NO_EVAL, val_fraction=0.1, seed=3)
    train, val = {d.text for d in corpus.train}, {d.text for d in corpus.val}
    assert not train & val and train | val == {d.text for d in docs(1000)}
    assert 60 <= len(val) <= 140  # each document held out with probability 0.1
    with pytest.raises(ValueError, match="val_fraction must be in"):
        build_corpus(docs(3), NO_EVAL, val_fraction=0.0)


def test_repeats_up_to_case_and_spacing_and_blank_documents_are_dropped():
    texts = ["A warm film.", "a  WARM film.", "Another one.", "   ", "A warm film."]
    corpus = build_corpus([Doc("gensim/lee.cor", t) for t in texts], NO_EVAL, val_fraction=0.5)
    kept = sorted(d.text for d in corpus.train + corpus.val)
    assert kept == ["A warm film.", "Another one."] and corpus.duplicates == 2


def test_the_character_cap_keeps_the_fewest_training_documents_that_reach_it():
    full = build_corpus(docs(50, length=10), NO_EVAL, val_fraction=0.2)
    capped = build_corpus(docs(50, length=10), NO_EVAL, val_fraction=0.2, max_train_chars=30)
    assert len(full.train) > 30 and len(full.val) > 3
    assert capped.train == full.train[:3] and capped.val == full.val  # 3 × 10 characters reach 30 exactly
    assert build_corpus(docs(50, length=10), NO_EVAL, val_fraction=0.2, max_train_chars=31).train == full.train[:4]


def test_sizes_count_documents_and_characters_per_source_and_part():
    texts = {"hutto/tweets": ["ab", "cde"], "gensim/lee.cor": ["fghij"]}
    corpus = build_corpus([Doc(s, t) for s, ts in texts.items() for t in ts], NO_EVAL, val_fraction=0.01)
    assert corpus.val == []  # (none of these three is held out at 1 %)
    assert corpus.sizes() == {
        "gensim/lee.cor": {"train_docs": 1, "train_chars": 5, "val_docs": 0, "val_chars": 0},
        "hutto/tweets": {"train_docs": 2, "train_chars": 5, "val_docs": 0, "val_chars": 0},
    }


def test_the_guard_finds_a_whole_prompt_in_any_spelling_and_nothing_less():
    guard = EvalGuard(["One two three four five six and the rest of the snippet"], 6)
    assert guard.hits("he said: ONE, two... three_four five six!")  # case, punctuation and '_' ignored
    assert not guard.hits("one two three four five seven")  # five of its six words are not the prompt
    assert not guard.hits("one two three four five")
    assert EvalGuard(["Die Straße ist lang und breit heute"], 6).hits("DIE STRASSE IST LANG UND BREIT")  # casefold
    with pytest.raises(ValueError, match="prompt_words must be >= 1"):
        EvalGuard(["a b"], 0)


def test_a_one_word_prompt_is_found_anywhere_and_an_evaluation_text_without_words_is_ignored():
    """``prompt_words`` = 1 is allowed (a prompt of one word, found even as a text's last word); an evaluation
    text with no alphanumeric word has no prompt to look for, and guards nothing."""
    guard = EvalGuard(["Gyllenhaal shines here", "", " ... !!"], 1)
    assert guard.hits("starring Gyllenhaal") and guard.hits("GYLLENHAAL.") and not guard.hits("it shines here")
    assert not EvalGuard(["", "?!"], 6).hits("any text at all")


def test_val_fraction_must_leave_documents_to_train_on():
    with pytest.raises(ValueError, match="val_fraction must be in"):
        build_corpus(docs(3), NO_EVAL, val_fraction=1.0)


def test_the_split_and_the_order_depend_on_the_seed_and_the_texts_not_on_the_input_order():
    """The same documents in another order give the same corpus; another seed holds out other documents and
    orders the training documents otherwise."""
    given = docs(200)
    shuffled = random.Random(0).sample(given, len(given))
    corpus = build_corpus(given, NO_EVAL, val_fraction=0.2, seed=0)
    assert build_corpus(shuffled, NO_EVAL, val_fraction=0.2, seed=0) == corpus
    respelled = build_corpus([Doc(d.source, d.text.upper()) for d in given], NO_EVAL, val_fraction=0.2, seed=0)
    assert [d.text for d in respelled.val] == [d.text.upper() for d in corpus.val]  # the split of the normalised text
    other = build_corpus(given, NO_EVAL, val_fraction=0.2, seed=1)
    assert {d.text for d in other.val} != {d.text for d in corpus.val}
    common = {d.text for d in other.train} & {d.text for d in corpus.train}
    assert [d.text for d in other.train if d.text in common] != [d.text for d in corpus.train if d.text in common]
