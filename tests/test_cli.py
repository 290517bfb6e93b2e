"""The CLI as a user runs it: subprocesses, --json results, and one-line errors that touch nothing."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

# The module's trained run is built once per worker, so its tests share one worker.
pytestmark = pytest.mark.xdist_group("cli")

TINY = ["--set", "warmup_steps=100", "--set", "batch_size=16", "--set", "eval_episodes=1",
        "--set", "actor_hidden=[16]", "--set", "critic_hidden=[16]", "--set", "eval_every=0"]


def robotrl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotrl.cli", *args], capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=300)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny CLI-trained run on reach, shared by the tests that need a real run directory."""
    root = tmp_path_factory.mktemp("cli")
    out = last_json(robotrl("train", "reach", "--algo", "ddpg", "--steps", "300", "--seed", "2", "--out", "run",
                            "--no-progress", "--json", *TINY, cwd=root))
    return root, out


def test_list_prints_tasks_and_algorithms(tmp_path):
    proc = robotrl("list", cwd=tmp_path)
    assert proc.returncode == 0
    for word in ("reach", "push", "pendulum", "cheetah", "hopper", "walker", "ant", "ddpg", "td3", "sac", "naf"):
        assert word in proc.stdout
    assert " *sac " in proc.stdout and " *qtopt " in proc.stdout and "  ppo " in proc.stdout  # --distributed marks


