//! A probe's metrics as columns a rule can read: what each is called (on the command line as
//! `--metric`, and as the explorer's tab), what it means, and whether each value stands for one
//! layer or a block of them. Low values are the layers (or blocks) to drop first.

use super::document::ProbeDoc;

/// One metric of a probe, per layer (or per block start).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// `--metric`'s name for it: `bi`, `angle:N`, `ppl`.
    pub key: String,
    /// A tab's label: `BI`, `angle·N`, `ppl−1`.
    pub label: String,
    /// Its name in sentences ("Block Influence").
    pub name: String,
    /// Entry `i` stands for layers `i..i+block` (1 for per-layer metrics).
    pub block: usize,
    /// Its definition and what it was measured on (the model card, the details pane).
    pub definition: String,
    /// One value per entry; `None` where the probe has none (L−block+1 entries for blocks).
    pub values: Vec<Option<f64>>,
}

/// Every metric the probe holds: Block Influence, the angular distance of each block size,
/// the perplexity without each layer when it was measured.
pub fn columns(p: &ProbeDoc) -> Vec<Column> {
    let on = format!(
        "measured by `snrscope probe` on {} sample(s), {} tokens of {}",
        p.samples,
        p.tokens,
        if p.text.is_empty() {
            "its text"
        } else {
            &p.text
        }
    );
    let values = |v: &[f64]| -> Vec<Option<f64>> {
        v.iter().map(|x| Some(*x).filter(|x| !x.is_nan())).collect()
    };
    let mut out = vec![Column {
        key: "bi".into(),
        label: "BI".into(),
        name: "Block Influence".into(),
        block: 1,
        definition: format!(
            "Block Influence (ShortGPT): 1 − mean cos(input, output) of the layer over every \
             token; low = the layer changes its input little; {on}"
        ),
        values: values(&p.block_influence),
    }];
    for (i, rows) in p.angular.iter().enumerate() {
        let b = i + 1;
        out.push(Column {
            key: format!("angle:{b}"),
            label: format!("angle·{b}"),
            name: format!("angular distance (n={b})"),
            block: b,
            definition: format!(
                "angular distance (Gromov et al.): arccos(cos(x_l, x_l+{b}))/π at each \
                 sample's last token, mean over samples; entry l stands for dropping layers \
                 l–l+{}; low = they change the last token little; {on}",
                b - 1
            ),
            values: values(rows),
        });
    }
    if let Some(w) = &p.ppl_without_layer {
        let orig = p
            .ppl_original
            .map_or("unknown".to_string(), |o| format!("{o:.4}"));
        out.push(Column {
            key: "ppl".into(),
            label: "ppl−1".into(),
            name: "perplexity without the layer".into(),
            block: 1,
            definition: format!(
                "perplexity of the model without this one layer (Shortened LLaMA's PPL \
                 criterion; the original's is {orig}); low = removing it costs least; {on}"
            ),
            values: values(w),
        });
    }
    out
}

/// The column `--metric KEY` names; the error lists what the probe holds.
pub fn column(p: &ProbeDoc, key: &str) -> Result<Column, String> {
    let key = key.trim().to_ascii_lowercase();
    // `angle` alone is blocks of 1, as `angular_distance` "1".
    let key = match key.as_str() {
        "angle" | "angular" => "angle:1".to_string(),
        "block_influence" => "bi".to_string(),
        k => k.replace("angular:", "angle:"),
    };
    let all = columns(p);
    let names: Vec<&str> = all.iter().map(|c| c.key.as_str()).collect();
    let hint = names.join(", ");
    all.iter()
        .find(|c| c.key == key)
        .cloned()
        .ok_or_else(|| match key.as_str() {
            "ppl" => {
                format!("holds no perplexity without each layer (probe with --ppl); it has: {hint}")
            }
            _ => format!("has no metric {key:?}; it has: {hint}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ProbeDoc {
        ProbeDoc {
            model: "m".into(),
            model_type: "llama".into(),
            model_fingerprint: "f".into(),
            stack_prefix: "model.layers".into(),
            layers: 3,
            samples: 1,
            tokens: 9,
            text: "t".into(),
            block_influence: vec![0.2, f64::NAN, 0.1],
            angular: vec![vec![0.3, 0.2, 0.1], vec![0.4, 0.5]],
            ppl_original: None,
            ppl_without_layer: None,
        }
    }

    #[test]
    fn names_and_blocks() {
        let c = columns(&doc());
        let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["bi", "angle:1", "angle:2"]);
        assert_eq!(c[0].values, vec![Some(0.2), None, Some(0.1)]);
        assert_eq!(c[2].block, 2);
        assert_eq!(column(&doc(), "Angular:2").unwrap().values.len(), 2);
        assert_eq!(column(&doc(), "angle").unwrap().key, "angle:1");
        let e = column(&doc(), "ppl").unwrap_err();
        assert!(
            e.contains("probe with --ppl") && e.contains("bi, angle:1, angle:2"),
            "{e}"
        );
        assert!(
            column(&doc(), "angle:3")
                .unwrap_err()
                .contains("no metric \"angle:3\"")
        );
    }
}
