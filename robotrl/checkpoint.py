"""Checkpoints: plain state dicts, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from robotrl.config import RobotrlError, first_line

FORMAT = "robotrl-checkpoint"
FORMAT_VERSION = 1


def give_default_file_mode(path: str | Path) -> None:
    """mkstemp creates files readable by their owner only; give a finished file the mode `open` would
    (0o666 less the umask), so a policy copied to a robot or shared with a team is readable there."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over `path`.

    A crash mid-write leaves the previous file intact.
    """
    path = Path(path)
    if path.is_dir():
        raise RobotrlError(f"cannot save to {path}: it is a directory; give a file name, e.g. {path / 'agent.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        give_default_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    atomic_torch_save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, path)


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.split("/", 1)[-1].startswith("code/") for name in zf.namelist())


def is_aoti_package(path: Path) -> bool:
    """An AOTInductor package written by torch._inductor.aoti_compile_and_package (a zip with a data/aotinductor/
    folder)."""
    if path.suffix != ".pt2" or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/data/aotinductor/" in f"/{name}" for name in zf.namelist())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint; every failure is a RobotrlError naming the path and the problem."""
    path = Path(path)
    if not path.exists():
        raise RobotrlError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise RobotrlError(f"expected a checkpoint file, got a directory: {path}")
    if path.suffix in (".onnx", ".json") or is_torchscript(path) or is_aoti_package(path):
        raise RobotrlError(f"{path} is an exported policy (or its card), not a checkpoint: pass the run directory or "
                           f"its checkpoints/last.pt")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle a user's file is a corrupt/foreign file, not a bug
        raise RobotrlError(f"{path} is not a readable robotrl checkpoint (corrupt or truncated?): "
                           f"{first_line(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RobotrlError(f"{path} is not a robotrl checkpoint (foreign file: no '{FORMAT}' marker)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise RobotrlError(f"{path} has checkpoint format version {version}; this robotrl reads version "
                           f"{FORMAT_VERSION} (re-train or export it with the robotrl that wrote it)")
    return data


def restore_agent(agent: Any, normalizer: torch.nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint's agent and normaliser state; a mismatch is a RobotrlError, not a traceback."""
    try:
        agent.load_state_dict(ckpt["agent"])
        normalizer.load_state_dict(ckpt["normalizer"])
    except (KeyError, RuntimeError) as exc:
        raise RobotrlError(f"{path}: checkpoint does not match {ckpt['algo']} on {ckpt['task']}: "
                           f"{first_line(exc)}") from None

