"""Rewards named as Python functions on the command line: ``task.proxy=py:FILE_OR_MODULE:NAME``."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_jsonl

pytest.importorskip("transformers")

REWARDS = """
import numpy as np
import torch


def constant(prompts, completions):
    assert isinstance(prompts, list) and isinstance(completions, list)
    return np.full(len(completions), 0.25)


def as_tensor(prompts, completions):
    return torch.tensor([0.75] * len(completions), requires_grad=True)


def as_list(prompts, completions):
    return [float(len(p) > 0) for p in prompts]


def one_argument(completions):
    return [0.0] * len(completions)


def nan(prompts, completions):
    return [float("nan")] * len(completions)


def _private_helper(completion):
    return 0.0


NOT_A_FUNCTION = 3
"""


@pytest.fixture
def rewards_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARDS)
    return path


@pytest.fixture
def lm(tiny_lm, tmp_path):
    return [*tiny_lm, f"task.prompts={write_jsonl(tmp_path / 'p.jsonl', [f'prompt {i}' for i in range(12)])}",
            "task.eval_fraction=0.5"]  # fmt: skip


def _summary(tmp_path):
    return json.loads((tmp_path / "run" / "summary.json").read_text())


@pytest.mark.parametrize(("fn", "value"), [("constant", 0.25), ("as_tensor", 0.75), ("as_list", 1.0)])
def test_a_function_in_a_file_is_the_proxy(cli, lm, tmp_path, rewards_file, fn, value):
    code, _, err = cli("train", "algo=reinforce", *lm, f"task.proxy=py:{rewards_file}:{fn}")
    assert code == 0, err
    assert _summary(tmp_path)["reward/proxy"] == pytest.approx(value)


def test_a_module_by_name_is_the_gold_reward(cli, lm, tmp_path, rewards_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the module is found in the current directory, as a user would run it
    monkeypatch.delitem(__import__("sys").modules, "my_rewards", raising=False)
    rewards = ["task.gold=py:my_rewards:as_list", "task.proxy=py:my_rewards.py:constant"]
    code, _, err = cli("train", "algo=reinforce", *lm, *rewards)
    assert code == 0, err
    summary = _summary(tmp_path)
    assert summary["reward/gold"] == 1.0 and summary["reward/proxy"] == 0.25 and summary["win_rate/gold"] == 0.5


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("py:{dir}/nowhere.py:score", "no such file"),
        ("py:{dir}:score", "is a directory, not a Python file"),
        ("py:/dev/null:score", "/dev/null is not a regular file"),
        ("py:no_such_module_xyz:score", "no module named 'no_such_module_xyz'"),
        ("py:{file}:scor", "has no 'scor' (its functions: as_list, as_tensor, constant, nan, one_argument)"),
        ("py:{file}:one_argument", "cannot be called as f(prompts, completions)"),
        ("py:{file}:my score", "'my score' is not a Python name"),
        ("py:{file}:NOT_A_FUNCTION", "NOT_A_FUNCTION is an int, not a function"),
        ("py:{file}", "names no function"),
        ("py:{broken}:score", "importing"),
        ("mymodule:fn", "unknown reward"),
    ],
)
def test_a_bad_reference_is_one_line_before_any_model_loads(cli, lm, tmp_path, rewards_file, monkeypatch, spec, needle):
    import rlhf_zoo.policies.models as models

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("a model was loaded"))
    broken = tmp_path / "broken.py"
    broken.write_text("def score(prompts, completions)\n    return 1\n")
    spec = spec.format(dir=tmp_path, file=rewards_file, broken=broken)
    for key in ("task.proxy", "task.gold"):
        code, _, err = cli("train", "algo=reinforce", *lm, f"{key}={spec}")
        assert code == 2 and needle in err and key in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "run").exists()  # rejected with the config, before any work


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b'LABEL = "caf\xe9"\n', "is not UTF-8 text (byte 0xe9 on line 1): save it as UTF-8, or name its encoding"),
        (b'\n\n# -*- coding: ascii -*-\nLABEL = "caf\xe9"\n', "is not UTF-8 text (byte 0xe9 on line 4)"),
        (b'# -*- coding: ascii -*-\nLABEL = "caf\xe9"\n', "is not ascii text (byte 0xe9 on line 2)"),
        ("def score(prompts, completions):\n    return [0.0]\n".encode("utf-16"), "is not UTF-8 text (byte 0xff on"),
    ],
)
def test_a_reward_file_that_is_not_utf8_is_one_line_saying_so(cli, lm, tmp_path, monkeypatch, text, needle):
    """A Latin-1 file said "importing FILE failed: SyntaxError: (unicode error) 'utf-8' codec can't decode byte
    0xe9 in position 3: unexpected end of data", a UTF-16 one "source code string cannot contain null bytes"."""
    import rlhf_zoo.policies.models as models

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("a model was loaded"))
    path = tmp_path / "latin.py"
    path.write_bytes(text + b"def score(prompts, completions):\n    return [0.0] * len(completions)\n")
    code, _, err = cli("train", "algo=reinforce", *lm, f"task.proxy=py:{path}:score")
    assert code == 2 and f"{path} {needle}" in err and "task.proxy" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists(), err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b'LABEL = "caf\xe9"\n', "is not UTF-8 text (byte 0xe9 on line 1)"),
        ("def score(prompts, completions):\n    return [0.0]\n".encode("utf-16"), "is not UTF-8 text (byte 0xff on"),
    ],
)
def test_a_reward_module_that_is_not_utf8_is_named_with_its_file(tmp_path, monkeypatch, text, needle):
    """py:MODULE:NAME as py:FILE:NAME: the UTF-16 module's error ("source code string cannot contain null bytes")
    names no file, which is looked up."""
    import sys

    from rlhf_zoo.errors import UserError
    from rlhf_zoo.rewards.python import load_python_function

    name = f"zoo_test_undecodable_{len(text)}"
    path = tmp_path / f"{name}.py"
    path.write_bytes(text + b"def score(prompts, completions):\n    return [0.0] * len(completions)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(UserError) as e:
        load_python_function(f"py:{name}:score")
    assert f"importing {name}: {path} {needle}" in str(e.value) and "save it as UTF-8" in str(e.value)


def test_a_latin1_byte_in_a_comment_still_loads_as_python_loads_it(tmp_path):
    """Python's import decodes only what it reads as code: a file it loads is loaded, as before."""
    from rlhf_zoo.rewards.python import load_python_function

    path = tmp_path / "comment.py"
    path.write_bytes(b"# caf\xe9\ndef score(prompts, completions):\n    return [0.0] * len(completions)\n")
    assert load_python_function(f"py:{path}:score")(["a"], ["b"]) == [0.0]


@pytest.mark.parametrize("source", ["file", "module"])
def test_a_reward_that_exits_on_import_is_one_line(cli, lm, tmp_path, monkeypatch, source):
    # a script with sys.exit(main()) (or argparse) at its top level: it ended rlhf-zoo with the script's exit code
    # and no word, or with the script's own usage message
    (tmp_path / "zoo_test_exiting_reward.py").write_text(
        "import sys\n\n\ndef score(prompts, completions):\n    return [0.0] * len(completions)\n\n\nsys.exit(3)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "zoo_test_exiting_reward", raising=False)
    spec = "py:zoo_test_exiting_reward" + (".py" if source == "file" else "") + ":score"
    code, _, err = cli("train", "algo=reinforce", *lm, f"task.proxy={spec}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "task.proxy" in err and "exited (SystemExit: 3)" in err and "__main__" in err, err
    assert not (tmp_path / "run").exists()


def test_a_non_finite_score_stops_with_one_line(cli, lm, rewards_file):
    code, _, err = cli("train", "algo=reinforce", *lm, f"task.proxy=py:{rewards_file}:nan")
    errors = [x for x in err.splitlines() if "error" in x]
    assert code == 2 and len(errors) == 1 and "returned nan" in errors[0] and "Traceback" not in err, err


def test_a_tensor_with_gradient_is_scored_as_a_constant(rewards_file):
    from rlhf_zoo.rewards import build_reward, checked_score

    reward = build_reward(f"py:{rewards_file}:as_tensor")
    scores = checked_score(reward, ["p", "q"], ["a", "b"])
    assert scores.tolist() == [0.75, 0.75] and not scores.requires_grad


def test_a_reward_file_imports_a_helper_beside_it(tmp_path, monkeypatch):
    import sys

    from rlhf_zoo.rewards import build_reward, checked_score

    folder = tmp_path / "my_rewards_folder"
    folder.mkdir()
    (folder / "zoo_test_reward_helper.py").write_text("def bonus(completion):\n    return 0.5 * len(completion)\n")
    (folder / "zoo_test_late_helper.py").write_text("def bonus(completion):\n    return -1.0\n")
    (folder / "reward.py").write_text(
        "from zoo_test_reward_helper import bonus\n\n"
        f"open({str(tmp_path / 'executed')!r}, 'a').write('once ')\n\n\n"
        "def score(prompts, completions):\n    return [bonus(c) for c in completions]\n\n\n"
        "def late(prompts, completions):\n    from zoo_test_late_helper import bonus\n\n"
        "    return [bonus(c) for c in completions]\n"
    )
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the helper is found beside the file, not in the cwd
    for name in ("zoo_test_reward_helper", "zoo_test_late_helper"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    first = sys.path[0]
    reward = build_reward(f"py:{folder / 'reward.py'}:score")
    assert checked_score(reward, ["p", "q"], ["ab", "abcd"]).tolist() == [1.0, 2.0]
    assert sys.path[0] == first  # the folder does not shadow installed packages afterwards
    # a function importing a helper when it is called (after the file was loaded) still finds it
    assert checked_score(build_reward(f"py:{folder / 'reward.py'}:late"), ["p"], ["a"]).tolist() == [-1.0]
    assert (tmp_path / "executed").read_text() == "once "  # validation and the run share one execution


def test_two_reward_folders_with_a_helper_of_one_name_are_refused_not_mixed(tmp_path, monkeypatch):
    """``task.proxy=py:ra/r.py:score task.gold=py:rb/r.py:score`` (or a sweep over the two), each file importing
    ``helper`` beside it: Python holds one module ``helper``, so rb/r.py got ra's and its scores were ra's
    (gold 1.0 where rb's helper gives -5.0). The second is refused in one line instead."""
    import sys

    from rlhf_zoo.errors import UserError
    from rlhf_zoo.rewards import build_reward, checked_score

    for name, value in (("ra", 1.0), ("rb", -5.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "zoo_test_shared_helper.py").write_text(f"def val():\n    return {value}\n")
        (tmp_path / name / "r.py").write_text(
            "from zoo_test_shared_helper import val\n\n\ndef score(prompts, completions):\n"
            "    return [val() for _ in completions]\n"
        )
    monkeypatch.delitem(sys.modules, "zoo_test_shared_helper", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert checked_score(build_reward(f"py:{tmp_path / 'ra' / 'r.py'}:score"), ["p"], ["c"]).tolist() == [1.0]
    with pytest.raises(UserError, match=r"imports zoo_test_shared_helper from beside it.*another reward file") as info:
        build_reward(f"py:{tmp_path / 'rb' / 'r.py'}:score")
    assert str(tmp_path / "ra" / "zoo_test_shared_helper.py") in str(info.value) and "\n" not in str(info.value)
    monkeypatch.delitem(sys.modules, "zoo_test_shared_helper")


def test_a_module_beside_the_file_wins_over_an_installed_module_of_the_same_name(tmp_path, monkeypatch):
    """As under ``python reward.py``, the file's own folder comes first while it is imported: a ``colorsys.py``
    beside it is the one it imports, not the standard library's."""
    import sys

    from rlhf_zoo.rewards import build_reward, checked_score

    (tmp_path / "colorsys.py").write_text("SOURCE = 'beside'\n")
    (tmp_path / "reward.py").write_text(
        "import colorsys\n\n\n"
        "def score(prompts, completions):\n"
        "    return [1.0 if getattr(colorsys, 'SOURCE', '') == 'beside' else 0.0 for _ in completions]\n"
    )
    monkeypatch.setitem(sys.modules, "colorsys", None)  # restored (or removed) afterwards
    monkeypatch.delitem(sys.modules, "colorsys")  # imported afresh, whatever imported it before
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert checked_score(build_reward(f"py:{tmp_path / 'reward.py'}:score"), ["p"], ["c"]).tolist() == [1.0]


def test_a_module_that_imports_a_missing_one_is_named_as_failing_not_as_missing(tmp_path, monkeypatch):
    """``py:MODULE:NAME`` whose module is there but imports one that is not: the error says that importing the
    module failed and why, not "no module named" the dependency as if the reference itself were wrong."""
    import sys

    from rlhf_zoo.errors import UserError
    from rlhf_zoo.rewards.python import load_python_function

    (tmp_path / "zoo_test_needs_dep.py").write_text("import zoo_test_absent_dep\n\n\ndef score(p, c):\n    return []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "zoo_test_needs_dep", raising=False)
    with pytest.raises(UserError, match="importing zoo_test_needs_dep failed.*zoo_test_absent_dep") as info:
        load_python_function("py:zoo_test_needs_dep:score")
    assert "use py:" not in str(info.value)


def test_the_last_colon_names_the_function_so_a_source_may_hold_colons():
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.rewards.python import parse_spec

    assert parse_spec("py:my_rewards.py:score") == ("my_rewards.py", "score")
    assert parse_spec("py:C:/work/my_rewards.py:score") == ("C:/work/my_rewards.py", "score")
    assert parse_spec("py:pkg.rewards:score") == ("pkg.rewards", "score")
    with pytest.raises(UserError, match="names no function"):
        parse_spec("py:my_rewards.py")


def test_the_reward_is_named_by_its_spec_in_what_it_reports(rewards_file):
    """A run's messages and metrics name the reward as it was given, py:FILE:NAME, not just the function."""
    import re

    from rlhf_zoo.rewards import RewardError, build_reward, checked_score

    spec = f"py:{rewards_file}:nan"
    reward = build_reward(spec)
    assert reward.name == spec
    with pytest.raises(RewardError, match=rf"^reward {re.escape(repr(spec))} returned nan"):
        checked_score(reward, ["p"], ["a"])


def test_a_source_with_a_backslash_is_a_file_path_not_a_module_name(tmp_path, monkeypatch):
    """A Windows path without ``.py`` (``rewards\\mine``) is looked for as a file, so a missing one says so."""
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.rewards.python import load_python_function

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"no such file rewards\\mine"):
        load_python_function("py:rewards\\mine:score")
