//! The explorer tested as its user meets it, without a terminal: the real `App` driven by keys
//! and messages (`state`, `eval`), and whole screens drawn into ratatui's `TestBackend`
//! (`render`, compared with reviewed insta snapshots).

mod eval;
mod render;
mod state;
use snrscope_testkit::models as support;
