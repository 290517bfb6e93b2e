"""Preallocated float32 ring buffer of transitions; sampling is vectorised (no per-sample Python).

With n_step > 1 a sample is an n-step transition assembled at sampling time from consecutive stored steps:
R = sum_{j<k} gamma^j r_{t+j}, bootstrapped from s_{t+k} with gamma^k, where the window of k <= n steps stops
after the step that ends the episode (termination: no bootstrap; time-limit truncation: bootstrap from the real
final observation) and at the newest stored step (Sutton & Barto 2018, section 7.1; Hessel et al. 2018).

With a Hindsight spec the buffer relabels goals at sampling time (Andrychowicz et al. 2017, "future" strategy): a
sampled transition (s_t, a_t, s_{t+1}) of an episode ending at step T keeps its goal with probability 1/(k+1) and
otherwise takes the goal achieved at s_{f+1} for a uniform f in [t, T]; its reward is recomputed for that goal.

With `uint8_tail` the last entries of every observation are an image's 0..255 values, stored as uint8 (a quarter of
float32's memory) and returned as float32 with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass
class Hindsight:
    """Where the goals sit in the stored observation vectors, and how a reward follows from (achieved, desired)."""

    goals: int
    """k: relabelled goals per real one; a sample is relabelled with probability k / (k + 1)."""
    achieved: tuple[int, int]
    desired: tuple[int, int]
    reward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """Vectorised over rows: the env's compute_reward(achieved_goal, desired_goal)."""


