//! The token ids a perplexity is computed over, and the windows they are cut into.

use std::{ops::Range, path::Path};

use super::error::EvalError;

/// The English sample scored when no text is given (see `assets/README.md`).
pub const SAMPLE_TEXT: &str = include_str!("../../assets/sample-en.txt");

/// Where the tokens came from, for reports.
pub(crate) const SAMPLE_NAME: &str = "built-in sample (KJV Genesis 1-4, assets/sample-en.txt)";

/// The tokenizer's own encoding of `text`, without added special tokens (no BOS), as
/// transformers' `tokenizer(text, add_special_tokens=False)` gives it.
pub fn tokenize(tokenizer_json: &Path, text: &str) -> Result<Vec<u32>, EvalError> {
    tokenize_counting_unknown(tokenizer_json, text).map(|(ids, _)| ids)
}

/// Spellings of the unknown token across tokenizer families.
const UNKNOWN: &[&str] = &["<unk>", "[UNK]", "<UNK>", "<|unk|>"];

/// [`tokenize`], and how many of the ids are the tokenizer's unknown token: a text mostly
/// outside the vocabulary (English for the demo's word-level tokenizer) has a perplexity that
/// says little about the text.
pub fn tokenize_counting_unknown(
    tokenizer_json: &Path,
    text: &str,
) -> Result<(Vec<u32>, usize), EvalError> {
    let bad = |problem: String| EvalError::Tokenizer {
        path: tokenizer_json.to_path_buf(),
        problem,
    };
    if !tokenizer_json.exists() {
        return Err(bad(
            "no such file (a model without tokenizer.json needs --token-ids)".into(),
        ));
    }
    let bytes = crate::util::files::read_bounded(
        tokenizer_json,
        crate::util::files::limit::TOKENIZER,
        "a tokenizer",
    )
    .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let tok = tokenizers::Tokenizer::from_bytes(&bytes)
        .map_err(|e| bad(format!("cannot load the tokenizer: {e}")))?;
    drop(bytes);
    let enc = tok
        .encode(text, false)
        .map_err(|e| bad(format!("cannot encode the text: {e}")))?;
    let ids = enc.get_ids().to_vec();
    let unknown: Vec<u32> = UNKNOWN.iter().filter_map(|t| tok.token_to_id(t)).collect();
    let n_unknown = ids.iter().filter(|id| unknown.contains(id)).count();
    Ok((ids, n_unknown))
}

/// Token ids from a file: whole numbers separated by whitespace or commas, or a JSON array.
pub fn read_token_ids(path: &Path) -> Result<Vec<u32>, EvalError> {
    let bad = |problem: String| EvalError::Text {
        path: path.to_path_buf(),
        problem,
    };
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::TEXT,
        "a file of token ids",
    )
    .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let body = text.trim();
    let body = body
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(body);
    let ids = body
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            s.parse::<u32>()
                .map_err(|_| bad(format!("entry {} ({s:?}) is not a token id", i + 1)))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    if ids.is_empty() {
        return Err(bad("holds no token ids".into()));
    }
    Ok(ids)
}

/// The text to score (a UTF-8 file, or the built-in sample when `None`) as the model's own
/// tokenizer encodes it: the ids, the text's name for reports, and how many ids are the
/// unknown token. Fewer than 2 ids leave nothing to score: an error.
pub fn text_tokens(
    model_dir: &Path,
    text: Option<&Path>,
) -> Result<(Vec<u32>, String, usize), EvalError> {
    let (body, name) = match text {
        Some(p) => (
            std::borrow::Cow::Owned(read_text(p)?),
            p.display().to_string(),
        ),
        None => (
            std::borrow::Cow::Borrowed(SAMPLE_TEXT),
            SAMPLE_NAME.to_string(),
        ),
    };
    let (ids, unknown) = tokenize_counting_unknown(&model_dir.join("tokenizer.json"), &body)?;
    if ids.len() < 2 {
        return Err(EvalError::Text {
            path: name.into(),
            problem: format!("{} token(s); at least 2 are needed", ids.len()),
        });
    }
    Ok((ids, name, unknown))
}

/// [`text_tokens`] for an opened model: a GGUF's own vocabulary (its metadata, tokenizing as
/// llama.cpp does), else the tokenizer.json of the model's folder.
pub fn model_text_tokens(
    model: &crate::checkpoint::Model,
    text: Option<&Path>,
) -> Result<(Vec<u32>, String, usize), EvalError> {
    let Some(g) = &model.gguf else {
        return text_tokens(&model.dir, text);
    };
    let (body, name) = match text {
        Some(p) => (
            std::borrow::Cow::Owned(read_text(p)?),
            p.display().to_string(),
        ),
        None => (
            std::borrow::Cow::Borrowed(SAMPLE_TEXT),
            SAMPLE_NAME.to_string(),
        ),
    };
    let tok = crate::checkpoint::gguf::Tokenizer::from_model(&g.file).map_err(|e| {
        // The GGUF's message names its file already.
        let path = g.file.main().path.clone();
        let text = e.to_string();
        let problem = text
            .strip_prefix(&format!("{}: ", path.display()))
            .unwrap_or(&text);
        EvalError::Tokenizer {
            problem: format!("{problem} (pass --token-ids to score ids instead)"),
            path,
        }
    })?;
    let ids = tok.encode(&body);
    if ids.len() < 2 {
        return Err(EvalError::Text {
            path: name.into(),
            problem: format!("{} token(s); at least 2 are needed", ids.len()),
        });
    }
    Ok((ids, name, 0))
}

/// Reads a text file as UTF-8.
pub fn read_text(path: &Path) -> Result<String, EvalError> {
    let bad = |problem: String| EvalError::Text {
        path: path.to_path_buf(),
        problem,
    };
    let bytes =
        crate::util::files::read_bounded(path, crate::util::files::limit::TEXT, "a text to score")
            .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(text)
}

/// Back-to-back windows of `window` tokens (stride = window), the last one shorter. Each
/// window is scored from its second token on (the first has nothing before it), so a last
/// window of a single token is left out.
pub fn windows(tokens: usize, window: usize) -> Vec<Range<usize>> {
    let window = window.max(2);
    (0..tokens)
        .step_by(window)
        .map(|s| s..(s + window).min(tokens))
        .filter(|r| r.len() >= 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_tokens_back_to_back() {
        assert_eq!(windows(10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(windows(9, 4), vec![0..4, 4..8]);
        assert_eq!(windows(4, 8), vec![0..4]);
        assert!(windows(1, 8).is_empty());
    }

    #[test]
    fn token_id_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.txt");
        std::fs::write(&p, "[1, 2,3\n 40 ]").unwrap();
        assert_eq!(read_token_ids(&p).unwrap(), vec![1, 2, 3, 40]);
        std::fs::write(&p, "1 two 3").unwrap();
        let e = read_token_ids(&p).unwrap_err().to_string();
        assert!(e.contains("ids.txt") && e.contains("entry 2"), "{e}");
    }

    #[test]
    fn the_sample_is_a_few_thousand_words() {
        let words = SAMPLE_TEXT.split_whitespace().count();
        assert!((2000..4000).contains(&words), "{words}");
    }
}
