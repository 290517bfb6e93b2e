"""Checkpoint -> self-contained deployable policy files (+ one JSON card), each verified before it is written.

The exported module is a DeployedPolicy: observation normalisation -> deterministic policy -> rescale to
actuator bounds -> clamp, with a finite-input guard. Formats, all written beside each other as NAME.<ext>:

- pt: frozen TorchScript (always written; `robotrl eval` and the card refer to it). torch.jit.load in Python,
  torch::jit::load in C++; input [obs] or [batch, obs].
- pt2: torch.export + AOTInductor package for CPU (needs a C++ compiler at export time). Loads with
  torch._inductor.aoti_load_package in Python or torch::inductor::AOTIModelPackageLoader in C++; input
  [batch, obs] float32. AOTInductor checks input shapes only when AOTI_RUNTIME_CHECK_INPUTS=1 is set, which
  tools/runtime does; other loaders must check the shape themselves.
- onnx: torch.onnx (dynamo exporter), verified with ONNX Runtime; needs `pip install 'robotrl[onnx]'`.

Nothing is written unless every requested file reproduces the agent's actions to MAX_ABS_DIFF. A CEM policy
(QT-Opt) is an argmax: where two candidate actions' Q values are within CEM_TIE_TOLERANCE, another runtime's
rounding may pick the other one, so such near-tie states are counted in the card instead of compared.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robotrl._version import __version__
from robotrl.cem import CEMMaximizer
from robotrl.checkpoint import give_default_file_mode, load_checkpoint
from robotrl.config import RobotrlError, first_line
from robotrl.envs import make_env, task_source
from robotrl.envs.goal import GOAL_KEYS, block_slices, goal_wrapper, observation_layout
from robotrl.evaluate import ONNX_HINT, ONNXPolicy, policy_from_checkpoint, resolve_checkpoint
from robotrl.nets import DeployedPolicy

MAX_ABS_DIFF = 1e-5
# Relative Q gap (CEMMaximizer.decision_margins) below which a CEM choice may flip between runtimes: ONNX Runtime's
# Q differed from torch's by at most 7e-7 relative (1.7e-6 absolute) on a 256-256 critic over 16k state-actions.
CEM_TIE_TOLERANCE = 1e-5
FORMATS = ("pt", "pt2", "onnx")
DEFAULT_FORMATS = ("pt", "pt2")
FORMAT_INPUTS = {
    "pt": "raw observation, float32, shape [obs] or [batch, obs]",
    "pt2": "raw observation, float32, shape [batch, obs]; shapes are checked only with AOTI_RUNTIME_CHECK_INPUTS=1",
    "onnx": "raw observation, float32, shape [batch, obs] (input name 'obs')",
}


@dataclass
class ExportResult:
    path: str
    card_path: str
    max_abs_diff: float
    observations_checked: int
    files: dict[str, str] = field(default_factory=dict)
    """format -> path of every file written (pt included)."""
    max_abs_diffs: dict[str, float] = field(default_factory=dict)
    """format -> largest |action difference| from the agent over the reference observations (near ties excepted)."""
    near_ties: dict[str, int] = field(default_factory=dict)
    """format -> reference observations where a CEM policy's file chose another action at a near tie."""


def compare_actions(policy: DeployedPolicy, observations: torch.Tensor, expected: torch.Tensor,
                    got: torch.Tensor) -> tuple[float, int]:
    """(largest |got - expected| over the rows compared, rows excused as near ties).

    Every row is compared, except for a CEM policy the rows whose actions differ where the agent's own search made
    a choice between two actions whose Q values were within CEM_TIE_TOLERANCE, relative (decision_margins)."""
    diff = (expected - got).abs().reshape(expected.shape[0], -1).amax(1)
    excused = torch.zeros_like(diff, dtype=torch.bool)
    if isinstance(policy.policy, CEMMaximizer) and bool((diff > MAX_ABS_DIFF).any()):
        cem = policy.policy
        with torch.no_grad():
            features = cem.q.encode(policy.normalized(observations.to(torch.float32)))
            margins = cem.decision_margins(features, cem.noise_table)
        excused = (diff > MAX_ABS_DIFF) & (margins <= CEM_TIE_TOLERANCE)
    compared = diff[~excused]
    return (float(compared.max()) if compared.numel() else 0.0), int(excused.sum())


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """'pt,pt2' or ['pt', 'onnx'] -> ('pt', ...) in canonical order; pt is required, unknown names are errors."""
    names = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = sorted(set(names) - set(FORMATS))
    if unknown:
        raise RobotrlError(f"unknown export format(s) {', '.join(unknown)}; allowed: {', '.join(FORMATS)}")
    if "pt" not in names:
        raise RobotrlError(f"export formats must include pt (the card and `robotrl eval` use it), got "
                           f"'{','.join(names)}'; allowed: {', '.join(FORMATS)}, e.g. pt,pt2")
    return tuple(f for f in FORMATS if f in names)


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


