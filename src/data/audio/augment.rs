//! Speech augmentation, the seed's input shift in time, and its usual
//! companions. Each training clip, in this order:
//!
//! 1. `speed=F`: played faster or slower by a random factor in [1−F, 1+F]
//!    (resampled by linear interpolation; pitch moves with it, like
//!    Kaldi's speed perturbation);
//! 2. `shift_ms=S`: placed at a random offset in [−S, S] ms from the
//!    canvas's centre, zero-filled (`mode=zero`, the default) or rolled
//!    round the canvas (`mode=wrap`);
//! 3. `snr=DB`: white noise added at DB decibels below the clip's power;
//! 4. `time_mask=MS`, `freq_mask=BANDS` (SpecAugment): one band of up to
//!    BANDS mel bands and one span of up to MS ms of the log-mel features
//!    set to silence.
//!
//! Every draw comes from the caller's seeded stream, which the trainer keeps
//! in its resumable state, so a resumed run hears the same clips.

use crate::data::shift::Fill;
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How training clips are perturbed; the default changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechAugment {
    /// Largest offset from the centre, in ms, either way (0: none).
    #[serde(default)]
    pub shift_ms: u32,
    /// What fills the canvas where the shifted clip is not.
    #[serde(default)]
    pub mode: Fill,
    /// Signal-to-noise ratio of added white noise, in dB (`None`: no noise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snr_db: Option<f32>,
    /// Largest relative change of speed, e.g. 0.1 for ±10% (0: none).
    #[serde(default)]
    pub speed: f32,
    /// SpecAugment: the longest time mask, in ms (0: none).
    #[serde(default)]
    pub time_mask_ms: u32,
    /// SpecAugment: the widest frequency mask, in mel bands (0: none).
    #[serde(default)]
    pub freq_mask: usize,
}

/// The largest shift accepted, in ms.
pub const MAX_SHIFT_MS: u32 = 10_000;

impl SpeechAugment {
    /// Parses `--augment` for speech: `shift_ms=S[,mode=zero|wrap][,snr=DB]
    /// [,speed=F][,time_mask=MS][,freq_mask=BANDS]` in any order, or `none`.
    pub fn parse(s: &str) -> Result<SpeechAugment> {
        let mut a = SpeechAugment::default();
        let bad = |msg: String| Error::config("augment", msg);
        if s.trim() == "none" {
            return Ok(a);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                bad(format!("{part:?} is not KEY=VALUE; write e.g. shift_ms=400,mode=zero,snr=20,speed=0.1"))
            })?;
            let v = v.trim();
            let whole =
                |what: &str| v.parse::<u32>().map_err(|_| bad(format!("{k}={v}: not a whole number of {what}")));
            let number = || v.parse::<f32>().map_err(|_| bad(format!("{k}={v}: not a number")));
            match k.trim() {
                "shift_ms" => a.shift_ms = whole("ms")?,
                "mode" => {
                    a.mode = match v {
                        "zero" => Fill::Zero,
                        "wrap" => Fill::Wrap,
                        other => return Err(bad(format!("mode={other}: use zero or wrap"))),
                    }
                }
                "snr" => a.snr_db = Some(number()?),
                "speed" => a.speed = number()?,
                "time_mask" => a.time_mask_ms = whole("ms")?,
                "freq_mask" => a.freq_mask = whole("mel bands")? as usize,
                "shift" => return Err(bad("speech shifts are in ms: write shift_ms=S".into())),
                other => {
                    return Err(bad(format!(
                        "unknown key {other:?}; the keys are shift_ms, mode, snr, speed, time_mask and freq_mask"
                    )))
                }
            }
        }
        a.validate()?;
        Ok(a)
    }

    /// Checks the ranges (the error names `augment`).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::config("augment", msg));
        if self.shift_ms > MAX_SHIFT_MS {
            return bad(format!("shift_ms={} is more than {MAX_SHIFT_MS} ms", self.shift_ms));
        }
        if let Some(snr) = self.snr_db {
            if !(snr.is_finite() && (-20.0..=100.0).contains(&snr)) {
                return bad(format!("snr={snr} must be -20..=100 dB"));
            }
        }
        if !(self.speed.is_finite() && (0.0..0.5).contains(&self.speed)) {
            return bad(format!("speed={} must be in [0, 0.5)", self.speed));
        }
        if self.time_mask_ms > MAX_SHIFT_MS {
            return bad(format!("time_mask={} is more than {MAX_SHIFT_MS} ms", self.time_mask_ms));
        }
        if self.freq_mask > 128 {
            return bad(format!("freq_mask={} is more than 128 bands", self.freq_mask));
        }
        Ok(())
    }

    /// Whether it leaves every clip as it is.
    pub fn is_identity(&self) -> bool {
        *self == SpeechAugment { mode: self.mode, ..Default::default() }
    }

    /// The waveform steps (1–3): `clip` sped up or slowed down, then its
    /// offset from the centre in samples (at `rate` Hz), then the noise
    /// (applied to the placed canvas by [`add_noise`]). Returns the
    /// perturbed clip and the offset.
    pub fn perturb(&self, clip: &[f32], rate: u32, rng: &mut Rng) -> (Vec<f32>, i64) {
        let clip =
            if self.speed > 0.0 { speed(clip, 1.0 + rng.uniform(-self.speed, self.speed)) } else { clip.to_vec() };
        let s = i64::from(self.shift_ms) * i64::from(rate) / 1000;
        let offset = if s > 0 { rng.below(2 * s as usize + 1) as i64 - s } else { 0 };
        (clip, offset)
    }

    /// Step 4: SpecAugment's masks on `feats` (`n_mels` rows of `frames`),
    /// set to `silence`; `hop_ms` converts the time mask to frames.
    pub fn mask(&self, feats: &mut [f32], n_mels: usize, frames: usize, hop_ms: f32, silence: f32, rng: &mut Rng) {
        if self.freq_mask > 0 {
            let f = rng.below(self.freq_mask.min(n_mels) + 1);
            let f0 = rng.below(n_mels - f + 1);
            feats[f0 * frames..(f0 + f) * frames].fill(silence);
        }
        if self.time_mask_ms > 0 {
            let most = ((self.time_mask_ms as f32 / hop_ms) as usize).min(frames);
            let t = rng.below(most + 1);
            let t0 = rng.below(frames - t + 1);
            for row in feats.chunks_mut(frames.max(1)) {
                row[t0..t0 + t].fill(silence);
            }
        }
    }
}

