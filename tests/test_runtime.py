"""The C++ robot runtime (tools/runtime) against robotrl's Python envs: same actions, same returns, safe output.

Building it is part of the test: a compile failure fails the module's tests, it never skips them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robotrl import SAC, load_policy, make_env
from robotrl.envs import load_card
from robotrl.export import interface_card, script_policy
from robotrl.nets import DeployedPolicy

# One build of tools/runtime serves every test here, so they all run on the same xdist worker.
pytestmark = pytest.mark.xdist_group("cpp_runtime")

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DIR = ROOT / "tools" / "runtime"
SHIPPED_REACH_POLICY = ROOT / "policies" / "reach-sac.pt"
SHIPPED_PANDA_POLICIES = {"panda-push": ROOT / "policies" / "panda-push-sac.pt",
                          "panda-pick": ROOT / "policies" / "panda-pick-sac.pt",
                          "panda-grasp": ROOT / "policies" / "panda-grasp-qtopt.pt"}
ACTION_TOLERANCE = 1e-5
RETURN_TOLERANCE = 1e-4
# (task, policy, reset seeds compared). The tiny SAC pendulum policy falls within a dozen steps, so pendulum
# is also run with a balancing linear controller for the full 1000-step horizon.
# The -pt2 cases load the AOTInductor package (--format pt2) in both Python and C++.
PARITY_CASES = [("pendulum", "pendulum-sac", [0, 1, 2, 3, 4]), ("pendulum", "pendulum-balancing", [0, 1]),
                ("reach", "reach-sac", [0, 1, 2]), ("cheetah", "cheetah-sac", [0]),
                ("pendulum", "pendulum-sac-pt2", [0, 1, 2]), ("cheetah", "cheetah-sac-pt2", [0]),
                ("panda-reach", "panda-reach-sac", [0, 1]), ("panda-push", "panda-push-sac", [0]),
                ("panda-pick", "panda-pick-sac", [0]), ("panda-push", "panda-push-into-cube", [0, 1]),
                ("panda-push", "panda-push-shipped", [0, 1]), ("panda-pick", "panda-pick-shipped", [0, 1]),
                ("panda-push", "panda-push-joint-dense", [0, 1]), ("panda-reach", "panda-reach-joint-dense", [0]),
                ("panda-grasp", "panda-grasp-at-the-object", [0, 1, 2, 3, 4, 5]),
                ("panda-grasp", "panda-grasp-hidden-size", [0, 1]), ("panda-grasp", "panda-grasp-observed-size", [0]),
                ("panda-grasp", "panda-grasp-shipped", [0, 1])]
# Policies trained on a Panda env built with other control / reward / observation arguments than the card's.
VARIANTS = {"panda-push-joint-dense": ("RobotrlPandaPush-v0", {"control": "joint", "reward_type": "dense"}),
            "panda-reach-joint-dense": ("RobotrlPandaReach-v0", {"control": "joint", "reward_type": "dense"}),
            "panda-grasp-hidden-size": ("RobotrlPandaGrasp-v0", {"object_size": "hidden", "max_steps": 20,
                                                                 "max_episode_steps": 20}),
            "panda-grasp-observed-size": ("RobotrlPandaGrasp-v0", {"object_size": "observed", "max_steps": 20,
                                                                   "max_episode_steps": 20})}


@dataclass
class Episode:
    qpos: list[float]
    qvel: list[float]
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    goal: list[float] | None = None  # goal tasks: the episode's goal, which lives outside qpos
    success: bool | None = None  # goal tasks: info["is_success"] after the last step
    object: list[float] | None = None  # panda-grasp: the episode's object (shape, size x3, mass, friction)

    def initial_state(self) -> dict:
        return {"qpos": self.qpos, "qvel": self.qvel, **({"goal": self.goal} if self.goal else {}),
                **({"object": self.object} if self.object else {})}


@pytest.fixture(scope="module")
def runtime() -> Path:
    build = subprocess.run(["bash", str(RUNTIME_DIR / "build.sh")], capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHON": sys.executable})  # the interpreter running the tests
    assert build.returncode == 0, f"tools/runtime/build.sh failed: {build.stderr.strip()}"
    binary = Path(build.stdout.strip().splitlines()[-1])
    assert binary.is_file()
    return binary


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny freshly exported SAC policies for pendulum (normalised observations) and cheetah (raw ones), as .pt
    and .pt2; reach and the -shipped cases use the shipped, trained policies. A policy need only be a non-trivial
    function of the observation."""
    out = tmp_path_factory.mktemp("policies")
    paths = {"reach-sac": SHIPPED_REACH_POLICY}
    paths.update({f"{task}-shipped": path for task, path in SHIPPED_PANDA_POLICIES.items()})
    def tiny_sac(task: str | gym.Env) -> SAC:
        agent = SAC(task, seed=0, warmup_steps=100, batch_size=32, actor_hidden=[32, 32], critic_hidden=[32, 32],
                    eval_every=0, eval_episodes=1, buffer_size=1000, keep_best=False)
        agent.learn(200)
        return agent

    for task in ("pendulum", "cheetah", "panda-reach", "panda-push", "panda-pick"):
        agent = tiny_sac(task)
        formats = "pt" if task.startswith("panda") else "pt,pt2"  # (the .pt2 path is the same for every task)
        exported = agent.export(out / f"{task}-sac.pt", formats=formats)
        paths[f"{task}-sac"] = Path(exported.files["pt"])
        if "pt2" in exported.files:
            paths[f"{task}-sac-pt2"] = Path(exported.files["pt2"])
    for variant, (env_id, kwargs) in VARIANTS.items():
        agent = tiny_sac(gym.make(env_id, **{"max_episode_steps": 50, **kwargs}))
        paths[variant] = Path(agent.export(out / f"{variant}.pt", formats="pt").files["pt"])
    paths["pendulum-balancing"] = balancing_pendulum_policy(out / "pendulum-balancing.pt")
    paths["panda-push-into-cube"] = cube_pushing_policy(out / "panda-push-into-cube.pt", paths["panda-push-sac"])
    paths["panda-grasp-at-the-object"] = grasping_policy(out / "panda-grasp-at-the-object.pt")
    return paths


