//! Small helpers every part uses: sizes for people, the cancel token, file identity, and text
//! made safe to print.

pub mod bytes;
pub mod cancel;
pub mod fsid;
pub mod text;
