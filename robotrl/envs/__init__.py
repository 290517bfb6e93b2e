"""Task cards (envs/<task>.yaml) and the gymnasium environments built from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
import yaml
from gymnasium.wrappers import RescaleAction

from robotrl.config import RobotrlError, first_line
from robotrl.envs.goal import GoalObservation, is_goal_space
from robotrl.resources import data_dir

gym.register(id="RobotrlGrasp-v0", entry_point="robotrl.envs.grasp:GraspEnv")
gym.register(id="RobotrlPandaReach-v0", entry_point="robotrl.envs.panda:PandaReachEnv")
gym.register(id="RobotrlPandaPush-v0", entry_point="robotrl.envs.panda:PandaPushEnv")
gym.register(id="RobotrlPandaPick-v0", entry_point="robotrl.envs.panda:PandaPickEnv")
gym.register(id="RobotrlPandaGrasp-v0", entry_point="robotrl.envs.panda_grasp:PandaGraspEnv")
# robotrl's own envs whose episode end is part of the task (grasp's forced lift test): make_env passes the card's
# horizon to them under this keyword as well as to gymnasium's TimeLimit, so the card is the one source.
HORIZON_KWARGS = {"RobotrlGrasp-v0": "max_steps", "RobotrlPandaGrasp-v0": "max_steps"}


def _planar_distance(env: gym.Env, body_a: str, body_b: str) -> float:
    u = env.unwrapped
    return float(np.linalg.norm(u.get_body_com(body_a)[:2] - u.get_body_com(body_b)[:2]))


# Named success metrics a card can refer to: each returns a distance in metres (success when below threshold).
SUCCESS_METRICS = {
    "fingertip_to_target": lambda env: _planar_distance(env, "fingertip", "target"),
    "object_to_goal": lambda env: _planar_distance(env, "object", "goal"),
}


@dataclass
class SuccessSpec:
    metric: str
    threshold: float


@dataclass
class TaskCard:
    name: str
    env_id: str
    horizon: int
    description: str = ""
    success: SuccessSpec | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    algos: dict[str, dict[str, Any]] = field(default_factory=dict)


def cards_dir() -> Path:
    return data_dir("task_cards")


def list_tasks() -> list[str]:
    return sorted(p.stem for p in cards_dir().glob("*.yaml"))


def load_card(name: str) -> TaskCard:
    path = cards_dir() / f"{name}.yaml"
    if not path.is_file():
        raise RobotrlError(f"unknown task '{name}'; known tasks: {', '.join(list_tasks())}")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {"name", "env_id", "horizon", "description", "success", "env_kwargs", "algos"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RobotrlError(f"task card {path}: unknown key '{unknown[0]}'; valid keys: {', '.join(sorted(known))}")
    success = raw.get("success")
    if success is not None:
        if success.get("metric") not in SUCCESS_METRICS:
            raise RobotrlError(f"task card {path}: success.metric must be one of {', '.join(SUCCESS_METRICS)}")
        success = SuccessSpec(metric=success["metric"], threshold=float(success["threshold"]))
    return TaskCard(name=raw.get("name", name), env_id=raw["env_id"], horizon=int(raw["horizon"]),
                    description=raw.get("description", ""), success=success,
                    env_kwargs=raw.get("env_kwargs") or {}, algos=raw.get("algos") or {})


def env_spec_json(env: gym.Env) -> str:
    """A user's gymnasium env as its full spec in JSON (id, make kwargs, max_episode_steps, gymnasium's own
    wrappers): evaluation, resume and export rebuild the env from this (env_from_spec; build_run does so at once
    for its evaluation env), so an env the spec cannot describe is refused rather than silently swapped for
    another MDP later."""
    spec = env.spec
    if spec is None:
        raise RobotrlError("a gymnasium env passed to robotrl needs a registered spec: build it with gymnasium.make")
    unrecorded = [w.name for w in spec.additional_wrappers if w.kwargs is None]
    if unrecorded:
        raise RobotrlError(f"the env's wrapper {unrecorded[0]} does not record its constructor arguments, so robotrl "
                           "cannot rebuild the same env to evaluate, resume or export; register an env id whose "
                           "entry point applies it (gymnasium.register), or make the wrapper inherit "
                           "gymnasium.utils.RecordConstructorArgs")
    try:
        return spec.to_json()
    except Exception as exc:  # gymnasium's own words: kwargs that are not JSON
        raise RobotrlError(f"robotrl cannot record the env {spec.id} by its spec ({first_line(exc)}); register an "
                           "env id that builds it with JSON-serialisable kwargs") from None


def env_from_spec(spec_json: str, **make_kwargs: Any) -> gym.Env:
    """Rebuild a user's env from env_spec_json's text (a one-line error when it no longer builds here);
    make_kwargs (render_mode, width, height) go to gymnasium.make on top of the recorded ones."""
    from gymnasium.envs.registration import EnvSpec

    spec = EnvSpec.from_json(spec_json)
    try:
        return gym.make(spec, **make_kwargs)
    except Exception as exc:
        raise RobotrlError(f"cannot rebuild the run's env {spec.id} from its recorded spec: {first_line(exc)} "
                           "(is the package that registers it installed and imported?)") from None


def task_source(task: str, env_spec: str | None = None, env_kwargs: dict[str, Any] | None = None,
                **make_kwargs: Any) -> str | TaskCard | gym.Env:
    """What a saved run's task refers to: a task card (its name; make_env builds it), or, for runs trained on a
    user-supplied env, that env rebuilt from its recorded spec with `make_kwargs` (older runs recorded only the id).
    `env_kwargs` change the env's own arguments (evaluation on a variant: panda-grasp's held-out objects)."""
    if env_spec is not None:
        return env_from_spec(env_spec, **(env_kwargs or {}), **make_kwargs)
    if task in list_tasks():
        if not env_kwargs:
            return task
        card = load_card(task)
        return dataclasses.replace(card, env_kwargs={**card.env_kwargs, **env_kwargs})
    try:
        return gym.make(task, **(env_kwargs or {}), **make_kwargs)
    except gym.error.Error:
        raise RobotrlError(f"unknown task '{task}': no task card (known: {', '.join(list_tasks())}) and no "
                           "registered gymnasium env of that id") from None


class SuccessInfo(gym.Wrapper):
    """Adds info['is_success'] and info['success_distance'] after every step (judged at episode end)."""

    def __init__(self, env: gym.Env, spec: SuccessSpec):
        super().__init__(env)
        self.metric, self.threshold = SUCCESS_METRICS[spec.metric], spec.threshold

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        distance = self.metric(self.env)
        info["success_distance"] = distance
        info["is_success"] = distance < self.threshold
        return obs, reward, terminated, truncated, info


def make_env(task: str | TaskCard | gym.Env, normalize_actions: bool = True,
             render_mode: str | None = None, render_size: tuple[int, int] | None = None,
             flatten_goals: bool = True) -> gym.Env:
    """Build the task's env. With normalize_actions the agent side acts in [-1, 1]; the rescale to the
    actuator bounds (which may differ per dimension) happens here, once. A goal-conditioned env's Dict observation
    becomes one flat vector (robotrl.envs.goal) unless flatten_goals is False (a peer library's own HER buffer
    wants the Dict)."""
    if isinstance(task, gym.Env):
        env = task
    else:
        card = task if isinstance(task, TaskCard) else load_card(task)
        size = {"width": render_size[0], "height": render_size[1]} if render_size else {}
        horizon = {HORIZON_KWARGS[card.env_id]: card.horizon} if card.env_id in HORIZON_KWARGS else {}
        try:
            env = gym.make(card.env_id, max_episode_steps=card.horizon, render_mode=render_mode, **size,
                           **horizon, **card.env_kwargs)
        except TypeError as exc:  # an env_kwargs key the env does not take
            why = first_line(exc, limit=1000).split(" was raised from the environment creator")[0][:160]
            raise RobotrlError(f"task card '{card.name}': env_kwargs do not fit {card.env_id}: {why}") from None
        if card.success is not None:
            env = SuccessInfo(env, card.success)
    if flatten_goals and is_goal_space(env.observation_space):
        env = GoalObservation(env)
    if not isinstance(env.action_space, gym.spaces.Box) or len(env.action_space.shape) != 1:
        raise RobotrlError(f"robotrl needs a flat Box action space, got {env.action_space}")
    if not np.all(np.isfinite(env.action_space.low)) or not np.all(np.isfinite(env.action_space.high)):
        raise RobotrlError("robotrl needs finite action bounds to rescale actions into [-1, 1]")
    if normalize_actions:
        ones = np.ones(env.action_space.shape, dtype=np.float32)
        env = RescaleAction(env, -ones, ones)
    return env


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """Everything needed to continue a MuJoCo episode bit for bit: the full integration state
    (qpos, qvel, act, warm-start, ctrl, ...), the env's RNG and the time-limit counter."""
    u = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(u.model, spec), dtype=np.float64)
    mujoco.mj_getState(u.model, u.data, state, spec)
    limit = _time_limit(env)
    return {"mj_state": torch.from_numpy(state), "np_random": u.np_random.bit_generator.state,
            "elapsed_steps": limit._elapsed_steps if limit is not None else 0,
            # tasks that randomise the model itself or keep episode counters (grasp) add their own
            "task_state": u.task_state() if hasattr(u, "task_state") else None}


def set_env_state(env: gym.Env, saved: dict[str, Any]) -> None:
    u = env.unwrapped
    if saved.get("task_state") is not None:
        u.set_task_state(saved["task_state"])
    mujoco.mj_setState(u.model, u.data, saved["mj_state"].numpy(), mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(u.model, u.data)
    u.np_random.bit_generator.state = saved["np_random"]
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = saved["elapsed_steps"]
