//! Render tests: the real renderer into a ratatui test buffer, checked on text (snapshots
//! under tests/snapshots) and on cell styles. The app state is built from synthetic scan
//! events, so every bar's kind is known by construction.

use std::{sync::Arc, time::Duration};

use crate::ui::{
    action::{Action, Edit},
    app::{App, AppOptions},
    layout::ChartGeom,
    msg::Msg,
    view::render,
};
use ratatui::{
    Terminal,
    backend::TestBackend,
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier},
};
use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    spectrum::{
        scan::{MatrixResult, Progress, ScanEvent},
        snr::{Method, SnrStats, stats_from_singular_values},
    },
};
use tempfile::TempDir;

/// Layer 0 finite, 1 infinite, 2 failed, 3 all-zero (NaN), 4 finite, 5–7 pending.
fn mixed_app() -> (TempDir, App, u64) {
    // The scan is asked for, never run: its results are made here.
    let (tmp, mut app, scan_id) = super::tiny_app(1, "org/tiny-model");
    let outcomes: Vec<(usize, Result<SnrStats, String>)> = vec![
        (
            0,
            Ok(stats_from_singular_values(
                vec![10.0, 4.0, 3.0, 2.0, 1.0],
                5,
                5,
            )),
        ),
        (
            1,
            Ok(stats_from_singular_values(vec![1.5, 1.4, 1.3, 1.2], 4, 8)),
        ),
        (2, Err("matrix contains 3 NaN or infinite entries".into())),
        (3, Ok(stats_from_singular_values(vec![0.0; 4], 4, 8))),
        (
            4,
            Ok(stats_from_singular_values(
                vec![20.0, 2.0, 1.5, 1.0, 0.5],
                5,
                5,
            )),
        ),
    ];
    for (job, outcome) in outcomes {
        app.handle(Msg::Scan {
            scan_id,
            event: ScanEvent::Result {
                result: Box::new(MatrixResult {
                    job,
                    outcome,
                    elapsed: Duration::from_micros(1500),
                    cached: false,
                    method: Method::Svd,
                }),
                progress: Progress {
                    done: job + 1,
                    total: 8,
                    bytes_done: (job as u64 + 1) * 4096,
                    bytes_total: 8 * 4096,
                    elapsed: Duration::from_millis(10 * (job as u64 + 1)),
                    ..Progress::default()
                },
            },
        });
    }
    (tmp, app, scan_id)
}

