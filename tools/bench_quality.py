"""Quality benchmark: robotrl against Stable-Baselines3 on the same task, budget, hyperparameters and seeds.

    python tools/bench_quality.py --task reach --algos sac,td3 --steps 30000 --seeds 0,1,2
    python tools/bench_quality.py --task pendulum --algos sac --steps 10000 --seeds 0 --json
    python tools/bench_quality.py --task hopper,walker,cheetah --algos ppo --steps 1000000 --seeds 1,2,3 --jobs 2

Both libraries train on the same env (robotrl.make_env: the card's horizon, actions in [-1, 1]) with the
hyperparameters of the task card's `algos.<algo>` block (plus --set overrides), translated key by key to
SB3's arguments; a setting SB3 cannot express is an error, not a silent difference. Each final policy is
evaluated deterministically on the same initial states: the training seed's report block
(robotrl.config.eval_seed_base), which neither side's periodic evaluations nor keep_best have seen. Both are
evaluated every `eval_every` steps on the selection block for learning curves (and keep_best, where the card
uses it); a curve's last point is the report figure.

Needs the bench extra:  pip install -c constraints.txt -e ".[bench]"
Runs are independent processes (--jobs); each takes its card's torch threads, capped at the machine's cores
divided by --jobs so parallel runs never oversubscribe the cores. Do not time anything else on the machine
meanwhile. With --save, the file is rewritten after every finished run, so an interrupted
benchmark keeps what it finished (--load prints it, --resume runs only what is missing); each run records
its --set overrides and the commit it ran at.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robotrl.algos import get_algo
from robotrl.config import RobotrlError, eval_seed_base, parse_overrides, split_run_config
from robotrl.envs import load_card, make_env
from robotrl.envs.goal import goal_wrapper
from robotrl.evaluate import run_episodes
from robotrl.run import build_run, run_policy, run_values, train

LIBRARIES = ("robotrl", "sb3")
_thread_cap: int | None = None  # set in each --jobs worker: the cores one parallel run may use


def _set_thread_cap(cap: int) -> None:
    global _thread_cap
    _thread_cap = cap


def jobs_thread_cap(jobs: int) -> int | None:
    """The torch threads each of `jobs` parallel runs may use: the cores divided among them (None: one run)."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


def _set_threads(requested: int) -> None:
    torch.set_num_threads(requested if _thread_cap is None else min(requested, _thread_cap))


def sb3_on_policy_kwargs(algo: str, loop_cfg: Any, algo_cfg: Any) -> dict[str, Any]:
    """SB3's PPO / A2C arguments equal to a robotrl on-policy config; raises where SB3 has no equivalent."""
    from torch import nn

    lr = (lambda remaining: algo_cfg.lr * remaining) if algo_cfg.lr_anneal else algo_cfg.lr
    policy_kwargs = dict(net_arch=dict(pi=list(algo_cfg.hidden), vf=list(algo_cfg.hidden)),
                         activation_fn=nn.Tanh if algo_cfg.activation == "tanh" else nn.ReLU,
                         log_std_init=algo_cfg.log_std_init, ortho_init=algo_cfg.orthogonal_init)
    kwargs: dict[str, Any] = dict(learning_rate=lr, n_steps=loop_cfg.rollout_steps, gamma=algo_cfg.gamma,
                                  gae_lambda=algo_cfg.gae_lambda, ent_coef=algo_cfg.ent_coef,
                                  vf_coef=algo_cfg.vf_coef, max_grad_norm=algo_cfg.max_grad_norm or 1e9,
                                  normalize_advantage=algo_cfg.normalize_advantage, device="cpu")
    if algo == "ppo":
        if algo_cfg.objective != "clip":
            raise RobotrlError("SB3's PPO has only the clipped objective; set objective clip for the benchmark")
        kwargs.update(batch_size=algo_cfg.minibatch_size, n_epochs=algo_cfg.n_epochs, clip_range=algo_cfg.clip_range,
                      clip_range_vf=algo_cfg.clip_range_vf, target_kl=algo_cfg.target_kl)
    else:  # a2c: RMSprop as robotrl's (SB3's A2C default), its smoothing constant passed through
        policy_kwargs["optimizer_kwargs"] = dict(alpha=algo_cfg.rmsprop_alpha, eps=1e-5, weight_decay=0)
        kwargs.update(use_rms_prop=True, rms_prop_eps=1e-5)
    kwargs["policy_kwargs"] = policy_kwargs
    return kwargs


