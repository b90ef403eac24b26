//! The one-line bars around the chart: header, module tabs, progress, the pruning summary,
//! the rule, and the status/hints line.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::Widget,
};

use super::theme;
use crate::ui::{
    App, format, keys, layout,
    state::{
        document::{Kind, ScanState},
        overlay::{Overlay, StatusKind},
    },
};
use snrscope::{
    forward::{Stage, format_perplexity},
    plan,
    util::bytes::human_bytes,
};

fn line(l: Line, area: Rect, buf: &mut Buffer) {
    if area.height > 0 {
        l.render(area, buf);
    }
}

pub fn header(app: &App, area: Rect, buf: &mut Buffer) {
    let kind = app.doc().kind_word();
    let mut spans = vec![
        Span::styled(" snrscope ", theme::bold().fg(theme::ACCENT)),
        Span::styled(
            snrscope::util::text::escape_controls(&app.doc().name).into_owned(),
            theme::bold(),
        ),
        Span::styled(format!(" ({kind}) "), theme::dim()),
    ];
    // In words, not only in colour, and early on the line so a narrow screen keeps it: the
    // choice differs from what was last written.
    if app.unsaved() {
        spans.push(Span::styled("modified · ", theme::bold().fg(theme::MANUAL)));
    }
    spans.extend([Span::raw(format!(
        "stack {} · {} layers",
        snrscope::util::text::escape_controls(&app.doc().stack.prefix),
        app.num_layers()
    ))]);
    if let Some(m) = app.model() {
        spans.push(Span::styled(
            format!(
                " · {} params · {}",
                snrscope::util::bytes::human_count(m.total_params()),
                human_bytes(m.total_bytes())
            ),
            theme::dim(),
        ));
    }
    if !app.doc().warnings.is_empty() {
        spans.push(Span::styled(
            format!(" · {} warning(s) (! shows)", app.doc().warnings.len()),
            Style::new().fg(theme::MANUAL),
        ));
    }
    // The way to help and out stays at the right edge; the rest gives way on narrow screens.
    let keys = "  ? help  q quit";
    let content = Line::from(spans.clone());
    if content.width() + keys.chars().count() <= area.width as usize {
        spans.push(Span::styled(keys, theme::dim()));
        line(Line::from(spans), area, buf);
        return;
    }
    let keys_w = (keys.chars().count() as u16).min(area.width);
    let left = Rect::new(area.x, area.y, area.width - keys_w, area.height);
    let right = Rect::new(area.x + left.width, area.y, keys_w, area.height);
    line(Line::from(spans), left, buf);
    line(Line::styled(keys, theme::dim()), right, buf);
}