pub(super) fn draw(app: &mut App, w: u16, h: u16) -> Buffer {
    app.handle(Msg::Resize(w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| render(f, app)).unwrap();
    terminal.backend().buffer().clone()
}

pub(super) fn text(buf: &Buffer) -> String {
    let a = buf.area;
    let mut out = String::new();
    for y in a.y..a.y + a.height {
        let mut line = String::new();
        for x in a.x..a.x + a.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn geom(app: &App) -> ChartGeom {
    app.chart_geom()
}

/// Column of the middle of layer `i`'s bar.
fn bar_x(g: &ChartGeom, i: usize) -> u16 {
    g.bars.x + (i - g.offset) as u16 * g.slot + (g.bar_w - 1) / 2
}

fn row_of(buf: &Buffer, y: u16) -> String {
    (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()
}

#[test]
fn chart_shows_each_kind_of_layer_with_its_own_look() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::Right); // cursor on the infinite layer
    let buf = draw(&mut app, 120, 40);
    insta::assert_snapshot!("mixed_chart_120x40", text(&buf));
    let g = geom(&app);
    let bottom = g.bars.y + g.bars.height - 1;

    // Infinite: the ∞ mark on top and a full-height bar, all magenta.
    let x = bar_x(&g, 1);
    assert_eq!(buf[(x, g.bars.y)].symbol(), "∞");
    assert_eq!(buf[(x, g.bars.y)].fg, Color::Magenta);
    for y in g.bars.y + 1..=bottom {
        assert_eq!(buf[(x, y)].symbol(), "█", "row {y}");
        assert_eq!(buf[(x, y)].fg, Color::Magenta, "row {y}");
    }
    // Finite: cyan, and lower than full height (layer 0 is the smaller of the two).
    let x0 = bar_x(&g, 0);
    assert_eq!(buf[(x0, bottom)].fg, Color::Cyan);
    assert_eq!(buf[(x0, g.bars.y)].symbol(), " ");
    let height = |x: u16| {
        (g.bars.y..=bottom)
            .filter(|&y| buf[(x, y)].symbol() != " ")
            .count()
    };
    assert!(height(x0) < height(bar_x(&g, 4)));
    assert!(height(bar_x(&g, 4)) < g.bars.height as usize);
    // Failed: a red "!"; all-zero: a red "∅"; pending: a grey dot.
    assert_eq!(buf[(bar_x(&g, 2), bottom)].symbol(), "!");
    assert_eq!(buf[(bar_x(&g, 2), bottom)].fg, Color::Red);
    assert_eq!(buf[(bar_x(&g, 3), bottom)].symbol(), "∅");
    assert_eq!(buf[(bar_x(&g, 3), bottom)].fg, Color::Red);
    for i in 5..8 {
        assert_eq!(buf[(bar_x(&g, i), bottom)].symbol(), "·");
        assert_eq!(buf[(bar_x(&g, i), bottom)].fg, Color::DarkGray);
        assert_eq!(height(bar_x(&g, i)), 1);
    }
    // The seed rule drops the infinite layer: a red ✗ under it, nothing under the others.
    assert_eq!(buf[(bar_x(&g, 1), g.marks_y)].symbol(), "✗");
    assert_eq!(buf[(bar_x(&g, 1), g.marks_y)].fg, Color::Red);
    for i in [0, 2, 3, 4, 5] {
        assert_eq!(buf[(bar_x(&g, i), g.marks_y)].symbol(), " ", "layer {i}");
    }
    // Labels under every bar, the cursor's reversed, and its column shaded.
    assert!(
        row_of(&buf, g.labels_y).contains("0   1   2   3   4   5   6   7") || {
            let r = row_of(&buf, g.labels_y);
            (0..8).all(|i| r.contains(&i.to_string()))
        }
    );
    let label = &buf[(g.bars.x + g.slot, g.labels_y)];
    assert_eq!(label.symbol(), "1");
    assert!(label.modifier.contains(Modifier::REVERSED));
    assert_eq!(buf[(x0 + g.slot, bottom)].bg, Color::Indexed(237));
    assert_ne!(buf[(x0, bottom)].bg, Color::Indexed(237));
}

#[test]
fn manual_overrides_look_different_from_the_rule() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::Toggle); // layer 0: dropped by hand
    app.update(Action::Right);
    app.update(Action::Toggle); // layer 1: kept by hand against the rule
    app.update(Action::Right);
    app.update(Action::Right);
    let buf = draw(&mut app, 120, 40);
    insta::assert_snapshot!("manual_marks_120x40", text(&buf));
    let g = geom(&app);
    let m0 = &buf[(bar_x(&g, 0), g.marks_y)];
    assert_eq!((m0.symbol(), m0.fg), ("✖", Color::Yellow));
    assert!(m0.modifier.contains(Modifier::BOLD));
    let m1 = &buf[(bar_x(&g, 1), g.marks_y)];
    assert_eq!((m1.symbol(), m1.fg), ("✓", Color::Green));
    // The infinite bar stays highlighted although it is now kept.
    assert_eq!(buf[(bar_x(&g, 1), g.bars.y)].fg, Color::Magenta);
    let label = &buf[(g.bars.x + 3 * g.slot, g.labels_y)];
    assert_eq!(label.symbol(), "3");
    assert!(label.modifier.contains(Modifier::REVERSED));
    let all = text(&buf);
    assert!(
        all.contains("1 changed by hand") || all.contains("2 changed by hand"),
        "{all}"
    );
    assert!(all.contains("2 changed by hand"));
}

