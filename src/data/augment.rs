//! Image augmentation, the seed's input shift: each training image moved by
//! a random whole-pixel offset in [−K, K]² (`shift=K`, like RandomCrop with
//! padding K) and optionally turned by a random angle in [−DEG, DEG]
//! (`rotate=DEG`, bilinear sampling about the centre). The shift itself is
//! [`crate::data::shift::translate_image`]. Offsets and angles come from the
//! caller's seeded stream, which the trainer keeps in its resumable state.

use crate::data::shift::{translate_image, Fill};
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How training images are perturbed; the default changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Largest offset in pixels, each axis (0: no shift).
    #[serde(default)]
    pub shift: usize,
    /// Largest rotation in degrees, either way (0: none).
    #[serde(default)]
    pub rotate: f32,
    /// What fills pixels brought in from outside.
    #[serde(default)]
    pub mode: Fill,
}

/// The largest shift accepted: beyond this an image is mostly fill.
pub const MAX_SHIFT: usize = 64;

impl Augment {
    /// Parses `--augment`: `shift=K[,rotate=DEG][,mode=zero|wrap]` in any
    /// order, or `none`.
    pub fn parse(s: &str) -> Result<Augment> {
        let mut a = Augment::default();
        let bad = |msg: String| Error::config("augment", msg);
        if s.trim() == "none" {
            return Ok(a);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE; write e.g. shift=3,rotate=10,mode=zero")))?;
            match k.trim() {
                "shift" => {
                    a.shift = v.trim().parse().map_err(|_| bad(format!("shift={v}: not a whole number of pixels")))?
                }
                "rotate" => {
                    a.rotate = v.trim().parse().map_err(|_| bad(format!("rotate={v}: not a number of degrees")))?
                }
                "mode" => {
                    a.mode = match v.trim() {
                        "zero" => Fill::Zero,
                        "wrap" => Fill::Wrap,
                        other => return Err(bad(format!("mode={other}: use zero or wrap"))),
                    }
                }
                other => return Err(bad(format!("unknown key {other:?}; the keys are shift, rotate and mode"))),
            }
        }
        a.validate()?;
        Ok(a)
    }

    /// Checks the ranges (the error names `augment`).
    pub fn validate(&self) -> Result<()> {
        if self.shift > MAX_SHIFT {
            return Err(Error::config("augment", format!("shift={} is more than {MAX_SHIFT} pixels", self.shift)));
        }
        if !(self.rotate.is_finite() && (0.0..=180.0).contains(&self.rotate)) {
            return Err(Error::config("augment", format!("rotate={} must be 0..=180 degrees", self.rotate)));
        }
        Ok(())
    }

    /// Whether it leaves every image as it is.
    pub fn is_identity(&self) -> bool {
        self.shift == 0 && self.rotate == 0.0
    }

    /// One perturbed copy of `img` (`h` rows of `w` pixels), drawing the angle
    /// (when rotating) and then the offsets from `rng`.
    pub fn apply(&self, img: &[f32], w: usize, h: usize, rng: &mut Rng) -> Vec<f32> {
        let turned;
        let img = if self.rotate > 0.0 {
            turned = rotate(img, w, h, rng.uniform(-self.rotate, self.rotate), self.mode);
            &turned[..]
        } else {
            img
        };
        if self.shift == 0 {
            return img.to_vec();
        }
        let k = self.shift as i64;
        let dx = rng.below(2 * self.shift + 1) as i64 - k;
        let dy = rng.below(2 * self.shift + 1) as i64 - k;
        translate_image(img, w, h, dx, dy, self.mode)
    }
}

/// `img` turned `degrees` counter-clockwise about its centre, by bilinear
/// sampling; points outside are filled as `mode` says.
pub fn rotate(img: &[f32], w: usize, h: usize, degrees: f32, mode: Fill) -> Vec<f32> {
    let (s, c) = (degrees.to_radians() as f64).sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (wi, hi) = (w as i64, h as i64);
    let at = |x: i64, y: i64| -> f32 {
        let (x, y) = match mode {
            Fill::Zero if x < 0 || y < 0 || x >= wi || y >= hi => return 0.0,
            Fill::Zero => (x, y),
            Fill::Wrap => (x.rem_euclid(wi.max(1)), y.rem_euclid(hi.max(1))),
        };
        img[(y * wi + x) as usize]
    };
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            // The source of output (x, y): turned back by the angle. Image
            // rows grow downwards, so counter-clockwise on screen is a
            // clockwise turn in these coordinates.
            let (u, v) = (x as f64 - cx, y as f64 - cy);
            let (sx, sy) = (c * u - s * v + cx, s * u + c * v + cy);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            out[y * w + x] = (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
                + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_and_refuses_nonsense() {
        assert_eq!(Augment::parse("none").unwrap(), Augment::default());
        let a = Augment::parse("shift=3, rotate=10,mode=wrap").unwrap();
        assert_eq!(a, Augment { shift: 3, rotate: 10.0, mode: Fill::Wrap });
        for (bad, needle) in [
            ("shift", "KEY=VALUE"),
            ("shift=-1", "whole number"),
            ("shift=65", "more than 64"),
            ("rotate=200", "0..=180"),
            ("rotate=nan", "0..=180"),
            ("mode=mirror", "zero or wrap"),
            ("scale=2", "unknown key"),
        ] {
            let e = Augment::parse(bad).unwrap_err().to_string();
            assert!(e.contains("augment") && e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn rotation_is_exact_at_right_angles_and_augmentation_is_seeded() {
        // 3×3 with a lone pixel at the top middle (1, 0).
        let mut img = vec![0f32; 9];
        img[1] = 1.0;
        assert_eq!(rotate(&img, 3, 3, 0.0, Fill::Zero), img);
        let r = rotate(&img, 3, 3, 90.0, Fill::Zero);
        // Counter-clockwise by 90°: the top middle goes to the left middle.
        let near = |v: &[f32], i: usize| (v[i] - 1.0).abs() < 1e-5 && v.iter().sum::<f32>() - 1.0 < 1e-4;
        assert!(near(&r, 3), "{r:?}");
        let a = Augment { shift: 2, rotate: 15.0, mode: Fill::Zero };
        let img: Vec<f32> = (0..64).map(|i| (i % 7) as f32).collect();
        let (mut r1, mut r2) = (Rng::new(5), Rng::new(5));
        let x1: Vec<Vec<f32>> = (0..4).map(|_| a.apply(&img, 8, 8, &mut r1)).collect();
        let x2: Vec<Vec<f32>> = (0..4).map(|_| a.apply(&img, 8, 8, &mut r2)).collect();
        assert_eq!(x1, x2);
        assert!(x1.iter().any(|x| *x != img));
        assert_eq!(Augment::default().apply(&img, 8, 8, &mut r1), img);
        // Shifts alone stay within [−K, K]²: the mass moves, never scales.
        let only = Augment { shift: 1, ..Default::default() };
        let mut dot = vec![0f32; 25];
        dot[12] = 1.0;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let s = only.apply(&dot, 5, 5, &mut r1);
            let at = s.iter().position(|&v| v == 1.0).unwrap();
            seen.insert(at);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [6, 7, 8, 11, 12, 13, 16, 17, 18]);
    }
}
