"""The on-policy family: GAE by hand, the surrogates' gradients, the KL penalty's adaptation, the rollout loop's
time-limit bootstrap, exact resume, export, and PPO learning pendulum on a CI budget."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import split_and_whole_runs

from robotrl import RobotrlError
from robotrl.algos.policy_gradient import Batch
from robotrl.algos.ppo import PPOConfig, adapt_beta, surrogate_loss
from robotrl.nets import GaussianPolicy
from robotrl.run import build_run, evaluate_run, train
from robotrl.targets import gae


def test_gae_matches_a_hand_computed_trajectory_with_a_termination_and_a_truncation():
    # env 0: the episode terminates at t = 1; t = 3 is a truncation (the loop has already added gamma V(final) to
    # its reward), so last_values (9) must not leak in. env 1: no episode end, bootstrapped from last_values (2).
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    values = torch.tensor([[0.5, 0.0], [0.4, 0.0], [0.3, 0.0], [0.2, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    adv, ret = gae(rewards, values, dones, torch.tensor([9.0, 2.0]), gamma=0.9, lam=0.8)
    # env 0: A3 = 1 - 0.2; A2 = (1 + 0.9 * 0.2 - 0.3) + 0.72 A3; A1 = 1 - 0.4; A0 = (1 + 0.9 * 0.4 - 0.5) + 0.72 A1
    # env 1: A3 = 1 + 0.9 * 2; A_t = 0.72 A_{t+1}
    expected = torch.tensor([[1.292, 1.0450944], [0.6, 1.45152], [1.456, 2.016], [0.8, 2.8]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, adv + values)


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_baseline():
    rewards, values = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[0.5], [0.5], [0.5]])
    adv, _ = gae(rewards, values, torch.zeros(3, 1), torch.tensor([10.0]), gamma=0.5, lam=1.0)
    returns = torch.tensor([[1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 10], [2 + 0.5 * 3 + 0.25 * 10], [3 + 0.5 * 10]])
    assert torch.allclose(adv, returns - values)


def _one_row_batch(old_log_prob: float, advantage: float) -> Batch:
    t = torch.tensor
    return Batch(t([[0.0]]), t([[0.0]]), t([old_log_prob]), t([0.0]), t([advantage]), t([0.0]))


def test_the_gaussian_policys_written_out_sample_log_prob_and_entropy_are_normals():
    torch.manual_seed(0)
    policy = GaussianPolicy(5, 3, (16,), log_std_init=-0.7)
    obs = torch.randn(64, 5)
    normal = policy.distribution(obs)
    torch.manual_seed(1)
    action, log_prob = policy.sample(obs)
    torch.manual_seed(1)
    expected = normal.loc + normal.scale * torch.randn_like(normal.loc)
    torch.testing.assert_close(action, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(log_prob, normal.log_prob(action).sum(-1), rtol=1e-6, atol=1e-5)
    log_prob, entropy = policy.log_prob_entropy(obs, action)
    torch.testing.assert_close(log_prob, normal.log_prob(action).sum(-1), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(entropy, normal.entropy().sum(-1), rtol=1e-6, atol=1e-6)
    log_prob.sum().backward()  # and the gradient reaches the mean network and the log std
    assert policy.log_std.grad is not None and all(p.grad is not None for p in policy.mean.parameters())


@pytest.mark.parametrize(("ratio", "advantage", "gradient"), [
    (1.5, 1.0, False),  # above 1 + eps with A > 0: the clipped term is the minimum
    (0.5, -1.0, False),  # below 1 - eps with A < 0: likewise
    (1.1, 1.0, True), (0.9, -1.0, True),  # inside the clip range
    (0.5, 1.0, True), (1.5, -1.0, True),  # outside, but the unclipped term is the pessimistic one
])
def test_clipped_surrogate_gradient_vanishes_exactly_where_the_clip_binds(ratio, advantage, gradient):
    log_prob = torch.tensor([0.0], requires_grad=True)
    batch = _one_row_batch(-float(np.log(ratio)), advantage)
    loss, _ = surrogate_loss(log_prob, batch, batch.advantages, PPOConfig(clip_range=0.2), beta=0.0)
    loss.backward()
    assert (log_prob.grad.abs().item() > 1e-6) == gradient


def test_kl_penalty_surrogate_penalises_moving_away_from_the_old_policy():
    batch = _one_row_batch(0.0, 0.0)
    at_old, _ = surrogate_loss(torch.tensor([0.0]), batch, batch.advantages, PPOConfig(objective="kl"), beta=1.0)
    moved, _ = surrogate_loss(torch.tensor([0.5]), batch, batch.advantages, PPOConfig(objective="kl"), beta=1.0)
    assert at_old.item() == pytest.approx(0.0) and moved.item() > 0.0


def test_kl_penalty_coefficient_adapts_in_the_right_direction():
    assert adapt_beta(1.0, kl=0.001, kl_target=0.01) == 0.5  # policy barely moved: penalise less
    assert adapt_beta(1.0, kl=0.1, kl_target=0.01) == 2.0  # moved too far: penalise more
    assert adapt_beta(1.0, kl=0.01, kl_target=0.01) == 1.0


LOOP_SMALL = {"rollout_steps": 16, "n_envs": 2, "eval_every": 0, "eval_episodes": 1, "checkpoint_every": 0}
SMALL = {**LOOP_SMALL, "minibatch_size": 8, "n_epochs": 2}  # PPO


def test_rollout_bootstraps_a_time_limit_from_the_final_observation_and_counts_steps_over_all_envs():
    env = gym.make("InvertedPendulum-v5", max_episode_steps=5)  # the pole does not fall within 5 steps
    run = build_run(env, "ppo", seed=0, overrides={**SMALL, "rollout_steps": 8, "n_envs": 1, "gamma": 0.5})
    with torch.no_grad():  # V = 3 everywhere
        last = run.agent.critic[-1]
        last.weight.zero_()
        last.bias.fill_(3.0)
    run.agent.update = lambda rollout: {}  # keep the critic constant; the buffer still holds the rollout
    train(run, 8, progress=False, evaluate_at_end=False)
    rewards, dones = run.buffer.rewards[:, 0], run.buffer.dones[:, 0]
    assert run.step == 8 and run.episodes == 1
    assert dones.tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert rewards[4].item() == pytest.approx(1.0 + 0.5 * 3.0)  # truncated: r + gamma V(final observation)
    assert torch.all(rewards[[0, 1, 2, 3, 5, 6, 7]] == 1.0)


def test_on_policy_run_stops_at_the_first_rollout_boundary_past_its_target():
    run = build_run("pendulum", "ppo", seed=0, overrides=SMALL)
    result = train(run, 40, progress=False)
    assert result["steps"] == 64  # rollouts of 16 x 2 = 32 steps


@pytest.mark.parametrize("normalize_reward", [False, True])
def test_ppo_resume_is_exact(tmp_path, normalize_reward):
    split_and_whole_runs(tmp_path, "pendulum", "ppo", 3, {**SMALL, "normalize_reward": normalize_reward},
                         split=64, total=160)


def test_off_policy_keys_are_refused_for_an_on_policy_algorithm():
    with pytest.raises(RobotrlError, match="unknown config key 'batch_size'.*valid keys:.*rollout_steps"):
        build_run("pendulum", "ppo", overrides={"batch_size": 64})


@pytest.mark.parametrize("algo, overrides, message", [
    ("ppo", {"rollout_steps": 64, "n_envs": 2, "minibatch_size": 256},
     r"'minibatch_size' \(256\) is larger than one rollout, rollout_steps x n_envs = 64 x 2 = 128"),
    ("ppo", {"clip_range": 0.0}, "config key 'clip_range' must be positive, got 0"),
    ("ppo", {"gae_lambda": 1.5}, r"config key 'gae_lambda' must be in \[0, 1\], got 1.5"),
])
def test_bad_on_policy_hyperparameters_are_one_line_errors(algo, overrides, message):
    with pytest.raises(RobotrlError, match=message) as err:
        build_run("pendulum", algo, overrides=overrides)
    assert "\n" not in str(err.value)


def test_ppo_export_matches_the_deployed_policy(tmp_path):
    from robotrl.api import load_policy
    from robotrl.export import export_checkpoint
    from robotrl.run import run_policy, save_run

    run = build_run("pendulum", "ppo", seed=1, overrides=SMALL)
    train(run, 64, progress=False)
    exported = export_checkpoint(save_run(run, tmp_path / "ppo.pt"), tmp_path / "ppo-policy.pt")
    policy = load_policy(exported.path)
    obs = np.random.default_rng(0).normal(size=(32, run.obs_dim)).astype(np.float32)
    expected = run_policy(run)(torch.as_tensor(obs)).detach().numpy()
    assert np.array_equal(policy(obs), expected)


def test_ppo_learns_pendulum_on_a_ci_budget():
    """The card's settings, half its budget (seeds 0-3 and 5 all deployed a 1000 policy at 50k, four of them by
    40k): the report block's mean return must pass 900."""
    run = build_run("pendulum", "ppo", seed=6, overrides={"eval_episodes": 5})
    train(run, 50_000, progress=False)
    assert run.report.mean_return >= 900, run.report
    assert evaluate_run(run, episodes=5, block="report").mean_return == run.report.mean_return