def test_train_writes_run_directory_and_json(trained):
    root, out = trained
    assert out["steps"] == 300 and out["run_dir"] == "run" and isinstance(out["eval_mean_return"], float)
    run = root / "run"
    for name in ("config.yaml", "progress.csv", "checkpoints/last.pt", "checkpoints/replay-300.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    header = (run / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"step", "eval_mean_return", "critic_loss", "actor_loss"} <= set(header)


def test_eval_and_export_and_eval_of_export_agree(trained):
    root, _ = trained
    ev = last_json(robotrl("eval", "run", "--episodes", "3", "--seed", "7", "--json", cwd=root))
    assert set(ev) == {"mean_return", "std_return", "success_rate", "episodes", "returns", "seed", "block"}
    assert ev["episodes"] == 3 and ev["seed"] == 7 and ev["block"] == "user seed"
    assert len(ev["returns"]) == 3
    assert 0.0 <= ev["success_rate"] <= 1.0
    ex = last_json(robotrl("export", "run", "-o", "policies/reach-ddpg.pt", "--format", "pt,pt2,onnx", "--json",
                           cwd=root))
    assert ex["max_abs_diff"] <= 1e-5 and (root / "policies" / "reach-ddpg.json").is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert (root / "policies" / "reach-ddpg.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    card = json.loads((root / "policies" / "reach-ddpg.json").read_text())
    assert card["train_commands"] == ["robotrl train reach --algo ddpg --steps 300 --seed 2 --out run --no-progress "
                                      "--json " + shlex.join(TINY)]
    assert card["command"] == "robotrl export run -o policies/reach-ddpg.pt --format pt,pt2,onnx --json"
    for suffix in ("pt", "pt2", "onnx"):  # every exported file evaluates like the run it came from
        ev2 = last_json(robotrl("eval", f"policies/reach-ddpg.{suffix}", "--episodes", "3", "--seed", "7", "--json",
                                cwd=root))
        assert ev2["returns"] == pytest.approx(ev["returns"], abs=1e-3), suffix


def test_eval_by_default_reports_on_the_runs_report_block_as_train_and_the_card_do(trained):
    """`robotrl eval RUN` with no --seed is train's own figure: the report block of the run's seed, which no
    selection saw; the exported card states the same figure and names its block."""
    from robotrl.config import eval_seed_base

    root, out = trained
    ev = last_json(robotrl("eval", "run", "--episodes", "1", "--json", cwd=root))
    report_seed = eval_seed_base(2, "report")
    assert ev["seed"] == out["eval_seed"] == report_seed and ev["block"] == "report"
    assert report_seed not in range(eval_seed_base(2, "selection"), eval_seed_base(2, "selection") + 10**6)
    assert ev["mean_return"] == out["eval_mean_return"]
    last_json(robotrl("export", "run", "-o", "card/reach-ddpg.pt", "--format", "pt", "--json", cwd=root))
    card = json.loads((root / "card" / "reach-ddpg.json").read_text())
    assert card["evaluation"]["block"] == "report" and card["evaluation"]["seed"] == report_seed
    assert card["evaluation"]["mean_return"] == out["eval_mean_return"]
    assert card["eval_protocol"]["report_seed"] == report_seed
    ev_pt = last_json(robotrl("eval", "card/reach-ddpg.pt", "--episodes", "1", "--json", cwd=root))
    assert ev_pt["seed"] == report_seed and ev_pt["mean_return"] == pytest.approx(ev["mean_return"], abs=1e-3)


def test_eval_env_changes_the_envs_arguments_and_a_wrong_one_is_a_one_line_error(trained):
    """`--env` evaluates on a variant of the task's env (panda-grasp's held-out objects): on reach without the
    control cost, the same episodes score higher by exactly that cost, and the result records the change."""
    root, _ = trained
    plain = last_json(robotrl("eval", "run", "--episodes", "2", "--json", cwd=root))
    free = last_json(robotrl("eval", "run", "--episodes", "2", "--json", "--env", "reward_control_weight=0",
                             cwd=root))
    assert free["env"] == {"reward_control_weight": 0} and "env" not in plain
    assert all(f > p for f, p in zip(free["returns"], plain["returns"], strict=True))
    _assert_one_line_error(robotrl("eval", "run", "--env", "no_such_argument=1", cwd=root),
                           "env_kwargs do not fit Reacher-v5", "no_such_argument")
    _assert_one_line_error(robotrl("eval", "run", "--env", "reward_control_weight", cwd=root),
                           "--env expects key=value")


def test_a_checkpoint_from_before_the_protocol_still_evaluates_with_a_one_line_note(trained):
    import torch

    root, _ = trained
    ckpt = torch.load(root / "run" / "checkpoints" / "last.pt", weights_only=True)
    del ckpt["eval_protocol"], ckpt["report"]
    torch.save(ckpt, root / "old.pt")
    proc = robotrl("eval", "old.pt", "--episodes", "1", "--json", cwd=root)
    assert last_json(proc)["block"] == "report"
    notes = proc.stderr.strip().splitlines()
    assert len(notes) == 1 and "predates evaluation protocol" in notes[0] and "1000002" in notes[0], proc.stderr


def test_exported_files_are_not_checkpoints_and_cards_are_not_policies(trained):
    root, _ = trained
    if not (root / "policies" / "reach-ddpg.pt").is_file():
        last_json(robotrl("export", "run", "-o", "policies/reach-ddpg.pt", "--format", "pt", "--json", cwd=root))
    _assert_one_line_error(robotrl("export", "policies/reach-ddpg.pt", "-o", "again.pt", cwd=root),
                           "reach-ddpg.pt is an exported policy", "run directory")
    _assert_one_line_error(robotrl("train", "--resume", "policies", cwd=root), "policies", "run directory")
    _assert_one_line_error(robotrl("eval", "policies/reach-ddpg.json", cwd=root), "card", "reach-ddpg.pt")
    (root / "a_file").write_text("")
    _assert_one_line_error(robotrl("export", "run", "-o", "a_file/p.pt", "--format", "pt", cwd=root),
                           "cannot create the folder a_file")
    assert not (root / "again.pt").exists()


def test_negative_seeds_are_refused(trained, tmp_path):
    root, _ = trained
    _assert_one_line_error(robotrl("train", "reach", "--seed", "-1", "--steps", "10", "--out", "r", cwd=tmp_path),
                           "seed must be a non-negative integer, got -1")
    _assert_one_line_error(robotrl("eval", "run", "--seed", "-3", cwd=root), "seed must be a non-negative integer")
    assert not (tmp_path / "r").exists()


def test_resume_continues_to_the_new_total(trained, tmp_path):
    root, _ = trained
    import shutil

    shutil.copytree(root / "run", tmp_path / "run")
    out = last_json(robotrl("train", "--resume", "run", "--steps", "400", "--no-progress", "--json", cwd=tmp_path))
    assert out["steps"] == 400


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotrl: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_task(tmp_path):
    _assert_one_line_error(robotrl("train", "reacher", cwd=tmp_path), "unknown task 'reacher'", "reach")
    assert not (tmp_path / "runs").exists()


def test_unknown_algorithm(tmp_path):
    _assert_one_line_error(robotrl("train", "reach", "--algo", "dqn", cwd=tmp_path), "unknown algorithm 'dqn'",
                           "ddpg")


def test_unknown_set_key(tmp_path):
    _assert_one_line_error(robotrl("train", "reach", "--set", "lr=0.1", cwd=tmp_path),
                           "unknown config key 'lr'", "actor_lr")


def test_wrong_value_type(tmp_path):
    _assert_one_line_error(robotrl("train", "reach", "--set", "batch_size=lots", cwd=tmp_path),
                           "'batch_size' must be int", "'lots'")


def test_missing_paths(tmp_path):
    _assert_one_line_error(robotrl("eval", "nowhere.pt", cwd=tmp_path), "not found", "nowhere.pt")
    _assert_one_line_error(robotrl("export", "nowhere", "-o", "x.pt", cwd=tmp_path), "not found", "nowhere")
    _assert_one_line_error(robotrl("train", "--resume", "nowhere", cwd=tmp_path), "nowhere")


def test_truncated_checkpoint_is_reported_and_nothing_is_overwritten(trained, tmp_path):
    root, _ = trained
    data = (root / "run" / "checkpoints" / "last.pt").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    existing = tmp_path / "policy.pt"
    existing.write_bytes(b"previous export")
    _assert_one_line_error(robotrl("eval", "truncated.pt", cwd=tmp_path), "truncated.pt", "corrupt or truncated")
    _assert_one_line_error(robotrl("export", "truncated.pt", "-o", "policy.pt", cwd=tmp_path), "truncated.pt")
    assert existing.read_bytes() == b"previous export"
    assert bad.read_bytes() == data[: len(data) // 2]


def test_unknown_or_incomplete_export_format_writes_nothing(trained, tmp_path):
    root, _ = trained
    run = str(root / "run")
    _assert_one_line_error(robotrl("export", run, "-o", "p.pt", "--format", "pt,tflite", cwd=tmp_path),
                           "unknown export format(s) tflite", "pt, pt2, onnx")
    _assert_one_line_error(robotrl("export", run, "-o", "p.pt", "--format", "onnx", cwd=tmp_path),
                           "must include pt", "pt, pt2, onnx")
    assert list(tmp_path.iterdir()) == []


def test_foreign_checkpoint_is_reported(tmp_path):
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    (tmp_path / "notes.pt").write_text("hello")
    _assert_one_line_error(robotrl("eval", "foreign.pt", cwd=tmp_path), "foreign.pt", "not a robotrl checkpoint")
    _assert_one_line_error(robotrl("eval", "notes.pt", cwd=tmp_path), "notes.pt")


def test_train_refuses_to_overwrite_an_existing_run(trained):
    root, _ = trained
    before = (root / "run" / "checkpoints" / "last.pt").read_bytes()
    _assert_one_line_error(robotrl("train", "reach", "--out", "run", "--steps", "10", cwd=root), "--resume")
    assert (root / "run" / "checkpoints" / "last.pt").read_bytes() == before


SIGNAL_RUN = ["--set", "warmup_steps=100", "--set", "batch_size=16", "--set", "actor_hidden=[16]",
              "--set", "critic_hidden=[16]", "--set", "eval_every=0", "--set", "eval_episodes=1"]


def _start_training(root: Path, out: str, steps: int, *extra: str, started: str = "tb") -> subprocess.Popen:
    """Start `robotrl train` and return once `started` exists in the run directory (tb/: the loop is running)."""
    proc = subprocess.Popen([sys.executable, "-m", "robotrl.cli", "train", "pendulum", "--algo", "sac", "--steps",
                             str(steps), "--out", out, "--no-progress", *SIGNAL_RUN, *extra], cwd=root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 120
    while not (root / out / started).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    time.sleep(2.0)
    return proc


def _agent_tensors(path: Path) -> dict:
    import torch

    ckpt = torch.load(path, weights_only=True)
    return {f"{net}.{k}": v for net, sd in ckpt["agent"].items() if isinstance(sd, dict) and not net.endswith("_opt")
            for k, v in sd.items()}


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path, signum):
    import signal

    import torch

    proc = _start_training(tmp_path, "cut", 100_000, "--set", "checkpoint_every=0", "--set", "checkpoint_minutes=0")
    proc.send_signal(getattr(signal, signum))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, signum), stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and signum in lines[0] and "robotrl train --resume cut --steps 100000" in lines[0], stderr
    n = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 100 < n < 100_000
    last_json(robotrl("train", "--resume", "cut", "--steps", str(n + 150), "--no-progress", "--json", cwd=tmp_path))
    last_json(robotrl("train", "pendulum", "--algo", "sac", "--steps", str(n + 150), "--out", "full", "--no-progress",
                      "--json", *SIGNAL_RUN, "--set", "checkpoint_every=0", "--set", "checkpoint_minutes=0",
                      cwd=tmp_path))
    resumed = _agent_tensors(tmp_path / "cut" / "checkpoints" / "last.pt")
    full = _agent_tensors(tmp_path / "full" / "checkpoints" / "last.pt")
    assert resumed.keys() == full.keys() and all(torch.equal(resumed[k], full[k]) for k in full)


def test_kill_9_loses_at_most_the_checkpoint_interval(tmp_path):
    """checkpoint_every=200: after a SIGKILL at an arbitrary moment the last checkpoint is at most 200 steps old,
    names a replay file that exists and matches it, and the run resumes."""
    import signal

    import torch

    from robotrl.run import load_run

    proc = _start_training(tmp_path, "killed", 100_000, "--set", "checkpoint_every=200",
                           started="checkpoints/last.pt")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["replay_file"] == f"replay-{ckpt['step']}.pt"
    run = load_run(last)
    assert run.step >= 200 and run.step % 200 == 0 and len(run.buffer) == run.step
    last_json(robotrl("train", "--resume", "killed", "--steps", str(run.step + 50), "--no-progress", "--json",
                      cwd=tmp_path))
