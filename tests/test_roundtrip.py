"""Round trips: save/load, resume N -> 2N == uninterrupted 2N, export parity in a robotrl-free process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from robotrl import DDPG, NAF, SAC, TD3, QTOpt, RobotrlError, load_policy
from robotrl.export import compare_actions
from robotrl.run import build_run, load_run, save_run, train

SMALL = dict(warmup_steps=150, batch_size=32, eval_every=0, eval_episodes=2, actor_hidden=[32, 32],
             critic_hidden=[32, 32], buffer_size=10_000, updates_per_step=1.0)


def small(algo: str) -> dict:
    """SMALL in the algorithm's own keys (NAF and QT-Opt have one network: `hidden`)."""
    if algo not in ("naf", "qtopt"):
        return SMALL
    return {**{k: v for k, v in SMALL.items() if not k.endswith("_hidden")}, "hidden": [32, 32]}


def _observations(task: str, n: int = 64) -> np.ndarray:
    from robotrl import make_env

    env = make_env(task)
    obs, _ = env.reset(seed=5)
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    return np.asarray(rows, dtype=np.float32)


TRAINERS = {"ddpg": DDPG, "td3": TD3, "sac": SAC, "naf": NAF, "qtopt": QTOpt}


@pytest.mark.parametrize("algo", TRAINERS)
def test_save_load_gives_identical_actions(tmp_path, algo):
    agent = TRAINERS[algo]("reach", seed=0, normalize_obs=True, **small(algo)).learn(400)
    path = agent.save(tmp_path / "agent.pt")
    loaded = TRAINERS[algo].load(path)
    obs = _observations("reach")
    assert np.array_equal(agent.predict(obs), loaded.predict(obs))
    target = {"naf": "target_net", "qtopt": "target_q2"}.get(algo, "target_critic")
    for (k, a), (_, b) in zip(agent.run.agent.state_dict()[target].items(),
                              loaded.run.agent.state_dict()[target].items(), strict=True):
        assert torch.equal(a, b), k


def _state_tensors(run) -> dict[str, torch.Tensor]:
    sd = run.agent.state_dict()
    out = {}
    for net in ("actor", "critic", "target_actor", "target_critic", "log_alpha", "net", "target_net", "target_q1",
                "target_q2"):
        if isinstance(sd.get(net), dict):
            out.update({f"{net}.{k}": v for k, v in sd[net].items()})
        elif net in sd:
            out[net] = sd[net]
    out["normalizer.mean"] = run.normalizer.mean
    out["replay.obs"] = torch.from_numpy(run.buffer.obs[: len(run.buffer)])
    out["replay.action"] = torch.from_numpy(run.buffer.action[: len(run.buffer)])
    if "noise" in sd:
        out["noise"] = torch.as_tensor(sd["noise"].get("state", torch.zeros(0)))
    return out


@pytest.mark.parametrize("algo, noise", [("ddpg", "ou"), ("td3", "gaussian"), ("sac", None), ("naf", "ou"),
                                         ("naf", "naf_p"), ("qtopt", None)])
