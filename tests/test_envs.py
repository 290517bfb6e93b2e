from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robotrl import RobotrlError, make_env
from robotrl.algos import ALGOS, get_algo
from robotrl.config import split_run_config
from robotrl.envs import get_env_state, list_tasks, load_card, set_env_state

TASKS = ["reach", "push", "pendulum", "cheetah", "hopper", "walker", "ant"]


def test_all_required_task_cards_exist_and_load():
    assert set(TASKS) <= set(list_tasks())
    for name in TASKS:
        card = load_card(name)
        assert card.horizon > 0 and "ddpg" in card.algos


def test_every_cards_algorithm_block_is_a_valid_config_of_that_algorithm():
    """A typo or a key of another algorithm in a card block is caught here, not an hour into a benchmark."""
    checked = 0
    for name in list_tasks():
        card = load_card(name)
        assert set(card.algos) <= set(ALGOS), f"{name}: unknown algorithm block"
        for algo, values in card.algos.items():
            spec = get_algo(algo)
            loop_cfg, _ = split_run_config(spec.config_cls, dict(values), f"card {name}.{algo}",
                                           loop_cls=spec.loop_config_cls)
            assert loop_cfg.total_steps > 0
            checked += 1
    for task in ("cheetah", "hopper", "walker", "ant", "reach", "pendulum"):  # the on-policy family's cards
        assert {"ppo", "a2c", "trpo", "reinforce"} <= set(load_card(task).algos), task
    assert checked >= 50


def test_unknown_task_lists_known_ones():
    with pytest.raises(RobotrlError, match="unknown task 'reacher'; known tasks: .*reach"):
        make_env("reacher")


@pytest.mark.parametrize("task", TASKS)
def test_env_conforms_to_gymnasium_spec_with_normalised_actions(task):
    env = make_env(task)
    check_env(env.unwrapped, skip_render_check=True)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    assert env.spec.max_episode_steps == load_card(task).horizon
    env.close()


@pytest.mark.parametrize("task", ["reach", "pendulum", "hopper"])
def test_same_seed_same_trajectory_and_randomised_initial_state(task):
    def rollout(seed):
        env = make_env(task)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        traj = [obs]
        for _ in range(20):
            obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            traj.append(obs)
        return np.stack(traj)

    assert np.array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3)[0], rollout(4)[0])


@pytest.mark.parametrize("task, threshold", [("reach", 0.02), ("push", 0.05)])
def test_success_is_planar_distance_under_threshold(task, threshold):
    env = make_env(task)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape))
    assert info["is_success"] == (info["success_distance"] < threshold)
    u = env.unwrapped
    a, b = ("fingertip", "target") if task == "reach" else ("object", "goal")
    assert info["success_distance"] == pytest.approx(np.linalg.norm(u.get_body_com(a)[:2] - u.get_body_com(b)[:2]))


def test_reach_success_when_fingertip_placed_on_target():
    env = make_env("reach")
    env.reset(seed=1)
    u = env.unwrapped
    qpos = u.data.qpos.copy()
    # put the target exactly under the fingertip, then take a zero-torque step
    qpos[2:4] = u.get_body_com("fingertip")[:2]
    u.set_state(qpos, np.zeros_like(u.data.qvel))
    _, _, _, _, info = env.step(np.zeros(2))
    assert info["success_distance"] < 0.02 and info["is_success"]


def test_action_rescale_maps_unit_box_to_actuator_bounds():
    env = make_env("pendulum")  # actuator range [-3, 3]
    env.reset(seed=0)
    env.step(np.array([0.5], dtype=np.float32))
    assert env.unwrapped.data.ctrl[0] == pytest.approx(1.5)


def test_env_state_round_trip_continues_identically():
    env = make_env("hopper")
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.full(3, 0.3))
    saved = get_env_state(env)
    ref = [env.step(np.full(3, -0.2))[0] for _ in range(10)]
    other = make_env("hopper")
    other.reset(seed=123)
    set_env_state(other, saved)
    got = [other.step(np.full(3, -0.2))[0] for _ in range(10)]
    assert np.array_equal(np.stack(ref), np.stack(got))


def test_plain_gymnasium_env_is_accepted():
    env = make_env(gym.make("InvertedPendulum-v5"))
    assert env.action_space.high[0] == 1.0
