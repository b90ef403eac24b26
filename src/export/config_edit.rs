//! config.json of the pruned model: the source config with the layer count lowered and every
//! per-layer list shortened to the kept layers, key order and everything else unchanged.

use serde_json::Value;

/// Keys that hold the number of layers of the main stack (as in `layers::config_layer_count`).
pub(crate) const LAYER_COUNT_KEYS: &[&str] =
    &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];

/// Arrays that are never per-layer even when their length happens to equal the layer count.
const NOT_PER_LAYER: &[&str] = &[
    "architectures",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "bad_words_ids",
];

/// Arrays that hold layer *indices* (not one value per layer): renumbered, dropped ones removed.
const LAYER_INDEX_LISTS: &[&str] = &["mlp_only_layers"];

/// Lists that hold one entry per layer by definition: a different length is a broken config
/// (the export cannot know which entry belongs to which layer) and is reported.
/// (`sliding_window_pattern` is an integer period in Gemma 3; only a list of it is checked.)
const PER_LAYER_LISTS: &[&str] = &[
    "layer_types",
    "layers_block_type",
    "block_types",
    "no_rope_layers",
    "sliding_window_pattern",
];

/// Sub-configs that describe the language model itself in multimodal configs. Other nested
/// configs (vision towers, audio encoders) keep their own layer counts even when they happen to
/// equal the text model's.
const TEXT_CONFIGS: &[&str] = &["text_config", "llm_config", "language_config"];

/// The config for a model that keeps the source layers `kept` (ascending) of `old_layers`.
/// Edited objects: the top level and the text model's sub-config (`text_config`, ...). In each:
/// the layer-count keys equal to `old_layers` become `kept.len()`; every array of length
/// `old_layers` keeps the kept layers' entries, in order; lists of layer indices
/// (`mlp_only_layers`) are renumbered. Returns the new config and one line per edit.
pub(crate) fn prune_config(
    config: &Value,
    old_layers: usize,
    kept: &[usize],
) -> (Value, Vec<String>) {
    let mut out = config.clone();
    let mut edits = Vec::new();
    let Some(top) = out.as_object_mut() else {
        return (out, edits);
    };
    edit_object(top, "", old_layers, kept, &mut edits);
    for (key, v) in top.iter_mut() {
        if let Some(obj) = v.as_object_mut()
            && TEXT_CONFIGS.contains(&key.as_str())
        {
            let path = format!("{key}.");
            edit_object(obj, &path, old_layers, kept, &mut edits);
        }
    }
    (out, edits)
}

/// Warnings for per-layer lists whose length is not the layer count: they are copied unchanged.
pub(crate) fn per_layer_list_warnings(config: &Value, old_layers: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = config.as_object() else {
        return out;
    };
    let nested = TEXT_CONFIGS.iter().filter_map(|k| {
        top.get(*k)
            .and_then(Value::as_object)
            .map(|o| (format!("{k}."), o))
    });
    for (path, obj) in std::iter::once((String::new(), top)).chain(nested) {
        for key in PER_LAYER_LISTS {
            if let Some(list) = obj.get(*key).and_then(Value::as_array)
                && list.len() != old_layers
            {
                out.push(format!(
                    "config.json: {path}{key} has {} entries for {old_layers} layers; it was \
                     copied unchanged (check it by hand)",
                    list.len()
                ));
            }
        }
    }
    out
}

fn edit_object(
    obj: &mut serde_json::Map<String, Value>,
    path: &str,
    old_layers: usize,
    kept: &[usize],
    edits: &mut Vec<String>,
) {
    let new_layers = kept.len();
    for (key, v) in obj.iter_mut() {
        if LAYER_COUNT_KEYS.contains(&key.as_str()) && v.as_u64() == Some(old_layers as u64) {
            *v = Value::from(new_layers);
            edits.push(format!("{path}{key}: {old_layers} -> {new_layers}"));
            continue;
        }
        let Some(arr) = v.as_array_mut() else {
            continue;
        };
        if LAYER_INDEX_LISTS.contains(&key.as_str()) {
            let renumbered: Vec<Value> = arr
                .iter()
                .filter_map(|x| x.as_u64())
                .filter_map(|old| kept.iter().position(|&k| k as u64 == old))
                .map(Value::from)
                .collect();
            if arr.iter().all(|x| x.as_u64().is_some()) {
                edits.push(format!("{path}{key}: layer indices renumbered"));
                *arr = renumbered;
            }
            continue;
        }
        if arr.len() == old_layers && !NOT_PER_LAYER.contains(&key.as_str()) {
            let shortened: Vec<Value> = kept.iter().map(|&i| arr[i].clone()).collect();
            *arr = shortened;
            edits.push(format!(
                "{path}{key}: per-layer list shortened from {old_layers} to {new_layers}"
            ));
        }
    }
}

