//! Line charts of numeric series rendered to PNG bytes: a "nice"-tick grid with labels, title, axis labels and legend
//! drawn in an embedded 5×8 bitmap font, anti-aliased 2 px lines, encoded by the `png` crate.

/// One line of a chart: points (x, y) drawn in order; NaN y values break the line.
pub struct Series<'a> {
    /// Name shown in the legend.
    pub label: &'a str,
    /// Points in drawing order; a non-finite x or y breaks the line there.
    pub points: Vec<(f64, f64)>,
    /// RGB colour, e.g. [31, 119, 180].
    pub color: [u8; 3],
    /// Draw small square markers at each point as well as the line.
    pub markers: bool,
}

/// A line chart: series over shared axes, plus optional vertical marker lines.
pub struct Chart<'a> {
    /// Title drawn centred above the plot.
    pub title: &'a str,
    /// Label under the x axis.
    pub x_label: &'a str,
    /// Label beside the y axis, read bottom to top.
    pub y_label: &'a str,
    /// The lines, drawn in order (later ones on top) and listed in the legend.
    pub series: Vec<Series<'a>>,
    /// x positions of vertical dashed grey lines (e.g. the forecast origin).
    pub vlines: Vec<f64>,
    /// The x values are seconds since 1970-01-01 00:00 (civil time, no
    /// time zone): the x axis gets calendar ticks labelled as dates.
    pub x_dates: bool,
    /// Image width in pixels, clamped to 100..=4096.
    pub width: usize,
    /// Image height in pixels, clamped to 80..=4096.
    pub height: usize,
}

/// Ten distinct line and fill colours (matplotlib's `tab10`), for charts
/// that colour several things.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
    [23, 190, 207],
    [127, 127, 127],
];

const GRID: [u8; 3] = [228; 3];
const FRAME: [u8; 3] = [60; 3];
const INK: [u8; 3] = [25; 3];
const DASH: [u8; 3] = [120; 3];

/// Glyphs for ASCII 32..=126, 5 columns × 8 rows each: the top row is the most significant byte, the left column
/// bit 4 of each row; the last row holds descenders.
#[rustfmt::skip]
const FONT: [u64; 95] = [
    0x0000000000000000, 0x0404040404000400, 0x0A0A0A0000000000, 0x0A0A1F0A1F0A0A00, 0x040F140E051E0400, //  !"#$
    0x1819020408130300, 0x0C12140815120D00, 0x0404080000000000, 0x0204080808040200, 0x0804020202040800, // %&'()
    0x0004150E15040000, 0x0004041F04040000, 0x00000000000C0C08, 0x0000001F00000000, 0x00000000000C0C00, // *+,-.
    0x0001020408100000, 0x0E11131519110E00, 0x040C040404040E00, 0x0E11010204081F00, 0x1F02040201110E00, // /0123
    0x02060A121F020200, 0x1F101E0101110E00, 0x0608101E11110E00, 0x1F01020408080800, 0x0E11110E11110E00, // 45678
    0x0E11110F01020C00, 0x000C0C000C0C0000, 0x000C0C000C0C0800, 0x0204081008040200, 0x00001F001F000000, // 9:;<=
    0x0804020102040800, 0x0E11010204000400, 0x0E11010D15150E00, 0x0E11111F11111100, 0x1E11111E11111E00, // >?@AB
    0x0E11101010110E00, 0x1C12111111121C00, 0x1F10101E10101F00, 0x1F10101E10101000, 0x0E11101711110F00, // CDEFG
    0x1111111F11111100, 0x0E04040404040E00, 0x0702020202120C00, 0x1112141814121100, 0x1010101010101F00, // HIJKL
    0x111B151511111100, 0x1111191513111100, 0x0E11111111110E00, 0x1E11111E10101000, 0x0E11111115120D00, // MNOPQ
    0x1E11111E14121100, 0x0F10100E01011E00, 0x1F04040404040400, 0x1111111111110E00, 0x11111111110A0400, // RSTUV
    0x1111111515150A00, 0x11110A040A111100, 0x11110A0404040400, 0x1F01020408101F00, 0x0E08080808080E00, // WXYZ[
    0x0010080402010000, 0x0E02020202020E00, 0x040A110000000000, 0x000000000000001F, 0x0804020000000000, // \]^_`
    0x00000E010F110F00, 0x1010161911111E00, 0x00000E1010110E00, 0x01010D1311110F00, 0x00000E111F100E00, // abcde
    0x0609081C08080800, 0x00000E11110F010E, 0x1010161911111100, 0x04000C0404040E00, 0x020006020202120C, // fghij
    0x1010121418141200, 0x0C04040404040E00, 0x00001A1515111100, 0x0000161911111100, 0x00000E1111110E00, // klmno
    0x00001E11111E1010, 0x00000F11110F0101, 0x0000161910101000, 0x00000F100E011E00, 0x08081C0808090600, // pqrst
    0x0000111111130D00, 0x00001111110A0400, 0x0000111115150A00, 0x0000110A040A1100, 0x00001111110F010E, // uvwxy
    0x00001F0204081F00, 0x0304040804040300, 0x0404040404040400, 0x1804040204041800, 0x0000081502000000, // z{|}~
];

