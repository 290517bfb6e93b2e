"""What both training loops share: a Run (everything a run owns, all of it checkpointed, so resume continues bit
for bit), its construction, evaluation on the two seed blocks, keep-best, the session driver (progress, signals,
periodic evaluation and checkpoints), and checkpoint save / load. The loops themselves are robotrl.loop
(off-policy) and robotrl.rollout (on-policy); `train` runs a Run with the loop its algorithm names."""

from __future__ import annotations

import copy
import importlib
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robotrl._version import __version__
from robotrl.algos import ALGOS, AlgoSpec, get_algo
from robotrl.checkpoint import atomic_torch_save, load_checkpoint, restore_agent, save_checkpoint
from robotrl.config import (
    EVAL_PROTOCOL,
    RobotrlError,
    RunConfig,
    TrainingInterrupted,
    check_device,
    check_seed,
    eval_seed_base,
    first_line,
    split_run_config,
    to_dict,
)
from robotrl.envs import (
    TaskCard,
    env_from_spec,
    env_spec_json,
    load_card,
    make_env,
    task_source,
)
from robotrl.evaluate import EvalResult, deployed_policy, run_episodes
from robotrl.logger import REPORT_COLUMNS, MetricSums, RunLogger
from robotrl.nets import DeployedPolicy, ObsNormalizer

LOOP_MODULES = {"off-policy": "robotrl.loop", "on-policy": "robotrl.rollout", "a3c": "robotrl.distributed.a3c"}


@dataclass
class Run:
    task: str
    card: TaskCard | None
    algo: AlgoSpec
    seed: int
    loop_cfg: Any  # LoopConfig (off-policy) or RolloutConfig (on-policy)
    algo_cfg: Any
    env: gym.Env  # the training env; for the on-policy loop a gymnasium vector env
    eval_env: gym.Env
    agent: Any
    buffer: Any  # ReplayBuffer (off-policy) or the on-policy loop's rollout buffer
    normalizer: ObsNormalizer
    run_dir: Path | None = None
    step: int = 0
    episodes: int = 0
    update_credit: float = 0.0
    obs: np.ndarray | None = None  # the current observation (on-policy: one row per env)
    episode_return: Any = 0.0  # of the running episode (on-policy: an array, one per env)
    episode_len: Any = 0
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=20))
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    last_eval: EvalResult | None = None  # the latest selection-block evaluation (periodic, keep_best)
    report: EvalResult | None = None  # the deployed policy on the report block, at the end of the last train()
    elapsed_s: float = 0.0  # training wall-clock of the sessions before the current train() call
    session_start: float | None = None  # perf_counter() when the current train() call began (not saved)
    progress_rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # keep_best: {"step", "eval", "policy", "normalizer"} snapshot
    commands: list[str] = field(default_factory=list)  # the CLI commands that trained this run, in order
    script: Any = None  # warmup_policy "scripted": the task's scripted policy (raw obs -> action in [-1, 1])
    metrics: MetricSums = field(default_factory=MetricSums)  # the updates' metrics since the last log row
    env_spec: str | None = None  # a user-supplied env's full gymnasium spec (JSON); None for task cards
    loop_objects: dict[str, Any] = field(default_factory=dict)  # a loop's own state (on-policy: reward scaler)
    distributed: Any = None  # a robotrl.distributed.DistributedSpec: train on Ray collectors (not saved)

    def elapsed_total(self) -> float:
        """Training wall-clock over all sessions, the current one included."""
        return self.elapsed_s + (time.perf_counter() - self.session_start if self.session_start is not None else 0.0)

    @property
    def obs_dim(self) -> int:
        return int(self.eval_env.observation_space.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.eval_env.action_space.shape[0])

    @property
    def loop(self) -> Any:
        """The module of the loop that trains this run's algorithm (robotrl.loop, robotrl.rollout or A3C's
        robotrl.distributed.a3c), or for an off-policy algorithm with `distributed` set robotrl.distributed.loop."""
        if self.distributed is not None and self.algo.loop == "off-policy":
            return importlib.import_module("robotrl.distributed.loop")
        return importlib.import_module(LOOP_MODULES[self.algo.loop])

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        raw = self.eval_env.action_space
        return raw.low.astype(np.float32), raw.high.astype(np.float32)


