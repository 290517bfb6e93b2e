"""Algorithms. Each exposes <Name>Config and <Name>Agent; the loop sees only the Agent contract:
act(obs, explore) -> action, update(batch) -> metrics, policy() -> nn.Module, reset_episode(),
state_dict() / load_state_dict()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robotrl.algos.ddpg import DDPGAgent, DDPGConfig


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    config_cls: type
    agent_cls: type
    summary: str


ALGOS: dict[str, AlgoSpec] = {
    "ddpg": AlgoSpec("ddpg", DDPGConfig, DDPGAgent,
                     "Deep Deterministic Policy Gradient (Lillicrap et al. 2015), OU noise, Polyak targets"),
}


def get_algo(name: str) -> AlgoSpec:
    from robotrl.config import RobotrlError

    if name not in ALGOS:
        raise RobotrlError(f"unknown algorithm '{name}'; known algorithms: {', '.join(ALGOS)}")
    return ALGOS[name]


__all__: list[Any] = ["ALGOS", "AlgoSpec", "get_algo", "DDPGAgent", "DDPGConfig"]
