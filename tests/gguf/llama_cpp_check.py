#!/usr/bin/env python3
"""The body of .ci/llama-cpp-check (manual; see there). For each architecture:

1. a tiny transformers checkpoint (random weights, seeded) with a SentencePiece tokenizer;
2. llama.cpp's convert_hf_to_gguf.py -> F16, llama.cpp's quantizer -> Q8_0 and Q4_K_M;
3. snrscope prunes each GGUF (gguf_tool prune, the module's writer);
4. the independent reference for the same cut: the transformers checkpoint with the layers
   removed (config edited as snrscope's safetensors export does), converted and quantized the
   same way (F16, Q8_0); for Q4_K_M, whose type mix depends on the layer count, the full Q4_K_M
   file rewritten by gguf-py's GGUFWriter without the dropped layers;
5. checks: llama.cpp loads every pruned file, its logits on a few tokens equal the reference's
   (bit for bit), and the tensors are the reference's byte for byte.

Prints one line per (architecture, type) and exits non-zero on any difference.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(os.environ["LLAMA_CPP"])  # llama.cpp's source (for convert_hf_to_gguf.py)
WORK = Path(sys.argv[1])
TOOL = ROOT / "target" / "release" / "examples" / "gguf_tool"
TOKENS = [1, 17, 33, 100, 5, 250, 9, 42]

sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
import gguf  # noqa: E402  (llama.cpp's own gguf-py, matching its converter)
import llama_cpp  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

COMMON = dict(vocab_size=700, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
ARCHS = {
    "llama": ("LlamaConfig", {}, [1]),
    "mistral": ("MistralConfig", {"sliding_window": None}, [2]),
    "qwen2": ("Qwen2Config", {}, [0, 3]),
    "qwen3": ("Qwen3Config", {"head_dim": 64}, [1]),
    "gemma2": ("Gemma2Config", {"head_dim": 64}, [1, 2]),
    "phi3": ("Phi3Config", {"pad_token_id": 0}, [2]),
    "mixtral": ("MixtralConfig", {"num_local_experts": 4, "num_experts_per_tok": 2}, [1]),
}
Q8_0, Q4_K_M = 7, 15  # llama_ftype


def run(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def checkpoint(arch, folder, drop):
    cls, extra, _ = ARCHS[arch]
    cfg = getattr(transformers, cls)(**{**COMMON, **extra})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():  # weights with structure worth a forward pass
            p.add_(torch.randn_like(p) * 0.02)
    if drop:
        layers = model.model.layers
        model.model.layers = torch.nn.ModuleList([l for i, l in enumerate(layers) if i not in drop])
        model.config.num_hidden_layers = len(model.model.layers)
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = [t for i, t in enumerate(model.config.layer_types)
                                        if i not in drop]
    model.save_pretrained(folder, safe_serialization=True)
    shutil.copy(WORK / "tokenizer.model", folder / "tokenizer.model")


def convert(folder, out):
    run(sys.executable, LLAMA_CPP / "convert_hf_to_gguf.py", folder, "--outtype", "f16",
        "--outfile", out, env={**os.environ, "PYTHONPATH": str(LLAMA_CPP / "gguf-py")})


def quantize(src, dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), p) != 0:
        sys.exit(f"llama.cpp could not quantize {src}")


def gguf_py_prune(src, dst, drop):
    """The independent pruned writer: gguf-py reads the file and writes the kept tensors."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    n = r.fields[f"{arch}.block_count"].contents()
    kept = [i for i in range(n) if i not in drop]
    w = gguf.GGUFWriter(str(dst), arch=arch, use_temp_file=False)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k in ("general.architecture",):
            continue
        v = f.contents()
        if k == f"{arch}.block_count":
            v = len(kept)
        elif isinstance(v, list) and len(v) == n and k.startswith(arch + "."):
            v = [v[i] for i in kept]
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, v, vt, sub_type=f.types[-1])
        else:
            w.add_key_value(k, v, vt)
    for t in r.tensors:
        name = t.name
        if name.startswith("blk."):
            layer = int(name.split(".")[1])
            if layer not in kept:
                continue
            name = f"blk.{kept.index(layer)}." + name.split(".", 2)[2]
        w.add_tensor(name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def with_per_layer_arrays(src, dst):
    """The same model with its head count and feed-forward length as per-layer arrays (as
    OpenELM-style models ship them; llama.cpp reads either form)."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    n = r.fields[f"{arch}.block_count"].contents()
    w = gguf.GGUFWriter(str(dst), arch=arch, use_temp_file=False)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        v, vt = f.contents(), f.types[0]
        if k in (f"{arch}.attention.head_count", f"{arch}.feed_forward_length"):
            w.add_key_value(k, [v] * n, gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT32)
        elif vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, v, vt, sub_type=f.types[-1])
        else:
            w.add_key_value(k, v, vt)
    for t in r.tensors:
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def loads(path):
    """Whether llama.cpp loads the file (in a child process: a failed load may abort)."""
    code = ("import llama_cpp,sys; llama_cpp.Llama(model_path=sys.argv[1], n_ctx=32, "
            "verbose=False)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]


def against_llama_quantize_prune():
    """llama.cpp's own `llama-quantize --prune-layers ... copy` (its library call) against
    snrscope, on the llama model with per-layer arrays."""
    d = WORK / "llama"
    src = d / "perlayer-F16.gguf"
    with_per_layer_arrays(d / "full-F16.gguf", src)
    theirs, ours = d / "perlayer-llama-quantize.gguf", d / "perlayer-ours.gguf"
    for f in (theirs, ours):
        f.unlink(missing_ok=True)
    import ctypes
    p = llama_cpp.llama_model_quantize_default_params()
    p.only_copy = True
    prune = (ctypes.c_int32 * 2)(1, -1)
    p.prune_layers = ctypes.cast(prune, ctypes.POINTER(ctypes.c_int32))
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(theirs).encode(), p)
    run(TOOL, "prune", src, ours, "--drop", "1")
    rows = []
    for name, f in (("llama-quantize --prune-layers 1 (copy)", theirs), ("snrscope", ours)):
        ok, why = loads(f) if f.exists() else (False, f"not written (rc {rc})")
        arr = gguf.GGUFReader(str(f)).fields["llama.attention.head_count"].contents() if f.exists() else None
        rows.append(dict(tool=name, loads=ok, head_count=arr, error="" if ok else why))
        print(f"per-layer arrays, drop [1]: {name}: llama.cpp {'loads it' if ok else 'refuses it: ' + why}; "
              f"head_count {arr}", flush=True)
    if rows[1]["loads"]:
        diff = float(np.max(np.abs(logits(ours) - logits(d / "pruned-F16.gguf"))))
        print(f"  snrscope's output: max |logit diff| vs the transformers-pruned checkpoint {diff:.3g}")
        rows[1]["max_abs_logit_diff"] = diff
    return rows


def gemma2_sliding_window():
    """gemma2 with a sliding window shorter than the text, one layer dropped: the writer keeps
    each layer's attention type (llama.cpp's bool array), converting the pruned checkpoint does
    not (llama.cpp re-derives the type from the new index). Both against transformers."""
    d = WORK / "gemma2-swa"
    shutil.rmtree(d, ignore_errors=True)
    cls = "Gemma2Config"
    global ARCHS
    saved = ARCHS["gemma2"]
    # Tied embeddings and a query scale of 1/sqrt(head_dim), as llama.cpp's gemma2 graph assumes
    # (token_embd is its output matrix; the scale is fixed but for the 27B).
    ARCHS["gemma2"] = (cls, {"head_dim": 64, "sliding_window": 3, "tie_word_embeddings": True,
                             "query_pre_attn_scalar": 64}, [1])
    try:
        for name, dr in (("full", []), ("pruned", [1])):
            (d / name).mkdir(parents=True)
            checkpoint("gemma2", d / name, dr)
            run(sys.executable, LLAMA_CPP / "convert_hf_to_gguf.py", d / name, "--outtype", "f32",
                "--outfile", d / f"{name}-F32.gguf",
                env={**os.environ, "PYTHONPATH": str(LLAMA_CPP / "gguf-py")})
    finally:
        ARCHS["gemma2"] = saved
    run(TOOL, "prune", d / "full-F32.gguf", d / "ours-F32.gguf", "--drop", "1")
    model = transformers.AutoModelForCausalLM.from_pretrained(d / "pruned", dtype=torch.float32,
                                                              attn_implementation="eager")
    with torch.no_grad():
        hf = model(torch.tensor([TOKENS])).logits[0].numpy()
    out = {}
    for name, f in (("snrscope-pruned GGUF", d / "ours-F32.gguf"),
                    ("pruned checkpoint, converted", d / "pruned-F32.gguf")):
        diff = float(np.max(np.abs(logits(f) - hf)))
        out[name] = diff
        print(f"gemma2, sliding window 3, drop [1], F32: llama.cpp on the {name}: max |logit "
              f"diff| vs transformers' pruned model {diff:.3g}", flush=True)
    return out


def tensors(path):
    r = gguf.GGUFReader(str(path))
    return {t.name: (int(t.tensor_type), [int(x) for x in t.shape], bytes(t.data.tobytes()))
            for t in r.tensors}


def logits(path):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=32, n_batch=32, logits_all=True,
                          n_threads=2, verbose=False)
    llm.eval(TOKENS)
    out = np.array(llm.scores[:len(TOKENS)], dtype=np.float32)
    del llm
    return out


def main():
    import sentencepiece as sp
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / "corpus.txt"
    corpus.write_text((ROOT / "assets" / "sample-en.txt").read_text())
    sp.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(WORK / "tokenizer"),
                                  vocab_size=700, model_type="bpe", byte_fallback=True,
                                  minloglevel=2, num_threads=1)
    archs = sys.argv[2].split(",") if len(sys.argv) > 2 else list(ARCHS)
    failures, rows = 0, []
    for arch in archs:
        drop = ARCHS[arch][2]
        d = WORK / arch
        # LLAMA_CHECK_REUSE=1 keeps checkpoints and conversions of an earlier run in WORK.
        if not (os.environ.get("LLAMA_CHECK_REUSE") == "1" and (d / "full-Q4_K_M.gguf").exists()):
            shutil.rmtree(d, ignore_errors=True)
            for name, dr in (("full", []), ("pruned", drop)):
                (d / name / "model").mkdir(parents=True)
                checkpoint(arch, d / name / "model", dr)
                convert(d / name / "model", d / f"{name}-F16.gguf")
            for src, ftype, q in ((d / "full-F16.gguf", Q8_0, "Q8_0"),
                                  (d / "pruned-F16.gguf", Q8_0, "Q8_0"),
                                  (d / "full-F16.gguf", Q4_K_M, "Q4_K_M")):
                quantize(src, src.with_name(src.name.replace("F16", q)), ftype)
        for f in d.glob("ours-*.gguf"):
            f.unlink()
        for q in ("F16", "Q8_0", "Q4_K_M"):
            ours = d / f"ours-{q}.gguf"
            r = run(TOOL, "prune", d / f"full-{q}.gguf", ours, "--drop", ",".join(map(str, drop)))
            if q == "Q4_K_M":
                ref = d / f"ref-{q}.gguf"
                gguf_py_prune(d / f"full-{q}.gguf", ref, drop)
                how = "gguf-py rewrite of the full Q4_K_M"
            else:
                ref = d / f"pruned-{q}.gguf"
                how = "transformers checkpoint pruned, converted" + (", quantized" if q != "F16" else "")
            a, b = tensors(ours), tensors(ref)
            same_tensors = a == b
            la, lb = logits(ours), logits(ref)
            diff = float(np.max(np.abs(la - lb)))
            ok = same_tensors and diff == 0.0
            failures += not ok
            types = sorted({gguf.GGMLQuantizationType(t[0]).name for t in a.values()})
            rows.append(dict(arch=arch, type=q, dropped=drop, tensors=len(a), identical_tensors=same_tensors,
                             max_abs_logit_diff=diff, types=types, reference=how, ok=ok))
            print(f"{arch:9} {q:7} drop {drop}: llama.cpp loaded it; {len(a)} tensors "
                  f"{'identical' if same_tensors else 'DIFFERENT'} to the reference ({how}); "
                  f"max |logit diff| {diff:.3g} over {len(TOKENS)} tokens; types {','.join(types)}"
                  f"{'' if ok else '  <-- FAIL'}", flush=True)
            if not same_tensors:
                for k in sorted(set(a) | set(b)):
                    if a.get(k) != b.get(k):
                        print("   differs:", k, a.get(k, (None, None))[:2], b.get(k, (None, None))[:2])
    if "llama" in archs:
        rows.append({"llama_quantize_prune": against_llama_quantize_prune()})
    if "gemma2" in archs:
        rows.append({"gemma2_sliding_window": gemma2_sliding_window()})
    (WORK / "results.json").write_text(json.dumps(rows, indent=1))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
