"""n-step returns: hand-computed windows at a termination, a truncation and the ring buffer's wrap-around; the
target that uses them; config checks; exact resume with n_step > 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import split_and_whole_runs

from robotrl import RobotrlError
from robotrl.replay import ReplayBuffer
from robotrl.run import build_run
from robotrl.targets import bellman_target

G = 0.5


def _buffer(capacity: int, steps: list[tuple[float, bool, bool]], n: int = 3) -> ReplayBuffer:
    """Stored step t has obs [t], next_obs [t + 0.5], reward r, and the given terminated / episode-end flags."""
    buf = ReplayBuffer(1, 1, capacity, seed=0, n_step=n, gamma=G)
    for t, (r, terminated, end) in enumerate(steps):
        buf.add(np.array([t]), np.zeros(1), r, np.array([t + 0.5]), terminated, end)
    return buf


def _row(buf: ReplayBuffer, i: int) -> tuple[float, float, float, float]:
    b = buf.gather(np.array([i]))
    return float(b.reward[0]), float(b.next_obs[0, 0]), float(b.terminated[0]), float(b.discount[0])


def test_window_stops_at_a_termination_without_bootstrap():
    buf = _buffer(10, [(1.0, False, False), (2.0, True, True), (4.0, False, False), (8.0, False, False)])
    assert _row(buf, 0) == (1 + G * 2, 1.5, 1.0, G**2)  # stops at the terminal step; (1 - terminated) kills V
    assert _row(buf, 1) == (2.0, 1.5, 1.0, G)
    assert _row(buf, 2) == (4 + G * 8, 3.5, 0.0, G**2)  # the next episode's window never reaches back


def test_window_stops_at_a_truncation_and_bootstraps_from_the_final_observation():
    buf = _buffer(10, [(1.0, False, False), (2.0, False, True), (4.0, False, False), (8.0, False, False),
                       (16.0, False, False)])
    assert _row(buf, 0) == (1 + G * 2, 1.5, 0.0, G**2)  # next_obs of the truncated step, gamma^2
    assert _row(buf, 2) == (4 + G * 8 + G**2 * 16, 4.5, 0.0, G**3)  # a full window


def test_window_wraps_around_the_ring_and_stops_at_the_newest_step():
    # capacity 4 after 6 steps of one episode: t = 4, 5 sit at positions 0, 1 and t = 2, 3 at positions 2, 3
    buf = _buffer(4, [(float(2**t), False, False) for t in range(6)])
    assert buf.pos == 2
    assert _row(buf, 3) == (8 + G * 16 + G**2 * 32, 5.5, 0.0, G**3)  # t = 3, 4, 5: positions 3, 0, 1
    assert _row(buf, 0) == (16 + G * 32, 5.5, 0.0, G**2)  # t = 4: only t = 5 was stored after it
    assert _row(buf, 1) == (32.0, 5.5, 0.0, G)  # the newest step: a one-step transition


def test_bellman_target_uses_the_per_sample_discount():
    buf = _buffer(10, [(1.0, False, False), (2.0, False, True), (4.0, False, False)])
    b = buf.gather(np.array([0, 2]))
    y = bellman_target(b.reward, b.terminated, b.bootstrap_discount(0.99), torch.tensor([10.0, 10.0]))
    assert torch.allclose(y, torch.tensor([1 + G * 2 + G**2 * 10, 4 + G * 10]))


def test_one_step_batches_are_the_plain_transitions():
    buf = _buffer(10, [(1.0, False, False), (2.0, True, True)], n=1)
    b = buf.gather(np.array([0, 1]))
    assert b.discount is None and b.bootstrap_discount(0.9) == 0.9
    assert b.reward.tolist() == [1.0, 2.0] and b.terminated.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("value, message", [(0, "'n_step' must be at least 1"),
                                            (51, r"'n_step' must be at most the task's horizon \(50\)")])
def test_n_step_out_of_range_is_a_one_line_error(value, message):
    with pytest.raises(RobotrlError, match=message):
        build_run("reach", "sac", overrides={"n_step": value})


def test_resume_with_n_step_equals_the_uninterrupted_run(tmp_path):
    cfg = dict(warmup_steps=100, batch_size=16, eval_every=0, eval_episodes=1, actor_hidden=[16], critic_hidden=[16],
               buffer_size=5000, n_step=3)
    resumed, full = split_and_whole_runs(tmp_path, "pendulum", "td3", 2, cfg, 250, 500)
    assert np.array_equal(full.buffer.episode_end, resumed.buffer.episode_end)
