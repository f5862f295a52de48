//! A profiler for training steps: where the time of a step goes, phase by
//! phase (data, forward and loss, backward, clipping, optimizer, evaluation,
//! checkpoint) and op by op (every fused op's forward and backward, with its
//! shapes and FLOPs). Like `torch.profiler` with a schedule: the trainer
//! calls [`at_step`] every step, and recording runs only for the steps of the
//! window [`arm`] set. Off, an instrumented place costs one relaxed atomic
//! load.
//!
//! Events are kept per thread and written as a Chrome trace
//! (`trace.json`, which Perfetto and chrome://tracing open) and summarised
//! per op kind in a [`Summary`] (`profile.json` and a table).

use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Whether events are being recorded now.
static RECORDING: AtomicBool = AtomicBool::new(false);
/// The armed window of steps, `first..=last` (0, 0: not armed).
static FIRST: AtomicUsize = AtomicUsize::new(0);
static LAST: AtomicUsize = AtomicUsize::new(0);
static NEXT_TID: AtomicU64 = AtomicU64::new(1);

/// One thread's recorded events.
type Buffer = Arc<Mutex<Vec<Event>>>;

/// Every thread's event buffer.
static BUFFERS: Mutex<Vec<Buffer>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: RefCell<Option<(u64, Buffer)>> = const { RefCell::new(None) };
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What an event times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A phase of a training step (forward, backward, optimizer, …).
    Phase,
    /// One call of a fused op's forward or backward.
    Op,
}

/// One timed interval on one thread.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// e.g. `backward` or `linear.bwd`.
    pub name: &'static str,
    /// Phase or op.
    pub kind: Kind,
    /// The recording thread (1 for the first one seen).
    pub tid: u64,
    /// Start, in nanoseconds since the profiler's epoch.
    pub start_ns: u64,
    /// Duration in nanoseconds.
    pub dur_ns: u64,
    /// Shapes of the op's inputs, e.g. `[12, 64, 384]·[384, 128]`.
    pub shapes: Option<String>,
    /// Floating-point operations, where known (matrix products).
    pub flops: Option<u64>,
}

/// Arms the profiler for steps `first..=last` (1-based): [`at_step`]
/// starts recording at `first` and stops after `last`.
pub fn arm(first: usize, last: usize) {
    let _ = epoch();
    FIRST.store(first.max(1), Ordering::Relaxed);
    LAST.store(last.max(first.max(1)), Ordering::Relaxed);
}

/// Called by the trainer at the start of step `step`: records while the step
/// is inside the armed window.
#[inline]
pub fn at_step(step: usize) {
    let first = FIRST.load(Ordering::Relaxed);
    if first != 0 {
        RECORDING.store(step >= first && step <= LAST.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Records everything from now on, whatever the step (for a single job such
/// as generation), until [`finish`].
pub fn record_all() {
    let _ = epoch();
    FIRST.store(0, Ordering::Relaxed);
    RECORDING.store(true, Ordering::Relaxed);
}

/// Whether events are being recorded.
#[inline]
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Stops recording, disarms, and returns every event recorded, by start time.
pub fn finish() -> Vec<Event> {
    RECORDING.store(false, Ordering::Relaxed);
    FIRST.store(0, Ordering::Relaxed);
    let buffers = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<Event> =
        buffers.iter().flat_map(|b| std::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner()))).collect();
    all.sort_by_key(|e| (e.start_ns, std::cmp::Reverse(e.dur_ns)));
    all
}

/// An interval being timed; recorded when dropped.
#[must_use = "the span is timed until it is dropped"]
pub struct Span {
    name: &'static str,
    kind: Kind,
    start: Instant,
    shapes: Option<String>,
    flops: Option<u64>,
}

impl Drop for Span {
    fn drop(&mut self) {
        let end = Instant::now();
        let start_ns = self.start.duration_since(epoch()).as_nanos() as u64;
        let dur_ns = end.duration_since(self.start).as_nanos() as u64;
        let mut event = |tid| Event {
            name: self.name,
            kind: self.kind,
            tid,
            start_ns,
            dur_ns,
            shapes: self.shapes.take(),
            flops: self.flops,
        };
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            let (tid, buf) = l.get_or_insert_with(|| {
                let buf = Arc::new(Mutex::new(Vec::new()));
                BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).push(buf.clone());
                (NEXT_TID.fetch_add(1, Ordering::Relaxed), buf)
            });
            buf.lock().unwrap_or_else(|e| e.into_inner()).push(event(*tid));
        });
    }
}

