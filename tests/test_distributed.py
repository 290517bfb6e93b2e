"""robotrl.distributed: Ray collectors feed the run's own learner, replay, evaluation and checkpoints; a collector
that dies is replaced and nothing in replay is lost; bad specs, algorithms and addresses are one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import ray
import torch

from robotrl.algos.common import attribute_state
from robotrl.config import RobotrlError
from robotrl.distributed import DistributedSpec, parse_distributed
from robotrl.distributed.loop import (
    TARGETS_IN_FLIGHT,
    BellmanUpdater,
    Collector,
    collector_seed,
    first_generations,
)
from robotrl.replay import Batch
from robotrl.run import build_run, load_run, save_run, train

pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_the_spec_parses_and_bad_ones_are_one_line_errors():
    assert parse_distributed("collectors=3") == DistributedSpec(collectors=3)
    assert parse_distributed("collectors=2,sync=500,block=50", "10.0.0.1:6379") == DistributedSpec(
        collectors=2, sync=500, block=50, address="10.0.0.1:6379")
    assert parse_distributed("collectors=1,bellman=2,target_sync=50") == DistributedSpec(
        collectors=1, bellman=2, target_sync=50)
    for bad, needle in [("collectors=0", "at least 1"), ("collectors=two", "whole number"), ("sync=5", "required"),
                        ("workers=2", "expected collectors=N"), ("collectors", "expected collectors=N"),
                        ("collectors=2,bellman=0", "at least 1"), ("collectors=2,replay=2", "sharded replay"),
                        ("collectors=2,learner=2", "one learner")]:
        with pytest.raises(RobotrlError, match=needle) as info:
            parse_distributed(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(RobotrlError, match="off-policy algorithms"):
        build_run("pendulum", "ppo", distributed=DistributedSpec(collectors=2))
    with pytest.raises(RobotrlError, match="Bellman updaters compute QT-Opt's CEM targets") as info:
        build_run("reach", "sac", distributed=DistributedSpec(collectors=1, bellman=1))
    assert "\n" not in str(info.value)
    with pytest.raises(RobotrlError, match="has no replay"):
        build_run("pendulum", "a3c", distributed=DistributedSpec(collectors=2, replay=1))
    assert parse_distributed("collectors=2,replay=1") == DistributedSpec(collectors=2, replay=1)


def test_a_bellman_updater_computes_the_learners_target_with_the_targets_it_was_sent():
    run = build_run("grasp", "qtopt", seed=0, overrides={"hidden": [32]})
    learner, n, a = run.agent, run.obs_dim, run.action_dim
    with torch.no_grad():  # target networks unlike a fresh agent's, and Q'_2 unlike Q'_1
        for net in (learner.target_q1, learner.target_q2):
            for p in net.parameters():
                p.add_(torch.randn_like(p))
    threads = torch.get_num_threads()  # an updater sets its process's threads and seed; this test's are restored
    updater = BellmanUpdater("qtopt", n, a, learner.cfg, seed=5)  # in-process: the class Ray runs as an actor
    updater.set_targets(attribute_state(learner, learner.TARGETS), version=17)
    rng = torch.Generator().manual_seed(0)
    batch = Batch(obs=torch.randn(8, n, generator=rng), action=torch.rand(8, a, generator=rng) * 2 - 1,
                  reward=torch.randn(8, generator=rng), next_obs=torch.randn(8, n, generator=rng),
                  terminated=torch.tensor([0.0, 1.0] * 4))
    torch.manual_seed(3)
    y, version = updater.targets(batch)
    torch.manual_seed(3)  # the same CEM noise
    expected = learner.bellman_target(batch)
    assert version == 17
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert torch.equal(y[1::2], batch.reward[1::2])  # terminated: no bootstrap
    stale = BellmanUpdater("qtopt", n, a, learner.cfg, seed=5)
    torch.manual_seed(3)
    assert not torch.allclose(stale.targets(batch)[0], expected)  # its own initial targets differ
    torch.set_num_threads(threads)


def test_collectors_get_their_own_seeds_from_the_run_seed():
    seeds = {collector_seed(7, i, g) for i in range(4) for g in range(3)}
    assert len(seeds) == 12 and collector_seed(7, 1, 0) == collector_seed(7, 1, 0) != collector_seed(8, 1, 0)


def test_resumed_collectors_and_updaters_start_on_seeds_no_earlier_stretch_used(tmp_path):
    run = build_run("reach", "sac", seed=3, overrides=_tiny(), run_dir=tmp_path / "run")
    assert first_generations(run, "collectors", 2) == {0: 0, 1: 0} and first_generations(run, "updaters", 1) == {0: 0}
    run.loop_objects["actor_generations"]["collectors"][1] += 1  # collector 1 was replaced once
    resumed = load_run(save_run(run), run_dir=tmp_path / "run")
    assert first_generations(resumed, "collectors", 3) == {0: 1, 1: 2, 2: 0}  # a third collector: never used
    assert first_generations(resumed, "updaters", 1) == {0: 1}
    assert first_generations(resumed, "collectors", 2) == {0: 2, 1: 3}  # a second start in one process goes on
    fresh = build_run("reach", "sac", seed=3, overrides=_tiny(), run_dir=tmp_path / "other")
    assert first_generations(fresh, "collectors", 1) == {0: 0}


def _kill(handle) -> None:
    """ray.kill, then wait until Ray reports the actor dead: the kill is asynchronous, and until the death is known
    the other actors can finish the whole remaining budget (hundreds of steps take well under a second) before the
    learner sees the error that makes it replace the dead one."""
    ray.kill(handle)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a call can still be answered just after the kill was sent
        try:
            ray.get(handle.__ray_ready__.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)
    raise AssertionError("the actor still answers 60 s after ray.kill")


def _train_until_replaced(run, learner, steps: int, **kwargs):
    """train to `steps`, then on in 100-step stretches (at most 20) until the learner has met the dead actor's error
    and replaced it: ray.wait may hand the learner the live actors' blocks first for a while (seen in CI: the
    other collector's five blocks reached the budget first), so the step at which a death surfaces varies."""
    result = train(run, steps, progress=False, **kwargs)
    for _ in range(20):
        if learner.replaced:
            break
        result = train(run, run.step + 100, progress=False, **kwargs)
    return result


