"""Simulator cost of the goal-conditioned tasks against a learning step, and the replay's memory (a benchmark, not a
test). Run it with nothing else on the machine:

    python tools/bench_env.py [--tasks panda-reach,panda-push,panda-pick] [--steps 2000] [--train-steps 1500]

Per task it prints: random-action env steps/s (robotrl.make_env, the flat observation, resets included), the
learning phase's steps/s with the task's card (after warm-up; SAC + HER), the simulator's share of a learning step
(= learning steps/s / env steps/s), and the bytes of a 1M-transition replay with hindsight relabelling (its arrays
are preallocated, so this is the resident size once full).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from robotrl.envs import make_env
from robotrl.envs.goal import goal_wrapper
from robotrl.replay import Hindsight, ReplayBuffer
from robotrl.run import build_run, train

REPLAY_CAPACITY = 1_000_000


def env_steps_per_s(task: str, steps: int) -> float:
    env = make_env(task)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def learning_steps_per_s(task: str, algo: str, steps: int) -> float:
    run = build_run(task, algo, seed=0, overrides={"eval_every": 0, "checkpoint_every": 0, "checkpoint_minutes": 0})
    warmup = run.loop_cfg.warmup_steps
    train(run, warmup + run.loop_cfg.batch_size, progress=False, evaluate_at_end=False)
    start, step0 = time.perf_counter(), run.step
    train(run, step0 + steps, progress=False, evaluate_at_end=False)
    return steps / (time.perf_counter() - start)


def replay_bytes(task: str) -> int:
    env = make_env(task)
    goals = goal_wrapper(env)
    hindsight = Hindsight(4, goals.slices["achieved_goal"], goals.slices["desired_goal"], goals.compute_reward)
    buffer = ReplayBuffer(env.observation_space.shape[0], env.action_space.shape[0], REPLAY_CAPACITY,
                          hindsight=hindsight)
    return sum(a.nbytes for a in vars(buffer).values() if isinstance(a, np.ndarray))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="panda-reach,panda-push,panda-pick")
    parser.add_argument("--algo", default="sac")
    parser.add_argument("--steps", type=int, default=2000, help="random-action env steps timed per task")
    parser.add_argument("--train-steps", type=int, default=1500, help="learning steps timed per task")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"| task | env steps/s (random actions) | learning steps/s ({args.algo}, card) | simulator share "
          f"| replay of {REPLAY_CAPACITY:,} transitions |")
    print("|---|---|---|---|---|")
    for task in args.tasks.split(","):
        env_rate = env_steps_per_s(task, args.steps)
        learn_rate = learning_steps_per_s(task, args.algo, args.train_steps)
        mib = replay_bytes(task) / 2**20
        print(f"| {task} | {env_rate:.0f} | {learn_rate:.1f} | {learn_rate / env_rate:.1%} | {mib:.0f} MiB |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
