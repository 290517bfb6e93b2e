"""QT-Opt: the batched CEM maximiser, the clipped double-Q target with two target networks, the lag."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_batch
from torch import nn

from robotrl.algos.qtopt import QTOptAgent, QTOptConfig, lagged_double_q_target
from robotrl.cem import ELITES, ITERATIONS, SAMPLES, CEMMaximizer
from robotrl.export import CEM_TIE_TOLERANCE, compare_actions
from robotrl.nets import DeployedPolicy


class Quadratic(nn.Module):
    """Q(s, a) = -|a - s[:d]|^2: concave, maximised at the state's first d entries clipped to the box."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(action.shape))
        return -(action - obs[:, : action.shape[-1]]).pow(2).sum(-1)


def test_cem_defaults_are_the_papers():
    assert (SAMPLES, ELITES, ITERATIONS) == (64, 6, 2)
    cem = CEMMaximizer(Quadratic(), 3)
    assert cem.noise_table.shape == (2, 64, 3) and cem.elites == 6


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("where", ["inside", "boundary"])
def test_cem_finds_the_maximum_of_a_concave_quadratic(d, where):
    gen = torch.Generator().manual_seed(d)
    optimum = torch.rand(256, d, generator=gen) * 1.6 - 0.8
    if where == "boundary":  # beyond the box in two coordinates: the maximiser is on a face / an edge
        optimum[:, 0], optimum[:, -1] = 1.5, -1.3
    q = Quadratic()
    cem = CEMMaximizer(q, d, samples=256, elites=20, iterations=10)
    best = cem.maximize(optimum, torch.randn(10, 256, 256, d, generator=gen))
    target = optimum.clamp(-1, 1)
    value_gap = q(optimum, target) - q(optimum, best)
    assert value_gap.max().item() <= 1e-2
    assert (best - target).abs().max().item() <= 0.1
    assert best.abs().max().item() <= 1.0


def test_one_cem_call_handles_a_batch_of_256_states_in_one_critic_call_per_iteration():
    q = Quadratic()
    cem = CEMMaximizer(q, 4)
    out = cem(torch.zeros(256, 8))
    assert out.shape == (256, 4)
    # one call per iteration on every (state, sample) pair, plus one for the fitted means
    assert q.calls == [(256 * 64, 4)] * 2 + [(256, 4)]


def test_cem_forward_is_deterministic_and_single_observations_work():
    cem = CEMMaximizer(Quadratic(), 3, seed=7)
    obs = torch.randn(5, 3)
    assert torch.equal(cem(obs), cem(obs))
    assert torch.equal(cem(obs[0]), cem(obs)[0])


class NearlyFlat(nn.Module):
    """Q(s, a) = 1e-7 * sum(a): every choice the search makes is between actions ~1e-7 apart in Q."""

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return 1e-7 * action.sum(-1) + 0.0 * obs[:, 0]


def _deployed(q: nn.Module, obs_dim: int, d: int) -> DeployedPolicy:
    return DeployedPolicy(CEMMaximizer(q, d), torch.zeros(obs_dim), torch.ones(obs_dim), 10.0, -torch.ones(d),
                          torch.ones(d)).eval()


def test_export_comparison_excuses_a_cem_action_only_at_a_near_tie():
    obs = torch.rand(32, 4) * 1.6 - 0.8
    for q, excused in [(NearlyFlat(), True), (Quadratic(), False)]:
        policy = _deployed(q, 4, 2)
        with torch.no_grad():
            expected = policy(obs)
            margins = policy.policy.decision_margins(policy.normalized(obs), policy.policy.noise_table)
        flipped_row = int(margins.argmax())
        got = expected.clone()
        got[flipped_row] = -got[flipped_row]  # another runtime picked another candidate in this state
        diff, near_ties = compare_actions(policy, obs, expected, got)
        if excused:
            assert margins.max().item() <= CEM_TIE_TOLERANCE
            assert (diff, near_ties) == (0.0, 1)
        else:
            assert margins[flipped_row].item() > CEM_TIE_TOLERANCE
            assert diff == pytest.approx((2 * expected[flipped_row]).abs().max().item()) and near_ties == 0
        # the same actions compare equal, with nothing excused
        assert compare_actions(policy, obs, expected, expected.clone()) == (0.0, 0)


