#!/usr/bin/env python3
"""Reference logits and perplexities for tests/it/eval_reference.rs, computed by transformers.

Inputs: the tiny checkpoints of snrscope's own generator (tests/kit/src/eval_models.rs), written with

    cargo run --release --example eval_fixtures -- /tmp/eval-fixtures
    python3 tests/reference/eval/make_reference.py /tmp/eval-fixtures \
        > tests/reference/eval/reference.json

For every fixture: the original folder, and `NAME-pruned`, the pruned model as
`snrscope export --model-out` writes it (so the pruned perplexity is transformers' on the
exported model, which the Rust side must reproduce from the original in memory).

Method (independent of snrscope's Rust code): token ids = the tokenizer's encoding of the text
without special tokens; back-to-back windows of `window` tokens (stride = window, a last
window shorter than 2 tokens left out); the model in float32 with eager attention; each window's
logits; NLL of every token but the window's first from log_softmax in float64; perplexity =
exp(sum NLL / count). Logit rows are kept at every 25th position and the last.

Produced with: Python 3.11, torch 2.15.0 (CPU), transformers 5.24.0, tokenizers 0.23.3,
safetensors 0.8.0, numpy 2.4.6 (`pip install torch transformers`).
"""

import json
import math
import platform
import sys
from pathlib import Path

import numpy
import safetensors
import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast


def fnv1a64(path):
    h = 0xCBF29CE484222325
    for b in Path(path).read_bytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def windows(n, w):
    return [(s, min(s + w, n)) for s in range(0, n, w) if min(s + w, n) - s >= 2]


def evaluate(folder, ids, window, positions):
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    nll, count, rows = 0.0, 0, {}
    with torch.no_grad():
        for s, e in windows(len(ids), window):
            logits = model(torch.tensor([ids[s:e]])).logits[0]
            logp = torch.log_softmax(logits.double(), dim=-1)
            target = torch.tensor(ids[s + 1 : e])
            nll -= logp[:-1].gather(1, target[:, None]).sum().item()
            count += e - s - 1
            for p in positions:
                if s <= p < e:
                    rows[str(p)] = [float(f"{x:.9g}") for x in logits[p - s].tolist()]
    return {
        "perplexity": math.exp(nll / count),
        "nll_sum": nll,
        "tokens": count,
        "layers": model.config.num_hidden_layers,
        "logits": rows,
    }


def main():
    root = Path(sys.argv[1])
    manifest = json.loads((root / "manifest.json").read_text())
    torch.set_num_threads(1)
    out = {
        "generated_by": "tests/reference/eval/make_reference.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": numpy.__version__,
        },
        "fixtures": {},
    }
    for f in manifest["fixtures"]:
        name = f["name"]
        folder = root / name
        tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
        ids = tok(f["text"], add_special_tokens=False)["input_ids"]
        n = len(ids)
        positions = sorted(set(range(0, n, 25)) | {n - 1})
        entry = {
            "model_type": f["model_type"],
            "weights_fnv1a64": fnv1a64(folder / "model.safetensors"),
            "window": f["window"],
            "text": f["text"],
            "token_ids": ids,
            "original": evaluate(folder, ids, f["window"], positions),
            "pruned": evaluate(root / f"{name}-pruned", ids, f["window"], positions),
        }
        entry["pruned"]["dropped"] = f["dropped"]
        out["fixtures"][name] = entry
        print(
            f"{name}: ppl {entry['original']['perplexity']:.4f} -> "
            f"{entry['pruned']['perplexity']:.4f}",
            file=sys.stderr,
        )
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
