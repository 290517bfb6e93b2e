"""Learning: DDPG passes a return threshold on a small MuJoCo task in about a minute."""

from __future__ import annotations

from robotrl import DDPG


def test_ddpg_balances_the_pendulum():
    agent = DDPG("pendulum", seed=1, eval_every=0)
    agent.learn(agent.run.loop_cfg.total_steps)
    result = agent.evaluate(episodes=10)
    assert result.mean_return >= 900, result