#[test]
fn summary_line_shows_ranges_counts_and_parameters() {
    let (_t, mut app, _) = mixed_app();
    let buf = draw(&mut app, 120, 40);
    let a = crate::ui::layout::areas(120, 40, app.layout_flags());
    // 8 layers of 30 848 parameters plus 16 448 outside the stack (hand-counted from the
    // tiny spec: hidden 64, kv 32, intermediate 96, vocab 128); layer 1 dropped.
    assert_eq!(
        row_of(&buf, a.summary.y).trim_end(),
        " keep [0,1) [2,8)  7/8 layers  263.2K → 232.4K params"
    );
    assert!(row_of(&buf, a.rule.y).contains("drop layers whose self_attn.v_proj SNR is infinite"));
    assert!(row_of(&buf, a.progress.y).contains("scanning self_attn.v_proj"));
    assert!(row_of(&buf, a.progress.y).contains("5/8"));
}

#[test]
fn details_pane_lists_the_matrix_statistics() {
    let (_t, mut app, _) = mixed_app();
    let buf = draw(&mut app, 120, 40);
    let all = text(&buf);
    // Layer 0: S = [10, 4, 3, 2, 1] on 5x5: sigma = 2/1.349, threshold = 2 sigma,
    // signal 3, noise 2, ratio 17/30.
    assert!(
        all.contains("model.layers.0.self_attn.v_proj.weight"),
        "{all}"
    );
    assert!(all.contains("shape 32×64"));
    assert!(all.contains("dtype BF16"));
    assert!(all.contains("snr_ratio 5.666667e-1"));
    assert!(all.contains("S[0] 1.0000e1"));
    assert!(all.contains("sigma 1.4826e0"));
    assert!(all.contains("threshold 2.9652e0"));
    assert!(all.contains("signal/noise 3/2 values"));
    assert!(all.contains("scan 1.5 ms"));
    assert!(all.contains("Spectrum · layer 0"));
}

#[test]
fn help_overlay_lists_every_key() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::Help);
    let buf = draw(&mut app, 120, 40);
    insta::assert_snapshot!("help_120x40", text(&buf));
    app.update(Action::Cancel);
    let all = help_pages(&mut app, 120, 40);
    for needle in [
        "previous layer",
        "next module type",
        "drop / keep the layer under the cursor",
        "back to the rule alone",
        "undo the last change",
        "jump to layer N",
        "next layer with infinite SNR",
        "layers sorted by SNR",
        "the tab on screen (SNR or metric) drives the choice",
        "unfrozen-parameters YAML",
        "the model's warnings",
        "write the YAML, then quit",
        "log / linear SNR scale",
        "write the mergekit YAML",
        "export the pruned model",
        "write the scan results as JSON",
        "Ctrl-C",
    ] {
        assert!(all.contains(needle), "help lacks {needle:?}");
    }
}

#[test]
fn too_small_terminal_says_so() {
    let (_t, mut app, _) = mixed_app();
    let buf = draw(&mut app, 40, 12);
    let all = text(&buf);
    insta::assert_snapshot!("too_small_40x12", all);
    assert!(all.contains("terminal too small"));
    assert!(all.contains("need 50×16, have 40×12"));
}

#[test]
fn narrow_terminal_scrolls_and_says_which_layers_show() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("wide-model");
    write_model(&dir, &ModelSpec::tiny(80, &[3])).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let mut app = App::for_model(
        model,
        AppOptions {
            autoscan: false,
            threads: 1,
            // A fixed name: the default is the model's absolute (temporary) path.
            model_name: Some("org/tiny-model".into()),
            ..AppOptions::default()
        },
    )
    .unwrap();
    // 60 wide: 47 bar columns, two per layer: 23 layers at a time.
    let buf = draw(&mut app, 60, 24);
    insta::assert_snapshot!("narrow_60x24", text(&buf));
    assert!(text(&buf).contains("layers 0–22 of 80"));
    app.update(Action::End);
    let buf = draw(&mut app, 60, 24);
    assert!(text(&buf).contains("layers 57–79 of 80"), "{}", text(&buf));
    let g = geom(&app);
    assert_eq!(buf[(g.bars.x + 22 * g.slot, g.labels_y)].symbol(), "7");
    assert_eq!(buf[(g.bars.x + 22 * g.slot + 1, g.labels_y)].symbol(), "9");
}

