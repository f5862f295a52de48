#!/usr/bin/env python3
"""Parity fixture for shiftlm's log-mel front-end (src/data/audio/mel.rs).

librosa computes the mel filterbanks and mel power spectrograms of a fixed
signal (a chirp, two tones and seeded noise, 0.37 s at 16 kHz, so the last
frame is partial) with torchaudio's framing: centred frames, reflect padding,
a periodic Hann window, power 2. Two configurations:

  htk40      40 bands, HTK scale, no normalisation, 400-sample frames every 160
  slaney80   80 bands, Slaney scale and area normalisation, 512-point FFT of
             400-sample windows every 128, 20 Hz - 7.6 kHz

Writes tests/fixtures/audio_mel.safetensors: input.signal, and per
configuration expected.<name>.filters (n_mels, n_fft/2+1) and
expected.<name>.power (frames, n_mels). Run from the repository root:

  python3 tools/make_audio_fixtures.py        (needs librosa, numpy, safetensors)
"""
import pathlib

import librosa
import numpy as np
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SR = 16_000

CONFIGS = {
    "htk40": dict(n_mels=40, n_fft=400, win_length=400, hop_length=160, fmin=0.0, fmax=8000.0, htk=True, norm=None),
    "slaney80": dict(n_mels=80, n_fft=512, win_length=400, hop_length=128, fmin=20.0, fmax=7600.0, htk=False, norm="slaney"),
}


def main():
    rng = np.random.default_rng(5)
    t = np.arange(int(0.37 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 * t + 4000 * t**2)) + 0.2 * np.sin(2 * np.pi * 440 * t)
    x += 0.1 * np.sin(2 * np.pi * 3100 * t) + 0.05 * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    tensors = {"input.signal": x}
    for name, c in CONFIGS.items():
        fb = librosa.filters.mel(sr=SR, n_fft=c["n_fft"], n_mels=c["n_mels"], fmin=c["fmin"], fmax=c["fmax"], htk=c["htk"], norm=c["norm"])
        spec = np.abs(
            librosa.stft(x.astype(np.float64), n_fft=c["n_fft"], hop_length=c["hop_length"], win_length=c["win_length"], window="hann", center=True, pad_mode="reflect")
        ) ** 2
        power = (fb.astype(np.float64) @ spec).T  # (frames, n_mels)
        tensors[f"expected.{name}.filters"] = np.ascontiguousarray(fb, dtype=np.float32)
        tensors[f"expected.{name}.power"] = np.ascontiguousarray(power, dtype=np.float32)  # .T is a view
        print(f"{name}: filters {fb.shape}, power {power.shape}")
    save_file(tensors, str(OUT / "audio_mel.safetensors"))


if __name__ == "__main__":
    main()
