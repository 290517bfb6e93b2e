"""Per-action policy latency, batch 1, one thread: eager PyTorch, TorchScript, .pt2 (AOTInductor) and ONNX Runtime
from Python, and the C++ runtime loading the .pt and the .pt2.

    python tools/bench_latency.py [--policy policies/reach-sac.pt] [--actions 2000]

Only the policy's forward call is timed on every path (the input is built before the clock starts). NAME.pt2 and
NAME.onnx are timed when they sit beside NAME.pt (`robotrl export --format pt,pt2,onnx` writes them).
Eager PyTorch is rebuilt from the checkpoint named in the policy's card when that file exists; otherwise
from the task card's settings with untrained weights (same layers, so the same arithmetic) and the row
says so. The C++ runtime is tools/runtime/build/robotrl_runtime (build it with tools/runtime/build.sh).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robotrl import make_env
from robotrl.algos import ALGOS
from robotrl.checkpoint import load_checkpoint
from robotrl.config import RobotrlError
from robotrl.evaluate import onnx_session, policy_from_checkpoint
from robotrl.export import reference_observations
from robotrl.run import build_run, run_policy

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "tools" / "runtime" / "build" / "robotrl_runtime"


def time_forward(forward: Callable[[torch.Tensor], torch.Tensor], observations: list[torch.Tensor],
                 warmup: int) -> tuple[float, float]:
    """(p50, p99) in microseconds of forward(obs) over the observations, after `warmup` untimed calls."""
    with torch.inference_mode():
        for obs in observations[:warmup]:
            forward(obs)
        latencies = np.empty(len(observations))
        for i, obs in enumerate(observations):
            start = time.perf_counter_ns()
            forward(obs)
            latencies[i] = (time.perf_counter_ns() - start) / 1e3
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))


def eager_policy(card: dict) -> tuple[torch.nn.Module | None, str]:
    checkpoint = ROOT / card.get("source_checkpoint", "")
    if card.get("source_checkpoint") and checkpoint.is_file():
        return policy_from_checkpoint(load_checkpoint(checkpoint), checkpoint), "eager PyTorch (checkpoint)"
    algo = card.get("algorithm", "")
    if algo not in ALGOS or not card.get("task"):
        return None, "eager PyTorch: not available (no checkpoint, unknown algorithm)"
    untrained = run_policy(build_run(card["task"], algo, seed=0, overrides={"buffer_size": 1000})).eval()
    return untrained, "eager PyTorch (untrained, same layers; checkpoint not available)"


def reference_mlp(card: dict) -> torch.jit.ScriptModule:
    """The issue's yardstick: a plain 256-256 ReLU MLP on this task's widths, scripted and frozen, no guards."""
    obs_dim, action_dim = card["observation_shape"][0], card["action_shape"][0]
    mlp = torch.nn.Sequential(torch.nn.Linear(obs_dim, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, action_dim))
    return torch.jit.freeze(torch.jit.script(mlp.eval()))


def load_pt2(policy: Path) -> Callable[[torch.Tensor], torch.Tensor] | str:
    path = policy.with_suffix(".pt2")
    if not path.is_file():
        return f"no {path.name}"
    import torch._inductor

    return torch._inductor.aoti_load_package(str(path))


def load_onnx(policy: Path) -> Callable[[torch.Tensor], torch.Tensor] | str:
    path = policy.with_suffix(".onnx")
    if not path.is_file():
        return f"no {path.name}"
    try:
        session = onnx_session(path)
    except RobotrlError as exc:  # onnxruntime not installed, or an unreadable file
        return str(exc)
    feeds = {}

    def forward(obs: torch.Tensor) -> list:  # obs.numpy() is a zero-copy view
        feeds["obs"] = obs.numpy()
        return session.run(None, feeds)

    return forward


def cpp_runtime(policy: Path, task: str, actions: int, horizon: int) -> tuple[float, float] | str:
    if not RUNTIME.is_file():
        return "not built (bash tools/runtime/build.sh)"
    if not policy.is_file():
        return f"no {policy.name}"
    episodes = max(1, math.ceil(actions / horizon))
    result = subprocess.run([str(RUNTIME), "--policy", str(policy), "--task", task, "--episodes", str(episodes),
                             "--json"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return f"failed: {result.stderr.strip()}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return summary["latency_us_p50"], summary["latency_us_p99"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=ROOT / "policies" / "reach-sac.pt")
    parser.add_argument("--actions", type=int, default=2000, help="timed actions per path")
    parser.add_argument("--rounds", type=int, default=5, help="every path is timed once per round; the table "
                                                              "shows the median round")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls first (TorchScript profiles its "
                                                                 "first runs)")
    args = parser.parse_args(argv)
    card_path = args.policy.with_suffix(".json")
    if not args.policy.is_file() or not card_path.is_file():
        print(f"bench_latency: need {args.policy} and its card {card_path}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    card = json.loads(card_path.read_text())
    task = card["task"]

    scripted = torch.jit.load(str(args.policy), map_location="cpu").eval()
    env = make_env(task, normalize_actions=False)
    observations = list(reference_observations(scripted, env, args.actions, seed=0))  # states the policy visits
    horizon = env.spec.max_episode_steps or 1000
    env.close()
    batched = [obs[None].contiguous() for obs in observations]  # .pt2 and ONNX take [batch, obs]

    # label -> () -> (p50, p99) or a reason it cannot run; every round times every path once, in this order.
    paths: dict[str, Callable[[], tuple[float, float] | str]] = {}
    reference = reference_mlp(card)
    paths["reference: bare 256-256 MLP, script + freeze (issue 6 measured 15 us)"] = \
        lambda: time_forward(reference, observations, args.warmup)
    eager, eager_label = eager_policy(card)
    paths[eager_label] = (lambda: time_forward(eager, observations, args.warmup)) if eager is not None \
        else (lambda: "not available")
    paths["TorchScript in Python (torch.jit.load)"] = lambda: time_forward(scripted, observations, args.warmup)
    for label, load in ((".pt2 in Python (torch._inductor.aoti_load_package)", load_pt2),
                        ("ONNX Runtime in Python", load_onnx)):
        forward = load(args.policy)
        paths[label] = (lambda f=forward: time_forward(f, batched, args.warmup)) if not isinstance(forward, str) \
            else (lambda why=forward: why)
    for label, path in (("C++ runtime, .pt (torch::jit::load)", args.policy),
                        ("C++ runtime, .pt2 (AOTIModelPackageLoader)", args.policy.with_suffix(".pt2"))):
        paths[label] = lambda path=path: cpp_runtime(path, task, args.actions, horizon)

    results: dict[str, list[tuple[float, float]]] = {label: [] for label in paths}
    reasons: dict[str, str] = {}
    for _ in range(args.rounds):
        for label, measure in paths.items():
            outcome = measure()
            if isinstance(outcome, str):
                reasons[label] = outcome
            else:
                results[label].append(outcome)
    rows: list[tuple[str, str, str]] = []
    for label in paths:
        if label in reasons:
            rows.append((f"{label}: {reasons[label]}", "-", "-"))
        else:  # the median round: a machine shared with other VMs has slow stretches
            p50s, p99s = zip(*results[label], strict=True)
            rows.append((label, f"{np.median(p50s):.1f}", f"{np.median(p99s):.1f}"))

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"policy {args.policy.relative_to(ROOT) if args.policy.is_relative_to(ROOT) else args.policy} "
          f"(task {task}), batch 1, 1 thread, ~{args.actions} actions per path and round, median of "
          f"{args.rounds} rounds; load average {load}")
    width = max(len(row[0]) for row in rows)
    print(f"| {'path'.ljust(width)} | p50 us | p99 us |")
    print(f"|{'-' * (width + 2)}|--------|--------|")
    for name, p50, p99 in rows:
        print(f"| {name.ljust(width)} | {p50:>6} | {p99:>6} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
