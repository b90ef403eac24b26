//! The tokenizer stored in a GGUF's metadata, tokenizing as llama.cpp does (`llama-vocab.cpp`,
//! text without BOS, special tokens not parsed):
//! - `tokenizer.ggml.model = llama`: llama.cpp's SentencePiece algorithm — the text (with a
//!   space in front when `add_space_prefix`, the default) gets spaces as `▁`, is split into
//!   UTF-8 characters, and the adjacent pair whose merge is a token with the highest score is
//!   merged until none is left; a piece that is no token falls back to its bytes' `<0xXX>`
//!   tokens;
//! - `gpt2`: byte-level BPE — the text is split by the pre-tokenizer regex that
//!   `tokenizer.ggml.pre` names (`llama-bpe`/`llama3`, `qwen2`, `gpt-2`), each piece's bytes
//!   mapped to GPT-2's printable characters, and pairs merged by their rank in
//!   `tokenizer.ggml.merges` (llama3 first looks the whole piece up, llama.cpp's
//!   `ignore_merges`).
//!
//! User-defined tokens (type 4) are matched in the text first, as llama.cpp does even without
//! special-token parsing. Other vocabularies and pre-tokenizers are refused by name.

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, HashMap},
};

use super::{
    GgufError,
    error::shown,
    metadata::{Array, Value},
    open::GgufModel,
};

const TYPE_USER_DEFINED: i32 = 4;

#[derive(Debug)]
enum Kind {
    Spm {
        add_space_prefix: bool,
    },
    Bpe {
        split: fancy_regex::Regex,
        ignore_merges: bool,
    },
}

/// A vocabulary from a GGUF, ready to tokenize.
#[derive(Debug)]
pub struct Tokenizer {
    kind: Kind,
    tokens: Vec<String>,
    to_id: HashMap<String, u32>,
    scores: Vec<f32>,
    merges: HashMap<(String, String), u32>,
    /// User-defined tokens, longest first.
    user_defined: Vec<(String, u32)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (what llama.cpp does with `add_special`).
    pub add_bos: bool,
    unk: Option<u32>,
}

