"""``rlhf-zoo export RUN_DIR out=DIR``: a trained language-model policy as a Hugging Face model folder.

The folder holds π at the run's checkpoint (the last one: the end of a finished run, or where an
interrupted one stopped) as a plain causal LM: with LoRA the policy's adapter is merged into the base
weights (W₀ + BA of Hu et al. 2021, arXiv 2106.09685, Eq. 3, BA scaled by α / r as in their §4.1) and
the anchor's adapter, if any, is dropped, so that ``AutoModelForCausalLM.from_pretrained(DIR)`` needs
neither PEFT nor rlhf_zoo. Its ``generation_config`` samples π: ``do_sample`` at the run's temperature and
top_p over the whole vocabulary (transformers would otherwise keep the 50 likeliest tokens), up to the run's
``max_new_tokens``; greedy decoding is ``do_sample=False``. Beside the weights and the tokenizer,
``rlhf_zoo_export.json`` says which run and which step they come from, and whether its prompts went through
the chat template (``chat_template``).

The testbed's tabular policy (``task=exact``) has no model to export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhf_zoo.errors import UserError

if TYPE_CHECKING:
    from rlhf_zoo.policies.hf.config import HFPolicyConfig
    from rlhf_zoo.runlog import RunLog

EXPORT_META = "rlhf_zoo_export.json"


@dataclass
class ExportOptions:
    """Options of ``rlhf-zoo export RUN_DIR``.

    Attributes:
        out: the model folder to write (created; its parent folders too).
        force: replace ``out`` if it holds an earlier export (its ``rlhf_zoo_export.json``); a folder of other
            files is refused even so, since replacing it would delete them.
    """

    out: str = ""
    force: bool = False


def _run_dir(args: list[str]) -> Path:
    runs = [a for a in args if "=" not in a]
    if len(runs) != 1:
        raise UserError(f"export: name one run directory, got {len(runs)}: rlhf-zoo export RUN_DIR out=DIR")
    run = Path(runs[0]).expanduser()
    if not run.exists():
        raise UserError(f"export: {runs[0]}: no such run directory")
    if not (run / "config.yaml").is_file():
        raise UserError(f"export: {runs[0]} is not a run directory (no config.yaml in it)")
    return run


def _no_checkpoint(run_dir: Path) -> UserError:
    from rlhf_zoo.bench.records import STARTED

    if (run_dir / STARTED).is_file():  # a sweep's or a bench's point
        why = "a sweep and rlhf-zoo bench delete their finished points' checkpoints unless given keep_checkpoints=true"
    else:  # killed (or still running) before its first
        why = "none written yet: a run writes one every train.checkpoint_every steps, at its end and when stopped"
    return UserError(f"export: {run_dir} has no checkpoint ({why})")


def export(run_dir: str | Path, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Write the policy of ``run_dir``'s checkpoint to ``out`` (see the module's docstring); returns what
    ``rlhf_zoo_export.json`` holds. Raises :class:`UserError` for a run without a checkpoint, a trained policy or
    a language model, for an ``out`` that holds an earlier export (unless ``force``), and for one that is the run,
    holds it or lies in its checkpoint, or holds other files (whatever ``force`` says)."""
    from rlhf_zoo import version
    from rlhf_zoo.config import as_dataclass
    from rlhf_zoo.runlog import RunLog, checkpoint_to_resume

    run_dir, out = Path(run_dir).expanduser(), Path(out).expanduser()
    cfg = _exportable_config(run_dir)
    log = RunLog(run_dir)
    if not checkpoint_to_resume(run_dir):  # in place, or set aside by a swap that a kill cut short
        raise _no_checkpoint(run_dir)
    _check_out(out, run_dir, log.ckpt_dir, force)
    model_cfg = as_dataclass(cfg, "model")
    model, tokenizer, step = _trained_model(model_cfg, int(cfg.seed), run_dir, log)
    meta = {
        "run_dir": str(run_dir.resolve()),
        "step": step,
        "steps": int(cfg.train.steps),
        "algo": cfg.algo.name,
        "task": cfg.task.name,
        "model": model_cfg.name,
        "finetune": model_cfg.finetune,
        "chat_template": model_cfg.chat_template,  # the run's prompts were one user turn of the tokenizer's template
        "seed": int(cfg.seed),
        "rlhf_zoo": version(),
    }
    _write(out, model, tokenizer, meta)
    return meta


