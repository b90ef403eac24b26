//! Layer discovery on the tensor names of real architectures (names written out by hand from
//! the published checkpoints' weight maps; shapes only matter as 1-D vs 2-D).

use snrscope::checkpoint::layers::{LayerLayout, discover};

/// 1-D for norms and biases, 2-D for other weights: enough for discovery.
fn shape_of(name: &str) -> Vec<usize> {
    let lower = name.to_lowercase();
    if name.ends_with(".bias") || lower.contains("norm") || lower.contains("ln_") {
        vec![8]
    } else {
        vec![8, 8]
    }
}

fn layout(names: &[String], config_layers: Option<usize>) -> LayerLayout {
    let shapes: Vec<Vec<usize>> = names.iter().map(|n| shape_of(n)).collect();
    discover(
        names
            .iter()
            .map(String::as_str)
            .zip(shapes.iter().map(Vec::as_slice)),
        config_layers,
    )
}

fn per_layer(n: usize, prefix: &str, suffixes: &[&str]) -> Vec<String> {
    (0..n)
        .flat_map(|i| suffixes.iter().map(move |s| format!("{prefix}.{i}.{s}")))
        .collect()
}

#[test]
fn llama() {
    let mut names = vec!["model.embed_tokens.weight".to_string()];
    names.extend(per_layer(
        32,
        "model.layers",
        &[
            "input_layernorm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "post_attention_layernorm.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
        ],
    ));
    names.extend(["model.norm.weight".into(), "lm_head.weight".into()]);
    let l = layout(&names, Some(32));
    let main = l.main_stack().unwrap();
    assert_eq!(
        (main.prefix.as_str(), main.num_layers),
        ("model.layers", 32)
    );
    assert_eq!(main.default_module(), Some("self_attn.v_proj"));
    assert_eq!(main.modules.len(), 7);
    assert_eq!(main.tensors[&31].len(), 9);
    assert_eq!(
        main.modules["self_attn.v_proj"][&7],
        "model.layers.7.self_attn.v_proj.weight"
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.stacks.len(), 1);
}

#[test]
fn bert() {
    let mut names: Vec<String> = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
    ]
    .map(String::from)
    .to_vec();
    names.extend(per_layer(
        12,
        "bert.encoder.layer",
        &[
            "attention.self.query.weight",
            "attention.self.query.bias",
            "attention.self.key.weight",
            "attention.self.key.bias",
            "attention.self.value.weight",
            "attention.self.value.bias",
            "attention.output.dense.weight",
            "attention.output.dense.bias",
            "attention.output.LayerNorm.weight",
            "attention.output.LayerNorm.bias",
            "intermediate.dense.weight",
            "intermediate.dense.bias",
            "output.dense.weight",
            "output.dense.bias",
            "output.LayerNorm.weight",
            "output.LayerNorm.bias",
        ],
    ));
    names.extend([
        "bert.pooler.dense.weight".into(),
        "bert.pooler.dense.bias".into(),
    ]);
    let l = layout(&names, Some(12));
    let main = l.main_stack().unwrap();
    assert_eq!(
        (main.prefix.as_str(), main.num_layers),
        ("bert.encoder.layer", 12)
    );
    assert_eq!(main.default_module(), Some("attention.self.value"));
    assert_eq!(
        main.modules.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "attention.output.dense",
            "attention.self.key",
            "attention.self.query",
            "attention.self.value",
            "intermediate.dense",
            "output.dense"
        ]
    );
    assert_eq!(main.tensors[&0].len(), 16);
    assert!(l.warnings.is_empty());
}

#[test]
fn gpt2_without_transformer_prefix() {
    let mut names: Vec<String> = ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]
        .map(String::from)
        .to_vec();
    names.extend(per_layer(
        12,
        "h",
        &[
            "ln_1.weight",
            "ln_1.bias",
            "attn.c_attn.weight",
            "attn.c_attn.bias",
            "attn.c_proj.weight",
            "attn.c_proj.bias",
            "ln_2.weight",
            "ln_2.bias",
            "mlp.c_fc.weight",
            "mlp.c_fc.bias",
            "mlp.c_proj.weight",
            "mlp.c_proj.bias",
        ],
    ));
    let l = layout(&names, Some(12));
    let main = l.main_stack().unwrap();
    assert_eq!((main.prefix.as_str(), main.num_layers), ("h", 12));
    // GPT-2 fuses q, k, v: the fused projection is the closest equivalent.
    assert_eq!(main.default_module(), Some("attn.c_attn"));
    assert_eq!(main.modules.len(), 4);
}

#[test]
fn gpt2_with_transformer_prefix() {
    let names = per_layer(
        6,
        "transformer.h",
        &["attn.c_attn.weight", "mlp.c_fc.weight"],
    );
    let l = layout(&names, Some(6));
    assert_eq!(l.main_stack().unwrap().prefix, "transformer.h");
}