/// An RGB pixel buffer; writes outside it are ignored.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], a: f64) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let (i, a) = ((y as usize * self.w + x as usize) * 3, a.clamp(0.0, 1.0));
        for (p, &c) in self.px[i..i + 3].iter_mut().zip(&c) {
            *p = (f64::from(*p) * (1.0 - a) + f64::from(c) * a).round() as u8;
        }
    }

    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.blend(xx, yy, c, 1.0);
            }
        }
    }

    /// Draws `s` at `scale` from its top-left corner, or, when `up`, reading upwards from its bottom-left corner.
    fn text(&mut self, s: &str, x: i64, y: i64, scale: i64, up: bool, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let g = FONT[(ch as usize).checked_sub(32).filter(|&i| i < 95).unwrap_or(31)];
            for (row, col) in (0..8).flat_map(|r| (0..5).map(move |c| (r, c))) {
                if g >> ((7 - row) * 8 + 4 - col) & 1 == 1 {
                    let u = k as i64 * 6 + col;
                    let (px, py) =
                        if up { (x + row * scale, y - (u + 1) * scale) } else { (x + u * scale, y + row * scale) };
                    self.rect(px, py, scale, scale, c);
                }
            }
        }
    }
}

fn text_w(s: &str, scale: i64) -> i64 {
    (s.chars().count() as i64 * 6 - 1).max(0) * scale
}

/// Per-series coverage (0..=1) inside the plot rectangle, so overlapping segments of one line don't double-blend.
struct Mask {
    w: usize,
    clip: [i64; 4],
    v: Vec<f32>,
}

impl Mask {
    fn cover(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, f: impl Fn(f64, f64) -> f64) {
        let [cx0, cy0, cx1, cy1] = self.clip;
        let (xa, xb) = ((x0.floor() as i64).max(cx0), (x1.ceil() as i64).min(cx1));
        for y in (y0.floor() as i64).max(cy0)..=(y1.ceil() as i64).min(cy1) {
            for x in xa..=xb {
                let m = &mut self.v[y as usize * self.w + x as usize];
                *m = m.max(f(x as f64 + 0.5, y as f64 + 0.5) as f32);
            }
        }
    }

    /// A segment of half-width `r` (round caps), coverage from the distance of each pixel centre.
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), r: f64) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let l2 = dx * dx + dy * dy;
        let e = r + 1.0;
        self.cover(a.0.min(b.0) - e, a.1.min(b.1) - e, a.0.max(b.0) + e, a.1.max(b.1) + e, |px, py| {
            let t = if l2 > 0.0 { (((px - a.0) * dx + (py - a.1) * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
            (r + 0.5 - (px - a.0 - t * dx).hypot(py - a.1 - t * dy)).clamp(0.0, 1.0)
        });
    }

    /// A filled square of half-side `r` centred on `p`, coverage from its overlap with each pixel.
    fn square(&mut self, p: (f64, f64), r: f64) {
        let ov = |c: f64, q: f64| ((q + 0.5).min(c + r) - (q - 0.5).max(c - r)).clamp(0.0, 1.0);
        self.cover(p.0 - r - 1.0, p.1 - r - 1.0, p.0 + r + 1.0, p.1 + r + 1.0, |px, py| ov(p.0, px) * ov(p.1, py));
    }
}

/// Finite min and max of `vals`, widened by `pad` of the span (a lone value gets a span of its own).
fn range(vals: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) =
        vals.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.max(-1e300), hi.min(1e300));
    if hi - lo <= 1e-9 * lo.abs().max(hi.abs()) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    (lo - (hi - lo) * pad, hi + (hi - lo) * pad)
}

/// Tick values at 1, 2 or 5 × 10^k steps inside `lo..=hi`, about 6 of them, and the step.
fn ticks(lo: f64, hi: f64) -> (Vec<f64>, f64) {
    let e = ((hi - lo) / 6.0).log10().floor() as i32;
    let count = |s: f64| (hi / s).floor() - (lo / s).ceil() + 1.0;
    let steps = (e - 1..=e + 1).flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)));
    let step = steps.min_by(|a, b| (count(*a) - 6.5).abs().total_cmp(&(count(*b) - 6.5).abs())).unwrap_or(1.0);
    if !(step > 0.0 && step.is_finite() && count(step) <= 20.0) {
        return (Vec::new(), 1.0);
    }
    let first = (lo / step).ceil();
    let t = (0..20).map(|i| (first + f64::from(i)) * step).take_while(|&v| v <= hi + step * 1e-9);
    (t.map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v }).collect(), step)
}