class ReplayBuffer:
    ARRAYS = ("obs", "action", "reward", "next_obs", "terminated", "episode_end")

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, seed: int | None = None, n_step: int = 1,
                 gamma: float = 0.99, hindsight: Hindsight | None = None, uint8_tail: int = 0) -> None:
        if hindsight is not None and n_step != 1:
            raise ValueError("hindsight relabelling needs n_step 1")
        if hindsight is not None and uint8_tail:
            raise ValueError("hindsight relabelling needs float observations (no uint8_tail)")
        if not 0 <= uint8_tail <= obs_dim:
            raise ValueError(f"uint8_tail must be in 0..{obs_dim}, got {uint8_tail}")
        self.uint8_tail = int(uint8_tail)
        self.arrays = self.ARRAYS + (("obs_u8", "next_obs_u8") if uint8_tail else ())
        self.capacity, self.n_step, self.gamma = int(capacity), int(n_step), float(gamma)
        self.hindsight = hindsight
        # hindsight: the stored position of each transition's episode's last step (-1 while the episode is open)
        self.episode_last = np.full(self.capacity, -1, dtype=np.int64) if hindsight is not None else None
        self.episode_start = 0
        self.float_width = obs_dim - self.uint8_tail
        self.obs = np.zeros((self.capacity, self.float_width), dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, self.float_width), dtype=np.float32)
        if self.uint8_tail:
            self.obs_u8 = np.zeros((self.capacity, self.uint8_tail), dtype=np.uint8)
            self.next_obs_u8 = np.zeros((self.capacity, self.uint8_tail), dtype=np.uint8)
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
        k = self.float_width
        self.obs[i] = obs[:k]
        self.action[i] = action
        self.reward[i] = reward
        self.next_obs[i] = next_obs[:k]
        if self.uint8_tail:
            self.obs_u8[i] = obs[k:]
            self.next_obs_u8[i] = next_obs[k:]
        self.terminated[i] = float(terminated)
        self.episode_end[i] = float(terminated if episode_end is None else episode_end)
        if self.episode_last is not None:
            self.episode_last[i] = -1
            if self.episode_end[i]:
                length = (i - self.episode_start) % self.capacity + 1
                self.episode_last[(self.episode_start + np.arange(length)) % self.capacity] = i
        if self.episode_end[i]:
            self.episode_start = (i + 1) % self.capacity
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_block(self, block: dict[str, np.ndarray]) -> None:
        """A block of steps as arrays (a distributed collector's: the ARRAYS keys), added one step at a time."""
        for t in range(len(block["reward"])):
            self.add(block["obs"][t], block["action"][t], float(block["reward"][t]), block["next_obs"][t],
                     bool(block["terminated"][t]), bool(block["episode_end"][t]))

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> Batch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.gather(self.rng.integers(0, self.size, size=batch_size), device)

    def gather(self, idx: np.ndarray, device: torch.device | str = "cpu") -> Batch:
        """The (n-step) transitions that start at stored positions `idx`; with hindsight, relabelled (this draws from
        the buffer's RNG)."""
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        if self.hindsight is not None:
            obs, reward, next_obs = self._relabelled(idx)
            return Batch(t(obs), t(self.action[idx]), t(reward), t(next_obs), t(self.terminated[idx]))
        if self.n_step == 1:
            return Batch(t(self.rows("obs", idx)), t(self.action[idx]), t(self.reward[idx]),
                         t(self.rows("next_obs", idx)), t(self.terminated[idx]))
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
        return Batch(t(self.rows("obs", idx)), t(self.action[idx]), t(reward), t(self.rows("next_obs", last)),
                     t(self.terminated[last]), t(discount))

    def rows(self, name: str, idx: np.ndarray) -> np.ndarray:
        """Stored observations ("obs" or "next_obs") at `idx` as float32, the uint8 image entries included."""
        rows = getattr(self, name)[idx]
        if not self.uint8_tail:
            return rows
        return np.concatenate([rows, getattr(self, name + "_u8")[idx].astype(np.float32)], axis=1)

    def _relabelled(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """obs, reward, next_obs of the transitions at `idx`, a k/(k+1) share with a future achieved goal."""
        her = self.hindsight
        obs, reward, next_obs = self.obs[idx], self.reward[idx], self.next_obs[idx]  # copies (fancy indexing)
        last = self.episode_last[idx]
        last = np.where(last < 0, (self.pos - 1) % self.capacity, last)  # an open episode ends, so far, at the newest
        span = (last - idx) % self.capacity  # stored steps after idx in its episode
        future = (idx + (self.rng.random(len(idx)) * (span + 1)).astype(np.int64)) % self.capacity
        chosen = np.flatnonzero(self.rng.random(len(idx)) < her.goals / (her.goals + 1))
        (a0, a1), (d0, d1) = her.achieved, her.desired
        goal = self.next_obs[future[chosen], a0:a1]
        obs[chosen, d0:d1] = goal
        next_obs[chosen, d0:d1] = goal
        if len(chosen):
            reward[chosen] = her.reward(next_obs[chosen, a0:a1], goal)
        return obs, reward, next_obs

    def state_dict(self) -> dict[str, Any]:
        """Only the filled part is saved, in insertion order independent of capacity."""
        n = self.size
        sd = {
            "capacity": self.capacity, "pos": self.pos, "size": n, "rng": self.rng.bit_generator.state,
            "episode_start": self.episode_start,
            **{name: torch.from_numpy(getattr(self, name)[:n].copy()) for name in self.arrays},
        }
        if self.episode_last is not None:
            sd["episode_last"] = torch.from_numpy(self.episode_last[:n].copy())
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd["capacity"] != self.capacity:
            raise ValueError(f"replay capacity {sd['capacity']} in checkpoint != configured {self.capacity}")
        n = sd["size"]
        if ("obs_u8" in sd) != bool(self.uint8_tail) or sd["obs"].shape[1:] != self.obs.shape[1:]:
            raise ValueError(f"the saved replay's observations ({sd['obs'].shape[1]} float entries"
                             f"{' + uint8 image' if 'obs_u8' in sd else ''}) do not fit this buffer's "
                             f"({self.float_width}{' + uint8 image' if self.uint8_tail else ''})")
        for name in self.arrays:
            # replays saved before episode_end existed: their episode ends are known only where they terminated
            value = sd.get(name, sd["terminated"]) if name == "episode_end" else sd[name]
            getattr(self, name)[:n] = value.numpy()
        if self.episode_last is not None:
            if "episode_last" not in sd:
                raise ValueError("the saved replay has no hindsight episode index (it was written with her_goals 0)")
            self.episode_last[:n] = sd["episode_last"].numpy()
        self.pos, self.size = sd["pos"], n
        self.episode_start = sd.get("episode_start", self.pos)
        self.rng.bit_generator.state = sd["rng"]
