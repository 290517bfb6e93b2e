"""Target-network and Bellman-target helpers shared by every algorithm, and the on-policy advantage estimator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robotrl.nets import TwinQ


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


def bellman_target(reward: torch.Tensor, terminated: torch.Tensor, gamma: float | torch.Tensor,
                   next_value: torch.Tensor) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * V(s').

    Only true termination cuts the bootstrap; time-limit truncation keeps it (the caller stores
    `terminated`, not `done`). For n-step transitions r is the discounted window sum and gamma the per-sample
    gamma^k (Batch.bootstrap_discount).
    """
    return reward + gamma * (1.0 - terminated) * next_value


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, `module`'s parameters do not require gradients: autograd flows to the inputs only
    and computes no weight gradients at all (the cheapest way to take the critic out of the actor step).

    Actor losses evaluate critics this way, so an actor step leaves critic gradients untouched.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def q_regression_loss(critic: Callable[..., torch.Tensor], obs: torch.Tensor, action: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sum over critics of E[(Q_i(s, a) - y)^2]; the critic returns [batch] (one) or [critics, batch]."""
    q = critic(obs, action)
    loss = (q - y).pow(2).mean(-1).sum()
    return loss, {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}


def deterministic_policy_loss(actor: nn.Module, critic: nn.Module, obs: torch.Tensor,
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Deterministic policy gradient (Silver et al. 2014; DDPG eq. 6): minimise -Q(s, mu(s)).

    For a twin critic only the first Q is evaluated (TD3, Fujimoto et al. 2018, section 5). The critic is frozen.
    """
    action = actor(obs)
    with frozen(critic):
        q = critic.first(obs, action) if isinstance(critic, TwinQ) else critic(obs, action)
    loss = -q.mean()
    return loss, {"actor_loss": loss.detach()}


def smoothed_target_action(target_actor: nn.Module, next_obs: torch.Tensor, noise_std: float,
                           noise_clip: float) -> torch.Tensor:
    """mu'(s') plus clipped Gaussian noise, per dimension, in [-1, 1] (TD3 target policy smoothing, eq. 14).
    noise_std = 0 (smoothing off) draws no noise."""
    action = target_actor(next_obs)
    if noise_std > 0:
        noise = (torch.randn_like(action) * noise_std).clamp(-noise_clip, noise_clip)
        action = (action + noise).clamp(-1.0, 1.0)
    return action


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_values: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) over a rollout of shape (T, N):

        delta_t = r_t + gamma (1 - done_t) V(s_{t+1}) - V(s_t),   A_t = delta_t + gamma lam (1 - done_t) A_{t+1},

    with V(s_T) = last_values. done_t marks an episode that ended at step t (terminated or truncated): the
    rollout loop has already added gamma V(final observation) to the reward of a truncated step, so a time limit
    bootstraps and a termination does not. lam = 1 gives Monte-Carlo returns minus the baseline (REINFORCE; cut by
    the rollout's end, completed with V), lam = 0 the one-step TD error. Returns (advantages, returns = A + V)."""
    advantages = torch.zeros_like(rewards)
    next_value, next_advantage = last_values, torch.zeros_like(last_values)
    for t in range(rewards.shape[0] - 1, -1, -1):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * live * next_value - values[t]
        next_advantage = delta + gamma * lam * live * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values
