#!/usr/bin/env python3
"""Writes the vocabulary fixtures of tests/gguf_tokenizer.rs and the token ids llama.cpp gives
for assets/sample-en.txt with each (no BOS, special tokens not parsed).

- spm.gguf: a SentencePiece BPE model (byte fallback) trained here on the sample and a little
  other English, written as llama.cpp's convert_hf_to_gguf.py writes SentencePiece vocabularies
  (tokens, scores, token types; tokenizer.ggml.model = llama);
- bpe-llama-bpe.gguf, bpe-qwen2.gguf, bpe-gpt-2.gguf: one byte-level BPE vocabulary (trained
  with Hugging Face tokenizers) under three pre-tokenizers (tokenizer.ggml.pre);
- expected.json: {file: ids} from llama.cpp itself (llama-cpp-python, vocab_only).

Needs: pip install gguf numpy sentencepiece tokenizers llama-cpp-python. Deterministic except
for the training libraries' versions (recorded in expected.json).
"""
import json
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np

HERE = Path(__file__).resolve().parent / "tokenizer"
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "assets" / "sample-en.txt").read_text(encoding="utf-8")
EXTRA = """The quick brown fox jumps over the lazy dog. It's 3:45 pm; we'll see 1,234,567 items!
Don't worry -- they're here. I've got 42 apples & 7 pears (maybe 8?). Naïve café, résumé, 東京.
    Indented line with  two  spaces\tand a tab.\n\nNew paragraph: x = y + 2 * (z - 1) / 3.
"""


def arch_keys(w):
    # The llama hyperparameters llama.cpp reads even for a vocabulary-only load.
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_layer_norm_rms_eps(1e-5)


def write(path, fill):
    w = gguf.GGUFWriter(str(path), "llama")
    arch_keys(w)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def spm(tmp):
    import sentencepiece as sp

    corpus = tmp / "corpus.txt"
    corpus.write_text(SAMPLE + EXTRA, encoding="utf-8")
    sp.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp / "spm"), vocab_size=700, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, num_threads=1, seed_sentencepiece_size=1000,
        minloglevel=2,
    )
    proc = sp.SentencePieceProcessor(model_file=str(tmp / "spm.model"))
    tokens, scores, types = [], [], []
    for i in range(proc.vocab_size()):
        tokens.append(proc.id_to_piece(i))
        scores.append(proc.get_score(i))
        t = gguf.TokenType.NORMAL
        if proc.is_unknown(i):
            t = gguf.TokenType.UNKNOWN
        elif proc.is_control(i):
            t = gguf.TokenType.CONTROL
        elif proc.is_unused(i):
            t = gguf.TokenType.UNUSED
        elif proc.is_byte(i):
            t = gguf.TokenType.BYTE
        types.append(int(t))

    def fill(w):
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(proc.bos_id())
        w.add_eos_token_id(proc.eos_id())
        w.add_unk_token_id(proc.unk_id())

    write(HERE / "spm.gguf", fill)


def bpe(tmp):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"], show_progress=False,
    )
    tok.train_from_iterator([SAMPLE, EXTRA], trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    types = [int(gguf.TokenType.CONTROL) if t == "<|endoftext|>" else int(gguf.TokenType.NORMAL)
             for t in tokens]
    for pre in ["llama-bpe", "qwen2", "gpt-2"]:
        def fill(w, pre=pre):
            w.add_tokenizer_model("gpt2")
            w.add_tokenizer_pre(pre)
            w.add_token_list(tokens)
            w.add_token_types(types)
            w.add_token_merges(merges)
            w.add_bos_token_id(0)
            w.add_eos_token_id(0)
            w.add_add_bos_token(False)

        write(HERE / f"bpe-{pre}.gguf", fill)


def expected():
    import llama_cpp

    out = {"llama_cpp_python": llama_cpp.__version__, "text": "assets/sample-en.txt", "ids": {}}
    for f in sorted(HERE.glob("*.gguf")):
        llm = llama_cpp.Llama(model_path=str(f), vocab_only=True, verbose=False)
        ids = llm.tokenize(SAMPLE.encode("utf-8"), add_bos=False, special=False)
        out["ids"][f.name] = ids
    (HERE / "expected.json").write_text(json.dumps(out) + "\n")


def main():
    HERE.mkdir(exist_ok=True)
    if "--expected-only" not in sys.argv:
        with tempfile.TemporaryDirectory() as t:
            spm(Path(t))
            bpe(Path(t))
    expected()
    print("wrote", *sorted(p.name for p in HERE.iterdir()))


if __name__ == "__main__":
    main()
