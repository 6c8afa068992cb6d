"""The default language-model task, ``task=sentiment``: continue a movie review positively.

Prompts are the first ``prompt_words`` words of the movie-review snippets of Hutto & Gilbert
(ICWSM 2014), shipped in the source distribution of vaderSentiment (see
:mod:`rlhf_zoo.data.hutto`): train prompts from the snippets the gold reward was trained on,
held-out eval prompts from snippets reserved before the gold reward was built, so no eval prompt
is among the texts the gold reward saw. The policy continues the text (as in the IMDb positive
continuation task of Ziegler et al. 2019).

- proxy reward (optimised): ``vader``, the VADER lexicon's compound score of the completion, in
  [−1, 1]: cheap and gameable;
- gold reward (only evaluated): ``minilm_sentiment``, a MiniLM regressor fine-tuned on the human
  ratings (Pearson r ≈ 0.8 on held-out ratings), predicting the mean human rating in about [−4, 4].
  ``task.gold=null`` skips it; a missing gold model is built on first use (about 10 minutes on
  2 CPU cores, with a progress bar) unless ``task.build_gold=false``, in which case the error
  names ``rlhf-zoo prepare``. Only the default location is built: ``task.gold_options.path=DIR``
  that holds no built model is a one-line error naming it.

Prompts do **not** go through the chat template (``model.chat_template=false``): the task is a
text continuation, and a chat wrapper would make an instruct model answer the review instead of
continuing it.

Your own prompts: ``task.prompts`` may name any ``datasets`` source instead of the packaged snippets
(a local ``.json``/``.jsonl``/``.csv``/``.txt`` file, a local directory, or a hub id for users with a
network). Its ``prompt_column`` texts are used **whole, as given** (duplicates included; rows without
text skipped, and counted on the run's prompts line and in ``meta.json``): the six-word cut belongs to
the packaged prompts only (``prompt_words`` unset means 6 for ``hutto`` and whole texts for a user's
source; ``prompt_words=0`` whole texts everywhere; N > 0 the first N words everywhere, duplicates then
dropped). ``task.eval_prompts`` names a separate evaluation
source (used whole, no split); without it a user's source is split into train and held-out
evaluation prompts by a hash of each text (``eval_fraction``, refused where nothing is split). Prompts
that do not fit the model (more than ``model.max_prompt_tokens`` tokens, or a ``max_prompt_tokens +
max_new_tokens`` beyond the model's context) are an error naming the limit, raised before any weights load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_zoo.errors import MissingPackageError, UserError, one_line
from rlhf_zoo.options import set_away_from_default
from rlhf_zoo.runtime import DEVICE, resolve_device
from rlhf_zoo.tasks.base import Task

HUTTO = "hutto"
HUTTO_WORDS = 6  # the packaged prompts are review openings: the first six words of a snippet


@dataclass(frozen=True)
class SentimentTaskConfig:
    """Attributes:
    name: always ``sentiment``.
    prompts: ``hutto`` (the packaged movie-review snippets) or a ``datasets`` source: a hub id, a
        local directory, or a local ``.json``/``.jsonl``/``.csv``/``.txt`` file (used whole, as given).
    eval_prompts: a separate evaluation source (same formats and column; used whole, no hash split),
        ``hutto`` (the packaged held-out snippets, e.g. beside a user's ``prompts``), or null: held-out
        prompts come from ``prompts`` (the packaged eval split, or a hash split).
    prompt_split: the split to read of a dataset directory or hub id; another value than the default is
        refused when no source has splits (files, the packaged prompts).
    prompt_column: the text column (``datasets`` sources; a ``.txt`` file's column is ``text``); another
        value than the default is refused when every source is the packaged prompts.
    prompt_words: null: the first 6 words of the packaged prompts, whole texts of a user's source;
        0: whole texts; N > 0: the first N words of every text (duplicates then dropped).
    eval_fraction: share of a user's ``prompts`` held out for evaluation (hashed by text) when no
        ``eval_prompts`` source is given; another value than the default is refused with ``eval_prompts``
        or the packaged prompts, where nothing is split.
    max_train_prompts: keep only the first N training prompts (0 = all).
    proxy: the optimised reward: ``vader``, ``minilm_sentiment``, ``hf:<model id or path>`` or a
        Python function ``py:<file.py or module>:<function>`` (rlhf_zoo/rewards/python.py).
    gold: the evaluated reward (same forms), or null to skip it.
    proxy_options: options of the proxy reward, the keyword arguments of its class, e.g. for ``hf:``
        ``text`` (``completion``, ``prompt+completion`` or ``pair``: what the reward model reads),
        ``label`` / ``negative_label`` (which logits score), ``batch_size``, ``max_length``; for
        ``vader`` ``text``. Checked against the class's signature before anything loads; ``py:``
        rewards take none; the device is ``reward_device``'s and the gold build ``build_gold``'s.
    gold_options: the same for the gold reward.
    build_gold: build a missing ``minilm_sentiment`` on first use at its default location (else fail naming
        ``rlhf-zoo prepare``); a ``gold_options.path`` without a model is always refused. Another value than the
        default is refused when neither reward is ``minilm_sentiment``.
    reward_device: device of neural reward models (``auto``: the policy's device); another value than the
        default is refused when neither reward is one (``vader``, ``py:``).
    """

    name: str = "sentiment"
    prompts: str = HUTTO
    eval_prompts: str | None = None
    prompt_split: str = "train"
    prompt_column: str = "text"
    prompt_words: int | None = None
    eval_fraction: float = 0.1
    max_train_prompts: int = 0
    proxy: str = "vader"
    gold: str | None = "minilm_sentiment"
    proxy_options: dict[str, Any] = field(default_factory=dict)
    gold_options: dict[str, Any] = field(default_factory=dict)
    build_gold: bool = True
    reward_device: str = "auto"


def check_sentiment_task(cfg: SentimentTaskConfig) -> None:
    """Reject settings that cannot work, before anything loads (ValueError; UserError for a reward)."""
    from rlhf_zoo.rewards.registry import check_reward_spec, task_set_options

    if cfg.prompt_words is not None and cfg.prompt_words < 0:
        raise ValueError(f"prompt_words must be >= 0 (0: whole texts) or null, got {cfg.prompt_words}")
    if cfg.eval_prompts is None and cfg.prompts != HUTTO and not 0 < cfg.eval_fraction < 1:
        raise ValueError(f"eval_fraction must lie in (0, 1), got {cfg.eval_fraction}")
    if cfg.max_train_prompts < 0:
        raise ValueError("max_train_prompts must be >= 0 (0: all)")
    if set_away_from_default(cfg, "eval_fraction") and (cfg.eval_prompts is not None or cfg.prompts == HUTTO):
        why = (
            f"the evaluation prompts come from task.eval_prompts={cfg.eval_prompts}, not a hash split of task.prompts"
            if cfg.eval_prompts is not None
            else "the packaged prompts (task.prompts=hutto) have their own held-out evaluation prompts"
        )
        raise UserError(f"task.eval_fraction={cfg.eval_fraction} has no meaning here: {why}; remove it")
    if not DEVICE.fullmatch(cfg.reward_device):
        raise ValueError(f"reward_device={cfg.reward_device!r}: use auto, cpu, cuda or cuda:N")
    if not str(cfg.prompts).strip() or (cfg.eval_prompts is not None and not str(cfg.eval_prompts).strip()):
        raise ValueError("prompts and eval_prompts name a source (a file, directory or hub id)")
    check_prompt_source(str(cfg.prompts), "task.prompts")
    if cfg.eval_prompts is not None:
        check_prompt_source(str(cfg.eval_prompts), "task.eval_prompts")
    if set_away_from_default(cfg, "prompt_column") and cfg.prompts == HUTTO and cfg.eval_prompts in (None, HUTTO):
        raise UserError(
            f"task.prompt_column={cfg.prompt_column} has no meaning here: the packaged prompts (task.prompts=hutto) "
            "have no columns; it names the text column of your own prompts (task.prompts or task.eval_prompts): "
            "remove it"
        )
    sources = {"prompts": str(cfg.prompts), "eval_prompts": cfg.eval_prompts}
    sources = {key: str(src) for key, src in sources.items() if src is not None}
    if set_away_from_default(cfg, "prompt_column") and all(_one_column(src) for src in sources.values()):
        what = " and ".join(f"task.{key}={src}" for key, src in sources.items())
        raise UserError(
            f"task.prompt_column={cfg.prompt_column} has no meaning here: {what} "
            f"{'have' if len(sources) > 1 else 'has'} no columns to choose from (a "
            ".txt file's one column is text, the packaged prompts have none): remove it"
        )
    if set_away_from_default(cfg, "prompt_split") and not any(_has_splits(src) for src in sources.values()):
        kinds = {key: "the packaged prompts" if src == HUTTO else "a file" for key, src in sources.items()}
        what = " and ".join(f"task.{key}={src} is {kinds[key]}" for key, src in sources.items())
        raise UserError(
            f"task.prompt_split={cfg.prompt_split} has no meaning here, without splits to choose from ({what}; it "
            "chooses the split of a dataset directory or hub id): remove it"
        )
    for key in ("proxy", "gold"):
        spec = getattr(cfg, key)
        if spec is None and key == "gold":
            if cfg.gold_options:
                raise UserError("task.gold_options: there is no gold reward (task.gold=null)")
            continue
        try:
            check_reward_spec(str(spec), dict(getattr(cfg, f"{key}_options")))
        except UserError as e:
            none = key == "gold" and str(spec).strip().lower() in ("none", "false", "no", "off")  # Python's None
            raise UserError(
                f"task.{key}: {e}" + ("; to evaluate no gold reward: task.gold=null" if none else "")
            ) from None
    taken = [set(task_set_options(str(spec), "", True)) for spec in (cfg.proxy, cfg.gold) if spec is not None]
    rewards = f"task.proxy={cfg.proxy}, task.gold={cfg.gold or 'null'}"
    if set_away_from_default(cfg, "reward_device") and not any("device" in t for t in taken):
        raise UserError(
            f"task.reward_device={cfg.reward_device} has no meaning here: no reward runs a model ({rewards}; it "
            "places hf: and minilm_sentiment rewards): remove it"
        )
    if set_away_from_default(cfg, "build_gold") and not any("build_if_missing" in t for t in taken):
        raise UserError(
            f"task.build_gold={str(cfg.build_gold).lower()} has no meaning here: no reward is minilm_sentiment "
            f"({rewards}; it says whether that model is built on first use): remove it"
        )


_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".txt": "text"}


# data files that are not read as prompts: refused by name, there or not, never looked up on the hub
_OTHER_FORMATS = {
    *(".tsv", ".tab", ".parquet", ".arrow", ".feather", ".orc", ".avro", ".xlsx", ".xls", ".ods", ".xml"),
    *(".html", ".htm", ".yaml", ".yml", ".md", ".pkl", ".pickle", ".npy", ".npz", ".pt", ".db", ".sqlite"),
    *(".gz", ".bz2", ".xz", ".zst", ".zip", ".tar", ".tgz", ".lance"),
}


def check_prompt_format(src: str, what: str) -> None:
    """A prompt file is ``.json``, ``.jsonl``, ``.csv`` or ``.txt``: another file here, or a name that ends
    like a data file of another format (``.tsv``, ``.parquet``, ...), is refused in one line (UserError)."""
    suffix = Path(src).suffix.lower()
    if suffix in _BUILDERS:
        return
    if suffix in _OTHER_FORMATS or Path(src).expanduser().is_file():
        kind = f"{suffix} files are" if suffix else "a file without a suffix is"
        raise UserError(
            f"{what}={src}: {kind} not read as prompts: use a .jsonl, .json, .csv or .txt file "
            "(or a dataset directory or hub id)"
        )


_DATA_SUFFIXES = {*_BUILDERS, ".tsv", ".parquet", ".arrow"}
# a dataset repository's other files (README.md's card aside), and save_to_disk's metadata
_NOT_DATA = ("readme", "license", "licence", "notice", "changelog", "citation", "dataset_info", "dataset_dict", "state")


def _is_data_file(f: Path, folder: Path) -> bool:
    """Whether ``f``, in the prompt folder ``folder``, is a data file that datasets would read (or leave out for
    another format): datasets skips hidden files, and the files of hidden folders and of folders named ``__*``
    (a Jupyter checkpoint's copy in ``.ipynb_checkpoints``), wherever the prompt folder itself lies."""
    parts = f.relative_to(folder).parts
    if any(p.startswith(".") for p in parts) or any(p.startswith("__") for p in parts[:-1]):
        return False
    stem = f.stem.lower()  # README.md, LICENSE.txt: not data; states.txt, notices.jsonl: data
    return f.suffix.lower() in _DATA_SUFFIXES and stem not in _NOT_DATA and f.is_file()


def check_prompt_source(src: str, what: str) -> None:
    """A prompt source that cannot load fails in one line before any model loads: a file or directory
    that is not there, a hub dataset that is neither cached nor reachable."""
    from rlhf_zoo.hub import check_hub_dataset, is_local_path

    if src == HUTTO:
        return
    check_prompt_format(src, what)
    if Path(src).suffix.lower() in _BUILDERS or is_local_path(src):
        path = Path(src).expanduser()
        if not path.exists():
            raise UserError(f"{what}={src}: no such file or directory")
        if path.is_dir():  # datasets reads the files of one format of a folder, and leaves the others out
            kinds = sorted({f.suffix.lower() for f in path.rglob("*") if _is_data_file(f, path)})
            if len({_BUILDERS.get(k, k) for k in kinds}) > 1:  # .json and .jsonl are one format
                raise UserError(
                    f"{what}={src} holds prompt files of several formats ({', '.join(kinds)}), of which one would "
                    "be read: keep one format in the folder, or name a file"
                )
        return
    check_hub_dataset(src, what=f"{what}={src}")


def _one_column(src: str) -> bool:
    """Whether ``src`` has no column to choose (``prompt_column``): ``hutto``, or a ``.txt`` file (read whole as the
    column ``text``)."""
    return src == HUTTO or (Path(src).suffix.lower() == ".txt" and Path(src).expanduser().is_file())


def _has_splits(src: str) -> bool:
    """Whether ``src`` is read by split (``prompt_split``): a directory (whatever its name ends with, as
    :func:`read_texts` reads it) or hub id; not a file nor ``hutto``."""
    path = Path(src).expanduser()
    return src != HUTTO and (path.is_dir() or (path.suffix.lower() not in _BUILDERS and not path.is_file()))


def prompt_words(cfg: SentimentTaskConfig, source: str) -> int:
    """Words kept of each text of ``source`` (0: the whole text)."""
    if cfg.prompt_words is not None:
        return cfg.prompt_words
    return HUTTO_WORDS if source == HUTTO else 0


def _hash_unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def as_prompts(texts: list[Any], words: int) -> list[str]:
    """Texts → prompts: whole and as given (``words=0``; empty texts skipped), or the first ``words``
    words of each (duplicates dropped, the first kept: cutting makes them)."""
    if words == 0:
        return [str(t) for t in texts if t is not None and str(t).strip()]
    seen: dict[str, None] = {}
    for t in texts:
        p = " ".join(str(t).split()[:words]) if t is not None else ""
        if p:
            seen.setdefault(p)
    return list(seen)


def read_texts(src: str, cfg: SentimentTaskConfig, what: str) -> list[Any]:
    """The ``prompt_column`` of a ``datasets`` source: a local file (by suffix), a directory or a hub id."""
    try:
        import datasets
    except ImportError:
        raise MissingPackageError("datasets", f"{what} from a datasets source") from None
    from rlhf_zoo.hub import local_or_hub

    datasets.disable_progress_bars()  # a prompt file loads in a blink; keep stderr for errors
    check_prompt_format(src, what)
    suffix = Path(src).suffix.lower()
    builder = _BUILDERS.get(suffix)
    source = local_or_hub(src)  # ~/p.jsonl: the shell leaves a ~ after task.prompts= as it is
    local = builder is not None and Path(source).is_file()
    if local:
        data = Path(source).read_bytes()
        try:  # UTF-8 (with or without a byte-order mark): pyarrow's JSON reader lets other bytes through, to fail
            # on the first prompt read (a UnicodeDecodeError traceback)
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UserError(
                f"{what}={src} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): save it as UTF-8"
            ) from None
        rows = [line for line in text.splitlines() if line.strip()]
        if len(rows) <= (builder == "csv"):
            why = "it is empty but for its header" if rows else "it holds only blank lines" if text else "it is empty"
            raise UserError(f"{src} holds no prompts ({why})")
        if builder == "json":  # pyarrow said "Column() changed from object to string in row 0"; null crashed it
            _check_json_holds_rows(text, src, what, lines=suffix == ".jsonl", column=cfg.prompt_column)
    try:
        if local:
            # a CSV's cells are text as written: no "NA"/"null"/"" read as missing, no "007" read as 7.0
            csv = {"keep_default_na": False, "converters": {cfg.prompt_column: str}} if builder == "csv" else {}
            # a text file's byte-order mark (Windows editors write one) is not the first prompt's first character
            bom = {"encoding": "utf-8-sig"} if builder in ("text", "csv") else {}
            # datasets logs a file it cannot parse ("Failed to load JSON from file ...") before it raises: the
            # error line below says why, and is the one line
            level = datasets.logging.get_verbosity()
            datasets.logging.set_verbosity(datasets.logging.CRITICAL)
            try:
                ds = datasets.load_dataset(builder, data_files=source, split="train", **csv, **bom)
            finally:
                datasets.logging.set_verbosity(level)
        else:
            ds = datasets.load_dataset(source, split=cfg.prompt_split)
    except Exception as e:  # noqa: BLE001 - any loading failure is the user's source
        # datasets wraps a file it cannot parse in "An error occurred while generating the dataset": the
        # reason (e.g. a JSON parse error and its row) is the exception it wraps
        if type(e).__name__ == "DatasetGenerationError" and (e.__cause__ or e.__context__) is not None:
            e = e.__cause__ or e.__context__
        columns = [getattr(e, a, None) for a in ("table_column_names", "requested_column_names")]
        if type(e).__name__ == "CastError" and all(isinstance(c, list) for c in columns):  # said "Couldn't cast"
            one, other = (", ".join(map(str, c[:6])) + (", ..." if len(c) > 6 else "") for c in columns)
            raise UserError(
                f"cannot load prompts from {src!r}: its files do not all hold the same columns (one holds {one}, "
                f"another {other}): give them the same columns, or name one file"
            ) from None
        raise UserError(f"cannot load prompts from {src!r}: {one_line(e)}") from None
    # a text file has one column, text, whatever task.prompt_column names for the other source: task.prompts=a.jsonl
    # task.prompt_column=prompt task.eval_prompts=b.txt said "'b.txt' has no column 'prompt'"
    column = "text" if builder == "text" and local else cfg.prompt_column
    if column not in ds.column_names:
        raise UserError(
            f"{src!r} has no column {column!r}; columns: {', '.join(ds.column_names)} (task.prompt_column names "
            "the one to read)"
        )
    texts = list(ds[column])
    for i, t in enumerate(texts):  # a list (chat messages), a number, ...: never its Python repr as a prompt
        if t is not None and not isinstance(t, str):
            raise _not_text(what, src, column, t, i + 1)
    return texts


def _not_text(what: str, src: str, column: str, value: Any, row: int) -> UserError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return UserError(
        f"{what}={src}: column {column!r} holds {type(value).__name__} values, not text "
        f"(row {row}: {shown}); name a text column with task.prompt_column"
    )


def _check_json_holds_rows(text: str, src: str, what: str, lines: bool, column: str = "text") -> None:
    """A ``.json`` prompt file holds a list (of prompts, or of records) or a mapping (of columns, or a
    ``data`` field), and each line of a ``.jsonl`` file one record: anything else (a string, a number, a null,
    which crashed datasets with a segmentation fault) is refused naming what and where it is, and so is a
    ``.jsonl`` line that is not JSON (datasets counts its rows from 0) or whose ``column`` holds no text (with a
    blank line in the file, datasets said only "Expected object or value"). A ``.json`` file that is not JSON is
    left to datasets, whose error names the place."""
    import json

    def kind(value: Any) -> str:
        name = {type(None): "null", bool: "boolean", str: "string", list: "list"}.get(type(value), "number")
        shown = json.dumps(value)
        return name if value is None else f"{name} ({shown if len(shown) <= 40 else shown[:37] + '...'})"

    if not lines:
        try:
            data = json.loads(text)
        except ValueError:
            return
        if data == [] or data == {} or data == [{}]:  # datasets said 'Instruction "train" corresponds to no data!'
            raise UserError(f"{what}={src} holds no prompts (it holds {json.dumps(data)})")
        if not isinstance(data, (list, dict)):
            raise UserError(
                f"{what}={src} holds one JSON {kind(data)}, not prompts: write a list of them "
                '(["first prompt", ...]) or of records ([{"text": ...}, ...]), or one prompt per line in a .txt file'
            )
        return
    rows = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise UserError(
                f"{what}={src}: line {n} is not JSON (JSON parse error: {e.msg}, column {e.colno})"
            ) from None
        if not isinstance(row, dict):
            raise UserError(
                f"{what}={src}: line {n} holds a JSON {kind(row)}, not a record: write one object per line "
                '({"text": ...})'
            )
        rows += 1
        if row.get(column) is not None and not isinstance(row[column], str):
            raise _not_text(what, src, column, row[column], rows)


def hash_split(prompts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """Train and eval prompts of a user's source, split by a hash of each prompt (the same text always
    lands on the same side)."""
    train, evals = [], []
    for p in prompts:
        (evals if _hash_unit(p) < fraction else train).append(p)
    return train, evals


@dataclass
class PromptSets:
    """What :func:`load_prompt_sets` read: ``rows_skipped`` counts the rows of a user's sources without text."""

    train: list[str]
    evals: list[str]
    source: str
    rows_skipped: int = 0


def load_prompt_sets(cfg: SentimentTaskConfig) -> PromptSets:
    """Train prompts, held-out eval prompts, where they came from in words (with the rows of a user's source
    that hold no text, counted: ``p.jsonl (2 of 6 rows skipped: no text)``) and that count."""
    skipped = 0

    def read(src: str, what: str, words: int) -> tuple[list[str], str]:
        nonlocal skipped
        texts = read_texts(src, cfg, what)
        blank = sum(1 for t in texts if t is None or not str(t).strip())
        skipped += blank
        note = f" ({blank} of {len(texts)} rows skipped: no text)" if blank else ""
        prompts = as_prompts(texts, words)
        if words:  # cut to their first words, prompts that differ later are one: say how many are left
            left = len(texts) - blank
            note += f", first {words} words" + (f" ({len(prompts)} distinct of {left})" if len(prompts) < left else "")
        return prompts, f"{src}{note}"

    words = prompt_words(cfg, cfg.prompts)
    if cfg.prompts == HUTTO:
        from rlhf_zoo.data.hutto import prompt_texts

        train = prompt_texts("train", n_words=words or None)
        evals = [] if cfg.eval_prompts else prompt_texts("eval", n_words=words or None)
        source = "the packaged movie-review snippets" + (f", first {words} words" if words else "")
    elif cfg.eval_prompts:
        train, source = read(cfg.prompts, "task.prompts", words)
    else:
        prompts, source = read(cfg.prompts, "task.prompts", words)
        train, evals = hash_split(prompts, cfg.eval_fraction)
        source += f", split by a hash of the text with task.eval_fraction={cfg.eval_fraction}"
    if cfg.eval_prompts == HUTTO:  # the packaged held-out snippets beside a user's training prompts
        from rlhf_zoo.data.hutto import prompt_texts

        eval_words = prompt_words(cfg, HUTTO)
        evals = prompt_texts("eval", n_words=eval_words or None)
        source += "; evaluation: the packaged held-out movie-review snippets"
        source += f", first {eval_words} words" if eval_words else ""
    elif cfg.eval_prompts:
        evals, where = read(cfg.eval_prompts, "task.eval_prompts", prompt_words(cfg, cfg.eval_prompts))
        source += f"; evaluation: {where}"
    if cfg.max_train_prompts > 0 and len(train) > cfg.max_train_prompts:
        train = train[: cfg.max_train_prompts]
        source += f"; the first {cfg.max_train_prompts} for training (task.max_train_prompts)"
    return PromptSets(train, evals, source, skipped)


def check_prompts_fit(prompts: list[str], model_cfg: Any, tokenizer: Any, context: int | None) -> dict[str, list[int]]:
    """Every prompt fits: at most ``model.max_prompt_tokens`` tokens, and prompt + completion within the
    model's ``context`` (its positions). Raises UserError naming the limit; never truncates. Returns each
    prompt's ids, which the policy takes rather than tokenising the prompt set again."""
    from rlhf_zoo.policies.hf.tokens import PromptEncoder

    new, room = model_cfg.max_new_tokens, model_cfg.max_prompt_tokens
    if context is not None and room + new > context:
        raise UserError(
            f"model.max_prompt_tokens={room} + model.max_new_tokens={new} = {room + new} tokens, more than the "
            f"{context} positions of {model_cfg.name!r}: lower model.max_prompt_tokens to at most {context - new}"
        )
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoder = PromptEncoder(tokenizer, model_cfg, pad, [int(eos)])
    counts = encoder.token_counts(prompts)
    over = [i for i, n in enumerate(counts) if n > room]
    if not over:
        return encoder.cache
    i = max(over, key=lambda j: counts[j])
    shown = prompts[i] if len(prompts[i]) <= 60 else prompts[i][:57] + "..."
    if context is None or counts[i] + new <= context:
        fix = f"shorten it or raise model.max_prompt_tokens to {counts[i]}"
    else:
        fix = f"shorten it: {model_cfg.name!r} holds {context} positions, {context - new} prompt tokens with {new} new"
    several = f"{len(over)} of {len(prompts)} prompts are longer than" if len(over) > 1 else "a prompt is longer than"
    raise UserError(f"{several} model.max_prompt_tokens={room} tokens: {shown!r} has {counts[i]}; {fix}")


def _check_prompts_before_loading(prompts: list[str], model_cfg: Any) -> dict[str, list[int]] | None:
    """:func:`check_prompts_fit` with the model's tokenizer and config files only (the files the policy's
    tokenizer loads too), and its ids; None when those cannot be read without loading the model (it is then
    checked after loading)."""
    from rlhf_zoo.policies.models import tokenizer_and_context

    found = tokenizer_and_context(model_cfg.name)
    return None if found is None else check_prompts_fit(prompts, model_cfg, *found)


def build_sentiment_task(cfg: SentimentTaskConfig, model_cfg: Any, device: str = "cpu") -> Task:
    """Prompts, rewards and the policy builder of the sentiment task (see the module docstring).

    Order: prompts, then whether they fit the model (its tokenizer and config files, no weights), then the
    rewards (the gold model may need building), then, on demand, the policy."""
    reward_device = device if cfg.reward_device == "auto" else cfg.reward_device
    if cfg.reward_device != "auto":
        resolve_device(cfg.reward_device, key="task.reward_device")  # a one-line error before anything loads
    sets = load_prompt_sets(cfg)
    train, evals = sets.train, sets.evals
    if not train:
        raise UserError(f"the prompt set {cfg.prompts!r} gives no training prompts ({sets.source})")
    if not evals:
        where = cfg.eval_prompts or cfg.prompts
        hint = (
            "" if cfg.eval_prompts else ": name an evaluation file (task.eval_prompts=FILE) or raise task.eval_fraction"
        )
        raise UserError(f"the prompt set {where!r} gives no held-out evaluation prompts ({sets.source}){hint}")
    counted = None if model_cfg is None else _check_prompts_before_loading(train + evals, model_cfg)
    proxy = _reward(cfg.proxy, cfg.proxy_options, reward_device, build_if_missing=cfg.build_gold, key="proxy")
    gold = None
    if cfg.gold:
        gold = _reward(cfg.gold, cfg.gold_options, reward_device, build_if_missing=cfg.build_gold, key="gold")

    def build_policy(seed: int):
        from rlhf_zoo.policies.hf import build_hf_policy
        from rlhf_zoo.policies.models import context_length

        policy = build_hf_policy(model_cfg, device=device, seed=seed)
        ids = counted
        if ids is None:
            context = context_length(policy.model.config, policy.tokenizer)
            ids = check_prompts_fit(train + evals, model_cfg, policy.tokenizer, context)
        policy.tokenize_prompts(train + evals, known=ids)  # once, before training: the check's ids
        return policy

    return Task(
        name="sentiment",
        train_prompts=train,
        eval_prompts=evals,
        proxy=proxy,
        gold=gold,
        build_policy=build_policy,
        prompt_source=sets.source,
        rows_skipped=sets.rows_skipped,
    )


def _reward(name: str, options: dict[str, Any], device: str, build_if_missing: bool, key: str = "proxy"):
    """The reward of ``task.<key>``; what only loading it refuses (a label out of range) names that setting."""
    from rlhf_zoo.rewards.registry import build_reward, task_set_options

    try:
        return build_reward(name, **options, **task_set_options(name, device, build_if_missing))
    except MissingPackageError:
        raise
    except UserError as e:
        from rlhf_zoo.rewards.hf import RUN_HINT

        said = str(e).replace(RUN_HINT, f"(in a run: task.{key}_options.label=...)")  # the reward it is about
        raise UserError(f"task.{key}: {said}") from None
