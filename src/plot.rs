//! Loss curves as SVG: training loss (raw and smoothed) and validation loss
//! on a log scale above, the learning rate below. Read from `metrics.jsonl`.
//! And image classifiers' accuracy against the input shift, one line per
//! run, as PNG ([`shift_curves_png`]).

use crate::eval::image::ShiftPoint;
use crate::train::metrics::Record;
use std::fmt::Write;

/// The file a trained image classifier's test report is kept in, in its run
/// folder, for `shiftlm plot --shift-curve` to overlay runs.
pub const SHIFT_REPORT: &str = "shift_curve.json";

/// Accuracy (%) against shift (pixels) for each `(label, curve)`, as PNG;
/// `y_label` says which accuracy (e.g. "test accuracy (%)").
pub fn shift_curves_png(curves: &[(String, Vec<ShiftPoint>)], title: &str, y_label: &str) -> Vec<u8> {
    shift_curves_png_x(curves, title, "shift (pixels, random direction)", y_label)
}

/// Speech models' recognition (keyword accuracy or exact match, %) against
/// the time offset, one line per `(label, report)`; a single report also
/// gets a line for its unseen engine.
pub fn speech_shift_png(reports: &[(String, crate::eval::speech::SpeechReport)], title: &str) -> Vec<u8> {
    let to_points = |r: &crate::eval::speech::SpeechReport| -> Vec<ShiftPoint> {
        r.shift_curve.iter().map(|p| ShiftPoint { shift: p.shift_ms as usize, accuracy: p.accuracy }).collect()
    };
    let mut curves = Vec::new();
    for (label, r) in reports {
        let clean = r.accuracy.or(r.exact_match).unwrap_or(f64::NAN);
        curves.push((format!("{label} (clean {:.1}%)", 100.0 * clean), to_points(r)));
        if let Some(u) = r.unseen_engine.as_ref().filter(|_| reports.len() == 1) {
            let clean = u.accuracy.or(u.exact_match).unwrap_or(f64::NAN);
            curves.push((format!("{label}, unseen engine (clean {:.1}%)", 100.0 * clean), to_points(u)));
        }
    }
    let y = if reports.iter().all(|(_, r)| r.accuracy.is_some()) {
        "keyword accuracy (%)"
    } else {
        "accuracy (%; transcripts: exact match)"
    };
    shift_curves_png_x(&curves, title, "offset from the centre (ms, random direction)", y)
}

/// [`shift_curves_png`] with its own x-axis label.
pub fn shift_curves_png_x(curves: &[(String, Vec<ShiftPoint>)], title: &str, x_label: &str, y_label: &str) -> Vec<u8> {
    // Blue, red, green, orange, purple, grey (indices into the palette).
    const ORDER: [usize; 6] = [0, 3, 2, 1, 4, 9];
    let series = curves
        .iter()
        .enumerate()
        .map(|(i, (label, pts))| crate::chart::Series {
            label: label.as_str(),
            points: pts.iter().map(|p| (p.shift as f64, 100.0 * p.accuracy)).collect(),
            color: crate::chart::PALETTE[ORDER[i % ORDER.len()]],
            markers: true,
        })
        .collect();
    crate::chart::Chart { title, x_label, y_label, series, vlines: Vec::new(), x_dates: false, width: 900, height: 520 }
        .to_png()
}

const W: f64 = 900.0;
const PLOT_L: f64 = 80.0;
const PLOT_R: f64 = 860.0;

struct Panel {
    top: f64,
    bottom: f64,
    y_min: f64,
    y_max: f64,
    log: bool,
}

impl Panel {
    fn y(&self, v: f64) -> f64 {
        let f = |v: f64| if self.log { v.max(1e-12).log10() } else { v };
        let t = (f(v) - f(self.y_min)) / (f(self.y_max) - f(self.y_min)).max(1e-12);
        self.bottom - t * (self.bottom - self.top)
    }
}

fn nice_ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if log {
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let mut t: Vec<f64> = Vec::new();
        for e in a..=b {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(e);
                if v >= lo * 0.999 && v <= hi * 1.001 {
                    t.push(v);
                }
            }
        }
        if t.len() >= 2 {
            return t;
        }
        // A range narrower than 1-2-5 steps (a loss between 2.1 and 4.6,
        // say): at least four evenly spaced values, drawn where they fall on
        // the log scale.
        let t = nice_ticks(lo, hi, false);
        if t.len() >= 4 || t.len() < 2 {
            return t;
        }
        let step = (t[1] - t[0]) / 2.0;
        let first = (lo / step).ceil() as i64;
        return (first..).map(|k| k as f64 * step).take_while(|v| *v <= hi + 1e-12).collect();
    }
    let span = (hi - lo).max(1e-12);
    let step = 10f64.powf((span / 4.0).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * step).find(|s| span / s <= 5.0).unwrap_or(step);
    let mut v = (lo / step).ceil() * step;
    let mut t = Vec::new();
    while v <= hi + 1e-12 {
        t.push(v);
        v += step;
    }
    t
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&v.abs()) {
        format!("{v:.0e}")
    } else {
        format!("{}", (v * 1e4).round() / 1e4)
    }
}

