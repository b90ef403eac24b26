//! What sits on top of the chart: help, warnings, the jump prompt, the write dialogs (with
//! their replace question), yes/no questions and the quit prompt; and the status line.

use std::path::PathBuf;

use crate::ui::{action::Edit, keys::Mode};

/// A one-line text editor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineEdit {
    pub text: String,
    /// In characters, 0..=text's length.
    pub cursor: usize,
}

impl LineEdit {
    pub fn new(text: impl Into<String>) -> LineEdit {
        let text = text.into();
        LineEdit {
            cursor: text.chars().count(),
            text,
        }
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(b, _)| b)
    }

    pub fn edit(&mut self, e: Edit) {
        let len = self.text.chars().count();
        self.cursor = self.cursor.min(len);
        match e {
            Edit::Insert(c) => {
                let b = self.byte_at(self.cursor);
                self.text.insert(b, c);
                self.cursor += 1;
            }
            Edit::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let b = self.byte_at(self.cursor);
                self.text.remove(b);
            }
            Edit::Delete if self.cursor < len => {
                let b = self.byte_at(self.cursor);
                self.text.remove(b);
            }
            Edit::Left => self.cursor = self.cursor.saturating_sub(1),
            Edit::Right => self.cursor = (self.cursor + 1).min(len),
            Edit::Home => self.cursor = 0,
            Edit::End => self.cursor = len,
            Edit::Clear => {
                self.text.clear();
                self.cursor = 0;
            }
            Edit::Backspace | Edit::Delete => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogKind {
    Yaml,
    Model,
    ScanJson,
    Unfrozen,
}

impl DialogKind {
    pub fn title(self) -> &'static str {
        match self {
            DialogKind::Yaml => "Write mergekit YAML",
            DialogKind::Model => "Export pruned model",
            DialogKind::ScanJson => "Write scan JSON",
            DialogKind::Unfrozen => "Write Spectrum's unfrozen parameters",
        }
    }

    /// What the dialog writes, in a line.
    pub fn what(self) -> &'static str {
        match self {
            DialogKind::Yaml => "mergekit passthrough config with the kept slices",
            DialogKind::Model => "a copy of the model without the dropped layers (renumbered)",
            DialogKind::ScanJson => "SNR of every scanned module, Spectrum/laserRMT layout",
            DialogKind::Unfrozen => {
                "the top layers by SNR per module type, for training (Spectrum)"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub label: &'static str,
    pub edit: LineEdit,
    /// Shown under the field (dim).
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    pub kind: DialogKind,
    /// The first field is always the path.
    pub fields: Vec<Field>,
    pub focus: usize,
    /// Why the last submit failed; the text stays for another try.
    pub error: Option<String>,
    /// The target exists: the dialog asks before replacing it.
    pub replace: Option<PathBuf>,
    /// Opened from the quit prompt: quit once written.
    pub then_quit: bool,
}

impl Dialog {
    pub fn new(kind: DialogKind, path: impl Into<String>) -> Dialog {
        Dialog {
            kind,
            fields: vec![Field {
                label: "path",
                edit: LineEdit::new(path),
                hint: None,
            }],
            focus: 0,
            error: None,
            replace: None,
            then_quit: false,
        }
    }

    pub fn with_field(
        mut self,
        label: &'static str,
        text: impl Into<String>,
        hint: Option<String>,
    ) -> Dialog {
        self.fields.push(Field {
            label,
            edit: LineEdit::new(text),
            hint,
        });
        self
    }

    pub fn path(&self) -> &str {
        &self.fields[0].edit.text
    }

    pub fn field(&self, label: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.label == label)
            .map(|f| f.edit.text.as_str())
    }
}

/// A yes/no question outside the dialogs.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    /// `a`: going back to the rule would forget this many hand choices.
    DiscardHandChoices(usize),
    /// `e` although the plan is doubtful; the reason is shown.
    ExportAnyway(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    None,
    /// The key list, scrolled this many rows down.
    Help(usize),
    Warnings,
    Jump(LineEdit),
    Dialog(Dialog),
    Question(Question),
    QuitPrompt,
}

impl Overlay {
    /// The key table in force.
    pub fn mode(&self) -> Mode {
        match self {
            Overlay::None => Mode::Normal,
            Overlay::Help(_) => Mode::Help,
            Overlay::Warnings => Mode::Warnings,
            Overlay::Jump(_) => Mode::Jump,
            Overlay::Dialog(d) if d.replace.is_some() => Mode::Confirm,
            Overlay::Dialog(_) => Mode::Dialog,
            Overlay::Question(_) => Mode::Confirm,
            Overlay::QuitPrompt => Mode::QuitPrompt,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Ok,
    Error,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub text: String,
    pub kind: StatusKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_editing() {
        let mut e = LineEdit::new("ab");
        e.edit(Edit::Left);
        e.edit(Edit::Insert('é'));
        assert_eq!((e.text.as_str(), e.cursor), ("aéb", 2));
        e.edit(Edit::Delete);
        e.edit(Edit::Backspace);
        assert_eq!(e.text, "a");
        e.edit(Edit::Home);
        e.edit(Edit::Backspace);
        assert_eq!((e.text.as_str(), e.cursor), ("a", 0));
        e.edit(Edit::Clear);
        assert!(e.text.is_empty());
    }
}
