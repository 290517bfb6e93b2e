"""Benchmark: gymnasium's SyncVectorEnv against AsyncVectorEnv on robotrl's envs (random actions), the choice the
on-policy loop makes. Run it on a quiet machine: python tools/bench_vector.py [--tasks hopper,panda-reach]."""

from __future__ import annotations

import argparse
import time

import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from robotrl.envs import make_env


def steps_per_second(cls: type, task: str, n_envs: int, total_steps: int) -> float:
    env = cls([lambda: make_env(task) for _ in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        steps = total_steps // n_envs
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        return steps * n_envs / (time.perf_counter() - t0)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="hopper,panda-reach")
    parser.add_argument("--envs", default="2,4", help="comma-separated env counts")
    parser.add_argument("--steps", type=int, default=4000, help="env steps per measurement (all envs together)")
    args = parser.parse_args()
    print("| task | envs | SyncVectorEnv steps/s | AsyncVectorEnv steps/s |\n|---|---|---|---|")
    for task in args.tasks.split(","):
        for n in map(int, args.envs.split(",")):
            sync, asynchronous = (steps_per_second(cls, task, n, args.steps) for cls in (SyncVectorEnv, AsyncVectorEnv))
            print(f"| {task} | {n} | {sync:.0f} | {asynchronous:.0f} |", flush=True)


if __name__ == "__main__":
    main()
