"""Hindsight relabelling in replay: goals come from the same episode at or after the sampled step, rewards are
recomputed for them, the share relabelled is k / (k + 1), open episodes and the ring's wrap-around are handled, and
a saved buffer samples the same batches after loading; the loop refuses it where it cannot apply."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import split_and_whole_runs

from robotrl import RobotrlError
from robotrl.replay import Hindsight, ReplayBuffer
from robotrl.run import build_run

# obs layout: [t, achieved (1), desired (1)]; the env's reward: 0 when achieved == desired, else -1
ACHIEVED, DESIRED = (1, 2), (2, 3)
DESIRED_GOAL = -100.0


def _reward(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
    return -(np.abs(achieved - desired).sum(axis=-1) > 1e-6).astype(np.float32)


def _buffer(capacity: int, episodes: list[int], goals: int = 4, open_last: bool = False) -> ReplayBuffer:
    """Episodes of the given lengths; step t of episode e achieves 10 e + t + 1 (next_obs), never the goal."""
    buf = ReplayBuffer(3, 1, capacity, seed=0, hindsight=Hindsight(goals, ACHIEVED, DESIRED, _reward))
    for e, length in enumerate(episodes):
        for t in range(length):
            obs = np.array([10 * e + t, 10 * e + t, DESIRED_GOAL])
            next_obs = np.array([10 * e + t + 1, 10 * e + t + 1, DESIRED_GOAL])
            end = t == length - 1 and not (open_last and e == len(episodes) - 1)
            buf.add(obs, np.zeros(1), -1.0, next_obs, False, end)
    return buf


def _check_goals(buf: ReplayBuffer, idx: np.ndarray, episode_of: dict[int, tuple[int, int]]) -> float:
    """Every relabelled goal was achieved in the sample's episode at or after its step; returns the share."""
    b = buf.gather(idx)
    goal, step = b.obs[:, 2].numpy(), b.obs[:, 0].numpy()
    relabelled = goal != DESIRED_GOAL
    for s, g, r, ng in zip(step[relabelled], goal[relabelled], b.reward[relabelled].numpy(),
                           b.next_obs[relabelled, 2].numpy(), strict=True):
        first, last = episode_of[int(s)]
        assert s + 1 <= g <= last + 1, (s, g, first, last)  # achieved at s+1 .. the episode's last next_obs
        assert ng == g  # the same goal in obs and next_obs
        assert r == (0.0 if g == s + 1 else -1.0)  # recomputed: only the goal achieved right now pays
    assert np.all(b.reward[~relabelled].numpy() == -1.0)
    return float(relabelled.mean())


def _episodes(lengths: list[int]) -> dict[int, tuple[int, int]]:
    out = {}
    for e, length in enumerate(lengths):
        for t in range(length):
            out[10 * e + t] = (10 * e, 10 * e + length - 1)
    return out


def test_relabelled_goals_come_from_the_same_episode_at_or_after_the_step():
    lengths = [5, 3, 7]
    buf = _buffer(100, lengths)
    share = _check_goals(buf, np.repeat(np.arange(15), 400), _episodes(lengths))
    assert abs(share - 0.8) < 0.02  # k = 4: four relabelled per real goal


def test_an_open_episode_relabels_up_to_the_newest_step():
    lengths = [4, 6]
    buf = _buffer(100, lengths, open_last=True)
    b = buf.gather(np.repeat(np.array([4, 5, 6, 7, 8, 9]), 300))
    goal, step = b.obs[:, 2].numpy(), b.obs[:, 0].numpy()
    relabelled = goal != DESIRED_GOAL
    assert np.all(goal[relabelled] <= 16) and np.all(goal[relabelled] >= step[relabelled] + 1)
    assert goal[relabelled].max() == 16  # the newest step's achieved goal is reachable from all of them


def test_the_ring_wraps_inside_an_episode():
    # capacity 8 after episodes of 5 and 6 steps: the second occupies positions 5, 6, 7, 0, 1, 2
    lengths = [5, 6]
    buf = _buffer(8, lengths)
    assert buf.pos == 3
    b = buf.gather(np.repeat(np.array([7]), 500))  # episode 1's step t = 2 (obs 12), three more steps after it
    goal = b.obs[:, 2].numpy()
    relabelled = goal[goal != DESIRED_GOAL]
    assert set(np.unique(relabelled)) == {13.0, 14.0, 15.0, 16.0}


