//! snrscope's test kit, shared by the integration tests (`tests/it`), the explorer's unit tests,
//! the benches and the examples that write reference models. Nothing here ships in the library.
//!
//! - [`cli`]: runs the `snrscope` binary (one runner for every test);
//! - [`memory`]: peak resident set, address-space limits, and running a test in its own process
//!   so that neither leaks into the other tests of the binary;
//! - [`pty`]: the real binary in a pseudo-terminal, its screen read back;
//! - [`models`]: generated models and checks of pruned ones;
//! - [`golden`]: the models whose oracle SNR is committed under `tests/golden`;
//! - [`fused_models`]: fused q/k/v layouts and multimodal stacks with planted spectra;
//! - [`eval_models`]: tiny checkpoints of every type the forward pass supports;
//! - [`torch_bin`]: the PyTorch `.bin` fixtures and hand-made torch zips;
//! - [`gguf_builder`]: GGUF files written from the format's spec, independently of snrscope's
//!   reader and writer.

pub mod cli;
pub mod eval_models;
pub mod fused_models;
pub mod gguf_builder;
pub mod gguf_convert;
pub mod golden;
pub mod memory;
pub mod models;
pub mod pty;
pub mod torch_bin;