/// Formats a tick value compactly (`0`, `2.5`, `1200`, `1e6`, `-0.3`) with just the decimals its step needs.
fn fmt_num(v: f64, step: f64) -> String {
    let trim = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    let sd = -(step.log10() + 1e-9).floor() as i32;
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&a) {
        trim(format!("{v:.*}", sd.clamp(0, 10) as usize))
    } else {
        let mut e = a.log10().floor() as i32;
        let mut m = v / 10f64.powi(e);
        if m.abs() >= 10.0 {
            (m, e) = (m / 10.0, e + 1);
        }
        format!("{}e{e}", trim(format!("{m:.*}", (e + sd).clamp(0, 8) as usize)))
    }
}

/// Seconds from 1970-01-01 00:00 to `t`, both civil times (no time zone):
/// the x of a date on a chart with [`Chart::x_dates`].
pub fn civil_seconds(t: jiff::civil::DateTime) -> f64 {
    t.duration_since(jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0)).as_secs_f64()
}

/// A calendar step between date ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Years(i64),
    Months(i64),
    /// A fixed number of seconds: days, hours, minutes, seconds. Days
    /// count from 1970-01-01 and weeks from a Monday.
    Seconds(i64),
}

/// Ticks at calendar boundaries (years, months, days, hours, …) inside
/// `lo..=hi`, seconds since 1970-01-01 in civil time, with date labels as
/// wide as the step needs (`1990`, `1990-03`, `1990-03-14`, `03-14 13:00`,
/// `13:00:30`): the finest step whose labels fit side by side in `room`
/// pixels. Empty when the range is not finite or leaves the calendar.
fn date_ticks(lo: f64, hi: f64, room: i64) -> Vec<(f64, String)> {
    use jiff::civil::{date, DateTime};
    const DAY: i64 = 86_400;
    // jiff's civil range is years -9999..=9999.
    let limit = 2.5e11;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi && lo > -limit && hi < limit) {
        return Vec::new();
    }
    let epoch = date(1970, 1, 1).at(0, 0, 0, 0);
    let at = |s: f64| -> Option<DateTime> {
        let secs = s.floor() as i64;
        epoch.checked_add(jiff::SignedDuration::from_secs(secs)).ok()
    };
    let secs_of = civil_seconds;
    let (Some(first), Some(last)) = (at(lo), at(hi)) else { return Vec::new() };
    let units = [1, 2, 5, 10, 15, 30]
        .map(Unit::Seconds)
        .into_iter()
        .chain([1, 2, 5, 10, 15, 30].map(|m| Unit::Seconds(60 * m)))
        .chain([1, 2, 3, 6, 12].map(|h| Unit::Seconds(3600 * h)))
        .chain([1, 2, 7, 14].map(|d| Unit::Seconds(DAY * d)))
        .chain([1, 2, 3, 6].map(Unit::Months))
        .chain([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].map(Unit::Years));
    let span_days = (hi - lo) / DAY as f64;
    for unit in units {
        let approx = match unit {
            Unit::Years(n) => n as f64 * 365.25 * DAY as f64,
            Unit::Months(n) => n as f64 * 30.44 * DAY as f64,
            Unit::Seconds(n) => n as f64,
        };
        if (hi - lo) / approx > 40.0 {
            continue;
        }
        let mut out = Vec::new();
        let mut push = |d: DateTime| {
            let label = match unit {
                Unit::Years(_) => d.strftime("%Y").to_string(),
                Unit::Months(_) => d.strftime("%Y-%m").to_string(),
                Unit::Seconds(n) if n % DAY == 0 => d.strftime("%Y-%m-%d").to_string(),
                Unit::Seconds(n) if n % 60 == 0 && span_days > 1.0 => d.strftime("%m-%d %H:%M").to_string(),
                Unit::Seconds(n) if n % 60 == 0 => d.strftime("%H:%M").to_string(),
                Unit::Seconds(_) => d.strftime("%H:%M:%S").to_string(),
            };
            out.push((secs_of(d), label));
        };
        match unit {
            Unit::Years(n) => {
                let y0 = i64::from(first.year()).div_euclid(n) * n;
                for y in (y0..=i64::from(last.year())).step_by(n as usize) {
                    if let Ok(d) =
                        i16::try_from(y).map_err(|_| ()).and_then(|y| jiff::civil::Date::new(y, 1, 1).map_err(|_| ()))
                    {
                        push(d.at(0, 0, 0, 0));
                    }
                }
            }
            Unit::Months(n) => {
                let month = |d: DateTime| i64::from(d.year()) * 12 + i64::from(d.month()) - 1;
                let m0 = month(first).div_euclid(n) * n;
                for m in (m0..=month(last)).step_by(n as usize) {
                    let (y, mo) = (m.div_euclid(12), m.rem_euclid(12) + 1);
                    if let Ok(d) = jiff::civil::Date::new(y as i16, mo as i8, 1) {
                        push(d.at(0, 0, 0, 0));
                    }
                }
            }
            Unit::Seconds(n) => {
                // Weeks start on Mondays: 1970-01-05 is day 4.
                let shift = if n % (7 * DAY) == 0 { 4 * DAY } else { 0 };
                let s0 = (lo.floor() as i64 - shift).div_euclid(n) * n + shift;
                for s in (s0..=hi.floor() as i64).step_by(n as usize) {
                    if let Some(d) = at(s as f64) {
                        push(d);
                    }
                }
            }
        }
        out.retain(|(x, _)| (lo..=hi).contains(x));
        let widest = out.iter().map(|(_, l)| text_w(l, 2)).max().unwrap_or(0);
        if out.len() as i64 * (widest + 28) <= room {
            return out;
        }
    }
    Vec::new()
}

