"""A2C — synchronous advantage actor-critic (Mnih et al. 2016, arXiv 1602.01783; the synchronous form of A3C).

N environments step together for T steps; the advantages are n-step returns minus V (gae_lambda 1, each cut at
the rollout's end by V of the next observation) or GAE(lambda); one gradient step per rollout on
    L = -E[log pi(a|s) A] + vf_coef E[(V(s) - R)^2] - ent_coef E[H(pi(.|s))]
with RMSprop (the paper's optimiser; alpha 0.99, eps 1e-5 as SB3's A2C).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from robotrl.algos.common import gradient_step
from robotrl.algos.policy_gradient import (
    GaussianActorCritic,
    PolicyGradientConfig,
    advantage_batch,
    log_prob_entropy,
    set_lr,
    standardized,
    value_loss,
)


@dataclass
class A2CConfig(PolicyGradientConfig):
    """A2C hyperparameters; the defaults are SB3's A2C (lr 7e-4, n-step advantages, no advantage normalisation)."""

    lr: float = 7e-4
    """RMSprop learning rate."""
    gae_lambda: float = 1.0
    """1: n-step returns minus V (Mnih et al.); below 1, GAE(lambda)."""
    normalize_advantage: bool = False
    """Standardise the rollout's advantages."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    rmsprop_alpha: float = 0.99
    """RMSprop smoothing constant."""


class A2CAgent(GaussianActorCritic):
    STATE = ("actor", "critic", "optimizer")

    def __init__(self, obs_dim: int, action_dim: int, cfg: A2CConfig, seed: int = 0, device: str = "cpu"):
        self.cfg = cfg
        self._build_networks(obs_dim, action_dim, cfg, device)
        self.params = list(itertools.chain(self.actor.parameters(), self.critic.parameters()))
        self.optimizer = torch.optim.RMSprop(self.params, lr=cfg.lr, alpha=cfg.rmsprop_alpha, eps=1e-5)

    def update(self, rollout: Any) -> dict[str, torch.Tensor]:
        lr = set_lr(self.optimizer, self.cfg.lr, rollout.progress, self.cfg.lr_anneal)
        loss, metrics = self.loss(rollout)
        gradient_step(self.optimizer, loss, self.cfg.max_grad_norm)
        return {**metrics, "lr": torch.tensor(lr)}

    def loss(self, rollout: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L of the module docstring on one rollout, and its parts."""
        cfg = self.cfg
        batch = advantage_batch(rollout, cfg.gamma, cfg.gae_lambda, self.device)
        advantages = standardized(batch.advantages) if cfg.normalize_advantage else batch.advantages
        log_prob, entropy = log_prob_entropy(self.actor, batch.obs, batch.actions)
        policy_loss = -(log_prob * advantages).mean()
        v_loss = value_loss(self.critic, batch)
        loss = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy.mean()
        return loss, {"policy_loss": policy_loss.detach(), "value_loss": v_loss.detach(),
                      "entropy": entropy.mean().detach(), "log_std": self.actor.log_std.detach().mean()}
