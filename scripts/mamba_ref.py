#!/usr/bin/env python3
"""PyTorch reference for genolm's Mamba backbone (src/models/mamba.rs).

Re-implements, in plain PyTorch (no mamba_ssm / caduceus import, no einops):
  * mamba_ssm's `selective_scan_ref` and the slow path of `mamba_simple.Mamba`,
  * mamba_ssm's `Block` / `MixerModel` residual + RMSNorm stack,
  * Caduceus' `BiMambaWrapper` (strategy "add", optional in/out projection tie),
  * Caduceus' `RCPSEmbedding`, `RCPSWrapper` and `RCPSAddNormWrapper`.

It builds four small seeded models (d_model 8, n_layer 2, d_state 4, d_conv 4, expand 2, float64)
and writes, under one prefix per variant, genolm-named weights, the token ids `(2, 40)` and the
expected backbone output `(B, C, L)` (channels first) to tests/fixtures/mamba_ref.safetensors:

  uni.        bidirectional=False
  bi.         bidirectional=True, weight_tie=True
  bi_untied.  bidirectional=True, weight_tie=False
  rc_bi.      bidirectional=True, weight_tie=True, rc_equivariant=True (output has 2 * d_model channels)

Run from the repository root:  /usr/bin/python3 scripts/mamba_ref.py
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

D_MODEL, N_LAYER, D_STATE, D_CONV, EXPAND = 8, 2, 4, 4, 2
BATCH, LENGTH, VOCAB = 2, 40, 10
# Character vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK] A C G T N; A<->T, C<->G, the rest fixed.
COMPLEMENT = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 8, 6: 7, 7: 6, 8: 5, 9: 9}


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """mamba_ssm.ops.selective_scan_interface.selective_scan_ref (real A, variable B and C of
    shape (batch, d_state, L)); kept in the input dtype (float64) instead of float32."""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D[:, None]
    if z is not None:
        out = out * F.silu(z)
    return out


class Mamba(nn.Module):
    """mamba_ssm.modules.mamba_simple.Mamba, slow path (no fused kernels)."""

    def __init__(self, d_model, d_state, d_conv, expand, dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        a = torch.arange(1, d_state + 1, dtype=torch.float64).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, hidden_states):
        batch, seqlen, _ = hidden_states.shape
        # xz = rearrange(W @ rearrange(h, "b l d -> d (b l)"), "d (b l) -> b d l")
        xz = (self.in_proj.weight @ hidden_states.reshape(batch * seqlen, -1).t())
        xz = xz.reshape(-1, batch, seqlen).permute(1, 0, 2)
        A = -torch.exp(self.A_log)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :seqlen])
        x_dbl = self.x_proj(x.permute(0, 2, 1).reshape(batch * seqlen, -1))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj.weight @ dt.t()
        dt = dt.reshape(-1, batch, seqlen).permute(1, 0, 2)
        B = B.reshape(batch, seqlen, -1).permute(0, 2, 1).contiguous()
        C = C.reshape(batch, seqlen, -1).permute(0, 2, 1).contiguous()
        y = selective_scan_ref(x, dt, A, B, C, self.D, z=z, delta_bias=self.dt_proj.bias,
                               delta_softplus=True)
        return self.out_proj(y.permute(0, 2, 1))


class BiMambaWrapper(nn.Module):
    """Caduceus BiMambaWrapper, strategy "add"."""

    def __init__(self, d_model, bidirectional, weight_tie, **kw):
        super().__init__()
        self.bidirectional = bidirectional
        self.mamba_fwd = Mamba(d_model, **kw)
        self.mamba_rev = None
        if bidirectional:
            self.mamba_rev = Mamba(d_model, **kw)
            if weight_tie:
                self.mamba_rev.in_proj.weight = self.mamba_fwd.in_proj.weight
                self.mamba_rev.out_proj.weight = self.mamba_fwd.out_proj.weight

    def forward(self, h):
        out = self.mamba_fwd(h)
        if self.bidirectional:
            out = out + self.mamba_rev(h.flip(dims=(1,))).flip(dims=(1,))
        return out


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    """mamba_ssm Block (prenorm, unfused): returns (mixer output, residual)."""

    def __init__(self, mixer, norm):
        super().__init__()
        self.mixer, self.norm = mixer, norm

    def forward(self, hidden, residual=None):
        residual = hidden + residual if residual is not None else hidden
        return self.mixer(self.norm(residual)), residual


class RCPSEmbedding(nn.Module):
    def __init__(self, vocab, d_model, complement_map):
        super().__init__()
        self.register_buffer("complement_map",
                             torch.tensor(list(complement_map.values()), dtype=torch.long))
        self.embedding = nn.Embedding(vocab, d_model)

    def rc(self, x):
        return torch.gather(self.complement_map.unsqueeze(0).expand(x.shape[0], -1), dim=1,
                            index=torch.flip(x, dims=[-1]))

    def forward(self, ids):
        fwd = self.embedding(ids)
        rc = torch.flip(self.embedding(self.rc(ids)), dims=[-2, -1])
        return torch.cat([fwd, rc], dim=-1)


class RCPSWrapper(nn.Module):
    def __init__(self, submodule):
        super().__init__()
        self.submodule = submodule

    @staticmethod
    def rc(x):
        return torch.flip(x, dims=[-2, -1])

    def forward(self, x):
        c = x.shape[-1]
        fwd = self.submodule(x[..., : c // 2])
        rc = self.submodule(self.rc(x[..., c // 2:]))
        return torch.cat([fwd, self.rc(rc)], dim=-1)


class RCPSAddNormWrapper(RCPSWrapper):
    def forward(self, x, residual=None, prenorm=False):
        c = x.shape[-1]
        if residual is None:
            residual = x
            x_fwd = self.submodule(x[..., : c // 2])
            x_rc = self.submodule(self.rc(x[..., c // 2:]))
            x = torch.cat([x_fwd, self.rc(x_rc)], dim=-1)
        else:
            residual_fwd = x[..., : c // 2] + residual[..., : c // 2]
            x_fwd = self.submodule(residual_fwd)
            residual_rc = self.rc(x[..., c // 2:]) + self.rc(residual[..., c // 2:])
            x_rc = self.submodule(residual_rc)
            residual = torch.cat([residual_fwd, self.rc(residual_rc)], dim=-1)
            x = torch.cat([x_fwd, self.rc(x_rc)], dim=-1)
        return x if not prenorm else (x, residual)


class RCPSMambaBlock(nn.Module):
    """Caduceus RCPSMambaBlock (unfused add-norm)."""

    def __init__(self, mixer, norm):
        super().__init__()
        self.mixer = RCPSWrapper(mixer)
        self.norm = RCPSAddNormWrapper(norm)

    def forward(self, hidden, residual=None):
        hidden, residual = self.norm(hidden, residual=residual, prenorm=True)
        return self.mixer(hidden), residual


class Backbone(nn.Module):
    """mamba_ssm MixerModel / Caduceus CaduceusMixerModel, returning (B, C, L)."""

    def __init__(self, bidirectional, weight_tie, rcps):
        super().__init__()
        self.rcps = rcps
        kw = dict(d_state=D_STATE, d_conv=D_CONV, expand=EXPAND)
        if rcps:
            self.embedding = RCPSEmbedding(VOCAB, D_MODEL, COMPLEMENT)
        else:
            self.embedding = nn.Embedding(VOCAB, D_MODEL)
        block = RCPSMambaBlock if rcps else Block
        self.layers = nn.ModuleList(
            block(BiMambaWrapper(D_MODEL, bidirectional, weight_tie, **kw), RMSNorm(D_MODEL))
            for _ in range(N_LAYER))
        self.norm_f = RCPSAddNormWrapper(RMSNorm(D_MODEL)) if rcps else RMSNorm(D_MODEL)

    def forward(self, ids):
        hidden, residual = self.embedding(ids), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        if self.rcps:
            hidden = self.norm_f(hidden, residual=residual, prenorm=False)
        else:
            residual = hidden + residual if residual is not None else hidden
            hidden = self.norm_f(residual)
        return hidden.permute(0, 2, 1).contiguous()

    def embedding_weight(self):
        return (self.embedding.embedding if self.rcps else self.embedding).weight

    def core(self, module):
        return module.submodule if self.rcps else module

    def genolm_weights(self, tied):
        """The parameters under genolm's names."""
        out = {"embed.weight": self.embedding_weight(), "norm_f.weight": self.core(self.norm_f).weight}
        for i, layer in enumerate(self.layers):
            p = f"layers.{i}."
            out[p + "norm.weight"] = self.core(layer.norm).weight
            bi = self.core(layer.mixer)
            dirs = [("mixer.", bi.mamba_fwd, True)]
            if bi.mamba_rev is not None:
                dirs.append(("mixer_rev.", bi.mamba_rev, not tied))
            for name, m, proj in dirs:
                q = p + name
                if proj:
                    out[q + "in_proj.weight"] = m.in_proj.weight
                    out[q + "out_proj.weight"] = m.out_proj.weight
                out[q + "conv1d.weight"] = m.conv1d.weight
                out[q + "conv1d.bias"] = m.conv1d.bias
                out[q + "x_proj.weight"] = m.x_proj.weight
                out[q + "dt_proj.weight"] = m.dt_proj.weight
                out[q + "dt_proj.bias"] = m.dt_proj.bias
                out[q + "A_log"] = m.A_log
                out[q + "D"] = m.D
        return {k: v.detach().clone().contiguous() for k, v in out.items()}


