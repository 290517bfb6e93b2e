"""robotrl: train, evaluate and export continuous-control policies for MuJoCo robots."""

from robotrl._version import __version__
from robotrl.api import A2C, A3C, DDPG, NAF, PPO, REINFORCE, SAC, TD3, TRPO, LoadedPolicy, QTOpt, load_policy
from robotrl.config import RobotrlError
from robotrl.envs import make_env

__all__ = ["__version__", "A2C", "A3C", "DDPG", "NAF", "PPO", "QTOpt", "REINFORCE", "SAC", "TD3", "TRPO",
           "LoadedPolicy", "RobotrlError", "load_policy", "make_env"]