/// Times a phase of a step while recording (`None`, for nothing, otherwise).
#[inline]
pub fn phase(name: &'static str) -> Option<Span> {
    recording().then(|| Span { name, kind: Kind::Phase, start: Instant::now(), shapes: None, flops: None })
}

/// Times one call of an op while recording; `detail` (shapes, FLOPs) is
/// computed only then.
#[inline]
pub fn op(name: &'static str, detail: impl FnOnce() -> (String, Option<u64>)) -> Option<Span> {
    if !recording() {
        return None;
    }
    let (shapes, flops) = detail();
    let span = Span { name, kind: Kind::Op, start: Instant::now(), shapes: Some(shapes), flops };
    crate::faults::in_op(name);
    Some(span)
}

/// The FLOPs of a matrix product (m×k)·(k×n): 2·m·n·k.
pub fn matmul_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * m as u64 * n as u64 * k as u64
}

/// Per-name totals of a profile.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The op or phase, e.g. `linear.fwd`.
    pub name: String,
    /// Phase or op.
    pub kind: Kind,
    /// Calls recorded.
    pub calls: usize,
    /// Total time, children included, in milliseconds.
    pub total_ms: f64,
    /// Time not spent in a nested event on the same thread, in milliseconds.
    pub self_ms: f64,
    /// Self time as a share of all steps' time, in percent.
    pub percent: f64,
    /// FLOPs over the total time, where FLOPs are known.
    pub gflops: Option<f64>,
}

/// A profile: the steps it covers and a row per op or phase.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Steps recorded.
    pub steps: usize,
    /// Their time (the `step` phases), in milliseconds.
    pub step_ms: f64,
    /// Self time of every event inside the steps, in milliseconds: `step_ms`
    /// less what no event accounts for.
    pub covered_ms: f64,
    /// One row per name, sorted as asked.
    pub rows: Vec<Row>,
}

/// How [`summarize`] orders the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Largest self time first (the default, as `torch.profiler` tables).
    SelfTime,
    /// Largest total time first.
    Total,
    /// Most calls first.
    Calls,
    /// By name.
    Name,
}

/// Self times (each event less its direct children on the same thread) and
/// per-name totals.
pub fn summarize(events: &[Event], sort: SortBy) -> Summary {
    let mut self_ns: Vec<u64> = events.iter().map(|e| e.dur_ns).collect();
    let mut by_thread: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        by_thread.entry(e.tid).or_default().push(i);
    }
    for idx in by_thread.values() {
        // Events are sorted by start (longest first on ties), so a stack of
        // open intervals finds each event's parent.
        let mut open: Vec<usize> = Vec::new();
        for &i in idx {
            let e = &events[i];
            while let Some(&p) = open.last() {
                if events[p].start_ns + events[p].dur_ns <= e.start_ns {
                    open.pop();
                } else {
                    break;
                }
            }
            if let Some(&p) = open.last() {
                self_ns[p] = self_ns[p].saturating_sub(e.dur_ns);
            }
            open.push(i);
        }
    }
    let steps: Vec<&Event> = events.iter().filter(|e| e.name == "step").collect();
    let step_ns: u64 = steps.iter().map(|e| e.dur_ns).sum();
    let covered: u64 = events.iter().zip(&self_ns).filter(|(e, _)| e.name != "step").map(|(_, &s)| s).sum();
    let mut rows: BTreeMap<&str, (Kind, usize, u64, u64, Option<u64>)> = BTreeMap::new();
    for (e, &s) in events.iter().zip(&self_ns) {
        let r = rows.entry(e.name).or_insert((e.kind, 0, 0, 0, None));
        r.1 += 1;
        r.2 += e.dur_ns;
        r.3 += s;
        if let Some(f) = e.flops {
            r.4 = Some(r.4.unwrap_or(0) + f);
        }
    }
    let total = step_ns.max(1) as f64;
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|(name, (kind, calls, tot, slf, flops))| Row {
            name: name.to_string(),
            kind,
            calls,
            total_ms: tot as f64 / 1e6,
            self_ms: slf as f64 / 1e6,
            percent: 100.0 * slf as f64 / total,
            gflops: flops.map(|f| f as f64 / tot.max(1) as f64),
        })
        .collect();
    match sort {
        SortBy::SelfTime => rows.sort_by(|a, b| b.self_ms.total_cmp(&a.self_ms)),
        SortBy::Total => rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms)),
        SortBy::Calls => rows.sort_by_key(|r| std::cmp::Reverse(r.calls)),
        SortBy::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
    }
    Summary { steps: steps.len(), step_ms: step_ns as f64 / 1e6, covered_ms: covered.min(step_ns) as f64 / 1e6, rows }
}

