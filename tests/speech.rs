//! Speech recognition: keywords and transcripts from WAV files, with the
//! time shift. Overfitting one batch, every parameter's gradient, exact
//! resume with every augmentation, the commands end to end on synthetic
//! tones (train, eval, generate --audio, plot), bad input, and the built-in
//! espeak-ng/flite corpus (when the Debian packages are installed; always
//! under CI=true, where `.ci/run` installs them).

mod common;

use common::last_json;

use candle_core::Device;
use shiftlm::config::{DataConfig, RunConfig};
use shiftlm::data::audio::speech::SpeechSource;
use shiftlm::data::Dataset;
use shiftlm::model::{Model, ModelConfig};
use shiftlm::nn::ParamStore;
use shiftlm::rng::Rng;
use shiftlm::train::{LossHistory, Trainer};
use std::path::Path;
use std::process::Command;

const RATE: u32 = 16_000;

/// A tone burst of `secs` at `hz` with a short fade at both ends.
fn tone(hz: f32, secs: f32) -> Vec<f32> {
    let n = (secs * RATE as f32) as usize;
    (0..n)
        .map(|i| {
            let fade = (i.min(n - i) as f32 / 160.0).min(1.0);
            0.5 * fade * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin()
        })
        .collect()
}

/// Keywords as tones: class k is a burst at 400·(k+1) Hz of 0.2–0.4 s, with
/// silence before and after; one subfolder per class (the Speech Commands
/// layout). `per_class` clips each.
fn tone_folder(dir: &Path, classes: &[&str], per_class: usize) {
    let mut rng = Rng::new(11);
    for (k, c) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..per_class {
            let mut x = vec![0f32; 800 + rng.below(1600)];
            x.extend(tone(400.0 * (k + 1) as f32, 0.2 + 0.2 * rng.next_f32()));
            x.extend(vec![0f32; 800 + rng.below(1600)]);
            shiftlm::data::audio::wav::write(&dir.join(c).join(format!("{i}.wav")), &x, RATE).unwrap();
        }
    }
}

/// Transcripts as tones: each character of "abc" a 0.15 s burst at its own
/// pitch, with gaps, listed in train.tsv and test.tsv.
fn tone_transcripts(dir: &Path, train: usize, test: usize) {
    let mut rng = Rng::new(5);
    std::fs::create_dir_all(dir.join("wav")).unwrap();
    for (set, n) in [("train", train), ("test", test)] {
        let mut tsv = String::new();
        for i in 0..n {
            let len = 1 + rng.below(3);
            let text: String = (0..len).map(|_| char::from(b'a' + rng.below(3) as u8)).collect();
            let mut x = vec![0f32; 400 + rng.below(800)];
            for ch in text.bytes() {
                x.extend(tone(500.0 * f32::from(ch - b'a' + 1), 0.15));
                x.extend(vec![0f32; 800 + rng.below(800)]);
            }
            let name = format!("wav/{set}-{i}.wav");
            shiftlm::data::audio::wav::write(&dir.join(&name), &x, RATE).unwrap();
            tsv.push_str(&format!("{name}\t{text}\n"));
        }
        std::fs::write(dir.join(format!("{set}.tsv")), tsv).unwrap();
    }
}

/// A tiny speech preset reading `dir`, sized for its data as `train` sizes it.
fn tiny(preset: &str, dir: &Path, steps: usize) -> (RunConfig, Dataset, shiftlm::data::Tokenizer) {
    let mut rc = RunConfig::preset(preset).unwrap();
    rc.train.steps = steps;
    let DataConfig::Speech(d) = &mut rc.data else { panic!("speech") };
    d.source = SpeechSource::Dir(dir.to_path_buf());
    d.pad_ms = 200;
    d.augment = Default::default();
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    rc.model.set_vocab_size(tok.vocab_size());
    (rc, data, tok)
}

