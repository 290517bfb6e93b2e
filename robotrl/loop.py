"""The off-policy training loop: act, store in replay, update, one environment step at a time.

It knows an algorithm only through the Agent contract (see robotrl.algos); what every loop shares (the Run, its
evaluation, keep-best, progress, checkpoints) is in robotrl.run, whose `train` drives this loop's `advance`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robotrl.config import LoopConfig, RobotrlError
from robotrl.envs import get_env_state, set_env_state
from robotrl.envs.goal import goal_wrapper
from robotrl.logger import RunLogger
from robotrl.replay import Batch, Hindsight, ReplayBuffer
from robotrl.run import Run

HAS_REPLAY = True  # checkpoints save the replay buffer beside them


def setup(run: Run, make_train_env: Callable[[], gym.Env], horizon: int | None) -> None:
    """The run's training env, replay buffer and (warmup_policy "scripted") the task's scripted policy."""
    cfg: LoopConfig = run.loop_cfg
    run.env = make_train_env()
    if horizon is not None and cfg.n_step > horizon:
        raise RobotrlError(f"config key 'n_step' must be at most the task's horizon ({horizon}), got {cfg.n_step}")
    run.buffer = make_replay(run.env, run.obs_dim, run.action_dim, cfg, run.algo_cfg, run.seed, run.task)
    if cfg.warmup_policy == "scripted":
        if not hasattr(run.env.unwrapped, "scripted_policy"):
            raise RobotrlError(f"warmup_policy 'scripted': task '{run.task}' has no scripted policy; use 'uniform'")
        run.script = run.env.unwrapped.scripted_policy()


def make_replay(env: gym.Env, obs_dim: int, action_dim: int, cfg: LoopConfig, algo_cfg: Any, seed: int,
                task: str) -> ReplayBuffer:
    """The run's replay: n-step windows, hindsight relabelling and uint8 image storage as the card asks (the
    distributed replay actor builds its own with this)."""
    image = getattr(algo_cfg, "image_shape", ())  # a pixel observation's image: stored as uint8
    return ReplayBuffer(obs_dim, action_dim, cfg.buffer_size, seed=seed + 1, n_step=cfg.n_step, gamma=algo_cfg.gamma,
                        hindsight=_hindsight(env, cfg, task), uint8_tail=int(np.prod(image)) if image else 0)


def _hindsight(env: gym.Env, cfg: LoopConfig, name: str) -> Hindsight | None:
    if cfg.her_goals == 0:
        return None
    goals = goal_wrapper(env)
    if goals is None:
        raise RobotrlError(f"config key 'her_goals' needs a goal-conditioned task (a Dict observation with "
                           f"observation, achieved_goal, desired_goal); '{name}' is not one: set her_goals 0")
    if cfg.n_step != 1:
        raise RobotrlError(f"config key 'her_goals' needs n_step 1, got n_step {cfg.n_step}")
    return Hindsight(cfg.her_goals, goals.slices["achieved_goal"], goals.slices["desired_goal"],
                     lambda achieved, desired: goals.compute_reward(achieved, desired, None))


def start(run: Run) -> None:
    """Begin an episode (the run's first is seeded with the run seed)."""
    seed = run.seed if run.episodes == 0 and run.step == 0 else None
    obs, _ = run.env.reset(seed=seed)
    run.obs = np.asarray(obs, dtype=np.float32)
    run.normalizer.update(run.obs)
    run.episode_return, run.episode_len = 0.0, 0
    run.agent.reset_episode()
    if run.script is not None:
        run.script.reset()


def _act(run: Run) -> np.ndarray:
    cfg = run.loop_cfg
    if run.step < cfg.warmup_steps and run.script is not None:
        action = run.script(run.obs) + run.rng.normal(0.0, cfg.warmup_noise, run.action_dim)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
    if run.step < cfg.warmup_steps:
        return run.rng.uniform(-1.0, 1.0, run.action_dim).astype(np.float32)
    obs = run.normalizer.normalize(run.obs)
    return run.agent.act(obs, explore=True).astype(np.float32)


def _env_step(run: Run, logger: RunLogger) -> None:
    action = _act(run)
    next_obs, reward, terminated, truncated, _ = run.env.step(action)
    next_obs = np.asarray(next_obs, dtype=np.float32)
    # Store `terminated`, not `done`: the bootstrap is cut on termination only, never on truncation.
    run.buffer.add(run.obs, action, float(reward), next_obs, bool(terminated), bool(terminated or truncated))
    run.normalizer.update(next_obs)
    run.obs = next_obs
    run.episode_return += float(reward)
    run.episode_len += 1
    run.step += 1
    if terminated or truncated:
        run.episodes += 1
        run.recent_returns.append(run.episode_return)
        logger.scalar("train/episode_return", run.episode_return, run.step)
        logger.scalar("train/episode_length", run.episode_len, run.step)
        start(run)


def _sample(run: Run) -> Batch:
    """A replay batch with its observations normalised, as every update sees it."""
    batch = run.buffer.sample(run.loop_cfg.batch_size, device=run.loop_cfg.device)
    batch.obs, batch.next_obs = run.normalizer(batch.obs), run.normalizer(batch.next_obs)
    return batch


def _updates(run: Run, update: Callable[[Run], None] | None = None) -> None:
    """The updates a step earns (updates_per_step after the warm-up); each is `update(run)` (the distributed loop's
    Bellman-updater step) or, by default, the agent's update on a fresh batch."""
    cfg = run.loop_cfg
    if run.step < cfg.warmup_steps or len(run.buffer) < cfg.batch_size:
        return
    run.update_credit += cfg.updates_per_step
    while run.update_credit >= 1.0:
        run.update_credit -= 1.0
        if update is None:
            run.metrics.add(run.agent.update(_sample(run)))
        else:
            update(run)


def advance(run: Run, logger: RunLogger) -> None:
    """One environment step, then the updates it earns (updates_per_step after the warm-up)."""
    _env_step(run, logger)
    _updates(run)


def state_dict(run: Run) -> dict[str, Any]:
    """This loop's part of a checkpoint's loop state."""
    return {"update_credit": run.update_credit,
            "env": get_env_state(run.env) if run.obs is not None else None,
            "script": run.script.state_dict() if run.script is not None else None}


def load_state_dict(run: Run, state: dict[str, Any]) -> None:
    run.update_credit = state["update_credit"]
    if run.script is not None and state.get("script") is not None:
        run.script.load_state_dict(state["script"])
    if state["obs"] is not None and state["env"] is None:  # a distributed run's learner has no env episode
        run.obs = None
    elif state["obs"] is not None:
        run.env.reset(seed=run.seed)
        set_env_state(run.env, state["env"])
