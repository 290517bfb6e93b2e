"""A3C — asynchronous advantage actor-critic (Mnih et al. 2016, arXiv 1602.01783, Algorithm S3).

Actor-learner workers each step their own environments with their own copy of the parameters, compute the
gradient of A2C's loss (robotrl.algos.a2c) on their own rollout and hand it over; the learner applies every gradient
to the shared parameters as it arrives, with RMSprop statistics shared by all workers (the paper's "Shared RMSProp",
its most robust variant), and gives that worker the new parameters. A gradient is as many updates stale as other
workers' gradients arrived while it was computed. The workers run on Ray (robotrl.distributed.a3c); the loss,
optimiser and hyperparameters are A2C's, so one worker with A2C's rollout reproduces A2C's update exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robotrl.algos.a2c import A2CAgent, A2CConfig
from robotrl.algos.common import clipped_step
from robotrl.algos.policy_gradient import set_lr


@dataclass
class A3CConfig(A2CConfig):
    """A3C hyperparameters: A2C's (the paper's RMSprop, n-step returns by default); each worker's rollout is
    rollout_steps x n_envs steps (the paper's t_max on one env is rollout_steps with n_envs 1)."""


class A3CAgent(A2CAgent):
    STATE = ("actor", "critic", "optimizer", "updates")
    ACTING = ("actor", "critic")  # what a worker is sent: it acts and computes its gradient with both

    def __init__(self, obs_dim: int, action_dim: int, cfg: A3CConfig, seed: int = 0, device: str = "cpu"):
        super().__init__(obs_dim, action_dim, cfg, seed, device)
        self.updates = 0

    def gradients(self, rollout: Any) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """A worker's part: d L / d theta on its own rollout (not applied), and the loss's parts."""
        loss, metrics = self.loss(rollout)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self.params]
        self.optimizer.zero_grad(set_to_none=True)
        return grads, metrics

    def apply(self, grads: list[torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        """The learner's part: one RMSprop step on the shared parameters with a worker's gradient (clipped to
        max_grad_norm, as A2C clips its own)."""
        lr = set_lr(self.optimizer, self.cfg.lr, progress, self.cfg.lr_anneal)
        for param, grad in zip(self.params, grads, strict=True):
            param.grad = grad.to(param.device)
        clipped_step(self.optimizer, self.cfg.max_grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        return {"lr": torch.tensor(lr)}
