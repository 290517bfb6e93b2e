"""Network builders shared by the algorithms, and the running observation normaliser."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, final_init: float | None = None,
        layer_norm: bool = False) -> nn.Sequential:
    """ReLU MLP. Hidden layers keep PyTorch's default uniform(±1/sqrt(fan_in)) init; with `final_init`
    the output layer is uniform(±final_init) (Lillicrap et al. 2015 use 3e-3). `layer_norm` puts a
    LayerNorm before each ReLU (Ba et al. 2016), which keeps critics from drifting on flat value regions.
    The ReLUs work in place: neither a Linear's nor a LayerNorm's backward reads its output, so the activation
    needs no second tensor of the layer's size (the same numbers, less memory traffic)."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), *([nn.LayerNorm(width)] if layer_norm else []), nn.ReLU(inplace=True)]
        last = width
    out = nn.Linear(last, out_dim)
    if final_init is not None:
        nn.init.uniform_(out.weight, -final_init, final_init)
        nn.init.uniform_(out.bias, -final_init, final_init)
    layers.append(out)
    return nn.Sequential(*layers)


class DeterministicActor(nn.Module):
    """mu(s) = tanh(MLP(s)), an action in [-1, 1]^d."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], final_init: float | None = 3e-3):
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, final_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


def tanh_log_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u| (SAC appendix C, eq. 21)."""
    return 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))


class SquashedGaussianActor(nn.Module):
    """pi(a|s): a = tanh(u), u ~ N(mu(s), sigma(s)^2). forward() is the deterministic tanh(mu(s))."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        return mu, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic (deployed) action tanh(mu(s)); kept TorchScript-friendly for export."""
        return torch.tanh(self.net(obs).chunk(2, dim=-1)[0])

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised a = tanh(mu + sigma * eps) and log pi(a|s), summed over action dimensions."""
        mu, log_std = self.distribution(obs)
        eps = torch.randn_like(mu)
        u = mu + log_std.exp() * eps
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return torch.tanh(u), log_prob - tanh_log_det_jacobian(u).sum(-1)


class QCritic(nn.Module):
    """Q(s, a) from the concatenated state and action. encode / head split it for callers that evaluate many
    actions per state (CEM): the state's features once, then the head per action; here the features are the state."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], final_init: float | None = 3e-3,
                 layer_norm: bool = False):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, 1, final_init, layer_norm)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def head(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, action], dim=-1)).squeeze(-1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(obs), action)


class PixelEncoder(nn.Module):
    """An observation that ends with a (C, H, W) image -> [proprioception, image features].

    Three 3x3 stride-2 convolutions with ReLU, then a linear layer, LayerNorm and tanh to `features` (DrQ's image
    encoder, Kostrikov et al. 2020, with every layer strided and 16 channels first: 1.9M multiply-adds per 64 x 64
    image, a CPU budget); the entries before the image pass through unchanged. The image arrives as the
    observation normaliser leaves it (its [0, 255] bounds are known, so [-1, 1])."""

    def __init__(self, obs_dim: int, image_shape: Sequence[int], channels: Sequence[int] = (16, 32, 32),
                 features: int = 64):
        super().__init__()
        self.c, self.h, self.w = (int(x) for x in image_shape)
        self.proprio = obs_dim - self.c * self.h * self.w
        if self.proprio < 0:
            raise ValueError(f"an image of shape {tuple(image_shape)} does not fit in {obs_dim} observation entries")
        layers: list[nn.Module] = []
        last = self.c
        for width in channels:
            layers += [nn.Conv2d(last, width, 3, stride=2), nn.ReLU(inplace=True)]
            last = width
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, self.c, self.h, self.w)).numel()
        self.fc = nn.Linear(flat, features)
        self.norm = nn.LayerNorm(features)
        self.out_dim = self.proprio + features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        image = obs[:, self.proprio:].reshape(-1, self.c, self.h, self.w)
        z = torch.tanh(self.norm(self.fc(self.conv(image).flatten(1))))
        return torch.cat([obs[:, : self.proprio], z], dim=-1)