def _batch_export_args(policy: DeployedPolicy) -> tuple[tuple[torch.Tensor], tuple[dict[int, Any]]]:
    # A batch of 2 as the example: torch.export specialises a size-1 dimension to a constant.
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    return (torch.zeros(2, policy.obs_dim),), ({0: batch},)


@contextlib.contextmanager
def _quiet_exporter():
    """torch.export / torch.onnx print progress lines and library FutureWarnings that say nothing to a user."""
    onnx_log = logging.getLogger("torch.onnx")  # warns that torchvision's ops are not registered
    level = onnx_log.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        onnx_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            onnx_log.setLevel(level)


def write_pt(policy: DeployedPolicy, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """Frozen TorchScript at `path`; returns the reloaded module."""
    torch.jit.save(script_policy(policy), str(path))
    return torch.jit.load(str(path), map_location="cpu")


def write_pt2(policy: DeployedPolicy, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """torch.export + AOTInductor (CPU) package at `path`; returns the reloaded package's forward."""
    import torch._inductor

    args, dynamic = _batch_export_args(policy)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.export.export(policy.eval(), args, dynamic_shapes=dynamic)
            # check_lowerbound off: otherwise AOTI_RUNTIME_CHECK_INPUTS rejects batch 1 (the export example is 2).
            torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                     inductor_configs={"aot_inductor.check_lowerbound": False})
    except Exception as exc:  # the exporter's or compiler's own message, one line; typical cause: no C++ compiler
        raise RobotrlError(f"cannot write the .pt2 (torch.export + AOTInductor, which needs a C++ compiler such as "
                           f"g++): {first_line(exc, 200)}; export without it with --format pt") from None
    return torch._inductor.aoti_load_package(str(path))


def write_onnx(policy: DeployedPolicy, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """ONNX model at `path` (dynamo exporter, opset default); returns an ONNX Runtime session's forward."""
    try:
        import onnxruntime  # noqa: F401  (onnx_session needs it; fail here, before exporting, with the hint)
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError as exc:
        raise RobotrlError(f"--format onnx needs the onnx extra ({exc.name} is missing): {ONNX_HINT}") from None
    args, dynamic = _batch_export_args(policy)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(policy.eval(), args, dynamic_shapes=dynamic, dynamo=True, verbose=False)
            program.save(str(path))
    except Exception as exc:
        raise RobotrlError(f"cannot write the .onnx: {first_line(exc, 200)}; export without it with --format pt,pt2") \
            from None
    return ONNXPolicy(path)


WRITERS = {"pt": write_pt, "pt2": write_pt2, "onnx": write_onnx}  # format -> write the file, return its forward


def export_policy(policy: DeployedPolicy, out: str | Path, card: dict[str, Any], env: gym.Env,
                  formats: str | Sequence[str] = DEFAULT_FORMATS) -> ExportResult:
    out = Path(out)
    if out.suffix != ".pt":
        raise RobotrlError(f"export path must end in .pt, got {out}")
    formats = parse_formats(formats)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RobotrlError(f"cannot write {out}: cannot create the folder {out.parent} ({exc.strerror})") from None
    observations = reference_observations(policy, env)
    with torch.no_grad():
        expected = policy(observations)
    temporaries: dict[str, Path] = {}
    diffs: dict[str, float] = {}
    near_ties: dict[str, int] = {}
    try:
        for fmt in formats:
            # the temporary keeps the extension: AOTInductor insists on .pt2
            fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".{fmt}", dir=out.parent)
            os.close(fd)
            temporaries[fmt] = Path(tmp)
            reloaded = WRITERS[fmt](policy, Path(tmp))
            with torch.no_grad():
                diffs[fmt], near_ties[fmt] = compare_actions(policy, observations, expected, reloaded(observations))
                if fmt == "pt":  # the TorchScript file also takes a single observation
                    single, _ = compare_actions(policy, observations[:1], expected[:1], reloaded(observations[0]))
                    diffs[fmt] = max(diffs[fmt], single)
            if not diffs[fmt] <= MAX_ABS_DIFF:
                raise RobotrlError(f"export verification failed: the reloaded .{fmt} differs from the agent by "
                                   f"{diffs[fmt]:.3g} (> {MAX_ABS_DIFF}); nothing written to {out.parent}")
        files = {fmt: str(out.with_suffix(f".{fmt}")) for fmt in formats}
        scene = getattr(env.unwrapped, "runtime_scene", None)
        if scene is not None:  # a scene composed in code: the C++ runtime loads it instead of robotrl's sources
            import mujoco

            fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".mjb", dir=out.parent)
            os.close(fd)
            temporaries["mjb"] = Path(tmp)
            mujoco.mj_saveModel(scene(), tmp, None)
            files["mjb"] = str(out.with_suffix(".mjb"))
            card["scene"] = {"file": Path(files["mjb"]).name, "mujoco_version": mujoco.__version__,
                             "format": "MuJoCo binary model (mj_saveModel/mj_loadModel), self-contained; mesh geoms "
                                       "dropped (visual or collision-free), the physics unchanged"}
        card = {**card, "verified_max_abs_diff": diffs["pt"], "observations_checked": int(observations.shape[0]),
                "files": {fmt: {"file": Path(files[fmt]).name, "verified_max_abs_diff": diffs[fmt],
                                "input": FORMAT_INPUTS[fmt]} for fmt in formats}}
        if isinstance(policy.policy, CEMMaximizer):
            for fmt in formats:
                card["files"][fmt]["cem_near_ties"] = near_ties[fmt]
        card_path = out.with_suffix(".json")
        card_tmp = card_path.with_name(f".{card_path.name}.tmp")
        card_tmp.write_text(json.dumps(card, indent=2) + "\n")
        for kind, tmp in temporaries.items():
            give_default_file_mode(tmp)
            os.replace(tmp, files[kind])
        os.replace(card_tmp, card_path)
    finally:
        for tmp in temporaries.values():
            tmp.unlink(missing_ok=True)
    return ExportResult(str(out), str(card_path), diffs["pt"], int(observations.shape[0]), files, diffs, near_ties)