/// The keyword classifier (convolutions, LSTM over time, mean, head) drives
/// the loss of one batch to nearly zero, and every parameter gets a finite,
/// nonzero gradient.
#[test]
fn the_keyword_classifier_overfits_one_batch_and_every_parameter_learns() {
    let d = tempfile::tempdir().unwrap();
    tone_folder(d.path(), &["low", "mid", "high"], 6);
    let (mut rc, data, tok) = tiny("spoken-digits-tiny", d.path(), 1);
    let Dataset::Speech(s) = &data else { panic!("speech") };
    assert_eq!(s.classes, ["high", "low", "mid"]);
    let ModelConfig::Image(m) = &mut rc.model else { panic!("a classifier") };
    (m.width, m.height, m.n_classes, m.hidden, m.channels) = (s.frames(), 40, 3, 16, vec![4, 4]);
    assert_eq!(s.frames() % 4, 0, "two poolings halve the frames evenly");
    let store = ParamStore::new(3, &Device::Cpu);
    let model = Model::new(&rc.model, store.var_builder()).unwrap();
    let vars = store.vars();
    let batches = shiftlm::data::loader::speech_batches(s, &s.train, &tok, 8).unwrap();
    let t = [batches[0].tensors(&Device::Cpu).unwrap()];
    let (loss, _) = model.loss_sum(&t[0], None).unwrap();
    let grads = loss.backward().unwrap();
    for (name, v) in &vars {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
        let a = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(a.is_finite() && a > 0.0, "{name}: {a}");
    }
    let (first, last) = common::overfit(&model, &vars, &t, 1e-2, 150);
    assert!(last < 0.05 && last < first / 20.0, "{first} → {last}");
}

/// The speech recogniser (conv columns, LSTM encoder, attention decoder
/// trained with the shift) overfits one batch of transcripts.
#[test]
fn the_transcriber_overfits_one_batch_and_every_parameter_learns() {
    let d = tempfile::tempdir().unwrap();
    tone_transcripts(d.path(), 12, 2);
    let (mut rc, data, tok) = tiny("spoken-strings-tiny", d.path(), 1);
    let Dataset::Speech(s) = &data else { panic!("speech") };
    if let ModelConfig::Seq2seq(m) = &mut rc.model {
        m.hidden = 32;
        m.input = Some(shiftlm::model::FrontendConfig::Columns {
            height: 40,
            channels: vec![4, 4],
            proj: 16,
            pool: true,
            pool_blocks: 2,
        });
    }
    let store = ParamStore::new(3, &Device::Cpu);
    let model = Model::new(&rc.model, store.var_builder()).unwrap();
    let vars = store.vars();
    let batches = shiftlm::data::loader::speech_batches(s, &s.train, &tok, 8).unwrap();
    let t = [batches[0].tensors(&Device::Cpu).unwrap()];
    let shiftlm::data::shift::BatchTensors::Pairs(p) = &t[0] else { panic!("encoder–decoder batches") };
    assert_eq!(p.src.dims(), [8, s.frames(), 40], "(B, frames, mel bands)");
    let grads = model.loss_sum(&t[0], None).unwrap().0.backward().unwrap();
    for (name, v) in &vars {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
        let a = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(a.is_finite() && a > 0.0, "{name}: {a}");
    }
    let (first, last) = common::overfit(&model, &vars, &t, 1e-2, 200);
    assert!(last < 0.05 && last < first / 20.0, "{first} → {last}");
}

/// Every augmentation draws from the loader's stream: a resumed run hears
/// the same clips, shifted, sped, noised and masked the same way, and ends
/// with the same weights.
#[test]
fn augmented_speech_runs_resume_bit_for_bit() {
    let d = tempfile::tempdir().unwrap();
    tone_folder(d.path(), &["low", "high"], 8);
    let (mut rc, data, tok) = tiny("spoken-digits-tiny", d.path(), 10);
    if let DataConfig::Speech(s) = &mut rc.data {
        s.augment = shiftlm::data::audio::augment::SpeechAugment::parse(
            "shift_ms=150,mode=wrap,snr=20,speed=0.1,time_mask=50,freq_mask=5",
        )
        .unwrap();
    }
    rc.train.batch_size = 4;
    (rc.train.save_every, rc.train.keep_last, rc.train.eval_every) = (1, 100, 5);
    let full = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(rc, data, tok, Some(full.path().to_path_buf())).unwrap();
    let mut all = LossHistory::default();
    t.run(&mut all).unwrap();
    common::assert_resumes_bit_for_bit(full.path(), 10, &[3, 7], &all);
}