def test_conjugate_gradient_solves_a_known_spd_system():
    from robotrl.algos.trpo import conjugate_gradient

    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a, b = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iterations=6)  # exact in n steps for an n x n system
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-8)


def test_line_search_never_accepts_a_step_that_breaks_the_kl_bound():
    from torch.nn.utils import parameters_to_vector

    from robotrl.algos.trpo import line_search

    param = torch.nn.Parameter(torch.zeros(2))
    old, full = torch.zeros(2), torch.tensor([1.0, 1.0])

    def evaluate():  # KL grows with the step's square, the gain with its length
        x = parameters_to_vector([param]).detach()
        return float(x.sum()), float((x**2).sum())

    accepted, kl, _ = line_search([param], old, full, evaluate, max_kl=0.1, shrink=0.5, steps=10)
    assert accepted and kl <= 0.1 and torch.allclose(param.detach(), torch.full((2,), 0.125))
    accepted, _, _ = line_search([param], old, full, evaluate, max_kl=1e-9, shrink=0.5, steps=3)
    assert not accepted and torch.equal(param.detach(), old)  # no step within the bound: parameters restored


def test_trpo_update_stays_inside_its_trust_region():
    run = build_run("pendulum", "trpo", seed=0, overrides={**LOOP_SMALL, "max_kl": 0.005})
    captured = {}
    update = run.agent.update

    def spy(rollout):
        obs = rollout.obs.reshape(-1, rollout.obs.shape[-1])
        with torch.no_grad():
            before = run.agent.actor.distribution(obs)
        metrics = update(rollout)
        with torch.no_grad():
            after = run.agent.actor.distribution(obs)
        captured["kl"] = float(torch.distributions.kl_divergence(before, after).sum(-1).mean())
        captured["metrics"] = metrics
        return metrics

    run.agent.update = spy
    train(run, 32, progress=False, evaluate_at_end=False)
    assert captured["metrics"]["step_accepted"] == 1.0
    assert 0.0 < captured["kl"] <= 0.005 + 1e-7