#[test]
fn every_size_renders_without_panicking() {
    let (_t, mut app, _) = mixed_app();
    for (w, h) in [
        (1, 1),
        (49, 15),
        (50, 16),
        (51, 19),
        (80, 20),
        (89, 25),
        (200, 60),
    ] {
        let _ = draw(&mut app, w, h);
        app.update(Action::Help);
        let _ = draw(&mut app, w, h);
        app.update(Action::Cancel);
    }
    app.update(Action::ToggleSpectrum);
    app.update(Action::ToggleScale);
    let buf = draw(&mut app, 100, 30);
    assert!(text(&buf).contains("Spectrum · layer 0"));
    // Draw into an offset area too: widgets must not assume (0, 0).
    let mut buf = Buffer::empty(Rect::new(3, 2, 90, 28));
    crate::ui::view::draw(&app, buf.area, &mut buf);
}

#[test]
fn below_rule_draws_its_threshold_line() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::CycleRule); // lowest K
    app.update(Action::CycleRule); // below X
    let buf = draw(&mut app, 120, 40);
    let g = geom(&app);
    let rows: Vec<u16> = (g.bars.y..g.bars.y + g.bars.height)
        .filter(|&y| row_of(&buf, y).contains("╌"))
        .collect();
    assert_eq!(rows.len(), 1, "one threshold line");
    let y = rows[0];
    let cell = (g.bars.x..g.bars.x + g.bars.width)
        .find(|&x| buf[(x, y)].symbol() == "╌")
        .unwrap();
    assert_eq!(buf[(cell, y)].fg, Color::Red);
    assert!(text(&buf).contains("drop layers whose self_attn.v_proj SNR is below"));
}

/// Every page of the help, scrolled through with PgDn until it stops moving.
fn help_pages(app: &mut App, w: u16, h: u16) -> String {
    app.update(Action::Help);
    let mut all = String::new();
    loop {
        let buf = draw(app, w, h);
        all.push_str(&text(&buf));
        let before = app.overlay().clone();
        app.update(Action::ScrollPages(1));
        if *app.overlay() == before {
            break;
        }
    }
    app.update(Action::Cancel);
    all
}

/// On a short terminal the help scrolls: every key and every word of each description shows
/// on some page (at 80x20 and 120x40 descriptions were cut at the right edge).
#[test]
fn help_on_a_short_terminal_scrolls_to_every_key() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::Help);
    let buf = draw(&mut app, 80, 20);
    insta::assert_snapshot!("help_80x20", text(&buf));
    app.update(Action::Cancel);
    for (w, h) in [(80, 20), (80, 24), (120, 40)] {
        let all = help_pages(&mut app, w, h);
        let words: String = all
            .lines()
            .flat_map(|l| l.trim_matches(|c| c == '│' || c == ' ').split_whitespace())
            .collect::<Vec<_>>()
            .join(" ");
        for (_, table) in crate::ui::keys::sections() {
            for b in table {
                assert!(all.contains(b.shown), "{w}x{h}: no key {:?}", b.shown);
                assert!(
                    words.contains(b.help),
                    "{w}x{h}: {:?} cut: {:?}",
                    b.shown,
                    b.help
                );
            }
        }
        assert!(all.contains("✓ kept by hand"), "{w}x{h}");
    }
}