class PixelQCritic(QCritic):
    """Q(s, a) for an observation ending in an image: PixelEncoder features, then QCritic's MLP head."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], image_shape: Sequence[int],
                 final_init: float | None = 3e-3):
        encoder = PixelEncoder(obs_dim, image_shape)
        super().__init__(encoder.out_dim, action_dim, hidden, final_init)
        self.encoder = encoder

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)


class EnsembleLinear(nn.Module):
    """n independent linear layers applied as one batched matmul: [n, batch, in] -> [n, batch, out]."""

    def __init__(self, n: int, in_features: int, out_features: int, init_bound: float | None = None):
        super().__init__()
        bound = init_bound if init_bound is not None else 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TwinQ(nn.Module):
    """n critics Q_i(s, a) (default two: clipped double Q) evaluated as one batched module -> [n, batch]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], n: int = 2,
                 final_init: float | None = 3e-3):
        super().__init__()
        self.n = n
        widths = [obs_dim + action_dim, *hidden]
        self.hidden = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.out = EnsembleLinear(n, widths[-1], 1, init_bound=final_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1).unsqueeze(0).expand(self.n, -1, -1)
        for layer in self.hidden:
            x = layer(x).relu_()  # in place: baddbmm's backward reads its inputs, not its output
        return self.out(x).squeeze(-1)

    def first(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q_1(s, a) alone, [batch] (TD3's actor loss needs no other member)."""
        x = torch.cat([obs, action], dim=-1)
        for layer in self.hidden:
            x = torch.addmm(layer.bias[0], x, layer.weight[0]).relu_()
        return torch.addmm(self.out.bias[0], x, self.out.weight[0]).squeeze(-1)


class NAFHead(nn.Module):
    """Normalized Advantage Function network (Gu et al. 2016, arXiv 1603.00748, eq. 2-4).

    A shared ReLU trunk feeds three linear heads: V(s), mu(s) = tanh(.) in [-1, 1]^n, and the n(n+1)/2
    entries of a lower-triangular L(s). P(s) = L L^T + eps I and Q(s, a) = V(s) - 1/2 (a - mu)^T P (a - mu),
    so argmax_a Q(s, a) = mu(s) exactly. forward() is mu(s), the deployed policy.

    L's diagonal goes through softplus instead of the paper's exp: exp overflows float32 above 88 and its
    gradient grows with it, while softplus is linear there. The eps I term (eps = 1e-3, in squared
    normalised-action units, so at most 0.002 n of advantage) keeps P numerically positive definite: with
    a tiny diagonal and O(1) off-diagonal entries, L L^T alone is singular to working precision.
    """

    EPS = 1e-3

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]):
        super().__init__()
        if not hidden:
            raise ValueError("NAFHead needs at least one hidden layer for its shared trunk")
        self.action_dim = action_dim
        self.trunk = nn.Sequential(mlp(obs_dim, hidden[:-1], hidden[-1]), nn.ReLU(inplace=True))
        self.value_head = nn.Linear(hidden[-1], 1)
        self.mu_head = nn.Linear(hidden[-1], action_dim)
        self.l_head = nn.Linear(hidden[-1], action_dim * (action_dim + 1) // 2)
        rows, cols = torch.tril_indices(action_dim, action_dim)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)
        self.register_buffer("on_diagonal", rows == cols, persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mu_head(self.trunk(obs)))

    def lower_triangular(self, entries: torch.Tensor) -> torch.Tensor:
        """[batch, n(n+1)/2] raw head outputs -> [batch, n, n] L with a non-negative diagonal."""
        entries = torch.where(self.on_diagonal, nn.functional.softplus(entries), entries)
        lower = entries.new_zeros(*entries.shape[:-1], self.action_dim, self.action_dim)
        lower[..., self.tril_rows, self.tril_cols] = entries
        return lower

    def precision(self, lower: torch.Tensor) -> torch.Tensor:
        """P = L L^T + eps I, [batch, n, n]."""
        eye = torch.eye(self.action_dim, dtype=lower.dtype, device=lower.device)
        return lower @ lower.transpose(-1, -2) + self.EPS * eye

    def heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """V(s) [batch], mu(s) [batch, n], L(s) [batch, n, n]."""
        h = self.trunk(obs)
        return self.value_head(h).squeeze(-1), torch.tanh(self.mu_head(h)), self.lower_triangular(self.l_head(h))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.trunk(obs)).squeeze(-1)

    def advantage(self, action: torch.Tensor, mu: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        """A = -1/2 (a - mu)^T (L L^T + eps I) (a - mu) = -1/2 (||L^T d||^2 + eps ||d||^2), batched (eq. 3)."""
        d = action - mu
        z = (lower.transpose(-1, -2) @ d.unsqueeze(-1)).squeeze(-1)
        return -0.5 * (z.pow(2).sum(-1) + self.EPS * d.pow(2).sum(-1))

    def q(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        value, mu, lower = self.heads(obs)
        return value + self.advantage(action, mu, lower)


def policy_gradient_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float,
                        orthogonal: bool = True, activation: str = "tanh") -> nn.Sequential:
    """MLP of the on-policy algorithms (tanh or relu hidden units). With `orthogonal` (Saxe et al. 2014, as the PPO
    implementations use), hidden layers get orthogonal weights of gain sqrt(2) and the output layer gain `out_gain`
    (0.01 for a policy mean, 1 for a value), biases zero."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), nn.Tanh() if activation == "tanh" else nn.ReLU()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    if orthogonal:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        for i, layer in enumerate(linears):
            nn.init.orthogonal_(layer.weight, gain=out_gain if i == len(linears) - 1 else math.sqrt(2.0))
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


_DIRECT_ACTIVATIONS = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}


def mlp_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """net(x) for a Sequential of Linear / ReLU / Tanh layers without hooks, calling each layer's op directly (the
    same ops, so the same numbers): nn.Module's per-call dispatch costs more than a 256-wide layer at batch 1,
    about a tenth of an on-policy env step here. Any other network is called as it is."""
    if type(net) is not nn.Sequential:
        return net(x)
    layers = net._modules.values()
    if net._forward_hooks or net._forward_pre_hooks or any(
            (type(m) is not nn.Linear and type(m) not in _DIRECT_ACTIVATIONS) or m._forward_hooks
            or m._forward_pre_hooks for m in layers):
        return net(x)
    for layer in layers:
        if type(layer) is nn.Linear:
            params = layer._parameters
            x = F.linear(x, params["weight"], params["bias"])
        else:
            x = _DIRECT_ACTIVATIONS[type(layer)](x)
    return x


LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(mu(s), diag(exp(log_std))^2) with a state-independent log std; forward() is the mean, the
    deployed (deterministic) action. Samples are unbounded; the env boundary clips them to [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], log_std_init: float = 0.0,
                 orthogonal: bool = True, activation: str = "tanh"):
        super().__init__()
        self.mean = policy_gradient_mlp(obs_dim, hidden, action_dim, 0.01, orthogonal, activation)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean(obs)

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = mlp_forward(self.mean, obs)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a ~ pi(.|s), log pi(a|s) summed over action dims), written out rather than through
        torch.distributions.Normal, whose construction and argument checks cost more than the network at batch 1."""
        mean = mlp_forward(self.mean, obs)
        noise = torch.randn_like(mean)
        action = torch.addcmul(mean, noise, self.log_std.exp())
        return action, (-0.5 * noise.square() - self.log_std - LOG_SQRT_2PI).sum(-1)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi(a|s), entropy of pi(.|s)), each summed over action dims: Normal's log density and entropy."""
        z = (actions - mlp_forward(self.mean, obs)) * (-self.log_std).exp()
        log_prob = (-0.5 * z.square() - self.log_std - LOG_SQRT_2PI).sum(-1)
        entropy = (0.5 + LOG_SQRT_2PI + self.log_std).sum().expand(log_prob.shape)
        return log_prob, entropy


