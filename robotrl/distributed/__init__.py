"""Off-policy training scaled out on Ray (`robotrl train TASK --distributed collectors=N [--address ADDR]`).

Collectors are Ray actors, each with its own env, a copy of the agent's acting networks and its own seeds (derived
from the run seed and the collector's index): they act with the latest weights they were sent and return whole
episodes in blocks, so the replay's n-step windows and hindsight relabelling see each episode in one piece. The
learner (this process) adds the blocks to the run's replay as they arrive, runs the updates they earn at the card's
updates_per_step, and sends fresh acting weights to every collector each `sync` env steps; how many updates old a
block's weights were (its staleness) is logged. The loop, replay, evaluation, keep-best, checkpoints and export are
the single-process run's own (robotrl.run); robotrl.distributed.loop is the loop module.

With no address Ray starts a local instance on this machine; with one the run joins that cluster. A collector
that dies is replaced by a fresh one (new episode, next seed generation) and the run goes on; what the replay holds
is never lost. A checkpoint holds the learner and replay; resuming starts new collector episodes.

A3C (`--algo a3c`) runs here too: its actor-learner workers are the collectors of robotrl.distributed.a3c, which
return gradients instead of transitions.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, fields
from typing import Any

from robotrl.config import RobotrlError, first_line

OFF_POLICY_ALGOS = ("sac", "td3", "ddpg", "naf", "qtopt")
DISTRIBUTED_ALGOS = (*OFF_POLICY_ALGOS, "a3c")  # a3c: robotrl.distributed.a3c, its actor-learner workers
BELLMAN_ALGOS = ("qtopt",)


@dataclass(frozen=True)
class DistributedSpec:
    collectors: int  # A3C: its actor-learner workers
    sync: int = 1000  # env steps (all collectors together) between weight broadcasts
    block: int = 100  # a collector returns its block at the first episode end after this many steps
    bellman: int = 0  # QT-Opt's Bellman-updater actors (0: the learner computes its own targets)
    target_sync: int = 100  # learner updates between sending the target networks to the Bellman updaters
    replay: int = 0  # 1: the replay lives on its own actor (robotrl.distributed.replay); 0: in the learner
    learner: int = 0  # 1: the learner runs on an actor, restarted from the last checkpoint if it dies (supervisor)
    address: str | None = None


SPEC_KEYS = tuple(f.name for f in fields(DistributedSpec) if f.name != "address")
SPEC_FORMAT = "collectors=N[,sync=STEPS][,block=STEPS][,bellman=M][,target_sync=UPDATES][,replay=1][,learner=1]"


def parse_distributed(text: str, address: str | None = None) -> DistributedSpec:
    """'collectors=2,sync=500' -> DistributedSpec; anything else is a one-line error naming the format."""
    values: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in SPEC_KEYS:
            raise RobotrlError(f"bad --distributed '{text}': expected {SPEC_FORMAT} (keys: {', '.join(SPEC_KEYS)})")
        try:
            values[key] = int(value)
        except ValueError:
            raise RobotrlError(f"bad --distributed '{text}': {key} must be a whole number, got '{value}'") from None
        if values[key] < 1:
            raise RobotrlError(f"bad --distributed '{text}': {key} must be at least 1, got {values[key]}")
    if values.get("replay", 1) != 1:
        raise RobotrlError(f"bad --distributed '{text}': replay=1 puts the replay on one actor of its own; sharded "
                           f"replay (replay={values['replay']}) is not built")
    if values.get("learner", 1) != 1:
        raise RobotrlError(f"bad --distributed '{text}': learner=1 runs the one learner on an actor of its own; "
                           f"there is no learner={values['learner']}")
    if "collectors" not in values:
        raise RobotrlError(f"bad --distributed '{text}': collectors=N is required ({SPEC_FORMAT})")
    return DistributedSpec(address=address, **values)


def check_algo(algo: str, spec: DistributedSpec | None = None) -> None:
    if algo not in DISTRIBUTED_ALGOS:
        hint = "; A3C is A2C's asynchronous form: --algo a3c" if algo == "a2c" else ""
        raise RobotrlError(f"--distributed trains the off-policy algorithms ({', '.join(OFF_POLICY_ALGOS)}) and "
                           f"a3c; '{algo}' is not one of them{hint}")
    if spec is not None and spec.bellman and algo not in BELLMAN_ALGOS:
        raise RobotrlError(f"--distributed bellman=M: Bellman updaters compute QT-Opt's CEM targets "
                           f"(--algo {', '.join(BELLMAN_ALGOS)}), not {algo}'s; leave out bellman=")
    if spec is not None and spec.replay and algo not in OFF_POLICY_ALGOS:
        raise RobotrlError(f"--distributed replay=1 moves the replay of an off-policy algorithm onto an actor; "
                           f"{algo} has no replay: leave out replay=")


def connect(spec: DistributedSpec) -> Any:
    """The ray module, initialised: a local instance (no address) or the cluster at spec.address."""
    try:
        import ray
    except ImportError:
        raise RobotrlError('--distributed needs Ray, which is not installed: pip install -c constraints.txt -e '
                           '".[distributed]"') from None
    if ray.is_initialized():
        return ray
    if spec.address is not None:
        _check_reachable(spec.address)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        if spec.address is None:  # a CPU slot for every actor (each runs one torch thread) and the learner
            actors = spec.collectors + spec.bellman + spec.replay + spec.learner
            ray.init(num_cpus=max(os.cpu_count() or 1, actors + 1), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=spec.address, log_to_driver=False, configure_logging=False)
    except Exception as exc:
        where = f"the Ray cluster at {spec.address}" if spec.address else "a local Ray instance"
        raise RobotrlError(f"cannot start or join {where}: {first_line(exc)}") from None
    return ray


def _check_reachable(address: str) -> None:
    """A quick TCP check, so an address that is wrong fails in seconds rather than after Ray's retries."""
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://") or not sep or not port.isdigit():
        raise RobotrlError(f"bad --address '{address}': expected HOST:PORT of a Ray head node (as printed by "
                           "`ray start --head`)")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise RobotrlError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; start one with "
                           "`ray start --head` there, or leave out --address to run on this machine") from None


def shutdown(run: Any) -> None:
    """Stop a run's collectors (the learner keeps everything they sent)."""
    from robotrl.distributed import loop

    loop.stop_collectors(run)
