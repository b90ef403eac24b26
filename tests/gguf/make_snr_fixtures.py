#!/usr/bin/env python3
"""Writes the GGUF files tests/it/gguf_scan.rs scans, and the oracle's SNR of their matrices.

  snr-llama.gguf   arch llama, 15 layers; each layer's attn_v is a 32x256 matrix in one type:
                   F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (gguf-py's quantizers applied to
                   a low-rank-plus-noise matrix), Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (random blocks
                   with sane f16 scales: gguf-py has no K-quant quantizer), then two matrices
                   whose rows are distinct unit vectors (all singular values equal: SNR +inf)
                   in F16 and Q8_0.
  snr-phi3.gguf    arch phi3, 2 layers; each attn_qkv is 512x256 (Q: 256 rows, K: 128, V: 128),
                   Q4_K and Q4_0: the seed's rule reads its V rows.
  snr.oracle.json  the reference: each matrix dequantized by gguf-py's `gguf.quants.dequantize`
                   evaluated in float64 (its source with np.float32 replaced by np.float64, as in
                   make_quant_fixtures.py; exact for these blocks), for attn_qkv the V rows
                   [384, 512) cut by hand (phi3: Q, then K, then V, each head_count_kv x
                   head_dim rows for K and V), written as F64 into a safetensors file under the
                   GGUF names (blk.N.attn_v.weight), and the unmodified oracle run on it:
                       python3 ../shared/tools/snr_oracle.py X.safetensors --match 'attn_v'
                   Its output is written as is, plus the sha256 of the GGUF files in
                   snr.oracle.sha256 (so a changed fixture is caught with a clear message).

Needs `pip install gguf numpy` (gguf 0.19.0 was used). Deterministic (seeded). Run from anywhere; --check regenerates
into a temporary folder and fails when the committed files differ.
"""
import argparse
import hashlib
import inspect
import json
import struct
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ORACLE = REPO.parent / "shared" / "tools" / "snr_oracle.py"

