"""PPO — Proximal Policy Optimization (Schulman et al. 2017, arXiv 1707.06347), with GAE(lambda) advantages
(Schulman et al. 2016, arXiv 1506.02438).

Each rollout is reused for n_epochs of minibatch steps on one of the paper's two surrogates:
- "clip" (eq. 7): L = E[min(r A, clip(r, 1 - eps, 1 + eps) A)], r = pi(a|s) / pi_old(a|s);
- "kl" (eq. 8): L = E[r A] - beta KL[pi_old || pi], with beta halved when the rollout's KL fell below
  kl_target / 1.5 and doubled above kl_target * 1.5 (section 4).
Plus the value loss (optionally clipped) and an entropy bonus (eq. 9), advantage normalisation, gradient-norm
clipping, learning-rate annealing, orthogonal initialisation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import torch

from robotrl.algos.common import adam, gradient_step
from robotrl.algos.policy_gradient import (
    PG_ADAM_EPS,
    Batch,
    GaussianActorCritic,
    PolicyGradientConfig,
    advantage_batch,
    approx_kl,
    log_prob_entropy,
    minibatches,
    set_lr,
    standardized,
    value_loss,
)


@dataclass
class PPOConfig(PolicyGradientConfig):
    """PPO hyperparameters; the defaults are the paper's MuJoCo settings (Table 3: lr 3e-4, 10 epochs, minibatch
    64, gamma 0.99, lambda 0.95, clip 0.2) with SB3's value coefficient 0.5 and gradient clip 0.5."""

    objective: Literal["clip", "kl"] = "clip"
    """The clipped surrogate (eq. 7) or the adaptive KL penalty (eq. 8)."""
    n_epochs: int = 10
    """Passes over each rollout."""
    minibatch_size: int = 64
    """Rows per gradient step."""
    clip_range: float = 0.2
    """epsilon of the clipped surrogate."""
    clip_range_vf: float | None = None
    """Clip the value prediction to this distance from the rollout's values (None: unclipped value loss)."""
    kl_target: float = 0.01
    """d_targ of the adaptive KL penalty."""
    kl_beta_init: float = 1.0
    """Initial beta of the adaptive KL penalty."""
    target_kl: float | None = None
    """Stop the epochs early when the approximate KL to the rollout's policy exceeds 1.5 x this (None: never)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (c2)."""
    vf_coef: float = 0.5
    """Value loss coefficient (c1)."""


def surrogate_loss(log_prob: torch.Tensor, batch: Batch, advantages: torch.Tensor, cfg: PPOConfig,
                   beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Minus the surrogate objective (to minimise) and the ratio's clipped fraction."""
    ratio = (log_prob - batch.log_probs).exp()
    if cfg.objective == "clip":
        clipped = ratio.clamp(1.0 - cfg.clip_range, 1.0 + cfg.clip_range)
        objective = torch.minimum(ratio * advantages, clipped * advantages)
        with torch.no_grad():
            clip_fraction = ((ratio - 1.0).abs() > cfg.clip_range).float().mean()
        return -objective.mean(), clip_fraction
    return -(ratio * advantages).mean() + beta * approx_kl(batch.log_probs, log_prob), torch.zeros(())


def adapt_beta(beta: float, kl: float, kl_target: float) -> float:
    """Section 4: halve beta when d < d_targ / 1.5, double it when d > d_targ * 1.5."""
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > kl_target * 1.5:
        return beta * 2.0
    return beta


class PPOAgent(GaussianActorCritic):
    STATE = ("actor", "critic", "optimizer", "beta")

    def __init__(self, obs_dim: int, action_dim: int, cfg: PPOConfig, seed: int = 0, device: str = "cpu"):
        self.cfg = cfg
        self._build_networks(obs_dim, action_dim, cfg, device)
        self.params = list(itertools.chain(self.actor.parameters(), self.critic.parameters()))
        self.optimizer = adam(self.params, cfg.lr, eps=PG_ADAM_EPS)
        self.beta = cfg.kl_beta_init

    def update(self, rollout: Any) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        lr = set_lr(self.optimizer, cfg.lr, rollout.progress, cfg.lr_anneal)
        data = advantage_batch(rollout, cfg.gamma, cfg.gae_lambda, self.device)
        names = ("policy_loss", "value_loss", "entropy", "clip_fraction")
        logged: list[torch.Tensor] = []  # one row per step, averaged once at the end (not a float() per step)
        kl = 0.0
        for epoch in range(cfg.n_epochs):
            for batch in minibatches(data, cfg.minibatch_size):
                advantages = standardized(batch.advantages) if cfg.normalize_advantage else batch.advantages
                log_prob, entropy = log_prob_entropy(self.actor, batch.obs, batch.actions)
                policy_loss, clip_fraction = surrogate_loss(log_prob, batch, advantages, cfg, self.beta)
                v_loss = value_loss(self.critic, batch, cfg.clip_range_vf)
                mean_entropy = entropy.mean()
                loss = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * mean_entropy
                gradient_step(self.optimizer, loss, cfg.max_grad_norm)
                logged.append(torch.stack([policy_loss, v_loss, mean_entropy, clip_fraction]).detach())
            if cfg.target_kl is None and epoch < cfg.n_epochs - 1:
                continue  # only the early stop needs every epoch's KL; the metric and beta need the last one
            with torch.no_grad():
                kl = float(approx_kl(data.log_probs, log_prob_entropy(self.actor, data.obs, data.actions)[0]))
            if cfg.target_kl is not None and kl > 1.5 * cfg.target_kl:
                break
        if cfg.objective == "kl":
            self.beta = adapt_beta(self.beta, kl, cfg.kl_target)
        means = torch.stack(logged).mean(0) if logged else torch.zeros(len(names))
        metrics = dict(zip(names, means.unbind(), strict=True))
        metrics.update(approx_kl=torch.tensor(kl), lr=torch.tensor(lr), kl_beta=torch.tensor(self.beta),
                       log_std=self.actor.log_std.detach().mean())
        return metrics
