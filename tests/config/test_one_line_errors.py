"""Bad input through the command line ends in one line on stderr and exit code 2, never a traceback."""

import errno
import os
import signal

import pytest

from rlhf_zoo import cli

LM = ["train", "algo=reinforce", "task=sentiment", "model.name=tiny", "task.gold=null", "train.steps=1"]


def _one_line(capsys, code):
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("name", "content", "column"),
    [("empty.jsonl", "", "text"), ("header.csv", "text\n", "text"), ("blank.txt", "\n\n  \n", "text")],
)
def test_a_prompt_file_without_prompts(tmp_path, capsys, name, content, column):
    path = tmp_path / name
    path.write_text(content)
    code = cli.main([*LM, f"task.prompts={path}", f"task.prompt_column={column}", f"run_dir={tmp_path}/r"])
    assert name in _one_line(capsys, code)


@pytest.mark.parametrize(
    ("name", "content", "shown"),
    [
        ("p.json", '"one review"', ' holds one JSON string ("one review"), not prompts: write a list of them'),
        ("p.json", "3.5", " holds one JSON number (3.5), not prompts"),
        ("p.json", "null", " holds one JSON null, not prompts"),
        ("p.json", "[]", " holds no prompts (it holds [])"),  # datasets: 'Instruction "train" corresponds to no data!'
        ("p.json", "{}", " holds no prompts (it holds {})"),
        ("p.jsonl", "null", ": line 1 holds a JSON null, not a record: write one object per line"),
        ("p.jsonl", '{"text": "a b"}\n\n"c d"', ': line 3 holds a JSON string ("c d"), not a record'),
        ("p.jsonl", '{"text": "a b"}\n[1]', ": line 2 holds a JSON list ([1]), not a record"),
        ("p.jsonl", '{"text": "a b"}\n{"text": "c', ": line 2 is not JSON (JSON parse error: Unterminated string"),
    ],
)
def test_a_json_prompt_file_of_other_values_than_records_names_what_and_where(tmp_path, capfd, name, content, shown):
    """A .json file of one string, or a .jsonl line that is one, said pyarrow's "JSON parse error: Column() changed
    from object to string in row 0", with rows counted from 0; and null crashed datasets (a segmentation fault)."""
    path = tmp_path / name
    path.write_text(content + "\n")
    code = cli.main([*LM, f"task.prompts={path}", f"run_dir={tmp_path}/r"])
    err = _one_line(capfd, code)
    assert f"task.prompts={path}{shown}" in err, err


@pytest.mark.parametrize("where", ["/proc/no/such/dir", "file"])
def test_a_run_dir_that_cannot_be_written(tmp_path, capsys, where):
    if where == "file":
        where = tmp_path / "a_file"
        where.write_text("x")
    code = cli.main(["train", "algo=reinforce", f"run_dir={where}"])
    assert "run_dir" in _one_line(capsys, code)


def test_a_prompt_file_that_does_not_parse_says_why(tmp_path, capfd):
    """A JSONL file with a broken line: the error line said only "DatasetGenerationError: An error occurred
    while generating the dataset"; why (the JSON parse error and its row) was in a log line of datasets, which
    then came before the error line as a second line ("Failed to load JSON from file ...")."""
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a fine prompt"}\n{bad json\n')
    code = cli.main([*LM, f"task.prompts={path}", f"run_dir={tmp_path}/r"])
    line = _one_line(capfd, code)  # the file descriptor: datasets' log handler holds the stderr it started with
    assert line.startswith("rlhf-zoo: error:") and "broken.jsonl" in line and "JSON parse error" in line, line


