//! Audio for speech recognition: WAV files read as 16 kHz mono
//! ([`wav`]), and log-mel spectrograms ([`mel`]), the frames an acoustic
//! model reads.

pub mod augment;
pub mod corpus;
pub mod mel;
pub mod speech;
pub mod wav;

/// The sample rate every clip is resampled to, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;
