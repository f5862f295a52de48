//! The built-in spoken-digit corpus, synthesised with Debian's `espeak-ng`
//! (training and held-out voices) and `flite` (a second engine, never
//! trained on): `shiftlm data speech --out DIR`, run on demand by
//! `--task spoken-digits` and `--task spoken-strings`.
//!
//! Layout (every TSV is `path<TAB>text`, paths relative to the TSV):
//!
//! ```text
//! DIR/corpus.json                          what was made, by which engine versions, and its SHA-256
//! DIR/digits/{train,test,unseen_engine}.tsv  single digits, labelled "zero" … "nine"
//! DIR/strings/{train,test,unseen_engine}.tsv strings of 1..=max_digits digits, e.g. "4071"
//! DIR/{digits,strings}/wav/<set>-<n>.wav   the engines' own WAV output, byte for byte
//! ```
//!
//! A speaker is a dialect (en-us, en-gb, en-gb-scotland, en-029, …) with a
//! voice variant (`+m1`, `+f3`, `+klatt2`, …), at a speed (words per minute)
//! and a pitch drawn per clip. The test set's variants are held out whole:
//! no clip of them is trained on. Everything is drawn from fixed seeds and
//! the engines are deterministic, so the same config writes the same bytes
//! on every machine with the same engine versions; `corpus.json` records the
//! versions and the checksum, and a test pins it.
//!
//! The WAVs are kept as the engines write them (22.05 kHz for espeak-ng,
//! 8 or 16 kHz for flite) and resampled to 16 kHz when read
//! ([`super::wav::read`]), so the checksum is the engines' and not our
//! resampler's.

use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Digit words, by value: the keyword classes.
pub const DIGITS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// What to synthesise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// espeak-ng English dialects, e.g. "en-us".
    pub dialects: Vec<String>,
    /// Voice variants trained on, e.g. "m1" (espeak-ng's `+m1`).
    pub train_variants: Vec<String>,
    /// Voice variants held out whole for the test set, e.g. "m3".
    pub test_variants: Vec<String>,
    /// flite voices for the unseen-engine test set, e.g. "slt".
    pub flite_voices: Vec<String>,
    /// Training clips of each digit per dialect and variant.
    pub digit_repeats: usize,
    /// Test clips of each digit per dialect and held-out variant.
    pub digit_test_repeats: usize,
    /// Clips of each digit per flite voice.
    pub digit_unseen_repeats: usize,
    /// Longest digit string, e.g. 7 (strings have 1..=max_digits digits).
    pub max_digits: usize,
    /// Training strings.
    pub strings_train: usize,
    /// Test strings (held-out variants).
    pub strings_test: usize,
    /// Unseen-engine strings (flite).
    pub strings_unseen: usize,
    /// Speaking rates drawn from, in words per minute (espeak-ng's `-s`), e.g. [120, 190].
    pub speed_wpm: [u32; 2],
    /// Pitches drawn from, 0–99 (espeak-ng's `-p`), e.g. [25, 75].
    pub pitch: [u32; 2],
}

impl Default for CorpusConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Self {
            dialects: s(&[
                "en-us",
                "en-gb",
                "en-gb-scotland",
                "en-029",
                "en-gb-x-rp",
                "en-gb-x-gbclan",
                "en-gb-x-gbcwmd",
            ]),
            // espeak-ng's human-sounding variants (not the robots, whispers or croaks).
            train_variants: s(&[
                "m1",
                "m2",
                "m4",
                "m5",
                "m6",
                "m7",
                "m8",
                "f1",
                "f3",
                "f4",
                "klatt",
                "klatt2",
                "klatt4",
                "klatt5",
                "klatt6",
                "Alex",
                "Alicia",
                "Andrea",
                "Andy",
                "Annie",
                "Denis",
                "Gene",
                "Hugo",
                "Jacky",
                "Lee",
                "Marco",
                "Michael",
                "Mike",
                "Nguyen",
                "Storm",
                "adam",
                "anika",
                "announcer",
                "antonio",
                "aunty",
                "belinda",
                "benjamin",
                "boris",
                "caleb",
                "david",
                "ed",
                "edward",
                "grandma",
                "grandpa",
                "gustave",
                "iven",
                "john",
                "linda",
                "max",
                "michel",
                "miguel",
                "norbert",
                "pablo",
                "paul",
                "pedro",
                "quincy",
                "rob",
                "robert",
                "sandro",
                "shelby",
                "steph",
                "travis",
                "victor",
                "zac",
            ]),
            test_variants: s(&["m3", "f2", "klatt3", "f5"]),
            flite_voices: s(&["kal", "awb", "rms", "slt"]),
            digit_repeats: 1,
            digit_test_repeats: 1,
            digit_unseen_repeats: 5,
            max_digits: 7,
            strings_train: 4000,
            strings_test: 400,
            strings_unseen: 200,
            speed_wpm: [120, 190],
            pitch: [25, 75],
        }
    }
}

