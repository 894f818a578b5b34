#!/usr/bin/env python3
"""Check a genolm run directory's checkpoint from outside Rust.

    python3 scripts/check_checkpoint.py RUN_DIR [--tensor NAME] [--file model.safetensors]

Reads RUN_DIR/config.toml and prints the model kind, then loads RUN_DIR/model.safetensors (or
--file, e.g. last.safetensors; RUN_DIR may also be a .safetensors file itself, and then no config
is read). It prints every tensor's name, shape and dtype and checks that

  * the file's header is sound (offsets inside the file, sizes matching shape x dtype, no overlaps
    or holes), read directly, so that a file the `safetensors` package would refuse still gets a
    precise message;
  * `safetensors.numpy.load_file` loads it (when the package is installed: `pip install
    safetensors numpy`) with the same names, shapes and values, and so does
    `safetensors.torch.load_file` when torch is importable;
  * every floating-point value is finite.

With --tensor NAME it prints that tensor's first values and its sum. Exits 1 on any problem.
"""
import argparse
import json
import math
import os
import struct
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("check_checkpoint.py needs numpy: pip install numpy safetensors")

# safetensors dtype -> (bytes per element, numpy dtype or None when numpy has no such type)
DTYPES = {
    "BOOL": (1, "?"),
    "U8": (1, "u1"),
    "I8": (1, "i1"),
    "F8_E5M2": (1, None),
    "F8_E4M3": (1, None),
    "I16": (2, "<i2"),
    "U16": (2, "<u2"),
    "F16": (2, "<f2"),
    "BF16": (2, None),  # decoded by hand: the top half of an f32
    "I32": (4, "<i4"),
    "U32": (4, "<u4"),
    "F32": (4, "<f4"),
    "I64": (8, "<i8"),
    "U64": (8, "<u8"),
    "F64": (8, "<f8"),
}
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E5M2", "F8_E4M3"}
MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors library enforces


class Problems:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)
        print(f"PROBLEM: {msg}")


def read_header(path, problems):
    """Parse and validate the safetensors header; returns (entries, metadata, data_start, raw) or
    None. entries: name -> dict(dtype, shape, begin, end), begins relative to data_start."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        problems.add(f"{path}: {len(raw)} bytes, too short for a safetensors file")
        return None
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        problems.add(f"{path}: header length {n} does not fit in a {len(raw)}-byte file")
        return None
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.add(f"{path}: header is not valid JSON: {e}")
        return None
    if not isinstance(header, dict):
        problems.add(f"{path}: header is not a JSON object")
        return None
    metadata = header.pop("__metadata__", None)
    data_len = len(raw) - 8 - n
    entries = {}
    for name, info in header.items():
        try:
            dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            problems.add(f"{name}: malformed header entry {info!r} ({e})")
            continue
        if dtype not in DTYPES:
            problems.add(f"{name}: unknown dtype {dtype}")
            continue
        want = math.prod(shape) * DTYPES[dtype][0]
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= data_len:
            problems.add(f"{name}: offsets [{begin}, {end}) outside the {data_len}-byte data")
            continue
        if end - begin != want:
            problems.add(f"{name}: {end - begin} bytes for shape {shape} of {dtype} ({want} expected)")
            continue
        entries[name] = {"dtype": dtype, "shape": shape, "begin": begin, "end": end}
    if len(entries) < len(header):
        return entries, metadata, 8 + n, raw  # the layout checks below would only add noise
    pos = 0
    for name, e in sorted(entries.items(), key=lambda kv: (kv[1]["begin"], kv[1]["end"])):
        if e["begin"] < pos:
            problems.add(f"{name}: its bytes overlap the previous tensor's")
        elif e["begin"] > pos:
            problems.add(f"{name}: {e['begin'] - pos} unused bytes before it (a hole)")
        pos = max(pos, e["end"])
    if entries and pos != data_len:
        problems.add(f"{path}: {data_len - pos} bytes after the last tensor")
    return entries, metadata, 8 + n, raw


def decode(entry, raw, data_start):
    """A tensor's values as a numpy array (BF16 widened to float32), or None for FP8."""
    dtype, shape = entry["dtype"], entry["shape"]
    buf = raw[data_start + entry["begin"] : data_start + entry["end"]]
    if dtype == "BF16":
        bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    np_dtype = DTYPES[dtype][1]
    if np_dtype is None:
        return None
    return np.frombuffer(buf, dtype=np_dtype).reshape(shape)


def model_kind(run_dir, problems):
    path = os.path.join(run_dir, "config.toml")
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            problems.add("reading config.toml needs Python >= 3.11 (tomllib) or `pip install tomli`")
            return
    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except FileNotFoundError:
        problems.add(f"{path}: missing")
        return
    except (OSError, tomllib.TOMLDecodeError) as e:
        problems.add(f"{path}: {e}")
        return
    model = cfg.get("model")
    if not isinstance(model, dict):
        problems.add(f"{path}: no [model] table")
        return
    backbone = model.get("backbone")
    kind = backbone.get("kind") if isinstance(backbone, dict) else model.get("kind")
    if not kind:
        problems.add(f"{path}: no model kind ([model.backbone] kind)")
        return
    details = [f"{k} {model[k]}" for k in ("vocab_size", "seq_len", "num_classes") if k in model]
    if "task" in cfg:
        details.append(f"task {cfg['task']}")
    if "classes" in cfg:
        details.append("classes " + ", ".join(map(str, cfg["classes"])))
    print(f"model kind: {kind}" + (f" ({'; '.join(details)})" if details else ""))