def run_values(card: TaskCard | None, algo: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """config defaults <- task card algos.<algo> <- overrides (--set)."""
    values = dict(card.algos.get(algo, {})) if card is not None else {}
    values.update(overrides)
    return values


def build_run(task: str | gym.Env, algo: str, seed: int = 0, overrides: dict[str, Any] | None = None,
              run_dir: str | Path | None = None, distributed: Any = None) -> Run:
    """distributed: a robotrl.distributed.DistributedSpec to collect on Ray actors (off-policy algorithms)."""
    seed = check_seed(seed)
    spec = get_algo(algo)
    if distributed is None and spec.loop == "a3c":  # A3C's workers are Ray actors: a local instance by default
        from robotrl.distributed import DistributedSpec
        from robotrl.distributed.a3c import DEFAULT_WORKERS

        distributed = DistributedSpec(collectors=DEFAULT_WORKERS)
    if distributed is not None:
        from robotrl.distributed import check_algo

        check_algo(spec.name, distributed)
    card = None if isinstance(task, gym.Env) else load_card(task)
    source = f"task card '{card.name}' / --set" if card else "overrides"
    loop_cfg, algo_cfg = split_run_config(spec.config_cls, run_values(card, algo, overrides or {}), source,
                                          loop_cls=spec.loop_config_cls)
    check_device(loop_cfg.device)
    torch.set_num_threads(loop_cfg.torch_threads)
    env_spec = None
    if isinstance(task, gym.Env):
        env_spec = env_spec_json(task)  # evaluation, checkpoints and export rebuild exactly this env
        first = task

        def make_train_env() -> gym.Env:
            nonlocal first
            env, first = make_env(first if first is not None else env_from_spec(env_spec)), None
            return env

        eval_env = make_env(env_from_spec(env_spec), normalize_actions=False)
        name, horizon = task.spec.id, task.spec.max_episode_steps
    else:
        def make_train_env() -> gym.Env:
            return make_env(card)

        eval_env, name, horizon = make_env(card, normalize_actions=False), card.name, card.horizon
    if not isinstance(eval_env.observation_space, gym.spaces.Box) or len(eval_env.observation_space.shape) != 1:
        raise RobotrlError(f"robotrl needs a flat Box observation space, got {eval_env.observation_space}")
    obs_dim, action_dim = eval_env.observation_space.shape[0], eval_env.action_space.shape[0]
    image_shape = getattr(eval_env.unwrapped, "image_shape", None)
    if image_shape:  # a pixel observation: the algorithm's critic needs the image's shape
        if not hasattr(algo_cfg, "image_shape"):
            pixel_algos = ", ".join(n for n, a in ALGOS.items() if "image_shape" in a.config_cls.__dataclass_fields__)
            raise RobotrlError(f"'{name}' observes pixels, which --algo {spec.name} cannot encode; use {pixel_algos}")
        algo_cfg.image_shape = tuple(int(x) for x in image_shape)
    torch.manual_seed(seed)
    agent = spec.agent_cls(obs_dim, action_dim, algo_cfg, seed=seed, device=loop_cfg.device)
    space = eval_env.observation_space
    normalizer = ObsNormalizer(obs_dim, enabled=loop_cfg.normalize_obs, low=space.low, high=space.high)
    run = Run(task=name, card=card, algo=spec, seed=seed, loop_cfg=loop_cfg, algo_cfg=algo_cfg, env=None,
              eval_env=eval_env, agent=agent, buffer=None, normalizer=normalizer,
              run_dir=Path(run_dir) if run_dir is not None else None, rng=np.random.default_rng(seed + 2),
              env_spec=env_spec, distributed=distributed)
    run.loop.setup(run, make_train_env, horizon)
    return run


def run_policy(run: Run, current: bool = False) -> DeployedPolicy:
    """The run's deterministic policy as deployed: normaliser -> agent policy -> rescale. With keep_best
    that is the best evaluated snapshot unless `current` asks for the latest weights."""
    low, high = run.action_bounds()
    policy, normalizer = run.agent.policy(), run.normalizer
    if run.best is not None and not current:
        policy, normalizer = copy.deepcopy(policy), copy.deepcopy(normalizer)
        policy.load_state_dict(run.best["policy"])
        normalizer.load_state_dict(run.best["normalizer"])
    if run.agent.device.type != "cpu":  # evaluation and export run on the CPU, like the robot runtime
        policy = copy.deepcopy(policy).cpu()
    return deployed_policy(policy, normalizer, low, high)


def evaluate_run(run: Run, episodes: int | None = None, current: bool = False, block: str = "report") -> EvalResult:
    """The deployed (or, with `current`, the latest) policy on one of the run's evaluation seed blocks. Periodic
    evaluations and keep_best use "selection"; every figure the run reports uses "report"."""
    n = episodes if episodes is not None else run.loop_cfg.eval_episodes
    result = run_episodes(run_policy(run, current), run.eval_env, n, seed=eval_seed_base(run.seed, block))
    result.block = block
    return result


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def crossed(before: int, after: int, every: int) -> bool:
    """Whether the steps before+1 .. after include a multiple of `every` (a loop may advance many steps at once)."""
    return every > 0 and after // every > before // every


def _keep_if_best(run: Run, result: EvalResult, candidate: bool) -> None:
    """keep_best: snapshot the current policy when it evaluates at least as well as the best so far (ties go
    to the later, longer-trained policy). Candidates are the evaluations on the eval_every grid, those whose last
    advance crossed a multiple of eval_every (a closing one off the grid is logged, not kept), so a run trained in
    two calls keeps what one call to the same total keeps."""
    cfg = run.loop_cfg
    if not cfg.keep_best or (cfg.eval_every > 0 and not candidate):
        return
    if cfg.keep_best_by == "success" and math.isnan(result.success_rate):
        raise RobotrlError(f"keep_best_by: success needs a task with a success criterion; {run.task} has none "
                           "(use keep_best_by: return)")
    evaluation = result.as_dict()
    if run.best is None or _rank(evaluation, cfg.keep_best_by) >= _rank(run.best["eval"], cfg.keep_best_by):
        run.best = {"step": run.step, "eval": evaluation, "policy": _snapshot(run.agent.policy()),
                    "normalizer": _snapshot(run.normalizer)}


def _rank(evaluation: dict[str, Any], by: str) -> tuple[float, ...]:
    if by == "success":
        return (evaluation["success_rate"], evaluation["mean_return"])
    return (evaluation["mean_return"],)


class StopOnSignal:
    """While training a run that has a directory (in the main thread), SIGINT and SIGTERM ask the loop to stop at
    the next step boundary and checkpoint; a second signal interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopOnSignal:
        if self.active:
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _recent(run: Run) -> str:
    return f"{np.mean(run.recent_returns):.1f}" if run.recent_returns else "-"


def _log_eval(run: Run, logger: RunLogger, t0: float, step0: int, candidate: bool, report: bool = False) -> None:
    """One progress row: the current policy on the selection block (keep_best chooses from these); with `report`,
    also the deployed policy on the report block, the figure the run states."""
    wall = time.perf_counter() - t0
    result = evaluate_run(run, current=True, block="selection")
    run.last_eval = result
    _keep_if_best(run, result, candidate)
    recent = float(np.mean(run.recent_returns)) if run.recent_returns else math.nan
    row: dict[str, Any] = {
        "step": run.step, "episodes": run.episodes, "time_s": round(run.elapsed_total(), 2),
        "steps_per_s": round((run.step - step0) / max(wall, 1e-9), 1), "recent_return": recent,
        "eval_block": "selection", "eval_mean_return": result.mean_return, "eval_std_return": result.std_return,
        "eval_success_rate": result.success_rate,
    }
    if report:
        run.report = evaluate_run(run, block="report")
        row.update(zip(REPORT_COLUMNS, (run.report.mean_return, run.report.std_return, run.report.success_rate),
                       strict=True))
        logger.scalar("report/mean_return", run.report.mean_return, run.step)
    for k, mean in run.metrics.means().items():
        row[k] = mean
        logger.scalar(f"train/{k}", mean, run.step)
    run.metrics.clear()
    logger.scalar("eval/mean_return", result.mean_return, run.step)
    if not math.isnan(result.success_rate):
        logger.scalar("eval/success_rate", result.success_rate, run.step)
    logger.row(row)


def train(run: Run, steps: int, progress: bool = True, evaluate_at_end: bool = True) -> dict[str, Any]:
    """Train until run.step reaches `steps` (a total, so a resumed run continues to the same target) with the loop
    the run's algorithm names. The on-policy loop stops at the first rollout boundary at or past `steps`.

    A run with a directory checkpoints every checkpoint_every steps or checkpoint_minutes, whichever comes first,
    and on SIGINT / SIGTERM, after which TrainingInterrupted is raised. evaluate_at_end=False skips the closing
    evaluations and log row (the speed benchmark times the loop alone)."""
    return run_session(run, steps, run.loop.advance, progress, evaluate_at_end)


def run_session(run: Run, steps: int, advance: Callable[[Run, RunLogger], None], progress: bool = True,
                evaluate_at_end: bool = True) -> dict[str, Any]:
    """One train() call: `advance(run, logger)` moves the run on by one unit (an environment step and its updates,
    or a rollout and its update) until run.step reaches `steps`; evaluations and checkpoints fall on the grid
    lines the advances cross."""
    from tqdm import tqdm

    cfg: RunConfig = run.loop_cfg
    if steps < run.step:
        raise RobotrlError(f"--steps {steps} is below the run's current step {run.step}")
    if run.run_dir is not None:
        try:
            run.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RobotrlError(f"cannot create the run directory {run.run_dir}: {exc.strerror}") from None
        _write_run_config(run)
    logger = RunLogger(run)
    if run.obs is None:
        run.loop.start(run)
    t0, step0 = time.perf_counter(), run.step
    run.session_start = last_save = t0
    bar = tqdm(total=steps, initial=run.step, disable=not progress, unit="step", dynamic_ncols=True,
               mininterval=0.5, desc=f"{run.algo.name} {run.task}")
    on_grid = False  # whether the last advance crossed an evaluation grid line
    try:
        with StopOnSignal(run.run_dir is not None) as stop:
            while run.step < steps and stop.signum is None:
                before = run.step
                advance(run, logger)
                bar.update(run.step - before)
                on_grid = crossed(before, run.step, cfg.eval_every)
                if on_grid and run.step < steps:
                    _log_eval(run, logger, t0, step0, candidate=True)
                    bar.set_postfix(ret=_recent(run), eval=f"{run.last_eval.mean_return:.1f}")
                elif crossed(before, run.step, 1000):
                    bar.set_postfix(ret=_recent(run))
                by_steps = crossed(before, run.step, cfg.checkpoint_every)
                by_clock = cfg.checkpoint_minutes > 0 and time.perf_counter() - last_save >= 60 * cfg.checkpoint_minutes
                if run.run_dir is not None and (by_steps or by_clock) and run.step < steps:
                    save_run(run)
                    last_save = time.perf_counter()
            bar.close()
            if stop.signum is not None:  # the state is at a step boundary: resume continues bit for bit
                path = save_run(run)
                raise TrainingInterrupted(stop.signum, f"{signal.Signals(stop.signum).name} at step {run.step} of "
                                          f"{steps}: checkpoint written to {path}; continue with: robotrl train "
                                          f"--resume {run.run_dir} --steps {steps}")
            if evaluate_at_end:  # the last selection evaluation (a keep_best candidate on the grid), then the report
                _log_eval(run, logger, t0, step0, candidate=on_grid or run.step % max(cfg.eval_every, 1) == 0,
                          report=True)
            if run.run_dir is not None:
                save_run(run)
    finally:
        bar.close()
        logger.close()
        run.elapsed_s, run.session_start = run.elapsed_total(), None
    wall = time.perf_counter() - t0
    report = run.report
    return {"run_dir": str(run.run_dir) if run.run_dir else None, "steps": run.step,
            "eval_mean_return": report.mean_return if report else math.nan,
            "eval_std_return": report.std_return if report else math.nan,
            "eval_success_rate": report.success_rate if report else math.nan,
            "eval_block": "report", "eval_seed": report.seed if report else None, "wall_time_s": round(wall, 2),
            "policy_step": run.best["step"] if run.best is not None else run.step,
            "steps_per_s": round((run.step - step0) / max(wall, 1e-9), 1)}


def _write_run_config(run: Run) -> None:
    import yaml

    doc = {"task": run.task, "algo": run.algo.name, "seed": run.seed,
           "loop": to_dict(run.loop_cfg), "algo_config": to_dict(run.algo_cfg)}
    (run.run_dir / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


# ---------------------------------------------------------------------------


def run_payload(run: Run, include_loop_state: bool = True, replay_file: str | None = None) -> dict[str, Any]:
    low, high = run.action_bounds()
    payload: dict[str, Any] = {
        "robotrl_version": __version__, "task": run.task, "algo": run.algo.name, "seed": run.seed,
        "loop_config": to_dict(run.loop_cfg), "algo_config": to_dict(run.algo_cfg),
        "obs_dim": run.obs_dim, "action_dim": run.action_dim,
        "action_low": torch.from_numpy(low), "action_high": torch.from_numpy(high),
        "agent": run.agent.state_dict(), "normalizer": run.normalizer.state_dict(), "step": run.step,
        "eval": run.last_eval.as_dict() if run.last_eval else None, "best": run.best,
        "report": run.report.as_dict() if run.report else None, "commands": run.commands,
        "env_spec": run.env_spec, "replay_file": replay_file,
        "eval_protocol": {"version": EVAL_PROTOCOL, "selection_seed": eval_seed_base(run.seed, "selection"),
                          "report_seed": eval_seed_base(run.seed, "report")},
    }
    if include_loop_state:
        payload["loop_state"] = {
            "episodes": run.episodes,
            "obs": torch.from_numpy(run.obs.copy()) if run.obs is not None else None,
            "episode_return": np.asarray(run.episode_return).tolist(),
            "episode_len": np.asarray(run.episode_len).tolist(),
            "recent_returns": list(run.recent_returns), "rng": run.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "elapsed_s": run.elapsed_total(), "progress_rows": run.progress_rows,
            "metrics": run.metrics.state_dict(), **run.loop.state_dict(run),
            # a distributed run's collectors' and updaters' seed generations (robotrl.distributed.loop's
            # first_generations), kept by whichever loop saves, since either may resume the other's checkpoint
            "actor_generations": {kind: dict(generations) for kind, generations
                                  in run.loop_objects.get("actor_generations", {}).items()},
        }
    return payload


def _replay_prefix(checkpoint: Path) -> str:
    return "replay" if checkpoint.name == "last.pt" else f"{checkpoint.stem}.replay"


def save_run(run: Run, path: str | Path | None = None, with_replay: bool = True) -> Path:
    """Write checkpoints/last.pt and, beside it, the replay buffer as replay-<step>.pt, each atomically.

    The replay is written first and the checkpoint names it; the previous replay file is removed only after the
    new checkpoint is in place, so a kill at any moment leaves a checkpoint whose replay exists and matches it."""
    path = Path(path) if path is not None else run.run_dir / "checkpoints" / "last.pt"
    replay_file = None
    with_replay = with_replay and run.loop.HAS_REPLAY  # an on-policy run holds no data between rollouts
    if with_replay:
        replay_file = f"{_replay_prefix(path)}-{run.step}.pt"
        atomic_torch_save(run.buffer.state_dict(), path.parent / replay_file)
    save_checkpoint(run_payload(run, replay_file=replay_file), path)
    if with_replay:
        prefix = _replay_prefix(path)
        for old in [*path.parent.glob(f"{prefix}-*.pt"), path.parent / f"{prefix}.pt"]:
            if old.name != replay_file and old.is_file():
                old.unlink()
    return path


def load_run(path: str | Path, run_dir: str | Path | None = None, with_replay: bool = True) -> Run:
    """Rebuild a Run from a checkpoint (and its replay.pt, when present and asked for)."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    overrides = {**ckpt["loop_config"], **ckpt["algo_config"]}
    run = build_run(task_source(ckpt["task"], ckpt.get("env_spec")), ckpt["algo"], seed=ckpt["seed"],
                    overrides=overrides, run_dir=run_dir)
    restore_agent(run.agent, run.normalizer, ckpt, path)
    run.step = ckpt["step"]
    run.last_eval = EvalResult.from_dict(ckpt["eval"]) if ckpt.get("eval") else None
    run.report = EvalResult.from_dict(ckpt["report"]) if ckpt.get("report") else None
    run.best = ckpt.get("best")
    run.commands = list(ckpt.get("commands", []))
    state = ckpt.get("loop_state")
    if state is not None:
        run.episodes = state["episodes"]
        run.episode_return, run.episode_len = state["episode_return"], state["episode_len"]
        run.recent_returns.extend(state["recent_returns"])
        run.rng.bit_generator.state = state["rng"]
        run.elapsed_s, run.progress_rows = state["elapsed_s"], list(state["progress_rows"])
        if state.get("metrics") is not None:
            run.metrics.load_state_dict(state["metrics"], run.loop_cfg.device)
        if state["obs"] is not None:
            run.obs = state["obs"].numpy()
        run.loop.load_state_dict(run, state)
        run.loop_objects["actor_generations"] = state.get("actor_generations", {})  # resumed: new seeds
        torch.set_rng_state(state["torch_rng"])
    # checkpoints from before replay-<step>.pt files have no "replay_file" key and a replay.pt beside them
    replay_file = ckpt["replay_file"] if "replay_file" in ckpt else "replay.pt"
    replay = path.parent / replay_file if replay_file is not None else None
    if with_replay and run.loop.HAS_REPLAY and replay is not None and replay.exists():
        try:
            run.buffer.load_state_dict(torch.load(replay, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise RobotrlError(f"{replay} is not a readable replay buffer: {first_line(exc)}") from None
    return run