#[test]
fn gpt_neox() {
    let mut names: Vec<String> = vec!["gpt_neox.embed_in.weight".into()];
    names.extend(per_layer(
        16,
        "gpt_neox.layers",
        &[
            "input_layernorm.weight",
            "input_layernorm.bias",
            "post_attention_layernorm.weight",
            "post_attention_layernorm.bias",
            "attention.query_key_value.weight",
            "attention.query_key_value.bias",
            "attention.dense.weight",
            "attention.dense.bias",
            "mlp.dense_h_to_4h.weight",
            "mlp.dense_h_to_4h.bias",
            "mlp.dense_4h_to_h.weight",
            "mlp.dense_4h_to_h.bias",
        ],
    ));
    names.extend([
        "gpt_neox.final_layer_norm.weight".into(),
        "embed_out.weight".into(),
    ]);
    let l = layout(&names, Some(16));
    let main = l.main_stack().unwrap();
    assert_eq!(
        (main.prefix.as_str(), main.num_layers),
        ("gpt_neox.layers", 16)
    );
    assert_eq!(main.default_module(), Some("attention.query_key_value"));
    assert_eq!(main.modules.len(), 4);
}

#[test]
fn qwen2_moe_experts_stay_inside_their_layer() {
    let mut suffixes: Vec<String> = [
        "input_layernorm.weight",
        "self_attn.q_proj.weight",
        "self_attn.q_proj.bias",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "self_attn.v_proj.bias",
        "self_attn.o_proj.weight",
        "post_attention_layernorm.weight",
        "mlp.gate.weight",
        "mlp.shared_expert.gate_proj.weight",
        "mlp.shared_expert.up_proj.weight",
        "mlp.shared_expert.down_proj.weight",
        "mlp.shared_expert_gate.weight",
    ]
    .map(String::from)
    .to_vec();
    for e in 0..60 {
        for p in ["gate_proj", "up_proj", "down_proj"] {
            suffixes.push(format!("mlp.experts.{e}.{p}.weight"));
        }
    }
    let suffixes: Vec<&str> = suffixes.iter().map(String::as_str).collect();
    let mut names = vec!["model.embed_tokens.weight".to_string()];
    names.extend(per_layer(24, "model.layers", &suffixes));
    names.extend(["model.norm.weight".into(), "lm_head.weight".into()]);
    let l = layout(&names, Some(24));
    assert_eq!(l.stacks.len(), 1, "experts are not a stack of their own");
    let main = l.main_stack().unwrap();
    assert_eq!(main.num_layers, 24);
    assert_eq!(main.tensors[&23].len(), 13 + 180);
    assert_eq!(main.default_module(), Some("self_attn.v_proj"));
    assert!(main.modules.contains_key("mlp.experts.59.down_proj"));
    assert_eq!(main.modules.len(), 4 + 1 + 3 + 1 + 180);
}

#[test]
fn several_stacks_main_is_the_one_the_config_counts() {
    // A vision-language model: 27 vision layers, 32 text layers; config says 32 (text_config).
    let mut names = per_layer(
        27,
        "vision_tower.vision_model.encoder.layers",
        &["self_attn.v_proj.weight", "mlp.fc1.weight"],
    );
    names.extend(per_layer(
        32,
        "language_model.model.layers",
        &["self_attn.v_proj.weight", "mlp.down_proj.weight"],
    ));
    let config: serde_json::Value =
        serde_json::json!({"model_type": "llava", "text_config": {"num_hidden_layers": 32}});
    let n = snrscope::checkpoint::layers::config_layer_count(&config);
    assert_eq!(n, Some(32));
    let l = layout(&names, n);
    assert_eq!(l.stacks.len(), 2);
    assert_eq!(
        l.main_stack().unwrap().prefix,
        "language_model.model.layers"
    );
    assert!(
        l.stack("vision_tower.vision_model.encoder.layers")
            .is_some()
    );
    assert!(l.warnings.is_empty());
    // Without a config the largest stack wins.
    let l = layout(&names[..27 * 2 + 10], None);
    assert_eq!(
        l.main_stack().unwrap().prefix,
        "vision_tower.vision_model.encoder.layers"
    );
}

#[test]
fn count_mismatch_and_gaps_are_warned() {
    let mut names = per_layer(10, "model.layers", &["self_attn.v_proj.weight"]);
    names.remove(4);
    let l = layout(&names, Some(12));
    assert_eq!(l.main_stack().unwrap().num_layers, 10);
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(l.warnings[0].contains("12") && l.warnings[0].contains("10"));
    assert!(l.warnings[1].contains("[4]"));
}

#[test]
fn config_layer_keys() {
    use serde_json::json;
    use snrscope::checkpoint::layers::config_layer_count as c;
    assert_eq!(c(&json!({"num_hidden_layers": 60})), Some(60));
    assert_eq!(c(&json!({"n_layer": 12})), Some(12));
    assert_eq!(c(&json!({"num_layers": 24})), Some(24));
    assert_eq!(c(&json!({"hidden_size": 24})), None);
}
