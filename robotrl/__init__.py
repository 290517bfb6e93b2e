"""robotrl: train, evaluate and export continuous-control policies for MuJoCo robots."""

from robotrl._version import __version__
from robotrl.api import DDPG, NAF, SAC, TD3, LoadedPolicy, QTOpt, load_policy
from robotrl.config import RobotrlError
from robotrl.envs import make_env

__all__ = ["__version__", "DDPG", "NAF", "QTOpt", "SAC", "TD3", "LoadedPolicy", "RobotrlError", "load_policy",
           "make_env"]