def perturb(model, gen):
    """Move the parameters that mamba_ssm initialises to constants away from them, so the test
    sees every weight (norm gains, D, A_log)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.submodule.weight") or name.endswith("norm.weight") \
                    or name.endswith("norm_f.weight") or name.endswith("norm_f.submodule.weight"):
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".D"):
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("A_log"):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))


def main():
    torch.set_default_dtype(torch.float64)
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "mamba_ref.safetensors")
    variants = [
        ("uni.", False, True, False),
        ("bi.", True, True, False),
        ("bi_untied.", True, False, False),
        ("rc_bi.", True, True, True),
    ]
    tensors = {}
    for k, (prefix, bidirectional, tied, rcps) in enumerate(variants):
        torch.manual_seed(1000 + k)
        gen = torch.Generator().manual_seed(2000 + k)
        model = Backbone(bidirectional, tied, rcps)
        perturb(model, gen)
        ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=gen)
        with torch.no_grad():
            y = model(ids)
        for name, t in model.genolm_weights(tied).items():
            tensors[prefix + name] = t
        tensors[prefix + "ids"] = ids.to(torch.int64).contiguous()
        tensors[prefix + "out"] = y
        print(f"{prefix:11s} output {tuple(y.shape)}, |out| max {y.abs().max().item():.4f}, "
              f"{sum(1 for n in tensors if n.startswith(prefix)) - 2} weights")
    save_file(tensors, out_path)
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
