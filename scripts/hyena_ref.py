#!/usr/bin/env python3
"""PyTorch reference for genolm's Hyena backbone (src/models/hyena.rs).

Builds HyenaDNA's Hyena stack (standalone_hyenadna.py: PositionalEmbedding, Sin,
ExponentialModulation, HyenaFilter, HyenaOperator of order 2, pre-norm Block with a tanh-GELU
MLP, final LayerNorm) in plain PyTorch, float64, with genolm's tensor names, in two modes:

  causal  HyenaDNA as is: short conv padded by 2 and cut to L, kernel over lags 0..L-1, the
          rfft convolution of HyenaDNA's `fftconv` (FFT size 2L).
  bidir   genolm's two-sided variant: centred short conv (padding 1), the filter evaluated at
          signed lags -(L-1)..L-1 (features [sign(lag) t_|lag|, cos(f w), -sin(f w)],
          w = 2 pi lag / L, decay exp(-t_|lag| |delta|)), convolved by rfft zero-padded to 4L.

Differences from HyenaDNA's code that do not change the function: each Sin has its own `freq`
(HyenaDNA shares one module), the positional features are recomputed for the input length
(HyenaDNA slices a table made for l_max; equal when l_max = L), the modulation shift is 0.

Every parameter is drawn at random (seeded) around its usual init. Writes
tests/fixtures/hyena_ref.safetensors with, for each mode M in {causal, bidir}:
  M.<genolm weight name>   the backbone's weights (embed.weight, layers.{i}.*, norm_f.*)
  M.ids         (B, L) int64 token ids
  M.out         (B, d_model, L) backbone output, channels-first like genolm
  M.filter_k    (d_model, K) layer 0's long kernel (K = L or 2L - 1)
  M.op_in       (B, L, d_model) a random input to layer 0's operator
  M.op_out      (B, L, d_model) the operator's output on it

Run with the system interpreter (PyTorch 1.13): /usr/bin/python3 scripts/hyena_ref.py
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_default_dtype(torch.float64)

D_MODEL, N_LAYER, FILTER_ORDER, EMB_DIM, SHORT = 8, 2, 16, 5, 3
VOCAB, BATCH, LEN = 10, 2, 48


def fftconv(u, k, D):
    """HyenaDNA's causal `fftconv`: u (B, D, L), k (D, L), D (D)."""
    seqlen = u.shape[-1]
    fft_size = 2 * seqlen
    k_f = torch.fft.rfft(k, n=fft_size) / fft_size
    u_f = torch.fft.rfft(u.to(dtype=k.dtype), n=fft_size)
    y = torch.fft.irfft(u_f * k_f, n=fft_size, norm="forward")[..., :seqlen]
    return y + u * D.unsqueeze(-1)


def fftconv_two_sided(u, k, D):
    """Two-sided: k (D, 2L-1), index j is lag j - (L-1); y[t] = sum_j k[j] u[t + L-1 - j]."""
    seqlen = u.shape[-1]
    n = 4 * seqlen  # >= L + K - 1 = 3L - 2: no wrap-around
    full = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)
    return full[..., seqlen - 1 : 2 * seqlen - 1] + u * D.unsqueeze(-1)


class Sin(nn.Module):
    def __init__(self, dim, w=1.0):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, dim))

    def forward(self, x):
        return torch.sin(self.freq * x)


def positional_features(emb_dim, seq_len, bidirectional):
    """HyenaDNA's PositionalEmbedding (z, t) for lags 0..L-1, or signed lags when bidirectional."""
    t = torch.linspace(0, 1, seq_len)  # L
    bands = (emb_dim - 1) // 2
    f = torch.linspace(1e-4, bands - 1, bands)[None]  # 1, bands
    if bidirectional:
        lag = torch.arange(-(seq_len - 1), seq_len)
    else:
        lag = torch.arange(seq_len)
    a = t[lag.abs()]
    s = torch.where(lag < 0, -a, a)
    w = (2 * math.pi * lag.to(torch.float64) / seq_len)[:, None]  # K, 1
    z = torch.exp(-1j * f * w)
    z = torch.cat([s[:, None], z.real, z.imag], dim=-1)  # K, emb_dim
    return z, a[:, None]


