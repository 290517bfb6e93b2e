"""DDPG — Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv 1509.02971).

Deterministic actor mu(s), critic Q(s, a), Ornstein-Uhlenbeck exploration, Polyak-averaged
target actor and critic. Observations arrive already normalised; actions live in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from robotrl.algos.common import NoiseConfig, NoisyDeterministicAgent, adam, gradient_step, target_copy
from robotrl.nets import DeterministicActor, QCritic
from robotrl.noise import make_noise
from robotrl.replay import Batch
from robotrl.targets import bellman_target, deterministic_policy_loss, polyak_update, q_regression_loss


@dataclass
class DDPGConfig(NoiseConfig):
    """DDPG hyperparameters. tau, the learning rates, the 400-300 widths, OU noise (sigma 0.2, theta 0.15) and the
    critic's weight decay 1e-2 are the paper's (section 7 / supplementary). Where this code departs from it: the
    action enters Q at the input layer (the paper: at the second hidden layer), the weight decay is Adam's L2 term
    on every critic parameter, biases included, and the batch size is the loop's `batch_size` (default 256; the
    paper used 64: task cards set it)."""

    tau: float = 0.001
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    actor_hidden: tuple[int, ...] = (400, 300)
    critic_hidden: tuple[int, ...] = (400, 300)
    noise: Literal["ou", "gaussian", "none"] = "ou"
    noise_sigma: float = 0.2
    critic_weight_decay: float = 1e-2
    """L2 weight decay on the critic (Adam's weight_decay: every critic parameter, biases included)."""
    critic_layer_norm: bool = False
    """LayerNorm before each hidden ReLU of the critic (not in the paper; a stabiliser)."""


def critic_loss(critic: nn.Module, target_critic: nn.Module, target_actor: nn.Module, batch: Batch,
                gamma: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = E[(Q(s, a) - y)^2], y = r + gamma (1 - terminated) Q'(s', mu'(s'))  (paper eq. 4-5)."""
    with torch.no_grad():
        y = bellman_target(batch.reward, batch.terminated, batch.bootstrap_discount(gamma),
                           target_critic(batch.next_obs, target_actor(batch.next_obs)))
    return q_regression_loss(critic, batch.obs, batch.action, y)


actor_loss = deterministic_policy_loss  # paper eq. 6


class DDPGAgent(NoisyDeterministicAgent):
    STATE = ("actor", "critic", "target_actor", "target_critic", "actor_opt", "critic_opt", "noise", "updates")
    ACTING = ("actor",)

    def __init__(self, obs_dim: int, action_dim: int, cfg: DDPGConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.actor = DeterministicActor(obs_dim, action_dim, cfg.actor_hidden).to(self.device)
        self.critic = QCritic(obs_dim, action_dim, cfg.critic_hidden, layer_norm=cfg.critic_layer_norm).to(self.device)
        self.target_actor, self.target_critic = target_copy(self.actor), target_copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr,
                                           weight_decay=cfg.critic_weight_decay)
        self.noise = make_noise(cfg.noise, action_dim, cfg.noise_sigma, cfg.ou_theta, cfg.ou_dt, seed)
        self.updates = 0

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss_q, info = critic_loss(self.critic, self.target_critic, self.target_actor, batch, self.cfg.gamma)
        gradient_step(self.critic_opt, loss_q)

        loss_pi, info_pi = actor_loss(self.actor, self.critic, batch.obs)
        gradient_step(self.actor_opt, loss_pi)

        polyak_update(self.critic, self.target_critic, self.cfg.tau)
        polyak_update(self.actor, self.target_actor, self.cfg.tau)
        self.updates += 1
        return {**info, **info_pi}