/// Maps data values linearly onto pixel coordinates.
struct Axis {
    lo: f64,
    hi: f64,
    p0: f64,
    p1: f64,
}

impl Axis {
    fn px(&self, v: f64) -> f64 {
        self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)
    }
}

impl Chart<'_> {
    /// Renders the chart as a PNG file's bytes.
    pub fn to_png(&self) -> Vec<u8> {
        let (w, h) = (self.width.clamp(100, 4096), self.height.clamp(80, 4096));
        let mut cv = Canvas { w, h, px: vec![255; w * h * 3] };
        let pts = || self.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
        let (x0, x1) = range(pts().map(|p| p.0), 0.0);
        let (y0, y1) = range(pts().map(|p| p.1), 0.05);
        let (yt, ys) = ticks(y0, y1);
        let ylabs: Vec<String> = yt.iter().map(|&v| fmt_num(v, ys)).collect();
        let (xt, xlabs): (Vec<f64>, Vec<String>) = if self.x_dates {
            // Room for the labels: the plot is about the image less 150 px.
            date_ticks(x0, x1, (w as i64 - 150).max(50)).into_iter().unzip()
        } else {
            let (xt, xs) = ticks(x0, x1);
            let labs = xt.iter().map(|&v| fmt_num(v, xs)).collect();
            (xt, labs)
        };
        let (wi, hi) = (w as i64, h as i64);
        let ylw = ylabs.iter().map(|s| text_w(s, 2)).max().unwrap_or(0);
        let left = 16 + ylw + if self.y_label.is_empty() { 0 } else { 30 };
        let top = if self.title.is_empty() { 16 } else { 56 };
        let right = (wi - 12 - xlabs.last().map_or(0, |s| text_w(s, 2) / 2)).max(left + 20);
        let bottom = (hi - 34 - if self.x_label.is_empty() { 0 } else { 26 }).max(top + 20);
        let xa = Axis { lo: x0, hi: x1, p0: left as f64, p1: right as f64 };
        let ya = Axis { lo: y0, hi: y1, p0: bottom as f64, p1: top as f64 };

        for (v, s) in xt.iter().zip(&xlabs) {
            let x = xa.px(*v).round() as i64;
            cv.rect(x, top, 1, bottom - top, GRID);
            cv.rect(x, bottom, 1, 5, FRAME);
            cv.text(s, x - text_w(s, 2) / 2, bottom + 9, 2, false, INK);
        }
        for (v, s) in yt.iter().zip(&ylabs) {
            let y = ya.px(*v).round() as i64;
            cv.rect(left, y, right - left, 1, GRID);
            cv.rect(left - 5, y, 5, 1, FRAME);
            cv.text(s, left - 9 - text_w(s, 2), y - 7, 2, false, INK);
        }
        for &v in self.vlines.iter().filter(|v| v.is_finite() && (x0..=x1).contains(*v)) {
            let x = xa.px(v).round() as i64;
            for y in (top..bottom).step_by(10) {
                cv.rect(x - 1, y, 2, 6.min(bottom - y), DASH);
            }
        }

        let mut mask = Mask { w, clip: [left, top, right, bottom], v: vec![0.0; w * h] };
        for s in &self.series {
            mask.v.fill(0.0);
            let p: Vec<Option<(f64, f64)>> =
                s.points.iter().map(|&(x, y)| (x.is_finite() && y.is_finite()).then(|| (xa.px(x), ya.px(y)))).collect();
            for (i, q) in p.iter().enumerate() {
                let Some(q) = *q else { continue };
                let (prev, next) = (if i > 0 { p[i - 1] } else { None }, p.get(i + 1).copied().flatten());
                match prev {
                    Some(o) => mask.segment(o, q, 1.1),
                    None if next.is_none() => mask.segment(q, q, 1.6),
                    None => {}
                }
                if s.markers {
                    mask.square(q, 2.5);
                }
            }
            for (i, &m) in mask.v.iter().enumerate().filter(|(_, m)| **m > 0.0) {
                cv.blend((i % w) as i64, (i / w) as i64, s.color, f64::from(m));
            }
        }

        let (pw, ph) = (right - left, bottom - top);
        for (x, y, rw, rh) in
            [(left, top, pw + 1, 1), (left, bottom, pw + 1, 1), (left, top, 1, ph), (right, top, 1, ph)]
        {
            cv.rect(x, y, rw, rh, FRAME);
        }
        if !self.series.is_empty() {
            let lw = self.series.iter().map(|s| text_w(s.label, 2)).max().unwrap_or(0) + 52;
            let lh = self.series.len() as i64 * 22 + 8;
            // The corner of the plot that the lines cross least (top left on ties).
            let corners = [
                (left + 10, top + 10),
                (right - 10 - lw, top + 10),
                (left + 10, bottom - 10 - lh),
                (right - 10 - lw, bottom - 10 - lh),
            ];
            let mut samples = Vec::new();
            for s in &self.series {
                let p: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .map(|&(x, y)| (xa.px(x), ya.px(y)))
                    .collect();
                for w in p.windows(2) {
                    samples.extend((0..=16).map(|k| {
                        let t = f64::from(k) / 16.0;
                        (w[0].0 + t * (w[1].0 - w[0].0), w[0].1 + t * (w[1].1 - w[0].1))
                    }));
                }
                samples.extend(p.first().copied());
            }
            let crossing = |&(cx, cy): &(i64, i64)| {
                samples
                    .iter()
                    .filter(|&&(x, y)| {
                        x >= cx as f64 && x <= (cx + lw) as f64 && y >= cy as f64 && y <= (cy + lh) as f64
                    })
                    .count()
            };
            let (lx, ly) = corners.iter().min_by_key(|c| crossing(c)).copied().unwrap_or(corners[0]);
            cv.rect(lx, ly, lw, lh, [170; 3]);
            cv.rect(lx + 1, ly + 1, lw - 2, lh - 2, [255; 3]);
            for (k, s) in self.series.iter().enumerate() {
                let y = ly + 8 + k as i64 * 22;
                cv.rect(lx + 8, y + 6, 26, 3, s.color);
                if s.markers {
                    cv.rect(lx + 18, y + 4, 6, 7, s.color);
                }
                cv.text(s.label, lx + 42, y, 2, false, INK);
            }
        }
        let scale = [3, 2].into_iter().find(|&k| text_w(self.title, k) <= wi - 20).unwrap_or(1);
        cv.text(self.title, (wi - text_w(self.title, scale)) / 2, 14, scale, false, INK);
        cv.text(self.x_label, (left + right - text_w(self.x_label, 2)) / 2, hi - 26, 2, false, INK);
        cv.text(self.y_label, 10, (top + bottom + text_w(self.y_label, 2)) / 2, 2, true, INK);
        png(w, h, &cv.px)
    }
}