/// The binary in `dir`, with the built-in corpus's home there too (so a
/// test never makes or reads one in the user's cache).
/// Clips are perturbed in parallel, each from its own seed: the batches are
/// the same on one thread and on three.
#[test]
fn augmented_batches_do_not_depend_on_the_thread_count() {
    let d = tempfile::tempdir().unwrap();
    tone_folder(d.path(), &["low", "high"], 8);
    let (_, data, tok) = tiny("spoken-digits-tiny", d.path(), 1);
    let Dataset::Speech(s) = &data else { panic!("speech") };
    let aug =
        shiftlm::data::audio::augment::SpeechAugment::parse("shift_ms=150,snr=10,speed=0.1,time_mask=40,freq_mask=6")
            .unwrap();
    let draw = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut l = shiftlm::data::loader::SpeechLoader::new(s, &tok, aug, 5, 9).unwrap();
            (0..3).map(|_| l.next_batch()).collect::<Vec<_>>()
        })
    };
    let one = draw(1);
    assert_eq!(one, draw(3));
    let shiftlm::data::Batch::Images(b) = &one[0] else { panic!("keyword batches are images") };
    assert!(b.pixels.iter().all(|v| v.is_finite()) && b.labels.len() == 5);
}

fn shiftlm(dir: &Path, args: &[&str]) -> std::process::Output {
    let cmd = Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).env("SHIFTLM_DATA", dir).output();
    cmd.unwrap()
}

