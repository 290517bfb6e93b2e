"""Checkpoint -> self-contained TorchScript policy (+ JSON card), verified before it is written.

The exported module is a frozen DeployedPolicy: observation normalisation -> deterministic policy ->
rescale to actuator bounds -> clamp, with a finite-input guard. It loads with torch.jit.load in Python
or torch::jit::load in C++ and needs nothing from robotrl.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robotrl._version import __version__
from robotrl.checkpoint import give_default_file_mode, load_checkpoint
from robotrl.config import RobotrlError
from robotrl.envs import make_env, task_source
from robotrl.evaluate import policy_from_checkpoint, resolve_checkpoint
from robotrl.nets import DeployedPolicy

MAX_ABS_DIFF = 1e-5


@dataclass
class ExportResult:
    path: str
    card_path: str
    max_abs_diff: float
    observations_checked: int


def reference_observations(policy: DeployedPolicy, env: gym.Env, n: int = 512, seed: int = 12345) -> torch.Tensor:
    """Real observations from rollouts of `policy` itself (plus a few random-action steps)."""
    rows: list[np.ndarray] = []
    env.action_space.seed(seed)
    episode = 0
    while len(rows) < n:
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done and len(rows) < n:
            rows.append(np.asarray(obs, dtype=np.float32))
            with torch.no_grad():
                action = policy(torch.as_tensor(rows[-1])).numpy()
            if len(rows) % 7 == 0:
                action = env.action_space.sample()
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        episode += 1
    return torch.as_tensor(np.stack(rows))


def script_policy(policy: DeployedPolicy) -> torch.jit.ScriptModule:
    return torch.jit.freeze(torch.jit.script(policy.eval()))


def export_policy(policy: DeployedPolicy, out: str | Path, card: dict[str, Any], env: gym.Env) -> ExportResult:
    out = Path(out)
    if out.suffix != ".pt":
        raise RobotrlError(f"export path must end in .pt, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    observations = reference_observations(policy, env)
    scripted = script_policy(policy)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp)
        reloaded = torch.jit.load(tmp, map_location="cpu")
        with torch.no_grad():
            expected = policy(observations)
            got = reloaded(observations)
            single = reloaded(observations[0])
        diff = float(max((expected - got).abs().max(), (expected[0] - single).abs().max()))
        if not diff <= MAX_ABS_DIFF:
            raise RobotrlError(f"export verification failed: reloaded policy differs from the agent by {diff:.3g} "
                               f"(> {MAX_ABS_DIFF}); nothing written to {out}")
        card = {**card, "verified_max_abs_diff": diff, "observations_checked": int(observations.shape[0])}
        card_path = out.with_suffix(".json")
        card_tmp = card_path.with_name(f".{card_path.name}.tmp")
        card_tmp.write_text(json.dumps(card, indent=2) + "\n")
        give_default_file_mode(tmp)
        os.replace(tmp, out)
        os.replace(card_tmp, card_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return ExportResult(str(out), str(card_path), diff, int(observations.shape[0]))


def export_checkpoint(path: str | Path, out: str | Path, command: str | None = None) -> ExportResult:
    """Export a run directory or checkpoint file to `out` (.pt) and its JSON card."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path)
    policy = policy_from_checkpoint(ckpt, ckpt_path)
    task = ckpt["task"]
    env = make_env(task_source(task), normalize_actions=False)
    card = {
        "task": task, "algorithm": ckpt["algo"], "format": "torchscript",
        "observation_shape": [ckpt["obs_dim"]], "action_shape": [ckpt["action_dim"]],
        "action_low": ckpt["action_low"].tolist(), "action_high": ckpt["action_high"].tolist(),
        "training_steps": ckpt["step"], "seed": ckpt["seed"], "evaluation": ckpt.get("eval"),
        "policy_step": ckpt["best"]["step"] if ckpt.get("best") else ckpt["step"],
        "source_checkpoint": str(ckpt_path), "robotrl_version": __version__, "torch_version": torch.__version__,
        "input": "raw observation, float32, shape [obs] or [batch, obs]",
        "output": "action in actuator units, clamped to [action_low, action_high]; non-finite input gives "
                  "the bounds' midpoint",
    }
    if ckpt.get("commands"):
        card["train_commands"] = ckpt["commands"]
    if command:
        card["command"] = command
    try:
        return export_policy(policy, out, card, env)
    finally:
        env.close()
