"""Preallocated float32 ring buffer of transitions; sampling is vectorised (no per-sample Python).

With n_step > 1 a sample is an n-step transition assembled at sampling time from consecutive stored steps:
R = sum_{j<k} gamma^j r_{t+j}, bootstrapped from s_{t+k} with gamma^k, where the window of k <= n steps stops
after the step that ends the episode (termination: no bootstrap; time-limit truncation: bootstrap from the real
final observation) and at the newest stored step (Sutton & Barto 2018, section 7.1; Hessel et al. 2018).
"""

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
    discount: torch.Tensor | None = None
    """Per-sample gamma^k of an n-step window (k its length); None for one-step transitions."""

    def bootstrap_discount(self, gamma: float) -> float | torch.Tensor:
        """The discount on V(s') in the Bellman target: gamma for one-step transitions, gamma^k for n-step ones."""
        return gamma if self.discount is None else self.discount


class ReplayBuffer:
    ARRAYS = ("obs", "action", "reward", "next_obs", "terminated", "episode_end")

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, seed: int | None = None, n_step: int = 1,
                 gamma: float = 0.99) -> None:
        self.capacity, self.n_step, self.gamma = int(capacity), int(n_step), float(gamma)
        self.obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((self.capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.episode_end = np.zeros(self.capacity, dtype=np.float32)  # terminated or truncated
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool, episode_end: bool | None = None) -> None:
        """Store one step; `episode_end` (default: `terminated`) marks the last step of an episode, truncated or
        not, so that n-step windows never reach into the next episode."""
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self.episode_end[i] = float(terminated if episode_end is None else episode_end)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> Batch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.gather(self.rng.integers(0, self.size, size=batch_size), device)

    def gather(self, idx: np.ndarray, device: torch.device | str = "cpu") -> Batch:
        """The (n-step) transitions that start at stored positions `idx`."""
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        if self.n_step == 1:
            return Batch(t(self.obs[idx]), t(self.action[idx]), t(self.reward[idx]), t(self.next_obs[idx]),
                         t(self.terminated[idx]))
        offsets = np.arange(self.n_step)
        window = (idx[:, None] + offsets) % self.capacity
        stored_after = (self.pos - 1 - idx) % self.capacity  # steps stored after idx, up to the newest
        ends = self.episode_end[window]
        ended_before = np.cumsum(ends, axis=1) - ends  # episode ends strictly before each step of the window
        valid = (offsets <= stored_after[:, None]) & (ended_before == 0)
        k = valid.sum(axis=1)
        powers = (self.gamma ** offsets).astype(np.float32)
        reward = (self.reward[window] * powers * valid).sum(axis=1, dtype=np.float32)
        last = window[np.arange(len(idx)), k - 1]
        discount = (self.gamma ** k).astype(np.float32)
        return Batch(t(self.obs[idx]), t(self.action[idx]), t(reward), t(self.next_obs[last]),
                     t(self.terminated[last]), t(discount))

    def state_dict(self) -> dict[str, Any]:
        """Only the filled part is saved, in insertion order independent of capacity."""
        n = self.size
        return {
            "capacity": self.capacity, "pos": self.pos, "size": n, "rng": self.rng.bit_generator.state,
            **{name: torch.from_numpy(getattr(self, name)[:n].copy()) for name in self.ARRAYS},
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd["capacity"] != self.capacity:
            raise ValueError(f"replay capacity {sd['capacity']} in checkpoint != configured {self.capacity}")
        n = sd["size"]
        for name in self.ARRAYS:
            # replays saved before episode_end existed: their episode ends are known only where they terminated
            value = sd.get(name, sd["terminated"]) if name == "episode_end" else sd[name]
            getattr(self, name)[:n] = value.numpy()
        self.pos, self.size = sd["pos"], n
        self.rng.bit_generator.state = sd["rng"]