class IntoTheCube(torch.nn.Module):
    """Fingers closed, the TCP goes down 6 cm behind the cube (-x) and, once low and behind it, sweeps +x through
    it (observation[15:18] = cube, [18:21] = cube - tcp): every episode pushes the cube, so parity covers contacts."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        relative = obs[..., 18:21]
        low = (obs[..., 2:3] - obs[..., 17:18]).abs() < 0.02
        behind = relative[..., 0:1] > 0.03
        offset_x = torch.where(low & behind, torch.full_like(behind, 0.1, dtype=obs.dtype),
                               torch.full_like(behind, -0.06, dtype=obs.dtype))
        target = torch.cat([relative[..., 0:1] + offset_x, relative[..., 1:3]], dim=-1)
        towards = torch.clamp(target / 0.05, -1.0, 1.0)
        return torch.cat([towards, -torch.ones_like(towards[..., :1])], dim=-1)


def cube_pushing_policy(path: Path, exported_push: Path) -> Path:
    """IntoTheCube packaged as export does, beside the push scene and a card naming it."""
    deployed = DeployedPolicy(IntoTheCube(), torch.zeros(37), torch.ones(37), math.inf, -torch.ones(4), torch.ones(4))
    torch.jit.save(script_policy(deployed), str(path))
    scene = exported_push.with_suffix(".mjb")
    shutil.copy(scene, path.with_suffix(".mjb"))
    path.with_suffix(".json").write_text(json.dumps({"task": "panda-push", "frame_skip": 8, "horizon": 50,
                                                     "scene": {"file": path.with_suffix(".mjb").name}}))
    return path


class GraspAtTheObject(torch.nn.Module):
    """Over the object (observation[6:9] - observation[21:24] = object - setpoint), down to its centre while turning
    the hand, close once there, terminate once the fingers have closed in (observation[5], the finger width); for an
    object in the bin's +y half (TCP y + object-minus-TCP y), close 3 cm above its centre instead: episodes end in
    lift tests, some held and some not, so parity covers the setpoint, the yaw IK, the object's contacts and the
    lift."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        rel = obs[..., 6:9] - obs[..., 21:24]
        ones = torch.ones_like(rel[..., :1])
        above = torch.where(obs[..., 1:2] + obs[..., 7:8] > 0.0, 0.03 * ones, 0.0 * ones)
        near = (rel[..., 0:1] ** 2 + rel[..., 1:2] ** 2) < 0.02 ** 2
        down = torch.where(near, torch.clamp(0.9 * (rel[..., 2:3] + above) / 0.05, -1.0, 1.0), 0.0 * ones)
        there = near & ((rel[..., 2:3] + above).abs() < 0.006)
        turn = torch.tanh(30.0 * rel[..., 0:1])
        return torch.cat([torch.clamp(0.9 * rel[..., 0:2] / 0.05, -1.0, 1.0), down, turn,
                          torch.where(there, ones, -ones), torch.where(obs[..., 5:6] < 0.075, ones, -ones)], dim=-1)


