//! WAV files through `hound`: 8/16/24/32-bit integer and 32-bit float PCM,
//! any number of channels (mixed down to mono by their mean) and any sample
//! rate from 1 kHz to 384 kHz (resampled to 16 kHz with `rubato`'s FFT
//! resampler, band-limited). A file that is not a WAV, is cut short, or
//! holds more than [`MAX_SECONDS`] is refused with its name, before the
//! samples are allocated.

use super::SAMPLE_RATE;
use crate::error::{Error, Result};
use std::path::Path;

/// The longest clip read, in seconds (an hour).
pub const MAX_SECONDS: u64 = 3600;

/// Sample rates accepted, in Hz.
pub const RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// The samples of `path` as 16 kHz mono in [−1, 1].
pub fn read(path: &Path) -> Result<Vec<f32>> {
    let bad = |msg: String| Error::bad_file(path, msg);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = hound::WavReader::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("is not a readable WAV file: {e}")))?;
    let spec = r.spec();
    if !RATES.contains(&spec.sample_rate) {
        return Err(bad(format!("sample rate {} Hz is outside 1000..=384000", spec.sample_rate)));
    }
    if spec.channels == 0 {
        return Err(bad("has no channels".into()));
    }
    let frames = u64::from(r.duration());
    if frames > MAX_SECONDS * u64::from(spec.sample_rate) {
        return Err(bad(format!(
            "is {} s long; clips of at most {MAX_SECONDS} s are read",
            frames / u64::from(spec.sample_rate)
        )));
    }
    let ch = usize::from(spec.channels);
    // Each sample scaled to [−1, 1] by its format's full scale.
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => r.samples::<f32>().collect::<std::result::Result<_, _>>(),
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            r.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect()
        }
        (f, b) => {
            return Err(bad(format!("holds {b}-bit {f:?} samples; 8/16/24/32-bit integer or 32-bit float are read")))
        }
    }
    .map_err(|e| bad(format!("is cut short or damaged: {e}")))?;
    if interleaved.is_empty() {
        return Err(bad("holds no samples".into()));
    }
    if let Some(i) = interleaved.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("sample {} of channel {} is not finite", i / ch, i % ch)));
    }
    if interleaved.len() != frames as usize * ch {
        return Err(bad(format!(
            "holds {} samples where its header promises {}",
            interleaved.len(),
            frames as usize * ch
        )));
    }
    let mono: Vec<f32> = interleaved.chunks_exact(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect();
    resample(&mono, spec.sample_rate, SAMPLE_RATE).map_err(|e| bad(format!("resampling to 16 kHz: {e}")))
}

/// `x` at `from` Hz as `to` Hz: rubato's synchronous FFT resampler, its
/// delay removed, so that the output lines up with the input and has
/// `len · to / from` samples (rounded).
pub fn resample(x: &[f32], from: u32, to: u32) -> std::result::Result<Vec<f32>, String> {
    use rubato::Resampler;
    if from == to || x.is_empty() {
        return Ok(x.to_vec());
    }
    let mut r = rubato::FftFixedInOut::<f32>::new(from as usize, to as usize, 1024, 1).map_err(|e| e.to_string())?;
    let want = ((x.len() as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from)) as usize;
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(want + delay + r.output_frames_max());
    let mut pos = 0;
    while pos + r.input_frames_next() <= x.len() {
        let n = r.input_frames_next();
        out.extend_from_slice(&r.process(&[&x[pos..pos + n]], None).map_err(|e| e.to_string())?[0]);
        pos += n;
    }
    // The rest, then zeros until the delayed output is complete.
    // (None when nothing is left: rubato refuses an empty slice.)
    let mut tail = (pos < x.len()).then(|| [&x[pos..]]);
    while out.len() < want + delay {
        let o = r.process_partial(tail.take().as_ref().map(|t| &t[..]), None).map_err(|e| e.to_string())?;
        out.extend_from_slice(&o[0]);
    }
    Ok(out[delay..delay + want].to_vec())
}

