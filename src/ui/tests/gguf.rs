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
