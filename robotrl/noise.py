"""Exploration noise in the normalised action space [-1, 1]. Each process owns its RNG."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise: dx = theta * (mu - x) dt + sigma * sqrt(dt) * N(0, I).

    Euler-Maruyama discretisation (Lillicrap et al. 2015 use theta=0.15, sigma=0.2, dt=1).
    The stationary standard deviation is sigma / sqrt(2 theta) for small theta*dt.
    """

    def __init__(self, action_dim: int, theta: float = 0.15, sigma: float = 0.2, dt: float = 1.0,
                 mu: float = 0.0, seed: int | None = None) -> None:
        self.theta, self.sigma, self.dt, self.mu = theta, sigma, dt, mu
        self.rng = np.random.default_rng(seed)
        self.state = np.full(action_dim, mu, dtype=np.float64)

    def reset(self) -> None:
        self.state[:] = self.mu

    def sample(self) -> np.ndarray:
        dx = self.theta * (self.mu - self.state) * self.dt
        dx += self.sigma * np.sqrt(self.dt) * self.rng.standard_normal(self.state.shape)
        self.state += dx
        return self.state.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"state": torch.from_numpy(self.state.copy()), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.state[:] = sd["state"].numpy()
        self.rng.bit_generator.state = sd["rng"]


class GaussianNoise:
    """Independent N(0, sigma^2) per step and action dimension."""

    def __init__(self, action_dim: int, sigma: float = 0.1, seed: int | None = None) -> None:
        self.action_dim, self.sigma = action_dim, sigma
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def sample(self) -> np.ndarray:
        return (self.sigma * self.rng.standard_normal(self.action_dim)).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.rng.bit_generator.state = sd["rng"]


def make_noise(kind: str, action_dim: int, sigma: float, theta: float, dt: float,
               seed: int | None) -> OrnsteinUhlenbeckNoise | GaussianNoise | None:
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(action_dim, theta=theta, sigma=sigma, dt=dt, seed=seed)
    if kind == "gaussian":
        return GaussianNoise(action_dim, sigma=sigma, seed=seed)
    if kind == "none":
        return None
    raise ValueError(f"unknown noise kind {kind!r}; choose ou, gaussian or none")
