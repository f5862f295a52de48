//! Log-mel spectrograms: the frames a speech model reads.
//!
//! Like `torchaudio.transforms.MelSpectrogram` (and `librosa.feature.
//! melspectrogram` with `pad_mode="reflect"`): frames of `win_length`
//! samples every `hop_length`, centred (the signal reflected by n_fft/2 at
//! both ends; zeros where the clip is too short to reflect), a periodic Hann
//! window, the power |FFT|² of each frame (`realfft`), and triangular mel
//! filters on the HTK or Slaney scale, optionally area-normalised (Slaney's
//! `norm`). The log is ln(power + 1e-6). `tests` check the filters and the
//! spectrogram against librosa on a fixture from `tools/make_audio_fixtures.py`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which mel scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelScale {
    /// mel = 2595 · log10(1 + f / 700) (torchaudio's default).
    Htk,
    /// Linear below 1 kHz, logarithmic above (librosa's default).
    Slaney,
}

/// The spectrogram's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MelConfig {
    /// Mel bands, e.g. 40 (40–128 accepted).
    pub n_mels: usize,
    /// FFT size in samples, e.g. 400 (25 ms at 16 kHz).
    pub n_fft: usize,
    /// Window length in samples (at most `n_fft`), e.g. 400.
    pub win_length: usize,
    /// Samples between frames, e.g. 160 (10 ms).
    pub hop_length: usize,
    /// Lowest filter edge in Hz, e.g. 0.
    pub f_min: f32,
    /// Highest filter edge in Hz (at most half the sample rate), e.g. 8000.
    pub f_max: f32,
    /// HTK or Slaney.
    pub scale: MelScale,
    /// Slaney area normalisation of each filter (2 / its width in Hz).
    pub slaney_norm: bool,
}

impl Default for MelConfig {
    /// 40 HTK bands of 25 ms frames every 10 ms, 0–8 kHz: the Speech Commands recipes' front-end.
    fn default() -> Self {
        Self {
            n_mels: 40,
            n_fft: 400,
            win_length: 400,
            hop_length: 160,
            f_min: 0.0,
            f_max: 8000.0,
            scale: MelScale::Htk,
            slaney_norm: false,
        }
    }
}

impl MelConfig {
    /// Checks every field against `rate`; the error names the field.
    pub fn validate(&self, rate: u32) -> Result<()> {
        let f = |name: &str, msg: String| Err(Error::config(&format!("features.{name}"), msg));
        if !(40..=128).contains(&self.n_mels) {
            return f("n_mels", format!("must be in 40..=128, got {}", self.n_mels));
        }
        if !(16..=65_536).contains(&self.n_fft) {
            return f("n_fft", format!("must be in 16..=65536, got {}", self.n_fft));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return f("win_length", format!("must be in 1..={} (n_fft), got {}", self.n_fft, self.win_length));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return f("hop_length", format!("must be in 1..={} (n_fft), got {}", self.n_fft, self.hop_length));
        }
        let nyquist = rate as f32 / 2.0;
        if !(self.f_min >= 0.0 && self.f_min < self.f_max && self.f_max <= nyquist) {
            return f("f_max", format!("need 0 <= f_min < f_max <= {nyquist} Hz, got {}..{}", self.f_min, self.f_max));
        }
        Ok(())
    }

    /// Frames for a clip of `n` samples: 1 + n / hop.
    pub fn frames(&self, n: usize) -> usize {
        1 + n / self.hop_length.max(1)
    }
}

fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            if f < min_log_hz {
                f / f_sp
            } else {
                min_log_hz / f_sp + (f / min_log_hz).ln() / (6.4f64.ln() / 27.0)
            }
        }
    }
}

fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let min_log_mel = min_log_hz / f_sp;
            if m < min_log_mel {
                m * f_sp
            } else {
                min_log_hz * ((6.4f64.ln() / 27.0) * (m - min_log_mel)).exp()
            }
        }
    }
}

/// The mel filterbank (n_mels, n_fft / 2 + 1), row by row.
pub fn filterbank(cfg: &MelConfig, rate: u32) -> Vec<f32> {
    let n_freqs = cfg.n_fft / 2 + 1;
    let (lo, hi) = (hz_to_mel(f64::from(cfg.f_min), cfg.scale), hz_to_mel(f64::from(cfg.f_max), cfg.scale));
    let pts: Vec<f64> = (0..cfg.n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (cfg.n_mels + 1) as f64, cfg.scale))
        .collect();
    let mut fb = vec![0f32; cfg.n_mels * n_freqs];
    for m in 0..cfg.n_mels {
        let (l, c, r) = (pts[m], pts[m + 1], pts[m + 2]);
        let norm = if cfg.slaney_norm { 2.0 / (r - l) } else { 1.0 };
        for k in 0..n_freqs {
            let f = f64::from(rate) / 2.0 * k as f64 / (n_freqs - 1) as f64;
            let w = ((f - l) / (c - l)).min((r - f) / (r - c)).max(0.0);
            fb[m * n_freqs + k] = (w * norm) as f32;
        }
    }
    fb
}

/// A reusable extractor: the FFT plan, window and filters made once.
pub struct LogMel {
    cfg: MelConfig,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    window: Vec<f32>,
    fb: Vec<f32>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel").field("cfg", &self.cfg).finish()
    }
}

