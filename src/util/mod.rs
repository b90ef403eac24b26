//! Small helpers every part uses: sizes for people, the cancel token, bounded reads of regular
//! files, file identity, and text made safe to print.

pub mod bytes;
pub mod cancel;
pub mod files;
pub mod fsid;
pub mod text;