@pytest.mark.parametrize(
    ("arg", "needle"),
    [
        ("steps=10", "unknown key 'steps'; did you mean train.steps?"),
        ("beta=0.5", "unknown key 'beta'; did you mean algo.beta?"),
        ("lr=1e-3", "unknown key 'lr'; did you mean train.lr?"),
        # the key of that last part, not the near spellings of it (train.eval_samples, train.save_samples)
        ("samples=8", "unknown key 'samples'; did you mean algo.samples?"),
        ("trian.steps=3", "unknown key 'trian.steps'; did you mean train.steps?"),
        ("nothing_like_it=1", "unknown key 'nothing_like_it'; the top-level keys are"),
        # misspelt: these listed the top-level keys, not the one meant
        ("sed=1,2", "unknown key 'sed'; did you mean seed"),
        ("threds=1", "unknown key 'threds'; did you mean threads?"),
        ("stepz=10", "unknown key 'stepz'; did you mean train.steps?"),
        ("evalevery=5", "unknown key 'evalevery'; did you mean train.eval_every?"),
    ],
)
def test_an_unknown_top_level_key_suggests_the_dotted_key(tmp_path, capsys, arg, needle):
    """``steps=10`` said only "Key 'steps' is not in struct"; the key the user meant is train.steps."""
    code = cli.main(["train", "algo=bond", "task=exact", arg, f"run_dir={tmp_path}/r"])
    assert needle in _one_line(capsys, code)