/// `train --data DIR` on a folder of keyword clips learns them (accuracy,
/// the shift curve in ms, consistency); eval reproduces it from the
/// checkpoint with its own offsets; generate names a clip's keyword; plot
/// overlays the run.
#[test]
fn keywords_train_eval_generate_and_plot() {
    let d = tempfile::tempdir().unwrap();
    tone_folder(&d.path().join("tones"), &["low", "mid", "high"], 12);
    let args = [
        "train",
        "--data",
        "tones",
        "--preset",
        "spoken-digits-tiny",
        "--augment",
        "shift_ms=200",
        "--steps",
        "80",
        "--set",
        "data.speech.pad_ms=200",
        "--set",
        "model.hidden=16",
        "--json",
        "--out",
        "run",
    ];
    let o = shiftlm(d.path(), &args);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let v = last_json(&o);
    assert!(text.contains("held-out voices:") && text.contains("accuracy"), "{text}");
    assert!(v["accuracy"].as_f64().unwrap() > 0.85, "{v}");
    let curve = v["shift_curve"].as_array().unwrap();
    let ms: Vec<u64> = curve.iter().map(|p| p["shift_ms"].as_u64().unwrap()).collect();
    assert_eq!(ms, [0, 50, 100, 200, 400]);
    assert_eq!(curve[0]["accuracy"], v["accuracy"]);
    assert!((0.0..=1.0).contains(&v["consistency"].as_f64().unwrap()), "{v}");
    assert!(d.path().join("run/shift_curve.png").exists());
    let e = last_json(&shiftlm(d.path(), &["eval", "--checkpoint", "run", "--shift-curve-ms", "0,100", "--json"]));
    assert_eq!(e["accuracy"], v["accuracy"]);
    assert_eq!(e["shift_curve"].as_array().unwrap()[..], [curve[0].clone(), curve[2].clone()]);
    // A stereo 44.1 kHz clip of the highest tone, with a second of silence first.
    let hi = d.path().join("hi.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&hi, spec).unwrap();
    for i in 0..(44_100 + 13_000) {
        let s = if i < 44_100 { 0.0 } else { 0.4 * (2.0 * std::f32::consts::PI * 1200.0 * i as f32 / 44_100.0).sin() };
        w.write_sample((s * 32767.0) as i16).unwrap();
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    let g = last_json(&shiftlm(d.path(), &["generate", "--checkpoint", "run", "--audio", "hi.wav", "--json"]));
    assert_eq!(g["outputs"][0]["text"], "high", "{g}");
    let o = shiftlm(d.path(), &["plot", "--shift-curve", "run", "--out", "curve.png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(&std::fs::read(d.path().join("curve.png")).unwrap()[1..4], b"PNG");
}

/// `--task spoken-strings --data DIR` on transcripts: exact match, CER and
/// WER, the shift curve with CER; generate reads a clip.
#[test]
fn transcripts_train_eval_and_generate() {
    let d = tempfile::tempdir().unwrap();
    tone_transcripts(&d.path().join("abc"), 60, 12);
    let args = [
        "train",
        "--task",
        "spoken-strings",
        "--data",
        "abc",
        "--preset",
        "spoken-strings-tiny",
        "--augment",
        "none",
        "--steps",
        "30",
        "--set",
        "data.speech.pad_ms=100",
        "--json",
        "--out",
        "run",
    ];
    let v = last_json(&shiftlm(d.path(), &args));
    for key in ["exact_match", "cer", "wer", "loss", "consistency"] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    assert!(v["shift_curve"][1]["cer"].is_number() && v["shift_curve"][1]["shift_ms"] == 50, "{v}");
    let e = last_json(&shiftlm(d.path(), &["eval", "--checkpoint", "run", "--json"]));
    assert_eq!((e["exact_match"].clone(), e["cer"].clone()), (v["exact_match"].clone(), v["cer"].clone()));
    // A folder holding only a test.tsv is scored whole, on the run's canvas.
    std::fs::create_dir(d.path().join("only")).unwrap();
    let tsv = std::fs::read_to_string(d.path().join("abc/test.tsv")).unwrap().replace("wav/", "../abc/wav/");
    std::fs::write(d.path().join("only/test.tsv"), tsv).unwrap();
    let e = last_json(&shiftlm(d.path(), &["eval", "--checkpoint", "run", "--data", "only", "--json"]));
    assert_eq!((e["clips"].clone(), e["cer"].clone()), (serde_json::json!(12), v["cer"].clone()), "{e}");
    let g =
        last_json(&shiftlm(d.path(), &["generate", "--checkpoint", "run", "--audio", "abc/wav/test-0.wav", "--json"]));
    assert!(g["outputs"][0]["text"].is_string(), "{g}");
}

/// Bad input is refused with exit code 2, naming the file and line, the
/// flag, or the package.
#[test]
fn bad_speech_input_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], want: &str| {
        let o = shiftlm(d.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.contains(want), "{args:?}: {err}");
    };
    let bad = d.path().join("bad");
    std::fs::create_dir_all(bad.join("wav")).unwrap();
    shiftlm::data::audio::wav::write(&bad.join("wav/ok.wav"), &tone(440.0, 0.2), RATE).unwrap();
    std::fs::write(bad.join("train.tsv"), "wav/ok.wav\tyes\nwav/ok.wav no tab\n").unwrap();
    refused(&["train", "--data", "bad", "--steps", "1"], "train.tsv:2");
    std::fs::write(bad.join("train.tsv"), "wav/ok.wav\tyes\nwav/ok.wav\tturn\tleft\n").unwrap();
    refused(&["train", "--data", "bad", "--steps", "1"], "train.tsv:2: the text holds a tab");
    std::fs::write(bad.join("train.tsv"), "wav/ok.wav\tyes\nwav/gone.wav\tno\n").unwrap();
    refused(&["train", "--data", "bad", "--steps", "1"], "gone.wav");
    let bytes = std::fs::read(bad.join("wav/ok.wav")).unwrap();
    std::fs::write(bad.join("wav/cut.wav"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(bad.join("train.tsv"), "wav/ok.wav\tyes\nwav/cut.wav\tno\n").unwrap();
    refused(&["train", "--data", "bad", "--steps", "1"], "cut.wav");
    std::fs::write(bad.join("wav/not.wav"), b"hello").unwrap();
    std::fs::write(bad.join("train.tsv"), "wav/ok.wav\tyes\nwav/not.wav\tno\n").unwrap();
    refused(&["train", "--data", "bad", "--steps", "1"], "not.wav");
    refused(&["train", "--task", "spoken-digits", "--augment", "shift=3"], "shift_ms");
    refused(&["train", "--task", "spoken-digits", "--augment", "speed=0.9"], "[0, 0.5)");
    refused(&["train", "--task", "spoken-strings", "--model", "cnn"], "--model seq2seq");
    assert!(!d.path().join("speech").exists(), "a refused run made the corpus");
    refused(&["eval", "--checkpoint", "nowhere", "--shift-curve-ms", "x"], "x");
    // Without the engines on the PATH, the error names the Debian package.
    let o = Command::new(env!("CARGO_BIN_EXE_shiftlm"))
        .args(["data", "speech", "--out", "corpus"])
        .env("PATH", "/nonexistent")
        .current_dir(d.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("apt-get install espeak-ng"), "{err}");
}

/// Whether the corpus's engines are here; under CI=true they must be.
fn engines() -> bool {
    let have = |p: &str| Command::new(p).arg("--version").output().is_ok();
    if have("espeak-ng") && have("flite") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but espeak-ng or flite is missing (.ci/run installs them)"
    );
    eprintln!("skipped: needs Debian's espeak-ng and flite packages (apt-get install espeak-ng flite)");
    false
}

/// The checksum of the tiny corpus made by Debian bookworm's espeak-ng 1.51
/// and flite 2.2.
const TINY_SHA256: &str = "05c7a9f9a2e6458ba1f33d8a249c161a779bfee3334a5472aa25773942b218a7";

/// The built-in corpus is the same bytes every time (and on every machine
/// with these engine versions), its test voices are held out, and it
/// loads as keywords and as transcripts.
#[test]
fn the_corpus_is_deterministic_and_holds_voices_out() {
    if !engines() {
        return;
    }
    use shiftlm::data::audio::corpus::{generate, CorpusConfig};
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = CorpusConfig::tiny();
    let m = generate(a.path(), &cfg, &|_, _| {}).unwrap();
    assert_eq!(m.clips, cfg.clip_count());
    assert_eq!(generate(b.path(), &cfg, &|_, _| {}).unwrap().sha256, m.sha256);
    if m.espeak_ng.contains("1.51") && m.flite.contains("flite-2.2") {
        assert_eq!(m.sha256, TINY_SHA256, "{} and {}", m.espeak_ng, m.flite);
    } else {
        eprintln!(
            "checksum not compared: pinned for espeak-ng 1.51 and flite 2.2, found {} and {}",
            m.espeak_ng, m.flite
        );
    }
    let tsv = std::fs::read_to_string(a.path().join("digits/test.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 10 * cfg.dialects.len() * cfg.test_variants.len());
    assert!(tsv.lines().next().unwrap().ends_with("\tzero"), "{tsv}");
    for (sub, strings) in [("digits", false), ("strings", true)] {
        let sd = shiftlm::data::audio::speech::SpeechDataConfig {
            source: SpeechSource::Dir(a.path().join(sub)),
            strings,
            features: Default::default(),
            augment: Default::default(),
            valid_fraction: 0.0,
            pad_ms: 400,
            canvas_ms: None,
        };
        let s = shiftlm::data::audio::speech::SpeechData::load(&sd, &|_, _| {}).unwrap();
        assert!(s.unseen_engine.as_ref().is_some_and(|u| !u.is_empty()), "{}", s.describe());
        assert!(s.train.audio.iter().all(|x| x.len() > 1600), "a clip of under 0.1 s of sound");
    }
}
