"""Time to a good policy: wall-clock and env steps from the start of training to a return or success threshold,
robotrl (its task card) against Stable-Baselines3 (rl-baselines3-zoo's published hyperparameters for the env, or
the closest entry). A benchmark, not a test; run it with nothing else on the machine:

    python tools/bench_time_to.py --tasks reach,pendulum,cheetah,hopper --seeds 1,2,3 --save runs/time-to.json
    python tools/bench_time_to.py --tasks pendulum --seeds 1 --threshold pendulum=500 --budget pendulum=5000

Both sides train the same algorithm (--algo, SAC by default) on the same env (robotrl.make_env: the card's
horizon, actions in [-1, 1]) in chunks of --eval-every steps, one run at a time, alternating robotrl and SB3 per
seed, robotrl at its card's torch threads (or --threads) and SB3 at --sb3-threads (2, its faster count here).
After each chunk the current deterministic policy is evaluated on --eval-episodes episodes of the seed's report
block (robotrl.config.eval_seed_base), which no keep-best or tuning has seen; the clocks stop during the
evaluation, so each side's time is its training alone. robotrl runs with its periodic evaluation and keep_best off
(they would cost its clock). A run stops at the first evaluation that meets the threshold, or at the budget.

Printed per task: each side's median wall-clock and env steps to the threshold over the seeds (a seed that never
gets there counts as infinite: "not reached" when the median is), the ratio robotrl / SB3 of the medians, and
with --plot each run's curve against wall-clock. --save writes every run (curves included) after each finishes;
--resume keeps a --save file's finished runs; --load prints (and --plot draws) a saved file.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import card_configs  # noqa: E402

from robotrl.config import RobotrlError, eval_seed_base, parse_overrides  # noqa: E402
from robotrl.envs import list_tasks, load_card, make_env  # noqa: E402
from robotrl.evaluate import run_episodes  # noqa: E402
from robotrl.run import build_run, run_policy, train  # noqa: E402

LIBRARIES = ("robotrl", "sb3")

# (metric, threshold): "success" is the success rate over the evaluation episodes, "return" their mean return
THRESHOLDS: dict[str, tuple[str, float]] = {
    "reach": ("success", 0.8), "pendulum": ("return", 900.0), "cheetah": ("return", 4000.0),
    "hopper": ("return", 1500.0), "panda-reach": ("success", 0.95), "panda-push": ("success", 0.9),
    "panda-pick": ("success", 0.75),
}
# env steps a run may take before it counts as "not reached"
BUDGETS = {"reach": 100_000, "pendulum": 30_000, "cheetah": 300_000, "hopper": 300_000, "panda-reach": 30_000,
           "panda-push": 300_000, "panda-pick": 300_000}

# rl-baselines3-zoo's SAC hyperparameters (hyperparams/sac.yml) for each task's env, or the closest entry; keys
# not given are SB3's defaults (lr 3e-4, buffer 1M, batch 256, tau 0.005, gamma 0.99, one update per step,
# two 256-unit layers)
_PYBULLET_DEFAULTS = dict(learning_rate=7.3e-4, buffer_size=300_000, batch_size=256, ent_coef="auto", gamma=0.98,
                          tau=0.02, train_freq=8, gradient_steps=8, learning_starts=10_000, use_sde=True,
                          policy_kwargs=dict(log_std_init=-3, net_arch=[400, 300]))
ZOO_SAC: dict[str, tuple[str, dict[str, Any]]] = {
    "cheetah": ("HalfCheetah-v3", dict(learning_starts=10_000)),
    "hopper": ("Hopper-v3", dict(learning_starts=10_000)),
    "pendulum": ("Pendulum-v1 (the zoo has no SAC entry for InvertedPendulum)", dict(learning_rate=1e-3)),
    "reach": ("ReacherBulletEnv-v0 (the zoo has no SAC entry for MuJoCo's Reacher)", _PYBULLET_DEFAULTS),
    "panda-reach": ("FetchReach-v1", dict(buffer_size=1_000_000, ent_coef="auto", batch_size=256, gamma=0.95,
                                          learning_rate=1e-3, learning_starts=1000,
                                          policy_kwargs=dict(net_arch=[64, 64]))),
}


def reached(metric: str, threshold: float, result: Any) -> bool:
    value = result.success_rate if metric == "success" else result.mean_return
    return bool(value >= threshold)


def _curve_value(metric: str, result: Any) -> float:
    return float(result.success_rate if metric == "success" else result.mean_return)


def run_robotrl(task: str, algo: str, seed: int, budget: int, every: int, episodes: int, metric: str,
                threshold: float, threads: int, card_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    run = build_run(task, algo, seed=seed, overrides={**(card_overrides or {}), "eval_every": 0, "keep_best": False,
                                                      "torch_threads": threads})
    eval_env = make_env(run.card, normalize_actions=False)

    def chunk(target: int) -> None:
        train(run, target, progress=False, evaluate_at_end=False)

    return _race(chunk, lambda: run_policy(run, current=True), lambda: run.step, eval_env, seed, budget, every,
                 episodes, metric, threshold)


def run_sb3(task: str, algo: str, seed: int, budget: int, every: int, episodes: int, metric: str,
            threshold: float, threads: int) -> dict[str, Any]:
    import stable_baselines3
    from stable_baselines3.common.vec_env import DummyVecEnv

    if algo != "sac" or task not in ZOO_SAC:
        raise RobotrlError(f"no rl-baselines3-zoo {algo} entry recorded for '{task}'; known: sac on "
                           f"{', '.join(ZOO_SAC)}")
    card = load_card(task)
    torch.set_num_threads(threads)
    eval_env = make_env(card, normalize_actions=False)
    low, high = eval_env.action_space.low, eval_env.action_space.high
    venv = DummyVecEnv([lambda: make_env(card)])
    venv.seed(seed)
    kwargs = dict(ZOO_SAC[task][1])
    model = stable_baselines3.SAC("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **kwargs)

    def policy(obs: torch.Tensor) -> torch.Tensor:
        action, _ = model.predict(obs.numpy()[None], deterministic=True)
        return torch.as_tensor(low + (np.clip(action[0], -1.0, 1.0) + 1.0) * 0.5 * (high - low))

    def chunk(target: int) -> None:
        model.learn(target - model.num_timesteps, reset_num_timesteps=False)

    return _race(chunk, lambda: policy, lambda: model.num_timesteps, eval_env, seed, budget, every, episodes,
                 metric, threshold)


def _race(chunk: Any, current_policy: Any, steps_done: Any, eval_env: Any, seed: int, budget: int, every: int,
          episodes: int, metric: str, threshold: float) -> dict[str, Any]:
    """Train in chunks of `every` steps, the clock running only while training; evaluate after each chunk."""
    clock, curve = 0.0, []
    steps_to = time_to = None
    while steps_done() < budget:
        t0 = time.perf_counter()
        chunk(min(steps_done() + every, budget))
        clock += time.perf_counter() - t0
        res = run_episodes(current_policy(), eval_env, episodes, eval_seed_base(seed, "report"))
        curve.append((steps_done(), round(clock, 2), _curve_value(metric, res)))
        if reached(metric, threshold, res):
            steps_to, time_to = steps_done(), round(clock, 2)
            break
    return {"steps_to": steps_to, "time_to_s": time_to, "train_time_s": round(clock, 2), "curve": curve}


def run_one(library: str, task: str, algo: str, seed: int, budget: int, every: int, episodes: int,
            threads: int = 1, card_overrides: dict[str, Any] | None = None) -> dict:
    """One race; card_overrides change robotrl's card (a sweep), never SB3's zoo hyperparameters."""
    metric, threshold = THRESHOLDS[task]
    if library == "robotrl":
        result = run_robotrl(task, algo, seed, budget, every, episodes, metric, threshold, threads, card_overrides)
    else:
        result = run_sb3(task, algo, seed, budget, every, episodes, metric, threshold, threads)
    return {"library": library, "task": task, "algo": algo, "seed": seed, "metric": metric, "threshold": threshold,
            "budget": budget, "eval_every": every, "episodes": episodes, "threads": torch.get_num_threads(),
            **({"sb3_hyperparameters": ZOO_SAC[task][0]} if library == "sb3"
               else {"card_overrides": card_overrides or {}}), **result}


def key(lib: str, task: str, seed: int, threshold: float, budget: int, threads: int, sets: dict[str, Any]) -> str:
    """What identifies a finished run for --resume."""
    return json.dumps([lib, task, seed, threshold, budget, threads, sets if lib == "robotrl" else {}])


def median_or_inf(values: list[float | None]) -> float:
    return statistics.median([math.inf if v is None else v for v in values]) if values else math.nan


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, threshold, robotrl's card overrides): each library's medians over its seeds and the ratio of the
    wall-clock medians (SB3's runs of the task and threshold are shared by every robotrl variant)."""
    rows = []
    variants = dict.fromkeys((r["task"], r["threshold"], json.dumps(r.get("card_overrides") or {}))
                             for r in results if r["library"] == "robotrl")
    variants.update(dict.fromkeys((r["task"], r["threshold"], "{}") for r in results if r["library"] == "sb3"))
    for task, threshold, sets in variants:
        row: dict[str, Any] = {"task": task, "metric": THRESHOLDS.get(task, ("return",))[0], "threshold": threshold,
                               "card_overrides": json.loads(sets)}
        for lib in LIBRARIES:
            rs = [r for r in results if r["task"] == task and r["threshold"] == threshold and r["library"] == lib
                  and (lib == "sb3" or json.dumps(r.get("card_overrides") or {}) == sets)]
            row[lib] = {"seeds": len(rs), "time": median_or_inf([r["time_to_s"] for r in rs]),
                        "steps": median_or_inf([r["steps_to"] for r in rs]),
                        "reached": sum(r["time_to_s"] is not None for r in rs)}
        a, b = row["robotrl"]["time"], row["sb3"]["time"]
        row["ratio"] = a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan
        rows.append(row)
    return rows