def _tiny(**extra):
    return {"warmup_steps": 200, "batch_size": 32, "eval_every": 0, "eval_episodes": 2, "actor_hidden": [32],
            "critic_hidden": [32], **extra}


def test_a_distributed_run_fills_replay_with_whole_episodes_and_survives_a_killed_collector(local_ray, tmp_path):
    spec = DistributedSpec(collectors=2, sync=100, block=60)
    run = build_run("reach", "sac", seed=3, overrides=_tiny(), run_dir=tmp_path / "run", distributed=spec)
    train(run, 400, progress=False, evaluate_at_end=False)
    learner = run.loop_objects["learner"]
    assert run.step >= 400 and len(run.buffer) == run.step and run.episodes == run.step // 50  # reach: 50 steps
    assert run.buffer.episode_end[:run.step].sum() == run.episodes  # episodes arrive whole, each ends once
    assert run.agent.updates > 0 and learner.version == run.agent.updates
    before = run.buffer.obs[:run.step].copy()
    _kill(learner.handles[0])  # a collector dies mid-run
    result = _train_until_replaced(run, learner, 900)
    assert learner.replaced >= 1 and run.step >= 900 and len(run.buffer) == run.step
    np.testing.assert_array_equal(run.buffer.obs[:len(before)], before)  # nothing already in replay was lost
    assert np.isfinite(result["eval_mean_return"])
    assert "collector_staleness" in run.progress_rows[-1]

    # the checkpoint resumes the learner and replay exactly; new collectors start new episodes
    path = save_run(run)
    resumed = load_run(path, run_dir=tmp_path / "run")
    assert resumed.step == run.step and len(resumed.buffer) == len(run.buffer) and resumed.obs is None
    np.testing.assert_array_equal(resumed.buffer.obs[:run.step], run.buffer.obs[:run.step])
    resumed.distributed = spec
    train(resumed, run.step + 100, progress=False, evaluate_at_end=False)
    assert resumed.step >= run.step + 100
    # the resumed collectors' seeds are their next generation's, none the first stretch used
    assert resumed.loop_objects["learner"].generation == {i: g + 1 for i, g in learner.generation.items()}
    from robotrl.distributed import shutdown

    shutdown(run)
    shutdown(resumed)
    single = load_run(path, run_dir=tmp_path / "run")  # and the single-process loop takes over (resumed's last save)
    start = single.step
    assert start >= run.step + 100
    train(single, start + 50, progress=False, evaluate_at_end=False)
    assert single.step == start + 50 and len(single.buffer) == start + 50


