//! Property-based fuzzing of every loader: random bytes, and structured
//! mutations of valid files (flipped, cut, repeated or inserted bytes;
//! numbers swapped for extreme ones). Each case must return `Ok` or `Err` —
//! never panic — finish in under a second, and allocate less than 1 GB.
//!
//! `SHIFTLM_FUZZ_CASES` sets the cases per loader: 256 by default (CI), at
//! least 10 000 for the opt-in run recorded in BENCHMARKS.md ("Reliability"):
//!
//! ```sh
//! SHIFTLM_FUZZ_CASES=10000 cargo test --release --test fuzz -- --nocapture
//! ```

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts live heap bytes and their peak, so that a case that tries to
/// allocate a fortune is caught (and a single request over the limit is
/// refused rather than attempted).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
const LIMIT: usize = 1 << 30;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            return std::ptr::null_mut(); // the case then fails loudly (alloc error)
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(p, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The fuzz targets run one at a time, so that the memory peak is theirs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn cases() -> u32 {
    std::env::var("SHIFTLM_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Random bytes, or a mutation of one of `seeds` (valid files).
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let mutated = (0..n, prop::collection::vec((0u8..6, any::<usize>(), any::<u8>(), 0usize..64), 1..6)).prop_map(
        move |(which, edits)| {
            let mut b = seeds[which].clone();
            for (op, at, byte, len) in edits {
                let at = if b.is_empty() { 0 } else { at % (b.len() + 1) };
                match op {
                    0 if at < b.len() => b[at] ^= byte | 1, // flip bits
                    1 => b.truncate(at),                    // cut
                    2 => b.insert(at, byte),                // insert
                    3 if at < b.len() => {
                        let end = (at + len).min(b.len()); // repeat a run
                        let run = b[at..end].to_vec();
                        b.splice(at..at, run);
                    }
                    4 => {
                        // A number swapped for an extreme one.
                        let extreme: &[u8] =
                            [&b"99999999999999999999"[..], b"-1", b"1e308", b"0", b"4294967296"][byte as usize % 5];
                        if let Some(d) = (at..b.len()).find(|&i| b[i].is_ascii_digit()) {
                            let end = (d..b.len()).find(|&i| !b[i].is_ascii_digit()).unwrap_or(b.len());
                            b.splice(d..end, extreme.iter().copied());
                        }
                    }
                    _ if at < b.len() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            b
        },
    );
    prop_oneof![1 => prop::collection::vec(any::<u8>(), 0..512), 4 => mutated]
}

/// Runs `load` on every generated input: no panic (proptest reports one),
/// under a second, under 1 GB.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, load: impl Fn(&[u8])) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let (slowest, most) = (std::cell::Cell::new(Duration::ZERO), std::cell::Cell::new(0usize));
    runner
        .run(&inputs(seeds), |bytes| {
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let start = Instant::now();
            load(&bytes);
            let (took, grew) = (start.elapsed(), PEAK.load(Ordering::Relaxed).saturating_sub(base));
            prop_assert!(took < Duration::from_secs(1), "{name}: a case took {took:?}");
            prop_assert!(grew < LIMIT, "{name}: a case allocated {grew} bytes");
            slowest.set(slowest.get().max(took));
            most.set(most.get().max(grew));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("fuzz {name}: {} cases, slowest {:?}, most memory {} kB", cases(), slowest.get(), most.get() / 1024);
}

/// `bytes` written to `name` in a fresh folder, for loaders that read files.
fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (d, p)
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn safetensors_files() {
    let seeds = vec![
        fixture("tests/fixtures/gpt2_tiny/model.safetensors"),
        fixture("tests/fixtures/export/llama/model.safetensors"),
    ];
    let cfg = shiftlm::checkpoint::read_config(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny/config.json"),
    )
    .unwrap();
    fuzz("safetensors", seeds, |b| {
        let p = Path::new("model.safetensors");
        let _ = shiftlm::nn::params::read_safetensors(b, p);
        let _ = shiftlm::nn::params::safetensors_values(b, p);
        // And into a model, within the budget its header allows.
        let store = shiftlm::nn::ParamStore::new(0, &candle_core::Device::Cpu);
        if let Ok(values) = shiftlm::nn::params::safetensors_values(b, p) {
            store.limit(values, "model.safetensors");
            if shiftlm::model::Model::new(&cfg.model, store.var_builder()).is_ok() {
                let _ = store.load_bytes_except(&[(p, b)], |_| false);
            }
        }
    });
}

#[test]
fn config_json() {
    let seeds = vec![
        fixture("tests/fixtures/gpt2_tiny/config.json"),
        fixture("tests/fixtures/llama_tiny/config.json"),
        fixture("tests/fixtures/export/gpt2/config.json"),
        serde_json::to_vec(&shiftlm::config::RunConfig::preset("small").unwrap()).unwrap(),
        serde_json::to_vec(&shiftlm::config::RunConfig::preset("series").unwrap()).unwrap(),
    ];
    fuzz("config.json", seeds, |b| {
        if let Ok(cfg) = shiftlm::checkpoint::config_from_bytes(b, Path::new("config.json")) {
            // A config that validates builds within the size limits.
            let store = shiftlm::nn::ParamStore::new(0, &candle_core::Device::Cpu);
            store.limit(1 << 20, "fuzz");
            let _ = shiftlm::model::Model::new(&cfg.model, store.var_builder());
        }
    });
}

#[test]
fn tokenizer_json() {
    let seeds = vec![
        fixture("tests/fixtures/export/gpt2/tokenizer.json"),
        fixture("tests/fixtures/export/llama/tokenizer.json"),
        shiftlm::data::Tokenizer::Byte.to_json_bytes().unwrap(),
        shiftlm::data::Tokenizer::Symbols { n: 20 }.to_json_bytes().unwrap(),
    ];
    fuzz("tokenizer.json", seeds, |b| {
        if let Ok(t) = shiftlm::data::Tokenizer::from_json_bytes(b, Path::new("tokenizer.json")) {
            if let Ok(ids) = t.encode("To be, or not to be: 1 2 3 ünï") {
                let _ = t.decode(&ids);
            }
        }
    });
}

#[test]
fn manifest_and_trainer_state() {
    // A real two-step run whose manifest and trainer state get mutated.
    let run = tempfile::tempdir().unwrap();
    let mut cfg = shiftlm::config::RunConfig::preset("tiny").unwrap();
    cfg.train.steps = 2;
    let job = shiftlm::api::TrainJob { config: cfg, out: run.path().join("r"), show: 0 };
    shiftlm::api::train(&job, &mut shiftlm::train::LossHistory::default()).unwrap();
    let ck = run.path().join("r/checkpoint-2");
    let (manifest, state) =
        (std::fs::read(ck.join("manifest.json")).unwrap(), std::fs::read(ck.join("trainer_state.json")).unwrap());
    fuzz("manifest.json", vec![manifest.clone()], |b| {
        let d = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&ck).unwrap().flatten() {
            std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
        }
        std::fs::write(d.path().join("manifest.json"), b).unwrap();
        let _ = shiftlm::checkpoint::load(d.path(), &candle_core::Device::Cpu);
    });
    fuzz("trainer_state.json", vec![state], |b| {
        // The state replaced and the manifest resealed, so that the state itself is read.
        let d = tempfile::tempdir().unwrap();
        let to = d.path().join("checkpoint-2");
        std::fs::create_dir(&to).unwrap();
        let mut files = Vec::new();
        for name in ["config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors"] {
            files.push((name, std::fs::read(ck.join(name)).unwrap()));
        }
        files.push(("trainer_state.json", b.to_vec()));
        let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (*n, b.clone())).collect();
        shiftlm::checkpoint::write_checkpoint(&to, 2, &refs).unwrap();
        if let Ok(mut t) = shiftlm::train::Trainer::resume(d.path()) {
            // A resumed run takes a step from wherever its state says it is.
            let next = t.state.step.saturating_add(1);
            t.cfg.train.steps = next;
            let _ = t.run_until(next, &mut shiftlm::train::LossHistory::default());
        }
    });
}

#[test]
fn pairs_tsv_and_jsonl() {
    let seeds = vec![
        b"hello\tworld\nab\tba\textra\n\ncd\tdc\r\n".to_vec(),
        b"{\"source\": \"x\", \"target\": \"y\"}\n{\"prompt\": \"p\", \"response\": \"r\"}\n".to_vec(),
    ];
    fuzz("pairs (TSV, JSONL)", seeds, |b| {
        for name in ["p.tsv", "p.jsonl", "p.txt"] {
            let (_d, p) = file(name, b);
            let _ = shiftlm::data::pairs::read_pairs(&p);
        }
    });
}

#[test]
fn series_csv() {
    let seeds = vec![
        b"date,load,temp\n2024-01-01 00:00,1.5,3\n2024-01-01 01:00,2,\"4\"\n".to_vec(),
        b"\xef\xbb\xbft;v\n1;2\n2;3\n3;\n".to_vec(),
        fixture("data/co2_mauna_loa_weekly.csv")[..2000].to_vec(),
    ];
    fuzz("series (CSV)", seeds, |b| {
        let (_d, p) = file("s.csv", b);
        use shiftlm::data::series::FillPolicy;
        for (targets, fill) in
            [(vec!["load"], FillPolicy::Error), (vec!["v", "t"], FillPolicy::Forward), (vec!["co2"], FillPolicy::Zero)]
        {
            let spec = shiftlm::data::series::SeriesSpec {
                path: p.clone(),
                targets: targets.into_iter().map(String::from).collect(),
                covariates: vec![],
                timestamp: Some("date".into()),
                fill,
                id: None,
            };
            if let Ok(s) = shiftlm::data::series::read_csv(&spec) {
                if let Some(ts) = &s.timestamps {
                    let _ = shiftlm::data::series::extrapolate_timestamps(ts, 50);
                }
            }
        }
    });
}

#[test]
fn metrics_jsonl() {
    let line = |step: usize| {
        format!("{{\"kind\":\"eval\",\"step\":{step},\"valid_loss\":1.5,\"valid_token_accuracy\":null}}\n")
    };
    fuzz("metrics.jsonl", vec![format!("{}{}", line(1), line(2)).into_bytes()], |b| {
        let (_d, p) = file("metrics.jsonl", b);
        let _ = shiftlm::train::metrics::read_jsonl(&p);
        let _ = shiftlm::train::metrics::JsonlSink::open(&p, 1);
    });
}
