"""The grasp task: assets, gymnasium conformance, determinism, reward terms, scripted policy."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robotrl import RobotrlError, make_env
from robotrl.envs import get_env_state, load_card, set_env_state
from robotrl.envs.grasp import OBS_DIM, SHAPES, ScriptedGrasp
from robotrl.resources import data_dir

ASSETS = sorted(data_dir("assets").rglob("*.xml"))


def test_assets_folder_has_the_task_and_its_parts():
    names = {p.relative_to(data_dir("assets")).as_posix() for p in ASSETS}
    assert {"grasp.xml", "common/materials.xml", "grippers/parallel_jaw.xml", "objects/graspable.xml"} <= names


@pytest.mark.parametrize("path", ASSETS, ids=lambda p: p.relative_to(data_dir("assets")).as_posix())
def test_every_asset_compiles(path: Path, tmp_path: Path):
    """The task compiles as it is; each part compiles inside a minimal world that includes it."""
    if path.parent == data_dir("assets"):
        model = mujoco.MjModel.from_xml_path(str(path))
    else:
        materials = data_dir("assets") / "common" / "materials.xml"
        inside = "" if path == materials else f'<worldbody><include file="{path}"/></worldbody>'
        wrapper = tmp_path / "wrapper.xml"
        wrapper.write_text(f'<mujoco><include file="{materials}"/>{inside}</mujoco>')
        model = mujoco.MjModel.from_xml_path(str(wrapper))
    data = mujoco.MjData(model)
    mujoco.mj_step(model, data, nstep=10)
    assert np.all(np.isfinite(data.qpos))


def test_env_conforms_to_gymnasium_spec():
    env = make_env("grasp")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (OBS_DIM,) and env.action_space.shape == (6,)
    assert env.spec.max_episode_steps == load_card("grasp").horizon


def _rollout(seed: int, steps: int = 8) -> np.ndarray:
    env = make_env("grasp")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    traj = [obs]
    for _ in range(steps):
        action = rng.uniform(-1, 1, 6)
        action[5] = -1.0  # do not terminate
        obs, *_ = env.step(action)
        traj.append(obs)
    return np.stack(traj)


def test_same_seed_same_trajectory_and_randomised_initial_state():
    assert np.array_equal(_rollout(3), _rollout(3))
    starts = np.stack([_rollout(s, steps=0)[0] for s in range(12)])
    assert len({tuple(np.round(x, 6)) for x in starts}) == 12
    shapes = {SHAPES[int(np.argmax(x[16:21]))] for x in starts}
    assert len(shapes) >= 3
    sizes = starts[:, 13:16]
    assert sizes.std(0).max() > 1e-3


def test_every_shape_appears_and_object_rests_on_the_table():
    env = make_env("grasp")
    seen = set()
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        u = env.unwrapped
        seen.add(u.shape)
        assert np.linalg.norm(u.data.qvel[-6:-3]) < 0.02  # settled (a sphere may still roll slowly)
        assert -0.01 < u.data.xpos[u.model.body("object").id][2] < 0.05
    assert seen == set(range(len(SHAPES)))


def test_reward_is_the_sum_of_its_info_terms_and_terminate_ends_with_a_lift_test():
    env = make_env("grasp")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.array([0, 0, 0, 0, -1, -1.0]))
    assert not terminated and reward == pytest.approx(info["reward_step"] + info["reward_grasp"]) == -0.05
    _, reward, terminated, _, info = env.step(np.array([0, 0, 0, 0, -1, 1.0]))  # terminate, nothing grasped
    assert terminated and info["is_success"] is False
    assert reward == pytest.approx(info["reward_step"] + info["reward_grasp"])


@pytest.mark.parametrize("horizon", [None, 7])
def test_episode_ends_at_the_cards_horizon_with_termination_and_the_time_left_observed(horizon):
    """The card's horizon is the one source: an edited card changes where the lift test happens, and the last
    observation entry counts the time left down from 1 to 0 (so the forced ending is in the Markov state)."""
    import dataclasses

    card = load_card("grasp") if horizon is None else dataclasses.replace(load_card("grasp"), horizon=horizon)
    env = make_env(card)
    obs, _ = env.reset(seed=1)
    assert obs[-1] == 1.0
    for t in range(card.horizon):
        obs, _, terminated, _, _ = env.step(np.array([0, 0, 0, 0, -1, -1.0]))
        assert terminated == (t == card.horizon - 1)
        assert obs[-1] == pytest.approx(1.0 - (t + 1) / card.horizon)


def test_grasp_without_a_horizon_is_a_one_line_error():
    from robotrl.envs.grasp import GraspEnv

    with pytest.raises(RobotrlError, match="GraspEnv needs a horizon"):
        GraspEnv().reset(seed=0)


def _scripted_success(episodes: int, noise: float, seed0: int) -> float:
    env = make_env("grasp")
    script, rng, wins = ScriptedGrasp(), np.random.default_rng(seed0), 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed0 + ep)
        script.reset()
        terminated = truncated = False
        while not (terminated or truncated):
            action = np.clip(script(obs) + rng.normal(0, noise, 6), -1, 1) if noise else script(obs)
            obs, _, terminated, truncated, info = env.step(action)
        wins += bool(info["is_success"])
    return wins / episodes


def test_noiseless_scripted_grasp_proves_the_task_solvable():
    assert _scripted_success(100, 0.0, seed0=5000) >= 0.9


def test_noisy_scripted_grasp_is_a_weak_exploration_policy():
    noise = load_card("grasp").algos["qtopt"]["warmup_noise"]
    rate = _scripted_success(60, noise, seed0=7000)
    assert 0.02 <= rate <= 0.4


def test_env_state_round_trip_restores_the_drawn_object():
    env = make_env("grasp")
    env.reset(seed=4)
    env.step(np.array([0.3, -0.2, -0.5, 0.1, -1, -1.0]))
    saved = get_env_state(env)
    ref = [env.step(np.array([0.1, 0.1, -0.3, 0, 0.5, -1.0]))[0] for _ in range(3)]
    other = make_env("grasp")
    other.reset(seed=99)  # a different object, size and mass
    set_env_state(other, saved)
    got = [other.step(np.array([0.1, 0.1, -0.3, 0, 0.5, -1.0]))[0] for _ in range(3)]
    assert np.array_equal(np.stack(ref), np.stack(got))
