"""Evaluation videos: MuJoCo's offscreen renderer (through the task's gymnasium env), a caption burned
into each frame, and imageio (with imageio-ffmpeg's bundled ffmpeg for MP4, pillow for GIF) to write it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from robotrl.config import RobotrlError
from robotrl.evaluate import EpisodeObserver

VIDEO_FORMATS = (".mp4", ".gif")
GL_BACKENDS = ("egl", "osmesa", "glfw")
GL_HELP = ("install a headless OpenGL (Debian/Ubuntu: apt install libegl1 libgl1-mesa-dri for egl, "
           "or libosmesa6 for osmesa) and set MUJOCO_GL to it")

_PROBE = """
import gymnasium as gym
env = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=32, height=32)
env.reset(seed=0)
frame = env.render()
env.close()
assert frame.shape == (32, 32, 3) and frame.std() > 0, frame.shape
"""


def check_video_path(path: str | Path, size: tuple[int, int]) -> Path:
    """Fail before any rendering on an unknown extension, a missing or read-only directory, or a size the
    format cannot hold."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise RobotrlError(f"--video must end in {' or '.join(VIDEO_FORMATS)}, got '{path.name}'")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise RobotrlError(f"cannot write video {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise RobotrlError(f"cannot write video {path}: permission denied")
    if path.suffix.lower() == ".mp4" and (size[0] % 2 or size[1] % 2):
        raise RobotrlError(f"MP4 (H.264) needs an even width and height, got {size[0]}x{size[1]}")
    return path


def ensure_gl_backend() -> str:
    """The MUJOCO_GL backend to render with: the user's choice if set, else the first of egl, osmesa, glfw
    that renders a frame in a scratch process (a failed backend cannot be unloaded from this one)."""
    chosen = os.environ.get("MUJOCO_GL")
    candidates = (chosen,) if chosen else GL_BACKENDS
    for backend in candidates:
        env = {**os.environ, "MUJOCO_GL": backend}
        env.pop("PYOPENGL_PLATFORM", None)
        probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            if backend in ("egl", "osmesa"):
                os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    tried = ", ".join(f"MUJOCO_GL={b}" for b in candidates)
    raise RobotrlError(f"no OpenGL backend could render offscreen (tried {tried}); {GL_HELP}")


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    """Burn `text` into a dark band across the top of the frame (the frame keeps its size)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image, "RGBA")
    font_size = max(10, frame.shape[0] // 24)
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    band = int(font_size * 1.6)
    draw.rectangle([0, 0, frame.shape[1], band], fill=(0, 0, 0, 160))
    draw.text((6, (band - font_size) // 2), text, fill=(255, 255, 255, 255), font=font)
    return np.asarray(image)


class VideoRecorder(EpisodeObserver):
    """Renders each evaluation step and writes a captioned MP4 or GIF atomically (temp file, then rename)."""

    def __init__(self, path: Path, episodes: int, fps: int) -> None:
        import imageio.v2 as imageio

        self.path, self.episodes, self.fps, self.frames = path, episodes, fps, 0
        self.tmp = path.with_name(f".{path.name}.part{path.suffix}")
        if path.suffix.lower() == ".mp4":
            self.writer = imageio.get_writer(self.tmp, fps=fps, codec="libx264", macro_block_size=1,
                                             ffmpeg_log_level="error")
        else:
            self.writer = imageio.get_writer(self.tmp, mode="I", duration=1000.0 / fps, loop=0)

    def step(self, env: gym.Env, episode: int, t: int, episode_return: float, success: bool | None) -> None:
        text = f"episode {episode + 1}/{self.episodes}  step {t}  return {episode_return:.2f}"
        if success is not None:
            text += f"  success: {'yes' if success else 'no'}"
        self.writer.append_data(_caption(env.render(), text))
        self.frames += 1

    def finish(self) -> None:
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def record_evaluation(policy_path: str | Path, video: str | Path, episodes: int, seed: int | None,
                      fps: int | None = None, size: tuple[int, int] = (480, 480), notes: list[str] | None = None,
                      env_kwargs: dict | None = None):
    """Evaluate a run directory, checkpoint or exported .pt for `episodes` and film it (`seed` None: the policy's
    report block, as evaluate_path; `env_kwargs` as there).

    Returns (EvalResult, frames written). Nothing is left at `video` unless the whole video was written."""
    from robotrl.envs import make_env, task_source
    from robotrl.evaluate import load_policy_file, resolve_eval_seed, run_episodes

    path = check_video_path(video, size)
    policy, meta = load_policy_file(policy_path)
    seed, block = resolve_eval_seed(seed, meta, policy_path, notes)
    ensure_gl_backend()
    render = {"render_mode": "rgb_array", "width": size[0], "height": size[1]}
    source = task_source(meta["task"], meta.get("env_spec"), env_kwargs, **render)
    env = make_env(source, normalize_actions=False, render_mode="rgb_array", render_size=size)
    recorder = None
    try:
        fps = int(env.metadata.get("render_fps", 30)) if fps is None else fps
        if fps <= 0:
            raise RobotrlError(f"--fps must be positive, got {fps}")
        recorder = VideoRecorder(path, episodes, fps)
        result = run_episodes(policy, env, episodes, seed, observer=recorder)
        result.block = block
        recorder.finish()
        return result, recorder.frames
    except BaseException:
        if recorder is not None:
            recorder.abort()
        raise
    finally:
        env.close()