def grasping_policy(path: Path) -> Path:
    """GraspAtTheObject packaged as export does, with the panda-grasp scene (.mjb) and a card naming it."""
    import mujoco

    deployed = DeployedPolicy(GraspAtTheObject(), torch.zeros(26), torch.ones(26), math.inf, -torch.ones(6),
                              torch.ones(6))
    torch.jit.save(script_policy(deployed), str(path))
    env = make_env("panda-grasp")
    mujoco.mj_saveModel(env.unwrapped.runtime_scene(), str(path.with_suffix(".mjb")), None)
    path.with_suffix(".json").write_text(json.dumps({"task": "panda-grasp", "frame_skip": 20, "horizon": 20,
                                                     "scene": {"file": path.with_suffix(".mjb").name},
                                                     **interface_card(env)}))  # the card's observation layout
    return path


def balancing_pendulum_policy(path: Path) -> Path:
    """force = clamp(K . [x, theta, x', theta'], -3, 3) with hand-tuned K, packaged exactly as export does
    (DeployedPolicy: the linear layer outputs in [-1, 1] units, rescaled to the [-3, 3] N bounds)."""
    gains = torch.tensor([[1.0, 30.0, 1.0, 3.0]]) / 3.0
    linear = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(gains)
    deployed = DeployedPolicy(linear, torch.zeros(4), torch.ones(4), math.inf, torch.tensor([-3.0]),
                              torch.tensor([3.0]))
    torch.jit.save(script_policy(deployed), str(path))
    path.with_suffix(".json").write_text(json.dumps({"task": "pendulum"}))  # load_policy needs a card
    return path


def run_runtime(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=300)


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def python_episode(task: str, policy_path: Path, seed: int, policy_name: str = "") -> Episode:
    if policy_name in VARIANTS:
        env_id, kwargs = VARIANTS[policy_name]
        env = make_env(gym.make(env_id, **{**kwargs, "max_episode_steps": load_card(task).horizon}),
                       normalize_actions=False)
    else:
        env = make_env(task, normalize_actions=False)
    policy = load_policy(policy_path)
    obs, _ = env.reset(seed=seed)
    data = env.unwrapped.data
    qpos, qvel = data.qpos.tolist(), data.qvel.tolist()  # for reach, qpos ends with the target's x, y
    observations, actions, rewards = [], [], []
    done, info = False, {}
    while not done:
        action = policy(obs)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        done = terminated or truncated
    goal = env.unwrapped.goal.tolist() if hasattr(env.unwrapped, "goal") else None
    obj = env.unwrapped.object_params() if hasattr(env.unwrapped, "object_params") else None
    env.close()
    return Episode(qpos, qvel, np.array(observations), np.array(actions), np.array(rewards), goal,
                   info.get("is_success"), obj)