#[test]
fn export_dialog_shows_the_ranges_the_warning_and_an_editable_path() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::WriteYaml);
    app.update(Action::Edit(Edit::Left));
    let buf = draw(&mut app, 120, 40);
    let all = text(&buf);
    insta::assert_snapshot!("yaml_dialog_120x40", all);
    assert!(all.contains("Write mergekit YAML"));
    assert!(all.contains("keep [0,1) [2,8)"));
    // Layers 2, 3 (failed, all-zero) and 5-7 (pending) have no SNR.
    assert!(
        all.contains("5 layer(s) have no self_attn.v_proj SNR (yet)"),
        "{all}"
    );
    // The cursor sits on the last character of `tiny-model-pruned.yml`, shown reversed.
    let (x, y) = (0..40u16)
        .flat_map(|y| (0..120u16).map(move |x| (x, y)))
        .find(|&(x, y)| {
            row_of(&buf, y).contains("path tiny-model-pruned.yml")
                && buf[(x, y)].symbol() == "l"
                && buf[(x + 1, y)].symbol() == " "
                && buf[(x - 1, y)].symbol() == "m"
        })
        .expect("the path line");
    assert!(buf[(x, y)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(x - 1, y)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn clicking_a_module_tab_shows_that_module() {
    let (_t, mut app, _) = mixed_app();
    let buf = draw(&mut app, 120, 40);
    let tabs = row_of(&buf, 1);
    // Click in the middle of the name as drawn, wherever the layout put it.
    let byte = tabs.find("mlp.up_proj").expect("tab shown");
    let column = tabs[..byte].chars().count() as u16 + 4;
    app.handle(Msg::Mouse(crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
        column,
        row: 1,
        modifiers: crossterm::event::KeyModifiers::NONE,
    }));
    assert_eq!(app.module().name, "mlp.up_proj");
    let buf = draw(&mut app, 120, 40);
    assert!(text(&buf).contains("SNR of mlp.up_proj"));
    // The tab is drawn as the current one (reversed).
    let tabs = row_of(&buf, 1);
    let byte = tabs.find("mlp.up_proj").expect("tab shown");
    let x = tabs[..byte].chars().count() as u16;
    assert!(buf[(x, 1)].modifier.contains(Modifier::REVERSED));
}

/// Issue 8, item 7: a 0.01 % spread is drawn as nearly equal bars on a log axis widened to a
/// decade (and the title says so), with axis labels that tell the two values apart; the rule
/// line shows the `below` threshold exactly.
#[test]
fn a_tiny_spread_is_drawn_honestly() {
    let (_t, mut app, scan_id) = mixed_app();
    // Four finite layers whose SNR differ in the fourth or fifth digit (hand-made spectra:
    // the smallest singular value moves the noise sum a little).
    for (job, last) in [(0usize, 1.0), (2, 1.0005), (3, 1.001), (4, 1.0015)] {
        app.handle(Msg::Scan {
            scan_id,
            event: ScanEvent::Result {
                result: Box::new(MatrixResult {
                    job,
                    outcome: Ok(stats_from_singular_values(
                        vec![10.0, 4.0, 3.0, 2.0, last],
                        5,
                        5,
                    )),
                    elapsed: Duration::ZERO,
                    cached: false,
                    method: Method::Svd,
                }),
                progress: Progress::default(),
            },
        });
    }
    let buf = draw(&mut app, 120, 40);
    let all = text(&buf);
    let finite: Vec<f64> = app
        .module()
        .cells
        .iter()
        .filter_map(|c| c.snr().filter(|x| x.is_finite()))
        .collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(hi / lo < 1.001, "{lo} {hi}");
    assert!(all.contains("log scale widened to one decade"), "{all}");
    let g = geom(&app);
    // Labels of the largest and smallest value differ, and each parses back close to its value.
    let labels: Vec<f64> = (g.axis.y..g.axis.y + g.axis.height)
        .filter_map(|y| {
            let r: String = (g.axis.x..g.axis.x + g.axis.width)
                .map(|x| buf[(x, y)].symbol())
                .collect();
            r.trim().trim_end_matches('┤').trim().parse::<f64>().ok()
        })
        .collect();
    assert!(labels.len() >= 2, "{labels:?}");
    assert!(
        labels.iter().any(|l| (l - hi).abs() <= 1e-3 * hi),
        "{labels:?} vs {hi}"
    );
    assert!(
        labels.iter().any(|l| (l - lo).abs() <= 1e-3 * lo),
        "{labels:?} vs {lo}"
    );
    // The three finite bars differ by far less than the chart's height.
    let bottom = g.bars.y + g.bars.height - 1;
    let height = |i: usize| {
        let x = bar_x(&g, i);
        (g.bars.y..=bottom)
            .filter(|&y| buf[(x, y)].symbol() != " ")
            .count()
    };
    let hs: Vec<usize> = [0usize, 2, 3, 4]
        .into_iter()
        .filter(|&i| app.module().cells[i].snr().is_some_and(f64::is_finite))
        .map(height)
        .collect();
    assert_eq!(hs.len(), 4);
    assert!(
        hs.iter().max().unwrap() - hs.iter().min().unwrap() <= 1,
        "{hs:?}"
    );
    // The exact threshold of a `below` rule.
    app.update(Action::CycleRule);
    app.update(Action::CycleRule);
    let snrscope::plan::Rule::Below(x) = app.choice().rule else {
        panic!("{:?}", app.choice().rule)
    };
    let buf = draw(&mut app, 120, 40);
    assert!(
        text(&buf).contains(&format!("below {x:?}")),
        "{}",
        text(&buf)
    );
}

/// Issue 8, item 9: the three marks are three glyphs, the cursor is reversed (and pointed at
/// when its layer has no mark), the module on screen is in brackets — all without colour.
#[test]
fn marks_cursor_and_tab_read_without_colour() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::Toggle); // 0: dropped by hand
    app.update(Action::Right);
    app.update(Action::Toggle); // 1: infinite, kept by hand
    app.update(Action::Right);
    app.update(Action::Right);
    app.update(Action::Right); // cursor on 4, no mark
    // A rule that drops layer 4's neighbour 0 by rule: `lowest 1` picks the smallest finite.
    let buf = draw(&mut app, 120, 40);
    let g = geom(&app);
    let mark = |i: usize| buf[(bar_x(&g, i), g.marks_y)].symbol().to_string();
    assert_eq!(mark(0), "✖");
    assert_eq!(mark(1), "✓");
    assert_eq!(mark(4), "^", "the cursor without a mark");
    app.update(Action::CycleRule); // lowest 1: layer 0 by rule too (hand agrees), so use 4
    app.update(Action::Left);
    app.update(Action::Left);
    app.update(Action::Left); // cursor on 1
    let buf = draw(&mut app, 120, 40);
    let marks: Vec<String> = (0..8)
        .map(|i| buf[(bar_x(&g, i), g.marks_y)].symbol().to_string())
        .collect();
    let rule_dropped: Vec<usize> = (0..8)
        .filter(|&i| app.choice().mark(i) == snrscope::plan::Mark::DropByRule)
        .collect();
    for i in rule_dropped {
        assert_eq!(marks[i], "✗", "{marks:?}");
    }
    let label = &buf[(g.bars.x + g.slot, g.labels_y)];
    assert_eq!(label.symbol(), "1");
    assert!(label.modifier.contains(Modifier::REVERSED));
    assert!(
        row_of(&buf, 1).contains("[self_attn.v_proj"),
        "{}",
        row_of(&buf, 1)
    );
}

