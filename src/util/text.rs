//! Text from files (tensor names, scan-file keys, config values, paths) shown on a terminal:
//! control characters are escaped, so a hostile name cannot move the cursor, recolour the
//! screen or retitle the window. And I/O errors in words, without "(os error N)".

use std::borrow::Cow;

/// `s` with every control character except newline written as `\u{1b}`.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() && c != '\n' {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Whether `s` holds a control character (refused in files snrscope writes for other tools).
pub(crate) fn has_controls(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The OS's reason in words: "No such file or directory", not "... (os error 2)".
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_sequences() {
        assert_eq!(escape_controls("layers.0.v"), "layers.0.v");
        assert_eq!(escape_controls("a\x1b[2Jb\x07"), "a\\u{1b}[2Jb\\u{7}");
        assert_eq!(escape_controls("two\nlines"), "two\nlines");
        assert!(has_controls("x\ty"));
    }

    #[test]
    fn io_errors_in_words() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&e), "No such file or directory");
    }
}
