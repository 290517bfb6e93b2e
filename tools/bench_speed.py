"""Speed benchmark: learning-phase env-steps/s of robotrl against Stable-Baselines3, same hyperparameters.

    python tools/bench_speed.py                                  # sac, td3, ddpg on cheetah and reach
    python tools/bench_speed.py --algos sac --tasks cheetah --steps 3000 --json
    python tools/bench_speed.py --algos ppo --tasks hopper,walker,cheetah --steps 20480 --threads 1 --sb3-threads 1

On-policy rows (ppo, a2c) run each task card's own settings on both libraries (rollouts, networks, observation and
reward normalisation, translated by tools/bench_quality.sb3_on_policy_kwargs and sb3_vec_env), with no warm-up:
env-steps/s over the whole run (every rollout and its update), ms per update (one update on the last rollout: all
its epochs), and no arithmetic-floor columns.

Each measurement is its own process (so peak memory is per run), and the libraries alternate A B A B
(--repeats pairs), so a drift in machine speed hits both. Settings are identical by construction: the
robotrl config is built from the task card plus the overrides below, and SB3's arguments are translated
from it (tools/bench_quality.sb3_kwargs): SB3's default networks (SAC 256-256, TD3/DDPG 400-300), batch
256, one update per env step, a 1e6 replay buffer, --warmup random steps, no observation normalisation.

Columns: env-steps/s of the learning phase (after the warm-up: act, env.step, store, one update);
ms per update (a loop of sample + update alone); peak RSS; robotrl / SB3 ratio against SB3's best thread
count; and the fraction of the arithmetic floor = floor ms / measured ms per env step, where the floor is
the update's FLOPs (forward plus the backward passes the maths needs, the delayed TD3 actor at its
average rate) divided by the fp32 GEMM rate measured in the same process at the same thread count; and
"GEMMs alone": the update's matrix products timed at their real shapes with nothing else (update_gemms_ms).
Run nothing else on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import card_configs, sb3_kwargs, sb3_vec_env  # noqa: E402

from robotrl.envs import load_card, make_env  # noqa: E402
from robotrl.run import build_run, train  # noqa: E402

NETS = {"sac": [256, 256], "td3": [400, 300], "ddpg": [400, 300]}  # SB3's MlpPolicy defaults
BATCH = 256
ON_POLICY = ("ppo", "a2c")  # with their cards' own settings on both libraries


def on_policy_overrides(threads: int) -> dict[str, Any]:
    return {"eval_every": 0, "checkpoint_every": 0, "eval_episodes": 1, "torch_threads": threads}


def overrides(algo: str, warmup: int, threads: int) -> dict[str, Any]:
    return {"actor_hidden": NETS[algo], "critic_hidden": NETS[algo], "batch_size": BATCH, "updates_per_step": 1.0,
            "warmup_steps": warmup, "buffer_size": 1_000_000, "normalize_obs": False, "eval_every": 0,
            "checkpoint_every": 0, "eval_episodes": 1, "torch_threads": threads}


# --------------------------------------------------------------------------- arithmetic floor
def _macs(sizes: list[int], skip_first: bool = False) -> int:
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    return sum(a * b for a, b in (layers[1:] if skip_first else layers))


def update_gflop(algo: str, obs_dim: int, action_dim: int, policy_delay: int = 2) -> float:
    """FLOPs of one update: forward passes, weight gradients of the trained net, input gradients only where
    the chain rule needs them (never into a first layer's input, except the critic's action input in the
    actor loss). Multiply-adds count 2 FLOPs."""
    hidden = NETS[algo]
    actor_out = 2 * action_dim if algo == "sac" else action_dim
    a_sizes, c_sizes = [obs_dim, *hidden, actor_out], [obs_dim + action_dim, *hidden, 1]
    actor, actor_inner = _macs(a_sizes), _macs(a_sizes, skip_first=True)
    critic, critic_inner = _macs(c_sizes), _macs(c_sizes, skip_first=True)
    n_q = 1 if algo == "ddpg" else 2
    target = actor + n_q * critic
    critic_step = n_q * (2 * critic + critic_inner)
    q_in_actor = 2 if algo == "sac" else 1  # SAC's actor loss uses min(Q1, Q2); TD3's and DDPG's Q1 only
    actor_step = 2 * actor + actor_inner + q_in_actor * 2 * critic
    if algo == "td3":
        actor_step /= policy_delay
    return 2 * BATCH * (target + critic_step + actor_step) / 1e9


def gemm_gflops(threads: int, repeats: int = 200) -> float:
    """fp32 GEMM rate at the benchmark's layer sizes (batch 256 x 256 x 256 and 256 x 400 x 300)."""
    torch.set_num_threads(threads)
    rates = []
    for k, n in ((256, 256), (400, 300)):
        a, b = torch.randn(BATCH, k), torch.randn(k, n)
        for _ in range(20):
            a @ b
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        rates.append(2 * BATCH * k * n * repeats / (time.perf_counter() - t0) / 1e9)
    return float(np.mean(rates))


