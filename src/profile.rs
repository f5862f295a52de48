//! A profiler for training steps: where the time of a step goes, phase by
//! phase (data, forward and loss, backward, clipping, optimizer, evaluation,
//! checkpoint) and op by op (every fused op's forward and backward, with its
//! shapes and FLOPs). Like `torch.profiler` with a schedule: the trainer
//! calls [`at_step`] every step, and recording runs only for the steps of the
//! window [`arm`] set. Off, an instrumented place costs one relaxed atomic
//! load.
//!
//! Events are kept per thread and written as a Chrome trace
//! (`trace.json`, which Perfetto and chrome://tracing open), summarised
//! per op kind in a [`Summary`] (`profile.json` and a table), per step for
//! TensorBoard ([`per_step`]) and drawn as one step's [`timeline`].
//!
//! Memory: every phase records the peak resident memory reached while it ran
//! (Linux: `VmHWM`, reset through `/proc/self/clear_refs` as the phase
//! starts). Every event records the heap bytes allocated while it ran, and
//! the heap it added net of frees, when the program counts allocations: the
//! `shiftlm` binary wraps its allocator to call [`on_alloc`] and [`on_free`]
//! and says so with [`count_allocations`]. Both calls cost one relaxed load
//! while nothing is recorded. The forward pass's net heap is what the
//! autograd graph holds for the backward pass.

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
/// The step [`at_step`] was last called with.
static STEP: AtomicUsize = AtomicUsize::new(0);
/// Whether a counting allocator reports to [`on_alloc`] and [`on_free`].
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Heap bytes allocated and freed while recording, all threads together.
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

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
    /// The step it belongs to (for generation: the token, from 1).
    pub step: usize,
    /// Heap bytes allocated while it ran, by every thread (0 when allocations
    /// are not counted).
    pub alloc_bytes: u64,
    /// Heap bytes it added net of frees: what it left allocated.
    pub net_bytes: i64,
    /// Phases: the peak resident memory while it ran, in bytes, where the
    /// system tells (Linux).
    pub peak_rss_bytes: Option<u64>,
}

/// What the armed window counts: training steps or generated tokens.
static COUNTS_TOKENS: AtomicBool = AtomicBool::new(false);

/// Arms the profiler for training steps `first..=last` (1-based):
/// [`at_step`] starts recording at `first` and stops after `last`.
pub fn arm(first: usize, last: usize) {
    arm_window(first, last, false);
}

/// Arms the profiler for generated tokens `first..=last` (1-based), marked by
/// [`at_token`]; decoding inside a training run's evaluation never does.
pub fn arm_tokens(first: usize, last: usize) {
    arm_window(first, last, true);
}

fn arm_window(first: usize, last: usize, tokens: bool) {
    let _ = epoch();
    COUNTS_TOKENS.store(tokens, Ordering::Relaxed);
    FIRST.store(first.max(1), Ordering::Relaxed);
    LAST.store(last.max(first.max(1)), Ordering::Relaxed);
}

/// Called by the trainer at the start of step `step`: records while the step
/// is inside a window [`arm`] set.
#[inline]
pub fn at_step(step: usize) {
    mark(step, false);
}

/// Called by generation before it chooses token `n` (from 1): records while
/// the token is inside a window [`arm_tokens`] set.
#[inline]
pub fn at_token(n: usize) {
    mark(n, true);
}

