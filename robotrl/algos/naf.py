"""NAF — Normalized Advantage Functions (Gu, Lillicrap, Sutskever, Levine 2016, arXiv 1603.00748).

Continuous Q-learning without an actor: Q(s, a) = V(s) - 1/2 (a - mu(s))^T P(s) (a - mu(s)) with
P = L L^T, so the greedy action is mu(s) in closed form and the Bellman target needs only V'(s').
Explores with OU / Gaussian noise around mu(s), or NAF-P: noise from N(0, c P(s)^-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from robotrl.algos.common import AgentState, adam, gradient_step, target_copy
from robotrl.nets import NAFHead
from robotrl.noise import GaussianNoise, make_noise
from robotrl.replay import Batch
from robotrl.targets import bellman_target, polyak_update, q_regression_loss


@dataclass
class NAFConfig:
    """NAF hyperparameters; defaults follow the paper (section 6: 200-200 units, tau 0.001, OU noise).
    The paper's 5 updates per environment step is the loop's `updates_per_step` (set in task cards)."""

    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.001
    """Polyak weight of the online network in the target update."""
    lr: float = 1e-3
    """Adam learning rate of the NAF network."""
    hidden: tuple[int, ...] = (200, 200)
    """Hidden layer widths of the shared trunk (V, mu and L heads sit on its last layer)."""
    noise: Literal["ou", "gaussian", "naf_p", "none"] = "ou"
    """Exploration around mu(s): OU or Gaussian in the normalised action space, or NAF-P, N(0, c P(s)^-1)."""
    noise_sigma: float = 0.3
    """Noise scale (Gaussian std or OU sigma); for naf_p, the std multiplier sqrt(c)."""
    ou_theta: float = 0.15
    """OU mean-reversion rate (noise: ou)."""
    ou_dt: float = 1.0
    """OU time step (noise: ou)."""


def precision_noise(precision: torch.Tensor, z: torch.Tensor, scale: float) -> torch.Tensor:
    """x = scale C^-T z with P = C C^T (Cholesky) and z ~ N(0, I): Cov[x] = scale^2 P^-1 = c P^-1.

    A Cholesky factorisation and one triangular solve, never an explicit inverse (NAF-P, paper section 4)."""
    chol = torch.linalg.cholesky(precision)
    x = torch.linalg.solve_triangular(chol.transpose(-1, -2), z.unsqueeze(-1), upper=True)
    return scale * x.squeeze(-1)


def naf_loss(net: NAFHead, target_net: NAFHead, batch: Batch,
             gamma: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = E[(Q(s, a) - y)^2], y = r + gamma (1 - terminated) V'(s')  (paper algorithm 1)."""
    with torch.no_grad():
        y = bellman_target(batch.reward, batch.terminated, batch.bootstrap_discount(gamma),
                           target_net.value(batch.next_obs))
    return q_regression_loss(net.q, batch.obs, batch.action, y)


class NAFAgent(AgentState):
    STATE = ("net", "target_net", "opt", "noise", "updates")
    ACTING = ("net",)

    def __init__(self, obs_dim: int, action_dim: int, cfg: NAFConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.net = NAFHead(obs_dim, action_dim, cfg.hidden).to(self.device)
        self.target_net = target_copy(self.net)
        self.opt = adam(self.net.parameters(), lr=cfg.lr)
        if cfg.noise == "naf_p":  # unit normal draws, shaped by L(s) at acting time
            self.noise = GaussianNoise(action_dim, sigma=1.0, seed=seed)
        else:
            self.noise = make_noise(cfg.noise, action_dim, cfg.noise_sigma, cfg.ou_theta, cfg.ou_dt, seed)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if not explore or self.noise is None:
            return np.clip(self.net(obs_t).cpu().numpy(), -1.0, 1.0)
        if self.cfg.noise == "naf_p":
            _, mu, lower = self.net.heads(obs_t)
            z = torch.as_tensor(self.noise.sample(), device=self.device)
            action = mu + precision_noise(self.net.precision(lower), z, self.cfg.noise_sigma)
        else:
            action = self.net(obs_t) + torch.as_tensor(self.noise.sample(), device=self.device)
        return np.clip(action.cpu().numpy(), -1.0, 1.0)

    def reset_episode(self) -> None:
        if self.noise is not None:
            self.noise.reset()

    def policy(self) -> nn.Module:
        """Deterministic normalised-obs -> mu(s) in [-1, 1]: the NAF network's forward()."""
        return self.net

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss, info = naf_loss(self.net, self.target_net, batch, self.cfg.gamma)
        gradient_step(self.opt, loss)
        polyak_update(self.net, self.target_net, self.cfg.tau)
        self.updates += 1
        return info

