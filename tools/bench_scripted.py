"""The success rate of a task's scripted policy (what `warmup_policy: scripted` seeds replay with), without noise
and with the card's warm-up noise, on episodes reset with seeds SEED+i.

    python tools/bench_scripted.py --task panda-grasp --episodes 100 --env objects=held_out
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from robotrl.config import RobotrlError, parse_overrides
from robotrl.envs import load_card, make_env, task_source


def scripted_success(task: str, episodes: int, seed: int, noise: float, env_kwargs: dict) -> tuple[float, float]:
    """(success rate, mean episode length) of the scripted policy plus N(0, noise) action noise."""
    env = make_env(task_source(task, None, env_kwargs))
    if not hasattr(env.unwrapped, "scripted_policy"):
        raise RobotrlError(f"task '{task}' has no scripted policy")
    script, rng = env.unwrapped.scripted_policy(), np.random.default_rng(seed)
    wins, lengths = 0, []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        script.reset()
        done, steps = False, 0
        while not done:
            action = script(obs) + (rng.normal(0.0, noise, env.action_space.shape) if noise else 0.0)
            obs, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
            done, steps = terminated or truncated, steps + 1
        wins += bool(info.get("is_success", False))
        lengths.append(steps)
    env.close()
    return wins / episodes, float(np.mean(lengths))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="panda-grasp")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="episode i resets with SEED + i")
    p.add_argument("--algo", default="qtopt", help="whose card block gives the warm-up noise")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="change an env argument")
    args = p.parse_args(argv)
    try:
        env_kwargs = parse_overrides(args.env, flag="--env")
        block = load_card(args.task).algos.get(args.algo, {})
        noise = float(block.get("warmup_noise", 0.0))
        print("| task | env | noise | episodes | success | mean length |")
        print("|---|---|---|---|---|---|")
        for sigma in sorted({0.0, noise}):
            rate, length = scripted_success(args.task, args.episodes, args.seed, sigma, env_kwargs)
            changed = ", ".join(f"{k}={v}" for k, v in env_kwargs.items()) or "card"
            print(f"| {args.task} | {changed} | {sigma:g} | {args.episodes} | {100 * rate:.0f}% | {length:.1f} |")
    except RobotrlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
