"""Weight copies held while training: LoRA keeps one copy of the base weights (reference = adapters
off, anchor = a second adapter); full fine-tuning holds at most three (policy, reference, anchor)."""

import gc

import pytest
import torch
from torch._subclasses.fake_tensor import is_fake

from rlhf_zoo.config import load_config
from rlhf_zoo.train import Trainer, build


def _weight_copies(trainer, shape: torch.Size) -> int:
    """Distinct live tensors of the embedding matrix's shape, not counting the optimiser's moments
    and gradients (those belong to the optimiser, not to a copy of the model)."""
    excluded = set()
    for state in trainer.opt.state.values():
        excluded |= {v.data_ptr() for v in state.values() if torch.is_tensor(v)}
    excluded |= {p.grad.data_ptr() for p in trainer.policy.trainable_parameters() if p.grad is not None}
    gc.collect()
    # Fake tensors (torch.compile's tracing, kept alive by an earlier compiled test in the same process)
    # have no storage: they are no copy, and data_ptr() raises on them.
    real = [obj for obj in gc.get_objects() if torch.is_tensor(obj) and not is_fake(obj)]
    ptrs = {obj.data_ptr() for obj in real if obj.shape == shape and obj.data_ptr() not in excluded}
    return len(ptrs)


@pytest.mark.parametrize(
    ("algo", "finetune", "copies"),
    [("jbond", "full", 3), ("reinforce", "full", 2), ("jbond", "lora", 1), ("bond", "lora", 1)],
)
def test_weight_copies_while_training(algo, finetune, copies, lm_args):
    cfg = load_config([f"algo={algo}", f"model.finetune={finetune}", *lm_args])
    algorithm, task, policy = build(cfg)
    trainer = Trainer(cfg, algorithm, task, policy)
    trainer.train_step()
    trainer.train_step()  # the anchor exists (J-BOND's EMA / BOND's first cache draw) after a step
    shape = policy.model.get_input_embeddings().weight.shape
    per_model = len({p.data_ptr() for p in policy.model.parameters() if p.shape == shape})  # embeddings, lm head
    assert _weight_copies(trainer, shape) == copies * per_model