impl LogMel {
    /// An extractor for clips at `rate` Hz.
    pub fn new(cfg: &MelConfig, rate: u32) -> Result<Self> {
        cfg.validate(rate)?;
        let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(cfg.n_fft);
        // A periodic Hann window of win_length, centred in n_fft (torch.stft's padding).
        let off = (cfg.n_fft - cfg.win_length) / 2;
        let mut window = vec![0f32; cfg.n_fft];
        for i in 0..cfg.win_length {
            let t = 2.0 * std::f64::consts::PI * i as f64 / cfg.win_length as f64;
            window[off + i] = (0.5 - 0.5 * t.cos()) as f32;
        }
        Ok(Self { cfg: cfg.clone(), fft, window, fb: filterbank(cfg, rate) })
    }

    /// The mel power spectrogram of `x`: (frames, n_mels), frame by frame.
    pub fn power(&self, x: &[f32]) -> Vec<f32> {
        let (n_fft, hop, n_mels) = (self.cfg.n_fft, self.cfg.hop_length, self.cfg.n_mels);
        let pad = n_fft / 2;
        // Centred: reflect (without repeating the edge) where the clip allows, else zeros.
        let at = |i: isize| -> f32 {
            let n = x.len() as isize;
            let j = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            if (0..n).contains(&j) {
                x[j as usize]
            } else {
                0.0
            }
        };
        let frames = self.cfg.frames(x.len());
        let n_freqs = n_fft / 2 + 1;
        let mut input = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; n_freqs];
        let mut out = vec![0f32; frames * n_mels];
        for t in 0..frames {
            let start = (t * hop) as isize - pad as isize;
            for (k, v) in input.iter_mut().enumerate() {
                *v = at(start + k as isize) * self.window[k];
            }
            self.fft.process_with_scratch(&mut input, &mut spec, &mut scratch).expect("buffers sized by the plan");
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.norm_sqr();
            }
            for (m, o) in out[t * n_mels..(t + 1) * n_mels].iter_mut().enumerate() {
                *o = crate::ops::dot(&self.fb[m * n_freqs..(m + 1) * n_freqs], &power);
            }
        }
        out
    }

    /// ln(mel power + 1e-6): (frames, n_mels).
    pub fn log_mel(&self, x: &[f32]) -> Vec<f32> {
        let mut p = self.power(x);
        p.iter_mut().for_each(|v| *v = (*v + 1e-6).ln());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scales invert, and the HTK and Slaney filters peak at 1 (unnormalised).
    #[test]
    fn scales_invert_and_filters_are_triangles() {
        for scale in [MelScale::Htk, MelScale::Slaney] {
            for f in [0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0] {
                assert!((mel_to_hz(hz_to_mel(f, scale), scale) - f).abs() < 1e-6, "{scale:?} {f}");
            }
            let cfg = MelConfig { scale, ..Default::default() };
            let fb = filterbank(&cfg, 16_000);
            assert_eq!(fb.len(), 40 * 201);
            for m in 0..40 {
                let row = &fb[m * 201..(m + 1) * 201];
                let peak = row.iter().cloned().fold(0f32, f32::max);
                assert!(peak > 0.3 && peak <= 1.0, "{scale:?} band {m}: {peak}");
            }
        }
        assert!(MelConfig { n_mels: 20, ..Default::default() }.validate(16_000).is_err());
        assert!(MelConfig { f_max: 9000.0, ..Default::default() }.validate(16_000).is_err());
    }

    /// Filters and mel power spectrograms equal librosa's (with torchaudio's
    /// centred, reflect-padded framing) on `tools/make_audio_fixtures.py`'s signal.
    #[test]
    fn matches_librosa() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio_mel.safetensors");
        let fx = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
        let get = |k: &str| fx[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let x = get("input.signal");
        let htk = MelConfig::default();
        let slaney = MelConfig {
            n_mels: 80,
            n_fft: 512,
            win_length: 400,
            hop_length: 128,
            f_min: 20.0,
            f_max: 7600.0,
            scale: MelScale::Slaney,
            slaney_norm: true,
        };
        for (name, cfg) in [("htk40", htk), ("slaney80", slaney)] {
            let close = |got: &[f32], want: &[f32], what: &str| {
                assert_eq!(got.len(), want.len(), "{name} {what}");
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    let err = (g - w).abs();
                    // Relative where the value matters, absolute (to the largest) elsewhere.
                    assert!(err <= 1e-5 * scale || err <= 1e-3 * w.abs(), "{name} {what}[{i}]: {g} vs {w}");
                }
            };
            close(&filterbank(&cfg, 16_000), &get(&format!("expected.{name}.filters")), "filters");
            let lm = LogMel::new(&cfg, 16_000).unwrap();
            close(&lm.power(&x), &get(&format!("expected.{name}.power")), "power");
        }
    }

    /// A 1 kHz tone puts its energy in the band around 1 kHz.
    #[test]
    fn a_tone_lights_its_band() {
        let x: Vec<f32> =
            (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin()).collect();
        let lm = LogMel::new(&MelConfig::default(), 16_000).unwrap();
        let p = lm.power(&x);
        assert_eq!(p.len(), 101 * 40);
        let frame = &p[50 * 40..51 * 40];
        let best = (0..40).max_by(|&a, &b| frame[a].total_cmp(&frame[b])).unwrap();
        let pts: Vec<f64> =
            (0..42).map(|i| mel_to_hz(hz_to_mel(8000.0, MelScale::Htk) * i as f64 / 41.0, MelScale::Htk)).collect();
        assert!(pts[best] < 1000.0 && 1000.0 < pts[best + 2], "band {best}: {}..{}", pts[best], pts[best + 2]);
    }
}
