"""``rlhf-zoo export``: a language-model run's policy as a plain Hugging Face model folder."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy
from rlhf_zoo.runlog import RunLog

IDS = torch.tensor([[5, 17, 42, 8, 99, 3]])


def _train(cli, lm_args, *extra):
    code, _, err = cli("train", *lm_args, *extra)
    assert code == 0, err
    return next(a.partition("=")[2] for a in lm_args if a.startswith("run_dir="))


def _trained_policy(run_dir, finetune):
    """The run's policy rebuilt the way a resume builds it: the tiny model, then the checkpoint."""
    pol = build_hf_policy(HFPolicyConfig(name="tiny", finetune=finetune, max_new_tokens=8), seed=0)
    pol.load_state_dict(RunLog(run_dir).load_checkpoint()[0])
    return pol


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits.float()


@pytest.mark.parametrize(("algo", "finetune"), [("jbond", "lora"), ("reinforce", "full")])
def test_the_exported_folder_is_the_trained_policy_without_peft_or_the_anchor(cli, lm_args, tmp_path, algo, finetune):
    """J-BOND's LoRA run has two adapters (π's and the anchor's, which differs from π): the folder is π
    alone; full fine-tuning's is the trained model. Either way not the reference it started from."""
    run_dir = _train(cli, lm_args, f"algo={algo}", f"model.finetune={finetune}", "train.lr=3e-2")
    out = tmp_path / "exported"
    code, said, err = cli("export", run_dir, f"out={out}")
    assert (code, err) == (0, ""), err  # transformers' "Writing model shards" bar silenced, as for every model built
    assert f"at step 3 of 3 to {out}" in said

    exported = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in exported.named_parameters())
    pol = _trained_policy(run_dir, finetune)
    with pol._role("policy") as model:
        trained = _logits(model)
    with pol._role("ref") as model:
        reference = _logits(model)
    # Merging rounds W + (α / r)·B·A in float32 (measured: 2e-5 apart), far below the training's move (2.6 here).
    assert (_logits(exported) - trained).abs().max() < 1e-3
    assert (trained - reference).abs().max() > 0.5
    if algo == "jbond":
        with pol._role("anchor") as model:
            assert (_logits(model) - trained).abs().max() > 0.5  # merging the anchor too would show
    assert AutoTokenizer.from_pretrained(out)("the film").input_ids == pol.tokenizer("the film").input_ids
    meta = json.loads((out / "rlhf_zoo_export.json").read_text())
    assert (meta["algo"], meta["step"], meta["finetune"], meta["model"]) == (algo, 3, finetune, "tiny")


