//! Progress of long phases (decoding a test set, scoring a shift curve) for
//! whoever wants to show it. The library never prints: a phase reports to
//! an [`Observer`] that the program installs (the command line draws
//! progress bars on a terminal), and costs one relaxed load when none is.
//!
//! ```
//! let phase = shiftlm::progress::phase("decoding 2893 held-out pairs", 2893);
//! for chunk in (0..2893).collect::<Vec<_>>().chunks(256) {
//!     // … decode the chunk …
//!     phase.advance(chunk.len());
//! }
//! // Dropping the phase ends it.
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Receives the phases' events; called from whichever thread runs the phase.
pub trait Observer: Send + Sync {
    /// Phase `id` starts: `what` it does, and `total` units (0: unknown).
    fn begin(&self, id: u64, what: &str, total: u64);
    /// Phase `id` has done `done` units in all.
    fn advance(&self, id: u64, done: u64);
    /// Phase `id` ended (finished, or abandoned by an error).
    fn end(&self, id: u64);
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static OBSERVER: RwLock<Option<Arc<dyn Observer>>> = RwLock::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Installs `observer` for every phase started from now on (`None`: none).
pub fn set_observer(observer: Option<Arc<dyn Observer>>) {
    let mut slot = OBSERVER.write().unwrap_or_else(|e| e.into_inner());
    INSTALLED.store(observer.is_some(), Ordering::Release);
    *slot = observer;
}

fn observer() -> Option<Arc<dyn Observer>> {
    if !INSTALLED.load(Ordering::Acquire) {
        return None;
    }
    OBSERVER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A running phase; it ends when dropped.
pub struct Phase {
    id: u64,
    done: AtomicU64,
    observer: Option<Arc<dyn Observer>>,
}

/// Starts a phase doing `what` over `total` units (0 when unknown).
pub fn phase(what: &str, total: usize) -> Phase {
    let observer = observer();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Some(o) = &observer {
        o.begin(id, what, total as u64);
    }
    Phase { id, done: AtomicU64::new(0), observer }
}

impl Phase {
    /// Records `n` more units done.
    pub fn advance(&self, n: usize) {
        let done = self.done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if let Some(o) = &self.observer {
            o.advance(self.id, done);
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(o) = &self.observer {
            o.end(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Observer for Log {
        fn begin(&self, id: u64, what: &str, total: u64) {
            self.0.lock().unwrap().push(format!("{id} begin {what} {total}"));
        }
        fn advance(&self, id: u64, done: u64) {
            self.0.lock().unwrap().push(format!("{id} at {done}"));
        }
        fn end(&self, id: u64) {
            self.0.lock().unwrap().push(format!("{id} end"));
        }
    }

    #[test]
    fn phases_report_to_the_installed_observer_only() {
        let log = Arc::new(Log::default());
        let quiet = phase("before", 3);
        set_observer(Some(log.clone()));
        {
            let p = phase("decoding", 5);
            p.advance(2);
            p.advance(3);
            quiet.advance(1);
        }
        set_observer(None);
        phase("after", 1).advance(1);
        // Other tests' phases may report too while it is installed.
        let all = log.0.lock().unwrap().clone();
        let begin = all.iter().find(|l| l.contains("begin decoding")).unwrap();
        let id = begin.split(' ').next().unwrap().to_string();
        let lines: Vec<String> = all.iter().filter(|l| l.starts_with(&format!("{id} "))).cloned().collect();
        assert!(!all.iter().any(|l| l.contains("before") || l.contains("after")), "{all:?}");
        let want: Vec<String> =
            ["begin decoding 5", "at 2", "at 5", "end"].iter().map(|s| format!("{id} {s}")).collect();
        assert_eq!(lines, want);
    }
}