def sb3_kwargs(algo: str, loop_cfg: Any, algo_cfg: Any, action_dim: int) -> dict[str, Any]:
    """The SB3 constructor arguments equal to a robotrl config; raises where SB3 has no equivalent."""
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if algo in ("ppo", "a2c"):
        return sb3_on_policy_kwargs(algo, loop_cfg, algo_cfg)
    if algo not in ("sac", "td3", "ddpg"):
        raise RobotrlError(f"Stable-Baselines3 has no {algo}; run it with --libraries robotrl")

    lrs = {algo_cfg.actor_lr, algo_cfg.critic_lr} | ({algo_cfg.alpha_lr} if algo == "sac" else set())
    if len(lrs) != 1:
        raise RobotrlError(f"SB3 uses one learning rate for all networks; the card has {sorted(lrs)}")
    upd = loop_cfg.updates_per_step
    if upd >= 1 and float(upd).is_integer():
        train_freq, gradient_steps = 1, int(upd)
    elif 0 < upd < 1 and float(1 / upd).is_integer():
        train_freq, gradient_steps = int(1 / upd), 1
    else:
        raise RobotrlError(f"SB3 cannot express updates_per_step={upd} (needs an integer or 1/integer)")
    kwargs: dict[str, Any] = dict(
        learning_rate=algo_cfg.actor_lr, buffer_size=loop_cfg.buffer_size, learning_starts=loop_cfg.warmup_steps,
        batch_size=loop_cfg.batch_size, tau=algo_cfg.tau, gamma=algo_cfg.gamma, train_freq=train_freq,
        gradient_steps=gradient_steps, device="cpu",
        policy_kwargs=dict(net_arch=dict(pi=list(algo_cfg.actor_hidden), qf=list(algo_cfg.critic_hidden))),
    )
    if loop_cfg.her_goals > 0:  # SB3's own hindsight buffer on the env's Dict observation
        from stable_baselines3 import HerReplayBuffer

        if loop_cfg.n_step != 1:
            raise RobotrlError("hindsight needs n_step 1")
        kwargs.update(replay_buffer_class=HerReplayBuffer,
                      replay_buffer_kwargs=dict(n_sampled_goal=loop_cfg.her_goals, goal_selection_strategy="future"))
    if algo == "sac":
        kwargs["ent_coef"] = f"auto_{algo_cfg.init_alpha}" if algo_cfg.learn_alpha else algo_cfg.init_alpha
        kwargs["target_entropy"] = "auto"  # -|A|, as robotrl
    elif algo in ("td3", "ddpg"):
        if algo == "td3":
            kwargs.update(policy_delay=algo_cfg.policy_delay, target_policy_noise=algo_cfg.target_noise,
                          target_noise_clip=algo_cfg.target_noise_clip)
        if getattr(algo_cfg, "critic_weight_decay", 0.0) or getattr(algo_cfg, "critic_layer_norm", False):
            raise RobotrlError("SB3 has no critic weight decay / layer norm option; unset them for the benchmark")
        n = action_dim
        sigma = algo_cfg.noise_sigma * np.ones(n)
        if algo_cfg.noise == "gaussian":
            kwargs["action_noise"] = NormalActionNoise(np.zeros(n), sigma)
        elif algo_cfg.noise == "ou":
            kwargs["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(n), sigma, theta=algo_cfg.ou_theta,
                                                                  dt=algo_cfg.ou_dt)
    else:
        raise RobotrlError(f"no Stable-Baselines3 counterpart for algorithm '{algo}'")
    return kwargs


