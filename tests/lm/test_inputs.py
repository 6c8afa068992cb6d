"""The user's files a run reads (``rlhf_zoo.inputs``): a ``py:`` reward edited between two runs of the same settings
made two runs that the bench page pooled as seeds of one (proxy reward 306 ± 3892), that resume=true continued, and
that compare pooled."""

from __future__ import annotations

import json

import pytest

from rlhf_zoo.bench.records import check_comparable
from rlhf_zoo.errors import UserError
from rlhf_zoo.inputs import changed, input_digests

REWARD = "def score(prompts, completions):\n    return [{k} * len(c) for c in completions]\n"


def _args(lm_args, reward, run_dir, *extra):
    args = [a for a in lm_args if not a.startswith(("run_dir=", "seed="))]
    return ["train", "algo=reinforce", *args, f"task.proxy=py:{reward}:score", f"run_dir={run_dir}", *extra]


def test_a_digest_follows_the_contents_of_a_file_or_folder_not_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.py").write_text(REWARD.format(k=1))
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "config.json").write_text("{}")
    (tmp_path / "p.jsonl").write_text('{"text": "a"}\n')
    settings = {
        "task.proxy": "py:r.py:score",
        "task.gold": "hf:rm",
        "task.prompts": "p.jsonl",
        "model.name": "zoo-lm",  # a packaged name, not a folder here
        "seed": 0,
    }
    first = input_digests(settings)
    assert sorted(first) == ["task.gold", "task.prompts", "task.proxy"]
    assert input_digests(settings) == first  # the same files, the same digests
    (tmp_path / "r.py").write_text(REWARD.format(k=2))
    (tmp_path / "rm" / "weights.bin").write_bytes(b"\0")
    now = input_digests(settings)
    assert changed(first, now) == ["task.proxy", "task.gold"] and now["task.prompts"] == first["task.prompts"]
    assert changed(first, {}) == [] and input_digests({"task.proxy": "py:my_package.rewards:score"}) == {}
    # a file as the reward loads one: a path without .py is a file too (rewards.python.is_file), a module is not
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "scores").write_text(REWARD.format(k=1))
    assert set(input_digests({"task.proxy": "py:lib/scores:score", "task.gold": "py:r.py"})) == {"task.proxy"}


