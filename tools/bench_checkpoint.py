"""Checkpoint cost: seconds and megabytes to write (and read back) a run's checkpoint with a full replay buffer.

    python tools/bench_checkpoint.py                         # cheetah SAC, replay of 1 000 000 transitions
    python tools/bench_checkpoint.py --task ant --transitions 200000 --repeats 3

The replay is filled with random transitions of the task's shapes (the cost depends on the sizes, not on the
values), then `save_run` writes last.pt + replay-<step>.pt as training does every checkpoint_every steps or
checkpoint_minutes, including the fsync of each file; `load_run` reads them back. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from robotrl.run import build_run, load_run, save_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="cheetah")
    p.add_argument("--algo", default="sac")
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = build_run(args.task, args.algo, seed=0, overrides={"buffer_size": args.transitions},
                        run_dir=Path(tmp) / "run")
        rng = np.random.default_rng(0)
        buf = run.buffer
        for name in buf.ARRAYS:
            array = getattr(buf, name)
            array[:] = rng.standard_normal(array.shape, dtype=np.float32) if array.ndim > 1 else rng.random(array.shape)
        buf.size, buf.pos = args.transitions, 0
        run.obs = np.zeros(run.obs_dim, dtype=np.float32)
        run.env.reset(seed=0)
        saves, loads = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            path = save_run(run)
            saves.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            load_run(path)
            loads.append(time.perf_counter() - t0)
        sizes = {f.name: f.stat().st_size / 2**20 for f in path.parent.iterdir()}
    print(f"| task | algo | transitions | obs dim | checkpoint MB | replay MB | save s (median of {args.repeats}) "
          f"| load s |")
    print("|---|---|---|---|---|---|---|---|")
    replay_mb = sum(v for k, v in sizes.items() if k.startswith("replay"))
    print(f"| {args.task} | {args.algo} | {args.transitions} | {run.obs_dim} | {sizes['last.pt']:.1f} | "
          f"{replay_mb:.0f} | {np.median(saves):.2f} | {np.median(loads):.2f} |")


if __name__ == "__main__":
    main()
