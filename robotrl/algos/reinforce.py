"""REINFORCE with a learned state-value baseline (Williams 1992; the policy-gradient theorem of Sutton et al.
1999): grad J = E[grad log pi(a_t|s_t) (G_t - V(s_t))], G_t the Monte-Carlo return to the episode's end.

One policy-gradient step per rollout; the baseline V is regressed on the same returns for value_epochs full-batch
steps. An episode still running when the rollout ends has its return completed with V of the next observation
(and a time limit with V of the final one, as every loop here does), so make rollout_steps several horizons long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robotrl.algos.common import adam, gradient_step
from robotrl.algos.policy_gradient import (
    PG_ADAM_EPS,
    GaussianActorCritic,
    PolicyGradientConfig,
    advantage_batch,
    log_prob_entropy,
    set_lr,
    standardized,
    value_loss,
)


@dataclass
class REINFORCEConfig(PolicyGradientConfig):
    """REINFORCE hyperparameters: Monte-Carlo returns (lambda fixed at 1), Adam for policy and baseline."""

    lr: float = 1e-3
    """Adam learning rate of the policy."""
    value_lr: float = 1e-3
    """Adam learning rate of the baseline."""
    value_epochs: int = 10
    """Full-batch regression steps of the baseline per rollout."""
    max_grad_norm: float = 0.0
    """Clip the policy gradient's global norm to this (0: the plain estimator)."""


class REINFORCEAgent(GaussianActorCritic):
    STATE = ("actor", "critic", "policy_optimizer", "value_optimizer")

    def __init__(self, obs_dim: int, action_dim: int, cfg: REINFORCEConfig, seed: int = 0, device: str = "cpu"):
        self.cfg = cfg
        self._build_networks(obs_dim, action_dim, cfg, device)
        self.policy_optimizer = adam(list(self.actor.parameters()), cfg.lr, eps=PG_ADAM_EPS)
        self.value_optimizer = adam(list(self.critic.parameters()), cfg.value_lr, eps=PG_ADAM_EPS)

    def update(self, rollout: Any) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        lr = set_lr(self.policy_optimizer, cfg.lr, rollout.progress, cfg.lr_anneal)
        batch = advantage_batch(rollout, cfg.gamma, 1.0, self.device)  # G_t - V(s_t)
        advantages = standardized(batch.advantages) if cfg.normalize_advantage else batch.advantages
        log_prob, entropy = log_prob_entropy(self.actor, batch.obs, batch.actions)
        policy_loss = -(log_prob * advantages).mean()
        gradient_step(self.policy_optimizer, policy_loss, cfg.max_grad_norm)
        for _ in range(cfg.value_epochs):
            v_loss = value_loss(self.critic, batch)
            gradient_step(self.value_optimizer, v_loss)
        return {"policy_loss": policy_loss.detach(), "value_loss": v_loss.detach(), "entropy": entropy.mean().detach(),
                "lr": torch.tensor(lr), "log_std": self.actor.log_std.detach().mean()}