def _exportable_config(run_dir: Path) -> Any:
    """The run's configuration, refused (:class:`UserError`) unless it trained a language model's policy.

    Composed, not validated as a run to start: its prompt file or gold reward may be gone since, and only the
    model's settings (validated by HFPolicyConfig) and the checkpoint make the policy."""
    from rlhf_zoo.algorithms.registry import get_algorithm
    from rlhf_zoo.config import compose
    from rlhf_zoo.tasks.registry import get_task_entry

    try:
        cfg = compose([f"config={run_dir / 'config.yaml'}"])
    except UserError as e:  # its own advice (algo=NAME, a key to fix) is not export's options
        raise UserError(f"export: {run_dir / 'config.yaml'} is not a run's configuration: {e}") from None
    if not get_task_entry(cfg.task.name).uses_model:
        raise UserError(f"export: {run_dir} ran task={cfg.task.name}, whose tabular policy is not a language model")
    if not get_algorithm(cfg.algo.name).trainable:
        raise UserError(
            f"export: {run_dir} ran algo={cfg.algo.name}, which trains no policy: it samples the reference model "
            f"(model.name={cfg.model.name})"
        )
    return cfg


def _check_out(out: Path, run_dir: Path, ckpt_dir: Path, force: bool) -> None:
    """Refuse an ``out`` that cannot be written, that is the run, holds it or lies in its checkpoint, that holds
    files other than an earlier export's (whatever ``force`` says), or an earlier export (unless ``force``)."""
    from rlhf_zoo.config import check_writable_dir

    check_writable_dir(out, "out")
    where, run = out.resolve(), run_dir.resolve()
    if where == run or where in run.parents or where.is_relative_to(ckpt_dir.resolve()):
        raise UserError(f"export: out={out} would replace the run {run_dir} or its checkpoint: name another folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / EXPORT_META).is_file():  # replacing the folder would delete them: runs, sweeps, notes
        raise UserError(
            f"export: out={out} holds files that are not an earlier export (no {EXPORT_META} in it): name another "
            "folder (force=true replaces only an earlier export)"
        )
    if not force:
        raise UserError(f"export: out={out} holds an earlier export: name another folder, or add force=true")


def _trained_model(model_cfg: HFPolicyConfig, seed: int, run_dir: Path, log: RunLog) -> tuple[Any, Any, int]:
    """(model, tokenizer, step) of the run's checkpoint: a LoRA policy merged into its model, sampling set as the
    run sampled."""
    import torch

    from rlhf_zoo.policies.hf import build_hf_policy

    policy = build_hf_policy(model_cfg, device="cpu", seed=seed)
    loaded = log.read_checkpoint(torch.device("cpu"))  # both files of one checkpoint, though a run saves meanwhile
    if loaded is None:  # gone since the look before (a sweep deleting its finished point's)
        raise _no_checkpoint(run_dir)
    weights, state = loaded
    policy.load_state_dict(weights)
    model = policy.model
    if model_cfg.finetune == "lora":
        model = model.merge_and_unload(adapter_names=["default"])  # the anchor's adapter goes with the rest
    # generate() samples π: softmax(logits / τ), nucleus top_p, the whole vocabulary (not transformers' top_k=50)
    # and, by default, as many new tokens as the run's completions had (transformers' default: 20 in all)
    model.generation_config.update(
        do_sample=True,
        temperature=model_cfg.temperature,
        top_p=model_cfg.top_p,
        top_k=0,
        max_new_tokens=model_cfg.max_new_tokens,
    )
    return model, policy.tokenizer, int(state["step"])


def _write(out: Path, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
    """The model, its tokenizer and ``meta`` into ``out`` at once (:func:`rlhf_zoo.io.atomic_dir`), readable by all."""
    from rlhf_zoo.hub import quiet_transformers
    from rlhf_zoo.io import atomic_dir, atomic_write_json, umask_mode

    with atomic_dir(out) as tmp:
        with quiet_transformers():  # its "Writing model shards" bar
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / EXPORT_META, meta)
        for file in tmp.iterdir():  # safetensors writes its file private (0600); a model folder is to share
            file.chmod(umask_mode(0o666))


def main(args: list[str]) -> int:
    from rlhf_zoo.options import split_options
    from rlhf_zoo.runtime import launched_world_size

    if (world := launched_world_size()) > 1:  # every process would write the same folder
        raise UserError(f"export runs in one process, not under a launch of {world}: run it without the launcher")
    run = _run_dir(args)
    opts, unknown = split_options([a for a in args if "=" in a], ExportOptions, "export")
    if unknown:
        raise UserError(f"export: unknown option {unknown[0].partition('=')[0]!r}; known: out=DIR, force=true|false")
    if not opts.out:
        raise UserError("export: name the model folder to write: out=DIR")
    out = Path(opts.out).expanduser()  # the folder written, as from_pretrained must be given it (no ~)
    meta = export(run, out, opts.force)
    print(
        f"exported {meta['model']} ({meta['finetune']}) of {run} at step {meta['step']} of {meta['steps']} to "
        f"{out}: load it with AutoModelForCausalLM.from_pretrained({str(out)!r})"
    )
    return 0