def test_resume_from_n_to_2n_equals_uninterrupted_2n(tmp_path, algo, noise):
    # pendulum episodes end by termination at irregular times; N is chosen so that it falls mid-episode.
    # keep_best with evaluations before and after N: the best snapshot must survive the resume too.
    cfg = dict(small(algo), normalize_obs=True, keep_best=True, eval_every=170,
               **({"noise": noise} if noise else {}))
    half = build_run("pendulum", algo, seed=3, overrides=cfg, run_dir=tmp_path / "half")
    train(half, 300, progress=False)
    if half.episode_len == 0:
        train(half, 301, progress=False)
    assert half.episode_len > 0
    n = half.step
    resumed = load_run(tmp_path / "half" / "checkpoints" / "last.pt", run_dir=tmp_path / "half")
    train(resumed, 2 * n, progress=False)

    full = build_run("pendulum", algo, seed=3, overrides=cfg, run_dir=tmp_path / "full")
    train(full, 2 * n, progress=False)

    a, b = _state_tensors(full), _state_tensors(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert full.episodes == resumed.episodes and full.step == resumed.step == 2 * n
    assert full.last_eval.returns == resumed.last_eval.returns
    assert full.best["step"] == resumed.best["step"]
    for key, value in full.best["policy"].items():
        assert torch.equal(value, resumed.best["policy"][key]), key


def test_checkpoint_written_atomically_keeps_previous_on_failure(tmp_path, monkeypatch):
    run = build_run("reach", "ddpg", seed=0, overrides=SMALL, run_dir=tmp_path)
    train(run, 200, progress=False)
    ckpt = tmp_path / "checkpoints" / "last.pt"
    before = ckpt.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    try:
        save_run(run)
    except OSError:
        pass
    assert ckpt.read_bytes() == before
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


# Loads every exported format the way a deployment would, in a process that never imports robotrl.
LOAD_ALL_FORMATS = """
import json, sys
import numpy as np, onnxruntime, torch, torch._inductor
pt, pt2, onnx, obs_file = sys.argv[1:]
obs = torch.from_numpy(np.load(obs_file))
m = torch.jit.load(pt)
session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
print(json.dumps({
    "robotrl_loaded": any(k.startswith("robotrl") for k in sys.modules),
    "pt": m(obs).tolist(), "pt_single": m(obs[0]).tolist(),
    "pt2": torch._inductor.aoti_load_package(pt2)(obs).tolist(),
    "onnx": session.run(None, {"obs": obs.numpy()})[0].tolist(),
}))
"""


@pytest.mark.parametrize("algo", TRAINERS)
def test_exported_policy_matches_agent_in_a_process_without_robotrl(tmp_path, algo):
    agent = TRAINERS[algo]("reach", seed=1, normalize_obs=True, **small(algo)).learn(400)
    out = tmp_path / "policies" / f"reach-{algo}.pt"
    result = agent.export(out, formats="pt,pt2,onnx")
    assert set(result.files) == {"pt", "pt2", "onnx"}
    assert all(diff <= 1e-5 for diff in result.max_abs_diffs.values())
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["task"] == "reach" and card["algorithm"] == algo and card["observation_shape"] == [10]
    assert card["action_low"] == [-1.0, -1.0] and card["training_steps"] == 400
    assert card["torch_version"] == torch.__version__
    assert (card["env_id"], card["horizon"], card["frame_skip"]) == ("Reacher-v5", 50, 2)
    assert {fmt: entry["file"] for fmt, entry in card["files"].items()} == {
        "pt": f"reach-{algo}.pt", "pt2": f"reach-{algo}.pt2", "onnx": f"reach-{algo}.onnx"}

    obs = _observations("reach")
    np.save(tmp_path / "obs.npy", obs)
    proc = subprocess.run([sys.executable, "-c", LOAD_ALL_FORMATS, str(out), str(out.with_suffix(".pt2")),
                           str(out.with_suffix(".onnx")), str(tmp_path / "obs.npy")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert payload["robotrl_loaded"] is False
    expected = agent.predict(obs)
    # QT-Opt's CEM is an argmax: ONNX Runtime's or AOTInductor's rounding may flip a choice between two actions
    # whose Q values tie to ~1e-6, and only such rows (decision margin <= CEM_TIE_TOLERANCE) are excused.
    policy, rows = agent.policy(), torch.as_tensor(obs)
    for fmt, got, n in [("pt", payload["pt"], None), ("pt2", payload["pt2"], None), ("onnx", payload["onnx"], None),
                        ("pt_single", [payload["pt_single"]], 1)]:
        diff, near_ties = compare_actions(policy, rows[:n], torch.as_tensor(expected[:n]), torch.tensor(got))
        assert diff <= 1e-5 and near_ties <= (len(obs) // 8 if algo == "qtopt" else 0), (fmt, diff, near_ties)


GUARDS_OF_PT2_AND_ONNX = """
import json, sys
import numpy as np, onnxruntime, torch, torch._inductor
pt2 = torch._inductor.aoti_load_package(sys.argv[1])
session = onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
runners = {"pt2": lambda x: pt2(torch.from_numpy(x)).numpy(), "onnx": lambda x: session.run(None, {"obs": x})[0]}
rows = np.array([[0.0, np.nan, 0.0, 0.0], [np.inf, 0.0, 0.0, 0.0], [1e30] * 4], dtype=np.float32)
result = {}
for fmt, run in runners.items():
    result[fmt] = {"actions": run(rows).tolist()}
    try:
        run(np.zeros((1, 5), dtype=np.float32))
        result[fmt]["wrong_width"] = "accepted"
    except Exception as exc:
        result[fmt]["wrong_width"] = str(exc)
print(json.dumps(result))
"""


def test_exported_policy_guards_shape_and_non_finite_input(tmp_path):
    agent = DDPG("pendulum", seed=0, **SMALL).learn(200)
    out = tmp_path / "p.pt"
    agent.export(out, formats="pt,pt2,onnx")
    policy = load_policy(out)
    assert policy.card["task"] == "pendulum"
    bad = np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(policy(bad), [0.0])  # midpoint of [-3, 3]
    np.testing.assert_array_equal(policy(np.array([np.inf, 0, 0, 0], dtype=np.float32)), [0.0])
    huge = np.full(4, 1e30, dtype=np.float32)
    assert -3.0 <= policy(huge)[0] <= 3.0
    with pytest.raises(Exception, match=r"expected observation of shape \[4\]"):
        policy(np.zeros(5, dtype=np.float32))  # TorchScript surfaces the module's ValueError as a RuntimeError

    # .pt2 checks its input only when AOTI_RUNTIME_CHECK_INPUTS=1 (what tools/runtime sets); ONNX Runtime always.
    proc = subprocess.run([sys.executable, "-c", GUARDS_OF_PT2_AND_ONNX, str(out.with_suffix(".pt2")),
                           str(out.with_suffix(".onnx"))], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "AOTI_RUNTIME_CHECK_INPUTS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for fmt in ("pt2", "onnx"):
        actions = np.array(result[fmt]["actions"])
        np.testing.assert_array_equal(actions[:2], [[0.0], [0.0]], err_msg=fmt)  # NaN, inf -> midpoint
        assert -3.0 <= actions[2, 0] <= 3.0, fmt
        assert result[fmt]["wrong_width"] != "accepted", fmt
    assert "expected: 4" in result["pt2"]["wrong_width"] and "Expected: 4" in result["onnx"]["wrong_width"]


def test_a_format_that_cannot_be_written_leaves_every_file_as_it_was(tmp_path, monkeypatch):
    import torch._inductor

    agent = DDPG("pendulum", seed=0, **SMALL).learn(200)
    out = tmp_path / "p.pt"
    previous = {out: b"previous pt", out.with_suffix(".json"): b"previous card"}
    for path, data in previous.items():
        path.write_bytes(data)

    def no_compiler(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    with pytest.raises(RobotrlError, match=r"cannot write the \.pt2 .*No working C\+\+ compiler.*--format pt"):
        agent.export(out, formats="pt,pt2")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if robotrl[onnx] were not installed
    with pytest.raises(RobotrlError, match=r"needs the onnx extra .*pip install 'robotrl\[onnx\]'"):
        agent.export(out, formats="pt,onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.pt"]  # no .pt2, no temporaries
    assert {path: path.read_bytes() for path in previous} == previous


def test_load_policy_accepts_run_dir_and_checkpoint(tmp_path):
    run = build_run("pendulum", "ddpg", seed=0, overrides=SMALL, run_dir=tmp_path / "run")
    train(run, 200, progress=False)
    obs = _observations("pendulum", 8)
    from_dir = load_policy(tmp_path / "run")(obs)
    from_ckpt = load_policy(tmp_path / "run" / "checkpoints" / "last.pt")(obs)
    assert np.array_equal(from_dir, from_ckpt)


def test_keep_best_deploys_the_best_evaluated_policy_everywhere(tmp_path):
    cfg = dict(SMALL, eval_every=100, eval_episodes=2, keep_best=True)
    run = build_run("pendulum", "ddpg", seed=4, overrides=cfg, run_dir=tmp_path / "run")
    result = train(run, 600, progress=False)
    evals = [row["eval_mean_return"] for row in run.progress_rows]
    best_index = max(i for i, r in enumerate(evals) if r == max(evals))  # ties go to the later policy
    assert run.best["step"] == run.progress_rows[best_index]["step"] == result["policy_step"]
    assert run.best["eval"]["mean_return"] == max(evals) and run.best["eval"]["block"] == "selection"
    # what train reports is the chosen policy on the report block, not the selection figure that chose it
    from robotrl.config import eval_seed_base
    from robotrl.run import evaluate_run

    report = evaluate_run(run, 2)
    assert result["eval_mean_return"] == report.mean_return and result["eval_block"] == "report"
    assert result["eval_seed"] == report.seed == eval_seed_base(4, "report") != run.best["eval"]["seed"]

    obs = torch.from_numpy(_observations("pendulum", 16))
    from robotrl.run import run_policy

    with torch.no_grad():
        deployed, latest = run_policy(run)(obs), run_policy(run, current=True)(obs)
    if run.best["step"] != run.step:
        assert not torch.equal(deployed, latest)
    assert torch.equal(load_policy(tmp_path / "run").module(obs), deployed)  # checkpoint -> best snapshot
    resumed = load_run(tmp_path / "run" / "checkpoints" / "last.pt")
    with torch.no_grad():
        assert torch.equal(run_policy(resumed)(obs), deployed)
    out = tmp_path / "best.pt"
    from robotrl.export import export_checkpoint

    export_checkpoint(tmp_path / "run", out)
    assert json.loads(out.with_suffix(".json").read_text())["policy_step"] == run.best["step"]
    np.testing.assert_allclose(load_policy(out)(obs.numpy()), deployed.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("by, kept", [("return", [0]), ("success", [0, 1, 3])])
def test_keep_best_ranks_by_return_or_by_success_with_return_breaking_ties(tmp_path, by, kept):
    """panda-grasp's case: giving up at once (return -0.05, 0% success) out-returns a policy that lifts 34% of the
    time (return ~-0.5); keep_best_by: success keeps the second, and among equal success rates the higher return."""
    from robotrl.evaluate import EvalResult
    from robotrl.run import _keep_if_best

    run = build_run("grasp", "qtopt", seed=0, overrides=dict(small("qtopt"), keep_best=True, keep_best_by=by))
    kept_steps = []
    for step, (ret, success) in enumerate([(-0.05, 0.0), (-0.5, 0.34), (-0.6, 0.34), (-0.4, 0.34), (-0.3, 0.2)]):
        run.step = step
        _keep_if_best(run, EvalResult(ret, 0.1, success, 2, [ret, ret], block="selection"), candidate=True)
        if run.best["step"] == step:
            kept_steps.append(step)
    assert kept_steps == kept and run.best["step"] == kept[-1]


def test_keep_best_by_success_on_a_task_without_success_is_a_one_line_error(tmp_path):
    run = build_run("pendulum", "ddpg", seed=0, overrides=dict(SMALL, keep_best=True, keep_best_by="success",
                                                               eval_every=100))
    with pytest.raises(RobotrlError, match="keep_best_by: success needs a task with a success criterion") as info:
        train(run, 200, progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(RobotrlError, match="must be one of 'return', 'success'"):
        build_run("pendulum", "ddpg", overrides={"keep_best_by": "length"})


def test_deployed_normalisation_keeps_precision_for_near_constant_observations():
    """A near-constant observation gets inv_std ~1e4 (the std floor). Normalising as (x - mean) * inv_std keeps
    full precision; x * inv_std - mean * inv_std cancels two ~5e3 products and loses ~1e-4 in the action."""
    from robotrl.export import script_policy
    from robotrl.nets import DeployedPolicy

    mean = torch.tensor([0.5123, -3.7, 12.25])
    inv_std = torch.tensor([1e4, 1e4, 1e4])
    deployed = DeployedPolicy(torch.nn.Tanh(), mean, inv_std, 10.0, -torch.ones(3), torch.ones(3)).eval()
    deltas = torch.linspace(-2e-4, 2e-4, 101).unsqueeze(1) * torch.tensor([1.0, -0.7, 0.3])
    obs = mean + deltas
    reference = np.tanh(((obs.double() - mean.double()) * inv_std.double()).clamp(-10, 10).numpy())
    with torch.no_grad():
        for policy in (deployed, script_policy(deployed)):
            np.testing.assert_allclose(policy(obs).numpy(), reference, atol=1e-6, rtol=0)


def test_load_policy_reports_a_wrong_width_the_same_way_for_every_format():
    """The shipped reach policy in all three formats: equal actions, and one plain ValueError for a wrong width."""
    from pathlib import Path

    policies = Path(__file__).resolve().parents[1] / "policies"
    obs = _observations("reach", n=16)
    actions = {}
    for suffix in ("pt", "pt2", "onnx"):
        policy = load_policy(policies / f"reach-sac.{suffix}")
        actions[suffix] = policy(obs)
        assert policy(obs[0]).shape == (2,)
        with pytest.raises(ValueError, match=r"^expected observation of shape \[10\] or \[batch, 10\], got \[7\]$"):
            policy(np.zeros(7, dtype=np.float32))
        with pytest.raises(ValueError, match=r"got \[2, 3, 10\]"):
            policy(torch.zeros(2, 3, 10))
    np.testing.assert_allclose(actions["pt2"], actions["pt"], atol=1e-5)
    np.testing.assert_allclose(actions["onnx"], actions["pt"], atol=1e-5)


def test_saving_onto_a_directory_or_with_a_numpy_seed(tmp_path):
    agent = SAC("reach", seed=np.int64(3), **SMALL)  # numpy integers are seeds too
    assert agent.run.seed == 3 and type(agent.run.seed) is int
    with pytest.raises(RobotrlError, match="is a directory; give a file name"):
        agent.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def _user_reacher():
    import gymnasium as gym

    return gym.make("Reacher-v5", reward_control_weight=0.5, max_episode_steps=30)


def test_a_users_gymnasium_env_is_the_mdp_everywhere_train_eval_save_resume_export(tmp_path):
    """A Reacher-v5 made with its own reward weight and a 30-step limit trains, evaluates, saves, resumes and
    exports on that same MDP, never on gymnasium's default Reacher-v5 (weight 0.1, 50 steps)."""
    import gymnasium as gym

    from robotrl.evaluate import evaluate_path, run_episodes
    from robotrl.run import evaluate_run, run_policy

    agent = SAC(_user_reacher(), seed=0, **SMALL).learn(300)
    run = agent.run
    assert run.eval_env.spec.kwargs["reward_control_weight"] == 0.5 and run.eval_env.spec.max_episode_steps == 30
    report = evaluate_run(run, 3)
    by_hand = run_episodes(run_policy(run), _user_reacher(), 3, report.seed)
    default = run_episodes(run_policy(run), gym.make("Reacher-v5"), 3, report.seed)
    assert report.returns == by_hand.returns != default.returns

    loaded = SAC.load(agent.save(tmp_path / "agent.pt"))
    assert loaded.run.env.spec.kwargs["reward_control_weight"] == 0.5 and loaded.run.env.spec.max_episode_steps == 30
    assert evaluate_run(loaded.run, 3).returns == report.returns
    loaded.learn(20)  # resumes on the user's env (a default Reacher-v5 would have a 50-step limit)
    assert loaded.run.episode_len <= 30

    agent.export(tmp_path / "policy.pt", formats="pt")
    card = json.loads((tmp_path / "policy.json").read_text())
    assert card["horizon"] == 30 and json.loads(card["env_spec"])["kwargs"] == {"reward_control_weight": 0.5}
    from_file = evaluate_path(tmp_path / "policy.pt", episodes=3)
    assert from_file.seed == report.seed and from_file.returns == pytest.approx(report.returns, abs=1e-4)


def test_an_env_robotrl_cannot_rebuild_is_a_one_line_error():
    import gymnasium as gym

    class AdHoc(gym.ObservationWrapper):
        def observation(self, observation):
            return observation * 2.0

    with pytest.raises(RobotrlError, match="wrapper AdHoc does not record its constructor arguments") as info:
        SAC(AdHoc(_user_reacher()), seed=0, **SMALL)
    assert "\n" not in str(info.value)
