//! snrscope: which layers of a large language model can be cut away.
//!
//! The library holds everything but the terminal: opening models lazily ([`model`]), finding
//! their layers ([`layers`]), the laserQlora SNR ([`snr`]), background scans ([`scan`]), scan
//! files ([`scanfile`]) and the demo model generator ([`demo`]).

pub mod archgen;
pub mod cli;
pub mod demo;
pub mod eval;
pub mod export;
pub mod layers;
pub mod model;
pub mod plan;
pub mod pyjson;
pub mod scan;
pub mod scanfile;
pub mod snr;
pub mod ui;