def recorded_episodes(record_path: Path) -> list[Episode]:
    record = json.loads(record_path.read_text())
    return [Episode(e["qpos"], e["qvel"], np.array(e["observations"], dtype=np.float64),
                    np.array(e["actions"], dtype=np.float64), np.array(e["rewards"], dtype=np.float64))
            for e in record["episodes"]]


@pytest.mark.parametrize("task, policy, seeds", PARITY_CASES, ids=[case[1] for case in PARITY_CASES])
def test_runtime_reproduces_python_episodes(runtime: Path, policies: dict[str, Path], task: str, policy: str,
                                            seeds: list[int], tmp_path: Path) -> None:
    expected = [python_episode(task, policies[policy], seed, policy) for seed in seeds]
    states = tmp_path / "initial_states.json"
    states.write_text(json.dumps([e.initial_state() for e in expected]))
    record = tmp_path / "record.json"

    result = run_runtime(runtime, "--policy", policies[policy], "--task", task, "--initial-states", states,
                         "--record", record, "--json")

    assert result.returncode == 0, result.stderr
    summary = last_json_line(result.stdout)
    assert summary["format"] == ("pt2" if policy.endswith("-pt2") else "pt")
    assert summary["episodes"] == len(expected)
    assert summary["latency_us_p50"] > 0 and summary["latency_us_p99"] >= summary["latency_us_p50"]
    assert summary["unsafe_actions"] == 0
    horizon = load_card(task).horizon
    got = recorded_episodes(record)
    if policy == "pendulum-balancing":
        assert all(len(episode.actions) == horizon for episode in expected), "the controller should balance"
    if policy == "panda-grasp-hidden-size":  # the card told the runtime to hide the size, as Python did
        card = json.loads(policies[policy].with_suffix(".json").read_text())
        assert "object_size_hidden" in [block["name"] for block in card["observation_layout"]]
        assert all(np.all(e.observations[:, 13:16] == 0.0) for e in expected)
    elif policy == "panda-grasp-observed-size":  # the size reaches the policy in both
        assert all(np.all(e.observations[:, 13] > 0.0) for e in expected)
    elif policy in VARIANTS:  # the card told the runtime how this policy acts and is scored
        card = json.loads(policies[policy].with_suffix(".json").read_text())
        assert (card["control"]["mode"], card["reward"]["type"]) == ("joint", "dense")
        assert summary["returns"][0] != round(summary["returns"][0]), "a dense return is not a whole number"
    if policy == "panda-grasp-at-the-object":  # lift tests ran, some of them held
        assert all(e.rewards[-1] != -0.05 or len(e.rewards) < horizon for e in expected)
        assert any(e.rewards[-1] > 0.5 for e in expected) and any(e.rewards[-1] < 0 for e in expected)
    if policy == "panda-push-into-cube":  # the cube moved: parity held through contacts
        assert all(np.abs(e.observations[-1, 15:17] - e.observations[0, 15:17]).max() > 0.01 for e in expected)
    for seed, want, have, cpp_return in zip(seeds, expected, got, summary["returns"], strict=True):
        assert len(have.actions) == len(want.actions) <= horizon, f"seed {seed}: episode lengths differ"
        assert np.ptp(want.actions, axis=0).max() > 0, "policy is constant; parity would prove little"
        action_diff = np.abs(have.actions - want.actions).max()
        assert action_diff <= ACTION_TOLERANCE, f"seed {seed}: max |action diff| {action_diff:.3g}"
        assert np.abs(have.observations - want.observations).max() <= 1e-6, f"seed {seed}: observations differ"
        assert abs(cpp_return - want.rewards.sum()) <= RETURN_TOLERANCE, f"seed {seed}: returns differ"
        np.testing.assert_allclose(have.rewards, want.rewards, atol=1e-6)


