"""TD3 — Twin Delayed DDPG (Fujimoto, van Hoof, Meger 2018, arXiv 1802.09477).

DDPG plus three fixes for overestimation: clipped double Q (min of two critics in the target),
target policy smoothing (clipped Gaussian noise on mu'(s')), and delayed actor/target updates.
It shares the target and loss helpers with DDPG (robotrl.targets) and the twin critic with SAC.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robotrl import targets  # the same Bellman/loss helpers as DDPG, called with TD3's arguments
from robotrl.algos.common import NoiseConfig, NoisyDeterministicAgent, adam, gradient_step, target_copy
from robotrl.nets import DeterministicActor, TwinQ
from robotrl.noise import make_noise
from robotrl.replay import Batch


@dataclass
class TD3Config(NoiseConfig):
    """TD3 hyperparameters; the inherited defaults (tau 0.005, lr 3e-4, 256-256, Gaussian 0.1) are the
    paper's (section 6.1, with the authors' 2018 code)."""

    policy_delay: int = 2
    """Actor and target networks step once per this many critic updates."""
    target_noise: float = 0.2
    """Std of the target policy smoothing noise, in normalised action units."""
    target_noise_clip: float = 0.5
    """Per-dimension clip of the smoothing noise."""


def critic_loss(critic: nn.Module, target_critic: nn.Module, target_actor: nn.Module, batch: Batch,
                cfg: TD3Config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """y = r + gamma (1 - terminated) min_i Q'_i(s', clip(mu'(s') + clip(eps, -c, c), -1, 1))  (paper eq. 10, 14)."""
    with torch.no_grad():
        next_action = targets.smoothed_target_action(target_actor, batch.next_obs, cfg.target_noise,
                                                     cfg.target_noise_clip)
        next_q = target_critic(batch.next_obs, next_action).min(dim=0).values
        y = targets.bellman_target(batch.reward, batch.terminated, batch.bootstrap_discount(cfg.gamma), next_q)
    return targets.q_regression_loss(critic, batch.obs, batch.action, y)


class TD3Agent(NoisyDeterministicAgent):
    STATE = ("actor", "critic", "target_actor", "target_critic", "actor_opt", "critic_opt", "noise", "updates")
    ACTING = ("actor",)

    def __init__(self, obs_dim: int, action_dim: int, cfg: TD3Config, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        # PyTorch's default init everywhere, as the authors' code (no DDPG-style 3e-3 output layers)
        self.actor = DeterministicActor(obs_dim, action_dim, cfg.actor_hidden, final_init=None).to(self.device)
        self.critic = TwinQ(obs_dim, action_dim, cfg.critic_hidden, final_init=None).to(self.device)
        self.target_actor, self.target_critic = target_copy(self.actor), target_copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.noise = make_noise(cfg.noise, action_dim, cfg.noise_sigma, cfg.ou_theta, cfg.ou_dt, seed)
        self.updates = 0

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss_q, info = critic_loss(self.critic, self.target_critic, self.target_actor, batch, self.cfg)
        gradient_step(self.critic_opt, loss_q)
        self.updates += 1
        if self.updates % self.cfg.policy_delay == 0:
            loss_pi, info_pi = targets.deterministic_policy_loss(self.actor, self.critic, batch.obs)
            gradient_step(self.actor_opt, loss_pi)
            targets.polyak_update(self.critic, self.target_critic, self.cfg.tau)
            targets.polyak_update(self.actor, self.target_actor, self.cfg.tau)
            info.update(info_pi)
        return info
