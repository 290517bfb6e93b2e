"""Maths of the shared core: Bellman targets, gradient isolation, Polyak averaging, OU noise, replay."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import make_batch
from torch import nn

from robotrl.algos.ddpg import DDPGAgent, DDPGConfig, actor_loss, critic_loss
from robotrl.nets import DeterministicActor, ObsNormalizer, QCritic
from robotrl.noise import GaussianNoise, OrnsteinUhlenbeckNoise
from robotrl.replay import ReplayBuffer
from robotrl.targets import bellman_target, polyak_update


class ConstActor(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, obs):
        return torch.full((obs.shape[0], 1), self.value)


class SumCritic(nn.Module):
    """Q(s, a) = sum(s) + 2 a: easy to compute by hand."""

    def forward(self, obs, action):
        return obs.sum(-1) + 2.0 * action.squeeze(-1)


def test_ddpg_target_on_three_hand_built_transitions():
    batch = make_batch(obs=[[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]], action=[[0.0], [0.0], [0.0]],
                       reward=[1.0, -0.5, 2.0], next_obs=[[1.0, 2.0], [0.5, 0.5], [3.0, 3.0]],
                       terminated=[0.0, 0.0, 1.0])
    gamma = 0.9
    # Q'(s', mu'(s')) = sum(s') + 2 * 0.25 -> [3.5, 1.5, 6.5]; the third transition terminated.
    expected_y = torch.tensor([1.0 + 0.9 * 3.5, -0.5 + 0.9 * 1.5, 2.0])
    y = bellman_target(batch.reward, batch.terminated, gamma,
                       SumCritic()(batch.next_obs, ConstActor(0.25)(batch.next_obs)))
    torch.testing.assert_close(y, expected_y)

    critic = QCritic(2, 1, (8,))
    loss, info = critic_loss(critic, SumCritic(), ConstActor(0.25), batch, gamma)
    q = critic(batch.obs, batch.action)
    torch.testing.assert_close(loss, ((q - expected_y) ** 2).mean())
    assert info["critic_loss"] == pytest.approx(loss.item())


def _grads(module: nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_actor_loss_leaves_critic_gradients_zero_and_the_reverse():
    torch.manual_seed(0)
    actor, critic = DeterministicActor(3, 2, (16, 16)), QCritic(3, 2, (16, 16))
    target_actor, target_critic = copy.deepcopy(actor), copy.deepcopy(critic)
    obs = torch.randn(32, 3)
    batch = make_batch(obs.numpy(), np.random.uniform(-1, 1, (32, 2)), np.ones(32), obs.numpy() + 0.1,
                       np.zeros(32))

    loss, _ = actor_loss(actor, critic, obs)
    loss.backward()
    assert all(g is None or torch.count_nonzero(g) == 0 for g in _grads(critic))
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in _grads(actor))

    actor.zero_grad(set_to_none=True)
    loss, _ = critic_loss(critic, target_critic, target_actor, batch, 0.99)
    loss.backward()
    for module in (actor, target_actor, target_critic):
        assert all(g is None or torch.count_nonzero(g) == 0 for g in _grads(module))
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in _grads(critic))


def test_polyak_tau_zero_keeps_target_and_tau_one_copies_online():
    torch.manual_seed(0)
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.clone() for p in target.parameters()]
    polyak_update(online, target, 0.0)
    for p, b in zip(target.parameters(), before, strict=True):
        assert torch.equal(p, b)
    polyak_update(online, target, 1.0)
    for p, o in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(p, o)


def test_polyak_intermediate_tau_is_weighted_average():
    torch.manual_seed(1)
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    expected = [0.3 * o + 0.7 * t for o, t in zip(online.parameters(), target.parameters(), strict=True)]
    polyak_update(online, target, 0.3)
    for p, e in zip(target.parameters(), expected, strict=True):
        torch.testing.assert_close(p, e)


def test_ou_mean_reverts_deterministically_without_noise():
    noise = OrnsteinUhlenbeckNoise(3, theta=0.15, sigma=0.0, dt=1.0, seed=0)
    noise.state[:] = 5.0
    for _ in range(10):
        noise.sample()
    np.testing.assert_allclose(noise.state, 5.0 * 0.85**10)
    noise.reset()
    assert np.all(noise.state == 0.0)


def test_ou_stationary_std_matches_sigma_over_sqrt_two_theta():
    theta, sigma, dt = 0.15, 0.2, 0.01
    noise = OrnsteinUhlenbeckNoise(2000, theta=theta, sigma=sigma, dt=dt, seed=3)
    for _ in range(4000):  # burn-in: 6 relaxation times 1/(theta*dt)
        noise.sample()
    samples = np.stack([noise.sample() for _ in range(2000)])
    expected = sigma / np.sqrt(2 * theta)
    assert abs(samples.std() - expected) / expected < 0.05
    assert abs(samples.mean()) < 0.05 * expected


def test_ou_samples_are_temporally_correlated_and_seeded():
    a = OrnsteinUhlenbeckNoise(1, seed=7)
    b = OrnsteinUhlenbeckNoise(1, seed=7)
    xs = np.array([a.sample()[0] for _ in range(20000)])
    assert np.array_equal(xs[:100], np.array([b.sample()[0] for _ in range(100)]))
    lag1 = np.corrcoef(xs[:-1], xs[1:])[0, 1]
    assert lag1 == pytest.approx(1 - 0.15, abs=0.03)  # AR(1) coefficient 1 - theta*dt


def test_gaussian_noise_std():
    noise = GaussianNoise(4, sigma=0.3, seed=1)
    samples = np.stack([noise.sample() for _ in range(20000)])
    assert samples.std() == pytest.approx(0.3, rel=0.03)


def test_replay_wraps_around_and_samples_only_stored_rows():
    buf = ReplayBuffer(obs_dim=2, action_dim=1, capacity=5, seed=0)
    for i in range(8):
        buf.add(np.full(2, i), np.full(1, i), float(i), np.full(2, i + 100), terminated=(i % 2 == 0))
    assert len(buf) == 5 and buf.pos == 3
    # rows 0..2 were overwritten by transitions 5..7
    np.testing.assert_array_equal(buf.reward, [5, 6, 7, 3, 4])
    np.testing.assert_array_equal(buf.terminated, [0, 1, 0, 0, 1])
    batch = buf.sample(256)
    assert set(batch.reward.tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}
    torch.testing.assert_close(batch.next_obs[:, 0], batch.reward + 100)
    assert batch.obs.dtype == torch.float32


def test_replay_state_dict_round_trip_continues_sampling_identically():
    buf = ReplayBuffer(3, 2, capacity=50, seed=4)
    for i in range(70):
        buf.add(np.random.randn(3), np.random.randn(2), float(i), np.random.randn(3), False)
    copy_ = ReplayBuffer(3, 2, capacity=50, seed=99)
    copy_.load_state_dict(buf.state_dict())
    a, b = buf.sample(16), copy_.sample(16)
    assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)


def test_obs_normalizer_matches_numpy_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    norm = ObsNormalizer(4)
    for chunk in np.array_split(data, 7):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-10)
    out = norm(torch.as_tensor(data, dtype=torch.float32))
    assert abs(out.mean()) < 1e-3 and out.std().item() == pytest.approx(1.0, abs=1e-2)
    np.testing.assert_array_equal(norm.normalize(data), out.numpy())  # the loops' numpy path is forward() exactly

    one_at_a_time = ObsNormalizer(4)  # the per-step path (a single row), into a loaded copy's buffers
    one_at_a_time.load_state_dict(ObsNormalizer(4).state_dict())
    for row in data:
        one_at_a_time.update(row)
    np.testing.assert_allclose(one_at_a_time.mean.numpy(), data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(one_at_a_time.var.numpy(), data.var(0), rtol=1e-10)
    assert float(one_at_a_time.count) == pytest.approx(1000.0)


def test_obs_normalizer_maps_dimensions_with_finite_bounds_by_their_range_and_never_updates_them():
    rng = np.random.default_rng(1)
    data = np.column_stack([rng.normal(3.0, 2.0, 500), rng.uniform(0.6, 1.0, 500)])  # dim 1 lives in [0, 1]
    norm = ObsNormalizer(2, low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 1.0]))
    norm.update(data)
    np.testing.assert_allclose(norm.mean.numpy(), [data[:, 0].mean(), 0.5], rtol=1e-10)
    np.testing.assert_allclose(norm.var.numpy(), [data[:, 0].var(), 0.25], rtol=1e-10)
    out = norm(torch.tensor([[3.0, 0.0], [3.0, 1.0]]))
    assert out[:, 1].tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)  # not (0 - 0.8) / 0.1 = -8


def test_ddpg_act_is_deterministic_without_exploration_and_in_bounds_with_it():
    agent = DDPGAgent(3, 2, DDPGConfig(actor_hidden=(8,), critic_hidden=(8,)), seed=0)
    obs = np.ones(3, dtype=np.float32)
    assert np.array_equal(agent.act(obs, explore=False), agent.act(obs, explore=False))
    explored = np.stack([agent.act(obs, explore=True) for _ in range(200)])
    assert explored.min() >= -1.0 and explored.max() <= 1.0
    assert explored.std() > 0.01


def test_critic_layer_norm_option_builds_normalised_hidden_layers():
    agent = DDPGAgent(3, 2, DDPGConfig(critic_hidden=(8, 8), critic_layer_norm=True), seed=0)
    assert sum(isinstance(m, nn.LayerNorm) for m in agent.critic.modules()) == 2
    assert not any(isinstance(m, nn.LayerNorm) for m in agent.actor.modules())


@pytest.mark.parametrize("max_grad_norm", [0.0, 0.05])
def test_gradient_step_is_bitwise_torch_adam_with_clip_grad_norm(max_grad_norm: float):
    """gradient_step's lean path (clip_grad_norm + fused_adam_step) against zero_grad / backward /
    nn.utils.clip_grad_norm_ / Adam(fused=True).step: the same parameters and optimiser state, bit for bit, with the
    learning rate changed between steps as annealing does."""
    from robotrl.algos.common import adam, gradient_step

    torch.manual_seed(0)
    lean = nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Linear(32, 2))
    plain, start = copy.deepcopy(lean), copy.deepcopy(lean)
    lean_opt, plain_opt = adam(lean.parameters(), 1e-2, eps=1e-5), adam(plain.parameters(), 1e-2, eps=1e-5)
    for step in range(6):
        x = torch.randn(16, 5)
        gradient_step(lean_opt, lean(x).square().mean(), max_grad_norm)
        plain_opt.zero_grad()
        plain(x).square().mean().backward()
        if max_grad_norm > 0:
            nn.utils.clip_grad_norm_(plain.parameters(), max_grad_norm)
        plain_opt.step()
        for opt in (lean_opt, plain_opt):
            opt.param_groups[0]["lr"] = 1e-2 * (0.8 ** (step + 1))
    for a, b in zip(lean.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(lean_opt.state.values(), plain_opt.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert not torch.equal(lean[0].weight, start[0].weight)  # the steps moved the parameters


def test_fused_adam_step_declines_what_it_cannot_do_exactly():
    from robotrl.algos.common import adam, fused_adam_step

    net = nn.Linear(3, 2)
    opt = adam(net.parameters(), 1e-3)
    params = list(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    assert not fused_adam_step(opt, params)  # no state before the first step
    opt.step()
    net.bias.grad = None
    assert not fused_adam_step(opt, params)  # a parameter without a gradient
    net(torch.randn(4, 3)).sum().backward()
    assert fused_adam_step(opt, params)
    sgd = torch.optim.SGD(params, lr=0.1)
    assert not fused_adam_step(sgd, params)


def test_mlp_forward_equals_the_module_and_honours_hooks_and_other_layers():
    from robotrl.nets import mlp, mlp_forward, policy_gradient_mlp

    torch.manual_seed(0)
    x = torch.randn(7, 5)
    for net in (policy_gradient_mlp(5, (16, 16), 3, 0.01, True, "tanh"), policy_gradient_mlp(5, (16,), 2, 1.0, True,
                                                                                              "relu")):
        assert torch.equal(mlp_forward(net, x), net(x))
        assert torch.equal(mlp_forward(net, x[0]), net(x[0]))
    normed = mlp(5, (16,), 2, layer_norm=True)  # a LayerNorm: called as the module
    assert torch.equal(mlp_forward(normed, x), normed(x))
    net = policy_gradient_mlp(5, (16,), 2, 1.0)
    net[0].register_forward_hook(lambda module, args, out: out * 0.0)
    assert torch.equal(mlp_forward(net, x), net(x))
    assert torch.equal(mlp_forward(net, x), net[2](torch.tanh(torch.zeros(7, 16))))  # the hook ran