def test_a_run_whose_prompt_file_is_gone_still_exports(cli, lm_args, prompts_file, tmp_path):
    """The policy is the model's settings and the checkpoint; a run's prompts are not needed any more."""
    moved = tmp_path / "prompts.jsonl"
    moved.write_text(prompts_file.read_text())
    args = [a if not a.startswith("task.prompts=") else f"task.prompts={moved}" for a in lm_args]
    run_dir = _train(cli, args, "algo=reinforce", "train.steps=1")
    moved.unlink()
    code, _, err = cli("export", run_dir, f"out={tmp_path / 'm'}")
    assert code == 0, err
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_force_replaces_an_earlier_export_and_never_a_folder_of_other_files(cli, lm_args, tmp_path):
    """force=true emptied whatever folder out= named: a folder of runs and notes, exported into by mistake, lost
    them all. It now replaces only an earlier export (its rlhf_zoo_export.json); other files are refused even so."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    out = tmp_path / "m"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for force in ([], ["force=true"]):
        code, _, err = cli("export", run_dir, f"out={out}", *force)
        assert (code, err.count("\n")) == (2, 1), err
        assert "holds files that are not an earlier export (no rlhf_zoo_export.json" in err and "another folder" in err
        assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert cli("export", run_dir, f"out={out}")[0] == 0  # an empty folder is written into
    code, _, err = cli("export", run_dir, f"out={out}")
    assert (code, err.count("\n")) == (2, 1) and "holds an earlier export" in err and "force=true" in err, err
    (out / "config.json").write_text("{}")  # an export changed by hand: force=true replaces the whole of it
    code, _, err = cli("export", run_dir, f"out={out}", "force=true")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text()) != {} and (out / "rlhf_zoo_export.json").is_file()


def test_bad_exports_are_one_line_each(cli, lm_args, tmp_path):
    exact_run = tmp_path / "exact"
    code, _, err = cli(
        "train", "algo=reinforce", "task=exact", "train.steps=1", "train.progress=false", f"run_dir={exact_run}"
    )
    assert code == 0, err
    bon_args = [a if not a.startswith("run_dir=") else f"run_dir={tmp_path / 'bon'}" for a in lm_args]
    bon_run = _train(cli, bon_args, "algo=best_of_n", "train.steps=1")
    lm_run = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    (RunLog(lm_run).dir / "checkpoint" / "state.pt").unlink()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("foo: 1\n")  # not a run's: its error must not ask export for algo=NAME
    out = f"out={tmp_path / 'm'}"
    cases = [
        ((str(foreign), out), f"{foreign / 'config.yaml'} is not a run's configuration"),
        ((str(exact_run), out), "task=exact"),
        ((lm_run, out), "has no checkpoint (none written yet"),  # not a sweep's point
        ((bon_run, out), "ran algo=best_of_n, which trains no policy"),  # not "a sweep deletes its checkpoints"
        ((str(tmp_path), out), "is not a run directory"),
        ((str(tmp_path / "nosuch"), out), "nosuch: no such run directory"),
        ((lm_run,), "out=DIR"),
        ((lm_run, str(exact_run), out), "name one run directory, got 2"),
        ((lm_run, out, "outt=x"), "unknown option 'outt'"),
    ]
    for args, needle in cases:
        code, _, err = cli("export", *args)
        assert (code, err.count("\n")) == (2, 1), (args, err)
        assert needle in err, (args, err)
    assert not (tmp_path / "m").exists()


def test_out_never_replaces_the_run_or_its_checkpoint(cli, lm_args, tmp_path):
    """force=true replaces a folder: not the run being exported, a folder holding it, or its checkpoint, nor writes into
    the checkpoint (a folder there would go with the next checkpoint's swap)."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    for out in (run_dir, tmp_path, f"{run_dir}/checkpoint", f"{run_dir}/checkpoint/../.", f"{run_dir}/checkpoint/m"):
        code, _, err = cli("export", run_dir, f"out={out}", "force=true")
        assert (code, err.count("\n")) == (2, 1), (out, err)
        assert "would replace the run" in err, (out, err)
    assert (tmp_path / "run" / "config.yaml").is_file() and RunLog(run_dir).has_checkpoint()


def test_a_sweep_point_keeps_its_checkpoint_for_export_only_when_asked(cli, lm_args, tmp_path):
    """A sweep deletes its finished points' checkpoints (a full fine-tuning one is large), as a bench does, unless
    given keep_checkpoints=true: export says so of a point without one, and exports a point of a sweep given it (a
    sweep had no such option, so no sweep point could be exported)."""
    code, _, err = cli("train", *lm_args, "algo=reinforce", "train.steps=1", "seed=0,1")
    assert code == 0, err
    point = next((tmp_path / "run").glob("*-s0"))
    code, _, err = cli("export", str(point), f"out={tmp_path / 'm'}")
    assert (code, err.count("\n")) == (2, 1), err
    assert "has no checkpoint" in err and "keep_checkpoints=true" in err, err
    assert "a sweep and rlhf-zoo bench delete their finished points' checkpoints unless" in err, err  # a word was lost
    args = [a for a in lm_args if not a.startswith("run_dir=")]
    code, _, err = cli("train", *args, "algo=reinforce", "train.steps=1", "seed=0,1", f"out={tmp_path}/kept",
                       "keep_checkpoints=true")  # fmt: skip
    assert code == 0, err
    code, said, err = cli("export", str(tmp_path / "kept" / point.name), f"out={tmp_path / 'm'}")
    assert code == 0 and "at step 1 of 1" in said and (tmp_path / "m" / "model.safetensors").is_file(), err


def test_a_checkpoint_set_aside_by_a_kill_mid_swap_is_exported(cli, lm_args, tmp_path):
    """A run killed between the two renames of a checkpoint swap has its checkpoint under
    ``.checkpoint.old-*/`` until ``resume=true`` puts it back; export reads it there (it said "no checkpoint")."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    aside = RunLog(run_dir).dir / ".checkpoint.old-x1"
    aside.mkdir()
    (RunLog(run_dir).dir / "checkpoint").rename(aside / "checkpoint")
    code, said, err = cli("export", run_dir, f"out={tmp_path / 'm'}")
    assert code == 0, err
    assert "at step 1 of 1" in said and (tmp_path / "m" / "model.safetensors").is_file()
    assert (aside / "checkpoint" / "state.pt").is_file()  # read where it lies: putting it back is the run's


def test_the_printed_load_line_names_the_folder_written(cli, lm_args, tmp_path, monkeypatch):
    """out=~/m is written to $HOME/m; the line to copy names that folder (from_pretrained reads '~/m' as a hub id)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    code, said, err = cli("export", run_dir, "out=~/m")
    assert code == 0, err
    assert f"from_pretrained({str(tmp_path / 'm')!r})" in said, said
    assert (tmp_path / "m" / "config.json").is_file()


def test_an_interrupted_run_exports_the_step_it_stopped_at(cli, lm_args, tmp_path):
    """Its checkpoint's step, not train.steps: the folder is π where the run stopped."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build
    from tests.runtime.resume_helpers import interrupt_after

    cfg = load_config([*lm_args, "algo=reinforce"])
    interrupt_after(Trainer(cfg, *build(cfg)), stop_after=1)
    code, said, err = cli("export", cfg.run_dir, f"out={tmp_path / 'm'}")
    assert code == 0, err
    assert "at step 1 of 3" in said, said
    assert json.loads((tmp_path / "m" / "rlhf_zoo_export.json").read_text())["step"] == 1


def test_the_folder_samples_the_policy_at_its_temperature_without_a_top_k(cli, lm_args, tmp_path):
    """π is softmax(logits / τ) over the whole vocabulary, nucleus top_p: generate(do_sample=True) on the
    folder must draw from it, not from transformers' defaults (τ = 1 and the 50 likeliest tokens)."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1", "model.temperature=0.7")
    code, _, err = cli("export", run_dir, f"out={tmp_path / 'm'}")
    assert code == 0, err
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    gen = exported.generation_config
    assert (gen.do_sample, gen.temperature, gen.top_p, gen.max_new_tokens) == (True, 0.7, 1.0, 8)
    assert json.loads((tmp_path / "m" / "rlhf_zoo_export.json").read_text())["chat_template"] is False
    torch.manual_seed(0)
    first = exported.generate(IDS[:, :3].repeat(2000, 1), max_new_tokens=1)[:, 3]
    assert len(set(first.tolist())) > 50  # the tiny model's 512 tokens are nearly uniform: far more than 50 drawn


def test_an_export_under_a_launch_of_several_processes_is_refused(cli, lm_args, tmp_path, monkeypatch):
    """Every process of a torchrun or accelerate launch would write (and swap in) the same folder."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = cli("export", run_dir, f"out={tmp_path / 'm'}")
    assert (code, err.count("\n")) == (2, 1) and "not under a launch of 2" in err, err
    assert not (tmp_path / "m").exists()


def test_the_folder_and_its_record_as_a_user_reads_them(cli, lm_args, tmp_path, monkeypatch, capsys):
    """Paths given with ``~`` (run and out, by the command and the API), an empty folder made beforehand, files
    readable by all (safetensors writes its own 0600), the record of the run's absolute folder and seed, and
    generation at the run's top_p; a folder under a file is refused in one line before anything loads."""
    import os
    import stat

    from rlhf_zoo import export

    monkeypatch.setenv("HOME", str(tmp_path))
    args = [a for a in lm_args if not a.startswith("seed=")]
    _train(cli, args, "algo=reinforce", "train.steps=1", "seed=3", "model.top_p=0.9")
    (tmp_path / "m").mkdir()  # empty: no force needed
    mask = os.umask(0o022)
    try:
        code, _, err = cli("export", "~/run", "out=~/m")
        meta = export.export("~/m/../run", "~/api")  # recorded as the run's folder itself
    finally:
        os.umask(mask)
    assert code == 0, err
    for folder in (tmp_path / "m", tmp_path / "api"):
        assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o644}  # 0o666 under umask 022
        record = json.loads((folder / "rlhf_zoo_export.json").read_text())
        assert (record["run_dir"], record["seed"]) == (str((tmp_path / "run").resolve()), 3)
        assert AutoModelForCausalLM.from_pretrained(folder).generation_config.top_p == 0.9
    assert meta == record
    (tmp_path / "a file").write_text("")
    capsys.readouterr()  # the loads' bars above
    code, _, err = cli("export", "~/run", f"out={tmp_path / 'a file' / 'm'}")
    assert (code, err.count("\n")) == (2, 1) and "cannot be written" in err, err


