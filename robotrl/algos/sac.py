"""SAC — Soft Actor-Critic with learned temperature (Haarnoja et al. 2018, arXiv 1801.01290, 1812.05905).

Squashed-Gaussian actor trained through the reparameterisation trick, twin Q with the minimum in the
soft target, and a temperature alpha tuned so the policy's entropy tracks -|A|. Shares the twin critic
with TD3 and the target helpers with every algorithm (robotrl.targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robotrl.algos.common import ActorCriticConfig, AgentState, adam, gradient_step, target_copy
from robotrl.nets import SquashedGaussianActor, TwinQ
from robotrl.replay import Batch
from robotrl.targets import bellman_target, frozen, polyak_update, q_regression_loss


@dataclass
class SACConfig(ActorCriticConfig):
    """SAC hyperparameters; the inherited defaults (lr 3e-4, 256-256, tau 0.005) are the paper's (Table 1)."""

    alpha_lr: float = 3e-4
    """Adam learning rate of log(alpha)."""
    init_alpha: float = 1.0
    """Initial temperature."""
    learn_alpha: bool = True
    """Tune alpha toward the target entropy (paper 1812.05905, eq. 18); false keeps init_alpha fixed."""
    target_entropy: float | None = None
    """Entropy target; None means -|A| (the paper's heuristic)."""


def critic_loss(critic: nn.Module, target_critic: nn.Module, actor: SquashedGaussianActor, alpha: torch.Tensor,
                batch: Batch, gamma: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(s')  (eq. 3, 5)."""
    with torch.no_grad():
        next_action, next_log_prob = actor.sample(batch.next_obs)
        next_v = target_critic(batch.next_obs, next_action).min(dim=0).values - alpha * next_log_prob
        y = bellman_target(batch.reward, batch.terminated, batch.bootstrap_discount(gamma), next_v)
    return q_regression_loss(critic, batch.obs, batch.action, y)


def actor_loss(actor: SquashedGaussianActor, critic: nn.Module, alpha: torch.Tensor,
               obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """E[alpha log pi(a|s) - min_i Q_i(s, a)], a = tanh(mu + sigma eps): the gradient flows through the
    sample (eq. 12-13). The critic is frozen; returns the log-probs for the temperature loss."""
    action, log_prob = actor.sample(obs)
    with frozen(critic):
        q = critic(obs, action).min(dim=0).values
    loss = (alpha * log_prob - q).mean()
    log_prob = log_prob.detach()
    return loss, log_prob, {"actor_loss": loss.detach(), "entropy": -log_prob.mean()}


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor,
                     target_entropy: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """J(alpha) = E[-alpha (log pi(a|s) + H_target)]  (1812.05905 eq. 18), optimised in log(alpha)."""
    loss = -(log_alpha.exp() * (log_prob + target_entropy)).mean()
    return loss, {"alpha": log_alpha.detach().exp(), "alpha_loss": loss.detach()}


class SACAgent(AgentState):
    STATE = ("actor", "critic", "target_critic", "actor_opt", "critic_opt", "log_alpha", "alpha_opt", "updates")
    ACTING = ("actor",)

    def __init__(self, obs_dim: int, action_dim: int, cfg: SACConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.actor = SquashedGaussianActor(obs_dim, action_dim, cfg.actor_hidden).to(self.device)
        self.critic = TwinQ(obs_dim, action_dim, cfg.critic_hidden, final_init=None).to(self.device)  # default init
        self.target_critic = target_copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=cfg.learn_alpha)
        self.alpha_opt = adam([self.log_alpha], lr=cfg.alpha_lr) if cfg.learn_alpha else None
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -float(action_dim)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        action = self.actor.sample(obs_t)[0] if explore else self.actor(obs_t)
        return action.cpu().numpy()

    def reset_episode(self) -> None:
        pass

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        alpha = self.log_alpha.detach().exp()
        loss_q, info = critic_loss(self.critic, self.target_critic, self.actor, alpha, batch, self.cfg.gamma)
        gradient_step(self.critic_opt, loss_q)
        loss_pi, log_prob, info_pi = actor_loss(self.actor, self.critic, alpha, batch.obs)
        gradient_step(self.actor_opt, loss_pi)
        if self.alpha_opt is not None:
            loss_alpha, info_alpha = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            gradient_step(self.alpha_opt, loss_alpha)
            info_pi.update(info_alpha)
        polyak_update(self.critic, self.target_critic, self.cfg.tau)
        self.updates += 1
        return {**info, **info_pi}

    def policy(self) -> nn.Module:
        """The deployed policy: deterministic tanh(mu(s)), normalised obs -> [-1, 1]."""
        return self.actor
