//! The explorer's `P`: Block Influence and every angular distance of the model, computed on
//! the text `p` scores (8 samples cut from it, as `snrscope probe` does by default) in one
//! streamed pass on a job thread, and handed back as the probe file's contents would be. The
//! probe cache is shared with `snrscope probe`: a probe computed once is read back.

use std::sync::Arc;

use crossbeam_channel::Sender;

use snrscope::{
    checkpoint::Model,
    forward::{ArchConfig, EvalEvent},
    probe::{self, ProbeCache, ProbeDoc, ProbeMeta, ProbeOptions, Samples},
    util::cancel::CancelToken,
};

use super::{
    eval_text::EvalSetup,
    msg::{Msg, ProbeMsg},
};

/// Samples cut from the text, as `snrscope probe`'s default.
const SAMPLES: usize = 8;
/// Tokens per sample at most (fewer when `--max-tokens` is small).
const SAMPLE_TOKENS: usize = 128;

pub(crate) fn run_probe(
    model: &Arc<Model>,
    setup: &EvalSetup,
    use_cache: bool,
    cancel: &CancelToken,
    id: u64,
    tx: &Sender<Msg>,
) {
    let result = probe_model(model, setup, use_cache, cancel, id, tx);
    let _ = tx.send(Msg::Probe {
        id,
        msg: ProbeMsg::Done(result),
    });
}

fn probe_model(
    model: &Arc<Model>,
    setup: &EvalSetup,
    use_cache: bool,
    cancel: &CancelToken,
    id: u64,
    tx: &Sender<Msg>,
) -> Result<Option<ProbeDoc>, String> {
    let config = model
        .config
        .as_ref()
        .ok_or("no config.json beside the weights: the architecture is unknown")?;
    let config_path = model.config_path.clone().unwrap_or(model.source.clone());
    let arch = ArchConfig::parse(config, &config_path).map_err(|e| e.to_string())?;
    let stack = model.main_stack().map_err(|e| e.to_string())?;
    let layers = stack.num_layers;
    let (ids, text, _) = snrscope::forward::tokens::model_text_tokens(model, setup.text.as_deref())
        .map_err(|e| e.to_string())?;
    let per = (setup.max_tokens / SAMPLES)
        .clamp(2, SAMPLE_TOKENS)
        .min(arch.context);
    let samples = Samples::from_stream(&ids, SAMPLES, per);
    if samples.is_empty() || samples.ranges.iter().any(|r| r.len() < 2) {
        return Err(format!("{text} has {} tokens: too few to probe", ids.len()));
    }
    let options = ProbeOptions {
        max_block: layers,
        ppl: false,
        threads: setup.threads,
        check_memory: true,
    };
    let mut cache = if use_cache { ProbeCache::user() } else { None };
    let sink_tx = tx.clone();
    let sink = move |e: EvalEvent| {
        if matches!(e, EvalEvent::Progress { .. }) {
            let _ = sink_tx.send(Msg::Probe {
                id,
                msg: ProbeMsg::Event(e),
            });
        }
    };
    let Some((collected, _cached)) = probe::probe(
        model,
        layers,
        &samples,
        &options,
        cache.as_mut(),
        cancel,
        sink,
    )
    .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let stats: Vec<&probe::SampleStats> = collected.stats.iter().collect();
    let m = probe::metrics(layers, &stats, collected.ppl.as_ref(), 1);
    let meta = ProbeMeta {
        model: model.source.display().to_string(),
        model_type: arch.model_type.clone(),
        model_fingerprint: snrscope::spectrum::parts::fingerprint(model),
        stack_prefix: stack.prefix.clone(),
        layers,
        hidden: arch.hidden,
        text,
        sample_tokens: samples.lengths(),
        samples_sha256: samples.digest(),
        max_block: layers,
        ppl: false,
    };
    Ok(Some(ProbeDoc::from_metrics(&meta, &m)))
}
