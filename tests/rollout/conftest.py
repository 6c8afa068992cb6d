import pytest
import torch

from tests.tasks import brute_force as bf


@pytest.fixture
def three_roles(exact_task):
    """A testbed policy whose three roles differ: π_ref, then π_anchor (a copy of a moved π), then π
    moved again."""
    policy = bf.perturbed(exact_task, seed=10)
    policy.update_anchor(1.0)
    with torch.no_grad():
        policy.logits.add_(0.5 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(11)))
    return policy