/// [`prune_config`] on config.json's text: only the values that change are rewritten, every
/// other byte (float spelling such as `1e-06`, key order, indentation, line ends) is kept.
/// Shortened lists keep their kept entries' original text and separators. Fails (the caller
/// then writes the re-serialized [`prune_config`] value) only when the text is not a JSON
/// object or the edited text would not parse back to the same value.
pub(crate) fn prune_config_text(
    text: &str,
    old_layers: usize,
    kept: &[usize],
) -> Result<(String, Vec<String>), String> {
    let original: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let (pruned, edits) = prune_config(&original, old_layers, kept);
    let root = json_text::parse(text)?;
    let mut replacements: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let (Some(old_top), Some(new_top)) = (original.as_object(), pruned.as_object()) else {
        return Err("not a JSON object".into());
    };
    let mut objects = vec![(&root, old_top, new_top)];
    for key in TEXT_CONFIGS {
        if let (Some(node), Some(Value::Object(o)), Some(Value::Object(n))) =
            (root.get(key), old_top.get(*key), new_top.get(*key))
        {
            objects.push((node, o, n));
        }
    }
    for (node, old, new) in objects {
        for (key, new_value) in new {
            let old_value = &old[key];
            if old_value == new_value || old_value.is_object() {
                continue;
            }
            let member = node.get(key).ok_or("a key changed that the text lacks")?;
            replacements.push((
                member.span.clone(),
                render(text, member, old_value, new_value, kept),
            ));
        }
    }
    replacements.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (r, new) in replacements {
        out.push_str(&text[at..r.start]);
        out.push_str(&new);
        at = r.end;
    }
    out.push_str(&text[at..]);
    let check: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    if check != pruned {
        return Err("the edited text does not parse back to the pruned config".into());
    }
    Ok((out, edits))
}

/// The new text of one value: a shortened per-layer list keeps its kept entries' text; other
/// lists keep their separators; scalars are written as serde_json writes them.
fn render(text: &str, node: &json_text::Node, old: &Value, new: &Value, kept: &[usize]) -> String {
    let (Some(old_items), Some(new_items), json_text::Kind::Array(items)) =
        (old.as_array(), new.as_array(), &node.kind)
    else {
        return new.to_string();
    };
    let is_subset = new_items.len() == kept.len()
        && kept
            .iter()
            .zip(new_items)
            .all(|(&k, v)| old_items.get(k) == Some(v));
    let parts: Vec<String> = if is_subset {
        kept.iter()
            .map(|&k| text[items[k].span.clone()].to_string())
            .collect()
    } else {
        new_items.iter().map(Value::to_string).collect()
    };
    let inner = &text[node.span.start + 1..node.span.end - 1];
    let (lead, sep, trail) = match (items.first(), items.get(1), items.last()) {
        (Some(a), Some(b), Some(z)) => (
            &text[node.span.start + 1..a.span.start],
            &text[a.span.end..b.span.start],
            &text[z.span.end..node.span.end - 1],
        ),
        (Some(a), None, Some(z)) => (
            &text[node.span.start + 1..a.span.start],
            ", ",
            &text[z.span.end..node.span.end - 1],
        ),
        _ => ("", ", ", inner),
    };
    if parts.is_empty() {
        return "[]".into();
    }
    format!("[{lead}{}{trail}]", parts.join(sep))
}

/// Byte spans of a JSON text's values (just enough of a parser to edit values in place).
mod json_text {
    use std::ops::Range;

    pub(crate) struct Node {
        pub span: Range<usize>,
        pub kind: Kind,
    }

    pub enum Kind {
        Object(Vec<(String, Node)>),
        Array(Vec<Node>),
        Scalar,
    }