/// The pre-tokenizer regexes llama.cpp uses for these `tokenizer.ggml.pre` values
/// (`llm_tokenizer_bpe`'s constructor; llama.cpp runs them through equivalent hand-written
/// splitters).
fn pre_regex(pre: &str) -> Option<(&'static str, bool)> {
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" => (LLAMA3, true),
        "qwen2" => (QWEN2, false),
        "gpt-2" => (GPT2, false),
        _ => return None,
    })
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*`.
    pub fn from_model(model: &GgufModel) -> Result<Tokenizer, GgufError> {
        let path = &model.main().path;
        let bad = |problem: String| GgufError::tensor(path, problem);
        let get = |k: &str| model.get(&format!("tokenizer.ggml.{k}"));
        let kind_name = get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("has no tokenizer (tokenizer.ggml.model)".into()))?;
        if !matches!(kind_name, "llama" | "gpt2") {
            return Err(bad(format!(
                "its tokenizer {} (tokenizer.ggml.model) is not supported; llama \
                 (SentencePiece) and gpt2 (BPE) are",
                shown(kind_name)
            )));
        }
        let tokens = match get("tokens") {
            Some(Value::Array(Array::Str(t))) => t.clone(),
            _ => return Err(bad("has no tokenizer.ggml.tokens string array".into())),
        };
        let n = tokens.len();
        let scores = match get("scores") {
            Some(Value::Array(Array::F32(s))) if s.len() == n => s.clone(),
            Some(_) => {
                return Err(bad(
                    "tokenizer.ggml.scores is not one float32 per token".into()
                ));
            }
            None => vec![0.0; n],
        };
        let types: Vec<i32> = match get("token_type") {
            Some(Value::Array(a)) if a.len() == n => {
                (0..n).map(|i| a.int(i).unwrap_or(1) as i32).collect()
            }
            Some(_) => {
                return Err(bad(
                    "tokenizer.ggml.token_type is not one int per token".into()
                ));
            }
            None => vec![1; n],
        };
        let id = |k: &str| -> Option<u32> {
            get(k)
                .and_then(Value::as_usize)
                .filter(|&i| i < n)
                .map(|i| i as u32)
        };
        let flag = |k: &str| match get(k) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        };
        let kind = match kind_name {
            "llama" => Kind::Spm {
                add_space_prefix: flag("add_space_prefix").unwrap_or(true),
            },
            "gpt2" => {
                let pre = get("pre").and_then(Value::as_str).unwrap_or("default");
                let (re, ignore_merges) = pre_regex(pre).ok_or_else(|| {
                    bad(format!(
                        "its BPE pre-tokenizer {} (tokenizer.ggml.pre) is not supported; \
                         llama-bpe, llama3, qwen2 and gpt-2 are",
                        shown(pre)
                    ))
                })?;
                Kind::Bpe {
                    split: fancy_regex::Regex::new(re).expect("the pre-tokenizer regexes compile"),
                    ignore_merges,
                }
            }
            other => {
                return Err(bad(format!(
                    "its tokenizer {} (tokenizer.ggml.model) is not supported; llama \
                     (SentencePiece) and gpt2 (BPE) are",
                    shown(other)
                )));
            }
        };
        let mut merges = HashMap::new();
        if matches!(kind, Kind::Bpe { .. }) {
            let list = match get("merges") {
                Some(Value::Array(Array::Str(m))) => m,
                _ => return Err(bad("a gpt2 tokenizer needs tokenizer.ggml.merges".into())),
            };
            for (rank, m) in list.iter().enumerate() {
                // llama.cpp splits at the first space after the first byte.
                let Some(at) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                    return Err(bad(format!("merge {} has no space", shown(m))));
                };
                merges
                    .entry((m[..at].to_string(), m[at + 1..].to_string()))
                    .or_insert(rank as u32);
            }
        }
        let mut to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            to_id.insert(t.clone(), i as u32);
        }
        let mut user_defined: Vec<(String, u32)> = types
            .iter()
            .enumerate()
            .filter(|(i, t)| **t == TYPE_USER_DEFINED && !tokens[*i].is_empty())
            .map(|(i, _)| (tokens[i].clone(), i as u32))
            .collect();
        user_defined.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        Ok(Tokenizer {
            kind,
            unk: id("unknown_token_id"),
            bos: id("bos_token_id"),
            eos: id("eos_token_id"),
            add_bos: flag("add_bos_token").unwrap_or(kind_name == "llama"),
            tokens,
            to_id,
            scores,
            merges,
            user_defined,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Token ids of `text`, without BOS (llama.cpp's `llama_tokenize(..., add_special=false,
    /// parse_special=false)`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut prev_special = true;
        for frag in self.fragments(text) {
            match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    match &self.kind {
                        Kind::Spm { add_space_prefix } => {
                            let mut s = String::new();
                            if *add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            self.spm(&s.replace(' ', "\u{2581}"), &mut out);
                        }
                        Kind::Bpe {
                            split,
                            ignore_merges,
                        } => self.bpe(t, split, *ignore_merges, &mut out),
                    }
                    prev_special = false;
                }
            }
        }
        out
    }

    /// The text split around user-defined tokens (longest first, leftmost occurrences).
    fn fragments<'t>(&self, text: &'t str) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        for (tok, id) in &self.user_defined {
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                let Fragment::Text(mut t) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = t.find(tok.as_str()) {
                    if at > 0 {
                        next.push(Fragment::Text(&t[..at]));
                    }
                    next.push(Fragment::Token(*id));
                    t = &t[at + tok.len()..];
                }
                if !t.is_empty() {
                    next.push(Fragment::Text(t));
                }
            }
            frags = next;
        }
        frags
    }

    fn spm(&self, text: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<Sym> = Vec::new();
        for (i, (at, c)) in text.char_indices().enumerate() {
            syms.push(Sym {
                start: at,
                len: c.len_utf8(),
                prev: i as isize - 1,
                next: if at + c.len_utf8() == text.len() {
                    -1
                } else {
                    i as isize + 1
                },
            });
        }
        let mut queue = BinaryHeap::new();
        let mut rev_merge: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut try_add = |syms: &[Sym], queue: &mut BinaryHeap<SpmBigram>, l: isize, r: isize| {
            if l < 0 || r < 0 {
                return;
            }
            let (l, r) = (l as usize, r as usize);
            let piece = &text[syms[l].start..syms[l].start + syms[l].len + syms[r].len];
            let Some(&id) = self.to_id.get(piece) else {
                return;
            };
            queue.push(SpmBigram {
                score: self.scores[id as usize],
                left: l,
                right: r,
                size: piece.len(),
            });
            rev_merge.insert(piece, (l, r));
        };
        for i in 1..syms.len() {
            try_add(&syms, &mut queue, i as isize - 1, i as isize);
        }
        while let Some(b) = queue.pop() {
            let (l, r) = (b.left, b.right);
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if syms[r].next >= 0 {
                let n = syms[r].next as usize;
                syms[n].prev = l as isize;
            }
            let (p, n) = (syms[l].prev, syms[l].next);
            try_add(&syms, &mut queue, p, l as isize);
            try_add(&syms, &mut queue, l as isize, n);
        }
        let mut i = if syms.is_empty() { -1 } else { 0 };
        while i >= 0 {
            let s = syms[i as usize];
            self.resegment(text, &syms, s, &rev_merge, out);
            i = s.next;
        }
    }

    fn resegment(
        &self,
        text: &str,
        syms: &[Sym],
        s: Sym,
        rev_merge: &HashMap<&str, (usize, usize)>,
        out: &mut Vec<u32>,
    ) {
        let piece = &text[s.start..s.start + s.len];
        if let Some(&id) = self.to_id.get(piece) {
            out.push(id);
            return;
        }
        match rev_merge.get(piece) {
            Some(&(l, r)) => {
                self.resegment(text, syms, syms[l], rev_merge, out);
                self.resegment(text, syms, syms[r], rev_merge, out);
            }
            None => {
                for &b in piece.as_bytes() {
                    let hex = format!("<0x{b:02X}>");
                    let id = self
                        .to_id
                        .get(&hex)
                        .or_else(|| {
                            std::str::from_utf8(&[b])
                                .ok()
                                .and_then(|c| self.to_id.get(c))
                        })
                        .copied()
                        .or(self.unk);
                    out.extend(id);
                }
            }
        }
    }

    fn bpe(&self, text: &str, split: &fancy_regex::Regex, ignore_merges: bool, out: &mut Vec<u32>) {
        let mut words = Vec::new();
        let mut last = 0;
        for m in split.find_iter(text) {
            // A regex error (backtracking limit) leaves the rest as one piece.
            let Ok(m) = m else { break };
            if m.start() > last {
                words.push(&text[last..m.start()]);
            }
            words.push(m.as_str());
            last = m.end();
        }
        if last < text.len() {
            words.push(&text[last..]);
        }
        for w in words {
            let word: String = w.bytes().map(byte_char).collect();
            if ignore_merges && let Some(&id) = self.to_id.get(&word) {
                out.push(id);
                continue;
            }
            let mut syms: Vec<Sym> = Vec::new();
            for (i, (at, c)) in word.char_indices().enumerate() {
                syms.push(Sym {
                    start: at,
                    len: c.len_utf8(),
                    prev: i as isize - 1,
                    next: if at + c.len_utf8() == word.len() {
                        -1
                    } else {
                        i as isize + 1
                    },
                });
            }
            let mut queue = BinaryHeap::new();
            let try_add = |syms: &[Sym], queue: &mut BinaryHeap<BpeBigram>, l: isize, r: isize| {
                if l < 0 || r < 0 {
                    return;
                }
                let (l, r) = (l as usize, r as usize);
                let lt = &word[syms[l].start..syms[l].start + syms[l].len];
                let rt = &word[syms[r].start..syms[r].start + syms[r].len];
                if let Some(&rank) = self.merges.get(&(lt.to_string(), rt.to_string())) {
                    queue.push(BpeBigram {
                        rank,
                        left: l,
                        right: r,
                        text: format!("{lt}{rt}"),
                    });
                }
            };
            for i in 1..syms.len() {
                try_add(&syms, &mut queue, i as isize - 1, i as isize);
            }
            while let Some(b) = queue.pop() {
                let (l, r) = (b.left, b.right);
                if syms[l].len == 0 || syms[r].len == 0 {
                    continue;
                }
                let joined = &word[syms[l].start..syms[l].start + syms[l].len];
                let rt = &word[syms[r].start..syms[r].start + syms[r].len];
                if joined.len() + rt.len() != b.text.len()
                    || !b.text.starts_with(joined)
                    || !b.text.ends_with(rt)
                {
                    continue;
                }
                syms[l].len += syms[r].len;
                syms[r].len = 0;
                syms[l].next = syms[r].next;
                if syms[r].next >= 0 {
                    let n = syms[r].next as usize;
                    syms[n].prev = l as isize;
                }
                let (p, n) = (syms[l].prev, syms[l].next);
                try_add(&syms, &mut queue, p, l as isize);
                try_add(&syms, &mut queue, l as isize, n);
            }
            for s in syms.iter().filter(|s| s.len > 0) {
                let piece = &word[s.start..s.start + s.len];
                match self.to_id.get(piece) {
                    Some(&id) => out.push(id),
                    // llama.cpp looks each byte up as a one-byte string, and skips misses.
                    None => {
                        for &b in piece.as_bytes() {
                            if let Some(c) = std::str::from_utf8(&[b]).ok()
                                && let Some(&id) = self.to_id.get(c)
                            {
                                out.push(id);
                            }
                        }
                    }
                }
            }
        }
    }
}

enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

/// Highest score first; on a tie the leftmost (llama.cpp's `llm_bigram_spm::comparator`).
struct SpmBigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for SpmBigram {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .partial_cmp(&o.score)
            .unwrap_or(Ordering::Equal)
            .then(o.left.cmp(&self.left))
    }
}
impl PartialOrd for SpmBigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for SpmBigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for SpmBigram {}

/// Lowest rank first; on a tie the leftmost (`llm_bigram_bpe::comparator`).
struct BpeBigram {
    rank: u32,
    left: usize,
    right: usize,
    text: String,
}

impl Ord for BpeBigram {
    fn cmp(&self, o: &Self) -> Ordering {
        o.rank.cmp(&self.rank).then(o.left.cmp(&self.left))
    }
}
impl PartialOrd for BpeBigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for BpeBigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for BpeBigram {}

/// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others for
/// U+0100 onwards in byte order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("in range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_byte_map() {
        assert_eq!(byte_char(b'a'), 'a');
        assert_eq!(byte_char(b' '), '\u{120}'); // "Ġ"
        assert_eq!(byte_char(b'\n'), '\u{10A}'); // "Ċ"
        assert_eq!(byte_char(0), '\u{100}');
    }
}
