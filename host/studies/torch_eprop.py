"""Studies layer: a PyTorch port of the golden model's batched training step (host/reference/golden.py),
the GPU side of the energy study. Same equations and per-step order (section 10 of the reference
notes), batched over samples, on any torch device; checked against the golden model in
tests/studies/test_torch_eprop.py. torch is an optional extra (`pip install .[torch]`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.reference.golden import Constants, _SQRT_2PI_F
from s2eprop.host.weights import Weights


def require_torch() -> Any:
    try:
        import torch
    except ImportError:
        from s2eprop.host.errors import HostError

        raise HostError("the GPU side of the energy study needs PyTorch: pip install 'torch==2.13.0' "
                        "(a CPU build; or pip install .[torch])") from None
    return torch


@dataclass
class TorchStep:
    loss: Any       # (B,) cross-entropy per sample
    grads: dict[str, Any]


class TorchEprop:
    """Golden-model e-prop (multi-Gaussian surrogate, symmetric feedback) with Adam, in torch."""

    def __init__(self, net: NetworkConfig, train: TrainConfig, weights: Weights, device: str = "cpu",
                 dtype: Any = None) -> None:
        torch = require_torch()
        self.torch, self.net, self.train = torch, net, train
        self.dtype = dtype or torch.float32
        self.device = device
        c = Constants.of(net, np.float32 if self.dtype == torch.float32 else np.float64)
        self.c = {k: float(getattr(c, k)) for k in ("alpha", "rho", "kappa", "one_alpha", "one_rho",
                                                    "one_alpha_x_one_rho", "beta", "v_th", "one_rho_x_beta")}
        t = lambda a: torch.tensor(np.asarray(a), dtype=self.dtype, device=device)  # noqa: E731
        self.w = {"w_in": t(weights.w_in), "w_rec": t(weights.w_rec), "w_out": t(weights.w_out)}
        self.m = {k: torch.zeros_like(v) for k, v in self.w.items()}
        self.v = {k: torch.zeros_like(v) for k, v in self.w.items()}
        self.step_count = 0

    def _psi(self, u: Any) -> Any:
        net, torch = self.net, self.torch
        sqrt_2pi = float(np.float32(_SQRT_2PI_F)) if self.dtype == torch.float32 else math.sqrt(2 * math.pi)

        def gauss(mu: float, s: float) -> Any:
            d = u - mu
            return torch.exp(-(d * d) / (2 * s * s)) / sqrt_2pi / s

        h, s = net.mg_height, net.mg_sigma
        side = net.mg_scale * s
        return net.mg_gamma * ((1 + h) * gauss(0.0, s) - h * gauss(s, side) - h * gauss(-s, side))

    def gradients(self, x: Any, y: Any) -> TorchStep:
        """Batch-mean e-prop gradients (no L2) of x (B, T, n_in), labels y (B,)."""
        torch, c, net, w = self.torch, self.c, self.net, self.w
        x = torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)
        y = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=self.device)
        b, n_steps, n_in = x.shape
        n_rec, n_pre = net.n_rec, net.n_in + net.n_rec
        z, v, a, zbar, zsum = (torch.zeros(b, n_rec, dtype=self.dtype, device=self.device) for _ in range(5))
        out = torch.zeros(b, net.n_out, dtype=self.dtype, device=self.device)
        ev = torch.zeros(b, n_pre, dtype=self.dtype, device=self.device)
        ea, eb, elig = (torch.zeros(b, n_pre, n_rec, dtype=self.dtype, device=self.device) for _ in range(3))
        keep = torch.ones(n_pre, n_rec, dtype=self.dtype, device=self.device)
        keep[torch.arange(n_in, n_pre), torch.arange(n_rec)] = 0  # recurrent diagonal: no trace
        for t in range(n_steps):
            z_prev = z
            a = c["rho"] * a + c["one_rho"] * z_prev
            thr = c["beta"] * a + c["v_th"]
            v = c["alpha"] * v + c["one_alpha"] * (x[:, t] @ w["w_in"] + z_prev @ w["w_rec"]) - z_prev * thr
            u = v - thr
            z = (u > 0).to(self.dtype)
            zbar = zbar * c["kappa"] + z
            out = zbar @ w["w_out"] + out
            zsum = zsum + zbar
            psi = self._psi(u)[:, None, :]
            ev = c["alpha"] * ev + torch.cat([x[:, t], z_prev], dim=1)
            ea = (ea * (c["rho"] - c["one_rho_x_beta"] * psi) + psi * ev[:, :, None] * c["one_alpha_x_one_rho"]) * keep
            e = psi * (c["one_alpha"] * ev[:, :, None] - c["beta"] * ea) * keep
            eb = eb * c["kappa"] + e
            elig = elig + eb
        m = out / n_steps
        logp = torch.log_softmax(m, dim=1)
        loss = -logp[torch.arange(b), y]
        err = torch.exp(logp)
        err[torch.arange(b), y] -= 1
        learning = (err @ w["w_out"].T) / n_steps
        g = (learning[:, None, :] * elig).sum(dim=0) / b
        g_out = (zsum[:, :, None] * err[:, None, :] / n_steps).sum(dim=0) / b
        return TorchStep(loss, {"w_in": g[:n_in], "w_rec": g[n_in:], "w_out": g_out})

    def train_batch(self, x: Any, y: Any) -> TorchStep:
        """Gradients + 2 l2 W, then one Adam step (bias-corrected lr, eps not corrected), as the golden model."""
        tr = self.train
        step = self.gradients(x, y)
        self.step_count += 1
        k = self.step_count
        lr_t = tr.lr * math.sqrt(1 - tr.adam_b2 ** k) / (1 - tr.adam_b1 ** k)
        for key, wk in self.w.items():
            g = step.grads[key] + 2 * tr.l2 * wk
            self.m[key] = tr.adam_b1 * self.m[key] + (1 - tr.adam_b1) * g
            self.v[key] = tr.adam_b2 * self.v[key] + (1 - tr.adam_b2) * g * g
            self.w[key] = wk - lr_t * self.m[key] / (self.torch.sqrt(self.v[key]) + tr.adam_eps)
        return step

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.w.items()}
