"""What the on-policy algorithms share: config fields, the Gaussian actor-critic's acting side, and small pure
functions for advantages, losses and steps (no base update: each algorithm's update reads like its paper)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from robotrl.algos.common import AgentState
from robotrl.nets import GaussianPolicy, mlp_forward, policy_gradient_mlp
from robotrl.targets import gae


@dataclass
class PolicyGradientConfig:
    """Fields of every on-policy algorithm; each restates the defaults of its paper or reference implementation."""

    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE(lambda) (Schulman et al. 2016): 1 is the Monte-Carlo return minus the baseline, 0 the TD error."""
    lr: float = 3e-4
    """Learning rate of the optimiser (of the value function, for TRPO)."""
    lr_anneal: bool = False
    """Anneal the learning rate linearly to 0 over total_steps."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the policy mean and of the value network (separate networks)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden units of both networks (tanh as the papers; rl-baselines3-zoo's tuned MuJoCo entries use relu)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the state-independent Gaussian policy."""
    orthogonal_init: bool = True
    """Orthogonal initialisation (gain sqrt 2 hidden, 0.01 policy output, 1 value output)."""
    normalize_advantage: bool = True
    """Standardise advantages per (mini)batch."""
    max_grad_norm: float = 0.5
    """Clip the gradient's global norm to this (0 disables)."""


class GaussianActorCritic(AgentState):
    """act / sample / value / policy for an agent with `self.actor` (GaussianPolicy) and `self.critic` (V)."""

    actor: GaussianPolicy
    critic: nn.Module
    device: torch.device

    def _build_networks(self, obs_dim: int, action_dim: int, cfg: PolicyGradientConfig, device: str) -> None:
        self.device = torch.device(device)
        self.actor = GaussianPolicy(obs_dim, action_dim, cfg.hidden, cfg.log_std_init, cfg.orthogonal_init,
                                    cfg.activation)
        self.critic = policy_gradient_mlp(obs_dim, cfg.hidden, 1, 1.0, cfg.orthogonal_init, cfg.activation)
        self.actor.to(self.device)
        self.critic.to(self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        action = self.actor.sample(x)[0] if explore else self.actor(x)
        return np.clip(action.cpu().numpy(), -1.0, 1.0)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log pi(action|s), V(s)) for a batch of normalised observations, on the CPU."""
        x = obs.to(self.device)
        action, log_prob = self.actor.sample(x)
        return action.cpu(), log_prob.cpu(), mlp_forward(self.critic, x).squeeze(-1).cpu()

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return mlp_forward(self.critic, obs.to(self.device)).squeeze(-1).cpu()

    def reset_episode(self) -> None:
        pass

    def policy(self) -> nn.Module:
        """Deterministic normalised-obs -> action: the Gaussian's mean (the deployed module clamps to bounds)."""
        return self.actor


@dataclass
class Batch:
    """A rollout flattened to T*N rows with its advantages and value targets, on the agent's device."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    FIELDS = ("obs", "actions", "log_probs", "values", "advantages", "returns")

    def rows(self, index: torch.Tensor | slice) -> Batch:
        return Batch(*(getattr(self, f)[index] for f in self.FIELDS))


def advantage_batch(rollout: Any, gamma: float, lam: float, device: torch.device) -> Batch:
    """GAE(lambda) advantages and returns of a rollout, flattened over time and envs."""
    advantages, returns = gae(rollout.rewards, rollout.values, rollout.dones, rollout.last_values, gamma, lam)

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, *x.shape[2:]).to(device)

    return Batch(flat(rollout.obs), flat(rollout.actions), flat(rollout.log_probs), flat(rollout.values),
                 flat(advantages), flat(returns))


def standardized(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + eps) if x.numel() > 1 else x - x.mean()


def minibatches(data: Batch, size: int) -> Iterator[Batch]:
    """One epoch: the rows in a random order cut into minibatches (the last may be smaller). The rollout is
    gathered once per epoch and each minibatch is a view of it (one index op per field per epoch, not per step)."""
    shuffled = data.rows(torch.randperm(len(data)))
    for start in range(0, len(data), size):
        yield shuffled.rows(slice(start, start + size))


def log_prob_entropy(actor: GaussianPolicy, obs: torch.Tensor, actions: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    return actor.log_prob_entropy(obs, actions)


def value_loss(critic: nn.Module, batch: Batch, clip: float | None = None) -> torch.Tensor:
    """(V(s) - R)^2, the PPO paper's L^VF (Schulman et al. 2017, eq. 9; SB3's F.mse_loss), without the 0.5 some
    implementations put in front, which halves the value term against vf_coef; with `clip`, PPO's pessimistic
    clipped variant around the rollout's values."""
    v = mlp_forward(critic, batch.obs).squeeze(-1)
    loss = (v - batch.returns) ** 2
    if clip is not None:
        v_clipped = batch.values + (v - batch.values).clamp(-clip, clip)
        loss = torch.maximum(loss, (v_clipped - batch.returns) ** 2)
    return loss.mean()


def approx_kl(log_prob_old: torch.Tensor, log_prob_new: torch.Tensor) -> torch.Tensor:
    """KL(old || new) estimated from samples of old: E[(r - 1) - log r], r = pi_new / pi_old (Schulman's k3)."""
    log_ratio = log_prob_new - log_prob_old
    return (log_ratio.exp() - 1.0 - log_ratio).mean()


PG_ADAM_EPS = 1e-5  # Adam's eps in the PPO / TRPO reference implementations (baselines, SB3)


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, progress: float, anneal: bool) -> float:
    lr = base_lr * (1.0 - progress) if anneal else base_lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
