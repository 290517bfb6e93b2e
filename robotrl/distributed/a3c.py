"""A3C's loop on Ray (`robotrl train TASK --algo a3c --distributed collectors=N`): N actor-learner workers, each a
Ray actor with its own envs and copy of the actor and critic, collect a rollout with the on-policy loop's own code
(robotrl.rollout.collect), compute A2C's gradient on it and return it; the learner (this process, holding the
run's agent) applies each gradient as it arrives (robotrl.algos.a3c) and sends that worker the new parameters and
observation statistics, so workers never wait for one another. A loop module like robotrl.rollout (setup, start,
advance, state_dict, load_state_dict), driven by robotrl.run's session, so evaluation, keep-best, checkpoints and
export are every run's.

Where the paper's workers are threads updating shared memory without locks (Hogwild), here the parameters live in
the learner and gradients are applied one at a time in arrival order: the asynchrony (stale gradients, no worker
waits for another) is the paper's, and a worker may run on another machine. Without --distributed, A3C runs on a
local Ray instance with DEFAULT_WORKERS workers. A dead worker is replaced (new episodes, next seed generation).
A checkpoint holds the learner (parameters, shared RMSprop statistics, normaliser); resuming starts new workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robotrl import rollout
from robotrl.algos import get_algo
from robotrl.distributed import DistributedSpec, connect
from robotrl.distributed.loop import (
    ActingCopy,
    Learner,
    _Episodes,
    _weights,
    collector_seed,
    first_generations,
    launch_collectors,
    log_episodes,
    next_block,
    request,
)
from robotrl.envs import make_env, task_source
from robotrl.nets import ObsNormalizer
from robotrl.run import Run

HAS_REPLAY = False
DEFAULT_WORKERS = 2


class _RecordingNormalizer(ObsNormalizer):
    """A worker's normaliser: updates itself as the loop's does and keeps what it saw, for the learner's copy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[np.ndarray] = []

    def update(self, obs: np.ndarray) -> None:
        self.seen.append(np.atleast_2d(np.asarray(obs, dtype=np.float32)))
        super().update(obs)


class Worker(ActingCopy):
    """One actor-learner: its own n_envs envs, actor, critic and seeds; collect() returns one rollout's gradient."""

    def __init__(self, source: Any, loop_cfg: Any, algo_cfg: Any, seed: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        spec = get_algo("a3c")
        probe = make_env(source)
        space, action_dim = probe.observation_space, probe.action_space.shape[0]
        obs_dim = space.shape[0]
        cfg = replace(loop_cfg, device="cpu")
        self.run = Run(task=str(getattr(source, "name", source)), card=None, algo=spec, seed=seed, loop_cfg=cfg,
                       algo_cfg=algo_cfg, env=None, eval_env=probe, buffer=None,
                       agent=spec.agent_cls(obs_dim, action_dim, algo_cfg, seed=seed, device="cpu"),
                       normalizer=_RecordingNormalizer(obs_dim, enabled=cfg.normalize_obs, low=space.low,
                                                       high=space.high),
                       rng=np.random.default_rng(seed + 2))
        rollout.setup(self.run, lambda: make_env(source), None)
        self.version = -1

    def collect(self) -> dict[str, Any]:
        run, episodes = self.run, _Episodes()
        run.normalizer.seen = []
        if run.obs is None:
            rollout.start(run)
        step0, version = run.step, self.version
        grads, metrics = run.agent.gradients(rollout.collect(run, episodes))
        return {"grads": [g.numpy() for g in grads], "metrics": {k: float(v) for k, v in metrics.items()},
                "observed": np.concatenate(run.normalizer.seen), "steps": run.step - step0,
                "returns": episodes.returns, "lengths": episodes.lengths, "version": version}


def setup(run: Run, make_train_env: Callable[[], gym.Env], horizon: int | None) -> None:
    """The learner has no envs or rollout of its own: its workers build theirs."""


def start(run: Run) -> None:
    """Start the workers (Ray first, if need be), each with the current parameters and its first rollout."""
    spec: DistributedSpec = run.distributed or DistributedSpec(collectors=DEFAULT_WORKERS)
    ray = connect(spec)
    remote = ray.remote(num_cpus=1)(Worker)
    source = task_source(run.task, run.env_spec) if run.card is None else run.card

    def launch(index: int, generation: int) -> Any:
        return remote.remote(source, run.loop_cfg, run.algo_cfg, collector_seed(run.seed, index, generation))

    learner = Learner(spec=spec, ray=ray, launch=launch, version=run.agent.updates, synced_at=run.step)
    run.loop_objects["learner"] = learner
    launch_collectors(run, learner, first_generations(run, "collectors", spec.collectors))


def advance(run: Run, logger: Any) -> None:
    """The next worker's gradient, applied to the shared parameters; then that worker gets them and goes on."""
    learner: Learner | None = run.loop_objects.get("learner")
    if learner is None:
        start(run)
        learner = run.loop_objects["learner"]
    index, result = next_block(run, learner)
    run.normalizer.update(result["observed"])
    run.step += result["steps"]
    staleness = float(run.agent.updates - result["version"])
    progress = min(run.step / run.loop_cfg.total_steps, 1.0)
    applied = run.agent.apply([torch.tensor(g) for g in result["grads"]], progress)
    run.metrics.add({**result["metrics"], **applied, "gradient_staleness": staleness})
    log_episodes(run, logger, result)
    learner.version = run.agent.updates
    handle = learner.handles[index]
    handle.set_weights.remote(learner.ray.put(_weights(run)), learner.version)
    request(learner, index)


def state_dict(run: Run) -> dict[str, Any]:
    """Nothing beyond the learner's agent and normaliser (in every checkpoint): workers start new episodes (on
    their next seed generation: see robotrl.distributed.loop.first_generations)."""
    return {}


def load_state_dict(run: Run, state: dict[str, Any]) -> None:
    run.obs = None
