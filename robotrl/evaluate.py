"""Evaluate a policy for N deterministic episodes: a live agent, a checkpoint, a run directory or an
exported TorchScript file. All paths go through the same DeployedPolicy the export writes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robotrl.algos import get_algo
from robotrl.checkpoint import is_aoti_package, is_torchscript, load_checkpoint, restore_agent
from robotrl.config import (
    EVAL_PROTOCOL,
    LEGACY_EVAL_SEED_OFFSET,
    RobotrlError,
    check_seed,
    eval_seed_base,
    first_line,
    split_run_config,
)
from robotrl.envs import make_env, task_source
from robotrl.nets import DeployedPolicy, ObsNormalizer


@dataclass
class EvalResult:
    mean_return: float
    std_return: float
    success_rate: float  # NaN when the task defines no success criterion
    episodes: int
    returns: list[float]
    seed: int | None = None  # episode i was reset with seed + i
    block: str | None = None  # the run's evaluation block it used ("selection" or "report"), if any

    def as_dict(self) -> dict[str, Any]:
        """Plain values; NaN success rate (no criterion) becomes None so JSON stays strict."""
        d = asdict(self)
        if math.isnan(d["success_rate"]):
            d["success_rate"] = None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        rate = d["success_rate"]
        return cls(**{**d, "success_rate": math.nan if rate is None else rate})


def deployed_policy(policy: nn.Module, normalizer: ObsNormalizer, low: np.ndarray,
                    high: np.ndarray) -> DeployedPolicy:
    mean, inv_std = normalizer.scale_shift()
    clip = normalizer.clip if normalizer.enabled else math.inf
    return DeployedPolicy(policy, mean, inv_std, clip, torch.as_tensor(low), torch.as_tensor(high)).eval()


class EpisodeObserver:
    """Told about every evaluation step (the video recorder is one); the default does nothing."""

    def step(self, env: gym.Env, episode: int, t: int, episode_return: float, success: bool | None) -> None:
        """Called after reset (t = 0) and after each step; `success` is set on an episode's last step."""