impl CorpusConfig {
    /// A corpus of tens of clips, for tests.
    pub fn tiny() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Self {
            dialects: s(&["en-us", "en-gb"]),
            train_variants: s(&["m1", "f1"]),
            test_variants: s(&["m3"]),
            flite_voices: s(&["slt"]),
            digit_repeats: 1,
            digit_test_repeats: 1,
            digit_unseen_repeats: 1,
            max_digits: 3,
            strings_train: 8,
            strings_test: 4,
            strings_unseen: 2,
            ..Self::default()
        }
    }

    /// Checks the lists and ranges; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let f = |name: &str, msg: &str| Err(Error::config(&format!("corpus.{name}"), msg));
        for (name, list) in [
            ("dialects", &self.dialects),
            ("train_variants", &self.train_variants),
            ("test_variants", &self.test_variants),
            ("flite_voices", &self.flite_voices),
        ] {
            if list.is_empty() {
                return f(name, "needs at least one");
            }
            // Names go to a command line: keep them to what voices are called.
            if let Some(bad) =
                list.iter().find(|v| !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            {
                return Err(Error::config(&format!("corpus.{name}"), format!("{bad:?} is not a voice name")));
            }
        }
        if let Some(v) = self.test_variants.iter().find(|v| self.train_variants.contains(v)) {
            return Err(Error::config("corpus.test_variants", format!("{v} is also a training variant")));
        }
        if !(1..=32).contains(&self.max_digits) {
            return f("max_digits", "must be in 1..=32");
        }
        if self.digit_repeats == 0 || self.strings_train == 0 {
            return f("digit_repeats", "the training sets need at least one clip");
        }
        let clips = self.clip_count();
        if clips > 1_000_000 {
            return Err(Error::config("corpus", format!("{clips} clips is more than 1,000,000")));
        }
        if !(80..=450).contains(&self.speed_wpm[0]) || self.speed_wpm[0] > self.speed_wpm[1] || self.speed_wpm[1] > 450
        {
            return f("speed_wpm", "need 80 <= low <= high <= 450 words per minute");
        }
        if self.pitch[0] > self.pitch[1] || self.pitch[1] > 99 {
            return f("pitch", "need 0 <= low <= high <= 99");
        }
        Ok(())
    }

    /// How many clips the corpus holds.
    pub fn clip_count(&self) -> usize {
        let d = self.dialects.len();
        10 * d * (self.train_variants.len() * self.digit_repeats + self.test_variants.len() * self.digit_test_repeats)
            + 10 * self.flite_voices.len() * self.digit_unseen_repeats
            + self.strings_train
            + self.strings_test
            + self.strings_unseen
    }
}

/// One clip to synthesise.
#[derive(Debug, Clone, PartialEq)]
struct Job {
    /// Where, relative to the corpus folder: `digits/wav/train-00012.wav`.
    rel: String,
    /// What it says: "seven", or "4071".
    text: String,
    /// The command line, program first.
    argv: Vec<String>,
}

/// The three sets of a task.
pub const SETS: [&str; 3] = ["train", "test", "unseen_engine"];