/// One interval of a [`Timeline`].
#[derive(Debug, Clone)]
pub struct Bar {
    /// The lane, an index into [`Timeline::lanes`] (top first).
    pub lane: usize,
    /// Start and end on the x axis.
    pub start: f64,
    /// End on the x axis.
    pub end: f64,
    /// RGB fill.
    pub color: [u8; 3],
}

/// Intervals in labelled lanes over a shared x axis (e.g. a profiled step's
/// phases and ops), with a legend of colours underneath. The height follows
/// from the lanes and the legend.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Title drawn centred above the lanes.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Lane labels, top first.
    pub lanes: Vec<String>,
    /// The x axis runs from 0 to `span`.
    pub span: f64,
    /// The intervals; a bar narrower than a pixel is drawn one pixel wide.
    pub bars: Vec<Bar>,
    /// Colour keys, laid out in rows under the axis.
    pub legend: Vec<(String, [u8; 3])>,
    /// Image width in pixels, clamped to 300..=4096.
    pub width: usize,
}

impl Timeline {
    /// Renders the timeline as a PNG file's bytes.
    pub fn to_png(&self) -> Vec<u8> {
        const LANE: i64 = 30;
        let w = self.width.clamp(300, 4096);
        let wi = w as i64;
        let left = 20 + self.lanes.iter().map(|l| text_w(l, 2)).max().unwrap_or(0);
        let span = if self.span.is_finite() && self.span > 0.0 { self.span } else { 1.0 };
        let (xt, xs) = ticks(0.0, span);
        let xlabs: Vec<String> = xt.iter().map(|&v| fmt_num(v, xs)).collect();
        let right = (wi - 12 - xlabs.last().map_or(0, |s| text_w(s, 2) / 2)).max(left + 20);
        let top = 56;
        let bottom = top + LANE * self.lanes.len().max(1) as i64;
        // Legend entries flow left to right in rows.
        let (mut lx, mut rows, mut places) = (left, 1i64, Vec::new());
        for (name, _) in &self.legend {
            let ew = text_w(name, 2) + 40;
            if lx + ew > wi - 10 && lx > left {
                lx = left;
                rows += 1;
            }
            places.push((lx, rows - 1));
            lx += ew;
        }
        let legend_top = bottom + 64;
        let h = (legend_top + rows * 22 + 12).clamp(80, 4096) as usize;
        let mut cv = Canvas { w, h, px: vec![255; w * h * 3] };
        let xa = Axis { lo: 0.0, hi: span, p0: left as f64, p1: right as f64 };
        for (v, s) in xt.iter().zip(&xlabs) {
            let x = xa.px(*v).round() as i64;
            cv.rect(x, top, 1, bottom - top, GRID);
            cv.rect(x, bottom, 1, 5, FRAME);
            cv.text(s, x - text_w(s, 2) / 2, bottom + 9, 2, false, INK);
        }
        for (k, l) in self.lanes.iter().enumerate() {
            let y = top + k as i64 * LANE;
            cv.text(l, left - 8 - text_w(l, 2), y + LANE / 2 - 7, 2, false, INK);
            if k > 0 {
                cv.rect(left, y, right - left, 1, GRID);
            }
        }
        for b in self.bars.iter().filter(|b| b.lane < self.lanes.len() && b.start.is_finite() && b.end.is_finite()) {
            let (x0, x1) = (xa.px(b.start).round() as i64, xa.px(b.end).round() as i64);
            let y = top + b.lane as i64 * LANE + 4;
            let (x0, x1) = (x0.clamp(left, right), x1.clamp(left, right));
            cv.rect(x0, y, (x1 - x0).max(1), LANE - 8, b.color);
        }
        for (x, y, rw, rh) in [
            (left, top, right - left + 1, 1),
            (left, bottom, right - left + 1, 1),
            (left, top, 1, bottom - top),
            (right, top, 1, bottom - top),
        ] {
            cv.rect(x, y, rw, rh, FRAME);
        }
        for ((name, c), &(x, row)) in self.legend.iter().zip(&places) {
            let y = legend_top + row * 22;
            cv.rect(x, y + 2, 26, 12, *c);
            cv.text(name, x + 32, y, 2, false, INK);
        }
        let scale = [3, 2].into_iter().find(|&k| text_w(&self.title, k) <= wi - 20).unwrap_or(1);
        cv.text(&self.title, (wi - text_w(&self.title, scale)) / 2, 14, scale, false, INK);
        cv.text(&self.x_label, (left + right - text_w(&self.x_label, 2)) / 2, bottom + 34, 2, false, INK);
        png(w, h, &cv.px)
    }
}