@pytest.mark.parametrize("task", sorted(SHIPPED_PANDA_POLICIES))
def test_shipped_panda_policies_succeed_in_the_runtime_as_in_python(runtime: Path, task: str,
                                                                    tmp_path: Path) -> None:
    """The deployed cube and grasp policies do their job through the C++ IK and contacts: the runtime's success rate
    equals Python's episode by episode (same initial states), and it is the trained policy's, not a chance one."""
    seeds = range(10)
    expected = [python_episode(task, SHIPPED_PANDA_POLICIES[task], seed) for seed in seeds]
    states = tmp_path / "initial_states.json"
    states.write_text(json.dumps([e.initial_state() for e in expected]))
    record = tmp_path / "record.json"
    result = run_runtime(runtime, "--policy", SHIPPED_PANDA_POLICIES[task], "--task", task, "--initial-states",
                         states, "--record", record, "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json_line(result.stdout)
    python_successes = [bool(e.success) for e in expected]
    # the cube tasks' sparse reward is 0 at the goal; panda-grasp's last step adds +1 for a held lift
    runtime_successes = [bool(e.rewards[-1] > 0.5 if task == "panda-grasp" else e.rewards[-1] == 0.0)
                         for e in recorded_episodes(record)]
    assert runtime_successes == python_successes
    assert summary["success_rate"] == pytest.approx(np.mean(python_successes))
    assert summary["success_rate"] >= 0.7, f"shipped {task} policy succeeded in {summary['success_rate']:.0%}"
    assert f"success {sum(python_successes)} of 10 episodes" in result.stdout


def test_reset_noise_from_the_cpp_rng_is_seeded_and_in_range(runtime: Path, tmp_path: Path) -> None:
    records = []
    for name in ("a", "b"):
        record = tmp_path / f"{name}.json"
        result = run_runtime(runtime, "--policy", SHIPPED_REACH_POLICY, "--task", "reach", "--episodes", "3",
                             "--seed", "7", "--record", record)
        assert result.returncode == 0, result.stderr
        records.append(recorded_episodes(record))
    assert [e.qpos for e in records[0]] == [e.qpos for e in records[1]], "same seed, different initial states"
    assert records[0][0].qpos != records[0][1].qpos, "episodes must start from different states"
    env = make_env("reach")
    init_qpos, init_qvel = env.unwrapped.init_qpos, env.unwrapped.init_qvel
    env.close()
    for episode in records[0]:
        qpos, qvel = np.array(episode.qpos), np.array(episode.qvel)
        assert np.all(np.abs(qpos[:2] - init_qpos[:2]) <= 0.1)
        assert np.linalg.norm(qpos[2:]) < 0.2  # the target, rejection-sampled inside the 0.2 m disc
        assert np.all(np.abs(qvel[:2] - init_qvel[:2]) <= 0.005) and np.all(qvel[2:] == 0)


def test_policy_for_another_observation_width_is_a_clear_error(runtime: Path, tmp_path: Path) -> None:
    cardless = tmp_path / "reach-policy.pt"  # without its card, so only the width check can catch it
    shutil.copy(SHIPPED_REACH_POLICY, cardless)
    result = run_runtime(runtime, "--policy", cardless, "--task", "pendulum")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "width 4" in result.stderr and "expected observation of shape [10]" in result.stderr


def test_card_horizon_is_followed_and_another_frame_skip_refused(runtime: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.pt"
    shutil.copy(SHIPPED_REACH_POLICY, policy)
    card = json.loads(SHIPPED_REACH_POLICY.with_suffix(".json").read_text())
    record = tmp_path / "record.json"
    policy.with_suffix(".json").write_text(json.dumps({**card, "horizon": 20, "frame_skip": 2}))
    result = run_runtime(runtime, "--policy", policy, "--task", "reach", "--episodes", "2", "--record", record)
    assert result.returncode == 0, result.stderr
    assert [len(episode.actions) for episode in recorded_episodes(record)] == [20, 20]

    policy.with_suffix(".json").write_text(json.dumps({**card, "frame_skip": 3}))
    result = run_runtime(runtime, "--policy", policy, "--task", "reach")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "trained with frame_skip 3" in result.stderr and "steps 2" in result.stderr


def test_pt2_policy_for_another_observation_width_is_a_one_line_error(runtime: Path, policies: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    cardless = tmp_path / "cheetah-policy.pt2"
    shutil.copy(policies["cheetah-sac-pt2"], cardless)
    result = run_runtime(runtime, "--policy", cardless, "--task", "pendulum")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "width 4" in result.stderr and "expected: 17, but got: 4" in result.stderr


def test_format_flag_overrides_the_extension(runtime: Path, policies: dict[str, Path], tmp_path: Path) -> None:
    renamed = tmp_path / "cheetah-package.bin"
    shutil.copy(policies["cheetah-sac-pt2"], renamed)
    result = run_runtime(runtime, "--policy", renamed, "--format", "pt2", "--task", "cheetah", "--episodes", "1",
                         "--json")
    assert result.returncode == 0, result.stderr
    assert last_json_line(result.stdout)["format"] == "pt2"
    result = run_runtime(runtime, "--policy", policies["cheetah-sac"], "--format", "pt2", "--task", "cheetah")
    assert result.returncode == 2 and "not an AOTInductor package" in result.stderr


@pytest.mark.parametrize("task, policy, section, message", [
    ("panda-reach", "panda-reach-sac", {"control": {"mode": "torque"}},
     "task 'panda-reach' has no control mode 'torque' in this runtime; it runs ee, joint"),
    ("panda-reach", "panda-reach-sac", {"reward": {"type": "shaped"}},
     "task 'panda-reach' has no reward type 'shaped' in this runtime; it scores sparse, dense"),
    ("reach", "reach-sac", {"control": {"mode": "joint"}}, "task 'reach' has no control mode 'joint'"),
    ("panda-reach", "panda-reach-sac", {"observation_layout": [{"name": "object_size_hidden", "slice": [0, 3]}]},
     "task 'panda-reach' has no hidden object size in this runtime; only panda-grasp does"),
])
def test_a_card_control_or_reward_the_runtime_lacks_is_a_one_line_error(runtime: Path, policies: dict[str, Path],
                                                                        task: str, policy: str, section: dict,
                                                                        message: str, tmp_path: Path) -> None:
    source = policies[policy]
    copy = tmp_path / source.name
    for suffix in (".pt", ".mjb"):
        if source.with_suffix(suffix).exists():
            shutil.copy(source.with_suffix(suffix), copy.with_suffix(suffix))
    card = json.loads(source.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**card, **section}))
    result = run_runtime(runtime, "--policy", copy, "--task", task, "--episodes", "1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_policy_whose_card_names_another_task_is_refused(runtime: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.pt"
    shutil.copy(SHIPPED_REACH_POLICY, policy)
    card = json.loads(SHIPPED_REACH_POLICY.with_suffix(".json").read_text())
    policy.with_suffix(".json").write_text(json.dumps({**card, "task": "push"}))
    result = run_runtime(runtime, "--policy", policy, "--task", "reach")
    assert result.returncode == 2
    assert "was trained on task 'push'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--policy", "missing.pt", "--task", "reach"], "policy file not found: missing.pt"),
    (["--policy", SHIPPED_REACH_POLICY, "--task", "walk"], "unknown task 'walk'; known tasks: pendulum, reach"),
    (["--policy", SHIPPED_REACH_POLICY, "--task", "reach", "--initial-states", "missing.json"], "missing.json"),
    (["--policy", SHIPPED_REACH_POLICY, "--task", "reach", "--episodes", "0"], "--episodes needs an integer"),
    (["--policy", SHIPPED_REACH_POLICY, "--task", "reach", "--model", "missing-dir/reacher.xml"],
     "MuJoCo model not found"),
    (["--policy", ROOT / "README.md", "--task", "reach"], "not a TorchScript file"),
    (["--task", "reach"], "--policy FILE is required"),
    (["--policy", SHIPPED_REACH_POLICY, "--task", "reach", "--format", "onnx"], "--format must be pt or pt2"),
])
def test_bad_input_exits_nonzero_with_one_line(runtime: Path, args: list, message: str) -> None:
    result = run_runtime(runtime, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_initial_state_of_the_wrong_size_is_rejected(runtime: Path, tmp_path: Path) -> None:
    states = tmp_path / "states.json"
    states.write_text(json.dumps([{"qpos": [0.0, 0.0], "qvel": [0.0, 0.0, 0.0, 0.0]}]))
    result = run_runtime(runtime, "--policy", SHIPPED_REACH_POLICY, "--task", "reach", "--initial-states", states)
    assert result.returncode == 2
    assert "has 2 qpos / 4 qvel values; the model has nq=4, nv=4" in result.stderr


def asymmetric_reacher(tmp_path: Path) -> tuple[Path, list[float], list[float]]:
    """reacher.xml with bounds whose midpoint is not zero, so 'midpoint' and 'zero action' differ."""
    env = make_env("reach")
    source = Path(env.unwrapped.fullpath).read_text()
    env.close()
    low, high = [-1.0, -0.5], [1.0, 1.5]
    edited = source.replace('ctrlrange="-1.0 1.0" gear="200.0" joint="joint1"',
                            'ctrlrange="-0.5 1.5" gear="200.0" joint="joint1"')
    assert edited != source
    path = tmp_path / "reacher.xml"
    path.write_text(edited)
    return path, low, high


def test_nonfinite_observation_gives_the_midpoint_never_nan(runtime: Path, policies: dict[str, Path],
                                                             tmp_path: Path) -> None:
    model, low, high = asymmetric_reacher(tmp_path)
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2), torch.nn.Tanh())
    deployed = DeployedPolicy(network, torch.zeros(10), torch.ones(10), math.inf, torch.tensor(low),
                              torch.tensor(high))
    path = tmp_path / "asymmetric.pt"
    torch.jit.save(torch.jit.freeze(torch.jit.script(deployed.eval())), str(path))
    midpoint = [0.0, 0.5]
    with torch.no_grad():  # what the exported module guarantees in Python
        assert torch.jit.load(str(path))(torch.full([10], math.nan)).tolist() == midpoint

    result = run_runtime(runtime, "--policy", path, "--task", "reach", "--model", model, "--probe-nonfinite")

    assert result.returncode == 0, result.stderr
    probe = last_json_line(result.stdout)
    assert probe["ok"] and probe["midpoint"] == midpoint
    for case in probe["probes"]:
        assert case["policy_action"] == midpoint and case["applied_action"] == midpoint, case
    for task, policy, _ in PARITY_CASES:  # and the exported policies behave the same from C++
        result = run_runtime(runtime, "--policy", policies[policy], "--task", task, "--probe-nonfinite")
        assert result.returncode == 0, result.stderr
        assert last_json_line(result.stdout)["ok"]


