"""The distributed off-policy loop: Ray collector actors step their own envs; the learner adds their episodes to
the run's replay and runs the updates they earn; for QT-Opt, Bellman-updater actors can compute those updates'
targets. A loop module like robotrl.loop (setup, start, advance, state_dict, load_state_dict), driven by
robotrl.run's session like the others.

Collectors act through robotrl.loop's own step (`_env_step`: warm-up policy, exploration, termination vs
truncation) on a Run of their own whose replay is a BlockRecorder, so acting is the single-process loop's code."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robotrl import loop as off_policy
from robotrl.algos import get_algo
from robotrl.algos.common import acting_state, attribute_state, load_acting_state, load_attribute_state
from robotrl.distributed import DistributedSpec, connect
from robotrl.envs import make_env, task_source
from robotrl.nets import ObsNormalizer
from robotrl.replay import Batch
from robotrl.run import Run

HAS_REPLAY = True
TARGETS_IN_FLIGHT = 2  # target requests per Bellman updater: it computes the next while the learner regresses


class BlockRecorder:
    """Stands in for the replay inside a collector: keeps the steps it is given, handed over as one block."""

    KEYS = ("obs", "action", "reward", "next_obs", "terminated", "episode_end")

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool,
            episode_end: bool | None = None) -> None:
        self.rows.append((obs, action, reward, next_obs, terminated, terminated if episode_end is None else
                          episode_end))

    def take(self) -> dict[str, np.ndarray]:
        obs, action, reward, next_obs, terminated, end = zip(*self.rows, strict=True)
        self.rows = []
        return {"obs": np.stack(obs), "action": np.stack(action), "reward": np.asarray(reward, dtype=np.float32),
                "next_obs": np.stack(next_obs), "terminated": np.asarray(terminated),
                "episode_end": np.asarray(end)}


class _Episodes:
    """The logger a collector's loop step writes to: only the finished episodes' returns and lengths matter."""

    def __init__(self) -> None:
        self.returns: list[float] = []
        self.lengths: list[int] = []

    def scalar(self, name: str, value: float, step: int) -> None:
        if name == "train/episode_return":
            self.returns.append(float(value))
        elif name == "train/episode_length":
            self.lengths.append(int(value))


def collector_seed(run_seed: int, index: int, generation: int, role: int = 0) -> int:
    """Each collector's seeds (env resets, warm-up and exploration noise) from the run seed and its place; role 1
    gives the Bellman updaters' (their CEM noise) from the same run seed."""
    words = [run_seed, index, generation] + ([role] if role else [])
    return int(np.random.SeedSequence(words).generate_state(1)[0] % (2**31 - 1))


class ActingCopy:
    """What every collector-like actor shares: a Run of its own whose agent and normaliser the learner refreshes."""

    run: Run
    version: int  # the learner's update count when the weights were sent; -1 before any

    def set_weights(self, weights: dict[str, Any], version: int) -> None:
        load_acting_state(self.run.agent, weights["acting"])
        self.run.normalizer.load_state_dict(weights["normalizer"])
        self.version = version


