//! The tokenizer from GGUF metadata against llama.cpp itself: tests/gguf/tokenizer/*.gguf are
//! vocabularies (a SentencePiece one, and one byte-level BPE vocabulary under the llama-bpe,
//! qwen2 and gpt-2 pre-tokenizers); expected.json holds the ids llama.cpp (llama-cpp-python,
//! vocabulary-only load, no BOS, special tokens not parsed) gave for assets/sample-en.txt.
//! Both written by tests/gguf/make_tokenizer_fixtures.py.

use std::path::Path;

use snrscope::checkpoint::gguf::{GgufModel, Tokenizer};

#[test]
fn token_ids_equal_llama_cpp() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/gguf/tokenizer");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let text = std::fs::read_to_string(root.join("assets/sample-en.txt")).unwrap();
    let ids = expected["ids"].as_object().unwrap();
    assert_eq!(ids.len(), 4);
    for (file, want) in ids {
        let want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let m = GgufModel::open(&dir.join(file)).unwrap();
        let tok = Tokenizer::from_model(&m).unwrap();
        let got = tok.encode(&text);
        if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "{file}: first difference at token {i}: ours {:?}, llama.cpp {:?}",
                &got[i..(i + 8).min(got.len())],
                &want[i..(i + 8).min(want.len())]
            );
        }
        assert_eq!(got.len(), want.len(), "{file}");
        assert!(
            want.len() > 1000,
            "{file}: the sample gives {} tokens",
            want.len()
        );
    }
}

#[test]
fn refuses_unknown_vocabularies_by_name() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("v.gguf");
    // A header with tokenizer.ggml.model = "rwkv": magic, version, 0 tensors, 2 keys.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    for (k, v) in [
        ("tokenizer.ggml.model", "rwkv"),
        ("general.architecture", "rwkv6"),
    ] {
        b.extend((k.len() as u64).to_le_bytes());
        b.extend(k.as_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend((v.len() as u64).to_le_bytes());
        b.extend(v.as_bytes());
    }
    std::fs::write(&p, b).unwrap();
    let m = GgufModel::open(&p).unwrap();
    let e = Tokenizer::from_model(&m).unwrap_err().to_string();
    assert!(e.contains("v.gguf") && e.contains("rwkv"), "{e}");
}