/// Every clip of the corpus, in a fixed order, with the command that makes it.
fn plan(cfg: &CorpusConfig) -> Vec<Job> {
    let mut jobs = Vec::new();
    let espeak = |rng: &mut Rng, voice: &str, said: &str| -> Vec<String> {
        let speed = cfg.speed_wpm[0] + rng.below((cfg.speed_wpm[1] - cfg.speed_wpm[0] + 1) as usize) as u32;
        let pitch = cfg.pitch[0] + rng.below((cfg.pitch[1] - cfg.pitch[0] + 1) as usize) as u32;
        let gap = rng.below(4); // extra pause between words, ×10 ms
        let v = ["espeak-ng", "-v", voice, "-s", &speed.to_string(), "-p", &pitch.to_string(), "-g", &gap.to_string()];
        v.iter().map(|s| s.to_string()).chain(std::iter::once(said.to_string())).collect()
    };
    let flite = |rng: &mut Rng, voice: &str, said: &str| -> Vec<String> {
        let stretch = 0.8 + 0.1 * rng.below(5) as f32; // 0.8 … 1.2
        ["flite", "-voice", voice, "--setf", &format!("duration_stretch={stretch:.1}"), "-t", said]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut counts = std::collections::HashMap::<String, usize>::new();
    let mut push = |task: &str, set: &str, text: String, argv: Vec<String>, jobs: &mut Vec<Job>| {
        let n = counts.entry(format!("{task}/{set}")).or_default();
        jobs.push(Job { rel: format!("{task}/wav/{set}-{:05}.wav", *n), text, argv });
        *n += 1;
    };
    // Single digits: every dialect × variant × digit, `repeats` times.
    let mut rng = Rng::derive(0, "speech-digits");
    for (set, variants, repeats) in
        [("train", &cfg.train_variants, cfg.digit_repeats), ("test", &cfg.test_variants, cfg.digit_test_repeats)]
    {
        for dialect in &cfg.dialects {
            for variant in variants {
                for (d, word) in DIGITS.iter().enumerate() {
                    for _ in 0..repeats {
                        let argv = espeak(&mut rng, &format!("{dialect}+{variant}"), &d.to_string());
                        push("digits", set, word.to_string(), argv, &mut jobs);
                    }
                }
            }
        }
    }
    for voice in &cfg.flite_voices {
        for (d, word) in DIGITS.iter().enumerate() {
            for _ in 0..cfg.digit_unseen_repeats {
                let argv = flite(&mut rng, voice, &d.to_string());
                push("digits", "unseen_engine", word.to_string(), argv, &mut jobs);
            }
        }
    }
    // Strings: a random speaker of the set's voices for each.
    let mut rng = Rng::derive(0, "speech-strings");
    for (set, n) in [("train", cfg.strings_train), ("test", cfg.strings_test), ("unseen_engine", cfg.strings_unseen)] {
        for _ in 0..n {
            let len = 1 + rng.below(cfg.max_digits);
            let digits: Vec<usize> = (0..len).map(|_| rng.below(10)).collect();
            let text: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
            let said = digits.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" ");
            let argv = if set == "unseen_engine" {
                let voice = &cfg.flite_voices[rng.below(cfg.flite_voices.len())];
                flite(&mut rng, voice, &said)
            } else {
                let variants = if set == "train" { &cfg.train_variants } else { &cfg.test_variants };
                let dialect = &cfg.dialects[rng.below(cfg.dialects.len())];
                let variant = &variants[rng.below(variants.len())];
                espeak(&mut rng, &format!("{dialect}+{variant}"), &said)
            };
            push("strings", set, text, argv, &mut jobs);
        }
    }
    jobs
}

/// What `corpus.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The config it was made from.
    pub config: CorpusConfig,
    /// `espeak-ng --version`'s first line.
    pub espeak_ng: String,
    /// `flite --version`'s first line.
    pub flite: String,
    /// Clips written.
    pub clips: usize,
    /// SHA-256 of every TSV and WAV, by path in order (path, length, bytes).
    pub sha256: String,
}

/// The engine's version line; an error naming the Debian package when it
/// is not installed.
pub fn engine_version(program: &'static str) -> Result<String> {
    let out = Command::new(program).arg("--version").output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingPackage { path: PathBuf::from(format!("/usr/bin/{program}")), package: program }
        } else {
            Error::io(Path::new(program), e)
        }
    })?;
    // "eSpeak NG text-to-speech: 1.51  Data at: …"; flite: "  version: flite-2.2-current …".
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("version:")).or_else(|| text.lines().next()).unwrap_or("");
    let line = line.split("Data at").next().unwrap_or("").trim();
    Ok(line.trim_start_matches("version:").trim().to_string())
}