def test_a_reward_digest_follows_the_modules_beside_it_that_it_imports(tmp_path, monkeypatch):
    """A walkthrough's case: ``rw.py`` imports its scoring from ``helper.py`` beside it; ``helper.py`` edited
    mid-run, ``resume=true`` continued with the new reward (proxy 0.25 at step 0, -100 at step 10)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rw.py").write_text("import os, helper\nfrom pkg.sub import g\n" + REWARD.format(k=1))
    (tmp_path / "helper.py").write_text("from deeper import h\n")
    (tmp_path / "deeper.py").write_text("h = 1\n")
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("g = 1\n")
    (tmp_path / "unrelated.py").write_text("x = 1\n")
    settings = {"task.proxy": "py:rw.py:score"}
    first = input_digests(settings)["task.proxy"]
    for name in ("helper.py", "deeper.py", "pkg/sub/__init__.py"):  # imported, through another module, a package
        before = input_digests(settings)["task.proxy"]
        (tmp_path / name).write_text((tmp_path / name).read_text() + "# edited\n")
        assert input_digests(settings)["task.proxy"] != before, name
    edited = input_digests(settings)["task.proxy"]
    (tmp_path / "unrelated.py").write_text("x = 2\n")  # not imported: not the reward's
    assert input_digests(settings)["task.proxy"] == edited != first
    # a reward importing nothing beside it keeps the digest of its file alone (records made before this compare)
    (tmp_path / "solo").mkdir()
    (tmp_path / "solo" / "r.py").write_text(REWARD.format(k=1))
    (tmp_path / "solo" / "helper.py").write_text("x = 1\n")
    import hashlib

    alone = hashlib.sha256(b"\0" + hashlib.sha256(REWARD.format(k=1).encode()).digest()).hexdigest()[:16]
    assert input_digests({"task.proxy": "py:solo/r.py:score"}) == {"task.proxy": f"sha256:{alone}"}


def test_resume_after_the_reward_file_changed_is_refused(cli, lm_args, tmp_path):
    reward = tmp_path / "r.py"
    reward.write_text(REWARD.format(k=1))
    run = tmp_path / "run"
    code, _, err = cli(*_args(lm_args, reward, run, "train.steps=1"))
    assert code == 0, err
    assert set(json.loads((run / "meta.json").read_text())["inputs"]) == {"task.proxy", "task.prompts"}
    reward.write_text(REWARD.format(k=100))
    code, _, err = cli(*_args(lm_args, reward, run, "train.steps=1", "resume=true"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"resume=true but task.proxy=py:{reward}:score changed since this run started" in err, err
    reward.write_text(REWARD.format(k=1))  # restored: it resumes
    assert cli(*_args(lm_args, reward, run, "train.steps=1", "resume=true"))[0] == 0


def test_compare_and_the_bench_page_refuse_to_pool_across_an_edit(cli, lm_args, tmp_path):
    reward = tmp_path / "r.py"
    reward.write_text(REWARD.format(k=1))
    assert cli(*_args(lm_args, reward, tmp_path / "runs" / "s0", "train.steps=1", "seed=0"))[0] == 0
    reward.write_text(REWARD.format(k=100))
    assert cli(*_args(lm_args, reward, tmp_path / "runs" / "s1", "train.steps=1", "seed=1"))[0] == 0
    code, _, err = cli("compare", str(tmp_path / "runs"))
    assert code == 2 and "read different contents of task.proxy=" in err and "compare them apart" in err, err

    def record(seed, digest):
        member = {"sweep": "r", "value": 1, "knob": "k"}
        return {"id": f"r-s{seed}", "seed": seed, "memberships": [member], "settings": {}, "inputs": digest}

    same, other = {"task.proxy": "sha256:aa"}, {"task.proxy": "sha256:bb"}
    check_comparable([record(0, same), record(1, same), record(2, {})], "mine")  # older records: no digest
    with pytest.raises(UserError, match="r-s0 .seed 0. and r-s1 .seed 1. read different contents of task.proxy"):
        check_comparable([record(0, same), record(1, other)], "mine")


def test_a_bench_record_holds_the_digests_of_its_points_files(lm_args, tmp_path):
    from rlhf_zoo.bench.runner import _head
    from rlhf_zoo.bench.suites import Point
    from rlhf_zoo.config import load_config

    reward = tmp_path / "r.py"
    reward.write_text(REWARD.format(k=1))
    args = [*_args(lm_args, reward, tmp_path / "run")[1:]]
    point = Point("mine", "reinforce-s0", "REINFORCE, seed 0", 0, tuple(a for a in args if not a.startswith("run_dir")))
    head = _head(point, load_config(args), "rlhf-zoo bench suite=mine.yaml", {})
    assert head["inputs"]["task.proxy"] == input_digests({"task.proxy": f"py:{reward}:score"})["task.proxy"]


def _suite_of_a_py_reward(lm_args, tmp_path):
    """``tmp_path/mine.yaml``: one REINFORCE point of one step whose proxy reward is ``tmp_path/r.py`` (returned)."""
    import yaml

    reward = tmp_path / "r.py"
    reward.write_text(REWARD.format(k=1))
    args = dict(a.split("=", 1) for a in lm_args if not a.startswith(("run_dir=", "seed=")))
    suite = {
        "name": "mine",
        "description": "a py: reward",
        "task_args": {**args, "task.proxy": f"py:{reward}:score", "train.steps": 1, "train.eval_every": 1},
        "sweeps": [{"tag": "reinforce", "objective": "R", "algo": "reinforce", "knob": "algo.beta", "values": [0.1]}],
    }
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(suite))
    return reward


def test_a_bench_refuses_to_run_a_seed_beside_records_of_the_reward_before_its_edit(cli, lm_args, tmp_path):
    """The walkthrough's case: a suite run for seed 0, the reward file edited, then ``seeds=1``: seed 1 ran and the
    page pooled the two rewards. Now seed 1 is refused before it runs, naming the file."""
    reward = _suite_of_a_py_reward(lm_args, tmp_path)
    bench = ["bench", f"suite={tmp_path / 'mine.yaml'}", f"out={tmp_path / 'b'}", "progress=false", "render=false"]
    code, _, err = cli(*bench, "seeds=0")
    assert code == 0, err
    reward.write_text(REWARD.format(k=100))
    code, _, err = cli(*bench, "seeds=1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "reinforce-beta0.1-s1 would join the records of reinforce at 0.1 (seed(s) 0) that read other contents" in err
    assert not (tmp_path / "b" / "mine" / "reinforce-beta0.1-s1").exists()


def test_a_bench_refuses_to_keep_a_finished_point_whose_reward_file_changed_and_redo_runs_it_again(
    cli, lm_args, tmp_path
):
    """Every seed finished, then the reward file edited: the bench used to count the points as finished and render
    the old reward's results under the file's name. Now it refuses; redo=true runs them again with the file as it
    is, and a restored file keeps them."""
    reward = _suite_of_a_py_reward(lm_args, tmp_path)
    records = tmp_path / "records"
    bench = ["bench", f"suite={tmp_path / 'mine.yaml'}", f"out={tmp_path / 'b'}", f"records={records}"]
    bench += ["progress=false", "render=false", "seeds=0"]
    assert cli(*bench)[0] == 0
    record = records / "mine" / "reinforce-beta0.1-s0.json"
    before = json.loads(record.read_text())["inputs"]["task.proxy"]
    reward.write_text(REWARD.format(k=100))
    code, _, err = cli(*bench)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"1 finished point(s) (reinforce-beta0.1-s0) read other contents of task.proxy=py:{reward}:score" in err
    assert "redo=true runs them again" in err and json.loads(record.read_text())["inputs"]["task.proxy"] == before
    reward.write_text(REWARD.format(k=1))  # restored: the finished point is kept
    code, out, err = cli(*bench)
    assert code == 0 and "0 point(s) run (0 resumed, 0 redone), 1 already finished" in err, out + err
    reward.write_text(REWARD.format(k=100))
    code, out, err = cli(*bench, "redo=true")
    assert code == 0 and "1 point(s) run (0 resumed, 1 redone), 0 already finished" in err, out + err
    after = json.loads(record.read_text())["inputs"]["task.proxy"]
    assert after == input_digests({"task.proxy": f"py:{reward}:score"})["task.proxy"] != before
    run = json.loads((tmp_path / "b" / "mine" / "reinforce-beta0.1-s0" / "record.json").read_text())
    assert run["inputs"]["task.proxy"] == after
    assert cli(*bench)[0] == 0  # the new record is the file's: nothing to refuse


def test_every_setting_that_names_a_local_file_or_folder_is_digested(tmp_path, monkeypatch):
    """The evaluation prompts and the model's folder are read by path like the reward and the training prompts: an
    edit to either made another run under the same settings."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "python_eval.jsonl").write_text('{"text": "a"}\n')  # a path, though it starts as py: rewards do
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    settings = {"task.eval_prompts": "python_eval.jsonl", "model.name": "model"}
    first = input_digests(settings)
    (tmp_path / "python_eval.jsonl").write_text('{"text": "b"}\n')
    (tmp_path / "model" / "config.json").write_text("[]")
    assert changed(first, input_digests(settings)) == ["task.eval_prompts", "model.name"]


