"""Benchmark: the distributed loop's throughput against collector (and Bellman-updater) count, the per-actor costs
behind it, and the projection they give. Run it on a quiet machine (Ray actors starve when the cores are busy):

    python tools/bench_distributed.py --task grasp --algo qtopt --layouts 0,1,2,4,1+1,2+2
    python tools/bench_distributed.py --task reach --algo sac --layouts 0,1,2,4

A layout is `N` collectors or `N+M` collectors + Bellman updaters, either with `r` after it for the replay on its
own actor (`2r`, `1+1r`); `0` is the single-process loop. Each row runs the task's card (with --set overrides)
past its warm-up, then times `--steps` more env steps: env steps/s and learner
updates/s in that window, Ray's start and the warm-up excluded. The costs table times one collector, one update,
one regression and one Bellman target in this process, one thread each, and the projection divides them:
one learner keeps up with N collectors while N x (collector steps/s) x updates_per_step x (learner ms per update)
stays below 1, and M Bellman updaters keep up while M exceeds that env rate x updates_per_step x (target ms).
A layout with more actors than cores shares the cores: on 2 cores the rows past 1 collector measure contention."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from robotrl import loop as off_policy
from robotrl.distributed import DistributedSpec, connect, shutdown
from robotrl.distributed.loop import Collector, _weights
from robotrl.run import build_run, train


def parse_layout(text: str) -> tuple[int, int, int]:
    """'N', 'N+M' or either with an 'r' after it (the replay on its own actor) -> (collectors, bellman, replay)."""
    replay = int(text.endswith("r"))
    collectors, _, bellman = text.removesuffix("r").partition("+")
    return int(collectors), int(bellman or 0), replay


def throughput(task: str, algo: str, layout: tuple[int, int, int], steps: int, overrides: dict[str, Any],
               sync: int, block: int) -> dict[str, float]:
    collectors, bellman, replay = layout
    spec = DistributedSpec(collectors=collectors, bellman=bellman, replay=replay, sync=sync,
                           block=block) if collectors else None
    run = build_run(task, algo, seed=0, overrides=overrides, distributed=spec)
    warm = getattr(run.loop_cfg, "warmup_steps", 0) + 2 * block
    train(run, warm, progress=False, evaluate_at_end=False)  # Ray, the collectors and the warm-up: not timed
    step0, updates0, t0, cpu0 = run.step, int(run.agent.updates), time.perf_counter(), time.process_time()
    train(run, step0 + steps, progress=False, evaluate_at_end=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0  # cpu: this (the learner's) process only
    if spec is not None:
        shutdown(run)
    return {"steps/s": (run.step - step0) / wall, "updates/s": (int(run.agent.updates) - updates0) / wall,
            "learner ms/step": 1000 * cpu / (run.step - step0), "learner busy": cpu / wall,
            "updates_per_step": updates_per_step(run)}


def updates_per_step(run: Any) -> float:
    cfg = run.loop_cfg
    return 1.0 / (cfg.rollout_steps * cfg.n_envs) if run.algo.loop == "a3c" else float(cfg.updates_per_step)


def per_actor_costs(task: str, algo: str, overrides: dict[str, Any], block: int, repeats: int) -> dict[str, float]:
    """One thread each: a collector's env steps/s with the acting networks, and the learner's ms per update (for
    QT-Opt also its regression step and one Bellman target alone) on batches from a replay it filled itself."""
    torch.set_num_threads(1)
    run = build_run(task, algo, seed=0, overrides={**overrides, "torch_threads": 1})
    if run.algo.loop == "a3c":
        return a3c_costs(run, repeats)
    train(run, max(run.loop_cfg.warmup_steps, run.loop_cfg.batch_size * 4), progress=False, evaluate_at_end=False)
    collector = Collector(run.card, algo, run.loop_cfg, run.algo_cfg, seed=1, warmup_steps=0, block=block)
    collector.set_weights(_weights(run), 0)
    collector.collect()  # first episode reset and lazy initialisation, not timed
    t0, collected = time.perf_counter(), 0
    for _ in range(repeats):
        collected += len(collector.collect()["reward"])
    costs = {"collector steps/s": collected / (time.perf_counter() - t0)}

    batches = [off_policy._sample(run) for _ in range(repeats + 1)]

    def ms(fn: Any, inputs: list[tuple]) -> float:
        fn(*inputs[0])  # not timed
        t0 = time.perf_counter()
        for args in inputs[1:]:
            fn(*args)
        return 1000 * (time.perf_counter() - t0) / (len(inputs) - 1)

    costs["update ms"] = ms(run.agent.update, [(batch,) for batch in batches])
    if hasattr(run.agent, "bellman_target"):
        costs["target ms"] = ms(run.agent.bellman_target, [(batch,) for batch in batches])
        targets = [(batch, run.agent.bellman_target(batch)) for batch in batches]
        costs["regress ms"] = ms(run.agent.regress, targets)
    return costs


def a3c_costs(run: Any, repeats: int) -> dict[str, float]:
    """A worker's env steps/s (its rollout and its gradient) and the learner's ms to apply one gradient."""
    from robotrl.distributed.a3c import Worker

    worker = Worker(run.card, run.loop_cfg, run.algo_cfg, seed=1)
    worker.set_weights(_weights(run), 0)
    results = [worker.collect()]  # first reset, not timed
    t0 = time.perf_counter()
    results += [worker.collect() for _ in range(repeats)]
    costs = {"collector steps/s": sum(r["steps"] for r in results[1:]) / (time.perf_counter() - t0)}
    grads = [[torch.tensor(g) for g in r["grads"]] for r in results]
    t0 = time.perf_counter()
    for g in grads[1:]:
        run.agent.apply(g, 0.0)
    costs["update ms"] = 1000 * (time.perf_counter() - t0) / repeats
    return costs


def projection(costs: dict[str, float], updates_per_step: float, cores_per_machine: int,
               learner_ms_per_step: float | None) -> list[str]:
    """learner_ms_per_step: the learner process's CPU per env step measured in a distributed row (its updates,
    replay inserts, Ray transfers), which bounds it where the update alone would promise more."""
    collector_rate = costs["collector steps/s"]
    learner_ms = costs.get("regress ms", costs["update ms"])
    learner_limit = 1000 / (updates_per_step * learner_ms)  # env steps/s one learner can absorb
    lines = [f"one learner ({learner_ms:.2f} ms per {'regression' if 'regress ms' in costs else 'update'}, "
             f"{updates_per_step:g} updates per env step) absorbs at most {learner_limit:.0f} env steps/s by its "
             "updates alone"]
    if learner_ms_per_step is not None and 1000 / learner_ms_per_step < learner_limit:
        learner_limit = 1000 / learner_ms_per_step
        lines.append(f"measured with its transfers and inserts ({learner_ms_per_step:.3f} ms of learner CPU per env "
                     f"step, the largest distributed layout): at most {learner_limit:.0f} env steps/s")
    lines.append(f"{learner_limit / collector_rate:.1f} collectors at {collector_rate:.0f} steps/s each saturate it")
    if "target ms" in costs:
        updaters = learner_limit * updates_per_step * costs["target ms"] / 1000
        lines.append(f"at that rate the CEM targets ({costs['target ms']:.2f} ms each) need {updaters:.1f} "
                     "Bellman updaters; with none the learner's own update "
                     f"({costs['update ms']:.2f} ms) caps it at {1000 / (updates_per_step * costs['update ms']):.0f} "
                     "env steps/s")
    # core-seconds per env step: a collector's, plus (QT-Opt with updaters) the CEM target's share of an updater
    per_step = 1 / collector_rate + updates_per_step * costs.get("target ms", 0.0) / 1000
    for machines in (1, 4, 16):
        slots = machines * cores_per_machine - 1  # one core for the learner
        rate = min(slots / per_step, learner_limit)
        lines.append(f"{machines} machine(s) x {cores_per_machine} cores: {rate:.0f} env steps/s "
                     f"({'learner-bound' if rate == learner_limit else 'collector-bound'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="grasp")
    parser.add_argument("--algo", default="qtopt")
    parser.add_argument("--layouts", default="0,1,2,4", help="comma-separated N or N+M (collectors+updaters)")
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per row, after the warm-up")
    parser.add_argument("--sync", type=int, default=1000)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per cost")
    parser.add_argument("--cores-per-machine", type=int, default=16, help="for the projection's cluster rows")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="card overrides (YAML values)")
    args = parser.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    overrides.setdefault("eval_every", 0)
    layouts = [parse_layout(item) for item in args.layouts.split(",")]
    if any(c for c, _, _ in layouts):
        connect(DistributedSpec(collectors=max(c + b + r for c, b, r in layouts)))
    print(f"{args.task} {args.algo}, {args.steps} timed env steps per row, sync={args.sync}, block={args.block}, "
          f"{torch.get_num_threads()} torch threads in the learner\n")
    print("| layout | env steps/s | learner updates/s | learner CPU ms per env step | learner busy |\n"
          "|---|---|---|---|---|")
    upd, learner_ms_per_step = 1.0, None
    for collectors, bellman, replay in layouts:
        row = throughput(args.task, args.algo, (collectors, bellman, replay), args.steps, overrides, args.sync,
                         args.block)
        upd = row["updates_per_step"]
        name = "single process" if collectors == 0 else f"{collectors} collector(s)" + (
            f" + {bellman} Bellman updater(s)" if bellman else "") + (" + replay actor" if replay else "")
        print(f"| {name} | {row['steps/s']:.0f} | {row['updates/s']:.0f} | {row['learner ms/step']:.3f} | "
              f"{row['learner busy']:.0%} |", flush=True)
        if collectors:
            learner_ms_per_step = row["learner ms/step"]
    costs = per_actor_costs(args.task, args.algo, overrides, args.block, args.repeats)
    print("\n| per-actor cost (one thread) | value |\n|---|---|")
    for name, value in costs.items():
        print(f"| {name} | {value:.2f} |")
    print("\nprojection:")
    for line in projection(costs, upd, args.cores_per_machine, learner_ms_per_step):
        print(f"- {line}")


if __name__ == "__main__":
    main()
