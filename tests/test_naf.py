"""NAF: the quadratic advantage head, its target, and NAF-P exploration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from robotrl.algos.naf import NAFAgent, NAFConfig, naf_loss, precision_noise
from robotrl.nets import NAFHead


@pytest.mark.parametrize("diag_scale", [-80.0, -20.0, 0.0, 20.0, 80.0])
def test_p_is_positive_definite_for_large_and_tiny_diagonals(diag_scale):
    n = 4
    head = NAFHead(5, n, (16,))
    torch.manual_seed(0)
    entries = torch.randn(256, n * (n + 1) // 2)
    entries[:, head.on_diagonal] += diag_scale
    p = head.precision(head.lower_triangular(entries))
    assert torch.isfinite(p).all()
    torch.linalg.cholesky(p)  # float32, as the agent computes it; raises if P is not positive definite
    assert torch.linalg.eigvalsh(p.double()).min() > 0


def test_l_is_lower_triangular_with_the_head_outputs_in_place():
    head = NAFHead(3, 3, (8,))
    entries = torch.arange(6, dtype=torch.float32).unsqueeze(0)  # rows 0; 1 1; 2 2 2 in tril order
    lower = head.lower_triangular(entries)[0]
    assert torch.equal(torch.triu(lower, diagonal=1), torch.zeros(3, 3))
    assert lower[1, 0] == 1.0 and lower[2, 0] == 3.0 and lower[2, 1] == 4.0
    expected_diag = torch.nn.functional.softplus(torch.tensor([0.0, 2.0, 5.0]))
    torch.testing.assert_close(torch.diagonal(lower), expected_diag)


def test_batched_advantage_matches_per_sample_reference():
    torch.manual_seed(1)
    head = NAFHead(6, 3, (32, 32)).double()
    obs, action = torch.randn(64, 6, dtype=torch.float64), torch.rand(64, 3, dtype=torch.float64) * 2 - 1
    value, mu, lower = head.heads(obs)
    batched = head.q(obs, action)
    for i in range(64):
        d = action[i] - mu[i]
        p = lower[i] @ lower[i].T + NAFHead.EPS * torch.eye(3, dtype=torch.float64)
        reference = value[i] - 0.5 * d @ p @ d
        assert abs(batched[i].item() - reference.item()) <= 1e-6


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 100.0))
def test_q_is_maximised_at_mu(seed, scale):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = NAFHead(4, 2, (16,))
    obs = torch.randn(32, 4, generator=gen) * scale
    actions = torch.rand(32, 2, generator=gen) * 2 - 1
    with torch.no_grad():
        q_at_mu = head.q(obs, head(obs))
        assert (q_at_mu >= head.q(obs, actions) - 1e-5 * q_at_mu.abs().clamp_min(1)).all()


def test_naf_p_noise_has_covariance_c_p_inverse():
    torch.manual_seed(2)
    head = NAFHead(3, 3, (8,))
    p = head.precision(head.lower_triangular(torch.randn(1, 6))).double()[0]
    c = 0.3
    z = torch.randn(200_000, 3, dtype=torch.float64)
    x = precision_noise(p, z, scale=c**0.5)
    expected = c * torch.linalg.inv(p)
    empirical = torch.cov(x.T)
    assert torch.linalg.norm(empirical - expected) / torch.linalg.norm(expected) < 0.05


def test_target_uses_target_value_and_cuts_on_termination():
    agent = NAFAgent(2, 1, NAFConfig(hidden=(8,), gamma=0.9), seed=0)
    batch = make_batch([[0.1, 0.2], [0.3, -0.1], [1.0, 1.0]], [[0.5], [-0.2], [0.0]], [1.0, 0.0, -1.0],
                       [[0.0, 1.0], [0.5, 0.5], [-1.0, 0.2]], [0.0, 0.0, 1.0])
    with torch.no_grad():
        agent.target_net.value_head.bias.add_(3.0)  # target differs from online: y must use V'
        v_next = agent.target_net.value(batch.next_obs)
        y = batch.reward + 0.9 * (1 - batch.terminated) * v_next
        expected = (agent.net.q(batch.obs, batch.action) - y).pow(2).mean()
    loss, _ = naf_loss(agent.net, agent.target_net, batch, 0.9)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is None for p in agent.target_net.parameters())
    assert all(p.grad is not None for p in agent.net.parameters())


def test_exploring_actions_stay_in_bounds_and_greedy_is_mu():
    for noise in ("ou", "gaussian", "naf_p"):
        agent = NAFAgent(3, 2, NAFConfig(hidden=(8,), noise=noise, noise_sigma=2.0), seed=0)
        obs = np.array([0.1, -0.3, 0.7], dtype=np.float32)
        explored = np.array([agent.act(obs, explore=True) for _ in range(50)])
        assert np.all(np.abs(explored) <= 1.0) and explored.std(0).min() > 0.05
        with torch.no_grad():
            np.testing.assert_array_equal(agent.act(obs, explore=False), agent.net(torch.from_numpy(obs)).numpy())