def test_no_goal_is_relabelled_with_zero_goals_and_all_nearly_all_with_many():
    lengths = [6, 6]
    assert _check_goals(_buffer(50, lengths, goals=0), np.arange(12).repeat(50), _episodes(lengths)) == 0.0
    assert _check_goals(_buffer(50, lengths, goals=1000), np.arange(12).repeat(50), _episodes(lengths)) > 0.99


def test_a_saved_buffer_samples_the_same_batches_after_loading():
    buf = _buffer(20, [5, 4], open_last=True)
    state = buf.state_dict()
    again = ReplayBuffer(3, 1, 20, seed=123, hindsight=Hindsight(4, ACHIEVED, DESIRED, _reward))
    again.load_state_dict(state)
    for name in ("obs", "reward", "next_obs"):
        assert np.array_equal(getattr(buf.sample(64), name).numpy(), getattr(again.sample(64), name).numpy())
    for a, b in ((buf, again),):  # later episodes extend the restored open episode identically
        for r in (a, b):
            r.add(np.array([9, 9, DESIRED_GOAL]), np.zeros(1), -1.0, np.array([10, 10, DESIRED_GOAL]), False, True)
        assert np.array_equal(a.episode_last[:a.size], b.episode_last[:b.size])


def test_the_loop_refuses_hindsight_where_it_cannot_apply():
    with pytest.raises(RobotrlError, match="her_goals.*goal-conditioned"):
        build_run("pendulum", "sac", overrides={"her_goals": 4})
    with pytest.raises(RobotrlError, match="her_goals.*n_step 1"):
        build_run("panda-reach", "sac", overrides={"her_goals": 4, "n_step": 3})
    with pytest.raises(RobotrlError, match="her_goals"):
        build_run("panda-reach", "sac", overrides={"her_goals": -1})


def test_resume_with_hindsight_mid_episode_equals_the_uninterrupted_run(tmp_path):
    cfg = dict(warmup_steps=40, batch_size=16, eval_every=0, eval_episodes=1, actor_hidden=[16], critic_hidden=[16],
               buffer_size=5000)
    # split 25 steps into the second episode, while it is open in replay
    resumed, full = split_and_whole_runs(tmp_path, "panda-reach", "sac", 3, cfg, 75, 150)
    assert np.array_equal(full.buffer.episode_last, resumed.buffer.episode_last)
    assert np.array_equal(full.buffer.obs, resumed.buffer.obs)


def test_bench_env_reports_the_replay_bytes_of_a_million_goal_transitions(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "bench_env.py"
    spec = importlib.util.spec_from_file_location("bench_env", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # panda-reach: obs and next_obs 21 float32 each, action 4, reward/terminated/episode_end float32, episode_last int64
    assert bench.replay_bytes("panda-reach") == 1_000_000 * (2 * 21 * 4 + 4 * 4 + 3 * 4 + 8)
    assert bench.main(["--tasks", "panda-reach", "--steps", "50", "--train-steps", "20"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| panda-reach |") and row.endswith("| 195 MiB |")


@pytest.mark.parametrize("algo", ["ddpg", "td3", "sac", "naf"])
def test_every_off_policy_algorithm_trains_on_relabelled_batches(algo):
    from robotrl.run import train

    hidden = {"hidden": [16]} if algo == "naf" else {"actor_hidden": [16], "critic_hidden": [16]}
    run = build_run("panda-reach", algo, seed=0, overrides={"warmup_steps": 60, "batch_size": 32, "eval_every": 0,
                                                           "eval_episodes": 1, "her_goals": 4, **hidden})
    train(run, 120, progress=False, evaluate_at_end=False)
    batch = run.buffer.sample(512)
    lo, hi = run.buffer.hindsight.desired
    stored_goals = {tuple(g) for g in run.buffer.obs[:len(run.buffer), lo:hi].round(6)}
    sampled = [tuple(g) for g in batch.obs[:, lo:hi].numpy().round(6)]
    relabelled = np.mean([g not in stored_goals for g in sampled])
    assert 0.6 < relabelled < 0.95  # about k / (k + 1) of the batch carries an achieved goal instead
    assert (batch.reward == 0).any()  # some relabelled goals were achieved at once: reward recomputed to 0
    assert run.metrics.counts and all(np.isfinite(v) for v in run.metrics.means().values())
