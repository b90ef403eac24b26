//! A GGUF model in the explorer: the scan saved with llama.cpp's names, the YAML's `model:`
//! left for the user (a GGUF is not what mergekit reads), and `e` writing a pruned GGUF.

use std::{path::Path, sync::Arc};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use snrscope::checkpoint::{Model, gguf::GgufModel};
use tempfile::TempDir;

use super::{Session, key};
use crate::ui::{
    app::{App, AppOptions},
    msg::Msg,
    state::overlay::{Dialog, DialogKind, Overlay, StatusKind},
};

/// The 15-layer fixture of tests/gguf (attn_v of layers 13 and 14: infinite SNR), scanned.
fn scanned_gguf() -> (TempDir, Session) {
    let tmp = TempDir::new().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf/snr-llama.gguf");
    let path = tmp.path().join("snr-llama.gguf");
    std::fs::copy(src, &path).unwrap();
    let model = Arc::new(Model::open(&path).unwrap());
    let mut app = Session::new(
        App::for_model(
            model,
            AppOptions {
                autoscan: true,
                threads: 2,
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    app.drain();
    (tmp, app)
}

fn dialog(app: &App) -> &Dialog {
    match app.overlay() {
        Overlay::Dialog(d) => d,
        o => panic!("no dialog: {o:?}"),
    }
}

fn type_into(app: &mut Session, text: &str) {
    app.handle(Msg::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    for c in text.chars() {
        app.handle(key(KeyCode::Char(c)));
    }
}

#[test]
fn e_writes_a_pruned_gguf_and_w_saves_gguf_names() {
    let (t, mut app) = scanned_gguf();
    assert_eq!(app.choice().selection().dropped(), vec![13, 14]);
    // The screen names the module as llama.cpp does.
    assert_eq!(app.module().name, "self_attn.v_proj");
    assert_eq!(app.module().label, "attn_v");
    assert_eq!(app.module().tab_label(true), "[attn_v]");

    app.handle(key(KeyCode::Char('e')));
    let d = dialog(&app);
    assert_eq!(d.kind, DialogKind::Model);
    assert_eq!(d.path(), "snr-llama-pruned.gguf");
    let out = t.path().join("pruned.gguf");
    type_into(&mut app, &out.display().to_string());
    app.handle(key(KeyCode::Enter));
    assert!(app.export().is_some(), "{:?}", app.status());
    app.drain();
    let s = app.status().cloned().unwrap();
    assert_eq!(s.kind, StatusKind::Ok, "{}", s.text);
    let pruned = GgufModel::open(&out).unwrap();
    assert_eq!(pruned.block_count(), Some(13));
    let src = GgufModel::open(&t.path().join("snr-llama.gguf")).unwrap();
    for l in [0, 12] {
        let name = format!("blk.{l}.attn_v.weight");
        let a = src.tensor(&name).unwrap();
        let b = pruned.tensor(&name).unwrap();
        assert_eq!(a.info.ggml_type, b.info.ggml_type);
        assert_eq!(
            a.read_raw(0..a.info.n_rows()).unwrap(),
            b.read_raw(0..b.info.n_rows()).unwrap()
        );
    }
    assert!(pruned.tensor("blk.13.attn_v.weight").is_none());

    // The saved scan names modules as llama.cpp does.
    app.handle(key(KeyCode::Char('w')));
    let json = t.path().join("scan.json");
    type_into(&mut app, &json.display().to_string());
    app.handle(key(KeyCode::Enter));
    let (_, entries) = snrscope::scanfile::read(&json).unwrap();
    assert_eq!(entries.len(), 15);
    assert_eq!(entries[3].module, "blk.3.attn_v");

    // mergekit's model: must be given: a GGUF without source metadata leaves it empty.
    app.handle(key(KeyCode::Char('y')));
    let d = dialog(&app);
    assert_eq!(d.kind, DialogKind::Yaml);
    assert_eq!(d.field("model"), Some(""));
}

/// This process's bytes read through read(2) and the like (`rchar` of /proc/self/io).
fn bytes_read() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Opening a GGUF and drawing the first frame reads its header only: on a 64 GiB model (a
/// sparse file: 32 layers of four 512 MiB F16 matrices) the bytes read stay near the
/// header's size and the resident memory does not grow by any tensor's size.
#[test]
fn first_frame_reads_only_the_header() {
    snrscope_testkit::memory::in_own_process(
        "ui::tests::gguf::first_frame_reads_only_the_header",
        || {
            use snrscope_testkit::gguf_builder::Builder;
            let tmp = TempDir::new().unwrap();
            let path = tmp.path().join("big.gguf");
            let (hidden, layers) = (16384u64, 32);
            let meta = Builder::new()
                .kv_str("general.architecture", "llama")
                .kv_u32("llama.block_count", layers)
                .kv_u32("llama.embedding_length", hidden as u32)
                .kv_u32("llama.attention.head_count", 128)
                .kv_u32("llama.attention.head_count_kv", 128);
            let mut tensors = Vec::new();
            for l in 0..layers {
                for m in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                    tensors.push((
                        format!("blk.{l}.{m}.weight"),
                        vec![hidden, hidden],
                        1, // F16
                        hidden * hidden * 2,
                    ));
                }
            }
            meta.write_sparse(&path, &tensors);
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size > 64 << 30, "{size}");

            let rss0 = snrscope_testkit::memory::status_kb("VmRSS:");
            let read0 = bytes_read();
            let model = Arc::new(Model::open(&path).unwrap());
            let mut app = App::for_model(
                model,
                AppOptions {
                    autoscan: false,
                    ..AppOptions::default()
                },
            )
            .unwrap();
            app.handle(Msg::Resize(120, 40));
            let mut terminal =
                ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
            terminal.draw(|f| crate::ui::view::render(f, &app)).unwrap();
            let read = bytes_read() - read0;
            let rss = snrscope_testkit::memory::status_kb("VmRSS:").saturating_sub(rss0);
            eprintln!("64 GiB GGUF: {read} bytes read, RSS +{rss} KiB to the first frame");
            let screen: String = terminal
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect();
            assert!(screen.contains("big"), "the frame names the model");
            assert!(
                read < 1 << 20,
                "{read} bytes read (the header and the buffered reads of it)"
            );
            assert!(rss < 64 << 10, "RSS grew by {rss} KiB");
        },
    );
}

/// `p` on a GGUF: the text tokenized by the GGUF's own vocabulary (here a character-level
/// SentencePiece one, so the ids are known by hand), the perplexity that of the checkpoint the
/// GGUF was converted from on those ids.
#[test]
fn p_scores_a_gguf_with_its_own_tokenizer() {
    use snrscope::forward::{self, EvalOptions};
    use snrscope_testkit::gguf_convert::{convert_llama, small_llama};

    let tmp = TempDir::new().unwrap();
    let spec = small_llama();
    let st = tmp.path().join("st");
    snrscope_testkit::eval_models::write_model(&st, &spec).unwrap();
    let gguf = tmp.path().join("m.gguf");
    convert_llama(&spec, &gguf, false, true);
    let words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"];
    let text: Vec<&str> = words.iter().cycle().take(30).copied().collect();
    let text = text.join(" ");
    let file = tmp.path().join("t.txt");
    std::fs::write(&file, &text).unwrap();
    // "▁the▁cat...": ▁ is 3, a..z are 4..29.
    let by_hand: Vec<u32> = text
        .split(' ')
        .flat_map(|w| std::iter::once(3).chain(w.bytes().map(|c| (c - b'a') as u32 + 4)))
        .collect();

    let setup = crate::ui::eval_text::EvalSetup {
        text: Some(file),
        max_tokens: 1000,
        window: Some(48),
        threads: 2,
    };
    let model = Arc::new(Model::open(&gguf).unwrap());
    let mut app = Session::new(
        App::for_model(
            model,
            AppOptions {
                autoscan: true,
                threads: 2,
                eval: setup.clone(),
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    app.drain();
    app.handle(key(KeyCode::Char('p')));
    app.drain();
    let tokens = app
        .evals()
        .text
        .as_ref()
        .expect("the text was read")
        .tokens
        .clone();
    assert_eq!(&tokens[..], &by_hand[..]);
    let ppl = app
        .evals()
        .state
        .original
        .clone()
        .expect("computed")
        .perplexity;

    let checkpoint = Arc::new(Model::open(&st).unwrap());
    let r = forward::evaluate(
        &checkpoint,
        &by_hand,
        &[vec![]],
        &EvalOptions {
            threads: 2,
            window: setup.window,
            max_tokens: Some(setup.max_tokens),
            check_memory: true,
        },
        &snrscope::util::cancel::CancelToken::default(),
        |_| {},
        None,
    );
    let want = r[0].clone().unwrap().unwrap().perplexity;
    assert!(
        (ppl - want).abs() <= 1e-9 * want,
        "GGUF in the explorer {ppl} vs its checkpoint {want}"
    );
}
