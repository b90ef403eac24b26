//! snrscope: which layers of a large language model can be cut away.
//!
//! The library holds everything but the terminal: opening models lazily ([`model`]), finding
//! their layers ([`layers`]), the laserQlora SNR ([`snr`]), background scans ([`scan`]), scan
//! files ([`scanfile`]) and the demo model generator ([`demo`]).

pub mod archgen;
pub mod cache;
pub mod cli;
pub mod demo;
pub mod demo_arch;
pub mod eval;
pub mod export;
pub mod fsid;
pub mod fused;
pub mod gguf;
pub mod gram;
pub mod layers;
pub mod model;
pub mod parts;
pub mod pickle;
pub mod plan;
pub mod pyjson;
pub mod scan;
pub mod scanfile;
pub mod schedule;
pub mod snr;
pub mod text;
pub mod torch_bin;
pub mod ui;