def card_configs(card: Any, algo: str, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """(LoopConfig, algorithm config) as robotrl builds them for a run: defaults <- card <- overrides."""
    spec = get_algo(algo)
    return split_run_config(spec.config_cls, run_values(card, algo, overrides), f"task card '{card.name}'",
                            loop_cls=spec.loop_config_cls)


def _rescaled(low: np.ndarray, high: np.ndarray, a: np.ndarray) -> np.ndarray:
    return low + (np.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


def _scripted_warmup(model: Any, script: Any, goals: Any, noise: float, seed: int) -> None:
    """SB3's warm-up (its first learning_starts steps) acts as robotrl's `warmup_policy: scripted` does: the task's
    scripted policy on the raw flat observation plus Gaussian noise, clipped to [-1, 1], so both libraries start
    from the same kind of data. The caller resets the script at each episode's end."""
    if model.n_envs != 1:
        raise RobotrlError("a scripted warm-up for SB3 needs one training env")
    rng = np.random.default_rng(seed)
    sample = model._sample_action

    def scripted_sample(learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> tuple:
        if model.num_timesteps >= learning_starts:
            return sample(learning_starts, action_noise, n_envs)
        raw = model._last_original_obs if model._vec_normalize_env is not None else model._last_obs
        if goals is not None:  # the Dict observation back to robotrl's flat order
            flat = np.zeros(max(hi for _, hi in goals.slices.values()), dtype=np.float32)
            for key, (lo, hi) in goals.slices.items():
                flat[lo:hi] = raw[key][0]
        else:
            flat = np.asarray(raw[0], dtype=np.float32)
        action = script(flat) + rng.normal(0.0, noise, model.action_space.shape[0])
        action = np.clip(action, -1.0, 1.0).astype(np.float32)[None]
        return action, action  # the training env's actions are already in [-1, 1]

    model._sample_action = scripted_sample


def sb3_vec_env(card: Any, loop_cfg: Any, algo_cfg: Any, seed: int, flatten_goals: bool = True) -> Any:
    """The card's n_envs training envs as SB3's DummyVecEnv, seeded; robotrl's running observation normaliser and
    return scaler as VecNormalize."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = DummyVecEnv([lambda: make_env(card, flatten_goals=flatten_goals)
                        for _ in range(getattr(loop_cfg, "n_envs", 1))])
    venv.seed(seed)
    norm_reward = getattr(loop_cfg, "normalize_reward", False)
    if loop_cfg.normalize_obs or norm_reward:
        venv = VecNormalize(venv, norm_obs=loop_cfg.normalize_obs, norm_reward=norm_reward, clip_obs=10.0,
                            gamma=algo_cfg.gamma)
    return venv


def run_sb3(task: str, algo: str, seed: int, steps: int, episodes: int, overrides: dict[str, Any]) -> dict:
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecNormalize

    card = load_card(task)
    loop_cfg, algo_cfg = card_configs(card, algo, overrides)
    _set_threads(loop_cfg.torch_threads)
    eval_env = make_env(card, normalize_actions=False)
    low, high = eval_env.action_space.low, eval_env.action_space.high
    goals = goal_wrapper(eval_env)  # goal tasks: SB3 trains on the Dict observation (MultiInputPolicy + HER)
    venv = sb3_vec_env(card, loop_cfg, algo_cfg, seed, flatten_goals=goals is None)
    cls = getattr(stable_baselines3, algo.upper())
    kwargs = sb3_kwargs(algo, loop_cfg, algo_cfg, venv.action_space.shape[0])
    model = cls("MlpPolicy" if goals is None else "MultiInputPolicy", venv, seed=seed, verbose=0, **kwargs)
    script = None
    if getattr(loop_cfg, "warmup_policy", "uniform") == "scripted":
        script = eval_env.unwrapped.scripted_policy()
        _scripted_warmup(model, script, goals, loop_cfg.warmup_noise, seed)

    def policy(obs: torch.Tensor) -> torch.Tensor:
        o = obs.numpy()[None]
        if goals is not None:  # robotrl's evaluation env gives the flat vector; SB3's policy takes the Dict
            o = {key: o[:, lo:hi] for key, (lo, hi) in goals.slices.items()}
        if isinstance(venv, VecNormalize):
            o = venv.normalize_obs(o)
        action, _ = model.predict(o, deterministic=True)
        return torch.as_tensor(_rescaled(low, high, action[0]))

    curve: list[tuple[int, float]] = []
    best: dict[str, Any] = {}

    def evaluate_and_keep(step: int) -> None:
        res = run_episodes(policy, eval_env, loop_cfg.eval_episodes, eval_seed_base(seed, "selection"))
        curve.append((step, res.mean_return))
        if loop_cfg.keep_best and res.mean_return >= best.get("mean_return", -math.inf):  # as robotrl's loop
            best.update(mean_return=res.mean_return, policy=copy.deepcopy(model.policy.state_dict()),
                        obs_rms=copy.deepcopy(getattr(venv, "obs_rms", None)))

    class Evaluate(BaseCallback):
        """Evaluates where robotrl's loops do: after the step (off-policy) or rollout (on-policy) whose advance
        crosses a multiple of eval_every."""

        last = 0

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if on_policy:
                self._maybe(self.num_timesteps)

        def _maybe(self, now: int) -> None:
            if loop_cfg.eval_every and now // loop_cfg.eval_every > self.last // loop_cfg.eval_every and now < steps:
                evaluate_and_keep(now)
            self.last = now

    class EvaluateOffPolicy(Evaluate):
        def _on_step(self) -> bool:
            if script is not None and self.locals["dones"][0]:
                script.reset()
            self._maybe(self.num_timesteps)
            return True

    on_policy = algo in ("ppo", "a2c")

    t0 = time.perf_counter()
    model.learn(steps, callback=Evaluate() if on_policy else EvaluateOffPolicy())
    wall = time.perf_counter() - t0
    if loop_cfg.keep_best:  # the final evaluation is a candidate too, then deploy the best (SB3's best_model)
        evaluate_and_keep(steps)
        curve.pop()
        model.policy.load_state_dict(best["policy"])
        if best["obs_rms"] is not None:
            venv.obs_rms = best["obs_rms"]
    res = run_episodes(policy, eval_env, episodes, eval_seed_base(seed, "report"))
    curve.append((steps, res.mean_return))
    return {"library": "sb3", "version": stable_baselines3.__version__, "threads": torch.get_num_threads(),
            **_result(task, algo, seed, steps, res, wall, curve)}


def run_robotrl(task: str, algo: str, seed: int, steps: int, episodes: int, overrides: dict[str, Any]) -> dict:
    import robotrl

    run = build_run(task, algo, seed=seed, overrides=overrides)
    _set_threads(run.loop_cfg.torch_threads)
    t0 = time.perf_counter()
    try:
        train(run, steps, progress=False)
    finally:
        if run.distributed is not None:  # a3c's Ray workers, so the next run in this process starts its own
            from robotrl.distributed import shutdown

            shutdown(run)
    wall = time.perf_counter() - t0
    eval_env = make_env(run.card, normalize_actions=False)
    res = run_episodes(run_policy(run), eval_env, episodes, eval_seed_base(seed, "report"))
    curve = [(int(r["step"]), float(r["eval_mean_return"])) for r in run.progress_rows[:-1]]
    curve.append((steps, res.mean_return))
    return {"library": "robotrl", "version": robotrl.__version__, "threads": torch.get_num_threads(),
            **_result(task, algo, seed, steps, res, wall, curve)}


def _result(task: str, algo: str, seed: int, steps: int, res: Any, wall: float, curve: list) -> dict[str, Any]:
    return {"task": task, "algo": algo, "seed": seed, "steps": steps, "mean_return": res.mean_return,
            "std_return": res.std_return, "success_rate": None if math.isnan(res.success_rate) else res.success_rate,
            "episodes": res.episodes, "wall_time_s": round(wall, 1), "curve": curve}


def run_one(job: tuple) -> dict[str, Any]:
    library, task, algo, seed, steps, episodes, overrides = job
    fn = run_robotrl if library == "robotrl" else run_sb3
    return {**fn(task, algo, seed, steps, episodes, overrides), "overrides": overrides, "commit": _commit()}


def _job_key(library: str, task: str, algo: str, seed: int, steps: int, overrides: dict[str, Any]) -> str:
    return json.dumps([library, task, algo, int(seed), int(steps), overrides], sort_keys=True)


def _commit() -> str:
    """The checkout's commit (with "+dirty" for uncommitted changes), so a resumed benchmark shows what ran."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, algo, library) over its seeds: mean ± std across the seeds' mean returns."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["task"], r["algo"], r["library"]), []).append(r)
    rows = []
    for (task, algo, lib), rs in groups.items():
        means = [r["mean_return"] for r in rs]
        rates = [r["success_rate"] for r in rs if r["success_rate"] is not None]
        rows.append({"task": task, "algo": algo, "library": lib, "seeds": ",".join(str(r["seed"]) for r in rs),
                     "steps": rs[0]["steps"], "mean_return": float(np.mean(means)), "std_return": float(np.std(means)),
                     "success_rate": float(np.mean(rates)) if rates else None,
                     "wall_time_s": round(float(np.mean([r["wall_time_s"] for r in rs])), 1)})
    return rows


def print_table(results: list[dict[str, Any]]) -> None:
    head = "| task | algo | library | seeds | steps | return (mean ± std) | success | wall time (s) |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    ordered = sorted(results, key=lambda r: (r["task"], r["algo"], r["seed"], r["library"]))
    for r in ordered:
        rate = "-" if r["success_rate"] is None else f"{100 * r['success_rate']:.0f}%"
        print(f"| {r['task']} | {r['algo']} | {r['library']} | {r['seed']} | {r['steps']} | "
              f"{r['mean_return']:.2f} ± {r['std_return']:.2f} | {rate} | {r['wall_time_s']:.0f} |")
    for s in summary_rows(results):
        rate = "-" if s["success_rate"] is None else f"{100 * s['success_rate']:.0f}%"
        print(f"| **{s['task']}** | **{s['algo']}** | **{s['library']}** | {s['seeds']} | {s['steps']} | "
              f"**{s['mean_return']:.2f} ± {s['std_return']:.2f}** | {rate} | {s['wall_time_s']:.0f} |")


def plot_results(results: list[dict[str, Any]], output: str) -> None:
    """Both libraries' learning curves (mean ± std over seeds) for each algorithm on one axis."""
    from robotrl.plot import Curve, plot_curves

    curves: dict[str, Curve] = {}
    tasks = sorted({r["task"] for r in results})
    for r in sorted(results, key=lambda r: (r["task"], r["algo"], r["library"], r["seed"])):
        label = f"{r['task'] + ' ' if len(tasks) > 1 else ''}{r['algo']} {r['library']}"
        curve = curves.setdefault(label, Curve(label))
        steps, returns = zip(*r["curve"], strict=True)
        curve.x.append(np.array(steps, dtype=float))
        curve.y.append(np.array(returns, dtype=float))
        curve.steps_per_s.append(r["steps"] / r["wall_time_s"])
    plot_curves(list(curves.values()), Path(output), "evaluation return", "environment steps",
                title=f"{', '.join(tasks)}: robotrl vs Stable-Baselines3, same hyperparameters")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="reach", help="a task card, or several comma-separated (one table)")
    p.add_argument("--algos", default="sac,td3", help="comma-separated: sac, td3, ddpg, ppo, a2c (a3c: robotrl only)")
    p.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated: robotrl, sb3")
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--episodes", type=int, default=20, help="final deterministic evaluation episodes")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a card hyperparameter for both libraries")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process each)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run (with its curve)")
    p.add_argument("--save", metavar="FILE.json", help="also write all results (curves included) to this file")
    p.add_argument("--resume", action="store_true",
                   help="with --save: keep the file's finished runs (same library, task, algo, seed, steps, --set) "
                        "and run only the missing ones")
    p.add_argument("--load", metavar="FILE.json", help="print (and --plot) the results of an earlier --save run")
    p.add_argument("--plot", metavar="FILE.png", help="draw both libraries' learning curves on one axis")
    args = p.parse_args(argv)
    if args.load:
        with open(args.load) as f:
            results = json.load(f)
        print_table(results)
        if args.plot:
            plot_results(results, args.plot)
        return 0
    try:
        overrides = parse_overrides(args.overrides)
        libraries = args.libraries.split(",")
        unknown = set(libraries) - set(LIBRARIES)
        if unknown:
            raise RobotrlError(f"unknown library {sorted(unknown)}; allowed: {', '.join(LIBRARIES)}")
        tasks = args.task.split(",")
        for task in tasks:
            load_card(task)
        if "sb3" in libraries:
            try:
                import stable_baselines3  # noqa: F401
            except ImportError as e:
                raise RobotrlError('Stable-Baselines3 is missing: pip install -c constraints.txt -e ".[bench]"') from e
        jobs = [(lib, task, algo, int(seed), args.steps, args.episodes, overrides) for task in tasks
                for algo in args.algos.split(",") for seed in args.seeds.split(",") for lib in libraries]
        for lib, task, algo, *_ in {job[:3]: job for job in jobs}.values():  # fail before hours of training
            if lib == "sb3":
                loop_cfg, algo_cfg = card_configs(load_card(task), algo, overrides)
                sb3_kwargs(algo, loop_cfg, algo_cfg, make_env(task).action_space.shape[0])
    except RobotrlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    if args.resume:
        if not args.save:
            print("error: --resume needs --save FILE.json (the file whose finished runs to keep)", file=sys.stderr)
            return 2
        if Path(args.save).exists():
            results = json.loads(Path(args.save).read_text())
            done = {_job_key(r["library"], r["task"], r["algo"], r["seed"], r["steps"], r.get("overrides", {}))
                    for r in results}
            jobs = [job for job in jobs if _job_key(*job[:5], job[6]) not in done]
            print(f"resume: {len(results)} finished runs kept from {args.save}, {len(jobs)} to run", file=sys.stderr)
    pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"), initializer=_set_thread_cap,
                               initargs=(jobs_thread_cap(args.jobs),)) if args.jobs > 1 else None
    try:
        finished = as_completed([pool.submit(run_one, job) for job in jobs]) if pool else map(run_one, jobs)
        for r in finished:
            r = r.result() if pool else r
            results.append(r)
            if args.save:  # after every run: an interrupted benchmark keeps what it finished
                Path(args.save).write_text(json.dumps(results, indent=1))
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                print(f"done: {r['library']} {r['task']} {r['algo']} seed {r['seed']}: {r['mean_return']:.2f} "
                      f"({r['wall_time_s']:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if not args.json:
        print_table(results)
    if args.plot:
        plot_results(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
