#!/usr/bin/env python3
"""Writes tests/gguf/quants.gguf and tests/gguf/quants.expected.gguf for tests/gguf_dequant.rs.

quants.gguf holds one small tensor per ggml type snrscope dequantizes:
  - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16, F16: gguf-py's own quantizers applied to Gaussian data;
  - the K-quants (gguf-py has no quantizer for them): random block bytes, every bit pattern
    being a valid block, with finite f16 scales of both signs, zero and subnormals;
  - F32, F64: the Gaussian data itself;
  - a 3-D Q4_K tensor (expert-stacked shape) and one with non-square rows.
quants.expected.gguf holds, for each tensor NAME, the values the independent reference computes:
  - NAME.f32: gguf-py's `gguf.quants.dequantize` (numpy, float32);
  - NAME.f64: the same gguf-py code evaluated in float64 (its source with np.float32 replaced by
    np.float64; exact for these blocks), for F32/F16/BF16/F64 the exact value as float64.

Needs `pip install gguf numpy` (gguf 0.19.0 was used). Deterministic (seeded).
"""
import inspect
import sys
import types
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(20260611)

QUANTIZED = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
K_QUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]


def f64_quants():
    """gguf-py's quants module, evaluated in float64."""
    src = inspect.getsource(quants).replace("np.float32", "np.float64")
    mod = types.ModuleType("quants_f64")
    mod.__dict__["__name__"] = "gguf.quants_f64"
    mod.__dict__["__package__"] = "gguf"
    exec(compile(src, "quants_f64", "exec"), mod.__dict__)
    return mod


Q64 = f64_quants()


def f16_scales(n):
    """Finite f16 values of every kind a scale can be."""
    pool = np.concatenate([
        rng.normal(0, 0.02, n).astype(np.float16),
        np.array([0.0, -0.0, 6e-8, -6e-8, 1e-5, 65504.0, -2.0, 0.5], dtype=np.float16),
    ])
    return rng.choice(pool, n).astype(np.float16)


def random_k_blocks(qtype, n_blocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    # Where each type keeps its f16 scale(s): d (and dmin) at the start or the end of the block.
    places = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}
    for at in places[qtype]:
        raw[:, at:at + 2] = f16_scales(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def tensors():
    out = []
    rows, cols = 2, 256
    for qt in QUANTIZED:
        data = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
        data[0, :32] = 0.0  # an all-zero block
        out.append((qt.name, qt, quants.quantize(data, qt)))
    for qt in K_QUANTS:
        n_blocks = rows * cols // 256
        raw = random_k_blocks(qt, n_blocks).reshape(rows, -1)
        out.append((qt.name, qt, raw))
    g = rng.normal(0, 1, (rows, cols))
    out.append(("F32", T.F32, g.astype(np.float32)))
    out.append(("F64", T.F64, g.astype(np.float64)))
    out.append(("F16", T.F16, g.astype(np.float16)))
    out.append(("BF16", T.BF16, quants.quantize(g.astype(np.float32), T.BF16)))
    # Expert-stacked (3 experts of 1x512) and a six-row K-quant matrix.
    raw = random_k_blocks(T.Q4_K, 3 * 2).reshape(3, 1, -1)
    out.append(("experts.Q4_K", T.Q4_K, raw))
    raw = random_k_blocks(T.Q6_K, 6).reshape(6, -1)
    out.append(("rows.Q6_K", T.Q6_K, raw))
    return out


def main():
    w = gguf.GGUFWriter(str(HERE / "quants.gguf"), "llama")
    e = gguf.GGUFWriter(str(HERE / "quants.expected.gguf"), "llama")
    for name, qt, data in tensors():
        w.add_tensor(name, data, raw_dtype=qt)
        if qt in (T.F32, T.F64, T.F16):
            f32 = data.astype(np.float32)
            f64 = data.astype(np.float64)
        elif qt == T.BF16:
            f32 = quants.dequantize(data, qt)
            f64 = f32.astype(np.float64)
        else:
            f32 = quants.dequantize(data, qt)
            f64 = Q64.dequantize(data, qt)
            assert f64.dtype == np.float64
            assert np.array_equal(f64.astype(np.float32), f32) or qt in K_QUANTS
        e.add_tensor(name + ".f32", np.ascontiguousarray(f32, dtype=np.float32))
        e.add_tensor(name + ".f64", np.ascontiguousarray(f64, dtype=np.float64))
    for x in (w, e):
        x.write_header_to_file()
        x.write_kv_data_to_file()
        x.write_tensors_to_file()
        x.close()
    print("wrote", HERE / "quants.gguf", HERE / "quants.expected.gguf")


if __name__ == "__main__":
    sys.exit(main())
