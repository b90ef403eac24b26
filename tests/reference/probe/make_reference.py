#!/usr/bin/env python3
"""Reference layer metrics for tests/it/probe_reference.rs, computed by transformers.

Inputs: the tiny checkpoints of snrscope's own generator (the same as the perplexity
reference's; tests/kit/src/eval_models.rs), written with

    cargo run --release --example eval_fixtures -- /tmp/eval-fixtures
    python3 tests/reference/probe/make_reference.py /tmp/eval-fixtures \
        > tests/reference/probe/reference.json

(`--pruneme-utils PATH/utils.py` runs PruneMe's own compute_block_similarity/utils.py
instead of the restatement below; the committed file was checked to be unchanged by it), or,
to re-check the committed file (numbers within 1e-9, relative for perplexities; exit 1 and
the differences otherwise), as .ci/run does when torch and transformers are installed:

    python3 tests/reference/probe/make_reference.py /tmp/eval-fixtures \
        --check tests/reference/probe/reference.json

Method (independent of snrscope's Rust code), for every fixture, float32, eager attention:
- samples: the fixture text's token ids (the tokenizer's encoding without special tokens), cut
  into three samples of different lengths (SAMPLES below), each run alone (batch of one);
- hidden states: `output_hidden_states=True` gives x_0 .. x_{L-1} (the inputs of the layers)
  and, as its last entry, the final norm's output; x_L, the last layer's output before the
  final norm, is the input of `model.model.norm` (a forward pre-hook). The script checks that
  hidden_states[k] is what layer k receives (pre-hooks) and that norm(x_L) is the last entry;
- Block Influence (ShortGPT): 1 - mean over every token of every sample of cos(x_i, x_{i+1}),
  in float64;
- angular distance (Gromov et al.): arccos(clamp(cos(x_l, x_{l+n}), -1, 1)) / pi at each
  sample's last token, float64, mean over samples, for n = 1..L and l = 0..L-n;
- PruneMe (arcee-ai/PruneMe, compute_block_similarity/): its own formula, re-stated here in
  float32 torch as its utils.py computes it (normalise each last-token state, sum of products,
  clamp, acos, / pi, mean over the batch, .item()) on hidden_states[1:] of each sample, then
  numpy's mean over batches, and its CSV rows (block_start = j + 1, block_end = j + 1 + n)
  written by csv.DictWriter as its layer_similarity.py writes them. Batches of one sample,
  and, for the llama fixture, also its own pipeline with batch_size 2: the samples
  right-padded to the longest in the batch with an attention mask, the last non-padded token
  of each, an incomplete last batch dropped (DataLoader drop_last=True);
- perplexity without each single layer (Shortened LLaMA's PPL criterion): the checkpoint
  without that layer written as a pruned checkpoint is (see without_layer) and loaded by
  transformers; each sample's tokens but its first scored, exp(sum NLL / count) over the
  samples, NLL from log_softmax in float64; and the original's.

Produced with: Python 3.11, torch 2.15.0 (CPU), transformers 5.24.0, tokenizers 0.23.3,
numpy 2.4.6 (`pip install torch transformers`).
"""

import csv
import io
import json
import math
import platform
import sys
import tempfile
from pathlib import Path

import numpy
import safetensors.torch
import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

# Sample boundaries in the fixture's token ids: the first as long as the fixtures' context (64,
# longer than their sliding windows), then a short and a middling one.
SAMPLES = [(0, 64), (64, 81), (81, 131)]


def fnv1a64(path):
    h = 0xCBF29CE484222325
    for b in Path(path).read_bytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def load(folder):
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    return model


def states(model, ids, attention_mask=None):
    """x_0..x_L of one batch (x_L before the final norm) and hidden_states as returned."""
    inner = model.model
    seen_inputs, pre_norm = [], []
    hooks = [
        layer.register_forward_pre_hook(
            lambda m, args, kwargs: seen_inputs.append(
                (kwargs.get("hidden_states") if kwargs.get("hidden_states") is not None else args[0]).detach().clone()
            ),
            with_kwargs=True,
        )
        for layer in inner.layers
    ]
    hooks.append(
        inner.norm.register_forward_pre_hook(lambda m, args: pre_norm.append(args[0].detach().clone()))
    )
    try:
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor(ids),
                attention_mask=attention_mask,
                output_hidden_states=True,
                use_cache=False,
            )
    finally:
        for h in hooks:
            h.remove()
    hs = out.hidden_states
    L = model.config.num_hidden_layers
    assert len(hs) == L + 1, (len(hs), L)
    for k in range(L):
        assert torch.equal(hs[k], seen_inputs[k]), f"hidden_states[{k}] is not layer {k}'s input"
    with torch.no_grad():
        assert torch.allclose(inner.norm(pre_norm[0]), hs[L], atol=0, rtol=0), "last entry"
    return [hs[k] for k in range(L)] + [pre_norm[0]], hs


