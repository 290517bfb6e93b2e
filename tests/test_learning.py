"""Learning: DDPG passes a return threshold on a small MuJoCo task in about a minute on 2 CPU cores."""

from __future__ import annotations

from robotrl import DDPG


def test_ddpg_balances_the_pendulum_with_the_card_settings():
    agent = DDPG("pendulum", seed=0, eval_every=0)  # periodic evaluation does not change training
    agent.learn(agent.run.loop_cfg.total_steps)
    assert agent.run.step == 15_000
    result = agent.evaluate(episodes=10)
    assert result.mean_return >= 900, result
