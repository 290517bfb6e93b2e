"""Learning: each algorithm passes a return threshold on a small MuJoCo task in about a minute on 2 CPU
cores, with the task card's own settings."""

from __future__ import annotations

import pytest

from robotrl import DDPG, NAF, SAC, TD3


@pytest.mark.parametrize("trainer, steps", [(DDPG, 15_000), (TD3, 10_000), (SAC, 10_000), (NAF, 10_000)])
def test_balances_the_pendulum_with_the_card_settings(trainer, steps):
    agent = trainer("pendulum", seed=0, eval_every=0)  # periodic evaluation does not change training
    agent.learn(agent.run.loop_cfg.total_steps)
    assert agent.run.step == steps
    result = agent.evaluate(episodes=10)
    assert result.mean_return >= 900, result
