"""TRPO — Trust Region Policy Optimization (Schulman et al. 2015, arXiv 1502.05477), with GAE(lambda) advantages.

    maximise_theta  L(theta) = E[pi_theta(a|s) / pi_old(a|s) A]   subject to   E[KL(pi_old || pi_theta)] <= delta

Appendix C: the natural-gradient direction s = F^-1 g by conjugate gradient on Fisher-vector products (the
Hessian of the mean KL, plus damping), the full step sqrt(2 delta / s^T F s) s, then a backtracking line search
that accepts the first shrunk step whose KL is within delta and whose surrogate improved. The value function is
fitted separately by Adam on minibatches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils import parameters_to_vector

from robotrl.algos.common import adam, gradient_step
from robotrl.algos.policy_gradient import (
    PG_ADAM_EPS,
    GaussianActorCritic,
    PolicyGradientConfig,
    advantage_batch,
    minibatches,
    set_lr,
    standardized,
    value_loss,
)


@dataclass
class TRPOConfig(PolicyGradientConfig):
    """TRPO hyperparameters; the defaults are sb3-contrib's TRPO (delta 0.01, 15 CG steps, damping 0.1, line search
    0.8^k for k < 10, value: 10 epochs of Adam lr 1e-3 on minibatches of 128)."""

    lr: float = 1e-3
    """Adam learning rate of the value function (the policy step is set by the trust region)."""
    max_kl: float = 0.01
    """delta, the trust region's bound on the mean KL(pi_old || pi)."""
    cg_iterations: int = 15
    """Conjugate-gradient iterations for F^-1 g."""
    cg_damping: float = 0.1
    """Added to the Fisher-vector product (F + damping I) v."""
    line_search_shrink: float = 0.8
    """Backtracking factor of the line search."""
    line_search_steps: int = 10
    """Shrunk steps tried before the update is rejected."""
    value_epochs: int = 10
    """Passes of the value regression over each rollout."""
    value_minibatch_size: int = 128
    """Rows per value-regression step."""
    max_grad_norm: float = 0.0
    """Clip the value gradient's global norm to this (0 disables)."""


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iterations: int,
                       tolerance: float = 1e-10) -> torch.Tensor:
    """x with A x = b for a symmetric positive-definite A given as matvec (Hestenes and Stiefel 1952)."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), r @ r
    for _ in range(iterations):
        if rr < tolerance:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
    return x


@torch.no_grad()
def assign(params: list[torch.nn.Parameter], vector: torch.Tensor) -> None:
    """Copy a flat vector into the parameters in place (torch's vector_to_parameters would make each parameter a
    view into the vector, whose alignment can change matmul results and so break exact resume)."""
    offset = 0
    for p in params:
        p.copy_(vector[offset:offset + p.numel()].view_as(p))
        offset += p.numel()


def line_search(params: list[torch.nn.Parameter], old: torch.Tensor, full_step: torch.Tensor,
                evaluate: Callable[[], tuple[float, float]], max_kl: float, shrink: float, steps: int
                ) -> tuple[bool, float, float]:
    """Try old + shrink^k full_step for k = 0 .. steps - 1; keep the first whose mean KL <= max_kl and whose
    surrogate improved (evaluate() -> (surrogate gain, kl) at the current parameters). Restores `old` if none is
    accepted. Returns (accepted, kl, gain) of the step kept."""
    for k in range(steps):
        assign(params, old + shrink**k * full_step)
        gain, kl = evaluate()
        if kl <= max_kl and gain > 0.0:
            return True, kl, gain
    assign(params, old)
    return False, 0.0, 0.0


class TRPOAgent(GaussianActorCritic):
    STATE = ("actor", "critic", "value_optimizer")

    def __init__(self, obs_dim: int, action_dim: int, cfg: TRPOConfig, seed: int = 0, device: str = "cpu"):
        self.cfg = cfg
        self._build_networks(obs_dim, action_dim, cfg, device)
        self.value_optimizer = adam(list(self.critic.parameters()), cfg.lr, eps=PG_ADAM_EPS)

    def update(self, rollout: Any) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        lr = set_lr(self.value_optimizer, cfg.lr, rollout.progress, cfg.lr_anneal)
        data = advantage_batch(rollout, cfg.gamma, cfg.gae_lambda, self.device)
        advantages = standardized(data.advantages) if cfg.normalize_advantage else data.advantages
        params = list(self.actor.parameters())
        with torch.no_grad():
            old_dist = self.actor.distribution(data.obs)

        def surrogate() -> torch.Tensor:
            log_prob = self.actor.distribution(data.obs).log_prob(data.actions).sum(-1)
            return ((log_prob - data.log_probs).exp() * advantages).mean()

        def mean_kl() -> torch.Tensor:
            return torch.distributions.kl_divergence(old_dist, self.actor.distribution(data.obs)).sum(-1).mean()

        loss_before = surrogate()
        grad = parameters_to_vector(torch.autograd.grad(loss_before, params)).detach()
        kl_grad = parameters_to_vector(torch.autograd.grad(mean_kl(), params, create_graph=True))

        def fisher_vector(v: torch.Tensor) -> torch.Tensor:
            hv = torch.autograd.grad(kl_grad @ v, params, retain_graph=True)
            return parameters_to_vector(hv).detach() + cfg.cg_damping * v

        direction = conjugate_gradient(fisher_vector, grad, cfg.cg_iterations)
        step_size = torch.sqrt(2.0 * cfg.max_kl / (direction @ fisher_vector(direction)).clamp_min(1e-12))
        old = parameters_to_vector(params).detach().clone()

        @torch.no_grad()
        def evaluate() -> tuple[float, float]:
            return float(surrogate() - loss_before), float(mean_kl())

        accepted, kl, gain = line_search(params, old, step_size * direction, evaluate, cfg.max_kl,
                                         cfg.line_search_shrink, cfg.line_search_steps)
        for _ in range(cfg.value_epochs):
            for batch in minibatches(data, cfg.value_minibatch_size):
                v_loss = value_loss(self.critic, batch)
                gradient_step(self.value_optimizer, v_loss, cfg.max_grad_norm)
        return {"surrogate_gain": torch.tensor(gain), "kl": torch.tensor(kl),
                "step_accepted": torch.tensor(float(accepted)), "value_loss": v_loss.detach(),
                "lr": torch.tensor(lr), "log_std": self.actor.log_std.detach().mean()}
