"""The on-policy loop: N environments stepped together (gymnasium's SyncVectorEnv), a preallocated rollout of
T x N steps, one algorithm update per rollout.

A time-limit truncation is not a termination: the truncated step's reward gets gamma V(final observation) added,
and the episode boundary then cuts the advantage recursion (robotrl.targets.gae). What every loop shares (the Run,
evaluation, keep-best, progress, checkpoints, export) is in robotrl.run; its `train` drives `advance` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from robotrl.config import RobotrlError, RolloutConfig
from robotrl.envs import get_env_state, set_env_state
from robotrl.logger import RunLogger
from robotrl.run import Run

HAS_REPLAY = False  # nothing outlives a rollout: a checkpoint at a rollout boundary holds the whole state


@dataclass
class Rollout:
    """One rollout, every tensor (T, N, ...) except last_values (N,): what an on-policy update reads."""

    obs: torch.Tensor  # normalised as the policy saw them
    actions: torch.Tensor  # the unclipped samples whose log-probabilities were recorded
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # scaled (normalize_reward), plus gamma V(final obs) on a truncated step
    dones: torch.Tensor  # 1 where the episode ended at this step (terminated or truncated)
    last_values: torch.Tensor  # V of the observations after the rollout's last step
    progress: float  # fraction of total_steps trained when this rollout ended (learning-rate annealing)


class RolloutBuffer:
    """Preallocated storage of one rollout, overwritten in place by every rollout."""

    def __init__(self, steps: int, n_envs: int, obs_dim: int, action_dim: int) -> None:
        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(steps, n_envs, *shape, dtype=torch.float32)

        self.obs, self.actions = zeros(obs_dim), zeros(action_dim)
        self.log_probs, self.values, self.rewards, self.dones = zeros(), zeros(), zeros(), zeros()
        # numpy views of the same memory: a step's row is written through them (a numpy assignment costs a
        # fraction of a torch index_put on rows this small)
        self.rows = [t.numpy() for t in (self.obs, self.actions, self.log_probs, self.values, self.rewards,
                                         self.dones)]

    def store(self, t: int, obs: torch.Tensor, action: torch.Tensor, log_prob: torch.Tensor, value: torch.Tensor,
              reward: np.ndarray, done: np.ndarray) -> None:
        values = (obs.numpy(), action.numpy(), log_prob.numpy(), value.numpy(), reward, done)
        for row, value_t in zip(self.rows, values, strict=True):
            row[t] = value_t

    def rollout(self, last_values: torch.Tensor, progress: float) -> Rollout:
        return Rollout(self.obs, self.actions, self.log_probs, self.values, self.rewards, self.dones,
                       last_values, progress)


class ReturnScaler:
    """Rewards divided by the running std of each env's discounted return (SB3's VecNormalize norm_reward)."""

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.returns = np.zeros(n_envs)
        self.count, self.mean, self.var = 1e-4, 0.0, 1.0

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + reward
        n = len(self.returns)
        if n == 1:  # one env: the batch's mean is its only return and its variance 0 (no numpy reductions)
            b_mean, b_var = float(self.returns[0]), 0.0
        else:
            b_mean, b_var = float(self.returns.mean()), float(self.returns.var())
        total = self.count + n
        delta = b_mean - self.mean
        self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
        self.mean, self.count = self.mean + delta * n / total, total
        self.returns[done] = 0.0
        return np.clip(reward / np.sqrt(self.var + self.eps), -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"returns": self.returns.tolist(), "count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = np.asarray(state["returns"], dtype=np.float64)
        self.count, self.mean, self.var = state["count"], state["mean"], state["var"]


def setup(run: Run, make_train_env: Callable[[], gym.Env], horizon: int | None) -> None:
    """The vector of n_envs training envs, the rollout buffer and (normalize_reward) the return scaler."""
    cfg: RolloutConfig = run.loop_cfg
    batch, size = cfg.rollout_steps * cfg.n_envs, getattr(run.algo_cfg, "minibatch_size", None)
    if size is not None and size > batch:  # PPO cuts its minibatches from one rollout
        raise RobotrlError(f"config key 'minibatch_size' ({size}) is larger than one rollout, rollout_steps x n_envs "
                           f"= {cfg.rollout_steps} x {cfg.n_envs} = {batch}; lower it or raise rollout_steps or n_envs")
    envs = [make_train_env() for _ in range(cfg.n_envs)]
    run.env = SyncVectorEnv([lambda env=env: env for env in envs], autoreset_mode=AutoresetMode.SAME_STEP)
    run.buffer = RolloutBuffer(cfg.rollout_steps, cfg.n_envs, run.obs_dim, run.action_dim)
    run.loop_objects["scaler"] = ReturnScaler(cfg.n_envs, run.algo_cfg.gamma) if cfg.normalize_reward else None


def start(run: Run) -> None:
    """Reset every env; env i of a new run is seeded with seed + i."""
    n = run.loop_cfg.n_envs
    obs, _ = run.env.reset(seed=[run.seed + i for i in range(n)] if run.step == 0 else None)
    run.obs = np.asarray(obs, dtype=np.float32)
    run.normalizer.update(run.obs)
    run.episode_return, run.episode_len = np.zeros(n), np.zeros(n, dtype=np.int64)


def _normalized(run: Run, obs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(run.normalizer.normalize(obs))


def advance(run: Run, logger: RunLogger) -> None:
    """One rollout of rollout_steps x n_envs steps, then one update of the algorithm on it."""
    run.metrics.add(run.agent.update(collect(run, logger)))


def collect(run: Run, logger: Any) -> Any:
    """One rollout of rollout_steps x n_envs steps with the run's agent (A3C's workers collect theirs with it)."""
    cfg: RolloutConfig = run.loop_cfg
    agent, gamma, scaler = run.agent, run.algo_cfg.gamma, run.loop_objects["scaler"]
    for t in range(cfg.rollout_steps):
        obs = _normalized(run, run.obs)
        action, log_prob, value = agent.sample(obs)
        next_obs, reward, terminated, truncated, info = run.env.step(np.clip(action.numpy(), -1.0, 1.0))
        done = terminated | truncated
        train_reward = scaler(reward, done) if scaler is not None else reward.astype(np.float64)
        cut = np.flatnonzero(truncated & ~terminated)
        if cut.size:  # bootstrap through the time limit from the final observation (the env has already reset)
            final = np.stack([info["final_obs"][i] for i in cut]).astype(np.float32)
            train_reward[cut] += gamma * agent.value(_normalized(run, final)).numpy()
        run.buffer.store(t, obs, action, log_prob, value, train_reward, done)
        run.episode_return += reward
        run.episode_len += 1
        for i in np.flatnonzero(done):
            run.episodes += 1
            run.recent_returns.append(float(run.episode_return[i]))
            logger.scalar("train/episode_return", run.episode_return[i], run.step + i + 1)
            logger.scalar("train/episode_length", run.episode_len[i], run.step + i + 1)
            run.episode_return[i], run.episode_len[i] = 0.0, 0
        run.obs = np.asarray(next_obs, dtype=np.float32)
        run.normalizer.update(run.obs)
        run.step += cfg.n_envs
    last_values = agent.value(_normalized(run, run.obs))
    return run.buffer.rollout(last_values, min(run.step / cfg.total_steps, 1.0))


def state_dict(run: Run) -> dict[str, Any]:
    """This loop's part of a checkpoint's loop state: every env's state and the return scaler."""
    scaler = run.loop_objects["scaler"]
    return {"envs": [get_env_state(env) for env in run.env.envs] if run.obs is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None}


def load_state_dict(run: Run, state: dict[str, Any]) -> None:
    run.episode_return = np.asarray(run.episode_return, dtype=np.float64)
    run.episode_len = np.asarray(run.episode_len, dtype=np.int64)
    if run.loop_objects["scaler"] is not None and state.get("scaler") is not None:
        run.loop_objects["scaler"].load_state_dict(state["scaler"])
    if state["obs"] is not None:
        run.env.reset(seed=[run.seed + i for i in range(run.loop_cfg.n_envs)])
        for env, saved in zip(run.env.envs, state["envs"], strict=True):
            set_env_state(env, saved)