def _fmt(value: float, unit: str = "") -> str:
    if math.isnan(value):
        return "-"
    return "not reached" if math.isinf(value) else f"{value:,.0f}{unit}"


def _sets_label(card_overrides: dict[str, Any] | None) -> str:
    return "".join(f" {k}={v}" for k, v in (card_overrides or {}).items())


def print_table(results: list[dict[str, Any]]) -> None:
    print("| task | threshold | robotrl time (steps) | SB3 time (steps) | ratio robotrl / SB3 "
          "| reached (robotrl, SB3) |")
    print("|---|---|---|---|---|---|")
    for row in summary_rows(results):
        a, b = row["robotrl"], row["sb3"]
        ratio = "-" if math.isnan(row["ratio"]) else f"{row['ratio']:.2f}"
        sets = _sets_label(row["card_overrides"])
        print(f"| {row['task']}{sets} | {row['metric']} >= {row['threshold']:g} | {_fmt(a['time'], ' s')} "
              f"({_fmt(a['steps'])}) | {_fmt(b['time'], ' s')} ({_fmt(b['steps'])}) | {ratio} | "
              f"{a['reached']}/{a['seeds']}, {b['reached']}/{b['seeds']} |")


def plot_curves(results: list[dict[str, Any]], output: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in results))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for r in (r for r in results if r["task"] == task):
            clock = [t for _, t, _ in r["curve"]]
            value = [v for _, _, v in r["curve"]]
            ax.plot(clock, value, color="C0" if r["library"] == "robotrl" else "C1", alpha=0.8,
                    label=f"{r['library']}{_sets_label(r.get('card_overrides'))} seed {r['seed']}")
        ax.axhline(THRESHOLDS[task][1], color="grey", linestyle="--", linewidth=1)
        ax.set(title=task, xlabel="training wall-clock (s)", ylabel=THRESHOLDS[task][0])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output)


