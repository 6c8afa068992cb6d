"""``py:FILE_OR_MODULE:NAME`` rewards, loaded without a run: how a reference is read, where a file is looked for,
what a failing file or module is reported as, and what loading leaves behind (sys.path, sys.modules)."""

from __future__ import annotations

import sys

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards.python import load_python_function, parse_spec

SCORE = "def score(prompts, completions):\n    return [0.5] * len(completions)\n"


@pytest.fixture(autouse=True)
def clean_path(monkeypatch) -> None:
    """sys.path without the current directory (as under the console script), restored afterwards (a file's folder
    stays on it once the file is loaded)."""
    from pathlib import Path

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(Path.cwd()))])


@pytest.mark.parametrize("spec", ["py::score", "py: :score", "py:my_rewards.py:", "py:my_rewards.py: "])
def test_a_reference_without_a_source_or_a_name_names_no_function(spec) -> None:
    with pytest.raises(UserError, match=r"names no function: use py:FILE\.py:FUNCTION or py:MODULE:FUNCTION"):
        parse_spec(spec)


def test_spaces_around_the_source_and_the_name_are_not_part_of_them() -> None:
    """As a YAML value or a shell argument may carry them: ``py: my_rewards.py : score``."""
    assert parse_spec("py: my_rewards.py : score") == ("my_rewards.py", "score")


def test_a_relative_file_is_found_from_the_current_directory_and_named_by_its_full_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo_rel_reward.py").write_text(SCORE)
    assert load_python_function("py:zoo_rel_reward.py:score")(["p"], ["c"]) == [0.5]
    with pytest.raises(UserError, match=rf"no such file gone\.py \(looked at {tmp_path / 'gone.py'}\)$"):
        load_python_function("py:gone.py:score")


def test_a_file_under_home_is_found_by_its_tilde(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "zoo_home_reward.py").write_text(SCORE)
    assert load_python_function("py:~/zoo_home_reward.py:score")(["p"], ["c"]) == [0.5]


def test_functions_of_two_files_of_the_same_name_are_each_found_by_their_module(tmp_path) -> None:
    """Each file is its own module in sys.modules, as pickling (to send a function to another process) needs:
    two ``reward.py`` in two folders do not replace each other."""
    import pickle

    functions = []
    for folder, value in (("a", 1.0), ("b", 2.0)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "reward.py").write_text(f"def score(prompts, completions):\n    return [{value}]\n")
        functions.append(load_python_function(f"py:{tmp_path / folder / 'reward.py'}:score"))
    assert [f([], []) for f in functions] == [[1.0], [2.0]]
    assert [pickle.loads(pickle.dumps(f)) for f in functions] == functions


def test_a_file_that_is_not_python_by_its_name_is_one_line(tmp_path) -> None:
    """``rewards.txt``: importlib finds no loader for it; said so, rather than an AttributeError."""
    (tmp_path / "rewards.txt").write_text(SCORE)
    with pytest.raises(UserError, match=r"rewards\.txt cannot be loaded as Python$"):
        load_python_function(f"py:{tmp_path / 'rewards.txt'}:score")


def test_an_error_of_several_lines_raised_by_a_file_is_reported_by_its_first(tmp_path) -> None:
    path = tmp_path / "raises.py"
    path.write_text('raise RuntimeError("the first line\\nand a second")\n')
    with pytest.raises(UserError) as info:
        load_python_function(f"py:{path}:score")
    assert str(info.value).endswith(f"importing {path} failed: RuntimeError: the first line")