def test_decision_margins_is_the_gap_between_the_best_two_different_samples_of_one_iteration():
    q = Quadratic()
    cem = CEMMaximizer(q, 1, samples=4, elites=1, iterations=1)
    cem.noise_table.copy_(torch.tensor([[[0.1], [0.3], [-0.2], [0.9]]]))
    obs = torch.zeros(1, 1)
    # Q = -a^2 at a = 0.1, 0.3, -0.2, 0.9: best 0.1 (-0.01), runner-up -0.2 (-0.04), so the gap is 0.03 (|Q| < 1:
    # not scaled); the one elite is its own mean, which decides nothing
    margin = cem.decision_margins(obs, cem.noise_table)
    assert margin.item() == pytest.approx(0.03)
    assert cem(obs).item() == pytest.approx(0.1)


class Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0],), self.value) + 0.0 * action.sum(-1)


def test_target_uses_the_minimum_of_the_two_target_networks():
    batch = make_batch(np.zeros((3, 2)), np.zeros((3, 1)), [1.0, 0.5, -1.0], np.zeros((3, 2)), [0, 0, 1])
    q1, q2 = Constant(2.0), Constant(3.0)
    y = lagged_double_q_target(q1, q2, CEMMaximizer(q1, 1), batch, 0.9, torch.randn(2, 3, 64, 1))
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.0, 0.5 + 0.9 * 2.0, -1.0]))
    y = lagged_double_q_target(Constant(4.0), Constant(-1.0), CEMMaximizer(q1, 1), batch, 0.9,
                               torch.randn(2, 3, 64, 1))
    torch.testing.assert_close(y, torch.tensor([1.0 - 0.9, 0.5 - 0.9, -1.0]))


def test_target_is_taken_at_the_cem_argmax_of_the_first_target_network():
    class Peak(nn.Module):  # Q'_1 peaks at a = 0.5; Q'_2 reports the action it is evaluated at
        def forward(self, obs, action):
            return -(action[:, 0] - 0.5).pow(2)

    class Echo(nn.Module):
        def forward(self, obs, action):
            return action[:, 0] + 10.0

    batch = make_batch(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4), np.zeros((4, 2)), np.zeros(4))
    peak = Peak()
    cem = CEMMaximizer(peak, 1, samples=128, elites=10, iterations=6)
    y = lagged_double_q_target(Echo(), peak, cem, batch, 1.0, torch.randn(6, 4, 128, 1))
    # min(Q'_2 = a + 10, Q'_1 = -(a - 0.5)^2) = Q'_1 at the argmax, ~0
    assert y.abs().max().item() < 1e-3


def test_second_target_network_is_a_lagged_copy_of_the_first():
    agent = QTOptAgent(3, 2, QTOptConfig(hidden=(8,), lag_every=3, cem_samples=8, cem_elites=2), seed=0)
    rng = np.random.default_rng(0)
    batch = make_batch(rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 2)), rng.normal(size=16),
                       rng.normal(size=(16, 3)), np.zeros(16))

    def same(a: nn.Module, b: nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))

    history = []
    for _ in range(6):
        agent.update(batch)
        history.append(same(agent.target_q1, agent.target_q2))
    assert history == [False, False, True, False, False, True]
    assert not same(agent.critic, agent.target_q1)  # Polyak-averaged, not copied


def test_exploration_stays_in_the_box_and_greedy_action_is_deterministic():
    agent = QTOptAgent(3, 2, QTOptConfig(hidden=(8,), epsilon=0.5, noise_sigma=0.5), seed=0)
    obs = np.ones(3, dtype=np.float32)
    acts = np.stack([agent.act(obs, explore=True) for _ in range(50)])
    assert np.abs(acts).max() <= 1.0 and acts.std(0).min() > 0.1
    assert np.array_equal(agent.act(obs, explore=False), agent.act(obs, explore=False))
