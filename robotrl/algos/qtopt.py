"""QT-Opt — Q-learning over continuous actions maximised by the cross-entropy method
(Kalashnikov et al. 2018, arXiv 1806.10293).

No actor: acting and the Bellman target both take argmax_a Q(s, a) with a batched CEM (robotrl.cem).
Clipped double Q-learning with two target networks (section 4.1): Q'_1 Polyak-averaged, Q'_2 a lagged
copy of Q'_1; the target uses the minimum of the two at the CEM argmax of Q'_1.

The paper's public critic ends in a sigmoid trained with a log loss. Its reward, which grasp uses too, is
+1 for a held lift and -0.05 per step, so the Q of a failing attempt is negative and no Q is a probability in
[0, 1]; a sigmoid head would need its targets shifted and scaled into that range. Here the critic is a linear
output regressed with squared error, as every other critic in robotrl, which needs neither (a departure from
the paper's loss, not from its targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robotrl.algos.common import AgentState, adam, gradient_step, target_copy
from robotrl.cem import ELITES, ITERATIONS, SAMPLES, CEMMaximizer
from robotrl.nets import PixelQCritic, QCritic
from robotrl.replay import Batch
from robotrl.targets import bellman_target, polyak_update, q_regression_loss


@dataclass
class QTOptConfig:
    """QT-Opt hyperparameters. gamma 0.9 and the CEM settings are the paper's (sections 4.2, 5)."""

    gamma: float = 0.9
    """Discount factor."""
    tau: float = 0.005
    """Polyak weight of the online critic in the first target network."""
    lag_every: int = 100
    """The second target network becomes a copy of the first every this many updates."""
    lr: float = 3e-4
    """Adam learning rate of the critic."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the critic."""
    cem_samples: int = SAMPLES
    """CEM samples per iteration."""
    cem_elites: int = ELITES
    """CEM elites refitted per iteration."""
    cem_iterations: int = ITERATIONS
    """CEM iterations."""
    epsilon: float = 0.1
    """Probability of a uniformly random action when exploring."""
    noise_sigma: float = 0.1
    """Std of Gaussian noise added to the CEM action when exploring."""
    image_shape: tuple[int, ...] = ()
    """(C, H, W) of the image that ends a pixel observation, taken from the env (its `image_shape`): the critic
    encodes it with a convolutional network whose features every CEM sample of a state shares. Empty: state."""


def lagged_double_q_target(target_q1: nn.Module, target_q2: nn.Module, cem: CEMMaximizer, batch: Batch,
                           gamma: float, noise: torch.Tensor) -> torch.Tensor:
    """y = r + gamma (1 - terminated) min(Q'_1(s', a*), Q'_2(s', a*)), a* = CEM argmax_a Q'_1(s', a)
    (paper section 4.1, clipped double Q-learning with a Polyak and a lagged target network)."""
    with torch.no_grad():
        if cem.q is target_q1:  # the CEM and Q'_1 share the next states' features (a pixel critic's convolutions)
            features = target_q1.encode(batch.next_obs)
            best = cem.maximize_features(features, noise)
            q1 = target_q1.head(features, best)
        else:
            best = cem.maximize(batch.next_obs, noise)
            q1 = target_q1(batch.next_obs, best)
        next_v = torch.minimum(q1, target_q2(batch.next_obs, best))
        return bellman_target(batch.reward, batch.terminated, batch.bootstrap_discount(gamma), next_v)


class QTOptAgent(AgentState):
    STATE = ("critic", "target_q1", "target_q2", "opt", "updates")
    ACTING = ("critic",)
    TARGETS = ("target_q1", "target_q2")  # what a Bellman updater needs (robotrl.distributed)

    def __init__(self, obs_dim: int, action_dim: int, cfg: QTOptConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.device, self.action_dim = cfg, torch.device(device), action_dim
        if cfg.image_shape:
            self.critic = PixelQCritic(obs_dim, action_dim, cfg.hidden, cfg.image_shape, final_init=None)
        else:
            self.critic = QCritic(obs_dim, action_dim, cfg.hidden, final_init=None)
        self.critic.to(self.device)
        self.target_q1 = target_copy(self.critic)
        self.target_q2 = target_copy(self.critic)
        self.opt = adam(self.critic.parameters(), lr=cfg.lr)
        cem_args = dict(samples=cfg.cem_samples, elites=cfg.cem_elites, iterations=cfg.cem_iterations, seed=seed)
        # The deployed policy: CEM over the online critic with a fixed noise table (deterministic).
        self.actor = CEMMaximizer(self.critic, action_dim, **cem_args).to(self.device)
        self.target_cem = CEMMaximizer(self.target_q1, action_dim, **cem_args).to(self.device)
        self.updates = 0

    def _fresh_noise(self, batch: int) -> torch.Tensor:
        c = self.cfg
        return torch.randn(c.cem_iterations, batch, c.cem_samples, self.action_dim, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        if not explore:
            return self.actor(obs_t)[0].cpu().numpy()
        if torch.rand(()).item() < self.cfg.epsilon:
            return (torch.rand(self.action_dim) * 2.0 - 1.0).numpy()
        action = self.actor.maximize(obs_t, self._fresh_noise(1))[0]
        action = action + self.cfg.noise_sigma * torch.randn(self.action_dim, device=self.device)
        return action.clamp(-1.0, 1.0).cpu().numpy()

    def reset_episode(self) -> None:
        pass

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.regress(batch, self.bellman_target(batch))

    def bellman_target(self, batch: Batch) -> torch.Tensor:
        """The Bellman updaters' half of an update: y by CEM over the lagged target networks."""
        return lagged_double_q_target(self.target_q1, self.target_q2, self.target_cem, batch, self.cfg.gamma,
                                      self._fresh_noise(batch.obs.shape[0]))

    def regress(self, batch: Batch, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The learner's half: one regression step of Q(s, a) on y, then the target networks' Polyak and lag."""
        loss, info = q_regression_loss(self.critic, batch.obs, batch.action, y)
        gradient_step(self.opt, loss)
        polyak_update(self.critic, self.target_q1, self.cfg.tau)
        self.updates += 1
        if self.updates % self.cfg.lag_every == 0:
            polyak_update(self.target_q1, self.target_q2, 1.0)
        return info

    def policy(self) -> nn.Module:
        """Deterministic normalised-obs -> argmax_a Q(s, a) by CEM with the stored noise table."""
        return self.actor
