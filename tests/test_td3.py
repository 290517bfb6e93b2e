"""TD3: clipped double Q target, smoothing noise, delayed actor updates, the batched twin critic."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_batch
from torch import nn

from robotrl.algos.td3 import TD3Agent, TD3Config, critic_loss
from robotrl.nets import TwinQ
from robotrl.targets import deterministic_policy_loss, smoothed_target_action


class ConstActor(nn.Module):
    def __init__(self, value: float, dim: int = 1):
        super().__init__()
        self.value, self.dim = value, dim

    def forward(self, obs):
        return torch.full((obs.shape[0], self.dim), self.value)


class TwoCritics(nn.Module):
    """Q1 = sum(s) + a, Q2 = sum(s) - a: the min picks -|a| around sum(s)."""

    def forward(self, obs, action):
        a = action.squeeze(-1)
        return torch.stack([obs.sum(-1) + a, obs.sum(-1) - a])


def test_td3_target_takes_min_of_two_critics_on_hand_built_batch():
    batch = make_batch(obs=[[0.0], [0.0], [0.0]], action=[[0.0]] * 3, reward=[1.0, 0.0, -1.0],
                       next_obs=[[2.0], [1.0], [4.0]], terminated=[0.0, 0.0, 1.0])
    cfg = TD3Config(gamma=0.5, target_noise=0.0)
    critic = TwinQ(1, 1, (8,))
    loss, _ = critic_loss(critic, TwoCritics(), ConstActor(0.5), batch, cfg)
    # min(Q1', Q2') = sum(s') - 0.5 -> [1.5, 0.5, 3.5]; third transition terminated
    y = torch.tensor([1.0 + 0.5 * 1.5, 0.0 + 0.5 * 0.5, -1.0])
    q = critic(batch.obs, batch.action)
    torch.testing.assert_close(loss, ((q - y) ** 2).mean(-1).sum())


def test_smoothing_noise_is_clipped_per_dimension_and_actions_stay_in_bounds():
    torch.manual_seed(0)
    obs = torch.zeros(5000, 3)
    centred = smoothed_target_action(ConstActor(0.0, dim=4), obs, noise_std=1.0, noise_clip=0.5)
    assert centred.abs().max() <= 0.5
    assert (centred.abs() == 0.5).float().mean() > 0.5  # std 1 noise hits the clip most of the time
    assert centred.std(0).min() > 0.3  # each dimension gets its own noise
    edge = smoothed_target_action(ConstActor(0.9, dim=4), obs, noise_std=1.0, noise_clip=0.5)
    assert edge.max() <= 1.0 and edge.min() >= 0.4 - 1e-6
    plain = smoothed_target_action(ConstActor(0.3, dim=2), obs, noise_std=0.0, noise_clip=0.5)
    assert torch.all(plain == 0.3)


def test_actor_steps_once_per_policy_delay_critic_steps():
    agent = TD3Agent(3, 2, TD3Config(policy_delay=3, actor_hidden=(8,), critic_hidden=(8,)), seed=0)
    rng = np.random.default_rng(0)
    batch = make_batch(rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 2)), rng.normal(size=16),
                       rng.normal(size=(16, 3)), np.zeros(16))
    actor_changed, target_changed, critic_changed = [], [], []
    for _ in range(6):
        a0 = [p.clone() for p in agent.actor.parameters()]
        t0 = [p.clone() for p in agent.target_critic.parameters()]
        c0 = [p.clone() for p in agent.critic.parameters()]
        info = agent.update(batch)
        actor_changed.append(any(not torch.equal(a, b) for a, b in zip(a0, agent.actor.parameters(), strict=True)))
        target_changed.append(any(not torch.equal(a, b)
                                  for a, b in zip(t0, agent.target_critic.parameters(), strict=True)))
        critic_changed.append(any(not torch.equal(a, b) for a, b in zip(c0, agent.critic.parameters(), strict=True)))
        assert ("actor_loss" in info) == actor_changed[-1]
    assert actor_changed == [False, False, True, False, False, True]
    assert target_changed == actor_changed
    assert all(critic_changed)


def test_twin_q_members_are_independent_mlps():
    torch.manual_seed(0)
    twin = TwinQ(3, 2, (5, 4))
    obs, act = torch.randn(7, 3), torch.randn(7, 2)
    out = twin(obs, act)
    assert out.shape == (2, 7)
    for i in range(2):
        x = torch.cat([obs, act], -1)
        for layer in twin.hidden:
            x = torch.relu(x @ layer.weight[i] + layer.bias[i])
        ref = (x @ twin.out.weight[i] + twin.out.bias[i]).squeeze(-1)
        torch.testing.assert_close(out[i], ref)
    assert not torch.allclose(out[0], out[1])


def test_td3_actor_loss_uses_first_critic_and_leaves_critic_gradients_zero():
    torch.manual_seed(0)
    agent = TD3Agent(3, 2, TD3Config(actor_hidden=(8,), critic_hidden=(8,)), seed=0)
    obs = torch.randn(16, 3)
    loss, _ = deterministic_policy_loss(agent.actor, agent.critic, obs)
    torch.testing.assert_close(loss, -agent.critic(obs, agent.actor(obs))[0].mean())
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())