def cos64(a, b):
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def angular64(a, b):
    return (torch.acos(cos64(a, b).clamp(-1.0, 1.0)) / math.pi).item()


# ---- PruneMe's formula (compute_block_similarity/utils.py), re-stated ----


def pruneme_angular_distance(x_l, x_l_plus_n):
    x_l_norm = x_l / torch.norm(x_l, dim=-1, keepdim=True)
    x_l_plus_n_norm = x_l_plus_n / torch.norm(x_l_plus_n, dim=-1, keepdim=True)
    cosine_similarity = (x_l_norm * x_l_plus_n_norm).sum(-1)
    return torch.acos(cosine_similarity.clamp(min=-1, max=1)) / torch.pi


def pruneme_block_distances(hidden_states, layers_to_skip):
    return [
        pruneme_angular_distance(hidden_states[l], hidden_states[l + layers_to_skip]).mean().item()
        for l in range(len(hidden_states) - layers_to_skip)
    ]


def pruneme_last_tokens(hidden_states, attention_mask):
    out = []
    for layer in hidden_states:
        rows = []
        for b in range(layer.size(0)):
            last = attention_mask[b].nonzero(as_tuple=True)[0].max()
            rows.append(layer[b, last, :].unsqueeze(0))
        out.append(torch.cat(rows, dim=0))
    return out


def pruneme(model, samples, batch_size, layers):
    """PruneMe's average distances for n = 1..L-1 and its CSV per n."""
    pad = 0
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    batches = [b for b in batches if len(b) == batch_size]  # drop_last=True
    per_n = {n: [[] for _ in range(layers - n)] for n in range(1, layers)}
    for batch in batches:
        longest = max(len(s) for s in batch)
        ids = [s + [pad] * (longest - len(s)) for s in batch]
        mask = torch.tensor([[1] * len(s) + [0] * (longest - len(s)) for s in batch])
        _, hs = states(model, ids, attention_mask=mask)
        last = pruneme_last_tokens(hs, mask)[1:]
        assert len(last) == layers
        for n in per_n:
            for i, d in enumerate(pruneme_block_distances(last, n)):
                per_n[n][i].append(d)
    out, csvs = {}, {}
    for n, rows in per_n.items():
        averages = [float(numpy.mean(r)) for r in rows]
        out[str(n)] = averages
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["block_start", "block_end", "average_distance"])
        w.writeheader()
        for i, d in enumerate(averages):
            w.writerow({"block_start": i + 1, "block_end": i + 1 + n, "average_distance": d})
        csvs[str(n)] = buf.getvalue()
    return out, csvs


def perplexity(model, samples):
    nll, count = 0.0, 0
    with torch.no_grad():
        for s in samples:
            logits = model(input_ids=torch.tensor([s]), use_cache=False).logits[0]
            logp = torch.log_softmax(logits.double(), dim=-1)
            target = torch.tensor(s[1:])
            nll -= logp[:-1].gather(1, target[:, None]).sum().item()
            count += len(s) - 1
    return math.exp(nll / count)


def without_layer(folder, samples, i, tmp):
    """The perplexity of the model without layer i, as a pruned checkpoint has it: config.json
    with num_hidden_layers - 1, every list of one entry per layer without entry i, layer-index
    lists (mlp_only_layers) renumbered; weights of the later layers renumbered. Settings the
    config derives from a layer's number (Gemma 2's alternating windows, Qwen2's
    max_window_layers) follow the new numbering, as they do in any pruned checkpoint."""
    config = json.loads((folder / "config.json").read_text())
    L = config["num_hidden_layers"]
    for k, v in list(config.items()):
        if isinstance(v, list) and len(v) == L and k not in ("architectures",):
            config[k] = [x for j, x in enumerate(v) if j != i]
    if config.get("mlp_only_layers"):
        config["mlp_only_layers"] = [j - (j > i) for j in config["mlp_only_layers"] if j != i]
    config["num_hidden_layers"] = L - 1
    out = tmp / f"without-{i}"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config))
    weights = safetensors.torch.load_file(folder / "model.safetensors")
    renamed = {}
    for name, t in weights.items():
        parts = name.split(".")
        if name.startswith("model.layers."):
            j = int(parts[2])
            if j == i:
                continue
            parts[2] = str(j - (j > i))
        renamed[".".join(parts)] = t
    safetensors.torch.save_file(renamed, out / "model.safetensors", metadata={"format": "pt"})
    return perplexity(load(out), samples)