@pytest.mark.parametrize("algo", ["a2c", "reinforce", "trpo"])
def test_every_on_policy_algorithm_resumes_exactly(tmp_path, algo):
    split_and_whole_runs(tmp_path, "pendulum", algo, 2, LOOP_SMALL, split=64, total=128)


@pytest.mark.parametrize(("algo", "steps", "threshold"), [("trpo", 30_000, 900), ("a2c", 100_000, 150),
                                                           ("reinforce", 100_000, 120)])
def test_the_rest_of_the_family_learns_pendulum(algo, steps, threshold):
    """TRPO to PPO's bar; A2C and REINFORCE, the noisier estimators, well clear of the untrained ~40-50."""
    run = build_run("pendulum", algo, seed=4, overrides={"eval_episodes": 5})
    train(run, steps, progress=False)
    assert run.report.mean_return >= threshold, run.report


def test_python_api_trains_saves_loads_and_exports_an_on_policy_agent(tmp_path):
    from robotrl import PPO, TRPO, load_policy

    model = PPO("pendulum", seed=0, **SMALL).learn(64)
    loaded = PPO.load(model.save(tmp_path / "ppo.pt"))
    obs = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    assert np.array_equal(loaded.predict(obs), model.predict(obs))
    exported = loaded.export(tmp_path / "ppo-policy.pt", formats="pt")
    assert np.array_equal(load_policy(exported.path)(obs), model.predict(obs))
    with pytest.raises(RobotrlError, match="holds a ppo checkpoint, not trpo"):
        TRPO.load(tmp_path / "ppo.pt")