def update_gemms_ms(algo: str, obs_dim: int, action_dim: int, threads: int, policy_delay: int = 2,
                    repeats: int = 100) -> float:
    """ms per update of the update's matrix products alone, at their real shapes and layouts (twin critics as
    one batched matmul, a single net as plain matmuls, weight gradients as transposed products), with no
    autograd, elementwise op, optimiser or sampling: what a perfect implementation of the same maths still pays
    on this machine."""
    torch.set_num_threads(threads)
    hidden = NETS[algo]
    actor_out = 2 * action_dim if algo == "sac" else action_dim
    actor = [torch.randn(a, b) for a, b in pairwise([obs_dim, *hidden, actor_out])]
    twin = [torch.randn(2, a, b) for a, b in pairwise([obs_dim + action_dim, *hidden, 1])]
    q1 = [w[0].contiguous() for w in twin]
    critic = q1 if algo == "ddpg" else twin
    q_in_actor = twin if algo == "sac" else q1  # SAC's actor loss uses min(Q1, Q2); TD3's and DDPG's Q1 only
    obs, obs_action = torch.randn(BATCH, obs_dim), torch.randn(BATCH, obs_dim + action_dim)

    def forward(weights: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        acts = [x if weights[0].dim() == 2 else x.expand(weights[0].shape[0], -1, -1)]
        for w in weights:
            acts.append(acts[-1] @ w)
        return acts

    def backward(weights: list[torch.Tensor], acts: list[torch.Tensor], weight_grads: bool) -> None:
        grad = torch.ones_like(acts[-1])
        for k in reversed(range(len(weights))):
            if weight_grads:
                acts[k].transpose(-1, -2) @ grad
            if k > 0:
                grad = grad @ weights[k].transpose(-1, -2)
            elif not weight_grads:  # the actor loss needs dQ/da only: the action rows of the first layer
                grad @ weights[0][..., obs_dim:, :].transpose(-1, -2)

    def update(step: int) -> None:
        forward(actor, obs), forward(critic, obs_action)  # target: pi'(s'), Q'(s', a')
        backward(critic, forward(critic, obs_action), weight_grads=True)
        if algo != "td3" or step % policy_delay == 0:
            backward(q_in_actor, forward(q_in_actor, obs_action), weight_grads=False)
            backward(actor, forward(actor, obs), weight_grads=True)

    for step in range(10):
        update(step)
    t0 = time.perf_counter()
    for step in range(repeats):
        update(step)
    return 1e3 * (time.perf_counter() - t0) / repeats


# --------------------------------------------------------------------------- one measurement (a subprocess)
def measure_robotrl(algo: str, task: str, steps: int, warmup: int, threads: int, updates: int) -> dict[str, Any]:
    run = build_run(task, algo, seed=0, overrides=overrides(algo, warmup, threads))
    train(run, warmup, progress=False, evaluate_at_end=False)
    t0 = time.perf_counter()
    train(run, warmup + steps, progress=False, evaluate_at_end=False)
    learn_s = time.perf_counter() - t0
    cfg = run.loop_cfg

    def one_update() -> None:
        batch = run.buffer.sample(cfg.batch_size, device=cfg.device)
        batch.obs, batch.next_obs = run.normalizer(batch.obs), run.normalizer(batch.next_obs)
        run.agent.update(batch)

    return {"learn_s": learn_s, "update_s": _time_loop(one_update, updates), "obs_dim": run.obs_dim,
            "action_dim": run.action_dim, "policy_delay": getattr(run.algo_cfg, "policy_delay", 2)}


def measure_robotrl_on_policy(algo: str, task: str, steps: int, threads: int, updates: int) -> dict[str, Any]:
    run = build_run(task, algo, seed=0, overrides=on_policy_overrides(threads))
    t0 = time.perf_counter()
    train(run, steps, progress=False, evaluate_at_end=False)
    learn_s = time.perf_counter() - t0
    last = run.buffer.rollout(run.agent.value(run.normalizer(torch.as_tensor(run.obs))), 0.0)
    return {"learn_s": learn_s, "steps": run.step, "update_s": _time_loop(lambda: run.agent.update(last), updates)}


def measure_sb3_on_policy(algo: str, task: str, steps: int, threads: int, updates: int) -> dict[str, Any]:
    import stable_baselines3

    card = load_card(task)
    loop_cfg, algo_cfg = card_configs(card, algo, on_policy_overrides(threads))
    torch.set_num_threads(threads)
    venv = sb3_vec_env(card, loop_cfg, algo_cfg, seed=0)
    model = getattr(stable_baselines3, algo.upper())("MlpPolicy", venv, seed=0, verbose=0,
                                                     **sb3_kwargs(algo, loop_cfg, algo_cfg, venv.action_space.shape[0]))
    t0 = time.perf_counter()
    model.learn(steps)
    learn_s = time.perf_counter() - t0
    return {"learn_s": learn_s, "steps": model.num_timesteps, "update_s": _time_loop(model.train, updates)}


def measure_sb3(algo: str, task: str, steps: int, warmup: int, threads: int, updates: int) -> dict[str, Any]:
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    card = load_card(task)
    loop_cfg, algo_cfg = card_configs(card, algo, overrides(algo, warmup, threads))
    torch.set_num_threads(threads)
    venv = DummyVecEnv([lambda: make_env(card)])
    action_dim = venv.action_space.shape[0]
    model = getattr(stable_baselines3, algo.upper())("MlpPolicy", venv, seed=0, verbose=0,
                                                     **sb3_kwargs(algo, loop_cfg, algo_cfg, action_dim))
    marks: dict[str, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == warmup:
                marks["start"] = time.perf_counter()
            return True

    model.learn(warmup + steps, callback=Clock())
    learn_s = time.perf_counter() - marks["start"]
    return {"learn_s": learn_s, "update_s": _time_loop(lambda: model.train(1, BATCH), updates),
            "obs_dim": venv.observation_space.shape[0], "action_dim": action_dim,
            "policy_delay": getattr(algo_cfg, "policy_delay", 2)}


def _time_loop(fn: Any, n: int) -> float:
    for _ in range(min(20, n)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def worker(job: dict[str, Any]) -> dict[str, Any]:
    if job["algo"] in ON_POLICY:
        fn = measure_robotrl_on_policy if job["library"] == "robotrl" else measure_sb3_on_policy
        m = fn(job["algo"], job["task"], job["steps"], job["threads"], max(3, job["updates"] // 50))
        return {**job, "env_steps_per_s": round(m["steps"] / m["learn_s"], 1),
                "ms_per_step": round(1e3 * m["learn_s"] / m["steps"], 3),
                "ms_per_update": round(1e3 * m["update_s"], 2),
                "floor_ms": float("nan"), "gemms_ms": float("nan"), "floor_fraction": float("nan"),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    fn = measure_robotrl if job["library"] == "robotrl" else measure_sb3
    m = fn(job["algo"], job["task"], job["steps"], job["warmup"], job["threads"], job["updates"])
    ms_per_step = 1e3 * m["learn_s"] / job["steps"]
    floor_ms = 1e3 * update_gflop(job["algo"], m["obs_dim"], m["action_dim"], m["policy_delay"]) / gemm_gflops(
        job["threads"])
    gemms_ms = update_gemms_ms(job["algo"], m["obs_dim"], m["action_dim"], job["threads"], m["policy_delay"])
    return {**job, "env_steps_per_s": round(job["steps"] / m["learn_s"], 1), "ms_per_step": round(ms_per_step, 2),
            "ms_per_update": round(1e3 * m["update_s"], 2), "floor_ms": round(floor_ms, 2),
            "gemms_ms": round(gemms_ms, 2),
            "floor_fraction": round(floor_ms / ms_per_step, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def spawn(job: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(job["threads"])})
    if out.returncode != 0:
        raise RuntimeError(f"{job['library']} {job['algo']} {job['task']} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- table
def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over repeats per (task, algo, library, threads); ratio against SB3's best thread count."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["task"], r["algo"], r["library"], r["threads"]), []).append(r)
    rows = []
    for (task, algo, lib, threads), rs in groups.items():
        row = {"task": task, "algo": algo, "library": lib, "threads": threads, "repeats": len(rs)}
        for key in ("env_steps_per_s", "ms_per_step", "ms_per_update", "floor_ms", "floor_fraction", "gemms_ms",
                    "peak_rss_mib"):
            row[key] = float(np.median([r[key] for r in rs]))
        rows.append(row)
    for row in rows:
        sb3 = [r["env_steps_per_s"] for r in rows
               if r["library"] == "sb3" and r["task"] == row["task"] and r["algo"] == row["algo"]]
        row["ratio_vs_sb3_best"] = round(row["env_steps_per_s"] / max(sb3), 2) if sb3 else None
    return sorted(rows, key=lambda r: (r["task"], r["algo"], r["library"], r["threads"]))


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("| task | algo | library | torch threads | env-steps/s | ms/update | peak RSS (MiB) | ratio vs SB3 best | "
            "floor ms/step | fraction of floor | GEMMs alone ms/update |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        ratio = "-" if r["ratio_vs_sb3_best"] is None else f"{r['ratio_vs_sb3_best']:.2f}x"
        floor = "| - | - | - |" if np.isnan(r["floor_ms"]) else (
            f"| {r['floor_ms']:.2f} | {100 * r['floor_fraction']:.0f}% | {r['gemms_ms']:.2f} |")
        print(f"| {r['task']} | {r['algo']} | {r['library']} | {r['threads']} | {r['env_steps_per_s']:.0f} | "
              f"{r['ms_per_update']:.2f} | {r['peak_rss_mib']:.0f} | {ratio} {floor}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="sac,td3,ddpg")
    p.add_argument("--tasks", default="cheetah,reach")
    p.add_argument("--steps", type=int, default=2000, help="learning-phase env steps timed per measurement")
    p.add_argument("--warmup", type=int, default=1000, help="random steps before learning (not timed)")
    p.add_argument("--updates", type=int, default=300, help="updates timed for ms/update")
    p.add_argument("--repeats", type=int, default=2, help="A B pairs per setting")
    p.add_argument("--threads", default="1,2", help="robotrl torch thread counts")
    p.add_argument("--sb3-threads", default="1,2", help="SB3 torch thread counts (the ratio uses its best)")
    p.add_argument("--libraries", default="robotrl,sb3")
    p.add_argument("--json", action="store_true", help="one JSON object per summary row")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    libs = args.libraries.split(",")
    threads = {"robotrl": [int(t) for t in args.threads.split(",")],
               "sb3": [int(t) for t in args.sb3_threads.split(",")]}
    results = []
    for task in args.tasks.split(","):
        load_card(task)
        for algo in args.algos.split(","):
            if algo not in NETS and algo not in ON_POLICY:
                print(f"error: unknown algorithm '{algo}'; allowed: {', '.join((*NETS, *ON_POLICY))}", file=sys.stderr)
                return 2
            for _ in range(args.repeats):
                for t in sorted({t for lib in libs for t in threads[lib]}):
                    for lib in libs:  # A B A B
                        if t not in threads[lib]:
                            continue
                        job = {"library": lib, "algo": algo, "task": task, "threads": t, "steps": args.steps,
                               "warmup": args.warmup, "updates": args.updates}
                        r = spawn(job)
                        results.append(r)
                        print(f"{lib} {algo} {task} threads={t}: {r['env_steps_per_s']:.0f} steps/s, "
                              f"{r['ms_per_update']:.2f} ms/update", file=sys.stderr, flush=True)
    rows = summarise(results)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; steps={args.steps}, warmup={args.warmup}, "
              f"batch {BATCH}, 1 update/step, fp32")
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
