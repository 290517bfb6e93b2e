"""Preallocated float32 ring buffer of transitions; sampling is vectorised (no per-sample Python)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Batch:
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    def __init__(self, obs_dim: int, action_dim: int, capacity: int, seed: int | None = None) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((self.capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> Batch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a[idx]).to(device)

        return Batch(t(self.obs), t(self.action), t(self.reward), t(self.next_obs), t(self.terminated))

    def state_dict(self) -> dict[str, Any]:
        """Only the filled part is saved, in insertion order independent of capacity."""
        n = self.size
        return {
            "capacity": self.capacity, "pos": self.pos, "size": n, "rng": self.rng.bit_generator.state,
            "obs": torch.from_numpy(self.obs[:n].copy()),
            "action": torch.from_numpy(self.action[:n].copy()),
            "reward": torch.from_numpy(self.reward[:n].copy()),
            "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
            "terminated": torch.from_numpy(self.terminated[:n].copy()),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd["capacity"] != self.capacity:
            raise ValueError(f"replay capacity {sd['capacity']} in checkpoint != configured {self.capacity}")
        n = sd["size"]
        for name in ("obs", "action", "reward", "next_obs", "terminated"):
            getattr(self, name)[:n] = sd[name].numpy()
        self.pos, self.size = sd["pos"], n
        self.rng.bit_generator.state = sd["rng"]
