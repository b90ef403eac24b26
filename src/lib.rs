//! snrscope: which layers of a large language model can be cut away.
//!
//! The library holds everything but the terminal: opening models lazily ([`checkpoint`]), the
//! laserQlora SNR and its scans ([`spectrum`]), scan files ([`scanfile`]), the pruning choice
//! ([`plan`]), the writers ([`export`]), the forward pass on the CPU ([`forward`]), the layer
//! metrics computed in it ([`probe`]) and the demo model generator ([`demo`]).

pub mod checkpoint;
pub mod demo;
pub mod export;
pub mod forward;
pub mod plan;
pub mod probe;
pub mod scanfile;
pub mod spectrum;
pub mod util;
