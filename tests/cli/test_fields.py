"""``rlhf-zoo fields``: every setting with its default and doc, read from the config dataclasses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields

import pytest
from omegaconf import OmegaConf

from rlhf_zoo.algorithms.registry import REGISTRY
from rlhf_zoo.config import RunConfig, TrainConfig
from rlhf_zoo.fields import field_docs, undocumented
from rlhf_zoo.policies.hf.config import HFPolicyConfig
from rlhf_zoo.tasks.registry import TASKS

CONFIGS = [
    *(cls.Config for cls in REGISTRY.values()),
    *(entry.config for entry in TASKS.values()),
    HFPolicyConfig,
    TrainConfig,
    RunConfig,
]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_of_every_config_has_a_doc_line(cls):
    assert not undocumented(cls), f"{cls.__name__}: no line in its Attributes: section for {undocumented(cls)}"


@dataclass
class _Flush:
    """Attributes:
    alpha: first line
        and its continuation.
    beta: one line.
    """

    alpha: int = 1
    beta: str = "b"
    gamma: float = 0.0


@dataclass
class _Indented:
    """A summary.

    Attributes:
        alpha: one.
        beta: two,
            continued.

    Notes after the section are not fields.
    """

    alpha: int = 1
    beta: int = 2


def test_the_attributes_section_is_parsed_in_both_layouts():
    assert field_docs(_Flush) == {"alpha": "first line and its continuation.", "beta": "one line."}
    assert undocumented(_Flush) == ["gamma"]
    assert field_docs(_Indented) == {"alpha": "one.", "beta": "two, continued."}


def test_fields_of_an_algorithm_show_each_default_and_doc(cli):
    code, out, err = cli("fields", "algo=bond")
    assert code == 0, err
    docs = field_docs(REGISTRY["bond"].Config)
    lines = out.splitlines()
    assert "rlhf_zoo/algorithms/bond.py" in lines[0]
    for f in fields(REGISTRY["bond"].Config):
        if f.name == "name":
            continue
        row = next(line for line in lines if line.strip().startswith(f"algo.{f.name}="))
        assert docs[f.name].split()[0].strip("`") in row
    assert any(line.strip().startswith("algo.beta=0.5 ") for line in lines)
    # rlhf_zoo/configs/task/exact/bond.yaml sets samples=4 on the default task: shown with the dataclass default
    assert any("algo.samples=4" in line and "[BondConfig default: 2]" in line for line in lines)


def test_fields_follow_the_task_a_preset_and_a_config_file(cli, tmp_path):
    code, out, _ = cli("fields", "train", "task=sentiment")
    assert code == 0 and "train.steps=50 " in out and "[TrainConfig default: 200]" in out
    code, out, _ = cli("fields", "algo=rloo")
    assert code == 0 and "ReinforceConfig" in out and "algo.samples=4 " in out
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: jbond\nalgo.gamma: 2.0\n")
    code, out, _ = cli("fields", f"config={exp}", "algo=jbond")
    assert code == 0 and "algo.gamma=2.0 " in out
    code, out, _ = cli("fields", "model")
    assert code == 0 and "model.max_prompt_tokens=64 " in out and "HFPolicyConfig" in out
    code, out, _ = cli("fields", "run")
    assert code == 0 and all(f"{k}=" in out for k in ("seed", "run_dir", "resume", "device", "threads", "config"))
    code, out, _ = cli("fields")
    assert code == 0 and "algo=NAME" in out and "bond" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["bogus"], "unknown section"), (["algo=nope"], "unknown algorithm"), (["algo"], "name the algorithm"),
     (["task"], "name the algorithm and the task"),
     (["model", "task=exact"], "no language model"), (["train", "train.stepz=1"], "stepz")],
)  # fmt: skip
def test_bad_fields_requests_are_one_line(cli, args, needle):
    code, out, err = cli("fields", *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and not out


def test_meta_json_records_the_package_version(cli, tmp_path):
    from rlhf_zoo.cli import version

    code, _, err = cli("train", "algo=bond", "train.steps=0", f"run_dir={tmp_path}/r")
    assert code == 0, err
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["versions"]["rlhf_zoo"] == version() and version() != "unknown"
    assert meta["prompts"] == {**meta["prompts"], "train": 4, "eval": 4}


def test_the_defaults_the_readme_states_are_the_configs():
    """The README states some defaults in prose (checkpoint every 100 steps and 10 minutes, 8 saved
    samples' prompts); architecture.md says LoRA dropout defaults to 0. Each must be the dataclass's."""
    import re
    from pathlib import Path

    from rlhf_zoo.config import TrainConfig
    from rlhf_zoo.policies.hf.config import HFPolicyConfig

    root = Path(__file__).resolve().parents[2]
    readme = " ".join((root / "README.md").read_text().split())
    arch = " ".join((root / "docs" / "architecture.md").read_text().split())
    t = TrainConfig()
    found = re.search(
        r"`train\.checkpoint_every` steps \((\d+); (\d+) on `task=sentiment`\) and "
        r"`train\.checkpoint_minutes` \((\d+)\)",
        readme,
    )
    assert found and (int(found[1]), float(found[3])) == (t.checkpoint_every, t.checkpoint_minutes)
    # rlhf_zoo/configs/task/sentiment.yaml checkpoints more often than the dataclass (the README said 100 for every
    # task)
    from rlhf_zoo.config import load_config

    sentiment = load_config(["algo=bond", "task=sentiment"]).train.checkpoint_every
    assert int(found[2]) == sentiment != t.checkpoint_every
    found = re.search(r"`train\.save_samples` = (\d+)", readme)
    assert found and int(found[1]) == t.save_samples
    found = re.search(r"`model\.lora_dropout` defaults to ([\d.]+)", arch)
    assert found and float(found[1]) == HFPolicyConfig().lora_dropout


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["train.bogus=3"], "unknown key 'train.bogus'"), (["bogus=3"], "unknown key 'bogus'"),
     (["train.stepz=3"], "did you mean train.steps?"), (["train", "train.stepz=1"], "did you mean train.steps?")],
)  # fmt: skip
def test_an_unknown_key_without_a_section_is_refused_not_ignored(cli, args, needle):
    """``rlhf-zoo fields train.bogus=3`` printed the overview and exited 0, as if the key were fine."""
    code, out, err = cli("fields", *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and not out, err


def test_fields_show_values_as_the_command_line_writes_them(cli):
    """The title names the algorithm as given (a preset), ``name`` is no row (it is chosen by algo=), booleans
    and empty strings read back as key=value, docs lose their reST markup; ``task=NAME`` alone shows its task."""
    code, out, err = cli("fields", "algo=rloo")
    assert code == 0 and out.startswith("algo=rloo  (rlhf_zoo/algorithms/"), err
    assert "ReinforceConfig" in out.splitlines()[0]  # the dataclass a preset's settings (and docs) come from
    assert "algo.name=" not in out
    code, out, _ = cli("fields", "train", "run")
    assert "train.progress=true " in out and "resume=false " in out and 'run_dir="" ' in out
    assert "``" not in out and ":class:" not in out and "samples.jsonl" in out
    code, out, _ = cli("fields", "task=sentiment")
    assert code == 0 and out.startswith("task=sentiment  (") and "task.proxy=vader " in out
    assert "task.name=" not in out  # chosen by task=, as algo.name by algo=


def test_the_doc_of_model_name_names_every_packaged_model():
    # `rlhf-zoo fields model` is where a user looks for the values of model.name: zoo-lm was missing there
    from rlhf_zoo.policies.models import SMOLLM2, TINY
    from rlhf_zoo.policies.zoo_lm import ZOO_LM

    doc = field_docs(HFPolicyConfig)["name"]
    assert [m for m in (TINY, SMOLLM2, ZOO_LM) if f'"{m}"' not in doc] == []


@dataclass
class _Gaps:
    """Attributes of a config, read from the section below (this line is not it).

    Attributes:
    alpha: first,
        default: 1 (a deeper line continues the entry above, whatever it reads like).

    beta: after a blank line.
    gamma:
    delta: after an entry with no text.
    Prose at the entries' indentation that is no entry ends the section.
    """

    alpha: int = 1
    beta: int = 2
    gamma: int = 3
    delta: int = 4


@dataclass
class _Summary:
    """A summary and no section."""

    alpha: int = 1


def test_blank_lines_deeper_lines_and_prose_in_the_attributes_section():
    """A blank line between entries keeps the section going; a deeper ``word: text`` line is a continuation,
    not an entry; a line at the entries' indentation that is no ``name: text`` ends the section; an entry with
    no text is a field without a doc (``undocumented``), and the entries after it are still read."""
    assert field_docs(_Gaps) == {
        "alpha": "first, default: 1 (a deeper line continues the entry above, whatever it reads like).",
        "beta": "after a blank line.",
        "gamma": "",
        "delta": "after an entry with no text.",
    }
    assert undocumented(_Gaps) == ["gamma"]
    assert field_docs(_Summary) == {} and undocumented(_Summary) == ["alpha"]  # no Attributes: section at all


ROW = re.compile(r"  (?P<key>[\w.]+)=(?P<value>.*?)(?:\s{2,}(?P<doc>\S.*)|$)")


def test_every_value_fields_shows_reads_back_as_itself_on_the_command_line(cli):
    """The ``key=value`` of each row, given back to ``rlhf-zoo train``, is the value that it shows: a null is
    ``null`` (not Python's None, which would be read as the text "None"), a list reads back as that list."""
    from rlhf_zoo.config import load_config

    args = ["algo=bond", "task=sentiment"]
    code, out, err = cli("fields", *args, "model", "train", "run")
    assert code == 0, err
    rows = [m for m in map(ROW.match, out.splitlines()) if m and m["value"] != "FILE.yaml"]
    shown = [f"{m['key']}={m['value']}" for m in rows]
    # among them a null and a list
    assert [any(s.endswith(end) for s in shown) for end in ("=null", "]")] == [True, True], shown
    base = OmegaConf.to_container(load_config(args))
    again = OmegaConf.to_container(load_config([*args, *shown]))
    assert again == base


def test_the_run_section_points_to_the_command_that_shows_each_nested_section(cli):
    """``rlhf-zoo fields run`` lists algo.*, task.*, model.* and train.* as the command that shows them; each
    command, with a name put for NAME, runs (``rlhf-zoo fields algo`` alone is refused: it needs algo=NAME)."""
    code, out, _ = cli("fields", "run")
    assert code == 0
    pointers = dict(re.findall(r"^  (\w+)\.\*\s+rlhf-zoo fields (\S+):", out, flags=re.MULTILINE))
    assert sorted(pointers) == ["algo", "model", "task", "train"], out
    names = {"algo": "bond", "task": "sentiment"}
    for section, command in pointers.items():
        code, shown, err = cli("fields", *command.replace("NAME", names.get(section, "NAME")).split())
        assert code == 0 and section in shown.splitlines()[0], (command, err)


def test_fields_model_follows_the_task_of_a_config_file(cli, tmp_path):
    """A ``config=FILE.yaml`` that sets the task chooses it for ``rlhf-zoo fields model``: only without a task
    from either is one with a language model taken."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("task: exact\n")
    code, out, err = cli("fields", "model", f"config={exp}")
    assert code == 2 and "task=exact has no language model" in err and not out, err
    exp.write_text("task: sentiment\nmodel.max_prompt_tokens: 32\n")
    code, out, err = cli("fields", "model", f"config={exp}")
    assert code == 0 and "model.max_prompt_tokens=32 " in out, err


def test_fields_columns_fit_the_terminal(cli, monkeypatch):
    """Each block's docs start in one column, two spaces at least after the longest key that fits (a longer
    key, model.lora_target_modules=[...], has its own line, its doc below it in that column), and wrap
    within the terminal's width."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("fields", "task=sentiment", "model", "train")
    assert code == 0, err
    for block in out.split("\n\n"):
        lines = block.splitlines()[1:]
        starts = set()
        for i, line in enumerate(lines):
            m = ROW.match(line)
            if m and m["doc"]:
                starts.add(m.start("doc"))
            elif m:  # a key on its own line: its doc on the next, indented to the docs' column
                starts.add(len(lines[i + 1]) - len(lines[i + 1].lstrip()))
                assert not ROW.match(lines[i + 1])
            else:  # a continuation line
                starts.add(len(line) - len(line.lstrip()))
            assert len(line) <= 80 or (m and not m["doc"]), line
        assert len(starts) == 1, block
        (column,) = starts
        assert all(len(m["key"]) + len(m["value"]) + 5 <= column for m in map(ROW.match, lines) if m and m["doc"])


@pytest.mark.parametrize("named", ["algo=bond", "task=sentiment"])
def test_a_section_named_both_ways_shows_it_once(cli, named):
    """``rlhf-zoo fields algo algo=bond`` said "name the algorithm and the task: algo=NAME, task=NAME", of an
    algorithm that was named (``fields task task=sentiment`` showed the task's settings)."""
    code, alone, _ = cli("fields", named)
    code2, both, err = cli("fields", named.partition("=")[0], named)
    assert code == code2 == 0 and both == alone, err


def test_a_default_note_marks_exactly_the_values_that_differ_from_the_dataclass(cli):
    """``[TrainConfig default: D]`` follows a value that rlhf_zoo/configs/ set otherwise (task=sentiment's shorter
    training), and no other: a field whose default is made by a factory (the task's empty proxy_options) has
    none while the task leaves it alone."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig

    code, out, err = cli("fields", "task=sentiment", "train")
    assert code == 0, err
    cfg = OmegaConf.to_container(load_config(["algo=bond", "task=sentiment"]))
    sections = [("task", SentimentTaskConfig), ("train", TrainConfig)]
    for block, (section, cls) in zip(out.split("\n\n"), sections, strict=True):
        texts: dict[str, str] = {}  # each row with its continuation lines
        for line in block.splitlines()[1:]:
            m = ROW.match(line)
            if m:
                key = m["key"].removeprefix(f"{section}.")
                texts[key] = line
            else:
                texts[key] += " " + line.strip()
        differ = {k for k in texts if cfg[section][k] != getattr(cls(), k)}
        noted = {k for k, text in texts.items() if f"[{cls.__name__} default: " in text}
        assert noted == differ and len(texts) > 5, (section, texts)
        assert section == "task" or "steps" in differ  # rlhf_zoo/configs/task/sentiment.yaml: 50 steps
        assert section == "train" or "proxy_options" in set(texts) - noted


def test_output_piped_into_a_reader_that_stops_ends_without_a_traceback():
    """``rlhf-zoo fields train | head -5``: the reader closes the pipe, the next write fails (a walkthrough saw 11
    lines of a BrokenPipeError traceback). The command ends quietly with the status of a writer SIGPIPE ended."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhf_zoo", "fields", "train"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before it writes anything (it starts by importing): every write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