@pytest.mark.parametrize("task, overrides", [("panda-reach", {"her_goals": 4}), ("reach", {"n_step": 3})])
def test_the_replay_actor_samples_as_the_local_replay_does(local_ray, task, overrides):
    """Same construction (hindsight, n-step), same seed, same steps: the same batches, drawn ahead or not."""
    from robotrl import loop as off_policy
    from robotrl.distributed.replay import RemoteReplay, ReplayServer
    from robotrl.envs import make_env

    run = build_run(task, "sac", seed=5, overrides=overrides)
    local = off_policy.make_replay(make_env(run.card), run.obs_dim, run.action_dim, run.loop_cfg, run.algo_cfg,
                                   run.seed, task)
    threads = torch.get_num_threads()  # an in-process collector sets its process's threads; restored below
    horizon = run.card.horizon
    block = Collector(run.card, "sac", run.loop_cfg, run.algo_cfg, seed=6, warmup_steps=10 * horizon,
                      block=3 * horizon).collect()
    torch.set_num_threads(threads)
    handle = ray.remote(ReplayServer).remote(run.card, task, run.loop_cfg, run.algo_cfg, run.seed)
    remote = RemoteReplay(ray, handle, local=None, size=ray.get(handle.add_block.remote(block)))
    local.add_block(block)
    assert len(remote) == len(local) == 3 * horizon
    for _ in range(6):
        ours, theirs = remote.sample(16), local.sample(16)
        for key, value in vars(theirs).items():
            if value is None:
                assert getattr(ours, key) is None
            else:
                torch.testing.assert_close(getattr(ours, key), value, rtol=0, atol=0, msg=key)
    ray.kill(handle)


def test_a_run_with_a_replay_actor_trains_survives_a_killed_collector_and_keeps_its_replay(local_ray, tmp_path):
    from robotrl.distributed import shutdown
    from robotrl.distributed.replay import RemoteReplay

    spec = DistributedSpec(collectors=2, sync=100, block=60, replay=1)
    run = build_run("reach", "sac", seed=3, overrides=_tiny(), run_dir=tmp_path / "run", distributed=spec)
    train(run, 400, progress=False, evaluate_at_end=False)
    learner = run.loop_objects["learner"]
    assert isinstance(run.buffer, RemoteReplay) and len(run.buffer) == run.step >= 400
    assert run.agent.updates > 0 and run.episodes == run.step // 50
    assert float(run.normalizer.count) == run.step + run.episodes  # every reset and every next observation
    before = run.buffer.state_dict()
    assert before["size"] == run.step and before["episode_end"].sum() == run.episodes  # whole episodes
    _kill(learner.handles[0])
    _train_until_replaced(run, learner, 900, evaluate_at_end=False)
    assert learner.replaced >= 1 and len(run.buffer) == run.step >= 900
    path = save_run(run)  # the checkpoint's replay is fetched from the actor
    after = torch.load(path.parent / next(p.name for p in path.parent.glob("replay-*.pt")), weights_only=True)
    assert after["size"] == run.step
    torch.testing.assert_close(after["obs"][:before["size"]], before["obs"], rtol=0, atol=0)  # nothing lost
    shutdown(run)  # the run takes its replay back from the actor
    assert not isinstance(run.buffer, RemoteReplay) and len(run.buffer) == run.step
    np.testing.assert_array_equal(run.buffer.obs[:run.step], after["obs"].numpy())
    resumed = load_run(path, run_dir=tmp_path / "run")  # and resumes onto a new replay actor
    resumed.distributed = spec
    train(resumed, run.step + 100, progress=False, evaluate_at_end=False)
    assert len(resumed.buffer) == resumed.step >= run.step + 100
    shutdown(resumed)


