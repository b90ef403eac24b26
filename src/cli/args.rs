//! Flags more than one command takes, declared once (`#[command(flatten)]`), and the parsers
//! of the values people type (`lowest:8`, `12,20-21`).

use clap::Args;
use color_eyre::eyre::{bail, eyre};
use snrscope::{
    checkpoint::{Model, layers::Stack},
    plan::{Rule, parse_layer_list},
    spectrum::snr::Method,
};

/// How scans run: the explorer, `scan` and `export` take the same three.
#[derive(Debug, Clone, Args)]
pub struct ScanFlags {
    /// Scan worker threads; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// How to get the singular values: `svd` (the reference) or `gram` (eigenvalues of W·Wᵀ,
    /// 2-3x faster on large matrices; a matrix it cannot pin down is left to the SVD).
    #[arg(long, default_value = "svd")]
    pub method: Method,
    /// Neither reuse nor store cached scan results.
    #[arg(long)]
    pub no_cache: bool,
}

pub fn parse_rule(s: &str) -> Result<Rule, String> {
    s.parse::<Rule>().map_err(|e| e.to_string())
}

/// `12,20-21` (a newtype: clap would read a bare `Vec` as repeated values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerList(pub Vec<usize>);

pub fn parse_layers(s: &str) -> Result<LayerList, String> {
    parse_layer_list(s)
        .map(LayerList)
        .map_err(|e| e.to_string())
}

/// Refuses layer numbers the stack does not have (`flags`: the flag and its layers).
pub fn check_layers(
    model: &Model,
    stack: &Stack,
    flags: &[(&str, &LayerList)],
) -> color_eyre::Result<()> {
    for (flag, list) in flags {
        if let Some(bad) = list.0.iter().find(|&&l| l >= stack.num_layers) {
            bail!(
                "{flag} {bad}: {} has {} layers in `{}` (0-{})",
                model.source.display(),
                stack.num_layers,
                stack.prefix,
                stack.num_layers.saturating_sub(1)
            );
        }
    }
    Ok(())
}

/// The module type `--module` names, else the stack's default (the value projection or its
/// closest equivalent).
pub fn module_for(
    model: &Model,
    stack: &Stack,
    requested: Option<&str>,
) -> color_eyre::Result<String> {
    // A GGUF model's module types may be given as llama.cpp names them (`attn_v`).
    let by_file_name = |m: &str| {
        stack.modules.iter().find_map(|(t, layers)| {
            let (l, tensor) = layers.iter().next()?;
            let module = match stack.derived.contains_key(t) {
                true => format!("{}.{l}.{t}", stack.prefix),
                false => tensor.strip_suffix(".weight")?.to_string(),
            };
            (snrscope::scanfile::type_of(&model.scan_key(&module)) == m).then(|| t.clone())
        })
    };
    Ok(match requested {
        Some(m) if stack.modules.contains_key(m) => m.to_string(),
        Some(m) if model.gguf.is_some() && by_file_name(m).is_some() => {
            by_file_name(m).expect("found just now")
        }
        Some(m) => bail!(
            "{}: no module type {m:?} in `{}`; available: {}",
            model.source.display(),
            stack.prefix,
            stack.modules.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => stack
            .default_module()
            .ok_or_else(|| eyre!("{}: layers have no 2-D weights", model.source.display()))?
            .to_string(),
    })
}