fn polyline(out: &mut String, pts: &[(f64, f64)], color: &str, width: f64, opacity: f64) {
    if pts.is_empty() {
        return;
    }
    let p: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" stroke-opacity="{opacity}" points="{}"/>"#,
        p.join(" ")
    );
}

/// Renders the records of one run as an SVG document titled `title`.
pub fn render_svg(records: &[Record], title: &str) -> String {
    let train: Vec<(f64, f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Train(m) if m.loss.is_finite() => Some((m.step as f64, m.loss as f64, m.lr)),
            _ => None,
        })
        .collect();
    let valid: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Eval(e) => Some((e.step as f64, e.valid_loss)),
            _ => None,
        })
        .collect();
    let max_step = train.iter().map(|t| t.0).chain(valid.iter().map(|v| v.0)).fold(1.0, f64::max);
    let x = |s: f64| PLOT_L + (s / max_step) * (PLOT_R - PLOT_L);
    let losses = train.iter().map(|t| t.1).chain(valid.iter().map(|v| v.1)).filter(|v| *v > 0.0);
    let (lo, hi) = losses.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo * 0.9, hi * 1.1) } else { (0.1, 10.0) };
    let loss_panel = Panel { top: 50.0, bottom: 390.0, y_min: lo, y_max: hi, log: true };
    let lr_hi = train.iter().map(|t| t.2).fold(0.0, f64::max).max(1e-12) * 1.1;
    let lr_panel = Panel { top: 440.0, bottom: 560.0, y_min: 0.0, y_max: lr_hi, log: false };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="620" viewBox="0 0 {W} 620" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#, W / 2.0, xml_escape(title));
    axes(&mut s, [(&loss_panel, "loss (log scale)"), (&lr_panel, "learning rate")], max_step, &x);
    curves(&mut s, &train, &valid, (&loss_panel, &lr_panel), &x);
    legend(&mut s, train.len());
    s.push_str("</svg>\n");
    s
}