class ObsNormalizer(nn.Module):
    """Running mean / variance of observations (parallel-variance update, float64 statistics).

    forward() maps raw observations to clip((obs - mean) / sqrt(var + eps), ±clip) in float32.
    Disabled, it is the identity; exported policies embed it as buffers.

    Dimensions whose observation-space bounds (`low`, `high`) are both finite have a known range: they are mapped
    from [low, high] to [-1, 1] and never updated, so a feature the data has not yet covered (grasp's time left,
    late in an episode) is not stretched far outside the range the networks trained on.
    """

    def __init__(self, obs_dim: int, enabled: bool = True, clip: float = 10.0, eps: float = 1e-8,
                 low: np.ndarray | None = None, high: np.ndarray | None = None):
        super().__init__()
        self.enabled, self.clip, self.eps = enabled, clip, eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(obs_dim, dtype=torch.float64))
        self.known = None  # (mask, centre, half-range squared) of the dimensions with finite bounds, in mask order
        if low is not None and high is not None:
            low, high = np.broadcast_to(low, obs_dim), np.broadcast_to(high, obs_dim)
            mask = np.isfinite(low) & np.isfinite(high) & (high > low)
            if mask.any():
                low, high = low[mask].astype(np.float64), high[mask].astype(np.float64)
                self.known = (mask, (low + high) / 2.0, ((high - low) / 2.0) ** 2)
                self._fix_known()

    def _fix_known(self) -> None:
        if self.known is not None:
            mask, centre, half_range_sq = self.known
            self.mean.numpy()[mask], self.var.numpy()[mask] = centre, half_range_sq

    def update(self, obs: np.ndarray) -> None:
        """Fold a batch of raw observations (or one) into the statistics, in numpy on views of the (CPU) buffers, as
        torch ops on an 11-float vector cost ~10x their arithmetic."""
        if not self.enabled:
            return
        batch = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        if batch.shape[0] == 1:
            self.update_moments(1, batch[0], 0.0)
        else:
            self.update_moments(batch.shape[0], batch.mean(0), batch.var(0))

    def update_moments(self, n: int, b_mean: np.ndarray, b_var: np.ndarray | float) -> None:
        """Fold in n observations given by their mean and (population) variance: Chan et al.'s parallel update, so
        a distributed collector can send the moments of what it saw instead of the rows."""
        if not self.enabled or n == 0:
            return
        mean, var, count = self.mean.numpy(), self.var.numpy(), self.count.numpy()
        total = count + n
        delta = b_mean - mean
        m2 = var * count + delta**2 * (count * n / total) + np.asarray(b_var) * n
        mean += delta * (n / total)
        var[:] = m2 / total
        count[...] = total
        self._fix_known()

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """forward() in numpy (float32, the same operations): the loops' per-step path."""
        if not self.enabled:
            return np.asarray(obs, dtype=np.float32)
        mean = self.mean.numpy().astype(np.float32)
        inv_std = (1.0 / np.sqrt(self.var.numpy() + self.eps)).astype(np.float32)
        return np.clip((np.asarray(obs, dtype=np.float32) - mean) * inv_std, -self.clip, self.clip)

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1/std) as float32, for freezing into an exported module."""
        if not self.enabled:
            dim = self.mean.shape[0]
            return torch.zeros(dim), torch.ones(dim)
        return self.mean.float(), (1.0 / torch.sqrt(self.var + self.eps)).float()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        mean, inv_std = self.scale_shift()
        return ((obs - mean.to(obs.device)) * inv_std.to(obs.device)).clamp(-self.clip, self.clip)


class DeployedPolicy(nn.Module):
    """raw observation -> action in actuator units, self-contained for export.

    normalise (frozen statistics) -> deterministic policy in [-1, 1] -> rescale to [low, high] -> clamp.
    A wrong observation width raises; a non-finite observation (or policy output) yields the safe action,
    zeros in the normalised space, i.e. the bounds' midpoint.

    At batch 1 an exported policy's latency is the interpreter's cost per op, not arithmetic, so forward() is
    written in as few ops as the guarantees allow (issue 6): the rescale is one addcmul, the non-finite guard is a
    NaN "poison" term plus one nan_to_num, and 1-D input needs no reshaping.
    """

    def __init__(self, policy: nn.Module, obs_mean: torch.Tensor, obs_inv_std: torch.Tensor, obs_clip: float,
                 low: torch.Tensor, high: torch.Tensor):
        super().__init__()
        self.policy = policy
        self.obs_dim = int(obs_mean.shape[0])
        self.obs_clip = float(obs_clip)
        low, high = low.detach().clone().float(), high.detach().clone().float()
        self.register_buffer("obs_mean", obs_mean.detach().clone().float())
        self.register_buffer("obs_inv_std", obs_inv_std.detach().clone().float())
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("mid", (low + high) * 0.5)
        self.register_buffer("half_range", (high - low) * 0.5)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() == 0 or obs.dim() > 2 or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"expected observation of shape [{self.obs_dim}] or [batch, {self.obs_dim}], "
                             f"got {list(obs.shape)}")
        x = obs.to(torch.float32)
        # 0 * x is 0 for every finite entry and NaN for an inf or NaN one, so the row's sum is 0 or NaN; added to
        # the policy's output it turns the whole action into NaN, which nan_to_num maps to the safe zero. A clamp
        # alone would pass an infinite observation on as the finite clip value.
        poison = (x * 0.0).sum(-1, keepdim=True)
        a = torch.nan_to_num(self.policy(self.normalized(x)) + poison, nan=0.0, posinf=0.0, neginf=0.0)
        # No clamp of a to [-1, 1] first: the clamp to [low, high] bounds the action all the same.
        return torch.addcmul(self.mid, a, self.half_range).clamp(self.low, self.high)

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """float32 observation -> the policy's input (frozen statistics, clipped)."""
        # (x - mean) * inv_std, not x * inv_std - mean * inv_std in one addcmul: with a near-constant observation
        # inv_std reaches 1e4 and the two large products cancel, costing ~1e-4 in the action (seen on push).
        return ((x - self.obs_mean) * self.obs_inv_std).clamp(-self.obs_clip, self.obs_clip)
