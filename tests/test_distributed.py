"""robotrl.distributed: Ray collectors feed the run's own learner, replay, evaluation and checkpoints; a collector
that dies is replaced and nothing in replay is lost; bad specs, algorithms and addresses are one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import ray

from robotrl.config import RobotrlError
from robotrl.distributed import DistributedSpec, parse_distributed
from robotrl.distributed.loop import collector_seed
from robotrl.run import build_run, load_run, save_run, train

pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_the_spec_parses_and_bad_ones_are_one_line_errors():
    assert parse_distributed("collectors=3") == DistributedSpec(collectors=3)
    assert parse_distributed("collectors=2,sync=500,block=50", "10.0.0.1:6379") == DistributedSpec(
        collectors=2, sync=500, block=50, address="10.0.0.1:6379")
    for bad, needle in [("collectors=0", "at least 1"), ("collectors=two", "whole number"), ("sync=5", "required"),
                        ("workers=2", "expected collectors=N"), ("collectors", "expected collectors=N"),
                        ("collectors=2,bellman=1", "Bellman updaters are not built yet")]:
        with pytest.raises(RobotrlError, match=needle) as info:
            parse_distributed(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(RobotrlError, match="off-policy algorithms"):
        build_run("pendulum", "ppo", distributed=DistributedSpec(collectors=2))


def test_collectors_get_their_own_seeds_from_the_run_seed():
    seeds = {collector_seed(7, i, g) for i in range(4) for g in range(3)}
    assert len(seeds) == 12 and collector_seed(7, 1, 0) == collector_seed(7, 1, 0) != collector_seed(8, 1, 0)


def _tiny(**extra):
    return {"warmup_steps": 200, "batch_size": 32, "eval_every": 0, "eval_episodes": 2, "actor_hidden": [32],
            "critic_hidden": [32], **extra}


def test_a_distributed_run_fills_replay_with_whole_episodes_and_survives_a_killed_collector(local_ray, tmp_path):
    spec = DistributedSpec(collectors=2, sync=100, block=60)
    run = build_run("reach", "sac", seed=3, overrides=_tiny(), run_dir=tmp_path / "run", distributed=spec)
    train(run, 400, progress=False, evaluate_at_end=False)
    learner = run.loop_objects["learner"]
    assert run.step >= 400 and len(run.buffer) == run.step and run.episodes == run.step // 50  # reach: 50 steps
    assert run.buffer.episode_end[:run.step].sum() == run.episodes  # episodes arrive whole, each ends once
    assert run.agent.updates > 0 and learner.version == run.agent.updates
    before = run.buffer.obs[:run.step].copy()
    ray.kill(learner.handles[0])  # a collector dies mid-run
    result = train(run, 900, progress=False)
    assert learner.replaced >= 1 and run.step >= 900 and len(run.buffer) == run.step
    np.testing.assert_array_equal(run.buffer.obs[:len(before)], before)  # nothing already in replay was lost
    assert np.isfinite(result["eval_mean_return"])
    assert "collector_staleness" in run.progress_rows[-1]

    # the checkpoint resumes the learner and replay exactly; new collectors start new episodes
    path = save_run(run)
    resumed = load_run(path, run_dir=tmp_path / "run")
    assert resumed.step == run.step and len(resumed.buffer) == len(run.buffer) and resumed.obs is None
    np.testing.assert_array_equal(resumed.buffer.obs[:run.step], run.buffer.obs[:run.step])
    resumed.distributed = spec
    train(resumed, run.step + 100, progress=False, evaluate_at_end=False)
    assert resumed.step >= run.step + 100
    from robotrl.distributed import shutdown

    shutdown(run)
    shutdown(resumed)
    single = load_run(path, run_dir=tmp_path / "run")  # and the single-process loop takes over (resumed's last save)
    start = single.step
    assert start >= run.step + 100
    train(single, start + 50, progress=False, evaluate_at_end=False)
    assert single.step == start + 50 and len(single.buffer) == start + 50


def test_sac_learns_pendulum_from_two_collectors(local_ray):
    """The card's SAC settings (keep_best included, evaluated every 1000 steps) collected by two Ray actors reach the
    single-process test's band (>= 900 on held-out report episodes) at 6000 steps, where that test takes 10 000 (at
    6000, seeds 1, 2 and 3 all reached 1000 in the distributed run)."""
    run = build_run("pendulum", "sac", seed=1, overrides={"eval_every": 1000},
                    distributed=DistributedSpec(collectors=2, sync=250, block=250))
    result = train(run, 6000, progress=False)
    from robotrl.distributed import shutdown

    shutdown(run)
    assert result["steps"] >= 6000 and result["eval_block"] == "report", result
    assert result["eval_mean_return"] >= 900, result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, needle", [
    (["--distributed", "collectors=2", "--address", f"127.0.0.1:{_free_port()}"], "cannot reach the Ray cluster"),
    (["--distributed", "collectors=2", "--address", "nohostport"], "bad --address"),
    (["--distributed", "workers=2"], "expected collectors=N"),
    (["--address", "127.0.0.1:6379"], "add --distributed collectors=N"),
    (["--distributed", "collectors=2", "--algo", "ppo"], "off-policy algorithms"),
])
def test_bad_distributed_command_lines_are_one_line_errors(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "robotrl.cli", "train", "pendulum", "--steps", "100",
                           "--no-progress", *args], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotrl: error:") and needle in lines[0], proc.stderr
