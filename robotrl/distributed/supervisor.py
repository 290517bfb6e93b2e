"""The learner on a Ray actor of its own (`--distributed collectors=N,learner=1`), watched by the `train` process.

The learner actor builds the run (or loads it from the run directory's last checkpoint) and trains it with the
distributed loop as the `train` process would itself: it starts the collectors (and Bellman updaters, replay
actor) as its own child actors and writes checkpoints, logs and the exported policy to the run directory. The
`train` process only watches: when the learner dies (its machine lost, out of memory, killed), Ray takes its child
actors with it, and the watcher starts a new learner from the last checkpoint (learner, optimisers, normaliser,
replay; collectors start new episodes), up to `max_restarts` times. What the run had learned since that
checkpoint is lost, so the card's checkpoint_every / checkpoint_minutes bound the loss.

The run directory must be reachable from both processes (the same machine, or a shared filesystem on a cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from robotrl.config import RobotrlError
from robotrl.distributed import DistributedSpec, connect

MAX_RESTARTS = 3


class LearnerActor:
    """The run's learner: `build` (build_run's arguments) for a new run, or the checkpoint to continue."""

    def __init__(self, build: dict[str, Any], checkpoint: str | None, spec: DistributedSpec) -> None:
        from robotrl.run import build_run, load_run

        inner = replace(spec, learner=0)  # this actor runs the distributed loop itself
        if checkpoint is None:
            self.run = build_run(**build, distributed=inner)
        else:
            self.run = load_run(checkpoint, run_dir=build["run_dir"])
            self.run.distributed, self.run.obs = inner, None

    def step(self) -> int:
        return self.run.step

    def train(self, steps: int, evaluate_at_end: bool, commands: list[str]) -> dict[str, Any]:
        from robotrl.distributed import shutdown
        from robotrl.run import train

        self.run.commands.extend(c for c in commands if c not in self.run.commands)
        try:
            return train(self.run, steps, progress=False, evaluate_at_end=evaluate_at_end)
        finally:
            shutdown(self.run)


def train_supervised(build: dict[str, Any], spec: DistributedSpec, steps: int, evaluate_at_end: bool = True,
                     resume: bool = False, commands: list[str] | None = None, device: str = "cpu",
                     max_restarts: int = MAX_RESTARTS,
                     on_launch: Callable[[Any, int], None] | None = None) -> dict[str, Any]:
    """Train on a learner actor until run.step reaches `steps`, restarting it from the last checkpoint in
    build["run_dir"] when it dies. `resume`: the first learner too starts from that checkpoint. `device`: the run's
    (a cuda learner asks Ray for a GPU). `on_launch(actor, restarts)` is called as each learner starts (the fault
    test kills one through it)."""
    if build.get("run_dir") is None:
        raise RobotrlError("--distributed learner=1 needs a run directory: its checkpoints are how a new learner "
                           "continues; pass --out DIR")
    ray = connect(spec)
    last = Path(build["run_dir"]) / "checkpoints" / "last.pt"
    remote = ray.remote(num_cpus=1, num_gpus=1 if device.startswith("cuda") else 0)(LearnerActor)
    restarts = 0
    while True:
        checkpoint = str(last) if (resume or restarts) and last.is_file() else None
        actor = remote.remote(build, checkpoint, spec)
        if on_launch is not None:
            on_launch(actor, restarts)
        try:
            result = ray.get(actor.train.remote(steps, evaluate_at_end, commands or []))
        except ray.exceptions.RayActorError as exc:
            restarts += 1
            if restarts > max_restarts:
                raise RobotrlError(f"the learner died {restarts} times (last: {type(exc).__name__}); giving up, "
                                   f"the last checkpoint is {last}") from None
            where = f"its last checkpoint ({last})" if last.is_file() else "the start (no checkpoint yet)"
            print(f"learner died; restarting from {where}, restart {restarts} of {max_restarts}", flush=True)
            continue
        ray.kill(actor)
        return {**result, "learner_restarts": restarts}
