"""The training text of the ``zoo-lm`` language model, with the sentiment task's evaluation texts kept out.

Documents
---------
- ``hutto/<source>``: every Hutto & Gilbert (2014) text (:mod:`rlhf_zoo.data.hutto`: movie-review
  snippets, tweets, product-review sentences, New York Times snippets; about 2.3 MB), HTML entities
  of the tweets (``&amp;``) unescaped;
- ``gensim/<file>``: the English prose inside the ``gensim`` wheel (:mod:`rlhf_zoo.data.gensim_text`:
  news articles and Wikipedia paragraphs; about 0.4 MB).

Exclusion of the evaluation texts (:class:`EvalGuard`)
------------------------------------------------------
The sentiment task's held-out prompts are the first ``prompt_words`` (6) words of the 500
``prompt_eval`` snippets of :func:`rlhf_zoo.data.hutto.split_hutto`. A document is dropped, whatever
its source, if its words contain the first ``prompt_words`` words of any of those snippets as a
contiguous run. Words are compared after case folding, with every non-alphanumeric character
treated as a space (``"It's a"`` = ``"it 's a"`` = ``"IT'S, A"``), and HTML entities read as the
characters they stand for (the documents are unescaped), so a differently tokenised, cased or escaped
copy is caught too. Since every snippet begins with its prompt, this removes the snippets
themselves, any text that quotes one, and any text that happens to contain an evaluation prompt
(a handful of other snippets that open with the same words). The tokenizer is trained after the
exclusion, so it has not seen these texts either.

Held-out text
-------------
After de-duplication (case-folded, whitespace collapsed), ``val_fraction`` of the documents,
chosen by a seeded hash of the text, are held out for the perplexity in the model's ``meta.json``.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rlhf_zoo.data.hutto import Record, prompt_prefix, text_key

_WORD = re.compile(r"[^\W_]+")


def norm_words(text: str) -> tuple[str, ...]:
    """The case-folded alphanumeric runs of ``text`` (punctuation, spacing and case ignored)."""
    return tuple(_WORD.findall(text.casefold()))


@dataclass(frozen=True)
class Doc:
    """One training document: ``source`` (e.g. ``hutto/tweets``, ``gensim/lee.cor``) and its text."""

    source: str
    text: str


class EvalGuard:
    """Finds the evaluation prompts (as normalised word runs) inside any text.

    Args:
        eval_texts: the sentiment task's ``prompt_eval`` snippets (full texts).
        prompt_words: how many leading words of each snippet form its prompt.
    """

    def __init__(self, eval_texts: Iterable[str], prompt_words: int) -> None:
        if prompt_words < 1:
            raise ValueError(f"prompt_words must be >= 1, got {prompt_words}")
        self.prompt_words = prompt_words
        self.grams: set[tuple[str, ...]] = set()
        for t in eval_texts:  # unescaped as the documents are (hutto_docs): "S&amp;M" is "S&M" there
            g = norm_words(html.unescape(prompt_prefix(t, prompt_words)))
            if g:
                self.grams.add(g)
        self._by_first: dict[str, list[tuple[str, ...]]] = {}
        for g in self.grams:
            self._by_first.setdefault(g[0], []).append(g)

    def hits(self, text: str) -> bool:
        """Whether ``text`` contains any evaluation prompt (normalised words, contiguous)."""
        w = norm_words(text)
        for i, first in enumerate(w):
            for g in self._by_first.get(first, ()):
                if w[i : i + len(g)] == g:
                    return True
        return False


@dataclass
class Corpus:
    """Training and held-out documents, and what was dropped.

    Attributes:
        train / val: the documents, train shuffled by a seeded hash of the text.
        excluded: documents dropped by the :class:`EvalGuard`, per source.
        duplicates: documents dropped as repeats of an earlier one.
    """

    train: list[Doc]
    val: list[Doc]
    excluded: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0

    def sizes(self) -> dict[str, dict[str, int]]:
        """Documents and characters per source, for train and val."""
        out: dict[str, dict[str, int]] = {}
        for part, docs in (("train", self.train), ("val", self.val)):
            for d in docs:
                s = out.setdefault(d.source, {"train_docs": 0, "train_chars": 0, "val_docs": 0, "val_chars": 0})
                s[f"{part}_docs"] += 1
                s[f"{part}_chars"] += len(d.text)
        return dict(sorted(out.items()))


def hutto_docs(records: Sequence[Record]) -> list[Doc]:
    """Every Hutto & Gilbert text as a document (``hutto/<source>``), HTML entities unescaped."""
    return [Doc(f"hutto/{r.source}", html.unescape(r.text)) for r in records]


def gensim_docs(files: Mapping[str, str]) -> list[Doc]:
    """The gensim wheel's prose as documents (``gensim/<file>``), one per line."""
    from rlhf_zoo.data.gensim_text import documents

    return [Doc(f"gensim/{name}", t) for name, texts in documents(dict(files)).items() for t in texts]


def _rank(text: str, seed: int) -> float:
    return int(hashlib.sha256(f"zoo-lm:{seed}:{text_key(text)}".encode()).hexdigest()[:13], 16) / 16**13


def build_corpus(
    docs: Iterable[Doc],
    guard: EvalGuard,
    *,
    val_fraction: float = 0.03,
    seed: int = 0,
    max_train_chars: int = 0,
) -> Corpus:
    """Drop evaluation texts and duplicates, then split into train / val (see the module docstring).

    ``max_train_chars`` > 0 keeps only the first training documents (in their hashed order) up to
    that many characters (for tests and quick trials).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    kept: list[Doc] = []
    excluded: dict[str, int] = {}
    seen: set[str] = set()
    duplicates = 0
    for d in docs:
        if guard.hits(d.text):
            excluded[d.source] = excluded.get(d.source, 0) + 1
            continue
        key = text_key(d.text)
        if not key:
            continue
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append(d)
    order = {id(d): _rank(d.text, seed) for d in kept}
    held = {id(d) for d in kept if _rank(d.text, seed + 1) < val_fraction}
    ranked = sorted(kept, key=lambda d: order[id(d)])
    val = [d for d in ranked if id(d) in held]
    train = [d for d in ranked if id(d) not in held]
    if max_train_chars > 0:
        total, cut = 0, 0
        for cut, d in enumerate(train, start=1):  # noqa: B007 - cut is read after the loop
            total += len(d.text)
            if total >= max_train_chars:
                break
        train = train[:cut]
    return Corpus(train=train, val=val, excluded=dict(sorted(excluded.items())), duplicates=duplicates)