/// Issue 8, item 8: at 80 columns the rule line still says which module drives the choice.
#[test]
fn the_rule_line_names_the_driving_module_at_80_columns() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::NextModule);
    let buf = draw(&mut app, 80, 24);
    let a = crate::ui::layout::areas(80, 24, app.layout_flags());
    let rule = row_of(&buf, a.rule.y);
    assert!(rule.contains("self_attn.v_proj"), "{rule}");
}

/// The sorted view lists layers by SNR with their fate; the cursor's row is reversed.
#[test]
fn sorted_view_lists_layers_by_snr() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::ToggleSorted);
    let buf = draw(&mut app, 120, 40);
    let all = text(&buf);
    assert!(all.contains("Layers by SNR of self_attn.v_proj"), "{all}");
    let rows: Vec<String> = all
        .lines()
        .filter(|l| l.contains("dropped") || l.contains("kept"))
        .map(String::from)
        .collect();
    // Layer 1 (infinite) first, then 4 (0.78), then 0 (0.57), then the ones without a value.
    let layer_of = |r: &String| {
        r.split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let order: Vec<usize> = rows.iter().take(3).map(layer_of).collect();
    assert_eq!(order, vec![1, 4, 0], "{rows:#?}");
    assert!(rows[0].contains("∞") && rows[0].contains("dropped by the rule"));
}

