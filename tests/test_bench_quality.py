"""tools/bench_quality.py: the translation of a card to Stable-Baselines3 arguments is faithful."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import stable_baselines3
import torch
from PIL import Image

from robotrl.algos import get_algo
from robotrl.config import RobotrlError, split_run_config
from robotrl.envs import load_card, make_env
from robotrl.run import build_run

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "tools" / "bench_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _configs(task: str, algo: str, **overrides):
    spec = get_algo(algo)
    return split_run_config(spec.config_cls, {**load_card(task).algos[algo], **overrides}, "test",
                            loop_cls=spec.loop_config_cls)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sb3_gets_the_same_networks_and_settings(algo):
    bench = _bench()
    loop_cfg, algo_cfg = _configs("reach", algo)
    env = make_env("reach")
    kwargs = bench.sb3_kwargs(algo, loop_cfg, algo_cfg, env.action_space.shape[0])
    assert kwargs["learning_rate"] == algo_cfg.actor_lr
    assert kwargs["learning_starts"] == loop_cfg.warmup_steps
    assert (kwargs["batch_size"], kwargs["gamma"], kwargs["tau"]) == (loop_cfg.batch_size, algo_cfg.gamma,
                                                                       algo_cfg.tau)
    model = getattr(stable_baselines3, algo.upper())("MlpPolicy", env, seed=0, **kwargs)
    ours = build_run("reach", algo).agent
    # Same widths on both sides: equal parameter counts for the actor and for the (twin) critic.
    assert _n_params(model.actor) == _n_params(ours.actor)
    assert _n_params(model.critic) == _n_params(ours.critic)
    if algo == "td3":
        assert kwargs["policy_delay"] == algo_cfg.policy_delay
        assert kwargs["action_noise"]._sigma.tolist() == [algo_cfg.noise_sigma] * env.action_space.shape[0]


def test_settings_sb3_cannot_express_are_errors():
    bench = _bench()
    loop_cfg, algo_cfg = _configs("reach", "sac", critic_lr=3e-4)
    with pytest.raises(RobotrlError, match="one learning rate"):
        bench.sb3_kwargs("sac", loop_cfg, algo_cfg, 2)
    loop_cfg, algo_cfg = _configs("reach", "sac", updates_per_step=1.5)
    with pytest.raises(RobotrlError, match="updates_per_step"):
        bench.sb3_kwargs("sac", loop_cfg, algo_cfg, 2)


def test_tiny_benchmark_prints_a_row_per_library_and_plots_both(capsys, tmp_path):
    bench = _bench()
    code = bench.main(["--task", "pendulum", "--algos", "sac", "--steps", "300", "--seeds", "3", "--episodes", "2",
                       "--set", "warmup_steps=100", "--set", "eval_every=150", "--json",
                       "--plot", str(tmp_path / "q.png"), "--save", str(tmp_path / "q.json")])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["library"] for r in rows) == ["robotrl", "sb3"]
    for r in rows:
        assert r["steps"] == 300 and r["seed"] == 3 and r["episodes"] == 2
        assert 1 <= r["mean_return"] <= 1000 and r["curve"][-1] == [300, r["mean_return"]]
        assert [step for step, _ in r["curve"]] == [150, 300]  # periodic evaluation on both sides
    with Image.open(tmp_path / "q.png") as image:
        assert image.size == (800, 500)
    assert bench.main(["--load", str(tmp_path / "q.json")]) == 0
    assert "| pendulum | sac | sb3 | 3 | 300 |" in capsys.readouterr().out
    assert {r["commit"] for r in rows} != {"unknown"} and all(r["overrides"]["warmup_steps"] == 100 for r in rows)

    # --resume keeps the finished seed 3 and runs only seed 4's robotrl run
    code = bench.main(["--task", "pendulum", "--algos", "sac", "--steps", "300", "--seeds", "3,4", "--episodes", "2",
                       "--libraries", "robotrl", "--set", "warmup_steps=100", "--set", "eval_every=150", "--json",
                       "--save", str(tmp_path / "q.json"), "--resume"])
    assert code == 0
    ran = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["library"], r["seed"]) for r in ran] == [("robotrl", 4)]
    saved = json.loads((tmp_path / "q.json").read_text())
    assert sorted((r["library"], r["seed"]) for r in saved) == [("robotrl", 3), ("robotrl", 4), ("sb3", 3)]
    assert saved[:2] == rows or saved[:2] == rows[::-1]
    assert bench.main(["--resume", "--task", "pendulum"]) == 2


def test_a_goal_task_runs_sb3_with_its_own_hindsight_buffer_on_the_dict_observation(capsys):
    from stable_baselines3 import HerReplayBuffer

    bench = _bench()
    loop_cfg, algo_cfg = _configs("panda-reach", "sac")
    kwargs = bench.sb3_kwargs("sac", loop_cfg, algo_cfg, 4)
    assert kwargs["replay_buffer_class"] is HerReplayBuffer
    assert kwargs["replay_buffer_kwargs"] == {"n_sampled_goal": loop_cfg.her_goals, "goal_selection_strategy": "future"}
    code = bench.main(["--task", "panda-reach", "--algos", "sac", "--steps", "200", "--seeds", "1", "--episodes", "2",
                       "--set", "warmup_steps=100", "--set", "eval_every=100", "--set", "batch_size=32", "--json"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["library"] for r in rows) == ["robotrl", "sb3"]
    for r in rows:
        assert r["steps"] == 200 and -50 <= r["mean_return"] <= 0 and 0 <= r["success_rate"] <= 1


def test_sb3_ppo_gets_the_same_rollout_networks_and_settings():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    bench = _bench()
    loop_cfg, algo_cfg = _configs("pendulum", "ppo", n_envs=2, activation="relu", log_std_init=-1.0)
    model = PPO("MlpPolicy", DummyVecEnv([lambda: make_env("pendulum")] * 2), seed=0,
                **bench.sb3_kwargs("ppo", loop_cfg, algo_cfg, 1))
    assert (model.n_steps, model.batch_size, model.n_epochs) == (2048, 64, 10)
    assert model.clip_range(1.0) == 0.2 and model.gae_lambda == 0.95 and model.gamma == 0.99
    assert model.policy.log_std.detach().tolist() == [-1.0]
    linears = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [64, 64]
    assert isinstance(model.policy.mlp_extractor.policy_net[1], torch.nn.ReLU)
    with pytest.raises(RobotrlError, match="only the clipped objective"):
        bench.sb3_kwargs("ppo", loop_cfg, _configs("pendulum", "ppo", objective="kl")[1], 1)


def test_tiny_on_policy_benchmark_runs_both_libraries_on_several_tasks_and_saves_them(capsys, tmp_path):
    bench = _bench()
    saved = tmp_path / "runs.json"
    code = bench.main(["--task", "pendulum,reach", "--algos", "ppo", "--steps", "128", "--seeds", "0",
                       "--episodes", "1", "--set", "rollout_steps=64", "--set", "minibatch_size=32",
                       "--set", "eval_every=64", "--set", "eval_episodes=1", "--json", "--save", str(saved)])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    expected = {(task, lib) for task in ("pendulum", "reach") for lib in ("robotrl", "sb3")}
    assert {(r["task"], r["library"]) for r in rows} == expected
    for r in rows:
        assert r["steps"] == 128 and len(r["curve"]) >= 2
    assert {(r["task"], r["library"]) for r in json.loads(saved.read_text())} == expected


def test_sb3_warms_up_with_the_cards_scripted_policy_on_the_raw_observation():
    from stable_baselines3 import SAC, HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robotrl.envs.goal import goal_wrapper

    bench = _bench()
    card = load_card("panda-push")
    venv = DummyVecEnv([lambda: make_env(card, flatten_goals=False)])
    model = SAC("MultiInputPolicy", venv, seed=3, learning_starts=60, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"), device="cpu")
    flat_env = make_env(card)
    goals = goal_wrapper(flat_env)
    script = flat_env.unwrapped.scripted_policy()
    bench._scripted_warmup(model, script, goals, 0.0, seed=3)  # no noise: the script's own actions
    model.learn(40)
    buffer, replay = model.replay_buffer, flat_env.unwrapped.scripted_policy()
    for t in range(40):
        flat = np.concatenate([buffer.observations[key][t, 0] for key in goals.slices])
        np.testing.assert_allclose(buffer.actions[t, 0], np.clip(replay(flat), -1, 1), atol=1e-4)
    assert np.abs(buffer.actions[:40]).max() > 0.1  # the script moves the arm


def test_parallel_jobs_split_the_cores_instead_of_each_taking_the_cards_threads(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))  # the spawned workers import the tool by name, as its CLI does
    monkeypatch.delitem(sys.modules, "bench_quality", raising=False)
    bench = importlib.import_module("bench_quality")
    code = bench.main(["--task", "pendulum", "--algos", "sac", "--steps", "200", "--seeds", "1,2", "--episodes", "1",
                       "--libraries", "robotrl", "--set", "warmup_steps=100", "--set", "torch_threads=64",
                       "--jobs", "2", "--json"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["seed"] for r in rows) == [1, 2]
    assert {r["threads"] for r in rows} == {bench.jobs_thread_cap(2)} and bench.jobs_thread_cap(2) < 64
    assert bench.jobs_thread_cap(1) is None  # one run at a time keeps the card's threads
