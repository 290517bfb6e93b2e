from __future__ import annotations

import pytest

from robotrl.algos.ddpg import DDPGConfig
from robotrl.config import LoopConfig, RobotrlError, RolloutConfig, parse_overrides, split_run_config


def test_overrides_parse_yaml_values():
    assert parse_overrides(["tau=0.01", "actor_hidden=[64, 64]", "noise=gaussian", "normalize_obs=false"]) == {
        "tau": 0.01, "actor_hidden": [64, 64], "noise": "gaussian", "normalize_obs": False}


def test_split_builds_both_configs_with_types():
    loop, algo = split_run_config(DDPGConfig, {"batch_size": 64, "tau": 1, "actor_hidden": [32]}, "test")
    assert isinstance(loop, LoopConfig) and loop.batch_size == 64
    assert algo.tau == 1.0 and isinstance(algo.tau, float) and algo.actor_hidden == (32,)


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": 1e-3}, "unknown config key 'learning_rate'"),
    ({"batch_size": 6.5}, "'batch_size' must be int"),
    ({"batch_size": "big"}, "'batch_size' must be int"),
    ({"normalize_obs": 1}, "'normalize_obs' must be bool"),
    ({"noise": "pink"}, "'noise' must be one of 'ou', 'gaussian', 'none'"),
    ({"actor_hidden": 64}, "'actor_hidden' must be list of int"),
    ({"batch_size": 0}, "'batch_size' must be at least 1, got 0"),
    ({"tau": 1.5}, r"'tau' must be in \[0, 1\], got 1.5"),
    ({"gamma": -0.1}, r"'gamma' must be in \[0, 1\]"),
    ({"actor_lr": 0}, "'actor_lr' must be positive, got 0"),
    ({"updates_per_step": -1}, "'updates_per_step' must be positive"),
    ({"torch_threads": 0}, "'torch_threads' must be at least 1"),
    ({"critic_hidden": [64, 0]}, "'critic_hidden' must be a list of positive layer widths"),
    ({"noise_sigma": -0.2}, "'noise_sigma' must be at least 0"),
])
def test_bad_values_name_the_key_and_what_is_allowed(values, message):
    with pytest.raises(RobotrlError, match=message):
        split_run_config(DDPGConfig, values, "test")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(RobotrlError) as err:
        split_run_config(DDPGConfig, {"lr": 1}, "test")
    assert "valid keys:" in str(err.value) and "actor_lr" in str(err.value) and "batch_size" in str(err.value)


def _documented_fields(cls: type) -> set[str]:
    """Fields declared with a docstring right below them, in cls or any dataclass it extends."""
    import ast
    import inspect

    documented = set()
    for klass in cls.__mro__[:-1]:
        node = ast.parse(inspect.getsource(klass)).body[0]
        for stmt, nxt in zip(node.body, node.body[1:], strict=False):
            if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                documented.add(stmt.target.id)
    return documented


def test_every_config_field_has_a_docstring():
    from dataclasses import fields

    from robotrl.algos import ALGOS

    for cls in (LoopConfig, RolloutConfig, *(spec.config_cls for spec in ALGOS.values())):
        missing = {f.name for f in fields(cls)} - _documented_fields(cls)
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_seeds_must_be_non_negative_integers():
    import numpy as np

    from robotrl.config import check_seed

    for ok in (0, 7, np.int64(3), 2**40):
        check_seed(ok)
    for bad in (-1, 1.5, "3", None):
        with pytest.raises(RobotrlError, match="seed must be a non-negative integer"):
            check_seed(bad)


def test_cem_elites_cannot_exceed_samples():
    from robotrl.algos.qtopt import QTOptConfig

    with pytest.raises(RobotrlError, match=r"'cem_elites' \(65\) must not exceed cem_samples \(64\)"):
        split_run_config(QTOptConfig, {"cem_elites": 65}, "test")


def test_training_device_must_exist_here():
    import torch

    from robotrl.config import check_device

    check_device("cpu")
    for device, message in [("banana", "must be a torch device"), ("meta", "must be 'cpu' or 'cuda")]:
        with pytest.raises(RobotrlError, match=message):
            check_device(device)
    if torch.cuda.is_available():
        check_device("cuda:0")
    else:
        with pytest.raises(RobotrlError, match="'cuda:0', but this torch has no usable CUDA device; use 'cpu'"):
            check_device("cuda:0")
