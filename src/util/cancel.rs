//! Stopping background work from another thread: scans, exports and forward passes check the
//! token between units of work (a matrix, a chunk, a layer).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// Set once; every clone sees it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