class Collector(ActingCopy):
    """One collector: its own env, acting networks and seeds; collect() runs whole episodes with its weights."""

    def __init__(self, source: Any, algo: str, loop_cfg: Any, algo_cfg: Any, seed: int, warmup_steps: int,
                 block: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        spec = get_algo(algo)
        env = make_env(source)
        obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
        raw = env.observation_space
        cfg = replace(loop_cfg, warmup_steps=warmup_steps, device="cpu")
        self.run = Run(task=str(getattr(source, "name", source)), card=None, algo=spec, seed=seed, loop_cfg=cfg,
                       algo_cfg=algo_cfg, env=env, eval_env=env, buffer=BlockRecorder(),
                       agent=spec.agent_cls(obs_dim, action_dim, algo_cfg, seed=seed, device="cpu"),
                       normalizer=ObsNormalizer(obs_dim, enabled=cfg.normalize_obs, low=raw.low, high=raw.high),
                       rng=np.random.default_rng(seed + 2))
        if cfg.warmup_policy == "scripted":
            self.run.script = env.unwrapped.scripted_policy()
        self.block, self.version = block, -1

    def collect(self) -> dict[str, Any]:
        """A block of whole episodes, with their returns and the weights' version."""
        run, episodes = self.run, _Episodes()
        if run.obs is None:
            off_policy.start(run)
        steps, version = 0, self.version
        while steps < self.block or run.episode_len > 0:  # whole episodes only
            off_policy._env_step(run, episodes)
            steps += 1
        return {**run.buffer.take(), "returns": episodes.returns, "lengths": episodes.lengths, "version": version}

    def collect_apart(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """collect() as two objects (called with num_returns=2): what the learner reads (the steps, returns,
        version and the moments of the observations its normaliser takes from a block, see advance) and the
        block, which the learner hands to the replay actor by reference without fetching it."""
        result = self.collect()
        block = {key: result.pop(key) for key in BlockRecorder.KEYS}
        seen = np.concatenate([block["obs"][_episode_starts(block)], block["next_obs"]]).astype(np.float64)
        return {**result, "steps": len(block["reward"]), "moments": (len(seen), seen.mean(0), seen.var(0))}, block


def _episode_starts(block: dict[str, np.ndarray]) -> np.ndarray:
    """The rows of a block that begin an episode (blocks hold whole episodes)."""
    return np.flatnonzero(np.concatenate([[True], block["episode_end"][:-1].astype(bool)]))


class BellmanUpdater:
    """One of QT-Opt's Bellman updaters (Kalashnikov et al. 2018, section 4.2): a copy of the lagged target networks,
    refreshed by the learner every target_sync updates, computing targets y for the batches the learner sends by
    CEM over them (the agent's own bellman_target), so the learner runs only the regression step."""

    def __init__(self, algo: str, obs_dim: int, action_dim: int, algo_cfg: Any, seed: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        self.agent = get_algo(algo).agent_cls(obs_dim, action_dim, algo_cfg, seed=seed, device="cpu")
        self.version = -1

    def set_targets(self, state: dict[str, Any], version: int) -> None:
        load_attribute_state(self.agent, self.agent.TARGETS, state)
        self.version = version

    def targets(self, batch: Batch) -> tuple[torch.Tensor, int]:
        """y for the batch, and the version (learner updates) of the target networks that computed it."""
        return self.agent.bellman_target(batch), self.version


@dataclass
class Learner:
    """The learner's side of a distributed run: the collectors, their outstanding blocks, the weight versions."""

    spec: DistributedSpec
    ray: Any
    launch: Callable[[int, int], Any]
    handles: dict[int, Any] = field(default_factory=dict)
    pending: dict[Any, int] = field(default_factory=dict)  # object ref of a collect() call -> collector index
    generation: dict[int, int] = field(default_factory=dict)
    version: int = 0  # learner updates so far (the weights' version)
    synced_at: int = 0  # run.step of the last broadcast
    replaced: int = 0
    launch_updater: Callable[[int, int], Any] | None = None
    updaters: dict[int, Any] = field(default_factory=dict)
    updater_generation: dict[int, int] = field(default_factory=dict)
    in_flight: deque = field(default_factory=deque)  # (ref of a targets() call, its batch, updater index, handle)
    next_updater: int = 0
    targets_synced_at: int = 0  # learner updates when the target networks were last sent
    replay: Any = None  # the replay actor's handle (spec.replay), whose RemoteReplay is then run.buffer
    blocks: dict[Any, Any] = field(default_factory=dict)  # with a replay actor: ref of a summary -> ref of its block


def setup(run: Run, make_train_env: Callable[[], gym.Env], horizon: int | None) -> None:
    """The replay (and hindsight, scripted warm-up checks) exactly as the single-process loop builds them."""
    off_policy.setup(run, make_train_env, horizon)


def start(run: Run) -> None:
    """Start the collectors (Ray first, if need be) and send each the current weights."""
    spec: DistributedSpec = run.distributed
    ray = connect(spec)
    remote = ray.remote(num_cpus=1)(Collector)
    source = task_source(run.task, run.env_spec) if run.card is None else run.card
    share = max(run.loop_cfg.warmup_steps - run.step, 0) // spec.collectors  # the warm-up still to do, split
    first = first_generations(run, "collectors", spec.collectors)
    replay = None
    if spec.replay:
        from robotrl.distributed.replay import start_replay

        replay, run.buffer = start_replay(ray, run, source)

    def launch(index: int, generation: int) -> Any:
        seed = collector_seed(run.seed, index, generation)
        return remote.remote(source, run.algo.name, run.loop_cfg, run.algo_cfg, seed,
                             share if generation == first[index] else 0, spec.block)

    learner = Learner(spec=spec, ray=ray, launch=launch, version=_updates(run), synced_at=run.step, replay=replay)
    run.loop_objects["learner"] = learner
    launch_collectors(run, learner, first)
    if spec.bellman:
        updater = ray.remote(num_cpus=1)(BellmanUpdater)
        learner.launch_updater = lambda index, generation: updater.remote(
            run.algo.name, run.obs_dim, run.action_dim, run.algo_cfg, collector_seed(run.seed, index, generation, 1))
        learner.updater_generation = first_generations(run, "updaters", spec.bellman)
        for index, generation in learner.updater_generation.items():
            learner.updaters[index] = learner.launch_updater(index, generation)
        _send_targets(run, learner)


def first_generations(run: Run, kind: str, count: int) -> dict[int, int]:
    """The seed generation (collector_seed) each of `count` collectors (kind "collectors") or Bellman updaters
    ("updaters") starts at: one past the last this run used, as its checkpoint (or this process's previous start)
    recorded, 0 for a place never used; so no actor of a resumed or restarted run repeats the seeds of an earlier
    stretch of it. The dict returned is the record itself: the learner bumps it on each replacement and checkpoints
    carry it (robotrl.run.run_payload)."""
    record = run.loop_objects.setdefault("actor_generations", {})
    last = record.get(kind, {})
    record[kind] = {index: last.get(index, -1) + 1 for index in range(count)}
    return record[kind]


def launch_collectors(run: Run, learner: Learner, generations: dict[int, int]) -> None:
    """spec.collectors actors at their first_generations, each sent the current weights, each with its first
    collect() running; marks the run started (the learner has no env of its own)."""
    weights = learner.ray.put(_weights(run))
    learner.generation = generations
    for index, generation in generations.items():
        learner.handles[index] = learner.launch(index, generation)
        learner.handles[index].set_weights.remote(weights, learner.version)
        request(learner, index)
    run.obs = np.zeros(run.obs_dim, dtype=np.float32)


def request(learner: Learner, index: int) -> None:
    """Start collector `index`'s next collect(); with a replay actor, as a summary and a block apart."""
    handle = learner.handles[index]
    if learner.replay is None:
        learner.pending[handle.collect.remote()] = index
    else:
        summary, block = handle.collect_apart.options(num_returns=2).remote()
        learner.pending[summary] = index
        learner.blocks[summary] = block


def _updates(run: Run) -> int:
    return int(getattr(run.agent, "updates", 0))


def _on_cpu(value: Any) -> Any:
    """A state (nested dicts of tensors) as the CPU-only actors can load it, wherever the learner runs."""
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    return value.cpu() if isinstance(value, torch.Tensor) else value


def _weights(run: Run) -> dict[str, Any]:
    return _on_cpu({"acting": acting_state(run.agent), "normalizer": run.normalizer.state_dict()})


def _send_targets(run: Run, learner: Learner, handles: list[Any] | None = None) -> None:
    """The learner's target networks to the Bellman updaters (all of them, or `handles`), versioned by its updates."""
    state = learner.ray.put(_on_cpu(attribute_state(run.agent, run.agent.TARGETS)))
    for handle in learner.updaters.values() if handles is None else handles:
        handle.set_targets.remote(state, _updates(run))
    if handles is None:
        learner.targets_synced_at = _updates(run)


def _bellman_update(run: Run, learner: Learner) -> None:
    """One update whose target comes from the Bellman updaters: batches are sampled ahead, TARGETS_IN_FLIGHT per
    updater, so the learner regresses while the updaters compute."""
    while len(learner.in_flight) < TARGETS_IN_FLIGHT * len(learner.updaters):
        batch = off_policy._sample(run)
        index, learner.next_updater = learner.next_updater, (learner.next_updater + 1) % len(learner.updaters)
        handle = learner.updaters[index]
        learner.in_flight.append((handle.targets.remote(replace(batch, **_on_cpu(vars(batch)))), batch, index, handle))
    ref, batch, index, handle = learner.in_flight.popleft()
    try:
        y, version = learner.ray.get(ref)
    except learner.ray.exceptions.RayActorError:  # the updater died: this target here, a fresh updater next
        if learner.updaters[index] is handle:
            _replace_updater(run, learner, index)
        y, version = run.agent.bellman_target(batch), _updates(run)
    staleness = float(_updates(run) - version)
    run.metrics.add({**run.agent.regress(batch, y.to(batch.obs.device)), "target_staleness": staleness})
    if _updates(run) - learner.targets_synced_at >= learner.spec.target_sync:
        _send_targets(run, learner)


def _replace_updater(run: Run, learner: Learner, index: int) -> None:
    learner.updater_generation[index] += 1
    learner.replaced += 1
    learner.updaters[index] = learner.launch_updater(index, learner.updater_generation[index])
    _send_targets(run, learner, [learner.updaters[index]])
    print(f"Bellman updater {index} died; replaced (generation {learner.updater_generation[index]}) at "
          f"step {run.step}", flush=True)


def advance(run: Run, logger: Any) -> None:
    """The next block from whichever collector is done first: into replay, then the updates it earns (as the
    single-process loop would after each of its steps), then fresh weights to the collectors every `sync` steps."""
    learner: Learner | None = run.loop_objects.get("learner")
    if learner is None:
        start(run)
        learner = run.loop_objects["learner"]
    ray = learner.ray
    index, block = next_block(run, learner)
    request(learner, index)
    update = (lambda run: _bellman_update(run, learner)) if learner.updaters else None
    if learner.replay is not None:  # the block goes to the replay actor by reference; its steps earn updates
        run.buffer.add_block(block["block"], block["steps"])
        run.normalizer.update_moments(*block["moments"])
        for _ in range(block["steps"]):
            run.step += 1
            off_policy._updates(run, update)
    else:
        first = True
        for t in range(len(block["reward"])):
            if first:
                run.normalizer.update(block["obs"][t])
            run.buffer.add(block["obs"][t], block["action"][t], float(block["reward"][t]), block["next_obs"][t],
                           bool(block["terminated"][t]), bool(block["episode_end"][t]))
            run.normalizer.update(block["next_obs"][t])
            first = bool(block["episode_end"][t])
            run.step += 1
            off_policy._updates(run, update)
    log_episodes(run, logger, block)
    run.metrics.add({"collector_staleness": float(learner.version - block["version"])})
    learner.version = _updates(run)
    if run.step - learner.synced_at >= learner.spec.sync:
        weights = ray.put(_weights(run))
        for handle in learner.handles.values():
            handle.set_weights.remote(weights, learner.version)
        learner.synced_at = run.step


def next_block(run: Run, learner: Learner) -> tuple[int, dict[str, Any]]:
    """(index, result) of whichever collector's collect() finishes first; a collector that died is replaced (and
    its fresh collect() started) while the wait goes on. The caller starts the next collect() of `index`."""
    ray = learner.ray
    while True:
        (ref,), _ = ray.wait(list(learner.pending), num_returns=1)
        index = learner.pending.pop(ref)
        block = learner.blocks.pop(ref, None)
        try:
            result = ray.get(ref)  # read-only arrays from the object store; the replay copies what it keeps
        except ray.exceptions.RayActorError:  # the collector died: a fresh one takes its place
            _replace(run, learner, index)
            continue
        return index, result if block is None else {**result, "block": block}


def log_episodes(run: Run, logger: Any, block: dict[str, Any]) -> None:
    """The episodes a collector finished in its block, counted and logged at the run's current step."""
    for ret, length in zip(block["returns"], block["lengths"], strict=True):
        run.episodes += 1
        run.recent_returns.append(ret)
        logger.scalar("train/episode_return", ret, run.step)
        logger.scalar("train/episode_length", length, run.step)


def _replace(run: Run, learner: Learner, index: int) -> None:
    learner.generation[index] += 1
    learner.replaced += 1
    handle = learner.launch(index, learner.generation[index])
    handle.set_weights.remote(learner.ray.put(_weights(run)), learner.version)
    learner.handles[index] = handle
    request(learner, index)
    print(f"collector {index} died; replaced (generation {learner.generation[index]}) at step {run.step}",
          flush=True)


def stop_collectors(run: Run) -> None:
    learner: Learner | None = run.loop_objects.pop("learner", None)
    if learner is None:
        return
    if learner.replay is not None:  # the run keeps its replay: back into the learner's own buffer
        run.buffer = run.buffer.take_back()
    for handle in [*learner.handles.values(), *learner.updaters.values(), *filter(None, [learner.replay])]:
        learner.ray.kill(handle)
    run.obs = None


def state_dict(run: Run) -> dict[str, Any]:
    """The learner's loop state; the collectors' episodes are not in it (resuming starts new ones, on seeds of the
    collectors' next generation: see first_generations)."""
    return {"update_credit": run.update_credit, "env": None, "script": None}


def load_state_dict(run: Run, state: dict[str, Any]) -> None:
    run.update_credit = state["update_credit"]
    run.obs = None
