"""Algorithms. Each exposes <Name>Config and <Name>Agent; a loop sees only the Agent contract:
act(obs, explore) -> action, update(batch) -> metrics, policy() -> nn.Module, reset_episode(),
state_dict() / load_state_dict(). Each spec names the loop that trains it: "off-policy" (robotrl.loop: replay,
updates per step), "on-policy" (robotrl.rollout: vectorised rollouts, one update per rollout) or "a3c"
(robotrl.distributed.a3c: on-policy rollouts on Ray workers, one update per worker gradient)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from robotrl.algos.a2c import A2CAgent, A2CConfig
from robotrl.algos.a3c import A3CAgent, A3CConfig
from robotrl.algos.ddpg import DDPGAgent, DDPGConfig
from robotrl.algos.naf import NAFAgent, NAFConfig
from robotrl.algos.ppo import PPOAgent, PPOConfig
from robotrl.algos.qtopt import QTOptAgent, QTOptConfig
from robotrl.algos.reinforce import REINFORCEAgent, REINFORCEConfig
from robotrl.algos.sac import SACAgent, SACConfig
from robotrl.algos.td3 import TD3Agent, TD3Config
from robotrl.algos.trpo import TRPOAgent, TRPOConfig


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    config_cls: type
    agent_cls: type
    summary: str
    loop: Literal["off-policy", "on-policy", "a3c"] = "off-policy"

    @property
    def loop_config_cls(self) -> type:
        from robotrl.config import LoopConfig, RolloutConfig

        return LoopConfig if self.loop == "off-policy" else RolloutConfig


ALGOS: dict[str, AlgoSpec] = {
    "a2c": AlgoSpec("a2c", A2CConfig, A2CAgent,
                    "Advantage Actor-Critic (Mnih et al. 2016), synchronous: n-step or GAE advantages, RMSprop",
                    loop="on-policy"),
    "a3c": AlgoSpec("a3c", A3CConfig, A3CAgent,
                    "Asynchronous Advantage Actor-Critic (Mnih et al. 2016): A2C's gradients from Ray workers, "
                    "applied as they arrive", loop="a3c"),
    "ddpg": AlgoSpec("ddpg", DDPGConfig, DDPGAgent,
                     "Deep Deterministic Policy Gradient (Lillicrap et al. 2015), OU noise, Polyak targets"),
    "naf": AlgoSpec("naf", NAFConfig, NAFAgent,
                    "Normalized Advantage Functions (Gu et al. 2016): quadratic advantage, argmax = mu(s)"),
    "ppo": AlgoSpec("ppo", PPOConfig, PPOAgent,
                    "Proximal Policy Optimization (Schulman et al. 2017): clipped or adaptive-KL surrogate, GAE",
                    loop="on-policy"),
    "qtopt": AlgoSpec("qtopt", QTOptConfig, QTOptAgent,
                      "QT-Opt (Kalashnikov et al. 2018): no actor, argmax_a Q by the cross-entropy method"),
    "reinforce": AlgoSpec("reinforce", REINFORCEConfig, REINFORCEAgent,
                          "REINFORCE (Williams 1992) with a learned state-value baseline, Monte-Carlo returns",
                          loop="on-policy"),
    "sac": AlgoSpec("sac", SACConfig, SACAgent,
                    "Soft Actor-Critic (Haarnoja et al. 2018): squashed Gaussian, twin Q, learned temperature"),
    "td3": AlgoSpec("td3", TD3Config, TD3Agent,
                    "Twin Delayed DDPG (Fujimoto et al. 2018): clipped double Q, target smoothing, delayed actor"),
    "trpo": AlgoSpec("trpo", TRPOConfig, TRPOAgent,
                     "Trust Region Policy Optimization (Schulman et al. 2015): conjugate-gradient natural step, "
                     "KL line search", loop="on-policy"),
}


def get_algo(name: str) -> AlgoSpec:
    from robotrl.config import RobotrlError

    if name not in ALGOS:
        raise RobotrlError(f"unknown algorithm '{name}'; known algorithms: {', '.join(ALGOS)}")
    return ALGOS[name]


__all__ = ["ALGOS", "AlgoSpec", "get_algo", "A2CAgent", "A2CConfig", "A3CAgent", "A3CConfig", "REINFORCEAgent",
           "REINFORCEConfig", "TRPOAgent", "TRPOConfig", "DDPGAgent", "DDPGConfig", "NAFAgent", "NAFConfig", "PPOAgent",
           "PPOConfig", "QTOptAgent", "QTOptConfig", "TD3Agent", "TD3Config", "SACAgent", "SACConfig"]