def interface_card(env: gym.Env) -> dict[str, Any]:
    """What a robot's own code needs to build the input and read the output without robotrl: the flat vector's
    layout (name, unit, [start, stop) per block) where the env names its blocks, and for goal-conditioned tasks the
    Dict keys' widths; a pixel observation's image contract; the action layout, the control scheme and the reward
    where the env states them."""
    card: dict[str, Any] = {}
    goals = goal_wrapper(env)
    if goals is not None:
        card["observation_layout"] = observation_layout(goals)
        card["goal_observation"] = {"keys": list(GOAL_KEYS), "widths": goals.widths,
                                    "note": "the flat input is the keys' vectors concatenated in this order"}
    u = env.unwrapped
    if goals is None and hasattr(u, "observation_layout"):
        card["observation_layout"] = block_slices(u.observation_layout())
    if getattr(u, "image_shape", None):
        card["pixel_input"] = u.pixel_spec()
    if hasattr(u, "action_layout"):
        card["action_layout"] = u.action_layout()
    if hasattr(u, "control_spec"):
        card["control"] = u.control_spec()
    if hasattr(u, "reward_spec"):
        card["reward"] = u.reward_spec()
    return card


def card_evaluation(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The figure a card states: the deployed policy on the run's report block (protocol 2). A checkpoint from
    before the protocol has only its last training evaluation, labelled as such."""
    if ckpt.get("report") is not None:
        return {**ckpt["report"], "block": "report"}
    if ckpt.get("eval") is not None:
        why = ("training stopped before its report evaluation" if ckpt.get("eval_protocol") is not None
               else "predates evaluation protocol 2")
        return {**ckpt["eval"], "block": f"selection ({why}: an episode block keep_best may have chosen on)"}
    return None


def export_checkpoint(path: str | Path, out: str | Path, command: str | None = None,
                      formats: str | Sequence[str] = DEFAULT_FORMATS) -> ExportResult:
    """Export a run directory or checkpoint file to `out` (.pt), the other `formats` beside it, and its card."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path)
    policy = policy_from_checkpoint(ckpt, ckpt_path)
    task = ckpt["task"]
    env = make_env(task_source(task, ckpt.get("env_spec")), normalize_actions=False)
    card = {
        "task": task, "algorithm": ckpt["algo"], "format": "torchscript",
        # the control loop evaluation ran, so a runtime can check (frame_skip) or follow (horizon) it
        "env_id": env.spec.id if env.spec else None, "horizon": env.spec.max_episode_steps if env.spec else None,
        "frame_skip": getattr(env.unwrapped, "frame_skip", None),
        "observation_shape": [ckpt["obs_dim"]], "action_shape": [ckpt["action_dim"]],
        "action_low": ckpt["action_low"].tolist(), "action_high": ckpt["action_high"].tolist(),
        "training_steps": ckpt["step"], "seed": ckpt["seed"], "evaluation": card_evaluation(ckpt),
        "eval_protocol": ckpt.get("eval_protocol"),
        "env_spec": ckpt.get("env_spec"),  # a user-supplied env's full gymnasium spec (JSON), to rebuild it
        "policy_step": ckpt["best"]["step"] if ckpt.get("best") else ckpt["step"],
        "source_checkpoint": str(ckpt_path), "robotrl_version": __version__, "torch_version": torch.__version__,
        "input": FORMAT_INPUTS["pt"],
        "output": "action in actuator units, clamped to [action_low, action_high]; non-finite input gives "
                  "the bounds' midpoint",
    }
    card.update(interface_card(env))
    if ckpt.get("commands"):
        card["train_commands"] = ckpt["commands"]
    if command:
        card["command"] = command
    try:
        return export_policy(policy, out, card, env, formats)
    finally:
        env.close()