/// Grey-scale images in labelled rows (e.g. a data set's samples, each
/// followed by augmented copies), scaled up with square pixels.
#[derive(Debug, Clone)]
pub struct ImageGrid {
    /// Each row: its label, drawn at the left, and its images.
    pub rows: Vec<(String, Vec<Vec<f32>>)>,
    /// Width of every image in pixels.
    pub width: usize,
    /// Height of every image in pixels.
    pub height: usize,
    /// Screen pixels per image pixel, clamped to 1..=32.
    pub scale: usize,
    /// Title drawn above the grid.
    pub title: String,
}

impl ImageGrid {
    /// Renders the grid as a PNG file's bytes; values are clamped to [0, 1]
    /// (1 is white). A grid too large for 4096×4096 is cut at the edges.
    pub fn to_png(&self) -> Vec<u8> {
        let k = self.scale.clamp(1, 32) as i64;
        let (cw, ch) = (self.width as i64 * k, self.height as i64 * k);
        let gap = 4;
        let left = 12 + self.rows.iter().map(|r| text_w(&r.0, 2)).max().unwrap_or(0);
        let top = 48;
        let cols = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0) as i64;
        let w = (left + cols * (cw + gap) + 8).clamp(100, 4096);
        let h = (top + self.rows.len() as i64 * (ch + gap) + 8).clamp(80, 4096);
        let mut cv = Canvas { w: w as usize, h: h as usize, px: vec![255; (w * h * 3) as usize] };
        for (r, (label, images)) in self.rows.iter().enumerate() {
            let y0 = top + r as i64 * (ch + gap);
            cv.text(label, left - 8 - text_w(label, 2), y0 + ch / 2 - 7, 2, false, INK);
            for (c, img) in images.iter().enumerate() {
                let x0 = left + c as i64 * (cw + gap);
                for (i, &v) in img.iter().take(self.width * self.height).enumerate() {
                    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    let (x, y) = ((i % self.width) as i64, (i / self.width) as i64);
                    cv.rect(x0 + x * k, y0 + y * k, k, k, [g; 3]);
                }
            }
        }
        let scale = [3, 2].into_iter().find(|&s| text_w(&self.title, s) <= w - 20).unwrap_or(1);
        cv.text(&self.title, (w - text_w(&self.title, scale)) / 2, 12, scale, false, INK);
        png(w as usize, h as usize, &cv.px)
    }
}

