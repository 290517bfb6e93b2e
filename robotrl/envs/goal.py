"""Goal-conditioned envs (gymnasium-robotics' GoalEnv convention) as robotrl's flat observation vectors.

A goal env's observation is a Dict with `observation`, `achieved_goal` and `desired_goal`, and the env has a
vectorised `compute_reward(achieved_goal, desired_goal, info)`. robotrl's agents, replay and exported policies see
the three concatenated in GOAL_KEYS order; the slices of the two goals let hindsight relabelling (robotrl.replay)
swap the desired goal and recompute the reward, and the card records the layout so a robot's own code can build the
vector without robotrl.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robotrl.config import RobotrlError

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def is_goal_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Dict) and set(space.spaces) == set(GOAL_KEYS)


def goal_widths(space: gym.spaces.Dict) -> dict[str, int]:
    widths = {}
    for key in GOAL_KEYS:
        sub = space[key]
        if not isinstance(sub, gym.spaces.Box) or len(sub.shape) != 1:
            raise RobotrlError(f"goal observation '{key}' must be a flat Box, got {sub}")
        widths[key] = int(sub.shape[0])
    return widths


def goal_slices(widths: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Where each GOAL_KEYS part sits in the flat vector, as [start, stop)."""
    slices, start = {}, 0
    for key in GOAL_KEYS:
        slices[key] = (start, start + widths[key])
        start += widths[key]
    return slices


def flatten_goal_obs(obs: dict[str, Any], widths: dict[str, int]) -> np.ndarray:
    """The flat vector of a goal observation (a dict of arrays, or of [batch, width] arrays); a missing key or a
    wrong width is a one-line error."""
    parts = []
    for key in GOAL_KEYS:
        if key not in obs:
            raise ValueError(f"goal observation is missing '{key}'; expected keys: {', '.join(GOAL_KEYS)}")
        part = np.asarray(obs[key], dtype=np.float32)
        if part.ndim not in (1, 2) or part.shape[-1] != widths[key]:
            raise ValueError(f"goal observation '{key}' must have width {widths[key]}, got shape {list(part.shape)}")
        parts.append(part)
    if len({p.ndim for p in parts}) != 1 or (parts[0].ndim == 2 and len({p.shape[0] for p in parts}) != 1):
        raise ValueError("goal observation parts must all be single vectors or batches of one size")
    return np.concatenate(parts, axis=-1)


def observation_layout(goals: GoalObservation) -> list[dict[str, Any]]:
    """Element blocks of the flat vector: name, unit, [start, stop). The env may name the blocks of its
    `observation` part (observation_layout()); otherwise that part is one block."""
    widths, env = goals.widths, goals.unwrapped
    named = env.observation_layout() if hasattr(env, "observation_layout") else None
    blocks = named or [{"name": "observation", "unit": "", "width": widths["observation"]}]
    if sum(b["width"] for b in blocks) != widths["observation"]:
        raise RobotrlError("the env's observation_layout() does not add up to its observation width")
    return block_slices([*blocks, {"name": "achieved_goal", "unit": "m", "width": widths["achieved_goal"]},
                         {"name": "desired_goal", "unit": "m", "width": widths["desired_goal"]}])


def block_slices(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive named blocks (name, unit, width) -> name, unit, [start, stop) in the flat vector."""
    layout, start = [], 0
    for b in blocks:
        layout.append({"name": b["name"], "unit": b["unit"], "slice": [start, start + b["width"]]})
        start += b["width"]
    return layout


class GoalObservation(gym.ObservationWrapper):
    """A goal env's Dict observation as one flat vector (GOAL_KEYS order); compute_reward, the widths and the
    slices stay reachable for hindsight relabelling and the export card."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not hasattr(env.unwrapped, "compute_reward"):
            raise RobotrlError("a goal-conditioned env (Dict observation with observation/achieved_goal/"
                               "desired_goal) needs a vectorised compute_reward(achieved_goal, desired_goal, info)")
        self.widths = goal_widths(env.observation_space)
        self.slices = goal_slices(self.widths)
        low = np.concatenate([env.observation_space[k].low for k in GOAL_KEYS])
        high = np.concatenate([env.observation_space[k].high for k in GOAL_KEYS])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], dtype=np.float64) for k in GOAL_KEYS])

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None) -> np.ndarray:
        return np.asarray(self.env.unwrapped.compute_reward(achieved_goal, desired_goal, info), dtype=np.float32)


def goal_wrapper(env: gym.Env) -> GoalObservation | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, GoalObservation):
            return env
        env = env.env
    return None