class NaNPolicy(torch.nn.Module):
    """A policy without the exported module's guard: every action is NaN."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full([2], float("nan")) + obs[:2] * 0.0


def test_runtime_guard_replaces_nan_actions_with_the_midpoint(runtime: Path, tmp_path: Path) -> None:
    model, _, _ = asymmetric_reacher(tmp_path)
    path = tmp_path / "nan.pt"
    torch.jit.save(torch.jit.script(NaNPolicy()), str(path))
    record = tmp_path / "record.json"

    result = run_runtime(runtime, "--policy", path, "--task", "reach", "--model", model, "--episodes", "1",
                         "--record", record, "--json")

    assert result.returncode == 0, result.stderr
    summary = last_json_line(result.stdout)
    assert summary["unsafe_actions"] == 50 and math.isfinite(summary["mean_return"])
    actions = recorded_episodes(record)[0].actions
    assert actions.shape == (50, 2) and np.all(actions == [0.0, 0.5])


def test_a_panda_scene_or_goal_that_is_missing_is_a_one_line_error(runtime: Path, policies: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    exported = policies["panda-reach-sac"]
    states = tmp_path / "states.json"
    episode = python_episode("panda-reach", exported, 0)
    states.write_text(json.dumps([{"qpos": episode.qpos, "qvel": episode.qvel}]))
    result = run_runtime(runtime, "--policy", exported, "--task", "panda-reach", "--initial-states", states)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert 'needs "goal"' in result.stderr

    lonely = tmp_path / "alone" / "panda.pt"  # the policy without its card and scene
    lonely.parent.mkdir()
    shutil.copy(exported, lonely)
    result = run_runtime(runtime, "--policy", lonely, "--task", "panda-reach")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "loads its scene from the policy's card" in result.stderr and "--model" in result.stderr

    card = json.loads(exported.with_suffix(".json").read_text())
    scene = exported.with_name(card["scene"]["file"])
    result = run_runtime(runtime, "--policy", lonely, "--task", "panda-reach", "--model", scene, "--episodes", "1",
                         "--json")
    assert result.returncode == 0, result.stderr
    assert last_json_line(result.stdout)["episodes"] == 1


def test_panda_grasp_draws_its_objects_from_the_cpp_rng_and_needs_them_in_initial_states(
        runtime: Path, policies: dict[str, Path], tmp_path: Path) -> None:
    """RNG resets put a training object at rest in the bin (seeded); an initial state must name its object."""
    policy = policies["panda-grasp-at-the-object"]
    observed = tmp_path / "observed-size.pt"  # the same policy with a card that lets the runtime observe the size
    shutil.copy(policy, observed)
    shutil.copy(policy.with_suffix(".mjb"), observed.with_suffix(".mjb"))
    card = json.loads(policy.with_suffix(".json").read_text())
    card.pop("observation_layout", None)
    card["scene"] = {"file": observed.with_suffix(".mjb").name}
    observed.with_suffix(".json").write_text(json.dumps(card))
    records = []
    for name in ("a", "b"):
        record = tmp_path / f"{name}.json"
        result = run_runtime(runtime, "--policy", observed, "--task", "panda-grasp", "--episodes", "6", "--seed", "3",
                             "--record", record, "--json")
        assert result.returncode == 0, result.stderr
        records.append(recorded_episodes(record))
    summary = last_json_line(result.stdout)
    assert 0.0 <= summary["success_rate"] <= 1.0 and "success" in result.stdout
    assert [e.observations[0].tolist() for e in records[0]] == [e.observations[0].tolist() for e in records[1]]
    first = np.stack([e.observations[0] for e in records[0]])
    objects = np.stack([e.qpos[-7:-4] for e in records[0]])
    assert np.all(np.abs(objects[:, :2] - [0.5, 0.0]) <= 0.1) and np.all(objects[:, 2] > 0.0)
    assert len({tuple(row) for row in first[:, 13:21].round(9)}) == 6  # a new object (shape, size) every episode
    assert np.all(first[:, -1] == 1.0) and np.all(first[:, 16:21].sum(axis=1) == 1.0)

    episode = python_episode("panda-grasp", policy, 0)
    states = tmp_path / "states.json"
    states.write_text(json.dumps([{"qpos": episode.qpos, "qvel": episode.qvel}]))
    result = run_runtime(runtime, "--policy", policy, "--task", "panda-grasp", "--initial-states", states)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert 'needs "object"' in result.stderr