def test_a_learner_actor_that_dies_is_restarted_from_the_last_checkpoint(local_ray, tmp_path):
    import threading
    import time

    from robotrl.distributed.supervisor import train_supervised

    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    build = {"task": "reach", "algo": "sac", "seed": 3, "overrides": {**_tiny(), "checkpoint_every": 300},
             "run_dir": run_dir}
    killed_at = []

    def kill_after_the_first_checkpoint(actor):
        while not last.is_file():
            time.sleep(0.05)
        ray.kill(actor)  # the learner's process dies; its collector goes with it
        killed_at.append(torch.load(last, weights_only=False, map_location="cpu")["step"])

    def on_launch(actor, restarts):
        if restarts == 0:
            threading.Thread(target=kill_after_the_first_checkpoint, args=(actor,), daemon=True).start()

    spec = DistributedSpec(collectors=1, sync=100, block=50, learner=1)
    result = train_supervised(build, spec, 900, on_launch=on_launch)
    assert result["learner_restarts"] == 1 and result["steps"] >= 900 and np.isfinite(result["eval_mean_return"])
    assert 300 <= killed_at[0] < 900
    final = load_run(last, run_dir=run_dir)  # the second learner continued the first one's checkpoint
    assert final.step == result["steps"] and len(final.buffer) == final.step
    assert final.episodes == final.step // 50  # whole episodes: none lost or counted twice across the restart


def test_qtopt_trains_on_bellman_updaters_that_are_replaced_when_one_dies(local_ray, tmp_path):
    spec = DistributedSpec(collectors=1, block=40, bellman=2, target_sync=20)
    overrides = {"warmup_steps": 100, "batch_size": 32, "eval_every": 0, "eval_episodes": 2, "hidden": [32],
                 "updates_per_step": 1.0}
    run = build_run("grasp", "qtopt", seed=2, overrides=overrides, run_dir=tmp_path / "run", distributed=spec)
    train(run, 300, progress=False, evaluate_at_end=False)
    learner = run.loop_objects["learner"]
    assert len(learner.updaters) == 2 and run.agent.updates == run.step - 99  # one update a step from step 99 on
    staleness = run.metrics.means()["target_staleness"]
    assert 0 < staleness <= spec.target_sync + TARGETS_IN_FLIGHT * spec.bellman  # lagged, and bounded
    before = {k: v.clone() for k, v in run.agent.critic.state_dict().items()}
    _kill(learner.updaters[0])  # a Bellman updater dies mid-run
    train(run, 400, progress=False, evaluate_at_end=False)
    assert learner.replaced == 1 and learner.updater_generation == {0: 1, 1: 0}
    assert run.agent.updates == run.step - 99  # no update lost: the dead updater's targets were computed here
    assert any(not torch.equal(before[k], v) for k, v in run.agent.critic.state_dict().items())
    assert all(torch.isfinite(v).all() for v in run.agent.critic.state_dict().values())
    from robotrl.distributed import shutdown

    shutdown(run)


