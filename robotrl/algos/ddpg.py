"""DDPG — Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv 1509.02971).

Deterministic actor mu(s), critic Q(s, a), Ornstein-Uhlenbeck exploration, Polyak-averaged
target actor and critic. Observations arrive already normalised; actions live in [-1, 1].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from robotrl.nets import DeterministicActor, QCritic
from robotrl.noise import make_noise
from robotrl.replay import Batch
from robotrl.targets import bellman_target, polyak_update


@dataclass
class DDPGConfig:
    """DDPG hyperparameters; defaults are the paper's (section 7 / supplementary)."""

    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.001
    """Polyak weight of the online network in the target update."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic."""
    critic_weight_decay: float = 1e-2
    """L2 weight decay on the critic (Adam's weight_decay)."""
    actor_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer widths of the actor."""
    critic_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer widths of the critic."""
    critic_layer_norm: bool = False
    """LayerNorm before each hidden ReLU of the critic (not in the paper; a stabiliser)."""
    noise: Literal["ou", "gaussian", "none"] = "ou"
    """Exploration noise added to mu(s) in the normalised action space."""
    noise_sigma: float = 0.2
    """Noise scale (OU sigma, or the Gaussian's standard deviation)."""
    ou_theta: float = 0.15
    """OU mean-reversion rate."""
    ou_dt: float = 1.0
    """OU time step."""


def critic_loss(critic: nn.Module, target_critic: nn.Module, target_actor: nn.Module, batch: Batch,
                gamma: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L = E[(Q(s, a) - y)^2], y = r + gamma (1 - terminated) Q'(s', mu'(s'))  (paper eq. 4-5)."""
    with torch.no_grad():
        next_q = target_critic(batch.next_obs, target_actor(batch.next_obs))
        y = bellman_target(batch.reward, batch.terminated, gamma, next_q)
    q = critic(batch.obs, batch.action)
    loss = (q - y).pow(2).mean()
    return loss, {"critic_loss": loss.item(), "q_mean": q.mean().item()}


def actor_loss(actor: nn.Module, critic: nn.Module, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Deterministic policy gradient (paper eq. 6): maximise Q(s, mu(s)), i.e. minimise -Q.

    The critic is evaluated with detached parameters so this loss never writes critic gradients.
    """
    frozen = {name: p.detach() for name, p in critic.named_parameters()}
    q = torch.func.functional_call(critic, frozen, (obs, actor(obs)))
    loss = -q.mean()
    return loss, {"actor_loss": loss.item()}


class DDPGAgent:
    def __init__(self, obs_dim: int, action_dim: int, cfg: DDPGConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.actor = DeterministicActor(obs_dim, action_dim, cfg.actor_hidden).to(self.device)
        self.critic = QCritic(obs_dim, action_dim, cfg.critic_hidden, layer_norm=cfg.critic_layer_norm).to(self.device)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr,
                                           weight_decay=cfg.critic_weight_decay)
        self.noise = make_noise(cfg.noise, action_dim, cfg.noise_sigma, cfg.ou_theta, cfg.ou_dt, seed)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        action = self.actor(torch.as_tensor(obs, dtype=torch.float32, device=self.device)).cpu().numpy()
        if explore and self.noise is not None:
            action = action + self.noise.sample()
        return np.clip(action, -1.0, 1.0)

    def reset_episode(self) -> None:
        if self.noise is not None:
            self.noise.reset()

    def update(self, batch: Batch) -> dict[str, float]:
        loss_q, info = critic_loss(self.critic, self.target_critic, self.target_actor, batch, self.cfg.gamma)
        self.critic_opt.zero_grad(set_to_none=True)
        loss_q.backward()
        self.critic_opt.step()

        loss_pi, info_pi = actor_loss(self.actor, self.critic, batch.obs)
        self.actor_opt.zero_grad(set_to_none=True)
        loss_pi.backward()
        self.actor_opt.step()

        polyak_update(self.critic, self.target_critic, self.cfg.tau)
        polyak_update(self.actor, self.target_actor, self.cfg.tau)
        self.updates += 1
        return {**info, **info_pi}

    def policy(self) -> nn.Module:
        """Deterministic normalised-obs -> action in [-1, 1]."""
        return self.actor

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "target_actor": self.target_actor.state_dict(), "target_critic": self.target_critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "noise": self.noise.state_dict() if self.noise is not None else {}, "updates": self.updates,
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        for name in ("actor", "critic", "target_actor", "target_critic", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(sd[name])
        if self.noise is not None:
            self.noise.load_state_dict(sd["noise"])
        self.updates = sd["updates"]