def test_an_export_naming_no_run_directory_is_one_line(cli, tmp_path):
    """``rlhf-zoo export out=DIR`` without the run: the usage line, not an IndexError's traceback."""
    code, _, err = cli("export", f"out={tmp_path / 'm'}")
    assert (code, err.count("\n")) == (2, 1), err
    assert "name one run directory, got 0" in err and "rlhf-zoo export RUN_DIR out=DIR" in err
    assert not (tmp_path / "m").exists()


def test_the_record_says_whether_the_runs_prompts_went_through_the_chat_template(cli, lm_args, tmp_path):
    """A user of the folder must wrap prompts as the run did: ``chat_template`` is the run's own setting (the tiny
    model has no template to train with, so the run's config.yaml is set to one that used it, as a SmolLM2 run's)."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    config = RunLog(run_dir).dir / "config.yaml"
    assert config.read_text().count("chat_template: false") == 1
    config.write_text(config.read_text().replace("chat_template: false", "chat_template: true"))
    code, _, err = cli("export", run_dir, f"out={tmp_path / 'm'}")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "rlhf_zoo_export.json").read_text())["chat_template"] is True


def test_a_checkpoint_deleted_between_the_look_and_the_read_is_one_line(cli, lm_args, tmp_path, monkeypatch):
    """A sweep deletes its finished point's checkpoint while export starts: the look finds it, the read does not
    (``read_checkpoint`` gives None). That is the one line of a run without a checkpoint, not a TypeError's traceback,
    and nothing is written."""
    run_dir = _train(cli, lm_args, "algo=reinforce", "train.steps=1")
    monkeypatch.setattr(RunLog, "read_checkpoint", lambda self, device=None: None)
    code, _, err = cli("export", run_dir, f"out={tmp_path / 'm'}")
    assert (code, err.count("\n")) == (2, 1) and "has no checkpoint" in err, err
    assert not (tmp_path / "m").exists()