def test_sac_learns_pendulum_from_two_collectors(local_ray):
    """The card's SAC settings (keep_best included, evaluated every 1000 steps) collected by two Ray actors reach the
    single-process test's band (>= 900 on held-out report episodes) at 6000 steps, where that test takes 10 000 (at
    6000, seeds 1, 2 and 3 all reached 1000 in the distributed run)."""
    run = build_run("pendulum", "sac", seed=1, overrides={"eval_every": 1000},
                    distributed=DistributedSpec(collectors=2, sync=250, block=250))
    result = train(run, 6000, progress=False)
    from robotrl.distributed import shutdown

    shutdown(run)
    assert result["steps"] >= 6000 and result["eval_block"] == "report", result
    assert result["eval_mean_return"] >= 900, result


A3C_TINY = {"n_envs": 2, "rollout_steps": 16, "eval_every": 0, "eval_episodes": 2, "hidden": [16]}


def test_an_a3c_workers_gradient_applied_by_the_learner_is_a2cs_update():
    """A3C's update is A2C's, split in two: the worker's gradient on its rollout, applied by the learner."""
    from robotrl.distributed.a3c import Worker
    from robotrl.distributed.loop import _weights

    learner = build_run("pendulum", "a3c", seed=0, overrides=A3C_TINY)
    threads = torch.get_num_threads()  # a worker sets its process's threads and seed; this test's are restored
    worker = Worker(learner.card, learner.loop_cfg, learner.algo_cfg, seed=11)  # in-process: the Ray actor's class
    worker.set_weights(_weights(learner), version=0)
    seen = {}
    gradients = worker.run.agent.gradients

    def spy(rollout):
        seen["rollout"] = type(rollout)(*(v.clone() if isinstance(v, torch.Tensor) else v
                                          for v in vars(rollout).values()))
        return gradients(rollout)

    worker.run.agent.gradients = spy
    result = worker.collect()
    assert result["steps"] == 32 and result["version"] == 0
    assert result["observed"].shape == (2 + 32, learner.obs_dim)  # the reset and every step, for the learner's stats
    a2c = build_run("pendulum", "a2c", seed=0, overrides=A3C_TINY).agent
    for name in ("actor", "critic"):
        getattr(a2c, name).load_state_dict(getattr(learner.agent, name).state_dict())
    a2c.update(seen["rollout"])
    learner.agent.apply([torch.tensor(g) for g in result["grads"]], seen["rollout"].progress)
    for name in ("actor", "critic"):
        for (key, ours), theirs in zip(getattr(learner.agent, name).state_dict().items(),
                                       getattr(a2c, name).state_dict().values(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=f"{name}.{key}")
    assert learner.agent.updates == 1
    torch.set_num_threads(threads)


def test_a3c_workers_update_asynchronously_survive_a_kill_and_resume(local_ray, tmp_path):
    spec = DistributedSpec(collectors=2)
    run = build_run("pendulum", "a3c", seed=1, overrides=A3C_TINY, run_dir=tmp_path / "run", distributed=spec)
    from robotrl.distributed import a3c

    a3c.start(run)
    learner = run.loop_objects["learner"]
    # Both workers up before the first gradient: on a loaded machine one worker's process can otherwise finish
    # all 20 rollouts while the other is still importing torch, and no gradient would be stale.
    ray.get([handle.__ray_ready__.remote() for handle in learner.handles.values()])
    train(run, 640, progress=False, evaluate_at_end=False)
    assert run.step == 32 * run.agent.updates and learner.version == run.agent.updates >= 20  # one per gradient
    staleness = run.metrics.means()["gradient_staleness"]
    assert 0 < staleness <= spec.collectors  # the other worker's gradients land while one computes
    _kill(learner.handles[0])  # a worker dies mid-run
    result = _train_until_replaced(run, learner, 1280)
    assert learner.replaced >= 1 and learner.generation[0] == 1 and run.step == 32 * run.agent.updates >= 1280
    assert np.isfinite(result["eval_mean_return"]) and "gradient_staleness" in run.progress_rows[-1]
    path = save_run(run)
    resumed = load_run(path, run_dir=tmp_path / "run")  # the learner's parameters and shared RMSprop statistics
    assert resumed.obs is None and resumed.agent.updates == run.agent.updates
    for ours, theirs in zip(resumed.agent.optimizer.state_dict()["state"].values(),
                            run.agent.optimizer.state_dict()["state"].values(), strict=True):
        torch.testing.assert_close(ours["square_avg"], theirs["square_avg"], rtol=0, atol=0)
    from robotrl.distributed import shutdown

    shutdown(run)
    resumed.distributed = spec
    train(resumed, run.step + 64, progress=False, evaluate_at_end=False)
    assert resumed.step >= run.step + 64 and resumed.agent.updates == resumed.step // 32
    assert resumed.loop_objects["learner"].generation == {0: 2, 1: 1}  # past every seed the first stretch used
    shutdown(resumed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, needle", [
    (["--distributed", "collectors=2", "--address", f"127.0.0.1:{_free_port()}"], "cannot reach the Ray cluster"),
    (["--distributed", "collectors=2", "--address", "nohostport"], "bad --address"),
    (["--distributed", "workers=2"], "expected collectors=N"),
    (["--address", "127.0.0.1:6379"], "add --distributed collectors=N"),
    (["--distributed", "collectors=2", "--algo", "ppo"], "off-policy algorithms"),
    (["--distributed", "collectors=2", "--algo", "a2c"], "--algo a3c"),
])
def test_bad_distributed_command_lines_are_one_line_errors(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "robotrl.cli", "train", "pendulum", "--steps", "100",
                           "--no-progress", *args], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotrl: error:") and needle in lines[0], proc.stderr


