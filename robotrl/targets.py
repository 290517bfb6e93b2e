"""Target-network and Bellman-target helpers shared by every algorithm."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- tau * online + (1 - tau) * target, for parameters and float buffers.

    tau is the weight of the online network: tau=1 copies it, tau=0 leaves the target unchanged.
    """
    online_tensors = list(online.parameters()) + [b for b in online.buffers() if b.is_floating_point()]
    target_tensors = list(target.parameters()) + [b for b in target.buffers() if b.is_floating_point()]
    if tau == 1.0:
        torch._foreach_copy_(target_tensors, online_tensors)
    else:
        torch._foreach_lerp_(target_tensors, online_tensors, tau)


def bellman_target(reward: torch.Tensor, terminated: torch.Tensor, gamma: float,
                   next_value: torch.Tensor) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * V(s').

    Only true termination cuts the bootstrap; time-limit truncation keeps it (the caller stores
    `terminated`, not `done`).
    """
    return reward + gamma * (1.0 - terminated) * next_value