def test_an_error_of_several_lines_raised_by_a_module_is_reported_by_its_first(tmp_path, monkeypatch) -> None:
    (tmp_path / "zoo_test_raises_module.py").write_text('raise RuntimeError("the first line\\nand a second")\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "zoo_test_raises_module", raising=False)
    with pytest.raises(UserError) as info:
        load_python_function("py:zoo_test_raises_module:score")
    assert str(info.value).endswith("importing zoo_test_raises_module failed: RuntimeError: the first line")


def test_a_coding_line_that_names_no_codec_is_reported_as_python_says_it(tmp_path) -> None:
    """The coding line is the error (not the bytes after it, which that codec might have read)."""
    path = tmp_path / "nocodec.py"
    path.write_bytes(b'# -*- coding: zoo-no-such-codec -*-\nLABEL = "caf\xe9"\n' + SCORE.encode())
    with pytest.raises(UserError) as info:
        load_python_function(f"py:{path}:score")
    assert "unknown encoding: zoo-no-such-codec" in str(info.value) and "byte 0xe9" not in str(info.value)


def test_a_null_byte_in_a_utf8_file_is_named_with_its_line(tmp_path) -> None:
    """Python's error ("source code string cannot contain null bytes") says neither where nor what to do."""
    path = tmp_path / "nul.py"
    path.write_bytes(SCORE.encode() + b"# end\x00\n")
    with pytest.raises(UserError, match=r"nul\.py is not UTF-8 text \(a null byte on line 3\): save it as UTF-8"):
        load_python_function(f"py:{path}:score")


def test_a_module_importing_an_undecodable_one_names_that_ones_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "zoo_test_imports_latin.py").write_text("import zoo_test_latin_dep\n\n\n" + SCORE)
    (tmp_path / "zoo_test_latin_dep.py").write_bytes(b'LABEL = "caf\xe9"\n')
    monkeypatch.chdir(tmp_path)
    for name in ("zoo_test_imports_latin", "zoo_test_latin_dep"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(UserError) as info:
        load_python_function("py:zoo_test_imports_latin:score")
    dep = tmp_path / "zoo_test_latin_dep.py"
    assert f"importing zoo_test_imports_latin: {dep} is not UTF-8 text (byte 0xe9 on line 1)" in str(info.value)


def test_a_module_is_found_in_the_current_directory_which_is_not_left_on_sys_path(tmp_path, monkeypatch) -> None:
    """The console script does not search the current directory; a reward module there is found all the same,
    and the directory is not left on sys.path to shadow other imports later."""
    (tmp_path / "zoo_test_cwd_module.py").write_text(SCORE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "zoo_test_cwd_module", raising=False)
    before = list(sys.path)
    assert load_python_function("py:zoo_test_cwd_module:score")(["p"], ["c"]) == [0.5]
    assert sys.path == before


def test_a_missing_package_is_named_not_the_whole_dotted_name() -> None:
    with pytest.raises(UserError, match=r"no module named 'zoo_no_such_pkg' \(use py:"):
        load_python_function("py:zoo_no_such_pkg.rewards:score")


def test_a_missing_function_lists_only_the_files_own_public_functions(tmp_path) -> None:
    """A function imported into the file (``from os.path import join``) is not one of its rewards."""
    path = tmp_path / "own.py"
    path.write_text(
        "from os.path import join\n\n\ndef b_score(p, c):\n    return []\n\n\ndef a_score(p, c):\n    return []\n"
    )
    with pytest.raises(UserError, match=r"has no 'score' \(its functions: a_score, b_score\)$"):
        load_python_function(f"py:{path}:score")


def test_a_file_without_functions_says_so(tmp_path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("SCALE = 2\n")
    with pytest.raises(UserError, match=r"has no 'score' \(it defines no public function\)$"):
        load_python_function(f"py:{path}:score")


def test_a_function_needing_a_third_argument_is_refused_with_its_signature(tmp_path) -> None:
    path = tmp_path / "three.py"
    path.write_text("def score(prompts, completions, scale):\n    return []\n")
    with pytest.raises(UserError, match=r"score\(prompts, completions, scale\) cannot be called as f\(prompts, comp"):
        load_python_function(f"py:{path}:score")


def test_a_compiled_function_without_a_signature_is_taken_as_it_is(tmp_path) -> None:
    """inspect finds no signature for some C functions (``max``): such a function is not refused when the config
    is checked (what it does with the two lists is checked when it is called)."""
    path = tmp_path / "compiled.py"
    path.write_text("score = max\n")
    assert load_python_function(f"py:{path}:score") is max
