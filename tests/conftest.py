from __future__ import annotations

import numpy as np
import pytest
import torch

from robotrl.replay import Batch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def make_batch(obs, action, reward, next_obs, terminated) -> Batch:
    def t(x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    return Batch(t(obs), t(action), t(reward), t(next_obs), t(terminated))


def split_and_whole_runs(tmp_path, task: str, algo: str, seed: int, overrides: dict, split: int, total: int):
    """(resumed, uninterrupted): a run trained to `split`, checkpointed, loaded and trained on to `total`, and the
    same run trained to `total` in one go; their critics must be equal for resume to be exact."""
    from robotrl.run import build_run, load_run, train

    half = build_run(task, algo, seed=seed, overrides=overrides, run_dir=tmp_path / "half")
    train(half, split, progress=False)
    resumed = load_run(tmp_path / "half" / "checkpoints" / "last.pt", run_dir=tmp_path / "half")
    train(resumed, total, progress=False)
    full = build_run(task, algo, seed=seed, overrides=overrides)
    train(full, total, progress=False)
    for key, value in full.agent.state_dict()["critic"].items():
        assert torch.equal(value, resumed.agent.state_dict()["critic"][key]), key
    return resumed, full
