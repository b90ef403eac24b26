//! Dequantization against gguf-py's independent numpy dequantizer: tests/gguf/quants.gguf holds
//! one small tensor per type, tests/gguf/quants.expected.gguf what gguf-py computed for each
//! (`NAME.f32`: `gguf.quants.dequantize`; `NAME.f64`: the same code in float64), both written
//! by tests/gguf/make_quant_fixtures.py. Equality is bit for bit.

use std::path::Path;

use snrscope::{
    checkpoint::gguf::{GgmlType, GgufModel, names},
    spectrum::snr,
};

fn fixtures() -> (GgufModel, GgufModel) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf");
    (
        GgufModel::open(&dir.join("quants.gguf")).unwrap(),
        GgufModel::open(&dir.join("quants.expected.gguf")).unwrap(),
    )
}

#[test]
fn every_type_equals_gguf_py_bit_for_bit() {
    let (q, e) = fixtures();
    let mut seen = Vec::new();
    for t in q.tensors() {
        let name = &t.info.name;
        let want64 = e.require(&format!("{name}.f64")).unwrap();
        let want32 = e.require(&format!("{name}.f32")).unwrap();
        assert_eq!(want64.info.ggml_type, GgmlType::F64);
        assert_eq!(want64.info.n_elements, t.info.n_elements, "{name}");
        // The expected files are plain F32/F64: read their bytes directly.
        let w64: Vec<f64> = want64
            .read_raw(0..want64.info.n_rows())
            .unwrap()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let w32: Vec<f32> = want32
            .read_raw(0..want32.info.n_rows())
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let got64 = t.to_f64().unwrap();
        let got32 = t.to_f32().unwrap();
        for i in 0..w64.len() {
            assert_eq!(
                got64[i].to_bits(),
                w64[i].to_bits(),
                "{name} f64 value {i}: {} vs gguf-py {}",
                got64[i],
                w64[i]
            );
            assert_eq!(
                got32[i].to_bits(),
                w32[i].to_bits(),
                "{name} f32 value {i}: {} vs gguf-py {}",
                got32[i],
                w32[i]
            );
        }
        seen.push(t.info.ggml_type.name());
    }
    for ty in [
        "F32", "F64", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(seen.iter().any(|s| s == ty), "{ty} is covered");
    }
}

#[test]
fn row_ranges_and_expert_slices_match_the_whole() {
    let (q, _) = fixtures();
    let t = q.require("experts.Q4_K").unwrap();
    // Three experts of one 512-value row each; HF shape outermost first.
    assert_eq!(t.info.shape(), vec![3, 1, 512]);
    let all = t.to_f64().unwrap();
    let second = t.dequantize_rows::<f64>(1..2).unwrap();
    assert_eq!(second, all[512..1024]);
    let t = q.require("rows.Q6_K").unwrap();
    let all = t.to_f32().unwrap();
    assert_eq!(t.dequantize_rows::<f32>(4..6).unwrap(), all[4 * 256..]);
    let raw = t.read_raw(1..2).unwrap();
    assert_eq!(raw.len(), 210);
}

#[test]
fn refused_types_are_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("iq.gguf");
    // One IQ2_XXS block (type 16, 66 bytes per 256 values), laid out by hand.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b't');
    b.extend(1u32.to_le_bytes());
    b.extend(256u64.to_le_bytes());
    b.extend(16u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.resize(b.len().next_multiple_of(32), 0);
    b.extend([0u8; 66]);
    std::fs::write(&p, &b).unwrap();
    let m = GgufModel::open(&p).unwrap();
    let e = m.require("t").unwrap().to_f64().unwrap_err().to_string();
    assert!(e.contains("iq.gguf") && e.contains("IQ2_XXS"), "{e}");
    assert_eq!(m.require("t").unwrap().read_raw(0..1).unwrap().len(), 66);
}

#[test]
fn the_llama_permutation_leaves_the_singular_values_alone() {
    // 4 heads of 8 rows, 24 columns: the SVD of the GGUF layout and of the HF layout agree.
    let p = names::QkPermutation {
        n_heads: 4,
        head_dim: 8,
    };
    let (rows, cols) = (32, 24);
    let m: Vec<f64> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1013) as f64 / 1013.0 - 0.5)
        .collect();
    let hf = p.to_hf_rows(&m, cols);
    assert_ne!(hf, m);
    let mut ws = snr::SvdWorkspace::default();
    let a = snr::singular_values(&m, rows, cols, faer::Par::Seq, &mut ws).unwrap();
    let b = snr::singular_values(&hf, rows, cols, faer::Par::Seq, &mut ws).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-12 * a[0], "{x} vs {y}");
    }
}