GGUF_PY_QUANTIZED = [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
K_QUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
# Where each K-quant keeps its f16 scale(s) d (and dmin).
SCALES = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def f64_quants():
    """gguf-py's quants module, evaluated in float64."""
    src = inspect.getsource(quants).replace("np.float32", "np.float64")
    mod = types.ModuleType("quants_f64")
    mod.__dict__["__name__"] = "gguf.quants_f64"
    mod.__dict__["__package__"] = "gguf"
    exec(compile(src, "quants_f64", "exec"), mod.__dict__)
    return mod


Q64 = f64_quants()


def low_rank(rng, rows, cols):
    """Singular values spread from 0.5 down to 0.01 in random directions, so the threshold
    falls among them (a finite SNR)."""
    k = min(rows, cols)
    u, _ = np.linalg.qr(rng.normal(0, 1, (rows, k)))
    v, _ = np.linalg.qr(rng.normal(0, 1, (cols, k)))
    s = 0.5 * np.exp(-np.linspace(0, 4, k))
    return ((u * s) @ v.T).astype(np.float32)


def k_blocks(rng, qtype, rows, cols):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = rows * cols // block
    raw = rng.integers(0, 256, (n, size), dtype=np.uint8)
    for at in SCALES[qtype]:
        d = rng.normal(0, 0.002, n).astype(np.float16)
        raw[:, at:at + 2] = d.view(np.uint8).reshape(n, 2)
    return raw.reshape(rows, -1)


def unit_rows(rows, cols):
    w = np.zeros((rows, cols), dtype=np.float32)
    for i in range(rows):
        w[i, (i * 7) % cols] = 1.0
    return w


def stored(data, qt):
    """The bytes (or array) gguf-py writes for `data` in type `qt`."""
    if qt == T.F32:
        return data.astype(np.float32)
    if qt == T.F16:
        return data.astype(np.float16)
    return quants.quantize(data, qt)


def dequantized(raw, qt):
    if qt in (T.F32, T.F16):
        return raw.astype(np.float64)
    if qt == T.BF16:
        return quants.dequantize(raw, qt).astype(np.float64)  # exact: bf16 -> f32
    out = Q64.dequantize(raw, qt)
    assert out.dtype == np.float64
    return out


def llama_tensors(rng):
    out = []
    rows, cols = 32, 256
    out.append((T.F32, low_rank(rng, rows, cols)))
    for qt in GGUF_PY_QUANTIZED:
        out.append((qt, stored(low_rank(rng, rows, cols), qt)))
    for qt in K_QUANTS:
        out.append((qt, k_blocks(rng, qt, rows, cols)))
    out.append((T.F16, stored(unit_rows(rows, cols), T.F16)))
    out.append((T.Q8_0, stored(unit_rows(rows, cols), T.Q8_0)))
    return out


def write_gguf(path, arch, meta, tensors):
    w = gguf.GGUFWriter(str(path), arch)
    for key, kind, value in meta:
        getattr(w, "add_" + kind)(key, value)
    for name, qt, data in tensors:
        w.add_tensor(name, data, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, dtype="<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def generate(out: Path):
    rng = np.random.default_rng(20261203)
    reference = []

    llama = llama_tensors(rng)
    n = len(llama)
    meta = [
        ("llama.block_count", "uint32", n),
        ("llama.embedding_length", "uint32", 256),
        ("llama.context_length", "uint32", 64),
        ("llama.attention.head_count", "uint32", 8),
        ("llama.attention.head_count_kv", "uint32", 1),
        ("llama.attention.layer_norm_rms_epsilon", "float32", 1e-5),
    ]
    tensors = []
    for i, (qt, data) in enumerate(llama):
        name = f"blk.{i}.attn_v.weight"
        tensors.append((name, qt, data))
        reference.append((f"llama.{name}", dequantized(data, qt)))
    write_gguf(out / "snr-llama.gguf", "llama", meta, tensors)

    meta = [
        ("phi3.block_count", "uint32", 2),
        ("phi3.embedding_length", "uint32", 256),
        ("phi3.context_length", "uint32", 64),
        ("phi3.attention.head_count", "uint32", 2),
        ("phi3.attention.head_count_kv", "uint32", 1),
        ("phi3.rope.dimension_count", "uint32", 128),
        ("phi3.attention.layer_norm_rms_epsilon", "float32", 1e-5),
    ]
    tensors = []
    for i, (qt, data) in enumerate([
        (T.Q4_K, k_blocks(rng, T.Q4_K, 512, 256)),
        (T.Q4_0, stored(low_rank(rng, 512, 256), T.Q4_0)),
    ]):
        tensors.append((f"blk.{i}.attn_qkv.weight", qt, data))
        # phi3's fused projection: Q (heads x head_dim = 256 rows), K (128), V (128).
        reference.append((f"phi3.blk.{i}.attn_v.weight", dequantized(data, qt)[384:512]))
    write_gguf(out / "snr-phi3.gguf", "phi3", meta, tensors)

    with tempfile.TemporaryDirectory() as tmp:
        st = Path(tmp) / "reference.safetensors"
        write_safetensors(st, reference)
        text = subprocess.run(
            [sys.executable, str(ORACLE), str(st), "--match", "attn_v"],
            check=True, capture_output=True, text=True,
        ).stdout
    (out / "snr.oracle.json").write_text(text)
    sums = "".join(
        f"{hashlib.sha256((out / f).read_bytes()).hexdigest()}  {f}\n"
        for f in ["snr-llama.gguf", "snr-phi3.gguf"]
    )
    (out / "snr.oracle.sha256").write_text(sums)


FILES = ["snr-llama.gguf", "snr-phi3.gguf", "snr.oracle.json", "snr.oracle.sha256"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if not args.check:
        generate(HERE)
        print("wrote", ", ".join(FILES))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        bad = [f for f in FILES if (Path(tmp) / f).read_bytes() != (HERE / f).read_bytes()]
    if bad:
        print("differ from what the script writes now:", ", ".join(bad), file=sys.stderr)
        return 1
    print("GGUF SNR fixtures and oracle values: unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