#[inline]
fn mark(n: usize, tokens: bool) {
    let first = FIRST.load(Ordering::Relaxed);
    if first != 0 && COUNTS_TOKENS.load(Ordering::Relaxed) == tokens {
        STEP.store(n, Ordering::Relaxed);
        RECORDING.store(n >= first && n <= LAST.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Whether events are being recorded (never without the `profiler`
/// feature: then every instrumented place compiles to nothing).
#[inline]
pub fn recording() -> bool {
    cfg!(feature = "profiler") && RECORDING.load(Ordering::Relaxed)
}

/// Whether this build has the profiler (the `profiler` feature, on by
/// default).
pub const COMPILED_IN: bool = cfg!(feature = "profiler");

/// Says that this program's allocator reports every allocation to
/// [`on_alloc`] and every free to [`on_free`] (the `shiftlm` binary's does).
pub fn count_allocations() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Whether allocations are counted (see [`count_allocations`]).
pub fn allocations_counted() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// For a counting allocator: `bytes` were allocated (counted only while
/// recording).
#[inline]
pub fn on_alloc(bytes: usize) {
    if recording() {
        ALLOCATED.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// For a counting allocator: `bytes` were freed (counted only while
/// recording).
#[inline]
pub fn on_free(bytes: usize) {
    if recording() {
        FREED.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Heap counters now: (allocated, allocated − freed).
fn heap() -> (u64, i64) {
    let a = ALLOCATED.load(Ordering::Relaxed);
    (a, a as i64 - FREED.load(Ordering::Relaxed) as i64)
}

/// Restarts the kernel's peak-resident counter (Linux); false elsewhere.
fn reset_peak_rss() -> bool {
    cfg!(target_os = "linux") && std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident memory since the last reset, in bytes (`VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
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
    /// Heap counters at the start; `None` for a worker's share, which runs
    /// beside other events and cannot tell their allocations from its own.
    heap: Option<(u64, i64)>,
    /// Whether the peak-resident counter was reset at the start.
    rss: bool,
}

impl Span {
    fn start(name: &'static str, kind: Kind, shapes: Option<String>, flops: Option<u64>) -> Self {
        let rss = kind == Kind::Phase && reset_peak_rss();
        Span { name, kind, start: Instant::now(), shapes, flops, heap: Some(heap()), rss }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let end = Instant::now();
        let (alloc, net) = match self.heap {
            Some((a0, n0)) => {
                let (a, n) = heap();
                (a - a0, n - n0)
            }
            None => (0, 0),
        };
        let peak_rss_bytes = if self.rss { peak_rss() } else { None };
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
            step: STEP.load(Ordering::Relaxed),
            alloc_bytes: alloc,
            net_bytes: net,
            peak_rss_bytes,
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
    recording().then(|| Span::start(name, Kind::Phase, None, None))
}

/// Times one call of an op while recording; `detail` (shapes, FLOPs) is
/// computed only then.
#[inline]
pub fn op(name: &'static str, detail: impl FnOnce() -> (String, Option<u64>)) -> Option<Span> {
    if !recording() {
        return None;
    }
    let (shapes, flops) = detail();
    let span = Span::start(name, Kind::Op, Some(shapes), flops);
    crate::faults::in_op(name);
    Some(span)
}

/// Times a share of an op's work that rayon runs on another thread than the
/// op's own (`caller`, its `rayon::current_thread_index()`), so that every
/// worker gets a track; the share on the op's own thread is the op's time
/// already.
#[inline]
pub fn worker(
    name: &'static str,
    caller: Option<usize>,
    detail: impl FnOnce() -> (String, Option<u64>),
) -> Option<Span> {
    if !recording() || rayon::current_thread_index() == caller {
        return None;
    }
    let (shapes, flops) = detail();
    let mut span = Span::start(name, Kind::Op, Some(shapes), flops);
    span.heap = None;
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
    /// Heap bytes allocated while it ran, children included, over all calls.
    pub alloc_bytes: u64,
    /// Heap bytes allocated outside nested events, over all calls.
    pub self_alloc_bytes: u64,
    /// Phases: the highest peak resident memory of any call, in bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// A profile: the steps it covers and a row per op or phase.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What a step is: `step` (training) or `token` (generation), the name
    /// of the phase that times each one.
    pub unit: &'static str,
    /// Steps recorded.
    pub steps: usize,
    /// Their time (the `step` or `token` phases), in milliseconds.
    pub step_ms: f64,
    /// Self time of every event inside the steps on the steps' own thread,
    /// in milliseconds: `step_ms` less what no event accounts for. (Workers'
    /// shares of an op run beside it and are not counted.)
    pub covered_ms: f64,
    /// Time other threads (rayon workers) spent on the shares of ops that
    /// are timed (matrix products), in milliseconds.
    pub worker_ms: f64,
    /// Threads other than the steps' own that recorded work.
    pub workers: usize,
    /// Whether heap bytes were counted (the `*_bytes` of rows are 0 if not).
    pub allocations_counted: bool,
    /// Heap bytes the forward pass (loss included) left allocated, averaged
    /// over its calls: the activations the autograd graph holds for the
    /// backward pass. `None` when allocations were not counted or nothing
    /// ran a forward phase.
    pub graph_bytes: Option<u64>,
    /// The highest resident memory reached during the steps, in bytes.
    pub peak_rss_bytes: Option<u64>,
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

/// What each event costs by itself: self time and self allocations (less
/// those of its direct children on the same thread), its peak resident
/// memory with its children's, and its depth of nesting (0: outermost).
struct Own {
    ns: Vec<u64>,
    alloc: Vec<u64>,
    peak: Vec<Option<u64>>,
    depth: Vec<usize>,
}

fn own(events: &[Event]) -> Own {
    let mut o = Own {
        ns: events.iter().map(|e| e.dur_ns).collect(),
        alloc: events.iter().map(|e| e.alloc_bytes).collect(),
        peak: events.iter().map(|e| e.peak_rss_bytes).collect(),
        depth: vec![0; events.len()],
    };
    let mut by_thread: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        by_thread.entry(e.tid).or_default().push(i);
    }
    // A closed child hands its peak to its parent.
    let close = |o: &mut Own, open: &mut Vec<usize>| {
        let c = open.pop().expect("an open event");
        if let (Some(&p), Some(v)) = (open.last(), o.peak[c]) {
            o.peak[p] = Some(o.peak[p].map_or(v, |w| w.max(v)));
        }
    };
    for idx in by_thread.values() {
        // Events are sorted by start (longest first on ties), so a stack of
        // open intervals finds each event's parent.
        let mut open: Vec<usize> = Vec::new();
        for &i in idx {
            let e = &events[i];
            while open.last().is_some_and(|&p| events[p].start_ns + events[p].dur_ns <= e.start_ns) {
                close(&mut o, &mut open);
            }
            if let Some(&p) = open.last() {
                o.ns[p] = o.ns[p].saturating_sub(e.dur_ns);
                o.alloc[p] = o.alloc[p].saturating_sub(e.alloc_bytes);
            }
            o.depth[i] = open.len();
            open.push(i);
        }
        while !open.is_empty() {
            close(&mut o, &mut open);
        }
    }
    o
}

/// Self times (each event less its direct children on the same thread) and
/// per-name totals.
pub fn summarize(events: &[Event], sort: SortBy) -> Summary {
    let own = own(events);
    let unit = unit(events);
    let is_step = |e: &Event| e.name == unit;
    let steps: Vec<usize> = (0..events.len()).filter(|&i| is_step(&events[i])).collect();
    let step_ns: u64 = steps.iter().map(|&i| events[i].dur_ns).sum();
    // Work on other threads (rayon workers' shares) runs beside the step's
    // thread, so only the step's threads count towards covering it.
    let step_tids: std::collections::BTreeSet<u64> = steps.iter().map(|&i| events[i].tid).collect();
    let covered: u64 =
        events.iter().zip(&own.ns).filter(|(e, _)| !is_step(e) && step_tids.contains(&e.tid)).map(|(_, &s)| s).sum();
    #[derive(Default)]
    struct Acc {
        calls: usize,
        total: u64,
        own: u64,
        flops: Option<u64>,
        alloc: u64,
        own_alloc: u64,
        peak: Option<u64>,
    }
    let mut rows: BTreeMap<&str, (Kind, Acc)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let (_, r) = rows.entry(e.name).or_insert((e.kind, Acc::default()));
        r.calls += 1;
        r.total += e.dur_ns;
        r.own += own.ns[i];
        r.alloc += e.alloc_bytes;
        r.own_alloc += own.alloc[i];
        r.flops = e.flops.map(|f| r.flops.unwrap_or(0) + f).or(r.flops);
        r.peak = r.peak.max(own.peak[i]);
    }
    let total = step_ns.max(1) as f64;
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|(name, (kind, r))| Row {
            name: name.to_string(),
            kind,
            calls: r.calls,
            total_ms: r.total as f64 / 1e6,
            self_ms: r.own as f64 / 1e6,
            percent: 100.0 * r.own as f64 / total,
            gflops: r.flops.map(|f| f as f64 / r.total.max(1) as f64),
            alloc_bytes: r.alloc,
            self_alloc_bytes: r.own_alloc,
            peak_rss_bytes: r.peak,
        })
        .collect();
    match sort {
        SortBy::SelfTime => rows.sort_by(|a, b| b.self_ms.total_cmp(&a.self_ms)),
        SortBy::Total => rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms)),
        SortBy::Calls => rows.sort_by_key(|r| std::cmp::Reverse(r.calls)),
        SortBy::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
    }
    let counted = allocations_counted();
    let forwards: Vec<i64> = events.iter().filter(|e| e.name == "forward").map(|e| e.net_bytes).collect();
    let graph_bytes =
        (counted && !forwards.is_empty()).then(|| (forwards.iter().sum::<i64>() / forwards.len() as i64).max(0) as u64);
    let others: std::collections::BTreeSet<u64> =
        events.iter().map(|e| e.tid).filter(|t| !step_tids.contains(t)).collect();
    let worker_ns: u64 = (0..events.len())
        .filter(|&i| own.depth[i] == 0 && others.contains(&events[i].tid))
        .map(|i| events[i].dur_ns)
        .sum();
    Summary {
        unit,
        worker_ms: worker_ns as f64 / 1e6,
        workers: others.len(),
        steps: steps.len(),
        step_ms: step_ns as f64 / 1e6,
        covered_ms: covered.min(step_ns) as f64 / 1e6,
        allocations_counted: counted,
        graph_bytes,
        peak_rss_bytes: steps.iter().filter_map(|&i| own.peak[i]).max(),
        rows,
    }
}

/// The phase that times each step: `step` when a trainer recorded any,
/// otherwise `token` (generation).
fn unit(events: &[Event]) -> &'static str {
    if events.iter().any(|e| e.name == "step") {
        "step"
    } else {
        "token"
    }
}

/// Self milliseconds per name, step by step (for TensorBoard's
/// `profile/<name>_ms` scalars): step number → (name, self ms).
pub fn per_step(events: &[Event]) -> BTreeMap<usize, BTreeMap<&'static str, f64>> {
    let own = own(events);
    let mut out: BTreeMap<usize, BTreeMap<&'static str, f64>> = BTreeMap::new();
    for (e, &ns) in events.iter().zip(&own.ns) {
        *out.entry(e.step).or_default().entry(e.name).or_default() += ns as f64 / 1e6;
    }
    out
}

/// The last recorded step (or token) drawn as a timeline: one lane per depth of
/// phases, one per depth of ops, one per other thread; the `top` ops by
/// self time in that step get a colour each, the rest are grey. `None` if
/// no step was recorded.
pub fn timeline(events: &[Event], top: usize) -> Option<crate::chart::Timeline> {
    use crate::chart::{Bar, Timeline, PALETTE};
    let own = own(events);
    let unit = unit(events);
    let si = events.iter().rposition(|e| e.name == unit)?;
    let step = &events[si];
    let (t0, t1) = (step.start_ns, step.start_ns + step.dur_ns);
    let inside: Vec<usize> =
        (0..events.len()).filter(|&i| i != si && events[i].start_ns >= t0 && events[i].start_ns < t1).collect();
    // Ops ranked by self time within this step.
    let mut by_op: BTreeMap<&str, u64> = BTreeMap::new();
    for &i in inside.iter().filter(|&&i| events[i].kind == Kind::Op) {
        *by_op.entry(events[i].name).or_default() += own.ns[i];
    }
    let mut ranked: Vec<(&str, u64)> = by_op.into_iter().collect();
    ranked.sort_by_key(|&(n, t)| (std::cmp::Reverse(t), n));
    let mut phases: Vec<&str> = Vec::new();
    for &i in &inside {
        if events[i].kind == Kind::Phase && !phases.contains(&events[i].name) {
            phases.push(events[i].name);
        }
    }
    let shown_ops = ranked.len().min(top);
    let mut legend: Vec<(String, [u8; 3])> = Vec::new();
    let mut color: BTreeMap<&str, [u8; 3]> = BTreeMap::new();
    let names = phases.iter().copied().chain(ranked.iter().take(shown_ops).map(|r| r.0));
    for (k, name) in names.enumerate() {
        // Phases and ops share one palette; past its end, shades of it.
        let c = PALETTE[k % 9].map(|v| if k < 9 { v } else { v / 2 + 100 });
        color.insert(name, c);
        legend.push((name.to_string(), c));
    }
    if ranked.len() > shown_ops {
        legend.push(("other ops".into(), [200; 3]));
    }
    // Lanes: (thread, kind, depth below the step), in order of appearance.
    let mut lanes: Vec<(u64, Kind, usize)> = Vec::new();
    let mut bars = Vec::new();
    for &i in &inside {
        let e = &events[i];
        let depth = if e.tid == step.tid { own.depth[i].saturating_sub(own.depth[si] + 1) } else { own.depth[i] };
        let key = (e.tid, e.kind, depth);
        let lane = lanes.iter().position(|l| *l == key).unwrap_or_else(|| {
            lanes.push(key);
            lanes.len() - 1
        });
        let at = |ns: u64| (ns.saturating_sub(t0)) as f64 / 1e6;
        bars.push(Bar {
            lane,
            start: at(e.start_ns),
            end: at(e.start_ns + e.dur_ns),
            color: color.get(e.name).copied().unwrap_or([200; 3]),
        });
    }
    // Order lanes: the step's thread first (phases, then ops, outer first).
    let mut order: Vec<usize> = (0..lanes.len()).collect();
    order.sort_by_key(|&l| (lanes[l].0 != step.tid, lanes[l].0, lanes[l].1, lanes[l].2));
    let rank: Vec<usize> = {
        let mut r = vec![0; lanes.len()];
        for (k, &l) in order.iter().enumerate() {
            r[l] = k;
        }
        r
    };
    for b in &mut bars {
        b.lane = rank[b.lane];
    }
    let labels = order
        .iter()
        .map(|&l| {
            let (tid, kind, depth) = lanes[l];
            let what = if kind == Kind::Phase { "phases" } else { "ops" };
            // Nested ones: "ops +1" is the lane under "ops".
            let d = lanes.iter().filter(|o| o.0 == tid && o.1 == kind && o.2 < depth).count();
            match (tid == step.tid, d) {
                (true, 0) => what.to_string(),
                (true, d) => format!("{what} +{d}"),
                (false, 0) => format!("thread {tid} {what}"),
                (false, d) => format!("thread {tid} {what} +{d}"),
            }
        })
        .collect();
    Some(Timeline {
        title: format!("{unit} {}: {:.2} ms", step.step, step.dur_ns as f64 / 1e6),
        x_label: "milliseconds since the step began".into(),
        lanes: labels,
        span: step.dur_ns as f64 / 1e6,
        bars,
        legend,
        width: 1200,
    })
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
            args.insert("step".into(), e.step.into());
            if allocations_counted() {
                args.insert("alloc_bytes".into(), e.alloc_bytes.into());
                args.insert("net_bytes".into(), e.net_bytes.into());
            }
            if let Some(r) = e.peak_rss_bytes {
                args.insert("peak_rss_bytes".into(), r.into());
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

#[cfg(all(test, feature = "profiler"))]
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
        let steps = per_step(&events);
        assert_eq!(steps.keys().copied().collect::<Vec<_>>(), [2, 3]);
        assert!(steps[&3]["slow.fwd"] >= 6.0 && steps[&3]["fast.fwd"] < 6.0, "{steps:?}");
        let t = timeline(&events, 8).unwrap();
        assert!(t.title.starts_with("step 3:"), "{}", t.title);
        // forward is a phase under the step; fast.fwd an op beside it,
        // slow.fwd an op inside it.
        assert_eq!(t.lanes, ["phases", "ops", "ops +1"]);
        assert_eq!(t.bars.len(), 3);
        assert_eq!(t.legend.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["forward", "slow.fwd", "fast.fwd"]);
    }
}
