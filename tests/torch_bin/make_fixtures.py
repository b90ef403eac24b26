#!/usr/bin/env python3
"""Produces the PyTorch .bin fixtures under tests/torch_bin/ (run once; the tests never need
Python: they read the committed files).

1. `cargo run --release --example torch_bin_twins -- WORK` writes every case of
   tests/kit/src/torch_bin/cases.rs as a safetensors model (snrscope's own deterministic generator),
   with the sha256 of each .safetensors file;
2. each twin's tensors are loaded with safetensors.torch.load_file (the bytes as they are: no
   dtype conversion) and torch.save'd into tests/torch_bin/<case>/ in the case's style:
     state_dict         torch.save(OrderedDict) with a `_metadata` attribute, as
                        torch.save(model.state_dict()) writes it
     sharded            one plain dict per safetensors shard, pytorch_model-0000i-of-0000n.bin,
                        plus pytorch_model.bin.index.json (transformers' save_pretrained with
                        safe_serialization=False)
     parameters_proto4  every value an nn.Parameter (torch._utils._rebuild_parameter),
                        pickle_protocol=4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL)
     fused_views        each layer's q/k/v projections saved as row views of one
                        torch.cat([q, k, v]) storage (non-zero storage offsets)
     plain              a plain dict, torch.save's defaults
3. refusal fixtures, from the bf16_state_dict twin: refused/legacy.bin (torch.save with
   _use_new_zipfile_serialization=False: the pre-1.6 format) and refused/noncontiguous.bin (a
   transposed view: strides (1, rows));
4. tests/torch_bin/manifest.json records the versions, the command and the sha256 of every
   input (twin) and output (fixture) file.

Pinned: torch 2.15.0 (another torch may write other bytes; the script refuses to run with one).
Usage: python3 tests/torch_bin/make_fixtures.py
"""
import collections
import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import safetensors
import torch
from safetensors.torch import load_file

TORCH = "2.15.0"
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "torch_bin"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_state_dict(twin, out):
    tensors = load_file(twin / "model.safetensors")
    sd = collections.OrderedDict(tensors.items())
    # What nn.Module.state_dict() attaches: module versions, pickled with BUILD.
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
    torch.save(sd, out / "pytorch_model.bin")


def save_sharded(twin, out):
    index = json.loads((twin / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    n = len(shards)
    weight_map = {}
    total = 0
    for i, shard in enumerate(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{n:05d}.bin"
        tensors = load_file(twin / shard)
        torch.save(dict(tensors), out / name)
        for k, t in tensors.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    (out / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2)
        + "\n"
    )


def save_parameters_proto4(twin, out):
    tensors = load_file(twin / "model.safetensors")
    params = {k: torch.nn.Parameter(t, requires_grad=False) for k, t in tensors.items()}
    torch.save(params, out / "pytorch_model.bin", pickle_protocol=4)


def save_fused_views(twin, out):
    tensors = load_file(twin / "model.safetensors")
    sd = dict(tensors)
    layers = sorted({int(m.group(1)) for k in tensors if (m := re.match(r"model\.layers\.(\d+)\.", k))})
    for layer in layers:
        names = [f"model.layers.{layer}.self_attn.{p}_proj.weight" for p in "qkv"]
        fused = torch.cat([tensors[n] for n in names], 0)
        row = 0
        for n in names:
            rows = tensors[n].shape[0]
            sd[n] = fused[row : row + rows]
            assert sd[n].is_contiguous() and (row == 0 or sd[n].storage_offset() > 0)
            row += rows
    torch.save(sd, out / "pytorch_model.bin")


def save_plain(twin, out):
    torch.save(dict(load_file(twin / "model.safetensors")), out / "pytorch_model.bin")


STYLES = {
    "state_dict": save_state_dict,
    "sharded": save_sharded,
    "parameters_proto4": save_parameters_proto4,
    "fused_views": save_fused_views,
    "plain": save_plain,
}


def main():
    if torch.__version__.split("+")[0] != TORCH:
        sys.exit(f"needs torch {TORCH} (found {torch.__version__}): the fixtures' bytes depend on it")
    manifest = {
        "produced_by": "python3 tests/torch_bin/make_fixtures.py",
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
        "cases": {},
        "refused": {},
    }
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        subprocess.run(
            ["cargo", "run", "--release", "--quiet", "--example", "torch_bin_twins", "--", str(work)],
            cwd=REPO,
            check=True,
        )
        cases = json.loads((work / "manifest.json").read_text())
        for case in cases:
            twin = Path(case["dir"])
            out = OUT / case["name"]
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            STYLES[case["style"]](twin, out)
            manifest["cases"][case["name"]] = {
                "style": case["style"],
                "inputs": case["inputs"],
                "outputs": {p.name: sha256(p) for p in sorted(out.iterdir())},
            }
        refused = OUT / "refused"
        shutil.rmtree(refused, ignore_errors=True)
        refused.mkdir()
        tensors = load_file(work / "bf16_state_dict" / "model.safetensors")
        v = "model.layers.0.self_attn.v_proj.weight"
        torch.save({v: tensors[v]}, refused / "legacy.bin", _use_new_zipfile_serialization=False)
        transposed = tensors[v].t()
        assert not transposed.is_contiguous()
        torch.save({v: transposed}, refused / "noncontiguous.bin")
        manifest["refused"] = {p.name: sha256(p) for p in sorted(refused.iterdir())}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
