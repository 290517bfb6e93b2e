"""The off-policy loop's own contracts: evaluation seed blocks, bounded metric memory, what is stored at an
episode's end."""

from __future__ import annotations

import gc

import gymnasium as gym
import numpy as np
import torch

from robotrl.config import EVAL_BLOCK_EPISODES, eval_seed_base
from robotrl.run import build_run, train

TINY = dict(warmup_steps=50, batch_size=16, eval_every=0, eval_episodes=1, actor_hidden=[8], critic_hidden=[8],
            buffer_size=5000)


def test_selection_and_report_blocks_are_disjoint_within_and_across_training_seeds():
    bases = [eval_seed_base(s, b) for s in range(2000) for b in ("selection", "report")]
    assert min(bases) >= 2**32  # above every training reset seed (the run's own seed)
    ordered = np.sort(np.array(bases, dtype=np.uint64))
    assert np.all(np.diff(ordered) >= EVAL_BLOCK_EPISODES)  # no two blocks, of one seed or of two, overlap
    assert eval_seed_base(7, "report") == eval_seed_base(np.int64(7), "report")  # a pure function of the seed


def _tensor_count() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) in (torch.Tensor, torch.nn.Parameter))


def test_metric_memory_stays_flat_over_many_updates_without_evaluations():
    """With eval_every=0 the metrics of every update between two log rows are summed in place: the number of live
    tensors after 1100 updates is what it was after 100 (one list entry per update and key would add >2000)."""
    run = build_run("pendulum", "sac", seed=0, overrides=TINY)
    counts: dict[int, int] = {}
    update = run.agent.update

    def counting_update(batch):
        metrics = update(batch)
        if run.agent.updates in (100, 1100):
            counts[run.agent.updates] = _tensor_count()
        return metrics

    run.agent.update = counting_update
    train(run, 50 + 1100 + 16, progress=False, evaluate_at_end=False)
    assert set(counts) == {100, 1100}
    assert counts[1100] - counts[100] < 20, counts
    assert run.metrics.counts["critic_loss"] == run.agent.updates  # the means still cover every update


def _stored(max_episode_steps: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(terminated flags, episode-end mask, |pole angle| of next_obs) of every stored transition."""
    env = gym.make("InvertedPendulum-v5", max_episode_steps=max_episode_steps)
    run = build_run(env, "ddpg", seed=1, overrides={**TINY, "warmup_steps": steps + 1})
    train(run, steps, progress=False, evaluate_at_end=False)
    n = len(run.buffer)
    b = run.buffer
    # an episode ended where the next stored observation is not this transition's next observation (a reset)
    ends = np.append(np.any(b.next_obs[:n - 1] != b.obs[1:n], axis=1), True)
    return b.terminated[:n].copy(), ends, np.abs(b.next_obs[:n, 1])


def test_time_limit_steps_are_stored_not_terminated_and_true_terminations_are():
    """InvertedPendulum-v5 terminates when the pole passes 0.2 rad; anything else that ends an episode is the
    time limit. The loop must store terminated = 1 exactly for the former and keep the real final observation."""
    terminated, ends, angle = _stored(3, 60)  # horizon 3: most episodes end by the time limit
    time_limit_ends = ends & (angle <= 0.2)
    assert time_limit_ends.sum() >= 5
    assert not terminated[time_limit_ends].any()
    assert np.array_equal(terminated == 1, angle > 0.2)
    terminated, ends, angle = _stored(1000, 400)  # horizon 1000, random actions: every end is a fall
    assert terminated.sum() >= 5 and np.array_equal(terminated[:-1] == 1, ends[:-1])
    assert np.array_equal(terminated == 1, angle > 0.2)