/// `x` played `factor` times as fast (linear interpolation): len / factor samples.
pub fn speed(x: &[f32], factor: f32) -> Vec<f32> {
    let n = ((x.len() as f64 / f64::from(factor)).round() as usize).max(1);
    (0..n)
        .map(|i| {
            let t = i as f64 * f64::from(factor);
            let j = t.floor() as usize;
            let f = (t - j as f64) as f32;
            let a = x.get(j).copied().unwrap_or(0.0);
            let b = x.get(j + 1).copied().unwrap_or(a);
            a + f * (b - a)
        })
        .collect()
}

/// Adds white Gaussian noise to `canvas` at `snr_db` below `signal_power`
/// (the mean square of the clip itself, not of the silence around it).
pub fn add_noise(canvas: &mut [f32], signal_power: f32, snr_db: f32, rng: &mut Rng) {
    let sigma = (signal_power / 10f32.powf(snr_db / 10.0)).sqrt();
    for v in canvas.iter_mut() {
        *v += sigma * rng.normal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_and_refuses_nonsense() {
        assert_eq!(SpeechAugment::parse("none").unwrap(), SpeechAugment::default());
        let a = SpeechAugment::parse("shift_ms=400, mode=wrap,snr=20,speed=0.1,time_mask=50,freq_mask=8").unwrap();
        let want = SpeechAugment {
            shift_ms: 400,
            mode: Fill::Wrap,
            snr_db: Some(20.0),
            speed: 0.1,
            time_mask_ms: 50,
            freq_mask: 8,
        };
        assert_eq!(a, want);
        assert!(SpeechAugment::parse("mode=wrap").unwrap().is_identity());
        for (bad, needle) in [
            ("shift_ms", "KEY=VALUE"),
            ("shift_ms=-5", "whole number"),
            ("shift=3", "shift_ms"),
            ("speed=0.7", "[0, 0.5)"),
            ("snr=nan", "-20..=100"),
            ("mode=mirror", "zero or wrap"),
            ("pitch=2", "unknown key"),
        ] {
            let e = SpeechAugment::parse(bad).unwrap_err().to_string();
            assert!(e.contains("augment") && e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn draws_are_seeded_and_within_range() {
        let a = SpeechAugment::parse("shift_ms=100,speed=0.2,snr=10,time_mask=30,freq_mask=5").unwrap();
        let clip: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.05).sin()).collect();
        let (mut r1, mut r2) = (Rng::new(3), Rng::new(3));
        let mut offsets = Vec::new();
        for _ in 0..200 {
            let (x1, o1) = a.perturb(&clip, 16_000, &mut r1);
            assert_eq!((x1.clone(), o1), a.perturb(&clip, 16_000, &mut r2));
            assert!((1333..=2000).contains(&x1.len()), "{}", x1.len());
            assert!(o1.abs() <= 1600);
            offsets.push(o1);
        }
        assert!(offsets.iter().any(|&o| o < -1000) && offsets.iter().any(|&o| o > 1000));
        // Speed 2 keeps every other sample.
        assert_eq!(speed(&[0.0, 1.0, 2.0, 3.0], 2.0), vec![0.0, 2.0]);
        // Noise at 0 dB has the signal's power.
        let mut z = vec![0f32; 20_000];
        add_noise(&mut z, 0.25, 0.0, &mut r1);
        let p = z.iter().map(|v| v * v).sum::<f32>() / z.len() as f32;
        assert!((p - 0.25).abs() < 0.02, "{p}");
        // Masks silence whole rows and columns.
        let mut f = vec![1f32; 40 * 50];
        for _ in 0..20 {
            a.mask(&mut f, 40, 50, 10.0, 0.0, &mut r1);
        }
        assert!(f.contains(&0.0) && f.contains(&1.0));
    }
}
