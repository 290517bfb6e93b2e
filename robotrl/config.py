"""Dataclass configs, YAML / --set merging and strict validation.

A run is configured by two dataclasses: `LoopConfig` (the shared training loop) and the
algorithm's own config (e.g. `DDPGConfig`). Keys are flat and unique across both, so a task
card's `algos.<algo>` block and `--set key=value` overrides use the same names.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args, get_origin

import yaml

LEGACY_EVAL_SEED_OFFSET = 1_000_000
"""Before evaluation protocol 2, every evaluation of a run with seed S reset episode i with S + 1_000_000 + i."""
EVAL_PROTOCOL = 2
"""Protocol 2: each run evaluates on two disjoint seed blocks derived from its training seed (eval_seed_base)."""
EVAL_BLOCK_EPISODES = 1 << 20
"""Episodes per evaluation seed block: block k holds the reset seeds k * EVAL_BLOCK_EPISODES + i."""
EVAL_BLOCKS = ("selection", "report")
"""selection: periodic evaluations and keep_best (anything that chooses); report: the figures a run states
(train's result, the export card, `robotrl eval`'s default), never seen by any choice."""


def eval_seed_base(train_seed: int, block: str) -> int:
    """The first reset seed of a run's `block` ("selection" or "report"): episode i resets with base + i.

    numpy's SeedSequence turns the training seed into two distinct block numbers in [2^12, 2^32 + 2^12), so the
    blocks start at or above 2^32 (no training reset seed, which is the run's seed, falls inside one), the two
    blocks of a run never overlap, and different training seeds evaluate on different states (two seeds share a
    block with probability about 2^-31)."""
    import numpy as np

    if block not in EVAL_BLOCKS:
        raise ValueError(f"evaluation block must be one of {EVAL_BLOCKS}, got {block!r}")
    words = np.random.SeedSequence(check_seed(train_seed), spawn_key=(EVAL_PROTOCOL,)).generate_state(2)
    selection, report = int(words[0]), int(words[1])
    if report == selection:
        report ^= 1
    number = selection if block == "selection" else report
    return ((1 << 12) + number) * EVAL_BLOCK_EPISODES


class RobotrlError(Exception):
    """A user mistake (bad config, path, task, checkpoint). The CLI prints it as one line."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped train() at a step boundary after it wrote the run's checkpoint."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's first message line, cut to `limit` characters (its type name when it has no message): how a
    library's multi-line error is quoted inside a one-line RobotrlError."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


@dataclass
class RunConfig:
    """Settings every training loop shares (the off-policy loop's LoopConfig and the on-policy RolloutConfig)."""

    total_steps: int = 100_000
    """Environment steps to train for when --steps is not given."""
    eval_every: int = 5_000
    """Run a deterministic evaluation every this many environment steps (0 disables)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation and for the final evaluation."""
    checkpoint_every: int = 10_000
    """Write checkpoints/last.pt (and the replay) every this many steps (0: not by step count). With
    checkpoint_minutes, whichever comes first: a crash loses at most that much training. Runs with a directory only."""
    checkpoint_minutes: float = 10.0
    """Also write the checkpoint when this many minutes of wall-clock have passed since the last one (0: never)."""
    normalize_obs: bool = True
    """Keep a running mean/std of observations; it is frozen into exported policies."""
    keep_best: bool = False
    """Deploy (evaluate, export) the policy of the best periodic evaluation (selection block, on the eval_every
    grid) instead of the last one, as SB3's EvalCallback best_model; training itself continues from the latest
    weights. The figures a run reports come from the disjoint report block."""
    keep_best_by: Literal["return", "success"] = "return"
    """What keep_best ranks evaluations by: mean return (SB3's EvalCallback), or success rate with the mean return
    breaking ties, for tasks whose step penalty lets a policy that gives up at once out-return one that often
    succeeds (panda-grasp: terminating at step 1 returns -0.05, a 35%-success policy about -0.5)."""
    torch_threads: int = 1
    """CPU threads for torch; small MLPs run fastest on one thread."""
    device: str = "cpu"
    """Torch device for networks and updates ("cpu", "cuda", "cuda:1")."""


@dataclass
class LoopConfig(RunConfig):
    """Settings of the off-policy training loop (replay, updates per step), shared by every off-policy algorithm."""

    warmup_steps: int = 10_000
    """Steps of warm-up actions (see warmup_policy) before the policy acts and updates start."""
    warmup_policy: Literal["uniform", "scripted"] = "uniform"
    """Warm-up actions: "uniform" random, or the task's scripted policy ("scripted", where the task has one,
    e.g. grasp) with Gaussian noise of std warmup_noise, as QT-Opt seeded its replay with scripted grasps."""
    warmup_noise: float = 0.4
    """Std of the Gaussian noise on the scripted warm-up policy's actions (normalised action space)."""
    batch_size: int = 256
    """Transitions per gradient update."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (preallocated)."""
    n_step: int = 1
    """Steps per Bellman target: sum_{j<k} gamma^j r_{t+j} + gamma^k V(s_{t+k}), k <= n_step, the window cut at
    the episode's end (termination: no bootstrap; time limit: bootstrap from the final observation)."""
    her_goals: int = 0
    """Hindsight experience replay (Andrychowicz et al. 2017, "future" strategy) for goal-conditioned tasks: each
    sampled transition has its desired goal replaced, with probability her_goals / (her_goals + 1), by a goal the
    same episode achieved at that step or later, and its reward recomputed by the env's compute_reward (k relabelled
    goals per real one; the paper's k = 4). 0 disables. Needs n_step 1 and an env that does not terminate on
    reaching its goal."""
    updates_per_step: float = 1.0
    """Update-to-data ratio: gradient updates per environment step (may be fractional, e.g. 0.5)."""


@dataclass
class RolloutConfig(RunConfig):
    """Settings of the on-policy loop: N environments stepped together, rollouts of T steps each, one update per
    rollout. A run ends at the first rollout boundary at or past its step target."""

    n_envs: int = 1
    """Environments stepped together in this process (gymnasium's SyncVectorEnv); a rollout holds
    rollout_steps x n_envs steps."""
    rollout_steps: int = 2048
    """Steps per environment in one rollout (T), after which the algorithm updates on the T x n_envs batch."""
    normalize_reward: bool = False
    """Divide rewards by the running std of the discounted return (as SB3's VecNormalize norm_reward); the value
    function then learns scaled returns. Evaluation and reported returns are never scaled."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (tuple, list):
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` as type `tp` or raise a RobotrlError naming the key and the expected type."""
    origin = get_origin(tp)

    def bad() -> RobotrlError:
        return RobotrlError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")

    if origin is Literal:
        if value not in get_args(tp):
            raise RobotrlError(f"config key '{key}' must be one of {', '.join(map(repr, get_args(tp)))}, "
                               f"got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except RobotrlError:
                pass
        raise bad()
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise bad()
        (inner,) = get_args(tp)[:1]
        return tuple(_coerce(v, inner, key) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f"at least {low:g}"


_POSITIVE = ((lambda v: v > 0), "positive")
_UNIT = ((lambda v: 0.0 <= v <= 1.0), "in [0, 1]")
_WIDTHS = ((lambda v: all(w >= 1 for w in v)), "a list of positive layer widths")
# Allowed values of numeric keys (keys are flat and unique across LoopConfig and every algorithm's config).
LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "total_steps": _at_least(1), "warmup_steps": _at_least(0), "warmup_noise": _at_least(0), "batch_size": _at_least(1),
    "buffer_size": _at_least(1), "n_step": _at_least(1), "her_goals": _at_least(0), "updates_per_step": _POSITIVE,
    "eval_every": _at_least(0),
    "eval_episodes": _at_least(1), "checkpoint_every": _at_least(0), "checkpoint_minutes": _at_least(0),
    "torch_threads": _at_least(1), "n_envs": _at_least(1), "rollout_steps": _at_least(1),
    "gamma": _UNIT, "tau": _UNIT, "actor_lr": _POSITIVE, "critic_lr": _POSITIVE, "lr": _POSITIVE,
    "alpha_lr": _POSITIVE, "init_alpha": _POSITIVE, "actor_hidden": _WIDTHS, "critic_hidden": _WIDTHS,
    "hidden": _WIDTHS, "noise_sigma": _at_least(0), "ou_theta": _at_least(0), "ou_dt": _POSITIVE,
    "critic_weight_decay": _at_least(0), "lag_every": _at_least(1), "cem_samples": _at_least(1),
    "cem_elites": _at_least(1), "cem_iterations": _at_least(1), "epsilon": _UNIT, "policy_delay": _at_least(1),
    "target_noise": _at_least(0), "target_noise_clip": _at_least(0),
    "gae_lambda": _UNIT, "n_epochs": _at_least(1), "minibatch_size": _at_least(1), "clip_range": _POSITIVE,
    "clip_range_vf": _POSITIVE, "kl_target": _POSITIVE, "kl_beta_init": _at_least(0), "target_kl": _POSITIVE,
    "ent_coef": _at_least(0), "vf_coef": _at_least(0), "max_grad_norm": _at_least(0), "rmsprop_alpha": _UNIT,
    "value_lr": _POSITIVE, "value_epochs": _at_least(1), "max_kl": _POSITIVE, "cg_iterations": _at_least(1),
    "cg_damping": _at_least(0), "line_search_shrink": ((lambda v: 0.0 < v < 1.0), "in (0, 1)"),
    "line_search_steps": _at_least(1), "value_minibatch_size": _at_least(1),
}


def check_device(device: str) -> None:
    """A torch device string that names a device this machine has (checked when training, not when a checkpoint
    trained elsewhere is loaded for evaluation or export, which run on the CPU)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise RobotrlError(f"config key 'device' must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") \
            from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise RobotrlError(f"config key 'device' is {device!r}, but this torch has no usable CUDA device; use 'cpu'")
    if parsed.type not in ("cpu", "cuda"):
        raise RobotrlError(f"config key 'device' must be 'cpu' or 'cuda[:N]', got {device!r}")


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def build(cls: type, values: dict[str, Any], source: str) -> Any:
    """Build dataclass `cls` from `values`, validating every key and type."""
    hints = typing.get_type_hints(cls)
    known = field_names(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise RobotrlError(f"unknown config key '{key}' in {source}; valid keys: {', '.join(known)}")
        kwargs[key] = _coerce(value, hints[key], key)
        if key in LIMITS and kwargs[key] is not None and not LIMITS[key][0](kwargs[key]):
            raise RobotrlError(f"config key '{key}' must be {LIMITS[key][1]}, got {value!r}")
    return cls(**kwargs)


def parse_overrides(pairs: list[str], flag: str = "--set") -> dict[str, Any]:
    """Parse `--set key=value` strings; values are YAML scalars or lists (e.g. `hidden=[64,64]`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise RobotrlError(f"{flag} expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise RobotrlError(f"{flag} {key}: cannot parse value {raw!r}") from None
    return out


def split_run_config(algo_cls: type, values: dict[str, Any], source: str,
                     loop_cls: type = LoopConfig) -> tuple[Any, Any]:
    """Split one flat dict into (the loop's config, <Algo>Config), rejecting keys neither knows."""
    loop_keys = set(field_names(loop_cls))
    algo_keys = set(field_names(algo_cls))
    unknown = [k for k in values if k not in loop_keys | algo_keys]
    if unknown:
        valid = ", ".join(sorted(loop_keys | algo_keys))
        raise RobotrlError(f"unknown config key '{unknown[0]}' in {source}; valid keys: {valid}")
    loop = build(loop_cls, {k: v for k, v in values.items() if k in loop_keys}, source)
    algo = build(algo_cls, {k: v for k, v in values.items() if k in algo_keys}, source)
    if getattr(algo, "cem_elites", 0) > getattr(algo, "cem_samples", 0):
        raise RobotrlError(f"config key 'cem_elites' ({algo.cem_elites}) must not exceed cem_samples "
                           f"({algo.cem_samples})")
    return loop, algo


def to_dict(cfg: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 16 or int(h) < 16:
        raise RobotrlError(f"--size must be WIDTHxHEIGHT with both at least 16 pixels, e.g. 480x480; got '{text}'")
    return int(w), int(h)


def check_seed(seed: int) -> int:
    """`seed` as a Python int (numpy integers included): numpy, gymnasium and torch take non-negative ints only."""
    try:
        value = operator.index(seed)
    except TypeError:
        value = -1
    if value < 0:
        raise RobotrlError(f"seed must be a non-negative integer, got {seed!r}")
    return value