def _key_value_map(items: list[str], name: str, cast: Any) -> dict[str, Any]:
    out = {}
    for task, value in parse_overrides(items).items():
        if task not in THRESHOLDS:
            raise RobotrlError(f"--{name} {task}=...: no threshold for '{task}'; allowed: {', '.join(THRESHOLDS)}")
        out[task] = cast(value)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="reach,pendulum,cheetah,hopper", help="comma-separated task cards")
    p.add_argument("--algo", default="sac", help="the algorithm both sides train (SB3: zoo entries for sac)")
    p.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated: robotrl, sb3")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--eval-every", type=int, default=None, help="env steps between evaluations (default: budget/30)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="robotrl's torch threads (default: the card's)")
    p.add_argument("--sb3-threads", type=int, default=2, help="SB3's torch threads (2: its faster count on this "
                   "2-core machine, tools/bench_speed.py)")
    p.add_argument("--threshold", action="append", default=[], metavar="TASK=VALUE", help="change a threshold")
    p.add_argument("--budget", action="append", default=[], metavar="TASK=STEPS", help="change a task's budget")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change robotrl's card for these runs (a sweep; SB3 keeps the zoo's settings)")
    p.add_argument("--save", metavar="FILE.json")
    p.add_argument("--resume", action="store_true", help="with --save: run only what the file lacks")
    p.add_argument("--load", metavar="FILE.json", help="print (and --plot) an earlier --save")
    p.add_argument("--plot", metavar="FILE.png")
    args = p.parse_args(argv)
    if args.load:
        results = json.loads(Path(args.load).read_text())
        results = results["runs"] if isinstance(results, dict) else results  # a --save file, or one with metadata
        print_table(results)
        if args.plot:
            plot_curves(results, args.plot)
        return 0
    try:
        tasks, libraries = args.tasks.split(","), args.libraries.split(",")
        for task in tasks:
            if task not in THRESHOLDS:
                known = "" if task in list_tasks() else " (no such task card)"
                raise RobotrlError(f"no time-to threshold for task '{task}'{known}; allowed: {', '.join(THRESHOLDS)}")
        if set(libraries) - set(LIBRARIES):
            raise RobotrlError(f"unknown library {sorted(set(libraries) - set(LIBRARIES))}; allowed: robotrl, sb3")
        if args.resume and not args.save:
            raise RobotrlError("--resume needs --save FILE.json (the file whose finished runs to keep)")
        for task, value in _key_value_map(args.threshold, "threshold", float).items():
            THRESHOLDS[task] = (THRESHOLDS[task][0], value)
        budgets = {**BUDGETS, **_key_value_map(args.budget, "budget", int)}
        if "sb3" in libraries:
            for task in tasks:
                if args.algo != "sac" or task not in ZOO_SAC:
                    raise RobotrlError(f"no rl-baselines3-zoo {args.algo} entry recorded for '{task}'; known: sac "
                                       f"on {', '.join(ZOO_SAC)} (or run --libraries robotrl)")
        seeds = [int(s) for s in args.seeds.split(",")]
        card_overrides = parse_overrides(args.set)
        # the card's torch threads with --set applied; a bad key or value fails here, in one line, before any run
        card_threads = {task: card_configs(load_card(task), args.algo, card_overrides)[0].torch_threads
                        for task in tasks}
    except (RobotrlError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    if args.resume and Path(args.save).exists():
        results = json.loads(Path(args.save).read_text())
    done = {key(r["library"], r["task"], r["seed"], r["threshold"], r["budget"], r["threads"],
                r.get("card_overrides", {})) for r in results}
    for task in tasks:
        budget = budgets[task]
        every = args.eval_every or max(budget // 30, 1)
        for seed in seeds:
            for lib in libraries:  # alternating A B per seed
                threads = args.sb3_threads if lib == "sb3" else args.threads or card_threads[task]
                if key(lib, task, seed, THRESHOLDS[task][1], budget, threads, card_overrides) in done:
                    continue
                r = run_one(lib, task, args.algo, seed, budget, every, args.eval_episodes, threads, card_overrides)
                results.append(r)
                if args.save:
                    Path(args.save).write_text(json.dumps(results, indent=1))
                got = "not reached" if r["time_to_s"] is None else f"{r['time_to_s']:.0f} s, {r['steps_to']} steps"
                print(f"done: {lib} {task} seed {seed}: {got}", file=sys.stderr, flush=True)
    print_table(results)
    if args.plot:
        plot_curves(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
