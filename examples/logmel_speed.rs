//! How fast log-mel extraction runs on one core: 60 s of a synthetic signal
//! at 16 kHz through the default front-end (40 HTK bands, 25 ms frames every
//! 10 ms) and through an 80-band Slaney one, best of 5 runs each.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release --example logmel_speed`

use shiftlm::data::audio::mel::{LogMel, MelConfig, MelScale};

fn main() -> shiftlm::error::Result<()> {
    let secs = 60.0f64;
    let n = (secs * 16_000.0) as usize;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.3 + ((i * 7919) % 101) as f32 * 1e-3).collect();
    let slaney = MelConfig { n_mels: 80, n_fft: 512, scale: MelScale::Slaney, slaney_norm: true, ..Default::default() };
    for (name, cfg) in [("htk40 (default)", MelConfig::default()), ("slaney80, n_fft 512", slaney)] {
        let lm = LogMel::new(&cfg, 16_000)?;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let frames = lm.log_mel(&x);
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(frames.len(), cfg.frames(n) * cfg.n_mels);
        }
        println!("{name}: {:.1} ms for {secs} s of audio, {:.0}x real time", 1e3 * best, secs / best);
    }
    Ok(())
}