/// The events as a Chrome trace (trace-event format, complete "X" events in
/// microseconds, one track per thread), for Perfetto or chrome://tracing.
pub fn chrome_trace(events: &[Event]) -> serde_json::Value {
    let pid = std::process::id();
    let mut out: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let mut args = serde_json::Map::new();
            if let Some(s) = &e.shapes {
                args.insert("shapes".into(), s.clone().into());
            }
            if let Some(f) = e.flops {
                args.insert("flops".into(), f.into());
            }
            serde_json::json!({
                "name": e.name,
                "cat": if e.kind == Kind::Phase { "phase" } else { "op" },
                "ph": "X",
                "ts": e.start_ns as f64 / 1e3,
                "dur": e.dur_ns as f64 / 1e3,
                "pid": pid,
                "tid": e.tid,
                "args": args,
            })
        })
        .collect();
    let tids: std::collections::BTreeSet<u64> = events.iter().map(|e| e.tid).collect();
    for tid in tids {
        let name = if tid == 1 { "main".to_string() } else { format!("thread {tid}") };
        out.push(serde_json::json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}));
    }
    serde_json::json!({ "traceEvents": out, "displayTimeUnit": "ms" })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test drives the global recorder (tests run in parallel threads).
    #[test]
    fn windows_spans_self_times_and_the_trace() {
        arm(2, 3);
        for step in 1..=4 {
            at_step(step);
            let _s = phase("step");
            {
                let _f = phase("forward");
                let _o = op("slow.fwd", || ("[2, 3]".into(), Some(matmul_flops(2, 3, 4))));
                std::thread::sleep(std::time::Duration::from_millis(6));
            }
            let _o = op("fast.fwd", || ("[1]".into(), None));
        }
        // Other tests may run ops meanwhile: keep this test's events.
        let ours = ["step", "forward", "slow.fwd", "fast.fwd"];
        let events: Vec<Event> = finish().into_iter().filter(|e| ours.contains(&e.name)).collect();
        assert!(!recording());
        // Steps 2 and 3 only: two of each.
        assert_eq!(events.iter().filter(|e| e.name == "step").count(), 2);
        let s = summarize(&events, SortBy::SelfTime);
        assert_eq!(s.steps, 2);
        assert_eq!(s.rows[0].name, "slow.fwd", "{:?}", s.rows);
        let fwd = s.rows.iter().find(|r| r.name == "forward").unwrap();
        assert!(fwd.self_ms < 0.5 * fwd.total_ms, "the op's time is the forward's child: {fwd:?}");
        assert!(s.covered_ms <= s.step_ms && s.covered_ms > 0.9 * s.step_ms, "{s:?}");
        assert_eq!(s.rows[0].calls, 2);
        let trace = chrome_trace(&events);
        for e in trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X") {
            for k in ["name", "ph", "ts", "dur", "pid", "tid"] {
                assert!(!e[k].is_null(), "{k} in {e}");
            }
        }
        assert_eq!(matmul_flops(2, 3, 4), 48);
    }
}
