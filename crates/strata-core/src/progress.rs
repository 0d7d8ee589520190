//! How library crates report progress without printing (uv's `Reporter` pattern):
//! the CLI implements [`Progress`] with progress bars, tests use [`NoProgress`].

pub trait Progress: Sync {
    /// A unit of work begins; `total` is the number of steps when known.
    fn start(&self, what: &str, total: Option<u64>);
    /// `n` more steps are done.
    fn advance(&self, n: u64);
    /// The unit of work has ended.
    fn finish(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