/// Encodes RGB8 pixels (`w × h × 3` bytes) as a PNG with the `png` crate.
fn png(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // Writing to memory fails only on a size mismatch, which `to_png`'s
    // canvas rules out (w, h clamped to 100..=4096 and 80..=4096).
    let mut writer = enc.write_header().expect("PNG header for a clamped size");
    writer.write_image_data(rgb).expect("a w × h × 3 canvas");
    drop(writer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG to (width, height, RGB pixels) with the `png` crate.
    fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut px = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut px).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight));
        px.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, px)
    }

    fn chart(series: Vec<Series<'_>>, width: usize, height: usize) -> Chart<'_> {
        let vlines = vec![5.0, f64::NAN];
        Chart { title: "Test", x_label: "step", y_label: "value", series, vlines, x_dates: false, width, height }
    }

    #[test]
    fn renders_valid_png_with_expected_pixels() {
        let points = (0..=10).map(|i| (f64::from(i), 5.0)).collect();
        let line = Series { label: "flat", points, color: [200, 0, 0], markers: false };
        let (w, h, px) = decode(&chart(vec![line], 400, 300).to_png());
        assert_eq!((w, h), (400, 300));
        assert_eq!(px[..3], [255, 255, 255], "top-left corner is background");
        let col: Vec<usize> = (0..h).filter(|&y| px[(y * w + 300) * 3..][..3] == [200, 0, 0]).collect();
        assert!(!col.is_empty() && col.len() <= 3, "a 2 px line crosses column 300: {col:?}");
        assert!(col.iter().all(|&y| y.abs_diff(h / 2) < 40), "near the middle: {col:?}");
    }

    #[test]
    fn timelines_draw_bars_in_their_lanes() {
        let t = Timeline {
            title: "step".into(),
            x_label: "ms".into(),
            lanes: vec!["phases".into(), "ops".into()],
            span: 10.0,
            bars: vec![
                Bar { lane: 0, start: 0.0, end: 10.0, color: [200, 0, 0] },
                Bar { lane: 1, start: 5.0, end: 5.0, color: [0, 0, 200] },
                Bar { lane: 7, start: f64::NAN, end: 1.0, color: [0, 200, 0] },
            ],
            legend: vec![("forward".into(), [200, 0, 0]), ("linear.fwd".into(), [0, 0, 200])],
            width: 10,
        };
        let (w, h, px) = decode(&t.to_png());
        assert_eq!(w, 300);
        let count = |c: [u8; 3]| px.chunks(3).filter(|p| *p == c).count();
        assert!(count([200, 0, 0]) > 1000, "the phase bar spans the width");
        assert!(count([0, 0, 200]) > 12 * 26, "a zero-width bar is still drawn, and its legend key");
        assert_eq!(count([0, 200, 0]), 0, "a bar outside the lanes is skipped");
        assert!(h > 56 + 60);
        let empty = Timeline { lanes: vec![], bars: vec![], legend: vec![], span: 0.0, ..t };
        assert!(!empty.to_png().is_empty());
    }

    #[test]
    fn image_grids_scale_their_pixels() {
        let g = ImageGrid {
            rows: vec![("a".into(), vec![vec![1.0, 0.0, 0.0, 1.0]; 2]), ("b".into(), vec![vec![2.0, -1.0, 0.5, 0.5]])],
            width: 2,
            height: 2,
            scale: 10,
            title: "t".into(),
        };
        let (w, h, px) = decode(&g.to_png());
        assert!(w >= 100 && h >= 48 + 2 * 24);
        let count = |c: [u8; 3]| px.chunks(3).filter(|p| *p == c).count();
        // Row a: two white and two black 10×10 pixels per image, twice; row
        // b: one of each (clamped) and two mid-grey.
        assert!(count([0; 3]) >= 5 * 100, "{}", count([0; 3]));
        assert_eq!(count([128; 3]), 2 * 100);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let s = |points: Vec<(f64, f64)>| Series { label: "s", points, color: [0, 0, 255], markers: true };
        let nan = f64::NAN;
        let cases = vec![
            vec![],
            vec![s(vec![])],
            vec![s(vec![(1.0, 2.0)])],
            vec![s(vec![(0.0, 3.0), (1.0, 3.0), (2.0, 3.0)])],
            vec![s(vec![(nan, nan), (1.0, f64::INFINITY), (f64::NEG_INFINITY, 0.0)])],
            vec![s(vec![(0.0, 1.0), (1.0, nan), (2.0, 3.0), (3.0, 4.0), (4.0, nan), (5.0, 0.0)])],
            vec![s(vec![(-1e308, -1e308), (1e308, 1e308), (0.0, 0.0)]), s(vec![(0.0, 1e-300), (1e-300, 0.0)])],
            vec![s(vec![(0.0, 1e-320), (1.0, 2e-320)]), s(vec![(5.0, 1e6), (5.0, 1e6 + 1.0)])],
        ];
        for (k, series) in cases.into_iter().enumerate() {
            for (w, h) in [(0, 0), (1000, 500), (150, 5000)] {
                let mut c = chart(series.iter().map(|x| s(x.points.clone())).collect(), w, h);
                c.title =
                    if k % 2 == 0 { "" } else { "héllo ünïcode – a long title that can't fit in a small image" };
                let (dw, dh, _) = decode(&c.to_png());
                assert_eq!((dw, dh), (w.clamp(100, 4096), h.clamp(80, 4096)));
            }
        }
    }

    #[test]
    fn date_ticks_follow_the_calendar() {
        let secs = |s: &str| civil_seconds(s.parse().unwrap());
        let labels = |a: &str, b: &str| -> Vec<String> {
            date_ticks(secs(a), secs(b), 850).into_iter().map(|(_, l)| l).collect()
        };
        // Weekly CO2, 44 years: decades.
        let l = labels("1958-03-29T00:00", "2001-12-29T00:00");
        assert!(l[0] == "1960" && l.len() >= 4 && l.iter().all(|s| s.len() == 4), "{l:?}");
        // Three years of a back-test: years, or half years.
        let l = labels("1997-06-07T00:00", "2000-06-24T00:00");
        assert!(l.iter().all(|s| s.len() == 4 || s.len() == 7) && l.len() >= 3, "{l:?}");
        assert_eq!(
            labels("2024-01-20T00:00", "2024-06-10T00:00"),
            ["2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
        );
        let l = labels("2024-03-01T00:00", "2024-03-03T12:00");
        assert!(l.len() >= 3 && l.iter().all(|s| s.starts_with("2024-03-0") || s.starts_with("03-0")), "{l:?}");
        assert_eq!(
            labels("2024-03-01T09:10", "2024-03-01T11:00"),
            ["09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00"]
        );
        // Weeks start on Mondays (2024-03-04 was one).
        let l = labels("2024-02-27T00:00", "2024-05-01T00:00");
        assert_eq!(l, ["2024-03-04", "2024-03-18", "2024-04-01", "2024-04-15", "2024-04-29"]);
        // Ticks are in range and increasing; a tick per position.
        let t = date_ticks(secs("1900-01-01T00:00"), secs("2020-01-01T00:00"), 850);
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0) && t.first().unwrap().1 == "1900");
        for (a, b) in [(f64::NAN, 1.0), (0.0, f64::INFINITY), (1e300, 2e300), (5.0, 1.0)] {
            assert!(date_ticks(a, b, 850).is_empty());
        }
        assert_eq!(date_ticks(0.0, 0.0, 850).len(), 1);
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(fmt_num(0.0, 0.5), "0");
        assert_eq!(fmt_num(2.5, 0.5), "2.5");
        assert_eq!(fmt_num(1200.0, 200.0), "1200");
        assert_eq!(fmt_num(1e6, 2e5), "1e6");
        assert_eq!(fmt_num(1.2e6, 2e5), "1.2e6");
        assert_eq!(fmt_num(-0.30000000000000004, 0.1), "-0.3");
        assert_eq!(fmt_num(5e-4, 1e-4), "5e-4");
        let (t, step) = ticks(-0.05, 1.05);
        assert_eq!((t.len(), step), (6, 0.2));
        assert!(ticks(0.0, 1234.0).0.len() >= 5 && ticks(0.0, 1234.0).0.len() <= 8);
    }
}
