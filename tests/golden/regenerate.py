#!/usr/bin/env python3
"""Regenerates (or, with --check, verifies) the oracle's golden files tests/golden/<case>.json.

The only producer of those files. For every case of tests/kit/src/golden.rs:
  1. `cargo run --release --example golden_models -- WORK` writes the case's model (the same
     deterministic generator the tests use) into WORK/<case>/;
  2. the oracle runs on it, exactly:
         python3 ../shared/tools/snr_oracle.py WORK/<case>/<target> --match <pattern>
     or, for a case with "extract" (the V part of a fused q/k/v projection), the listed rows or
     columns of every 2-D tensor matching the pattern are copied byte for byte (same names,
     same dtype) into WORK/<case>-extracted/model.safetensors, and the unmodified oracle runs
     on that file instead;
  3. the golden file records the oracle's JSON output under "results", the sha256 of every
     .safetensors file it read under "weights" (so a changed generator is caught by the tests
     with a clear message rather than as an SNR mismatch), and the command and versions.

--check regenerates into a temporary folder and fails when any committed golden file differs
from what the oracle produces now (numbers compared to a relative 1e-12, everything else
exactly): a golden file can neither drift from the oracle nor be edited by hand.

Usage: python3 tests/golden/regenerate.py [--check]   (needs numpy; run from anywhere)
"""
import argparse
import hashlib
import json
import math
import platform
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
ORACLE = REPO.parent / "shared" / "tools" / "snr_oracle.py"
REL = 1e-12


def build_models(work: Path):
    subprocess.run(
        ["cargo", "run", "--release", "--quiet", "--example", "golden_models", "--", str(work)],
        cwd=REPO,
        check=True,
    )
    return json.loads((work / "manifest.json").read_text())


ELEMENT_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


def safetensors_tensors(path):
    """(name, dtype, shape, raw bytes) of every tensor of a .safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    for name, info in header.items():
        a, b = info["data_offsets"]
        yield name, info["dtype"], info["shape"], data[a:b]


def hand_extract(src_files, pattern, extract, out_file):
    """Copies the given rows/columns of each matching 2-D tensor into out_file."""
    regex = re.compile(pattern)
    tensors = []
    for path in src_files:
        for name, dtype, shape, raw in safetensors_tensors(path):
            if len(shape) != 2 or not regex.search(name):
                continue
            rows, cols = shape
            es = ELEMENT_SIZE[dtype]
            ranges = extract["ranges"]
            if extract["axis"] == "rows":
                part = b"".join(raw[a * cols * es : b * cols * es] for a, b in ranges)
                new_shape = [sum(b - a for a, b in ranges), cols]
            elif extract["axis"] == "cols":
                part = b"".join(
                    raw[(r * cols + a) * es : (r * cols + b) * es] for r in range(rows) for a, b in ranges
                )
                new_shape = [rows, sum(b - a for a, b in ranges)]
            else:
                raise ValueError(f"unknown axis {extract['axis']!r}")
            tensors.append((name, dtype, new_shape, part))
    if not tensors:
        raise SystemExit(f"no tensor matches {pattern!r} to extract from")
    header, offset = {}, 0
    for name, dtype, shape, part in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(part)]}
        offset += len(part)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with open(out_file, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors))


def golden_for(case):
    dir_ = Path(case["dir"])
    target = Path(case["target"])
    oracle_target = target
    extract = case.get("extract")
    if extract:
        sources = [target] if target.is_file() else sorted(dir_.glob("*.safetensors"))
        oracle_target = dir_.parent / f"{case['name']}-extracted" / "model.safetensors"
        hand_extract(sources, case["pattern"], extract, oracle_target)
    out = subprocess.run(
        [sys.executable, str(ORACLE), str(oracle_target), "--match", case["pattern"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    weights = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(dir_.glob("*.safetensors"))
    }
    shown = f"WORK/{case['name']}" + ("" if target == dir_ else f"/{target.relative_to(dir_).as_posix()}")
    golden_extract = {}
    if extract:
        shown = f"WORK/{case['name']}-extracted/model.safetensors"
        golden_extract = {
            "extracted": f"{extract['axis']} {extract['ranges']} of each tensor matching "
            f"'{case['pattern']}' in WORK/{case['name']}, copied by regenerate.py into {shown}"
        }
    return {
        "case": case["name"],
        "produced_by": "tests/golden/regenerate.py (do not edit by hand)",
        "model": f"cargo run --release --example golden_models -- WORK  ->  WORK/{case['name']}",
        "oracle": f"python3 ../shared/tools/snr_oracle.py {shown} --match '{case['pattern']}'",
        **golden_extract,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "weights": weights,
        "results": json.loads(out),
    }


def text_of(golden):
    return json.dumps(golden, indent=2) + "\n"


def differences(path, committed, fresh):
    """Human-readable differences, numbers within REL."""
    out = []

    def walk(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            if list(a) != list(b):
                out.append(f"{where}: keys differ: {sorted(set(a) ^ set(b)) or 'order'}")
                return
            for k in a:
                walk(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
            if a != b:
                out.append(f"{where}: {a!r} != {b!r}")
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if type(a) is not type(b):
                out.append(f"{where}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})")
            elif math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
                if not (math.isnan(a) and math.isnan(b)) and a != b:
                    out.append(f"{where}: {a!r} != {b!r}")
            elif abs(a - b) > REL * max(abs(a), abs(b)):
                out.append(f"{where}: {a!r} != {b!r} (the oracle now says {b!r})")
        elif a != b:
            out.append(f"{where}: {a!r} != {b!r}")

    # Versions are information, not content: a newer numpy may legitimately move the last bits.
    committed = dict(committed)
    fresh = dict(fresh)
    committed.pop("versions", None)
    fresh.pop("versions", None)
    walk(committed, fresh, path.name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="snrscope-golden-") as work:
        cases = build_models(Path(work))
        fresh = {c["name"]: golden_for(c) for c in cases}
    expected = {GOLDEN / f"{name}.json" for name in fresh}
    committed_files = set(GOLDEN.glob("*.json"))
    if not args.check:
        for stale in committed_files - expected:
            stale.unlink()
            print(f"removed {stale.relative_to(REPO)} (no such case)")
        for name, g in fresh.items():
            path = GOLDEN / f"{name}.json"
            path.write_text(text_of(g))
            print(f"wrote {path.relative_to(REPO)} ({len(g['results'])} matrices)")
        return 0
    problems = [f"{p.relative_to(REPO)}: no case produces it" for p in committed_files - expected]
    for name, g in fresh.items():
        path = GOLDEN / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path.relative_to(REPO)}: missing (run tests/golden/regenerate.py)")
            continue
        problems += differences(path, json.loads(path.read_text()), g)
    if problems:
        print("golden files differ from the live oracle:", file=sys.stderr)
        for p in problems[:50]:
            print(f"  {p}", file=sys.stderr)
        print("regenerate them with: python3 tests/golden/regenerate.py", file=sys.stderr)
        return 1
    print(f"ok: {len(fresh)} golden files equal the live oracle (numpy {np.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