def test_the_python_api_trains_a3c_on_its_workers_and_a_distributed_sac(local_ray, tmp_path):
    from robotrl import A3C, SAC, load_policy

    model = A3C("pendulum", seed=0, **A3C_TINY).learn(128)
    assert model.run.step >= 128 and model.run.agent.updates == model.run.step // 32
    assert len(model.run.loop_objects["learner"].handles) == 2  # the default local workers
    obs = np.random.default_rng(1).normal(size=(4, 4)).astype(np.float32)
    exported = model.export(tmp_path / "a3c.pt", formats="pt")
    np.testing.assert_array_equal(load_policy(exported.path)(obs), model.predict(obs))
    model.close()
    assert "learner" not in model.run.loop_objects
    sac = SAC("reach", seed=1, distributed="collectors=1,replay=1,block=50", **_tiny()).learn(300)
    assert sac.run.step >= 300 and len(sac.run.buffer) == sac.run.step and sac.run.agent.updates > 0
    sac.close()
    assert len(sac.run.buffer) == sac.run.step  # the replay came back from its actor
    for bad, needle in [({"distributed": "collectors=1,learner=1"}, "leave out learner=1"),
                        ({"address": "127.0.0.1:6379"}, "distributed='collectors=N'")]:
        with pytest.raises(RobotrlError, match=needle):
            SAC("reach", **bad)


def test_distributed_without_ray_installed_is_a_one_line_error_that_says_how_to_install_it(tmp_path):
    """`import ray` fails (a None entry in sys.modules makes it raise ImportError, as a missing package does)."""
    hide_ray = ("import sys; sys.modules['ray'] = None; from robotrl.cli import main; "
                "sys.exit(main(['train', 'pendulum', '--algo', 'sac', '--steps', '100', '--no-progress', "
                "'--distributed', 'collectors=1']))")
    proc = subprocess.run([sys.executable, "-c", hide_ray], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotrl: error: --distributed needs Ray, which is not installed")
    assert '".[distributed]"' in lines[0]