    impl Node {
        pub fn get(&self, key: &str) -> Option<&Node> {
            match &self.kind {
                // The last duplicate wins, as in serde_json.
                Kind::Object(members) => {
                    members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
                }
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Node, String> {
        let mut p = Parser {
            b: text.as_bytes(),
            i: 0,
            text,
            depth: 0,
        };
        p.ws();
        let node = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(node)
    }

    struct Parser<'a> {
        b: &'a [u8],
        i: usize,
        text: &'a str,
        depth: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }

        fn err(&self, what: &str) -> String {
            format!("{what} at byte {}", self.i)
        }

        fn value(&mut self) -> Result<Node, String> {
            self.depth += 1;
            if self.depth > 128 {
                return Err(self.err("nested too deeply"));
            }
            let start = self.i;
            let kind = match self.b.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut members = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                    } else {
                        loop {
                            self.ws();
                            let ks = self.i;
                            self.string()?;
                            let key: String = serde_json::from_str(&self.text[ks..self.i])
                                .map_err(|e| e.to_string())?;
                            self.ws();
                            if self.b.get(self.i) != Some(&b':') {
                                return Err(self.err("expected ':'"));
                            }
                            self.i += 1;
                            self.ws();
                            let v = self.value()?;
                            members.push((key, v));
                            self.ws();
                            match self.b.get(self.i) {
                                Some(b',') => self.i += 1,
                                Some(b'}') => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return Err(self.err("expected ',' or '}'")),
                            }
                        }
                    }
                    Kind::Object(members)
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                    } else {
                        loop {
                            self.ws();
                            items.push(self.value()?);
                            self.ws();
                            match self.b.get(self.i) {
                                Some(b',') => self.i += 1,
                                Some(b']') => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return Err(self.err("expected ',' or ']'")),
                            }
                        }
                    }
                    Kind::Array(items)
                }
                Some(b'"') => {
                    self.string()?;
                    Kind::Scalar
                }
                Some(_) => {
                    while self.i < self.b.len()
                        && !matches!(
                            self.b[self.i],
                            b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'
                        )
                    {
                        self.i += 1;
                    }
                    if self.i == start {
                        return Err(self.err("expected a value"));
                    }
                    Kind::Scalar
                }
                None => return Err(self.err("unexpected end")),
            };
            self.depth -= 1;
            Ok(Node {
                span: start..self.i,
                kind,
            })
        }

        fn string(&mut self) -> Result<(), String> {
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a string"));
            }
            self.i += 1;
            while let Some(&c) = self.b.get(self.i) {
                self.i += 1;
                match c {
                    b'\\' => self.i += 1,
                    b'"' => return Ok(()),
                    _ => {}
                }
            }
            Err(self.err("unterminated string"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-layer lists of the wrong length are named, not copied in silence (only
    /// `layer_types` and its kin were).
    #[test]
    fn wrong_length_per_layer_lists_are_named() {
        let config = serde_json::json!({
            "num_hidden_layers": 4,
            "no_rope_layers": [1, 0, 1],
            "sliding_window_pattern": 6,
            "text_config": {"sliding_window_pattern": [true, false, true, false, true]},
            "layer_types": ["a", "b", "c", "d"],
        });
        let w = per_layer_list_warnings(&config, 4);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("no_rope_layers has 3 entries for 4 layers"),
            "{w:?}"
        );
        assert!(
            w[1].contains("text_config.sliding_window_pattern has 5 entries"),
            "{w:?}"
        );
    }
    use serde_json::json;

    #[test]
    fn shortens_counts_and_lists_in_place() {
        let c = json!({
            "z_first": 1,
            "num_hidden_layers": 4,
            "layer_types": ["a", "b", "c", "d"],
            "eos_token_id": [1, 2, 3, 4],
            "mlp_only_layers": [0, 2, 3],
            "text_config": {"num_hidden_layers": 4, "sliding": [true, false, true, false]},
            "vision_config": {"num_hidden_layers": 4, "x": [1, 2, 3, 4]}
        });
        let (out, edits) = prune_config(&c, 4, &[0, 3]);
        assert_eq!(
            out,
            json!({
                "z_first": 1,
                "num_hidden_layers": 2,
                "layer_types": ["a", "d"],
                "eos_token_id": [1, 2, 3, 4],
                "mlp_only_layers": [0, 1],
                "text_config": {"num_hidden_layers": 2, "sliding": [true, false]},
                "vision_config": {"num_hidden_layers": 4, "x": [1, 2, 3, 4]}
            })
        );
        // Key order survives (serde_json's preserve_order).
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "z_first");
        assert_eq!(edits.len(), 5);
    }

    #[test]
    fn text_edits_keep_every_other_byte() {
        let text = "{\n  \"rms_norm_eps\": 1e-06,\n  \"num_hidden_layers\": 4,\n  \"rope_theta\": 10000.0,\n  \"layer_types\": [\n    \"a\",\n    \"b\",\n    \"c\",\n    \"d\"\n  ],\n  \"mlp_only_layers\": [0, 2, 3],\n  \"text_config\": {\"num_hidden_layers\": 4, \"eps\": 1E-5}\n}\n";
        let (out, edits) = prune_config_text(text, 4, &[0, 3]).unwrap();
        assert_eq!(
            out,
            "{\n  \"rms_norm_eps\": 1e-06,\n  \"num_hidden_layers\": 2,\n  \"rope_theta\": 10000.0,\n  \"layer_types\": [\n    \"a\",\n    \"d\"\n  ],\n  \"mlp_only_layers\": [0, 1],\n  \"text_config\": {\"num_hidden_layers\": 2, \"eps\": 1E-5}\n}\n"
        );
        assert_eq!(edits.len(), 4);
        // Every layer kept: the very same bytes.
        let (same, _) = prune_config_text(text, 4, &[0, 1, 2, 3]).unwrap();
        assert_eq!(same, text);
    }
}