pub fn tabs(app: &App, area: Rect, buf: &mut Buffer) {
    let (first, last, shown) = layout::tabs(
        &app.doc().tab_widths(app.view().current),
        app.view().current,
        area.width,
    );
    let mut spans = vec![Span::styled(layout::TABS_PREFIX, theme::dim())];
    if first > 0 {
        spans.push(Span::styled(format!("‹{first} "), theme::dim()));
    }
    for (i, _, _) in shown {
        let m = &app.doc().modules[i];
        let mut style = if i == app.view().current {
            Style::new()
                .fg(theme::ACCENT)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else if matches!(m.state, ScanState::Done | ScanState::Loaded) {
            Style::new()
        } else {
            theme::dim()
        };
        if i == app.choice().drive {
            style = style.add_modifier(Modifier::UNDERLINED);
        }
        spans.push(Span::styled(m.tab_label(i == app.view().current), style));
        spans.push(Span::raw(" "));
    }
    if last < app.doc().modules.len() {
        spans.push(Span::styled(
            format!("{}›", app.doc().modules.len() - last),
            theme::dim(),
        ));
    }
    line(Line::from(spans), area, buf);
}

fn gauge(frac: f64, width: usize) -> String {
    let filled = ((frac.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!(
        "{}{}",
        "━".repeat(filled),
        "─".repeat(width - filled.min(width))
    )
}

pub fn progress(app: &App, area: Rect, buf: &mut Buffer) {
    if let Some(e) = &app.export() {
        let frac = if e.progress.bytes_total > 0 {
            e.progress.bytes_done as f64 / e.progress.bytes_total as f64
        } else {
            0.0
        };
        line(
            Line::from(vec![
                Span::styled(" exporting ", theme::bold().fg(theme::MANUAL)),
                Span::raw(format!("{} ", e.out.display())),
                Span::styled(gauge(frac, 20), Style::new().fg(theme::MANUAL)),
                Span::raw(format!(
                    " {} / {}  (Esc cancels)",
                    human_bytes(e.progress.bytes_done),
                    human_bytes(e.progress.bytes_total)
                )),
            ]),
            area,
            buf,
        );
        return;
    }
    if let Some(r) = app.probes().running() {
        let spinner = SPINNER[(app.tick() % 10) as usize];
        let eta = r
            .eta
            .map(|d| format!("ETA {}", format::duration(d)))
            .unwrap_or_else(|| "ETA …".into());
        line(
            Line::from(vec![
                Span::styled(
                    format!(" {spinner} probing "),
                    theme::bold().fg(theme::ACCENT),
                ),
                Span::styled(gauge(r.fraction, 24), Style::new().fg(theme::ACCENT)),
                Span::raw(format!(
                    " {:.0} % · {} · {eta}",
                    r.fraction * 100.0,
                    format::duration(r.elapsed)
                )),
                Span::styled("  Esc cancels", theme::dim()),
            ]),
            area,
            buf,
        );
        return;
    }
    let running = app
        .doc()
        .modules
        .iter()
        .find(|m| m.state == ScanState::Running);
    let queued = app
        .doc()
        .modules
        .iter()
        .filter(|m| m.state == ScanState::Queued)
        .count();
    if let Some(m) = running {
        let p = m.progress;
        let spinner = SPINNER[(app.tick() % 10) as usize];
        let eta = p
            .eta()
            .map(|d| format!("ETA {}", format::duration(d)))
            .unwrap_or_else(|| "ETA …".into());
        let mut spans = vec![
            Span::styled(
                format!(" {spinner} scanning "),
                theme::bold().fg(theme::ACCENT),
            ),
            Span::raw(format!("{} ", m.label)),
            Span::styled(gauge(p.fraction(), 24), Style::new().fg(theme::ACCENT)),
            Span::raw(if p.cached > 0 {
                format!(
                    " {}/{} ({} cached) · {:.1} computed/s · {eta}",
                    p.done,
                    p.total,
                    p.cached,
                    p.rate()
                )
            } else {
                format!(
                    " {}/{} · {:.1} matrices/s · {eta}",
                    p.done,
                    p.total,
                    p.rate()
                )
            }),
        ];
        if queued > 0 {
            spans.push(Span::styled(format!(" · {queued} queued"), theme::dim()));
        }
        spans.push(Span::styled("  Esc cancels", theme::dim()));
        line(Line::from(spans), area, buf);
        return;
    }
    let m = app.module();
    let text = match m.state {
        ScanState::Loaded if m.metric.is_some() => {
            let (lo, hi) = m
                .cells
                .iter()
                .filter_map(|c| c.snr())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            format!(
                " {} from the probe file: {} values{} · low = drop first",
                m.value_name(),
                m.count(|k| matches!(k, Kind::Finite(_) | Kind::Infinite)),
                if lo <= hi {
                    format!(", {} to {}", format::sig(lo, 3), format::sig(hi, 3))
                } else {
                    String::new()
                }
            )
        }
        ScanState::Loaded => format!(
            " loaded from scan file: {} ∞, {} failed — no spectra, no model export",
            m.count(|k| matches!(k, Kind::Infinite)),
            m.count(|k| matches!(k, Kind::Failed | Kind::NaN)),
        ),
        ScanState::Done => format!(
            " {} scanned: {} matrices in {} · {} ∞ · {} without SNR",
            m.label,
            m.progress.total,
            format::duration(m.progress.elapsed),
            m.count(|k| matches!(k, Kind::Infinite)),
            m.count(|k| matches!(k, Kind::Failed | Kind::NaN)),
        ),
        ScanState::Cancelled => format!(
            " {} scan cancelled at {}/{} (Tab away and back to resume)",
            m.label, m.progress.done, m.progress.total
        ),
        ScanState::Queued => format!(" {} queued behind the running scan", m.label),
        ScanState::NotStarted => format!(" {} not scanned", m.label),
        ScanState::Running => String::new(),
    };
    line(Line::styled(text, theme::dim()), area, buf);
}

/// `keep [0,12) [13,20) [22,60)  48/60 layers  34.4B → 27.6B params`
#[cfg(test)]
pub fn summary_text(app: &App) -> String {
    summary_fitted(app, usize::MAX)
}

/// The summary in at most `width` characters: the counts always show; when the ranges do not
/// fit, whole ranges from the middle give way to `…` (a cut range would misstate the slices).
pub fn summary_fitted(app: &App, width: usize) -> String {
    let sel = app.choice().selection();
    let dropped = sel.dropped();
    let ranges: Vec<String> = sel
        .kept_ranges()
        .iter()
        .map(|r| plan::format_ranges(std::slice::from_ref(r)))
        .collect();
    let n = app.num_layers();
    let kept = n - dropped.len();
    let mut tail = format!("  {kept}/{n} layers");
    if let Some(m) = app.model() {
        let z = plan::sizes(m, &app.doc().stack, &dropped);
        tail.push_str(&format!(
            "  {} → {} params",
            snrscope::util::bytes::human_count(z.params_before),
            snrscope::util::bytes::human_count(z.params_after)
        ));
    }
    if ranges.is_empty() {
        return format!("keep nothing{tail}");
    }
    let all = format!("keep {}{tail}", ranges.join(" "));
    if all.chars().count() <= width {
        return all;
    }
    let last = ranges.last().cloned().unwrap_or_default();
    let budget = width.saturating_sub(tail.chars().count() + "keep ".len() + last.len() + 3);
    let mut head = String::new();
    for r in &ranges[..ranges.len() - 1] {
        if head.chars().count() + r.len() + 1 > budget {
            break;
        }
        head.push_str(r);
        head.push(' ');
    }
    format!("keep {head}… {last}{tail}")
}

/// How the perplexity part of the summary looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PplLook {
    /// Computed for the choice on screen.
    Current,
    /// Computed for an earlier choice (or only the original is known): the old value, dimmed.
    Stale,
    Running,
}

/// The perplexity part of the summary: `ppl 12.31 → 14.08 (+14.4 %)`, with progress while a
/// job runs and marked stale once the choice moved on; `None` before the first `p`.
pub fn ppl_text(app: &App) -> Option<(String, PplLook)> {
    ppl_text_sized(app, false)
}

/// [`ppl_text`], or with `compact` a shorter stale value (without its choice) for narrow
/// screens, where the whole sentence would push it off the line.
fn ppl_text_sized(app: &App, compact: bool) -> Option<(String, PplLook)> {
    let ev = &app.evals();
    let st = &ev.state;
    let current = app.choice().selection().dropped();
    let orig = st
        .original
        .as_ref()
        .map(|o| format_perplexity(o.perplexity));
    if ev.running() {
        let spinner = SPINNER[(app.tick() % 10) as usize];
        let stage = match &st.progress {
            Some((_, Stage::Loading { .. })) => "loading".to_string(),
            Some((_, s @ Stage::Scoring { .. })) => format!("{:.0} %", 100.0 * s.fraction()),
            None => "reading the text".to_string(),
        };
        let text = match orig {
            Some(o) => format!("ppl {o} → {spinner} {stage}"),
            None => format!("ppl {spinner} original {stage}"),
        };
        return Some((text, PplLook::Running));
    }
    if let Some(sum) = ev.summary() {
        return Some(if sum.is_stale(&current) && compact {
            (
                format!(
                    "ppl {} → {} stale",
                    format_perplexity(sum.original),
                    format_perplexity(sum.pruned)
                ),
                PplLook::Stale,
            )
        } else if sum.is_stale(&current) {
            (
                format!(
                    "{} for {} · stale, p",
                    sum.text(),
                    plan::format_layer_list(&sum.dropped)
                ),
                PplLook::Stale,
            )
        } else {
            (sum.text(), PplLook::Current)
        });
    }
    let o = orig?;
    Some(if current.is_empty() {
        (format!("ppl {o} (original)"), PplLook::Current)
    } else {
        (format!("ppl {o} → ? · p"), PplLook::Stale)
    })
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn summary(app: &App, area: Rect, buf: &mut Buffer) {
    let width = (area.width as usize).saturating_sub(1);
    let mut ppl = ppl_text(app);
    let fits = |p: &Option<(String, PplLook)>| {
        p.as_ref()
            .is_none_or(|(t, _)| width >= t.chars().count() + 2 + 40)
    };
    if !fits(&ppl) {
        ppl = ppl_text_sized(app, true);
    }
    let ppl_width = ppl.as_ref().map_or(0, |(t, _)| t.chars().count() + 2);
    // The layer summary is what the user acts on; the perplexity gives way on narrow screens.
    let (text, ppl) = if ppl_width > 0 && width >= ppl_width + 40 {
        (summary_fitted(app, width - ppl_width), ppl)
    } else {
        (summary_fitted(app, width), None)
    };
    let style = if app.unsaved() {
        theme::bold().fg(theme::MANUAL)
    } else {
        theme::bold()
    };
    let mut spans = vec![Span::raw(" "), Span::styled(text, style)];
    if let Some((t, look)) = ppl {
        let style = match look {
            PplLook::Current => theme::bold().fg(theme::ACCENT),
            PplLook::Stale => theme::faint(),
            PplLook::Running => Style::new().fg(theme::ACCENT),
        };
        spans.push(Span::raw("  "));
        spans.push(Span::styled(t, style));
    }
    line(Line::from(spans), area, buf);
}

pub fn rule(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = vec![
        Span::styled(" rule ", theme::dim()),
        Span::raw(app.rule_text()),
    ];
    if app.view().current != app.choice().drive {
        spans.push(Span::styled(
            format!("  · {} on screen (d: let it drive)", app.module().label),
            Style::new().fg(theme::MANUAL),
        ));
    }
    line(Line::from(spans), area, buf);
}

pub fn status(app: &App, area: Rect, buf: &mut Buffer) {
    if let Some(s) = &app.status() {
        let style = match s.kind {
            StatusKind::Info => Style::new(),
            StatusKind::Ok => Style::new().fg(theme::KEEP_MANUAL),
            StatusKind::Error => theme::bold().fg(theme::FAILED),
        };
        line(
            Line::from(vec![Span::raw(" "), Span::styled(s.text.clone(), style)]),
            area,
            buf,
        );
        return;
    }
    // On a narrow screen the hints give way from the end, but help and quit always stay.
    let mut hints = keys::hints(app.mode());
    // "Tab next field" only where there is another field to go to.
    if let Overlay::Dialog(d) = app.overlay()
        && d.fields.len() < 2
    {
        hints.retain(|(_, word)| *word != "next field");
    }
    let width = |h: &[(&str, &str)]| -> usize {
        h.iter()
            .map(|(k, d)| k.chars().count() + d.chars().count() + 3)
            .sum()
    };
    while width(&hints) > area.width as usize {
        let Some(i) = hints
            .iter()
            .rposition(|(_, d)| !matches!(*d, "help" | "quit"))
        else {
            break;
        };
        hints.remove(i);
    }
    let spans: Vec<Span> = hints
        .into_iter()
        .flat_map(|(k, d)| {
            [
                Span::styled(format!(" {k}"), theme::key()),
                Span::styled(format!(" {d} "), theme::dim()),
            ]
        })
        .collect();
    line(Line::from(spans), area, buf);
}
