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