/// Each panel's frame, grid and y labels, and the step axis below them.
fn axes(s: &mut String, panels: [(&Panel, &str); 2], max_step: f64, x: &dyn Fn(f64) -> f64) {
    for (p, label) in panels {
        let _ = writeln!(
            s,
            r##"<rect x="{PLOT_L}" y="{}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
            p.top,
            PLOT_R - PLOT_L,
            p.bottom - p.top
        );
        for t in nice_ticks(p.y_min, p.y_max, p.log) {
            let y = p.y(t);
            let _ = writeln!(
                s,
                r##"<line x1="{PLOT_L}" x2="{PLOT_R}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                PLOT_L - 6.0,
                y + 4.0,
                fmt_num(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{label}</text>"#,
            (p.top + p.bottom) / 2.0
        );
    }
    for t in nice_ticks(0.0, max_step, false) {
        let _ = writeln!(s, r#"<text x="{:.1}" y="578" text-anchor="middle">{}</text>"#, x(t), fmt_num(t));
    }
    let _ = writeln!(s, r#"<text x="{}" y="605" text-anchor="middle">step</text>"#, (PLOT_L + PLOT_R) / 2.0);
}

/// Training loss (per step, faint, and smoothed) and validation loss above,
/// the learning rate below.
fn curves(
    s: &mut String,
    train: &[(f64, f64, f64)],
    valid: &[(f64, f64)],
    (loss_panel, lr_panel): (&Panel, &Panel),
    x: &dyn Fn(f64) -> f64,
) {
    let raw: Vec<(f64, f64)> = train.iter().map(|t| (x(t.0), loss_panel.y(t.1))).collect();
    polyline(s, &raw, "#1f77b4", 1.0, 0.3);
    let losses: Vec<f64> = train.iter().map(|t| t.1).collect();
    let smooth: Vec<(f64, f64)> = centred(&losses, half_window(losses.len()))
        .iter()
        .zip(train)
        .map(|(v, t)| (x(t.0), loss_panel.y(*v)))
        .collect();
    polyline(s, &smooth, "#1f77b4", 2.0, 1.0);
    let vpts: Vec<(f64, f64)> = valid.iter().map(|v| (x(v.0), loss_panel.y(v.1))).collect();
    polyline(s, &vpts, "#d62728", 2.0, 1.0);
    for (px, py) in &vpts {
        let _ = writeln!(s, r##"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="#d62728"/>"##);
    }
    let lr: Vec<(f64, f64)> = train.iter().map(|t| (x(t.0), lr_panel.y(t.2))).collect();
    polyline(s, &lr, "#2ca02c", 2.0, 1.0);
}

/// Half the window of the smoothed loss curve over `n` logged points: a
/// fortieth of them, 1 to 50.
fn half_window(n: usize) -> usize {
    (n / 40).clamp(1, 50)
}

/// Centred smoothing of a loss curve in log space (the plot's scale): each
/// point becomes the value at that point of the least-squares line through
/// the log losses up to `k` points either side. Inside the curve that is the
/// centred geometric mean; at the ends, where the window is one-sided, the
/// line's slope keeps the curve from bending towards the interior's level.
/// Unlike a trailing average it does not lag behind a falling loss, and it
/// follows an exponential decay exactly.
fn centred(v: &[f64], k: usize) -> Vec<f64> {
    // A loss of zero (or below) cannot sit on a log scale: it counts as the
    // smallest positive one.
    let floor = v.iter().copied().filter(|&x| x > 0.0).fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() { floor } else { 1e-30 };
    let logs: Vec<f64> = v.iter().map(|x| x.max(floor).ln()).collect();
    (0..v.len())
        .map(|i| {
            let w = &logs[i.saturating_sub(k)..(i + k + 1).min(v.len())];
            // x relative to point i; the line's value at x = 0.
            let x0 = i.saturating_sub(k) as f64 - i as f64;
            let n = w.len() as f64;
            let mx = x0 + (n - 1.0) / 2.0;
            let my = w.iter().sum::<f64>() / n;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for (j, y) in w.iter().enumerate() {
                let dx = x0 + j as f64 - mx;
                sxy += dx * (y - my);
                sxx += dx * dx;
            }
            let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            (my - slope * mx).exp()
        })
        .collect()
}

/// What each colour is; `n` logged training points.
fn legend(s: &mut String, n: usize) {
    let smooth = format!("train loss: centred fit of {} points; faint: raw", 2 * half_window(n) + 1);
    let legend = [("#1f77b4", smooth.as_str()), ("#d62728", "validation loss"), ("#2ca02c", "learning rate")];
    for (i, (c, name)) in legend.iter().enumerate() {
        let y = 66.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
            PLOT_R - 350.0,
            PLOT_R - 325.0,
            PLOT_R - 318.0,
            y + 4.0
        );
    }
}

fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::metrics::{EvalRecord, StepMetrics};

    #[test]
    fn the_smoothed_curve_is_centred_and_follows_power_laws() {
        // An exponential decay is a line in log space: reproduced exactly, ends included.
        let decay: Vec<f64> = (0..200).map(|i| 3.0 * (-0.01 * f64::from(i)).exp()).collect();
        for (a, b) in centred(&decay, 5).iter().zip(&decay[..]) {
            assert!((a / b - 1.0).abs() < 1e-12, "{a} vs {b}");
        }
        let law: Vec<f64> = (1..=200).map(|s| 3.0 * f64::from(s).powf(-0.5)).collect();
        // Alternating noise of ±10% around a power law averages out once the
        // curve bends slowly, where a trailing average would lag above it.
        let noisy: Vec<f64> =
            law.iter().enumerate().map(|(i, v)| v * if i % 2 == 0 { 1.1 } else { 1.0 / 1.1 }).collect();
        let sm = centred(&noisy, 5);
        for i in 20..200 {
            // One-sided at the end: the noise weighs more.
            let tol = if i < 195 { 0.02 } else { 0.06 };
            assert!((sm[i] / law[i] - 1.0).abs() < tol, "{i}: {} vs {}", sm[i], law[i]);
        }
        // Inside, the centred geometric mean.
        let mean = (noisy[90..=100].iter().map(|v| v.ln()).sum::<f64>() / 11.0).exp();
        assert!((sm[95] / mean - 1.0).abs() < 1e-12);
        assert_eq!(centred(&[], 3), Vec::<f64>::new());
        assert_eq!(centred(&[2.0], 3), vec![2.0]);
        assert_eq!((half_window(10), half_window(400), half_window(100_000)), (1, 10, 50));
    }

    #[test]
    fn renders_both_curves() {
        let mut recs: Vec<Record> = (1..=100)
            .map(|step| {
                Record::Train(StepMetrics {
                    step,
                    epoch: 0,
                    loss: 3.0 / step as f32,
                    lr: 1e-3,
                    grad_norm: 1.0,
                    tokens: 10,
                    tokens_per_s: 1.0,
                    elapsed_s: 1.0,
                })
            })
            .collect();
        recs.push(Record::Eval(EvalRecord {
            step: 50,
            valid_loss: 0.1,
            valid_token_accuracy: Some(0.9),
            valid_bleu: None,
        }));
        recs.push(Record::Eval(EvalRecord {
            step: 100,
            valid_loss: 0.05,
            valid_token_accuracy: Some(0.95),
            valid_bleu: None,
        }));
        let svg = render_svg(&recs, "run <x>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("run &lt;x&gt;"));
        assert!(svg.contains("centred fit of 5 points"), "the legend says how the curve is smoothed");
        // A narrow range between 1-2-5 ticks still gets labels.
        assert_eq!(nice_ticks(2.1, 4.6, true), [2.5, 3.0, 3.5, 4.0, 4.5]);
        assert_eq!(nice_ticks(0.5, 30.0, true), [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
    }
}
