"""Evaluation videos (offscreen MuJoCo renders written by imageio) and learning-curve plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml
from PIL import Image

from robotrl.run import build_run, train

# The module's fixtures are built once per worker, so its tests share one worker.
pytestmark = pytest.mark.xdist_group("video_plot")


def robotrl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotrl.cli", *args], capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotrl: error:"), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory) -> Path:
    """A freshly trained (briefly) reach policy: episodes are exactly 50 steps, so frame counts are known."""
    root = tmp_path_factory.mktemp("video")
    run = build_run("reach", "ddpg", seed=0, run_dir=root / "run",
                    overrides=dict(warmup_steps=200, batch_size=32, eval_every=0, eval_episodes=1,
                                   actor_hidden=[32], critic_hidden=[32]))
    train(run, 600, progress=False)
    return root / "run"


@pytest.mark.parametrize("name", ["reach.mp4", "reach.gif"])
def test_video_has_one_real_frame_per_step_at_the_requested_size(reach_run, name):
    root = reach_run.parent
    proc = robotrl("eval", "run", "--episodes", "2", "--video", name, "--size", "96x64", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    frames = iio.imread(root / name)
    # one frame after each reset and one after each of the 50 steps of each episode
    assert result["frames"] == 2 * 51 == frames.shape[0], (result, frames.shape)
    assert frames.shape[1:] == (64, 96, 3)
    assert result["video"] == name and len(result["returns"]) == 2
    assert frames.astype(np.float32).std() > 10  # real renders, not a blank canvas
    below_caption = frames[:, 20:].astype(np.float32)
    assert np.abs(below_caption[0] - below_caption[-1]).mean() > 0.1  # the arm moved
    assert not list(root.glob(".*.part*"))


def test_video_errors_are_one_line_and_write_nothing(reach_run, tmp_path):
    root = reach_run.parent
    one_line_error(robotrl("eval", "run", "--video", "clip.avi", cwd=root), "clip.avi", ".mp4")
    one_line_error(robotrl("eval", "run", "--video", str(tmp_path / "missing" / "v.mp4"), cwd=root), "missing")
    one_line_error(robotrl("eval", "run", "--video", "v.mp4", "--size", "95x64", cwd=root), "even")
    one_line_error(robotrl("eval", "run", "--video", "v.mp4", "--size", "big", cwd=root), "WIDTHxHEIGHT")
    one_line_error(robotrl("eval", "run", "--video", "v.gif", "--fps", "0", cwd=root), "--fps must be positive")
    assert not (root / "clip.avi").exists() and not (root / "v.mp4").exists() and not (root / "v.gif").exists()
    assert not list(root.glob(".*.part*"))


def test_video_interrupted_midway_leaves_no_file(reach_run, monkeypatch):
    from robotrl import video

    target = reach_run.parent / "broken.mp4"
    calls = {"n": 0}
    real_caption = video._caption

    def failing_caption(frame, text):
        calls["n"] += 1
        if calls["n"] > 10:
            raise RuntimeError("renderer died")
        return real_caption(frame, text)

    monkeypatch.setattr(video, "_caption", failing_caption)
    with pytest.raises(RuntimeError, match="renderer died"):
        video.record_evaluation(reach_run, target, episodes=1, seed=0, size=(64, 64))
    assert not target.exists() and not list(target.parent.glob(".*.part*"))


def _fake_run(path: Path, task: str, algo: str, seed: int, offset: float) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"task": task, "algo": algo, "seed": seed}))
    with (path / "progress.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "time_s", "steps_per_s", "eval_mean_return", "eval_success_rate"])
        w.writeheader()
        for i in range(1, 6):
            w.writerow({"step": 1000 * i, "time_s": 3.0 * i, "steps_per_s": 330.0,
                        "eval_mean_return": offset + 10 * i, "eval_success_rate": 0.1 * i})
    return path


def test_plot_of_two_runs_writes_a_png_of_the_requested_size(tmp_path):
    _fake_run(tmp_path / "a", "reach", "sac", 0, 0.0)
    _fake_run(tmp_path / "b", "reach", "sac", 1, 5.0)
    proc = robotrl("plot", "a", "b", "-o", "curves.png", "--size", "640x400", "--metric", "success_rate",
                   "--x", "time", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == (640, 400) and image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 5  # something was drawn


def test_plot_groups_seeds_into_mean_and_std(tmp_path):
    from robotrl.plot import collect_curves

    runs = [_fake_run(tmp_path / "a", "reach", "sac", 0, 0.0), _fake_run(tmp_path / "b", "reach", "sac", 1, 4.0),
            _fake_run(tmp_path / "c", "reach", "td3", 0, 100.0)]
    curves = {c.label: c for c in collect_curves(runs, "eval_return", "steps")}
    assert set(curves) == {"reach sac", "reach td3"}
    x, mean, std = curves["reach sac"].mean_std()
    np.testing.assert_allclose(x, [1000, 2000, 3000, 4000, 5000])
    np.testing.assert_allclose(mean, [12, 22, 32, 42, 52])
    np.testing.assert_allclose(std, [2, 2, 2, 2, 2])


def test_plot_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    _fake_run(tmp_path / "a", "reach", "sac", 0, 0.0)
    one_line_error(robotrl("plot", "empty", cwd=tmp_path), "progress.csv")
    one_line_error(robotrl("plot", "a", "--metric", "nope", cwd=tmp_path), "nope", "eval_return")
    one_line_error(robotrl("plot", "a", "-o", "curves.jpg", cwd=tmp_path), ".png")
    one_line_error(robotrl("plot", "a", "--x", "episodes", cwd=tmp_path), "steps")
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.tmp"))
