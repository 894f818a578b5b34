#!/usr/bin/env python3
"""PyTorch reference for genolm's block-sparse transformer backbone (src/models/transformer.rs).

Builds the same backbone in plain PyTorch (float64, seeded): embedding -> n_layer pre-norm
blocks [x + attn(RMSNorm(x)); x + SwiGLU(RMSNorm(x))] with rotate-half RoPE on q and k ->
final RMSNorm -> (B, d_model, L) channels-first. Attention is computed densely under the dense
mask of genolm's block pattern with random_blocks = 0 (so no RNG has to be reproduced):
query block qb < global attends to every key; any other query block attends to key blocks
0..global and qb-window..=qb+window (causal: keys <= query only).

Writes genolm-named weights, the ids (int64), the expected non-causal output `out` and the
expected causal output `out_causal` (same weights) to tests/fixtures/transformer_ref.safetensors.

Run from the repository root with the system interpreter (PyTorch 1.13, safetensors):
    /usr/bin/python3 scripts/transformer_ref.py
"""

import argparse
import math

import torch
from safetensors.torch import save_file

VOCAB = 12
D_MODEL = 16
N_HEADS = 2
N_LAYER = 2
BLOCK = 8
WINDOW = 1
GLOBAL = 1
LENGTH = 50
BATCH = 2
THETA = 10000.0
EPS = 1e-6
MASK = -1e9


def mlp_hidden(d):
    # ceil(8 d / 3), rounded up to a multiple of 8 (genolm's mlp_hidden = 0 rule)
    h = -(-8 * d // 3)
    return -(-h // 8) * 8


def rms_norm(x, w):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x):
    # x: (B, H, L, dh)
    _, _, l, dh = x.shape
    inv = THETA ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
    ang = torch.arange(l, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    rot = torch.cat([-x2, x1], -1)
    return x * torch.cos(ang) + rot * torch.sin(ang)


def allowed(l, causal):
    """Dense boolean mask (L, L) of genolm's pattern with random_blocks = 0."""
    nb = -(-l // BLOCK)
    m = torch.zeros(l, l, dtype=torch.bool)
    full = WINDOW >= nb - 1
    for q in range(l):
        qb = q // BLOCK
        for k in range(l):
            kb = k // BLOCK
            if causal and k > q:
                continue
            if full or qb < GLOBAL or kb < GLOBAL or abs(kb - qb) <= WINDOW:
                m[q, k] = True
    return m


def forward(w, ids, causal):
    x = w["embed.weight"][ids]  # (B, L, D)
    b, l, d = x.shape
    dh = d // N_HEADS
    bias = torch.where(
        allowed(l, causal), torch.tensor(0.0, dtype=torch.float64), torch.tensor(MASK, dtype=torch.float64)
    )
    for i in range(N_LAYER):
        p = f"layers.{i}."
        h = rms_norm(x, w[p + "attn_norm.weight"])
        heads = lambda t: t.reshape(b, l, N_HEADS, dh).transpose(1, 2)
        q = rope(heads(h @ w[p + "attn.q_proj.weight"].T))
        k = rope(heads(h @ w[p + "attn.k_proj.weight"].T))
        v = heads(h @ w[p + "attn.v_proj.weight"].T)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
        o = torch.softmax(s, -1) @ v
        o = o.transpose(1, 2).reshape(b, l, d)
        x = x + o @ w[p + "attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "mlp_norm.weight"])
        g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["norm_f.weight"])
    return x.transpose(1, 2).contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/transformer_ref.safetensors")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    f64 = torch.float64
    d, hid = D_MODEL, mlp_hidden(D_MODEL)
    w = {"embed.weight": torch.randn(VOCAB, d, dtype=f64)}
    for i in range(N_LAYER):
        p = f"layers.{i}."
        w[p + "attn_norm.weight"] = 1.0 + 0.1 * torch.randn(d, dtype=f64)
        w[p + "mlp_norm.weight"] = 1.0 + 0.1 * torch.randn(d, dtype=f64)
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            w[p + "attn." + n + ".weight"] = torch.randn(d, d, dtype=f64) / math.sqrt(d)
        w[p + "mlp.gate_proj.weight"] = torch.randn(hid, d, dtype=f64) / math.sqrt(d)
        w[p + "mlp.up_proj.weight"] = torch.randn(hid, d, dtype=f64) / math.sqrt(d)
        w[p + "mlp.down_proj.weight"] = torch.randn(d, hid, dtype=f64) / math.sqrt(hid)
    w["norm_f.weight"] = 1.0 + 0.1 * torch.randn(d, dtype=f64)
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), dtype=torch.int64)
    with torch.no_grad():
        out = forward(w, ids, causal=False)
        out_causal = forward(w, ids, causal=True)
    tensors = {k: v.contiguous() for k, v in w.items()}
    tensors["ids"] = ids
    tensors["out"] = out
    tensors["out_causal"] = out_causal
    save_file(tensors, args.out)
    print(f"wrote {args.out}: {len(w)} weights, mlp_hidden {hid}, out {tuple(out.shape)}")


if __name__ == "__main__":
    main()
