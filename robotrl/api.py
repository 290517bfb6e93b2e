"""The Python API: `DDPG("reach", seed=0).learn(20_000)`, `.save`, `.load`, `.export`, `load_policy`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from robotrl.config import RobotrlError
from robotrl.envs.goal import flatten_goal_obs
from robotrl.evaluate import EvalResult, load_policy_file
from robotrl.export import DEFAULT_FORMATS, ExportResult, export_checkpoint
from robotrl.run import Run, build_run, evaluate_run, load_run, run_policy, save_run, train


class Trainer:
    """A training run of one algorithm on one task, driven from Python."""

    algo: ClassVar[str]

    def __init__(self, task: str | gym.Env, seed: int = 0, run_dir: str | Path | None = None,
                 distributed: str | None = None, address: str | None = None, **overrides: Any) -> None:
        """distributed: a `--distributed` spec ("collectors=4", "collectors=2,replay=1") to collect on Ray actors,
        which live until close(); address: the Ray cluster to join (default: a local instance)."""
        spec = None
        if distributed is not None:
            from robotrl.distributed import parse_distributed

            spec = parse_distributed(distributed, address)
            if spec.learner:
                raise RobotrlError("learner=1 runs the learner on an actor watched by `robotrl train`; a Trainer is "
                                   "the learner itself: leave out learner=1")
        elif address is not None:
            raise RobotrlError("address names the Ray cluster of a distributed run; pass distributed='collectors=N'")
        self.run: Run = build_run(task, self.algo, seed=seed, overrides=overrides, run_dir=run_dir,
                                  distributed=spec)
        self._checkpoint: Path | None = None

    def close(self) -> None:
        """Stop the run's Ray actors (collectors, A3C's workers); the run keeps what they sent, and a later
        learn() starts new ones."""
        if self.run.distributed is not None:
            from robotrl.distributed import shutdown

            shutdown(self.run)

    @classmethod
    def _from_run(cls, run: Run) -> Trainer:
        obj = cls.__new__(cls)
        obj.run, obj._checkpoint = run, None
        return obj

    def learn(self, steps: int, progress: bool = False) -> Trainer:
        """Train for `steps` more environment steps."""
        train(self.run, self.run.step + steps, progress=progress)
        return self

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action in actuator units for a raw observation (or a batch)."""
        return self.policy()(torch.as_tensor(np.asarray(obs, dtype=np.float32))).detach().numpy()

    def policy(self) -> torch.nn.Module:
        """raw observation -> action in actuator units, exactly what `export` writes."""
        return run_policy(self.run)

    def evaluate(self, episodes: int = 10) -> EvalResult:
        return evaluate_run(self.run, episodes)

    def save(self, path: str | Path, with_replay: bool = False) -> Path:
        """Checkpoint networks, targets, optimisers, normaliser, noise and RNG states (atomically)."""
        self._checkpoint = save_run(self.run, path, with_replay=with_replay)
        return self._checkpoint

    @classmethod
    def load(cls, path: str | Path) -> Trainer:
        run = load_run(path)
        if run.algo.name != cls.algo:
            raise RobotrlError(f"{path} holds a {run.algo.name} checkpoint, not {cls.algo}")
        return cls._from_run(run)

    def export(self, path: str | Path, formats: str | Sequence[str] = DEFAULT_FORMATS) -> ExportResult:
        """The deployed policy as `path` (TorchScript .pt) and, beside it, the other `formats` (pt2, onnx)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            ckpt = save_run(self.run, Path(tmp) / "export.pt", with_replay=False)
            return export_checkpoint(ckpt, path, formats=formats)


class DDPG(Trainer):
    """DDPG (Lillicrap et al. 2015) with OU exploration and Polyak-averaged targets."""

    algo = "ddpg"


class NAF(Trainer):
    """NAF (Gu et al. 2016): Q quadratic in the action, greedy action mu(s) in closed form."""

    algo = "naf"


class QTOpt(Trainer):
    """QT-Opt (Kalashnikov et al. 2018): Q-learning with the CEM argmax over actions, two target networks."""

    algo = "qtopt"


class SAC(Trainer):
    """SAC (Haarnoja et al. 2018): reparameterised squashed Gaussian, twin Q, learned temperature."""

    algo = "sac"


class TD3(Trainer):
    """TD3 (Fujimoto et al. 2018): clipped double Q, target policy smoothing, delayed policy updates."""

    algo = "td3"


class PPO(Trainer):
    """PPO (Schulman et al. 2017): clipped (or adaptive-KL) surrogate, GAE, minibatch epochs; on-policy loop."""

    algo = "ppo"


class A2C(Trainer):
    """A2C (Mnih et al. 2016), synchronous: n-step or GAE advantages, one RMSprop step per rollout."""

    algo = "a2c"


class A3C(Trainer):
    """A3C (Mnih et al. 2016): actor-learner workers on Ray (2 local ones unless distributed="collectors=N") whose
    gradients the learner applies as they arrive; close() stops them."""

    algo = "a3c"


class TRPO(Trainer):
    """TRPO (Schulman et al. 2015): natural-gradient step by conjugate gradient inside a KL trust region."""

    algo = "trpo"


class REINFORCE(Trainer):
    """REINFORCE (Williams 1992) with a learned state-value baseline."""

    algo = "reinforce"


class LoadedPolicy:
    """A deployable policy: call it with a numpy array (returns numpy) or a torch tensor (returns torch)."""

    def __init__(self, module: torch.nn.Module, card: dict[str, Any]) -> None:
        self.module, self.card = module, card

    def __call__(self, obs: np.ndarray | torch.Tensor | dict[str, Any]) -> np.ndarray | torch.Tensor:
        """A goal-conditioned policy also takes the env's Dict observation (observation, achieved_goal,
        desired_goal: single vectors or batches), flattened in the card's order; a pixel policy a dict of
        "proprio" (the entries before the image) and "image", the camera's (H, W, 3) uint8 RGB frame."""
        if isinstance(obs, dict) and self.card.get("pixel_input") is not None:
            obs = pixel_observation(obs, self.card["pixel_input"])
        elif isinstance(obs, dict):
            goal = self.card.get("goal_observation")
            if goal is None:
                raise ValueError(f"this policy takes a flat observation vector of width "
                                 f"{self.card.get('observation_shape', ['?'])[0]}, not a dict")
            obs = flatten_goal_obs(obs, goal["widths"])
        width = self.card.get("observation_shape", [None])[0]
        # The exported module raises on a wrong width as well, but from TorchScript, AOTInductor or ONNX Runtime
        # each in its own multi-line words; one plain ValueError here says it the same way for every format.
        shape = tuple(obs.shape) if isinstance(obs, torch.Tensor) else np.shape(obs)
        if width is not None and (len(shape) not in (1, 2) or shape[-1] != width):
            raise ValueError(f"expected observation of shape [{width}] or [batch, {width}], got {list(shape)}")
        with torch.no_grad():
            if isinstance(obs, torch.Tensor):
                return self.module(obs)
            return self.module(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy()


def pixel_observation(obs: dict[str, Any], spec: dict[str, Any]) -> np.ndarray:
    """{"proprio": [k], "image": (H, W, 3) uint8} -> the flat vector a pixel policy takes (the export card's
    pixel_input: the image channel-first after the proprioception)."""
    c, h, w = spec["shape"]
    if set(obs) != {"proprio", "image"}:
        raise ValueError(f"a pixel policy takes a dict with keys 'proprio' and 'image', got {sorted(obs)}")
    image, proprio = np.asarray(obs["image"]), np.asarray(obs["proprio"], dtype=np.float32)
    if image.dtype != np.uint8 or image.shape != (h, w, c):
        raise ValueError(f"expected a uint8 RGB frame of shape ({h}, {w}, {c}) from camera '{spec['camera']}', got "
                         f"{image.dtype} {tuple(image.shape)}")
    if proprio.shape != (spec["slice"][0],):
        raise ValueError(f"expected {spec['slice'][0]} proprioception entries, got shape {list(proprio.shape)}")
    return np.concatenate([proprio, image.transpose(2, 0, 1).ravel().astype(np.float32)])


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load an exported .pt (with its .json card), a checkpoint or a run directory as a policy."""
    module, meta = load_policy_file(path)
    return LoadedPolicy(module, meta)


__all__ = ["A2C", "A3C", "DDPG", "NAF", "PPO", "QTOpt", "REINFORCE", "SAC", "TD3", "TRPO", "Trainer", "LoadedPolicy",
           "load_policy"]