def probe(folder, samples, pruneme_batches, tmp):
    model = load(folder)
    L = model.config.num_hidden_layers
    cos_sum, tokens = [0.0] * L, 0
    last = []  # per sample: x_0..x_L at its last token
    for s in samples:
        xs, _ = states(model, [s])
        for i in range(L):
            cos_sum[i] += cos64(xs[i][0], xs[i + 1][0]).sum().item()
        tokens += len(s)
        last.append([x[0, -1] for x in xs])
    angular = {
        str(n): [
            float(numpy.mean([angular64(x[l], x[l + n]) for x in last])) for l in range(L - n + 1)
        ]
        for n in range(1, L + 1)
    }
    out = {
        "layers": L,
        "block_influence": [1.0 - c / tokens for c in cos_sum],
        "angular_distance": angular,
        "pruneme": {},
        "perplexity": {
            "original": perplexity(model, samples),
            "without_layer": [without_layer(folder, samples, i, tmp) for i in range(L)],
        },
    }
    for b in pruneme_batches:
        rows, csvs = pruneme(model, samples, b, L)
        out["pruneme"][str(b)] = {"rows": rows, "csv": csvs}
    return out


def differences(got, want, path="", out=None):
    """Where two references differ beyond rounding (the versions may differ)."""
    out = [] if out is None else out
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if k in ("versions",):
                continue
            if k not in got or k not in want:
                out.append(f"{path}/{k}: only in one")
            else:
                differences(got[k], want[k], f"{path}/{k}", out)
    elif isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            out.append(f"{path}: {len(got)} entries, committed {len(want)}")
        for i, (a, b) in enumerate(zip(got, want)):
            differences(a, b, f"{path}[{i}]", out)
    elif isinstance(want, float) and isinstance(got, (int, float)):
        tol = 1e-9 * max(1.0, abs(want)) if "perplexity" in path else 1e-9
        if not abs(got - want) <= tol:
            out.append(f"{path}: {got!r}, committed {want!r}")
    elif isinstance(want, str) and "csv" in path:
        rows = lambda t: [r.split(",") for r in t.split("\r\n")]
        for a, b in zip(rows(got), rows(want)):
            if a[:2] != b[:2] or (a[2:] != b[2:] and abs(float(a[2]) - float(b[2])) > 1e-9):
                out.append(f"{path}: row {a}, committed {b}")
    elif got != want:
        out.append(f"{path}: {got!r}, committed {want!r}")
    return out


def use_pruneme_utils(path):
    """PruneMe's own functions instead of the restatement above: its
    compute_block_similarity/utils.py (e.g. `git show faee6c9:compute_block_similarity/utils.py`
    of github.com/arcee-ai/PruneMe), imported from `path`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pruneme_utils", path)
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    global pruneme_block_distances, pruneme_last_tokens
    pruneme_block_distances = utils.compute_block_distances
    pruneme_last_tokens = utils.get_last_non_padded_tokens
    print(f"PruneMe's functions from {path}", file=sys.stderr)


def main():
    args = sys.argv[1:]
    if "--pruneme-utils" in args:
        i = args.index("--pruneme-utils")
        use_pruneme_utils(args[i + 1])
        del args[i : i + 2]
    root = Path(args[0])
    check = args[2] if len(args) > 2 and args[1] == "--check" else None
    manifest = json.loads((root / "manifest.json").read_text())
    torch.set_num_threads(1)
    # Only the numbers and errors on the terminal, not loading bars and config notes.
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    out = {
        "generated_by": "tests/reference/probe/make_reference.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": numpy.__version__,
        },
        "sample_ranges": SAMPLES,
        "fixtures": {},
    }
    for f in manifest["fixtures"]:
        name = f["name"]
        folder = root / name
        tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
        ids = tok(f["text"], add_special_tokens=False)["input_ids"]
        samples = [ids[a:b] for a, b in SAMPLES]
        assert all(len(s) == b - a for s, (a, b) in zip(samples, SAMPLES)), name
        entry = {
            "model_type": f["model_type"],
            "weights_fnv1a64": fnv1a64(folder / "model.safetensors"),
            "samples": samples,
        }
        with tempfile.TemporaryDirectory() as tmp:
            entry.update(probe(folder, samples, [1, 2] if name == "llama" else [1], Path(tmp)))
        out["fixtures"][name] = entry
        print(
            f"{name}: BI {['%.4f' % x for x in entry['block_influence']]}",
            file=sys.stderr,
        )
    if check:
        committed = json.loads(Path(check).read_text())
        diffs = differences(json.loads(json.dumps(out)), committed)
        for d in diffs[:40]:
            print(d, file=sys.stderr)
        print(
            f"{check}: {'matches' if not diffs else f'{len(diffs)} difference(s)'} "
            f"(torch {torch.__version__}, transformers {transformers.__version__}; committed "
            f"with torch {committed['versions']['torch']}, transformers "
            f"{committed['versions']['transformers']})",
            file=sys.stderr,
        )
        sys.exit(1 if diffs else 0)
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
