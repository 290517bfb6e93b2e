"""Seed sweep: train one task card's algorithm on many seeds and report each deployed policy's evaluation.

    python tools/seed_sweep.py pendulum ddpg --seeds 0-9
    python tools/seed_sweep.py pendulum td3 --seeds 3,4,5 --set updates_per_step=2.0

Each seed trains with the card's own settings (plus --set overrides) for the card's step budget, exactly as
`robotrl train TASK --algo ALGO --seed S` would, then evaluates the deployed policy (keep_best's snapshot
where the card keeps one) on held-out episodes. This is how the "any seed" claims in the README were checked.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from robotrl.algos import ALGOS
from robotrl.config import parse_overrides
from robotrl.run import build_run, evaluate_run, train


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("algo", choices=sorted(ALGOS))
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,7")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes of the deployed policy")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a card value")
    parser.add_argument("--json", action="store_true", help="one JSON object per seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = parse_overrides(args.set)
    for seed in parse_seeds(args.seeds):
        start = time.time()
        run = build_run(args.task, args.algo, seed=seed, overrides=overrides)
        trained = train(run, run.loop_cfg.total_steps, progress=False)
        result = evaluate_run(run, args.episodes)
        best_step = trained["policy_step"]
        success = None if math.isnan(result.success_rate) else result.success_rate
        row = {"task": args.task, "algo": args.algo, "seed": seed, "steps": run.step,
               "deployed_step": best_step, "mean_return": result.mean_return, "success_rate": success,
               "wall_s": round(time.time() - start, 1)}
        print(json.dumps(row) if args.json else
              f"{args.task} {args.algo} seed {seed}: {result.mean_return:.1f} (policy of step {best_step}, "
              f"{row['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