class HyenaFilter(nn.Module):
    def __init__(self, d_model, order, emb_dim):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(d_model))
        self.emb_dim = emb_dim
        self.implicit_filter = nn.Sequential(
            nn.Linear(emb_dim, order),
            Sin(order),
            nn.Linear(order, order),
            Sin(order),
            nn.Linear(order, order),
            Sin(order),
            nn.Linear(order, d_model, bias=False),
        )
        # ExponentialModulation(fast 0.3, slow 1.5, target 1e-2, shift 0)
        max_decay = math.log(1e-2) / 0.3
        min_decay = math.log(1e-2) / 1.5
        self.register_buffer(
            "deltas", torch.linspace(min_decay, max_decay, d_model)[None], persistent=False
        )

    def filter(self, seq_len, bidirectional):
        z, t = positional_features(self.emb_dim, seq_len, bidirectional)
        h = self.implicit_filter(z)  # K, d_model
        h = h * torch.exp(-t * self.deltas.abs())
        return h.transpose(0, 1)  # d_model, K


class HyenaOperator(nn.Module):
    def __init__(self, d_model, filter_order, emb_dim, bidirectional):
        super().__init__()
        self.d_model = d_model
        self.bidirectional = bidirectional
        inner = 3 * d_model
        self.in_proj = nn.Linear(d_model, inner)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(
            inner, inner, SHORT, padding=(SHORT - 1) // 2 if bidirectional else SHORT - 1,
            groups=inner,
        )
        self.filter_fn = HyenaFilter(d_model, filter_order, emb_dim)

    def forward(self, u):
        seq_len = u.size(-2)
        u = self.in_proj(u).transpose(1, 2)  # b d l
        uc = self.short_filter(u)[..., :seq_len]
        x0, x1, v = uc.split(self.d_model, dim=1)
        k = self.filter_fn.filter(seq_len, self.bidirectional)
        v = v * x1
        if self.bidirectional:
            v = fftconv_two_sided(v, k, self.filter_fn.bias)
        else:
            v = fftconv(v, k, self.filter_fn.bias)
        y = (v * x0).transpose(1, 2)
        return self.out_proj(y)


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, filter_order, emb_dim, bidirectional):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-5)
        self.mixer = HyenaOperator(d, filter_order, emb_dim, bidirectional)
        self.norm2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Mlp(d)

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Backbone(nn.Module):
    def __init__(self, vocab, d, n_layer, filter_order, emb_dim, bidirectional):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(
            Block(d, filter_order, emb_dim, bidirectional) for _ in range(n_layer)
        )
        self.norm_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm_f(x).transpose(1, 2)  # (B, d, L)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
        "hyena_ref.safetensors",
    )
    torch.manual_seed(20240611)
    tensors = {}
    for mode, bidir in [("causal", False), ("bidir", True)]:
        model = Backbone(VOCAB, D_MODEL, N_LAYER, FILTER_ORDER, EMB_DIM, bidir)
        with torch.no_grad():
            for name, p in model.named_parameters():
                is_norm = name.split(".")[-2].startswith("norm")
                if name.endswith(".freq") or (is_norm and name.endswith(".weight")):
                    p.copy_(1.0 + 0.3 * torch.randn_like(p))
                elif is_norm:
                    p.copy_(0.3 * torch.randn_like(p))
                else:
                    p.add_(0.1 * torch.randn_like(p))
        model.eval()
        ids = torch.randint(0, VOCAB, (BATCH, LEN), dtype=torch.int64)
        op_in = torch.randn(BATCH, LEN, D_MODEL)
        with torch.no_grad():
            out = model(ids)
            op = model.layers[0].mixer
            k = op.filter_fn.filter(LEN, bidir)
            op_out = op(op_in)
        for name, p in model.state_dict().items():
            tensors[f"{mode}.{name}"] = p.detach().clone().contiguous()
        tensors[f"{mode}.ids"] = ids
        tensors[f"{mode}.out"] = out.contiguous()
        tensors[f"{mode}.filter_k"] = k.contiguous()
        tensors[f"{mode}.op_in"] = op_in
        tensors[f"{mode}.op_out"] = op_out.contiguous()
        print(f"{mode}: out {tuple(out.shape)} |out| max {out.abs().max():.3f}, "
              f"k {tuple(k.shape)} |k| max {k.abs().max():.3f}, "
              f"op_out |max| {op_out.abs().max():.3f}")
    save_file(tensors, out_path)
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