/// The corpus in `dir`, made if `dir/corpus.json` does not record the same
/// config (an existing corpus is reused without a call to either engine).
/// `progress(done, total)` is called as clips are written.
pub fn ensure(dir: &Path, cfg: &CorpusConfig, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Manifest> {
    if let Some(m) = read_manifest(dir)? {
        if &m.config == cfg {
            return Ok(m);
        }
    }
    generate(dir, cfg, progress)
}

/// The manifest in `dir`, if there is one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join("corpus.json");
    match std::fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s).map(Some).map_err(|e| Error::bad_file(&path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Synthesises the corpus into `dir` (created if need be), clip by clip in
/// parallel, then writes the TSVs and, last, `corpus.json`: a folder
/// without it is unfinished and is made again.
pub fn generate(dir: &Path, cfg: &CorpusConfig, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Manifest> {
    cfg.validate()?;
    let espeak_ng = engine_version("espeak-ng")?;
    let flite = engine_version("flite")?;
    let jobs = plan(cfg);
    for task in ["digits", "strings"] {
        // Emptied first: clips of an earlier, larger corpus would change the checksum.
        let d = dir.join(task).join("wav");
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let stale = dir.join("corpus.json");
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    jobs.par_iter().try_for_each(|job| -> Result<()> {
        let path = dir.join(&job.rel);
        let mut cmd = Command::new(&job.argv[0]);
        cmd.args(&job.argv[1..]);
        // espeak-ng writes with -w, flite with -o.
        cmd.arg(if job.argv[0] == "flite" { "-o" } else { "-w" }).arg(&path);
        let out = cmd.output().map_err(|e| Error::io(&path, e))?;
        if !out.status.success() || std::fs::metadata(&path).map_or(true, |m| m.len() <= 44) {
            return Err(Error::bad_file(
                &path,
                format!(
                    "`{}` failed: {}",
                    job.argv.join(" "),
                    String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("no audio written")
                ),
            ));
        }
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, jobs.len());
        Ok(())
    })?;
    for task in ["digits", "strings"] {
        for set in SETS {
            let prefix = format!("{task}/wav/{set}-");
            let mut tsv = String::new();
            for j in jobs.iter().filter(|j| j.rel.starts_with(&prefix)) {
                tsv.push_str(&format!("{}\t{}\n", &j.rel[task.len() + 1..], j.text));
            }
            crate::io::write_atomic(&dir.join(task).join(format!("{set}.tsv")), tsv.as_bytes())?;
        }
    }
    let m = Manifest { config: cfg.clone(), espeak_ng, flite, clips: jobs.len(), sha256: checksum(dir)? };
    let json = serde_json::to_string_pretty(&m).map_err(|e| Error::bad_file(&stale, e.to_string()))?;
    crate::io::write_atomic(&stale, json.as_bytes())?;
    Ok(m)
}

/// SHA-256 over every TSV and WAV of the corpus in `dir`, by relative path
/// in sorted order: the path, the file's length and its bytes.
pub fn checksum(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    for task in ["digits", "strings"] {
        for set in SETS {
            files.push(format!("{task}/{set}.tsv"));
        }
        let wav = dir.join(task).join("wav");
        let rd = std::fs::read_dir(&wav).map_err(|e| Error::io(&wav, e))?;
        for e in rd.flatten() {
            files.push(format!("{task}/wav/{}", e.file_name().to_string_lossy()));
        }
    }
    files.sort();
    let mut hash = Sha256::new();
    for f in &files {
        let path = dir.join(f);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        hash.update(f.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_fixed_and_holds_test_voices_out() {
        let cfg = CorpusConfig::tiny();
        let jobs = plan(&cfg);
        assert_eq!(jobs, plan(&cfg));
        assert_eq!(jobs.len(), cfg.clip_count());
        let voice = |j: &Job| j.argv[2].clone();
        let train: std::collections::HashSet<String> =
            jobs.iter().filter(|j| j.rel.contains("/train-")).map(&voice).collect();
        for j in jobs.iter().filter(|j| j.rel.contains("/test-")) {
            assert!(j.argv[2].ends_with("+m3") && !train.contains(&voice(j)), "{:?}", j.argv);
        }
        assert!(jobs.iter().filter(|j| j.rel.contains("unseen_engine")).all(|j| j.argv[0] == "flite"));
        let strings: Vec<&Job> = jobs.iter().filter(|j| j.rel.starts_with("strings/")).collect();
        assert!(strings.iter().all(|j| (1..=3).contains(&j.text.len()) && j.text.bytes().all(|b| b.is_ascii_digit())));
        // What is said is the digits, one word each.
        assert!(strings.iter().all(|j| j.argv.last().unwrap().replace(' ', "") == j.text));
        let mut bad = cfg.clone();
        bad.test_variants = vec!["m1".into()];
        assert!(bad.validate().unwrap_err().to_string().contains("corpus.test_variants"));
        bad.test_variants = vec!["m1; rm".into()];
        assert!(bad.validate().unwrap_err().to_string().contains("not a voice name"));
    }
}
