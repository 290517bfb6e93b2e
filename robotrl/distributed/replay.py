"""The replay on an actor of its own (`--distributed collectors=N,replay=1`), as QT-Opt and Ape-X keep it: the
collectors' blocks go to it from their object stores, the learner draws its batches from it, and no transition
passes through the learner's process.

The actor holds a ReplayBuffer built by the single-process loop's own `make_replay` (n-step windows, hindsight
relabelling, uint8 images as the card asks), so what a batch is, and how it is drawn, is the local replay's. The
learner's side, RemoteReplay, is the run's `buffer`: the ReplayBuffer interface (len, sample, state_dict,
load_state_dict) over the actor, with `depth` sample requests in flight so an update never waits on the actor or
on collection; the price is that a batch is drawn from the replay as it was up to `depth` updates earlier.
A collector returns its block and a summary as two objects; the learner reads the summary and passes the block's
reference on to the actor, so the replay holds exactly the steps the learner has counted. Checkpoints fetch the
replay from the actor and write it as the single-process run does, so a distributed run resumes on one process
or on another cluster alike.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch

from robotrl import loop as off_policy
from robotrl.envs import make_env
from robotrl.replay import Batch, ReplayBuffer

SAMPLES_IN_FLIGHT = 4  # batches requested ahead of the learner's updates


class ReplayServer:
    """The Ray actor: one ReplayBuffer, blocks in (from collectors), batches out (to the learner)."""

    def __init__(self, source: Any, task: str, loop_cfg: Any, algo_cfg: Any, seed: int) -> None:
        torch.set_num_threads(1)
        self.env = make_env(source)  # for the spaces and hindsight's goal layout and reward; never stepped
        self.buffer = off_policy.make_replay(self.env, self.env.observation_space.shape[0],
                                             self.env.action_space.shape[0], loop_cfg, algo_cfg, seed, task)

    def add_block(self, block: dict[str, np.ndarray]) -> int:
        """A collector's block, step by step as the local loop adds them; returns the replay's size."""
        self.buffer.add_block(block)
        return len(self.buffer)

    def sample(self, batch_size: int) -> Batch:
        return self.buffer.sample(batch_size)

    def size(self) -> int:
        return len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> int:
        self.buffer.load_state_dict(state)
        return len(self.buffer)


class RemoteReplay:
    """The learner's handle on the replay actor, used as run.buffer; `local` is the learner's own ReplayBuffer (as
    it was when the actor took its contents over), which takes the replay back when the run's actors stop."""

    def __init__(self, ray: Any, handle: Any, local: ReplayBuffer, size: int, depth: int = SAMPLES_IN_FLIGHT):
        self.ray, self.handle, self.local, self.size, self.depth = ray, handle, local, size, depth
        self.requests: deque = deque()  # object refs of sample() calls (a run's batch size never changes)

    def __len__(self) -> int:
        return self.size

    def add_block(self, block: Any, steps: int) -> None:
        """A collector's block, by object reference: the actor fetches it from the collector, never this process.
        Calls from one caller to one actor run in order, so every later sample() sees it."""
        self.handle.add_block.remote(block)
        self.size = min(self.size + steps, self.local.capacity)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> Batch:
        while len(self.requests) < self.depth:
            self.requests.append(self.handle.sample.remote(batch_size))
        batch = self.ray.get(self.requests.popleft())
        return Batch(*(None if v is None else v.to(device) for v in vars(batch).values()))

    def state_dict(self) -> dict[str, Any]:
        return self.ray.get(self.handle.state_dict.remote())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.requests.clear()
        self.size = self.ray.get(self.handle.load_state_dict.remote(state))

    def take_back(self) -> ReplayBuffer:
        """The learner's local ReplayBuffer, holding what the actor holds (the actor may be stopped after)."""
        self.local.load_state_dict(self.state_dict())
        return self.local


def start_replay(ray: Any, run: Any, source: Any) -> tuple[Any, RemoteReplay]:
    """The replay actor, holding what the run's replay holds already (a resumed run), and the learner's handle."""
    handle = ray.remote(num_cpus=1)(ReplayServer).remote(source, run.task, run.loop_cfg, run.algo_cfg, run.seed)
    local: ReplayBuffer = run.buffer
    size = ray.get(handle.load_state_dict.remote(local.state_dict())) if len(local) else ray.get(handle.size.remote())
    return handle, RemoteReplay(ray, handle, local, size)