def test_a_folder_digest_follows_where_its_files_are_not_the_order_they_are_listed(tmp_path, monkeypatch):
    """A model folder's files renamed or moved into a subfolder load as another model: another digest. The same files
    written in another order (a folder saved again, a copy), or listed in another order (another machine's
    filesystem, whose bench records share a records folder), are the same contents: the same digest."""
    from pathlib import Path

    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "a" / "x.bin").write_bytes(b"1")
    (tmp_path / "a" / "y.bin").write_bytes(b"2")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.bin").write_bytes(b"2")
    (tmp_path / "b" / "x.bin").write_bytes(b"1")
    (tmp_path / "b" / "sub").mkdir()

    def digest(folder):
        return input_digests({"model.name": str(tmp_path / folder)})["model.name"]

    assert digest("a") == digest("b")
    before = digest("a")
    listed = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: list(listed(self, pattern))[::-1])
    assert digest("a") == before
    monkeypatch.undo()
    (tmp_path / "a" / "x.bin").rename(tmp_path / "a" / "z.bin")
    renamed = digest("a")
    (tmp_path / "a" / "y.bin").rename(tmp_path / "a" / "sub" / "y.bin")  # listed in the same order as before
    assert len({before, renamed, digest("a")}) == 3


def test_names_that_are_no_local_path_are_not_digested(tmp_path, monkeypatch):
    """A hub id too long for a path, an empty ``hf:`` and a ``py:`` module that shares its name with a file here
    name nothing the run reads from this folder: no digest (and no OSError, nor a digest of the whole folder)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scores").write_text(REWARD.format(k=1))  # a file here; py:scores:score imports the module scores
    settings = {"model.name": "org/" + "x" * 5000, "task.gold": "hf:", "task.proxy": "py:scores:score"}
    assert input_digests(settings) == {}


def test_a_path_is_digested_as_the_run_reads_it(tmp_path, monkeypatch):
    """From the home folder (``~/``), and with spaces around it (a swept list's ``a.py, b.py``): the reward and the
    prompts read them so."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.py").write_text(REWARD.format(k=1))
    (tmp_path / "p.jsonl").write_text('{"text": "a"}\n')
    for proxy, prompts in (("py:~/r.py:score", "~/p.jsonl"), (" py:r.py:score ", "p.jsonl")):
        assert set(input_digests({"task.proxy": proxy, "task.prompts": prompts})) == {"task.proxy", "task.prompts"}