/// At 80×24 the header and the hint line keep `? help` and `q quit`, and the chart's legend
/// keeps the marks of the choice (`✓ keep (hand)`): each was cut at the right edge.
#[test]
fn at_80x24_help_quit_and_the_marks_stay_on_screen() {
    let (_t, mut app, _) = mixed_app();
    let buf = draw(&mut app, 80, 24);
    let all = text(&buf);
    insta::assert_snapshot!("plain_80x24", all);
    let rows: Vec<&str> = all.lines().collect();
    assert!(
        rows[0].contains("? help") && rows[0].contains("q quit"),
        "{}",
        rows[0]
    );
    let hints = rows.last().unwrap();
    assert!(
        hints.contains("? help") && hints.contains("q quit"),
        "{hints}"
    );
    assert!(all.contains("✓ keep (hand)"), "{all}");
    assert!(
        all.contains("✗ drop (rule)") && all.contains("✖ drop (hand)"),
        "{all}"
    );
}

/// The hint line offers "Tab next field" only in a dialog with another field (the scan JSON
/// dialog has one; the YAML dialog two).
#[test]
fn tab_next_field_is_hinted_only_with_a_second_field() {
    let (_t, mut app, _) = mixed_app();
    app.update(Action::WriteScan);
    let one = text(&draw(&mut app, 120, 40));
    let hints = one.lines().last().unwrap().to_string();
    assert!(
        hints.contains("Enter write") && !hints.contains("next field"),
        "{hints}"
    );
    app.update(Action::Cancel);
    app.update(Action::WriteYaml);
    let two = text(&draw(&mut app, 120, 40));
    assert!(
        two.lines().last().unwrap().contains("Tab next field"),
        "{two}"
    );
}

/// The y-axis labels of the chart, top to bottom (without the tick).
fn axis_labels(buf: &Buffer, g: &ChartGeom) -> Vec<String> {
    (g.axis.y..g.axis.y + g.axis.height)
        .map(|y| {
            (g.axis.x..g.axis.x + g.axis.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end_matches('┤')
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Issue 19: equal values give one y-axis label, not two; the `below` rule's line says what it
/// is on the line itself.
#[test]
fn axis_labels_are_distinct_and_the_threshold_line_is_labelled() {
    let t = TempDir::new().unwrap();
    let p = t.path().join("scan.json");
    std::fs::write(
        &p,
        r#"{"model.layers.0.self_attn.v_proj": {"snr": 0.5, "type": "self_attn.v_proj"},
            "model.layers.1.self_attn.v_proj": {"snr": 0.5, "type": "self_attn.v_proj"},
            "model.layers.2.self_attn.v_proj": {"snr": Infinity, "type": "self_attn.v_proj"}}"#,
    )
    .unwrap();
    let (_, entries) = snrscope::scanfile::read(&p).unwrap();
    let mut app = App::for_scan_file(&p, entries).unwrap();
    for scale in 0..2 {
        for rule in 0..4 {
            let buf = draw(&mut app, 120, 40);
            let g = geom(&app);
            let labels = axis_labels(&buf, &g);
            let mut uniq = labels.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(
                uniq.len(),
                labels.len(),
                "scale {scale}, rule {rule} ({}): {labels:?}",
                app.choice().rule
            );
            app.update(Action::CycleRule);
        }
        app.update(Action::ToggleScale);
    }
    let (_t, mut app, _) = mixed_app();
    app.update(Action::CycleRule); // lowest K
    app.update(Action::CycleRule); // below X
    let snrscope::plan::Rule::Below(x) = app.choice().rule else {
        panic!("{}", app.choice().rule)
    };
    let buf = draw(&mut app, 120, 40);
    let g = geom(&app);
    let line = (g.bars.y..g.bars.y + g.bars.height)
        .map(|y| row_of(&buf, y))
        .find(|r| r.contains("╌"))
        .expect("a threshold line");
    let at = line.find("rule: below ").expect("the line is labelled") + "rule: below ".len();
    let shown: f64 = line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (shown - x).abs() <= 1e-3 * x.abs(),
        "{shown} for {x}: {line}"
    );
}
