"""The one-line YAML checks of :mod:`rlhf_zoo.io` beyond ``test_io_signals``: what is not a cycle, a key twice
under a key that is not text, and a loader error that carries no position."""

from __future__ import annotations

import pytest
import yaml

from rlhf_zoo import io


@pytest.mark.parametrize(
    "text",
    [
        "base: &b {lr: 1}\nrun1: *b\nrun2: *b\n",  # one anchor used twice: shared, not a cycle
        "a: &x [1, 2]\nb: [*x, *x]\n",
        "a: &x {k: {m: 1}}\nb: {c: *x, d: *x}\n",
    ],
)
def test_an_anchor_used_more_than_once_is_no_cycle(text):
    assert io.yaml_problem(text) is None


def test_a_structure_that_holds_itself_is_named_by_the_aliass_path_or_as_the_file():
    assert io.yaml_problem("&x [*x]\n") == "[0] holds itself (an alias inside what it names, line 1)"
    assert io.yaml_problem("a:\n  - &x {b: [*x]}\n") == "a[0].b[0] holds itself (an alias inside what it names, line 2)"
    assert io.yaml_problem("&m {? [k] : *m}\n") == "the file holds itself (an alias inside what it names, line 1)"


def test_a_key_twice_under_a_key_that_is_not_text_is_found():
    text = "? [a, b]\n: {c: 1, c: 2}\n"
    assert io.yaml_problem(text) == "key 'c' appears twice (line 2; first at line 2)"


def test_a_key_twice_deep_in_a_list_of_lists_is_named_by_its_path():
    text = "grid:\n  - [1]\n  - - x: 1\n      x: 2\n"
    assert io.yaml_problem(text) == "key 'grid[1][0].x' appears twice (line 4; first at line 3)"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (yaml.YAMLError(), "YAMLError"),
        (yaml.YAMLError("  \n"), "YAMLError"),
        (yaml.YAMLError("first line\nsecond line"), "YAMLError: first line"),
        (ValueError("bad value"), "ValueError: bad value"),
    ],
)
def test_an_error_without_a_position_is_its_kind_and_first_line(error, said):
    assert io.yaml_error(error) == said


def test_a_position_without_a_problem_is_not_reported_as_a_syntax_error():
    class Marked(yaml.YAMLError):
        problem_mark = yaml.Mark("f", 0, 3, 4, None, None)
        problem = None

    assert io.yaml_error(Marked("cannot read it")) == "Marked: cannot read it"
