//! Weights for candle, straight from the memory-mapped checkpoint: a `VarBuilder` backend that
//! serves each name the model asks for from a source tensor (the original names, or the pruned
//! model's renumbered ones from [`crate::export::pruned_tensors`]), converted to f32 as it is
//! loaded. Nothing is written anywhere.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::{Init, VarBuilder, var_builder::SimpleBackend};
use safetensors::Dtype;

use crate::{
    checkpoint::{Model, TensorEntry, dtype_name},
    util::cancel::CancelToken,
};

/// How a served tensor differs from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transform {
    None,
    /// Rows of a query/key projection regrouped from the rotate-half rotary layout of Hugging
    /// Face checkpoints to the interleaved-pairs layout of candle's `llama2_c` model (the
    /// inverse of the permutation transformers' Llama conversion script applies). Row
    /// `h·d + 2i + j` takes row `h·d + j·d/2 + i`: each rotary pair becomes adjacent, and the
    /// same reordering of queries and keys leaves every attention score unchanged.
    InterleaveRotary {
        head_dim: usize,
    },
}

/// f32 weights converted so far, by (source tensor, transform): shared by the original and the
/// pruned model of one evaluation, so the second costs no memory or time.
#[derive(Debug, Default, Clone)]
pub(crate) struct Converted(Arc<Mutex<HashMap<(String, Transform), Tensor>>>);

impl Converted {
    fn get(&self, key: &(String, Transform)) -> Option<Tensor> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: (String, Transform), t: Tensor) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, t);
        }
    }
}

/// Called with the bytes of each source tensor as it is converted (progress).
pub(crate) type OnLoad = Arc<dyn Fn(u64) + Send + Sync>;

/// The names one model sees and where each comes from.
#[derive(Clone)]
pub(crate) struct WeightSource {
    model: Arc<Model>,
    /// Served name -> source tensor name.
    names: HashMap<String, String>,
    transforms: HashMap<String, Transform>,
    /// Tensors made here rather than read (rotary tables).
    made: HashMap<String, Tensor>,
    converted: Converted,
    on_load: Option<OnLoad>,
    /// Stops loading between tensors (a 70B model takes a while to convert).
    cancel: Option<CancelToken>,
}

impl std::fmt::Debug for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSource")
            .field("model", &self.model.source)
            .field("names", &self.names.len())
            .finish()
    }
}

impl WeightSource {
    /// Serves `names` (served name -> source tensor name) from `model`.
    pub fn new(model: Arc<Model>, names: HashMap<String, String>, converted: Converted) -> Self {
        WeightSource {
            model,
            names,
            transforms: HashMap::new(),
            made: HashMap::new(),
            converted,
            on_load: None,
            cancel: None,
        }
    }

    pub(crate) fn on_load(mut self, f: Option<OnLoad>) -> Self {
        self.on_load = f;
        self
    }

    pub(crate) fn cancel_with(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Serves `alias` as whatever `target` is served from (a tied output head).
    pub fn alias(&mut self, alias: &str, target: &str) {
        if let Some(src) = self.names.get(target).cloned() {
            self.names.insert(alias.to_string(), src);
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains_key(name) || self.made.contains_key(name)
    }

    pub(crate) fn set_transform(&mut self, name: &str, t: Transform) {
        self.transforms.insert(name.to_string(), t);
    }

    pub(crate) fn add_made(&mut self, name: &str, t: Tensor) {
        self.made.insert(name.to_string(), t);
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The source entry a served name reads, if any.
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.names.get(name).and_then(|s| self.model.tensor(s))
    }

    pub(crate) fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    fn load(&self, name: &str) -> candle_core::Result<Tensor> {
        if let Some(t) = self.made.get(name) {
            return Ok(t.clone());
        }
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Err(candle_core::Error::Msg("cancelled".into()));
        }
        let entry = self.entry(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: no tensor {name}", self.model.source.display()))
        })?;
        let transform = self
            .transforms
            .get(name)
            .copied()
            .unwrap_or(Transform::None);
        let key = (entry.name.clone(), transform);
        if let Some(t) = self.converted.get(&key) {
            return Ok(t);
        }
        let data = to_f32(&self.model, entry).map_err(candle_core::Error::Msg)?;
        let data = match transform {
            Transform::None => data,
            Transform::InterleaveRotary { head_dim } => {
                interleave_rows(&data, entry.shape.get(1).copied().unwrap_or(1), head_dim)
            }
        };
        let t = Tensor::from_vec(data, entry.shape.clone(), &Device::Cpu)?;
        self.converted.put(key, t.clone());
        if let Some(f) = &self.on_load {
            f(entry.num_bytes());
        }
        Ok(t)
    }
}