def cross_check(path, entries, arrays, problems):
    """Compare our decoding with safetensors.numpy (and safetensors.torch if importable)."""
    exotic = any(e["dtype"] in ("BF16", "F8_E5M2", "F8_E4M3") for e in entries.values())
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("note: the safetensors package is not installed (pip install safetensors); "
              "checked with the built-in reader only")
        return
    try:
        loaded = load_file(path)
    except Exception as e:  # noqa: BLE001 - report whatever the library raises
        if exotic:  # numpy has no bfloat16 / float8
            print(f"note: safetensors.numpy cannot load this file ({e})")
        else:
            problems.add(f"safetensors.numpy.load_file failed: {e}")
    else:
        compare("safetensors.numpy", {k: np.asarray(v) for k, v in loaded.items()}, arrays,
                problems)
    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file as load_torch
    except ImportError:
        return
    try:
        loaded = load_torch(path)
    except Exception as e:  # noqa: BLE001
        problems.add(f"safetensors.torch.load_file failed: {e}")
        return
    compare("safetensors.torch",
            {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in loaded.items()},
            arrays, problems)


def compare(what, loaded, arrays, problems):
    if set(loaded) != set(arrays):
        problems.add(f"{what} sees tensors {sorted(set(loaded) ^ set(arrays))} differently")
        return
    for name, ours in arrays.items():
        theirs = loaded[name]
        if ours is None:
            continue
        if list(theirs.shape) != list(ours.shape):
            problems.add(f"{what}: {name} has shape {list(theirs.shape)}, header says {list(ours.shape)}")
        elif not np.array_equal(theirs.astype(ours.dtype), ours, equal_nan=ours.dtype.kind == "f"):
            problems.add(f"{what}: {name} values differ from the raw bytes")
    print(f"{what}: loaded {len(loaded)} tensors, identical")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a genolm run directory (or a .safetensors file)")
    p.add_argument("--tensor", help="print this tensor's first values and its sum")
    p.add_argument("--file", default="model.safetensors",
                   help="checkpoint file in RUN_DIR (default model.safetensors; or last.safetensors)")
    p.add_argument("--first", type=int, default=10, help="how many values --tensor prints (default 10)")
    a = p.parse_args(argv)
    problems = Problems()

    if os.path.isfile(a.run_dir):
        path = a.run_dir
    elif os.path.isdir(a.run_dir):
        path = os.path.join(a.run_dir, a.file)
        model_kind(a.run_dir, problems)
    else:
        problems.add(f"{a.run_dir}: no such directory or file")
        return 1
    if not os.path.isfile(path):
        problems.add(f"{path}: missing")
        return 1

    parsed = read_header(path, problems)
    if parsed is None:
        return 1
    entries, metadata, data_start, raw = parsed
    if not entries:
        problems.add(f"{path}: no tensors")
        return 1
    arrays = {name: decode(e, raw, data_start) for name, e in entries.items()}

    total = sum(math.prod(e["shape"]) for e in entries.values())
    print(f"weights: {path} ({len(raw)} bytes, {len(entries)} tensor{'s' if len(entries) != 1 else ''}, "
          f"{total} values)")
    if metadata:
        print(f"metadata: {json.dumps(metadata, sort_keys=True)}")
    width = max(len(n) for n in entries)
    for name in sorted(entries):
        e = entries[name]
        print(f"  {name:<{width}}  {str(e['shape']):<16} {e['dtype']}")

    bad = 0
    for name in sorted(entries):
        arr, dtype = arrays[name], entries[name]["dtype"]
        if dtype not in FLOAT_DTYPES:
            continue
        if arr is None:
            print(f"note: {name}: {dtype} values not checked (numpy has no such type)")
            continue
        n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        if n_nan or n_inf:
            bad += 1
            problems.add(f"{name}: {n_nan} NaN and {n_inf} infinite values of {arr.size}")
    if not bad:
        print("all floating-point values are finite")

    cross_check(path, entries, arrays, problems)

    if a.tensor is not None:
        if a.tensor not in entries:
            close = [n for n in sorted(entries) if a.tensor.split(".")[-1] in n][:10]
            problems.add(f"no tensor named {a.tensor!r}" + (f" (similar: {', '.join(close)})" if close else ""))
        else:
            arr = arrays[a.tensor]
            if arr is None:
                print(f"{a.tensor}: {entries[a.tensor]['dtype']} values cannot be shown")
            else:
                flat = arr.reshape(-1)
                first = ", ".join(f"{v:.6g}" if arr.dtype.kind == "f" else str(v)
                                  for v in flat[: a.first].tolist())
                acc = flat.astype(np.float64) if arr.dtype.kind in "fb" else flat.astype(np.int64)
                print(f"{a.tensor}: shape {list(arr.shape)} {entries[a.tensor]['dtype']}")
                print(f"  first {min(a.first, flat.size)} values: [{first}]")
                print(f"  sum: {acc.sum():.10g}" if arr.dtype.kind in "fb" else f"  sum: {acc.sum()}")

    if problems.items:
        print(f"{len(problems.items)} problem(s)")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
