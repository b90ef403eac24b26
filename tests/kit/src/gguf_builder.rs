//! A GGUF writer for tests, written from the format's specification (ggml's docs/gguf.md), not
//! from snrscope's writer: header, typed key/values, tensor infos, aligned zero-padded data.

#![allow(dead_code)]

pub const U8: u32 = 0;
pub const I32: u32 = 5;
pub const U32: u32 = 4;
pub const F32: u32 = 6;
pub const BOOL: u32 = 7;
pub const STRING: u32 = 8;
pub const ARRAY: u32 = 9;
pub const U64: u32 = 10;

#[derive(Clone, Default)]
pub struct Builder {
    pub version: u32,
    pub alignment: u64,
    pub kvs: Vec<(String, Vec<u8>)>,
    /// name, dims (innermost first), ggml type, data.
    pub tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

pub fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            version: 3,
            alignment: 32,
            ..Default::default()
        }
    }

    /// A value given as its type id followed by its bytes.
    pub fn kv_raw(mut self, key: &str, type_and_value: Vec<u8>) -> Builder {
        self.kvs.push((key.to_string(), type_and_value));
        self
    }

    pub fn kv_u32(self, key: &str, v: u32) -> Builder {
        let mut b = U32.to_le_bytes().to_vec();
        b.extend(v.to_le_bytes());
        self.kv_raw(key, b)
    }

    pub fn kv_str(self, key: &str, v: &str) -> Builder {
        let mut b = STRING.to_le_bytes().to_vec();
        b.extend(string(v));
        self.kv_raw(key, b)
    }

    pub fn kv_bool(self, key: &str, v: bool) -> Builder {
        let mut b = BOOL.to_le_bytes().to_vec();
        b.push(v as u8);
        self.kv_raw(key, b)
    }

    /// An array of `elem` type whose elements are given already encoded.
    pub fn kv_array(self, key: &str, elem: u32, items: &[Vec<u8>]) -> Builder {
        let mut b = ARRAY.to_le_bytes().to_vec();
        b.extend(elem.to_le_bytes());
        b.extend((items.len() as u64).to_le_bytes());
        for i in items {
            b.extend(i);
        }
        self.kv_raw(key, b)
    }

    pub fn kv_u32s(self, key: &str, v: &[u32]) -> Builder {
        let items: Vec<Vec<u8>> = v.iter().map(|x| x.to_le_bytes().to_vec()).collect();
        self.kv_array(key, U32, &items)
    }

    pub fn kv_strs(self, key: &str, v: &[&str]) -> Builder {
        let items: Vec<Vec<u8>> = v.iter().map(|s| string(s)).collect();
        self.kv_array(key, STRING, &items)
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, data: Vec<u8>) -> Builder {
        self.tensors
            .push((name.to_string(), dims.to_vec(), ggml_type, data));
        self
    }

    /// An F32 tensor whose values are `seed + index`.
    pub fn f32_tensor(self, name: &str, dims: &[u64], seed: f32) -> Builder {
        let n: u64 = dims.iter().product();
        let data = (0..n)
            .flat_map(|i| (seed + i as f32).to_le_bytes())
            .collect();
        self.tensor(name, dims, 0, data)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            out.extend(string(k));
            out.extend(v);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for (name, dims, ty, data) in &self.tensors {
            out.extend(string(name));
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).next_multiple_of(self.alignment);
        }
        out.resize(out.len().next_multiple_of(self.alignment as usize), 0);
        let start = out.len();
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            out.resize(start + off as usize, 0);
            out.extend(data);
        }
        out.resize(
            (out.len() - start).next_multiple_of(self.alignment as usize) + start,
            0,
        );
        out
    }

    pub fn write(&self, path: &std::path::Path) {
        std::fs::write(path, self.bytes()).unwrap();
    }

    /// Writes the metadata and `tensors` (name, dims, type, bytes) whose data is a hole: the
    /// file has its full length, but only the header is on disk (instant, whatever the size).
    pub fn write_sparse(&self, path: &std::path::Path, tensors: &[(String, Vec<u64>, u32, u64)]) {
        let mut b = self.clone();
        b.tensors.clear();
        let mut out = b.bytes();
        // `bytes` wrote no tensor infos: rebuild the counts and append the infos.
        out[8..16].copy_from_slice(&(tensors.len() as u64).to_le_bytes());
        let header_end = {
            let mut h = b"GGUF".to_vec();
            h.extend(self.version.to_le_bytes());
            h.extend(0u64.to_le_bytes());
            h.extend((self.kvs.len() as u64).to_le_bytes());
            for (k, v) in &self.kvs {
                h.extend(string(k));
                h.extend(v);
            }
            h.len()
        };
        out.truncate(header_end);
        let mut offset = 0u64;
        for (name, dims, ty, n_bytes) in tensors {
            out.extend(string(name));
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset = (offset + n_bytes).next_multiple_of(self.alignment);
        }
        out.resize(out.len().next_multiple_of(self.alignment as usize), 0);
        let f = std::fs::File::create(path).unwrap();
        std::io::Write::write_all(&mut &f, &out).unwrap();
        f.set_len(out.len() as u64 + offset).unwrap();
    }
}

/// A small llama-arch model: `layers` blocks with attention, a per-layer head-count array,
/// embeddings and output; tensors F32 with distinct values.
pub fn llama(layers: u32) -> Builder {
    let mut b = Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_str("general.name", "tiny")
        .kv_u32("llama.block_count", layers)
        .kv_u32("llama.embedding_length", 8)
        .kv_u32("llama.context_length", 64)
        .kv_u32s("llama.attention.head_count", &vec![2; layers as usize])
        .kv_u32("llama.attention.head_count_kv", 1)
        .kv_u32s("llama.rope.dimension_sections", &[1, 2, 3, 4])
        .f32_tensor("token_embd.weight", &[8, 16], 0.0);
    for l in 0..layers {
        let s = 1000.0 * (l + 1) as f32;
        b = b
            .f32_tensor(&format!("blk.{l}.attn_norm.weight"), &[8], s)
            .f32_tensor(&format!("blk.{l}.attn_q.weight"), &[8, 8], s + 100.0)
            .f32_tensor(&format!("blk.{l}.attn_k.weight"), &[8, 4], s + 200.0)
            .f32_tensor(&format!("blk.{l}.attn_v.weight"), &[8, 4], s + 300.0)
            .f32_tensor(&format!("blk.{l}.attn_output.weight"), &[8, 8], s + 400.0);
    }
    b.f32_tensor("output_norm.weight", &[8], 5.0)
        .f32_tensor("output.weight", &[8, 16], 7.0)
}
