"""Batched cross-entropy method: argmax_a Q(s, a) over [-1, 1]^d for a whole batch of states at once.

QT-Opt (Kalashnikov et al. 2018, arXiv 1806.10293, section 4.2) maximises its critic this way, with 64
samples, 6 elites and 2 iterations: sample from a Gaussian per state, keep the best, refit, repeat. Here
every iteration is one call of the critic on [batch * samples] state-action pairs, with no Python loop
over states or samples. The standard-normal draws come in as a tensor, so a fixed noise table makes the
maximiser a deterministic function of the state (the exported policy stores one as a buffer).
"""

from __future__ import annotations

import torch
from torch import nn

SAMPLES, ELITES, ITERATIONS = 64, 6, 2  # the paper's settings (section 4.2)
INIT_STD = 1.0  # the first Gaussian, N(0, 1) clipped to [-1, 1]: covers the box and puts samples on its faces


class CEMMaximizer(nn.Module):
    """argmax over actions of `q(obs, action)` (a module returning [N] values for [N, ...] inputs).

    A critic with encode(obs) -> features and head(features, action) (robotrl.nets.QCritic) has each state's
    features computed once and shared by all of its samples (a pixel critic's convolutions run B times, not B x
    samples); any other q module is evaluated whole per sample.

    forward(obs) uses the stored noise table (deterministic: the deployed policy); maximize(obs, noise) takes
    fresh draws (training targets, exploration). The answer is the best of every evaluated sample and of
    the final fitted mean, so an extra iteration never returns a worse action.
    """

    def __init__(self, q: nn.Module, action_dim: int, samples: int = SAMPLES, elites: int = ELITES,
                 iterations: int = ITERATIONS, init_std: float = INIT_STD, seed: int = 0):
        super().__init__()
        if not 1 <= elites <= samples:
            raise ValueError(f"CEM needs 1 <= elites <= samples, got elites={elites}, samples={samples}")
        if not (hasattr(q, "encode") and hasattr(q, "head")):
            q = _Whole(q)
        self.q, self.action_dim, self.elites, self.init_std = q, action_dim, elites, init_std
        table = torch.randn(iterations, samples, action_dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("noise_table", table)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() == 1:
            return self.maximize(obs.unsqueeze(0), self.noise_table)[0]
        return self.maximize(obs, self.noise_table)

    @torch.jit.export
    def maximize(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """obs [B, o]; noise [iterations, samples, d] (shared by all states) or [iterations, B, samples, d].
        Returns [B, d] in [-1, 1]."""
        return self.maximize_features(self.q.encode(obs), noise)

    @torch.jit.export
    def maximize_features(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """maximize() for states already encoded by the critic's encode(): [B, features] -> [B, d]."""
        return self._search(features, noise, False)[0]

    @torch.jit.export
    def decision_margins(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """[B]: per state, the smallest relative Q gap behind any choice the search made between two different actions
        (best and runner-up, the last elite and the first sample left out, each iteration's best against the best
        so far, the fitted mean against the best sample). Another runtime's float rounding (ONNX Runtime,
        AOTInductor's kernels) can flip only a choice whose gap is of that rounding's size, so a state with a
        margin near 0 may legitimately get a different action there; inf where no choice was between two
        different actions."""
        return self._search(features, noise, True)[1]

    def _search(self, features: torch.Tensor, noise: torch.Tensor,
                track_margins: bool) -> tuple[torch.Tensor, torch.Tensor]:
        batch, d = features.shape[0], self.action_dim
        samples = noise.shape[-2]
        width = features.shape[-1]
        per_sample = features.unsqueeze(1).expand(batch, samples, width).reshape(batch * samples, width)
        mean = torch.zeros(batch, d, dtype=features.dtype, device=features.device)
        std = torch.full((batch, d), self.init_std, dtype=features.dtype, device=features.device)
        best_a = mean
        best_q = torch.full((batch,), -float("inf"), dtype=features.dtype, device=features.device)
        margins = torch.full((batch,), float("inf"), dtype=features.dtype, device=features.device)
        for i in range(noise.shape[0]):
            actions = (mean.unsqueeze(1) + std.unsqueeze(1) * noise[i]).clamp(-1.0, 1.0)  # [B, N, d]
            q = self.q.head(per_sample, actions.reshape(batch * samples, d)).reshape(batch, samples)
            top_q, top = q.topk(self.elites, dim=1)
            elite = actions.gather(1, top.unsqueeze(-1).expand(batch, self.elites, d))
            if track_margins:
                ranked_q, ranked = q.topk(min(self.elites + 1, samples), dim=1)
                ranked_a = actions.gather(1, ranked.unsqueeze(-1).expand(batch, ranked.shape[1], d))
                for r in [0, self.elites - 1]:
                    if r + 1 < ranked.shape[1]:
                        margins = _smaller_margin(margins, ranked_q[:, r], ranked_a[:, r],
                                                  ranked_q[:, r + 1], ranked_a[:, r + 1])
                if i > 0:  # the first iteration's best is compared with -inf: no choice
                    margins = _smaller_margin(margins, top_q[:, 0], elite[:, 0], best_q, best_a)
            better = top_q[:, 0] > best_q
            best_a = torch.where(better.unsqueeze(-1), elite[:, 0], best_a)
            best_q = torch.where(better, top_q[:, 0], best_q)
            mean = elite.mean(1)
            std = elite.std(1, unbiased=False) if self.elites > 1 else std
        mean_q = self.q.head(features, mean)
        if track_margins:
            margins = _smaller_margin(margins, mean_q, mean, best_q, best_a)
        return torch.where((mean_q > best_q).unsqueeze(-1), mean, best_a), margins


def _smaller_margin(margins: torch.Tensor, q: torch.Tensor, action: torch.Tensor, other_q: torch.Tensor,
                    other_action: torch.Tensor) -> torch.Tensor:
    """margins lowered to |q - other_q| / max(1, |q|, |other_q|) where the two actions differ (a choice between
    equal actions decides nothing: samples clamped onto the same corner of the box tie exactly)."""
    differ = (action != other_action).any(-1)
    scale = torch.maximum(q.abs(), other_q.abs()).clamp(min=1.0)
    gap = torch.where(differ, (q - other_q).abs() / scale, torch.full_like(q, float("inf")))
    return torch.minimum(margins, gap)


class _Whole(nn.Module):
    """encode / head for a q module without them: the features are the state, the head the whole module."""

    def __init__(self, q: nn.Module):
        super().__init__()
        self.q = q

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def head(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.q(features, action)