def test_an_unknown_top_level_key_in_an_experiment_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text("task: exact\nsteps: 10\n")
    code = cli.main(["train", "algo=bond", f"config={path}", f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert f"config={path}" in err and "unknown key 'steps'; did you mean train.steps?" in err, err


@pytest.mark.parametrize("arg", ["model.name=tiny", "model.lora_r=4", "model=tiny"])
def test_a_model_setting_on_a_task_without_a_model_is_refused(tmp_path, capsys, arg):
    """``model.*`` on the testbed said "Key 'model' is not in struct", as if model were no key at all."""
    code = cli.main(["train", "algo=bond", "task=exact", arg, f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert "task exact has no language model" in err and arg.split("=")[0] in err, err


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["compare", "no\nsuch"], "compare: no\\nsuch is not a run directory"),
        (["train", "algo=bond", "task=exact", "train.stepz\x1b[31m=3"], "stepz\\x1b"),
        (["bench", "suite=exact", "render_only=true", "docs=d\rX"], "d\\rX"),
    ],
)
def test_control_characters_of_a_user_value_are_escaped_in_the_error_line(tmp_path, capsys, monkeypatch, args, shown):
    """A newline in a user's value split the error line in two, and an escape character reached the terminal."""
    monkeypatch.chdir(tmp_path)
    code = cli.main(args)
    err = _one_line(capsys, code)
    assert shown in err and "\x1b" not in err and "\r" not in err, repr(err)


def test_list_refuses_an_argument_in_one_line(capsys):
    """``rlhf-zoo list x`` printed every list and exited 0; list takes no argument."""
    from rlhf_zoo import cli

    code = cli.main(["list", "x"])
    out, err = capsys.readouterr()
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert "'x'" in err and "algorithms, presets, tasks and rewards" in err


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["compare", "runs", "out="], "compare: out is empty (out=)"),
        (["bench", "suite=exact", "out="], "bench: out is empty (out=)"),
        (["train", "algo=bond", "task=exact", "seed=0,1", "out="], "out is empty (out=)"),
        (["train", "algo=bond", "task=exact", "seed=0,1", "run_dir="], "run_dir is empty (run_dir=)"),
        (["train", "algo=bond", "task=exact", "run_dir="], "run_dir is empty"),
        (["train", "algo=bond", "task=exact", "seed="], "seed is empty (seed= or a YAML null): give it an integer"),
        (["train", "config=exp.yaml"], "train.steps is empty (train.steps= or a YAML null): give it an integer"),
    ],
)
def test_an_empty_value_is_said_empty_not_taken_for_the_default(tmp_path, capsys, monkeypatch, args, shown):
    """``out=$DIR`` with DIR unset: compare printed its table and wrote nothing, bench wrote into the current
    folder, a sweep into its default folder; ``seed=`` or a YAML null said "Incompatible value 'None' for field
    of type 'int'"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.yaml").write_text("algo: bond\ntask: exact\ntrain:\n  steps:\n")
    code = cli.main(args)
    err = _one_line(capsys, code)
    assert shown in err and "Incompatible" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]  # nothing written


def test_an_unknown_command_is_an_error_line(capsys):
    """``rlhf-zoo trian`` printed "rlhf-zoo: unknown command ...", without the ``error:`` of every other
    user error."""
    code = cli.main(["trian", "algo=bond"])
    err = _one_line(capsys, code)
    assert err.startswith("rlhf-zoo: error: unknown command 'trian'; known: train,"), err


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["algo=bond", "task=sentiment", "model.dtype=float8"], "model.dtype must be float32, bfloat16 or float16"),
        (["algo=bond", "task=sentiment", "model.top_p=2"], "model.top_p must lie in (0, 1]"),
        (["algo=bond", "task=exact", "algo.beta=-1"], "algo.beta must lie in [0, 1], got -1.0"),
        (["algo=jbond", "task=exact", "algo.gamma=-2"], "algo.gamma must be >= 0, got -2.0"),
        # one key and its value, not every setting of the check ("algo.samples and k must be >= 1, anchor_period >= 0",
        # "samples must be >= 1 and swap_period >= 0" for algo.samples=0)
        (["algo=bond", "task=exact", "algo.k=0"], "algo.k must be >= 1, got 0\n"),
        (["algo=jbond", "task=exact", "algo.samples=0"], "algo.samples must be >= 1, got 0\n"),
        (["algo=jbond", "task=exact", "algo.swap_period=-1"], "algo.swap_period must be >= 0, got -1\n"),
        (["algo=reinforce", "task=exact", "algo.baseline=group_norm", "algo.samples=1"], "algo.baseline=group_norm"),
        (["algo=bond", "task=exact", "algo.n=1"], "algo.n must be >= 2 for BOND, got 1"),
        # the task's own refusals said "task: num_prompts must be >= 1"
        (["algo=bond", "task=exact", "task.num_prompts=0"], "task.num_prompts must be >= 1"),
        (["algo=bond", "task=exact", "task.vocab_size=99"], "task.vocab_size must lie in [2, 27]"),
    ],
)
def test_a_refused_value_names_its_key_with_its_section(tmp_path, capsys, args, shown):
    """``model.dtype=float8`` said "dtype must be ...", ``algo.beta=-1`` "algo: beta must ...": not the key the
    user wrote, as every other error line does; and not the value refused (in a sweep, which of its values)."""
    code = cli.main(["train", *args, f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert f"rlhf-zoo: error: {shown}" in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("arg", "shown"),
    [
        (
            "task.proxy=hf:",
            "task.proxy takes a text, but its value reads as a YAML mapping ({'hf': None}; a ':' at its end",
        ),
        ("task.gold=hf: x", "task.gold takes a text, but its value reads as a YAML mapping ({'hf': 'x'}"),
        (
            "task.proxy=[vader]",
            "task.proxy takes a text, but its value reads as a YAML list (['vader']; [...] makes one)",
        ),
    ],
)
def test_a_text_setting_that_reads_as_yaml_says_so(tmp_path, capsys, arg, shown):
    """``task.proxy=hf:$MODEL`` with MODEL unset said "Cannot convert 'DictConfig' to string: '{'hf': None}'"."""
    code = cli.main(["train", "algo=reinforce", "task=sentiment", "model.name=tiny", arg, f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert shown in err and "Cannot convert" not in err, err


@pytest.mark.parametrize(
    ("arg", "shown"),
    [
        (
            "model.lora_target_modules=q_proj",
            "model.lora_target_modules takes a list: write it in brackets, model.lora_target_modules=[q_proj]",
        ),
        ("model.lora_target_modules=3", "model.lora_target_modules=[3]"),
    ],
)
def test_a_list_setting_given_one_value_says_to_write_a_list(tmp_path, capsys, arg, shown):
    """``model.lora_target_modules=q_proj`` said "Invalid value assigned: str is not a TupleConfig, ListConfig,
    list, or tuple"."""
    code = cli.main(["train", "algo=reinforce", "task=sentiment", "model.name=tiny", arg, f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert shown in err and "TupleConfig" not in err, err


def _command_raising(monkeypatch, error):
    def command(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "list", command)
    return cli.main(["list"])


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_full_or_read_only_disk_is_one_line_naming_the_file(monkeypatch, capsys, number):
    code = _command_raising(monkeypatch, OSError(number, os.strerror(number), "/data/run/metrics.jsonl"))
    err = _one_line(capsys, code)
    assert err.strip() == f"rlhf-zoo: error: cannot write /data/run/metrics.jsonl ({os.strerror(number)})"


def test_another_os_error_is_not_said_to_be_a_full_disk(monkeypatch):
    """A failure the user cannot fix by freeing space (a bug, a vanished device) keeps its traceback."""
    with pytest.raises(OSError, match="Input/output error"):
        _command_raising(monkeypatch, OSError(errno.EIO, "Input/output error"))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_outside_training_ends_the_command_with_its_own_code_and_name(monkeypatch, capsys, signum, code):
    from rlhf_zoo.signals import StopSignal

    assert _command_raising(monkeypatch, StopSignal(signum)) == code
    assert capsys.readouterr().err.strip() == f"rlhf-zoo: interrupted ({signal.Signals(signum).name})"


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (
            ["algo=bond", "task=exact", "train=5"],
            "train is a group of settings, not one value (5): set each as train.KEY=VALUE "
            "(`rlhf-zoo fields train` lists them)",
        ),
        (["algo=bond", "task=exact", "train=[1]"], "train is a group of settings, not one value ([1])"),
        (["algo=bond", "task=exact", "train="], "train is a group of settings, not one value ()"),
        (
            ["algo=reinforce", "task=sentiment", "model=tiny"],
            "model is a group of settings, not one value (tiny): set each as model.KEY=VALUE (did you mean "
            "model.name=tiny?)",
        ),
        (
            ["algo=reinforce", "task=sentiment", "model.name=tiny", "task.proxy_options=5"],
            "task.proxy_options is a group of settings, not one value (5): set each as task.proxy_options.KEY=VALUE",
        ),
    ],
)
def test_a_group_of_settings_given_one_value_says_so(tmp_path, capsys, args, shown):
    """``train=5`` said "Merge error: int is not a subclass of TrainConfig. value: 5", ``model=tiny`` (for
    model.name=tiny) "Merge error: str is not a subclass of HFPolicyConfig", ``train=`` "field 'train' is not
    Optional" and ``task.proxy_options=5`` "Cannot assign int to Dict[str, Any]"."""
    code = cli.main(["train", *args, f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert f"rlhf-zoo: error: {shown}" in err, err
    assert not (tmp_path / "r").exists()


def test_a_group_of_settings_given_one_value_in_an_experiment_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text("algo: bond\ntask: exact\ntrain: 5\n")
    code = cli.main(["train", f"config={path}", f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert f"config={path}: train is a group of settings, not one value (5)" in err, err


@pytest.mark.parametrize("value", ["none", "None", "false"])
def test_no_gold_written_as_python_would_says_null(tmp_path, capsys, value):
    """``task.gold=None`` said only "unknown reward 'None': known rewards are ...": not how to have none."""
    code = cli.main([*LM, f"task.gold={value}", f"run_dir={tmp_path}/r"])
    err = _one_line(capsys, code)
    assert err.strip().endswith("; to evaluate no gold reward: task.gold=null"), err


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["train.progress=2"], "train.progress is true or false, got '2'"),
        (["resume=5"], "resume is true or false, got '5'"),
        (["resume=maybe"], "resume is true or false, got 'maybe'"),
    ],
)
def test_a_boolean_setting_takes_only_true_or_false(tmp_path, capsys, args, shown):
    """OmegaConf takes any integer for a boolean: train.progress=2 and resume=5 ran as true."""
    code = cli.main(["train", "algo=bond", "task=exact", "train.steps=1", *args, f"run_dir={tmp_path}/r"])
    assert shown in _one_line(capsys, code)


def test_a_boolean_setting_of_an_experiment_file_takes_only_true_or_false(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: bond\ntrain:\n  steps: 1\n  progress: 2\n")
    code = cli.main(["train", f"config={exp}", f"run_dir={tmp_path}/r"])
    assert f"config={exp}: train.progress is true or false, got 2" in _one_line(capsys, code)
    for given in ("yes", "0", "false"):  # what a person writes for one: run as before
        exp.write_text(f"algo: bond\ntrain:\n  steps: 1\n  progress: {given}\n")
        assert cli.main(["train", f"config={exp}", f"run_dir={tmp_path}/r{given}"]) == 0


def test_a_resume_without_the_runs_settings_says_how_to_resume_with_them(tmp_path, capsys):
    """``rlhf-zoo train run_dir=DIR resume=true`` said only "name an algorithm: algo=NAME ...", though the user
    meant the run in DIR, whose settings it saved."""
    run = [f"run_dir={tmp_path}/r", "train.steps=1", "train.eval_every=1", "train.progress=false", "threads=1"]
    assert cli.main(["train", "algo=reinforce", "task=exact", *run]) == 0
    capsys.readouterr()
    err = _one_line(capsys, cli.main(["train", f"run_dir={tmp_path}/r", "resume=true"]))
    assert "name an algorithm" in err, err
    assert f"to resume {tmp_path}/r with the settings it saved: rlhf-zoo train config={tmp_path}/r/config.yaml" in err
    # without resume=true no resume was asked for (a new run's algorithm forgotten, say): the error alone
    err = _one_line(capsys, cli.main(["train", f"run_dir={tmp_path}/r"]))
    assert "name an algorithm" in err and "to resume" not in err, err
    # a run directory that holds no run: nothing to point to
    err = _one_line(capsys, cli.main(["train", f"run_dir={tmp_path}/none", "resume=true"]))
    assert "name an algorithm" in err and "to resume" not in err, err


def test_a_batch_whose_prompts_alone_exceed_the_memory_is_refused_before_it_starts(tmp_path, capsys, monkeypatch):
    """train.batch_prompts=10**12 on the testbed grew the step's prompt list until the system killed the process
    (exit 137, nothing said). 16 bytes a prompt are the least a step's prompt list and epoch orders take (8 each):
    on a machine said to hold 1 GiB, 2**26 prompts fit that bound and one more does not."""
    from rlhf_zoo import config

    monkeypatch.setattr(config, "physical_memory", lambda: 2**30)
    args = ["train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r"]
    code = cli.main([*args, f"train.batch_prompts={2**26 + 1}"])
    line = _one_line(capsys, code)
    assert f"train.batch_prompts={2**26 + 1}: a step's prompts alone take at least 1.0 GiB" in line
    assert "this machine's 1.0 GiB of memory: lower train.batch_prompts" in line
    config.validate(config.compose(["algo=reinforce", "task=exact", f"train.batch_prompts={2**26}"]))
    monkeypatch.setattr(config, "physical_memory", lambda: None)  # a system that does not say: nothing refused
    config.validate(config.compose(["algo=reinforce", "task=exact", f"train.batch_prompts={2**40}"]))


class _Writes:
    """A stderr that records each write call (an unbuffered stderr, PYTHONUNBUFFERED=1: each goes to the file)."""

    def __init__(self):
        self.calls: list[str] = []

    def write(self, text):
        self.calls.append(text)
        return len(text)

    def flush(self):
        pass


@pytest.mark.parametrize(
    "say",
    [
        lambda: cli.main(["train", "steps=10"]),  # a refusal, which every process of a launch prints at once
        lambda: cli.main(["nosuchcommand"]),
        lambda: cli._stopped(KeyboardInterrupt()),
        lambda: cli._lost_process_ends("rlhf-zoo: error: the other process of this run (rank 1) stopped", 1),
    ],
)
def test_an_error_line_is_written_with_its_newline_in_one_write(monkeypatch, say):
    """Under a launch the processes print their lines into one file at the same moment: with an unbuffered stderr,
    print's two writes (the text, then the newline) let two lines join on one (`...continuerlhf-zoo: SIGINT ...`)."""
    err = _Writes()
    monkeypatch.setattr("sys.stderr", err)
    say()
    assert err.calls and all(c.startswith("rlhf-zoo: ") and c.endswith("\n") for c in err.calls), err.calls
