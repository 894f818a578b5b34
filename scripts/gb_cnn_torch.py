#!/usr/bin/env python3
"""Time training steps of the genomic-benchmarks baseline CNN in PyTorch (CPU), for a side-by-side
speed comparison with genolm's `gb-cnn` model.

The model is genomic-benchmarks' `models/torch.py` CNN layer for layer:

    Embedding(vocab, 100) -> transpose -> [Conv1d(100, 16, 8) -> BatchNorm1d -> ReLU -> MaxPool1d(2)]
    -> [Conv1d(16, 8, 8) -> BN -> ReLU -> MaxPool1d(2)] -> [Conv1d(8, 4, 8) -> BN -> ReLU -> MaxPool1d(2)]
    -> Flatten -> Linear(flat, 512) -> Linear(512, n_out)

with genolm's head and training setup instead of the original's: n_out = 2 logits with softmax
cross-entropy (the original has one sigmoid output), AdamW(lr=1e-3, weight_decay=0.01) (the
original uses Adam), and genolm's character vocabulary of 10 ids
([PAD] [UNK] [CLS] [SEP] [MASK] A C G T N). Inputs are random token ids drawn uniformly from the
nucleotide ids 5..9 and random 0/1 labels, drawn afresh for every step (inside the timed loop, as
in `genolm bench train`; it costs well under a millisecond).

    python3 scripts/gb_cnn_torch.py --batch 64 --length 300 --threads 2 --steps 200 [--json]

Each timed step is zero_grad -> forward -> loss -> backward -> optimizer step, after --warmup
(default 20) untimed steps. Prints steps/s and ms/step, or with --json a single JSON line. With
--repeats N the --steps are timed N times and the fastest is reported (all are in the JSON):
OpenMP's spinning threads make PyTorch's timings very sensitive to other load on a 2-core machine.
"""
import argparse
import json
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit(
        "gb_cnn_torch.py needs PyTorch: `pip install torch` (CUDA wheels, several GB), or on "
        "Debian/Ubuntu `apt-get install python3-torch` (CPU build) and run with /usr/bin/python3"
    )

VOCAB_SIZE = 10  # genolm's char tokenizer: [PAD] [UNK] [CLS] [SEP] [MASK] A C G T N
FIRST_BASE_ID, LAST_BASE_ID = 5, 9  # A .. N


class GbCnn(nn.Module):
    """genomic-benchmarks' baseline CNN with an `n_out`-logit output layer."""

    def __init__(self, vocab_size=VOCAB_SIZE, embedding_dim=100, input_len=300, n_out=2):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.conv1 = nn.Conv1d(embedding_dim, 16, kernel_size=8, bias=True)
        self.norm1 = nn.BatchNorm1d(16)
        self.relu = nn.ReLU()
        self.pool1 = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(16, 8, kernel_size=8, bias=True)
        self.norm2 = nn.BatchNorm1d(8)
        self.pool2 = nn.MaxPool1d(2)
        self.conv3 = nn.Conv1d(8, 4, kernel_size=8, bias=True)
        self.norm3 = nn.BatchNorm1d(4)
        self.pool3 = nn.MaxPool1d(2)
        self.flatten = nn.Flatten()
        self.lin1 = nn.Linear(self.flatten_size(input_len), 512)
        self.lin2 = nn.Linear(512, n_out)

    def features(self, x):
        x = self.embeddings(x).transpose(1, 2)  # (batch, length, emb) -> (batch, emb, length)
        x = self.pool1(self.relu(self.norm1(self.conv1(x))))
        x = self.pool2(self.relu(self.norm2(self.conv2(x))))
        x = self.pool3(self.relu(self.norm3(self.conv3(x))))
        return self.flatten(x)

    def flatten_size(self, input_len):
        # Evaluated in eval mode on a batch of two so batch norm neither fails nor updates its stats.
        was_training = self.training
        self.eval()
        with torch.no_grad():
            size = self.features(torch.zeros(2, input_len, dtype=torch.long)).shape[1]
        self.train(was_training)
        return size

    def forward(self, x):
        # No activation between the two dense layers, as in the original.
        return self.lin2(self.lin1(self.features(x)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="sequences per step (default 64)")
    p.add_argument("--length", type=int, default=300, help="tokens per sequence (default 300)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--steps", type=int, default=200, help="timed training steps (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    p.add_argument("--repeats", type=int, default=1,
                   help="time --steps this many times and report the fastest (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    a = p.parse_args(argv)
    if a.batch < 2:
        p.error("--batch must be at least 2 (batch norm needs more than one value per channel)")
    if a.length < 57:
        p.error("--length must be at least 57 (three conv k=8 + max-pool 2 blocks)")
    if a.steps < 1 or a.repeats < 1 or a.warmup < 0 or a.threads < 1:
        p.error("--steps, --repeats and --threads must be positive and --warmup non-negative")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = GbCnn(input_len=a.length)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()

    # A fresh random batch every step, as `genolm bench train` does (drawing it costs well under a
    # millisecond). Cycling a few fixed batches would let the model memorise them: the loss then
    # falls towards zero and tiny (denormal) gradients can slow the CPU kernels down.
    g = torch.Generator().manual_seed(a.seed)

    def step():
        x = torch.randint(FIRST_BASE_ID, LAST_BASE_ID + 1, (a.batch, a.length), generator=g)
        y = torch.randint(0, 2, (a.batch,), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        final_loss = loss.item()  # CPU ops are synchronous; .item() also forces any lazy work
        times.append(time.perf_counter() - t0)

    elapsed = min(times)
    steps_per_s = a.steps / elapsed
    ms_per_step = 1000.0 * elapsed / a.steps
    all_rates = [round(a.steps / t, 3) for t in times]
    if a.json:
        print(
            json.dumps(
                {
                    "framework": "pytorch",
                    "model": "gb-cnn",
                    "batch": a.batch,
                    "length": a.length,
                    "threads": a.threads,
                    "steps_per_s": round(steps_per_s, 3),
                    "ms_per_step": round(ms_per_step, 3),
                    "steps": a.steps,
                    "warmup": a.warmup,
                    "repeats": a.repeats,
                    "all_steps_per_s": all_rates,
                    "params": sum(t.numel() for t in model.parameters()),
                    "torch": torch.__version__,
                    "final_loss": round(final_loss, 5),
                }
            )
        )
    else:
        n_params = sum(t.numel() for t in model.parameters())
        print(
            f"pytorch {torch.__version__} gb-cnn ({n_params} parameters): batch {a.batch}, "
            f"length {a.length}, {a.threads} threads, {a.steps} steps after {a.warmup} warm-up"
        )
        best = " (best of " + ", ".join(f"{r:.2f}" for r in all_rates) + ")" if a.repeats > 1 else ""
        print(f"{steps_per_s:.2f} steps/s, {ms_per_step:.2f} ms/step{best} (final loss {final_loss:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