def run_episodes(policy: Callable[[torch.Tensor], torch.Tensor], env: gym.Env, episodes: int,
                 seed: int, observer: EpisodeObserver | None = None) -> EvalResult:
    """Roll out `policy` (raw obs -> action in actuator units) on `env` (not action-normalised).

    Episode i is reset with seed + i, so the same seed gives the same initial states for any policy.
    Success is judged on the last step's info['is_success'].
    """
    seed = check_seed(seed)
    returns, successes = [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        total, done, t = 0.0, False, 0
        if observer is not None:
            observer.step(env, i, t, total, None)
        while not done:
            with torch.no_grad():
                action = policy(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
            t += 1
            if observer is not None:
                observer.step(env, i, t, total, bool(info["is_success"]) if done and "is_success" in info else None)
        returns.append(total)
        if "is_success" in info:
            successes.append(float(info["is_success"]))
    return EvalResult(mean_return=float(np.mean(returns)), std_return=float(np.std(returns)),
                      success_rate=float(np.mean(successes)) if successes else math.nan,
                      episodes=episodes, returns=returns, seed=seed)


def policy_from_checkpoint(ckpt: dict[str, Any], source: str | Path = "checkpoint") -> DeployedPolicy:
    """Rebuild the deployable policy (normaliser -> actor -> rescale) from a loaded checkpoint."""
    spec = get_algo(ckpt["algo"])
    _, algo_cfg = split_run_config(spec.config_cls, {**ckpt["loop_config"], **ckpt["algo_config"]}, "checkpoint",
                                   loop_cls=spec.loop_config_cls)
    agent = spec.agent_cls(ckpt["obs_dim"], ckpt["action_dim"], algo_cfg, seed=ckpt["seed"], device="cpu")
    normalizer = ObsNormalizer(ckpt["obs_dim"], enabled=ckpt["loop_config"]["normalize_obs"])
    restore_agent(agent, normalizer, ckpt, source)
    policy = agent.policy()
    if ckpt.get("best") is not None:  # keep_best: the deployed policy is the best evaluated snapshot
        policy.load_state_dict(ckpt["best"]["policy"])
        normalizer.load_state_dict(ckpt["best"]["normalizer"])
    return deployed_policy(policy, normalizer, ckpt["action_low"].numpy(), ckpt["action_high"].numpy())


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory means its checkpoints/last.pt."""
    path = Path(path)
    if not path.exists():
        raise RobotrlError(f"path not found: {path}")
    if path.is_dir():
        last = path / "checkpoints" / "last.pt"
        if not last.is_file():
            raise RobotrlError(f"{path} is a directory but not a run directory (no checkpoints/last.pt)")
        return last
    return path


class AOTIPolicy(nn.Module):
    """An exported .pt2 behind the .pt's interface: [obs] or [batch, obs] in, actions out."""

    def __init__(self, path: Path):
        super().__init__()
        import os

        import torch._inductor

        # Without this the compiled code reads any shape and dtype as if it were [batch, obs] float32.
        os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
        self.runner = torch._inductor.aoti_load_package(str(path))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        single = obs.dim() == 1
        # A fresh row-major float32 copy: the compiled code checks strides, and numpy's x[None] has a 0 stride.
        batch = torch.empty((1, *obs.shape) if single else obs.shape, dtype=torch.float32).copy_(obs)
        actions = self.runner(batch)
        return actions.squeeze(0) if single else actions


ONNX_HINT = "pip install 'robotrl[onnx]'"


def onnx_session(path: Path) -> Any:
    """An ONNX Runtime CPU session on one intra-op and one inter-op thread (how a robot runs batch 1)."""
    try:
        import onnxruntime
    except ImportError:
        raise RobotrlError(f"{path}: running an ONNX policy needs onnxruntime: {ONNX_HINT}") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's own parse / load error, one line
        raise RobotrlError(f"{path} is not a loadable ONNX policy: {first_line(exc)}") from None


class ONNXPolicy(nn.Module):
    """An exported .onnx (run by ONNX Runtime) behind the .pt's interface: [obs] or [batch, obs] in, actions out."""

    def __init__(self, path: Path):
        super().__init__()
        self.session = onnx_session(path)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        single = obs.dim() == 1
        batch = (obs[None] if single else obs).to(torch.float32).contiguous()
        actions = torch.as_tensor(self.session.run(None, {self.input_name: batch.numpy()})[0])
        return actions.squeeze(0) if single else actions


def load_policy_file(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(policy module, metadata with at least 'task') for a run dir, checkpoint, exported .pt, .pt2 or .onnx."""
    path = resolve_checkpoint(path)
    if path.suffix == ".json":
        raise RobotrlError(f"{path} is a policy's card, not a policy: pass the policy file beside it "
                           f"({path.with_suffix('.pt').name})")
    aoti, onnx = is_aoti_package(path), path.suffix == ".onnx"
    if aoti or onnx or is_torchscript(path):
        import json

        card_path = path.with_suffix(".json")
        if not card_path.is_file():
            raise RobotrlError(f"exported policy {path} has no card {card_path} (needed for the task name)")
        if onnx:
            return ONNXPolicy(path), json.loads(card_path.read_text())
        kind = "AOTInductor" if aoti else "TorchScript"
        try:
            module = torch.jit.load(str(path), map_location="cpu") if kind == "TorchScript" else AOTIPolicy(path)
        except RuntimeError as exc:
            raise RobotrlError(f"{path} is not a loadable {kind} policy: {first_line(exc)}") from None
        return module, json.loads(card_path.read_text())
    ckpt = load_checkpoint(path)
    return policy_from_checkpoint(ckpt, path), {"task": ckpt["task"], "algo": ckpt["algo"], "step": ckpt["step"],
                                                "seed": ckpt["seed"], "eval_protocol": ckpt.get("eval_protocol"),
                                                "env_spec": ckpt.get("env_spec")}


def default_eval_seed(meta: dict[str, Any], source: str | Path) -> tuple[int, str | None]:
    """The first reset seed `robotrl eval` uses by default: the report block of the policy's training seed (from the
    checkpoint or the export card), which no selection (periodic evaluation, keep_best) has seen. The second value
    is a one-line note for a policy that predates the protocol (its training evaluations used other seeds)."""
    train_seed = meta.get("seed")
    if train_seed is None:
        raise RobotrlError(f"{source} records no training seed, so its report episodes are unknown; pass --seed S")
    note = None
    if meta.get("eval_protocol") is None:
        note = (f"{source} predates evaluation protocol {EVAL_PROTOCOL}: its training evaluations (and keep_best) "
                f"used reset seeds {LEGACY_EVAL_SEED_OFFSET + train_seed}+i; evaluating on its report block instead")
    return eval_seed_base(train_seed, "report"), note


def resolve_eval_seed(seed: int | None, meta: dict[str, Any], source: str | Path,
                      notes: list[str] | None) -> tuple[int, str | None]:
    """(first reset seed, block name or None): a given `seed` as it is, None as the policy's report block (whose
    note, if any, is appended to `notes`)."""
    if seed is not None:
        return seed, None
    seed, note = default_eval_seed(meta, source)
    if note is not None and notes is not None:
        notes.append(note)
    return seed, "report"


def evaluate_path(path: str | Path, episodes: int = 10, seed: int | None = None,
                  notes: list[str] | None = None, env_kwargs: dict[str, Any] | None = None) -> EvalResult:
    """Evaluate a run, checkpoint or exported policy; `seed` None means the policy's report block (see
    default_eval_seed), whose note, if any, is appended to `notes`; `env_kwargs` change the env's arguments."""
    policy, meta = load_policy_file(path)
    seed, block = resolve_eval_seed(seed, meta, path, notes)
    env = make_env(task_source(meta["task"], meta.get("env_spec"), env_kwargs), normalize_actions=False)
    try:
        result = run_episodes(policy, env, episodes, seed)
    finally:
        env.close()
    result.block = block
    return result