def test_one_relative_name_from_two_folders_is_two_files(tmp_path, monkeypatch):
    """``py:r.py:score`` run from two folders (a bench run from each of two projects in one process) reads two files:
    their digests differ even where the files have the same size and time."""
    import os

    digests = []
    for k, folder in enumerate(("one", "two")):
        (tmp_path / folder).mkdir()
        reward = tmp_path / folder / "r.py"
        reward.write_text(REWARD.format(k=k + 1))
        os.utime(reward, ns=(10**18, 10**18))
        monkeypatch.chdir(tmp_path / folder)
        digests.append(input_digests({"task.proxy": "py:r.py:score"})["task.proxy"])
    assert digests[0] != digests[1]


def test_a_file_replaced_by_one_of_its_time_but_not_its_size_is_digested_again(tmp_path):
    """``tar x``, ``cp -p`` and ``rsync -t`` give a file its old modification time: the new contents still count."""
    import os

    reward = tmp_path / "r.py"
    reward.write_text(REWARD.format(k=1))
    os.utime(reward, ns=(10**18, 10**18))
    first = input_digests({"task.proxy": f"py:{reward}:score"})
    reward.write_text(REWARD.format(k=100))
    os.utime(reward, ns=(10**18, 10**18))
    assert changed(first, input_digests({"task.proxy": f"py:{reward}:score"})) == ["task.proxy"]


def test_a_page_drawn_after_the_reward_file_changed_says_which_records_read_it_before(cli, lm_args, tmp_path):
    """render_only=true draws the page from the records as they are, and counted a point whose record read the
    reward file before its edit among the planned points that have records, without a word (a bench refuses to
    keep it). The points line now says so; restored, the file's records are counted plainly again."""
    reward = _suite_of_a_py_reward(lm_args, tmp_path)
    bench = ["bench", f"suite={tmp_path / 'mine.yaml'}", f"out={tmp_path / 'b'}", f"docs={tmp_path / 'docs'}"]
    bench += ["progress=false", "seeds=0"]
    assert cli(*bench, "render=false")[0] == 0
    page = tmp_path / "docs" / "mine.md"
    reward.write_text(REWARD.format(k=100))
    code, _, err = cli(*bench, "render_only=true")
    assert code == 0, err
    text = page.read_text()
    assert "1 of the 1 planned points have records (1 of them read other contents of " in text, text
    assert f"task.proxy=py:{reward}:score than it has now: a bench refuses to keep them, redo=true runs" in text
    reward.write_text(REWARD.format(k=1))
    assert cli(*bench, "render_only=true")[0] == 0
    text = page.read_text()
    assert "1 of the 1 planned points have records" in text and "read other contents" not in text
