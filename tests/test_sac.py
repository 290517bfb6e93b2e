"""SAC: squashed-Gaussian log-prob, reparameterised actor gradient, temperature, gradient isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_batch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from robotrl.algos.sac import SACAgent, SACConfig, actor_loss, critic_loss, temperature_loss
from robotrl.nets import SquashedGaussianActor, tanh_log_det_jacobian


def test_tanh_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mu, std = torch.randn(1000, 3), torch.rand(1000, 3) + 0.1
    u = mu + std * torch.randn(1000, 3) * 0.5  # away from the bounds, where TanhTransform is accurate
    ours = Normal(mu, std).log_prob(u).sum(-1) - tanh_log_det_jacobian(u).sum(-1)
    reference = TransformedDistribution(Normal(mu, std), TanhTransform()).log_prob(torch.tanh(u)).sum(-1)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_tanh_correction_is_finite_and_exact_far_in_the_tails():
    u = torch.tensor([-20.0, -5.0, 0.0, 5.0, 20.0], dtype=torch.float32)
    out = tanh_log_det_jacobian(u)
    assert torch.isfinite(out).all()
    exact = torch.log(1 - torch.tanh(u.double()) ** 2)
    finite = torch.isfinite(exact)
    torch.testing.assert_close(out.double()[finite], exact[finite], atol=1e-4, rtol=1e-4)
    # 2(log 2 - |u|) for large |u|, where the naive log(1 - tanh^2) is -inf in float32
    assert out[0].item() == out[-1].item() == pytest.approx(math.log(4) - 40, abs=1e-4)


def test_sample_log_prob_is_the_squashed_gaussian_density():
    torch.manual_seed(1)
    actor = SquashedGaussianActor(4, 2, (16,))
    obs = torch.randn(64, 4)
    torch.manual_seed(7)
    action, log_prob = actor.sample(obs)
    mu, log_std = actor.distribution(obs)
    reference = TransformedDistribution(Normal(mu, log_std.exp()), TanhTransform()).log_prob(action).sum(-1)
    torch.testing.assert_close(log_prob, reference, atol=1e-3, rtol=1e-4)
    assert torch.equal(actor(obs), torch.tanh(mu))


def test_actor_gradient_flows_through_the_sample_not_into_the_critics():
    torch.manual_seed(0)
    agent = SACAgent(3, 2, SACConfig(actor_hidden=(16,), critic_hidden=(16,)), seed=0)
    obs = torch.randn(32, 3)
    loss, _, _ = actor_loss(agent.actor, agent.critic, torch.tensor(0.2), obs)
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert agent.log_alpha.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_critic_loss_leaves_actor_and_alpha_gradients_untouched():
    torch.manual_seed(0)
    agent = SACAgent(3, 2, SACConfig(actor_hidden=(16,), critic_hidden=(16,)), seed=0)
    rng = np.random.default_rng(0)
    batch = make_batch(rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 2)), rng.normal(size=16),
                       rng.normal(size=(16, 3)), np.zeros(16))
    loss, _ = critic_loss(agent.critic, agent.target_critic, agent.actor, agent.log_alpha.exp(), batch, 0.99)
    loss.backward()
    assert all(p.grad is None for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.target_critic.parameters())
    assert agent.log_alpha.grad is None
    assert all(p.grad is not None for p in agent.critic.parameters())


def test_temperature_moves_toward_the_target_entropy_on_a_fixed_batch():
    log_alpha = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([log_alpha], lr=0.05)
    # entropy -log_prob = 3 above a target of -2: the policy is too random, alpha must fall
    log_prob = torch.full((64,), -3.0)
    for _ in range(20):
        loss, _ = temperature_loss(log_alpha, log_prob, target_entropy=-2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert log_alpha.item() < -0.5
    # entropy below target: alpha must rise
    log_alpha2 = torch.zeros((), requires_grad=True)
    loss, _ = temperature_loss(log_alpha2, torch.full((64,), 3.0), target_entropy=-2.0)
    loss.backward()
    assert log_alpha2.grad.item() < 0  # gradient descent increases log alpha


def test_fixed_alpha_option_keeps_alpha_and_state_round_trips():
    agent = SACAgent(3, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,), learn_alpha=False, init_alpha=0.3))
    rng = np.random.default_rng(0)
    batch = make_batch(rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 2)), rng.normal(size=16),
                       rng.normal(size=(16, 3)), np.zeros(16))
    info = agent.update(batch)
    assert "alpha" not in info and agent.log_alpha.exp().item() == pytest.approx(0.3, rel=1e-6)
    learner = SACAgent(3, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,)))
    for _ in range(3):
        learner.update(batch)
    copy = SACAgent(3, 2, SACConfig(actor_hidden=(8,), critic_hidden=(8,)))
    copy.load_state_dict(learner.state_dict())
    assert torch.equal(copy.log_alpha, learner.log_alpha)
    assert copy.alpha_opt.param_groups[0]["params"][0] is copy.log_alpha
    assert agent.act(np.zeros(3, dtype=np.float32), explore=False).shape == (2,)
