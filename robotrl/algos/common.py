"""What the actor-critic algorithms share: config fields and small functions (no base agent class)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from robotrl.noise import GaussianNoise, OrnsteinUhlenbeckNoise


@dataclass
class ActorCriticConfig:
    """Fields of every actor-critic algorithm. Each algorithm restates the defaults of its paper."""

    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak weight of the online networks in the target update."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic(s)."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each critic."""


@dataclass
class NoiseConfig(ActorCriticConfig):
    """Actor-critic with a deterministic actor explored by additive noise (DDPG, TD3)."""

    noise: Literal["ou", "gaussian", "none"] = "gaussian"
    """Exploration noise added to mu(s) in the normalised action space."""
    noise_sigma: float = 0.1
    """Noise scale (the Gaussian's standard deviation, or OU sigma)."""
    ou_theta: float = 0.15
    """OU mean-reversion rate (noise: ou)."""
    ou_dt: float = 1.0
    """OU time step (noise: ou)."""


def target_copy(module: nn.Module) -> nn.Module:
    """A frozen copy to serve as the Polyak-averaged target network."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def noisy_action(actor: nn.Module, obs: np.ndarray, noise: OrnsteinUhlenbeckNoise | GaussianNoise | None,
                 explore: bool, device: torch.device) -> np.ndarray:
    """mu(s), plus exploration noise when exploring, clipped to [-1, 1]."""
    action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
    if explore and noise is not None:
        action = action + noise.sample()
    return np.clip(action, -1.0, 1.0)


def adam(params: Any, lr: float, weight_decay: float = 0.0, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over all parameters; ~3x faster than the per-tensor loop on CPU). The
    policy-gradient algorithms pass eps 1e-5, as their reference implementations (baselines, SB3) use."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, eps=eps, fused=True)


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float = 0.0) -> None:
    """One step on `loss`; with max_grad_norm > 0 the gradient of the optimiser's parameters is first clipped to
    that global norm."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None  # zero_grad(set_to_none=True) without its per-call bookkeeping
    loss.backward()
    clipped_step(optimizer, max_grad_norm)


def clipped_step(optimizer: torch.optim.Optimizer, max_grad_norm: float = 0.0) -> None:
    """The optimiser's step on the gradients its parameters hold, first clipped to that global norm if > 0."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_grad_norm > 0:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            clip_grad_norm(grads, max_grad_norm)
    if not fused_adam_step(optimizer, params):
        optimizer.step()


@torch.no_grad()
def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> None:
    """nn.utils.clip_grad_norm_'s arithmetic (the same ops, so the same bits) on a list of CPU or one-device
    gradients, without its per-call grouping by device and dtype."""
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))


@torch.no_grad()
def fused_adam_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> bool:
    """Adam(fused=True).step()'s kernel call, the same arithmetic, without Optimizer.step's per-call bookkeeping
    (half the step's time on networks this small). Returns False, having done nothing, where the plain step is
    needed: another optimiser or options, a parameter without a gradient, state not yet created (the first step),
    or parameters on more than one device or dtype."""
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    if not group["fused"] or group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"] \
            or group["decoupled_weight_decay"] or optimizer._optimizer_step_pre_hooks \
            or optimizer._optimizer_step_post_hooks:
        return False
    state = optimizer.state
    states = [state[p] for p in params if p in state]  # `in` first: optimizer.state is a defaultdict
    grads = [p.grad for p in params]
    if len(states) != len(params) or any(g is None for g in grads) \
            or len({(p.device, p.dtype) for p in params}) != 1:
        return False
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [], steps,
                       amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                       eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)
    return True


def attribute_state(owner: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The state of an agent's named attributes: state_dict() of networks, optimisers and noise, plain
    values (counters, tensors) as they are; attributes that are None are skipped."""
    state = {}
    for name in names:
        value = getattr(owner, name)
        if hasattr(value, "state_dict"):
            state[name] = value.state_dict()
        elif isinstance(value, torch.Tensor):  # a snapshot, not the live (trainable) tensor
            state[name] = value.detach().clone()
        elif value is not None:
            state[name] = value
    return state


def load_attribute_state(owner: Any, names: tuple[str, ...], state: dict[str, Any]) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is None:
            continue
        if hasattr(value, "load_state_dict"):
            value.load_state_dict(state[name])
        elif isinstance(value, torch.Tensor):  # in place, so optimisers keep their reference (log alpha)
            with torch.no_grad():
                value.copy_(state[name])
        else:
            setattr(owner, name, state[name])


def acting_state(agent: Any) -> dict[str, Any]:
    """What a copy of the agent needs to act (its ACTING attributes): the weights a distributed run's collectors
    are sent."""
    return attribute_state(agent, agent.ACTING)


def load_acting_state(agent: Any, state: dict[str, Any]) -> None:
    load_attribute_state(agent, agent.ACTING, state)


class AgentState:
    """state_dict() / load_state_dict() of the Agent contract, from the attribute names in STATE; ACTING names
    the networks act() reads (a distributed run's collectors receive only those)."""

    STATE: ClassVar[tuple[str, ...]]
    ACTING: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        return attribute_state(self, self.STATE)

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        load_attribute_state(self, self.STATE, sd)


class NoisyDeterministicAgent(AgentState):
    """act / reset_episode / policy for a deterministic actor `self.actor` explored by `self.noise`."""

    actor: nn.Module
    noise: OrnsteinUhlenbeckNoise | GaussianNoise | None
    device: torch.device

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        return noisy_action(self.actor, obs, self.noise, explore, self.device)

    def reset_episode(self) -> None:
        if self.noise is not None:
            self.noise.reset()

    def policy(self) -> nn.Module:
        """Deterministic normalised-obs -> action in [-1, 1]: the actor."""
        return self.actor