/// Writes `samples` (in [−1, 1], clipped) as a 16-bit mono WAV at `rate` Hz.
pub fn write(path: &Path, samples: &[f32], rate: u32) -> Result<()> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let io = |e: hound::Error| Error::bad_file(path, format!("writing WAV: {e}"));
    let mut w = hound::WavWriter::create(path, spec).map_err(io)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(io)?;
    }
    w.finalize().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, secs: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Every sample format reads as the same tone, to its precision.
    #[test]
    fn reads_every_format_and_mixes_channels() {
        let d = tempfile::tempdir().unwrap();
        let x = tone(16_000, 0.1, 440.0);
        for (bits, fmt) in [
            (8, hound::SampleFormat::Int),
            (16, hound::SampleFormat::Int),
            (24, hound::SampleFormat::Int),
            (32, hound::SampleFormat::Int),
            (32, hound::SampleFormat::Float),
        ] {
            let p = d.path().join(format!("{bits}{fmt:?}.wav"));
            let spec = hound::WavSpec { channels: 2, sample_rate: 16_000, bits_per_sample: bits, sample_format: fmt };
            let mut w = hound::WavWriter::create(&p, spec).unwrap();
            for &s in &x {
                // Left the tone, right silence: the mix is half the tone.
                match fmt {
                    hound::SampleFormat::Float => {
                        w.write_sample(s).unwrap();
                        w.write_sample(0f32).unwrap();
                    }
                    hound::SampleFormat::Int => {
                        w.write_sample((s * ((1i64 << (bits - 1)) - 1) as f32) as i32).unwrap();
                        w.write_sample(0i32).unwrap();
                    }
                }
            }
            w.finalize().unwrap();
            let y = read(&p).unwrap();
            assert_eq!(y.len(), x.len());
            let tol = if bits == 8 { 2e-2 } else { 1e-4 };
            let err = y.iter().zip(&x).map(|(a, b)| (a - b / 2.0).abs()).fold(0f32, f32::max);
            assert!(err < tol, "{bits}-bit {fmt:?}: {err}");
        }
    }

    /// 44.1 kHz and 8 kHz tones come out at 16 kHz, in phase, with their length scaled.
    #[test]
    fn resamples_to_16_khz_in_place() {
        for rate in [44_100, 8_000, 48_000] {
            let x = tone(rate, 0.5, 300.0);
            let y = resample(&x, rate, 16_000).unwrap();
            let want = tone(16_000, 0.5, 300.0);
            assert_eq!(y.len(), want.len(), "{rate}");
            // Away from the edges the resampled tone is the tone at 16 kHz.
            // (A one-sample delay would be 0.06; what remains is the filter's ripple.)
            let err = y[400..y.len() - 400].iter().zip(&want[400..]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 2e-2, "{rate} Hz: {err}");
        }
        // A clip of exactly whole input chunks (39 × 441 samples at 22.05 kHz,
        // as espeak-ng writes) leaves nothing over for the last call.
        let x = vec![0.25f32; 39 * 441];
        assert_eq!(resample(&x, 22_050, 16_000).unwrap().len(), 39 * 320);
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let not = d.path().join("not.wav");
        std::fs::write(&not, b"RIFF....WAVEfmt nonsense").unwrap();
        let e = read(&not).unwrap_err().to_string();
        assert!(e.contains("not.wav") && e.contains("not a readable WAV"), "{e}");
        let good = d.path().join("good.wav");
        write(&good, &tone(16_000, 0.2, 440.0), 16_000).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = d.path().join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.wav"), "{e}");
        let e = read(&d.path().join("missing.wav")).unwrap_err().to_string();
        assert!(e.contains("missing.wav"), "{e}");
        let empty = d.path().join("empty.wav");
        write(&empty, &[], 16_000).unwrap();
        assert!(read(&empty).unwrap_err().to_string().contains("holds no samples"));
        let slow = d.path().join("slow.wav");
        write(&slow, &[0.0; 10], 500).unwrap();
        assert!(read(&slow).unwrap_err().to_string().contains("500 Hz"));
    }
}