impl SimpleBackend for WeightSource {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        _: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.load(name)?;
        if t.shape() != &s {
            return Err(candle_core::Error::Msg(format!(
                "{}: tensor {name} has shape {:?}, but the config implies {:?}",
                self.model.source.display(),
                t.dims(),
                s.dims()
            )));
        }
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _: &Device) -> candle_core::Result<Tensor> {
        self.load(name)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.has(name)
    }
}

/// A tensor a model asked for: name and shape.
pub type Request = (String, Vec<usize>);

/// A stand-in backend that records what a model asks for and hands out zero-cost broadcast
/// zeros: building the model with it lists every (name, shape) it needs, so missing or
/// misshapen tensors are reported together, and memory is estimated, before anything loads.
#[derive(Clone)]
pub(crate) struct Probe {
    source: WeightSource,
    asked: Arc<Mutex<Vec<Request>>>,
}

impl Probe {
    pub fn new(source: WeightSource) -> Probe {
        Probe {
            source,
            asked: Default::default(),
        }
    }

    pub(crate) fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    pub fn asked(&self) -> Vec<Request> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl SimpleBackend for Probe {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        _: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(t) = self.source.made.get(name) {
            return t.to_dtype(dtype);
        }
        if let Ok(mut a) = self.asked.lock() {
            a.push((name.to_string(), s.dims().to_vec()));
        }
        Tensor::zeros((), dtype, &Device::Cpu)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "unexpected shape-less request for {name}"
        )))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.source.has(name)
    }
}

/// Problems with what a model asked for: each line names the tensor and what is wrong.
pub(crate) fn check_requests(source: &WeightSource, asked: &[Request]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, shape) in asked {
        match source.entry(name) {
            None => problems.push(format!("{name}: missing")),
            Some(e) if &e.shape != shape => problems.push(format!(
                "{name}: shape {:?} (from {}), but the config implies {shape:?}",
                e.shape, e.name
            )),
            Some(e) if !convertible(e.dtype) => problems.push(format!(
                "{name}: dtype {} cannot be evaluated (only F32, F16, BF16, F64)",
                dtype_name(e.dtype)
            )),
            Some(_) => {}
        }
    }
    problems
}

fn convertible(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// The tensor's values as f32 (BF16 and F16 exactly, F64 rounded).
fn to_f32(model: &Model, t: &TensorEntry) -> Result<Vec<f32>, String> {
    use rayon::prelude::*;
    let bytes = model.bytes(t).map_err(|e| e.to_string())?;
    let width = match t.dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 => 8,
        d => {
            return Err(format!(
                "{}: tensor {} has dtype {}, which cannot be evaluated (only F32, F16, BF16, F64)",
                model.source.display(),
                t.name,
                dtype_name(d)
            ));
        }
    };
    let dtype = t.dtype;
    let out: Vec<f32> = bytes
        .par_chunks(width * 4096)
        .flat_map_iter(|block| {
            block.chunks_exact(width).map(move |c| match dtype {
                Dtype::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                Dtype::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
                Dtype::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
                _ => f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32,
            })
        })
        .collect();
    // The f32 copy is what the model uses; dropping the map returns its pages.
    drop(bytes);
    Ok(out)
}

fn interleave_rows(data: &[f32], cols: usize, head_dim: usize) -> Vec<f32> {
    let rows = data.len() / cols.max(1);
    let half = head_dim / 2;
    let mut out = vec![0f32; data.len()];
    for r in 0..rows {
        let (head, within) = (r / head_dim, r % head_dim);
        let (i, j) = (within / 2, within % 2);
        let src = head * head_dim + j * half + i;
        out[r * cols..(r + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_pairs_each_row_with_its_rotary_partner() {
        // One head of dim 4, one column: rows [a0 a1 | b0 b1] (rotate-half pairs (a0,b0),
        // (a1,b1)) become [a0 b0 a1 b1].
        let rows = [10.0, 11.0, 20.0, 21.0];
        assert_eq!(interleave_rows(&rows, 1, 4), vec![10.0, 20.0, 11.0, 21.0]);
        // Two heads, two columns: each head regrouped on its own.
        let m: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let out = interleave_rows(&m, 2, 4);
        let row = |r: usize| [out[2 * r], out[2 * r + 1]];
        assert_eq!(row(1), [4.0, 5.0]);
        assert_eq!(row(5), [12.0, 13.0]);
    }
}
