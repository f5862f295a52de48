//! Numeric series for forecasting: a CSV file with a header (target
//! columns, optional covariates and timestamp), a chronological split (never
//! shuffled across time), and scalers fitted on the training split only.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What to do with a missing or non-numeric cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillPolicy {
    /// An error naming the row and column (the default).
    #[default]
    Error,
    /// The previous row's value (the first row has none: still an error).
    Forward,
    /// Zero.
    Zero,
}

/// Which columns of a CSV file to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// The CSV file; its first non-blank line is the header.
    pub path: PathBuf,
    /// Columns to forecast, e.g. ["load"].
    pub targets: Vec<String>,
    /// Extra input columns, e.g. ["temperature"].
    #[serde(default)]
    pub covariates: Vec<String>,
    /// A column carried to the output as is, e.g. "date".
    #[serde(default)]
    pub timestamp: Option<String>,
    /// What to do with a missing or non-numeric cell (default: error).
    #[serde(default)]
    pub fill: FillPolicy,
    /// Long format: a column naming the series each row belongs to, e.g.
    /// "store". Each id's rows (in file order) are one series; one global
    /// model learns them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The columns read: targets first, then covariates, each one value per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Column names, targets first, then covariates.
    pub names: Vec<String>,
    /// One value per row for each column, in the order of `names`.
    pub columns: Vec<Vec<f32>>,
    /// The timestamp column's text, one per row, if the spec names one.
    pub timestamps: Option<Vec<String>>,
    /// Long format: each row's series id and file line, if the spec names an id column.
    pub ids: Option<Vec<(String, usize)>>,
}

impl Series {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |c| c.len())
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The delimiter of a CSV file: the one of `,`, `;` and tab that occurs
/// most often in its header line (outside quotes), `,` when none does. A
/// spreadsheet in a locale whose decimal mark is a comma writes `;`.
fn sniff_delimiter(text: &str) -> u8 {
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut quoted = false;
    let mut counts = [0usize; 3];
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    // On a tie, tab and then `;` win: a comma inside a column name is likelier
    // than a semicolon.
    let best = (0..3).max_by_key(|&i| (counts[i], i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b';', b'\t'][best]
    }
}

/// Reads the chosen columns with the `csv` crate (RFC 4180 quoting, fields
/// spanning lines, `,`/`;`/tab delimiters). Errors name the file, the line
/// and the column.
pub fn read_csv(spec: &SeriesSpec) -> Result<Series> {
    let text = super::read_utf8(&spec.path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text); // the byte-order mark spreadsheets write
    let path = &spec.path;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sniff_delimiter(text))
        .flexible(true) // a short row is reported by column, below
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let bad_csv = |e: csv::Error| {
        let line = e.position().map_or(1, |p| p.line() as usize);
        Error::BadLine { path: path.clone(), line, msg: format!("not valid CSV: {e}") }
    };
    let header: Vec<String> = reader.headers().map_err(bad_csv)?.iter().map(str::to_string).collect();
    if header.iter().all(|h| h.is_empty()) {
        return Err(Error::EmptyFile { path: path.clone() });
    }
    let find = |name: &str| -> Result<usize> {
        header.iter().position(|h| h == name).ok_or_else(|| Error::BadLine {
            path: path.clone(),
            line: 1,
            msg: format!("no column '{name}' in the header (columns: {})", header.join(", ")),
        })
    };
    if spec.targets.is_empty() {
        return Err(Error::config("data.targets", "name at least one target column"));
    }
    let names: Vec<String> = spec.targets.iter().chain(&spec.covariates).cloned().collect();
    let idx: Vec<usize> = names.iter().map(|n| find(n)).collect::<Result<_>>()?;
    let ts = spec.timestamp.as_deref().map(find).transpose()?;
    let id = spec.id.as_deref().map(find).transpose()?;
    let mut columns = vec![Vec::new(); names.len()];
    let mut stamps = ts.map(|_| Vec::new());
    let mut ids = id.map(|_| Vec::new());
    // The last value of each column per series, for --fill forward.
    let mut last: std::collections::HashMap<String, Vec<f32>> = Default::default();
    for record in reader.records() {
        let f = record.map_err(bad_csv)?;
        if f.len() <= 1 && f.get(0).is_none_or(str::is_empty) {
            continue; // a blank line (a row of empty cells is a row, filled or reported below)
        }
        let line = f.position().map_or(0, |p| p.line() as usize);
        let key = match id {
            Some(k) => {
                let v = f.get(k).unwrap_or("");
                if v.is_empty() {
                    let msg = format!("the id column '{}' is empty", spec.id.as_deref().unwrap_or_default());
                    return Err(Error::BadLine { path: path.clone(), line, msg });
                }
                v.to_string()
            }
            None => String::new(),
        };
        let previous = last.get(&key);
        let mut row = Vec::with_capacity(names.len());
        for (c, (&k, name)) in idx.iter().zip(&names).enumerate() {
            let cell = f.get(k).unwrap_or("");
            let value = match cell.parse::<f32>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    let what =
                        if cell.is_empty() { "is missing".to_string() } else { format!("'{cell}' is not a number") };
                    match (spec.fill, previous.map(|p| p[c])) {
                        (FillPolicy::Zero, _) => 0.0,
                        (FillPolicy::Forward, Some(prev)) => prev,
                        _ => {
                            return Err(Error::BadLine {
                                path: path.clone(),
                                line,
                                msg: match spec.fill {
                                    FillPolicy::Forward => format!(
                                        "column '{name}' {what} in the first row{}, which has no earlier value to carry forward (use --fill zero, or fix the row)",
                                        if id.is_some() { format!(" of series '{key}'") } else { String::new() }
                                    ),
                                    _ => format!("column '{name}' {what} (choose a fill policy: forward or zero)"),
                                },
                            })
                        }
                    }
                }
            };
            columns[c].push(value);
            row.push(value);
        }
        last.insert(key.clone(), row);
        if let (Some(k), Some(s)) = (ts, stamps.as_mut()) {
            s.push(f.get(k).unwrap_or_default().to_string());
        }
        if let Some(ids) = ids.as_mut() {
            ids.push((key, line));
        }
    }
    if columns[0].is_empty() {
        return Err(Error::EmptyFile { path: path.clone() });
    }
    Ok(Series { names, columns, timestamps: stamps, ids })
}

/// Forecasting data: a CSV file's columns or the built-in series, cut into
/// windows and split chronologically. Saved in the run's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesConfig {
    /// A CSV file and its columns; `None` is the built-in synthetic series.
    #[serde(default)]
    pub csv: Option<SeriesSpec>,
    /// Length of the built-in hourly series, e.g. 4032 (24 weeks).
    pub synthetic_len: usize,
    /// The built-in series' seed; `None`: the run's `train.seed`. An
    /// ensemble's members, whose training seeds differ, set it so that all
    /// read the same series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_seed: Option<u64>,
    /// Steps between consecutive training windows, e.g. 1.
    pub stride: usize,
    /// Fraction of rows (after training) for validation, e.g. 0.1.
    pub valid_fraction: f64,
    /// Fraction of rows at the end for the test, e.g. 0.2.
    pub test_fraction: f64,
    /// `z_score` or `min_max`, fitted on the training rows.
    pub scaler: ScalerKind,
    /// Season length for seasonal naive and MASE; `None`: inferred from the
    /// training rows.
    #[serde(default)]
    pub season: Option<usize>,
    /// Rolling-origin fold k (0: the split as it is): the validation block
    /// moved k blocks of its own length back in time, training on every row
    /// before it; the rows after it are the fold's test rows, never read in
    /// training. `--model auto` scores its candidates on several folds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fold: usize,
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self {
            csv: None,
            synthetic_len: 24 * 7 * 24,
            synthetic_seed: None,
            stride: 1,
            valid_fraction: 0.1,
            test_fraction: 0.2,
            scaler: ScalerKind::ZScore,
            season: None,
            fold: 0,
        }
    }
}

impl SeriesConfig {
    /// Checks the fractions, stride and season, naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if self.valid_fraction <= 0.0 || self.test_fraction <= 0.0 {
            return Err(Error::config(
                "data.valid_fraction",
                "validation and test fractions must be above 0: training watches the validation windows and reports on the test windows",
            ));
        }
        if self.stride == 0 {
            return Err(Error::config("data.stride", "must be at least 1"));
        }
        let ok = |f: f64| (0.0..0.5).contains(&f);
        if !ok(self.valid_fraction) || !ok(self.test_fraction) || self.valid_fraction + self.test_fraction >= 0.8 {
            return Err(Error::config(
                "data.valid_fraction",
                "validation and test fractions must each be in [0, 0.5) and leave training rows",
            ));
        }
        if self.season == Some(0) {
            return Err(Error::config("data.season", "must be at least 1 (1: no season)"));
        }
        Ok(())
    }

    /// The targets' and covariates' names.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        match &self.csv {
            Some(s) => (s.targets.clone(), s.covariates.clone()),
            None => (vec!["value".into()], Vec::new()),
        }
    }
}

/// A loaded series: raw and scaled columns, the split, the scaler and season.
#[derive(Debug, Clone)]
pub struct SeriesData {
    /// The columns as read (targets first).
    pub series: Series,
    /// How many of the columns are targets (the first ones); the rest are covariates.
    pub n_targets: usize,
    /// The columns after scaling.
    pub scaled: Vec<Vec<f32>>,
    /// The scaler, fitted on the training rows or taken from a checkpoint.
    pub scaler: Scaler,
    /// Rows of the training split (the first part of the series).
    pub train: std::ops::Range<usize>,
    /// Rows of the validation split (after training).
    pub valid: std::ops::Range<usize>,
    /// Rows of the test split (the end of the series).
    pub test: std::ops::Range<usize>,
    /// Season length (1: none).
    pub season: usize,
    /// Long format (`--id`): each series, split and scaled on its own rows.
    /// The columns above are theirs joined in this order, and the split,
    /// scaler and season above are the first series'. Empty for one series.
    pub panel: Vec<Part>,
}

/// One series of a long-format file.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its id, as the id column writes it.
    pub id: String,
    /// Its first row in the joined columns.
    pub offset: usize,
    /// The series alone: its rows, split, scaler and season.
    pub data: SeriesData,
}

impl SeriesData {
    /// Whether this holds many series (long format, `--id`).
    pub fn is_panel(&self) -> bool {
        !self.panel.is_empty()
    }

    /// The window starts of one split (`pick` chooses it, e.g. `|d| &d.train`)
    /// over every series: each series' own split, offset into the joined
    /// columns, so that no window spans two series.
    pub fn split_starts(
        &self,
        pick: impl Fn(&SeriesData) -> &std::ops::Range<usize>,
        l: usize,
        h: usize,
        stride: usize,
    ) -> Vec<usize> {
        if self.panel.is_empty() {
            return self.starts(pick(self), l, h, stride);
        }
        self.panel
            .iter()
            .flat_map(|p| p.data.starts(pick(&p.data), l, h, stride).into_iter().map(move |s| s + p.offset))
            .collect()
    }

    /// Groups the rows of a long-format `series` by id (in order of first
    /// appearance) and makes each a series of its own, joined.
    fn panel(series: Series, ids: Vec<(String, usize)>, n_targets: usize, cfg: &SeriesConfig) -> Result<Self> {
        let mut order: Vec<String> = Vec::new();
        let mut rows: std::collections::HashMap<&str, Vec<usize>> = Default::default();
        for (r, (id, _)) in ids.iter().enumerate() {
            rows.entry(id.as_str())
                .or_insert_with(|| {
                    order.push(id.clone());
                    Vec::new()
                })
                .push(r);
        }
        let pick = |col: &Vec<f32>, rs: &[usize]| rs.iter().map(|&r| col[r]).collect::<Vec<f32>>();
        let (mut panel, mut columns, mut scaled) = (Vec::new(), vec![Vec::new(); series.columns.len()], Vec::new());
        scaled.resize(series.columns.len(), Vec::new());
        let mut stamps = series.timestamps.as_ref().map(|_| Vec::new());
        for id in order {
            let rs = &rows[id.as_str()];
            let part = Series {
                names: series.names.clone(),
                columns: series.columns.iter().map(|c| pick(c, rs)).collect(),
                timestamps: series.timestamps.as_ref().map(|t| rs.iter().map(|&r| t[r].clone()).collect()),
                ids: None,
            };
            let data = Self::from_series(part, n_targets, cfg, None)
                .map_err(|e| Error::setting(format!("series '{id}' (line {}): {e}", ids[rs[0]].1)))?;
            let offset = columns[0].len();
            for (c, col) in data.series.columns.iter().enumerate() {
                columns[c].extend_from_slice(col);
                scaled[c].extend_from_slice(&data.scaled[c]);
            }
            if let (Some(all), Some(t)) = (stamps.as_mut(), &data.series.timestamps) {
                all.extend(t.iter().cloned());
            }
            panel.push(Part { id, offset, data });
        }
        let first = &panel[0].data;
        Ok(Self {
            series: Series { names: series.names, columns, timestamps: stamps, ids: None },
            n_targets,
            scaled,
            scaler: first.scaler.clone(),
            train: first.train.clone(),
            valid: first.valid.clone(),
            test: first.test.clone(),
            season: first.season,
            panel,
        })
    }

    /// Reads (or generates) the series and splits it. The scaler is fitted
    /// on the training rows unless one is given (a checkpoint's).
    pub fn load(cfg: &SeriesConfig, seed: u64, scaler: Option<&Scaler>) -> Result<Self> {
        cfg.validate()?;
        let series = match &cfg.csv {
            Some(spec) => read_csv(spec)?,
            None => Series {
                names: vec!["value".into()],
                columns: vec![synthetic(cfg.synthetic_len, cfg.synthetic_seed.unwrap_or(seed))],
                timestamps: None,
                ids: None,
            },
        };
        let n_targets = cfg.csv.as_ref().map_or(1, |s| s.targets.len());
        Self::from_series(series, n_targets, cfg, scaler)
    }

    /// The first target that holds one value in every training row: its
    /// name, the value and the row count. Such a series leaves a forecaster
    /// nothing to learn, and MASE and the classical baselines undefined.
    pub fn constant_target(&self) -> Option<(&str, f32, usize)> {
        if let Some(p) = self.panel.iter().find(|p| p.data.constant_target().is_some()) {
            return p.data.constant_target();
        }
        self.series.names[..self.n_targets].iter().zip(&self.series.columns).find_map(|(name, col)| {
            let rows = &col[self.train.clone()];
            let first = *rows.first()?;
            rows.iter().all(|&v| v == first).then_some((name.as_str(), first, rows.len()))
        })
    }

    /// Splits and scales columns already read.
    pub fn from_series(
        mut series: Series,
        n_targets: usize,
        cfg: &SeriesConfig,
        scaler: Option<&Scaler>,
    ) -> Result<Self> {
        if let Some(ids) = series.ids.take() {
            // Each series is scaled on its own training rows: a checkpoint's scaler is not used.
            return Self::panel(series, ids, n_targets, cfg);
        }
        let (mut train, mut valid, mut test) = split(series.len(), cfg.valid_fraction, cfg.test_fraction);
        if cfg.fold > 0 {
            let back = cfg.fold * valid.len();
            if back >= train.len() {
                return Err(Error::config(
                    "data.fold",
                    format!(
                        "fold {} moves the validation block of {} rows before the series' start ({} training rows)",
                        cfg.fold,
                        valid.len(),
                        train.len()
                    ),
                ));
            }
            valid = valid.start - back..valid.end - back;
            (train, test) = (0..valid.start, valid.end..series.len());
        }
        let scaler = match scaler {
            Some(s) if s.shift.len() != series.columns.len() => {
                return Err(Error::config(
                    "model.scaler",
                    format!("has {} columns, the data {}", s.shift.len(), series.columns.len()),
                ))
            }
            Some(s) => s.clone(),
            None => Scaler::fit(cfg.scaler, &series.columns, train.clone()),
        };
        let scaled = series
            .columns
            .iter()
            .enumerate()
            .map(|(c, col)| col.iter().map(|&x| scaler.transform(c, x)).collect())
            .collect();
        let season = cfg.season.unwrap_or_else(|| {
            let x = &series.columns[0][train.clone()];
            super::season::infer_season(x, (x.len() / 3).min(500))
        });
        Ok(Self { series, n_targets, scaled, scaler, train, valid, test, season, panel: Vec::new() })
    }

    /// Starts of the windows whose `h` future values lie inside `rows`
    /// (their past may reach back before it), `stride` apart.
    pub fn starts(&self, rows: &std::ops::Range<usize>, l: usize, h: usize, stride: usize) -> Vec<usize> {
        // The shift core's starts over rows first..end, moved to start at `first`.
        let first = rows.start.saturating_sub(l);
        let len = rows.end.saturating_sub(first);
        crate::data::shift::forecast_starts(len, l, h, stride).into_iter().map(|s| s + first).collect()
    }

    /// A one-line summary for logs.
    pub fn describe(&self) -> String {
        if self.is_panel() {
            let sum = |f: &dyn Fn(&SeriesData) -> usize| self.panel.iter().map(|p| f(&p.data)).sum::<usize>();
            return format!(
                "{} series, {} rows × {} columns ({} train, {} validation, {} test, each series split on its own)",
                self.panel.len(),
                self.series.len(),
                self.series.columns.len(),
                sum(&|d| d.train.len()),
                sum(&|d| d.valid.len()),
                sum(&|d| d.test.len()),
            );
        }
        format!(
            "{} rows × {} columns ({} train, {} validation, {} test; season {})",
            self.series.len(),
            self.series.columns.len(),
            self.train.len(),
            self.valid.len(),
            self.test.len(),
            self.season
        )
    }
}

/// Chronological split of `len` rows: the first part trains, then
/// validation, then test (fractions of the whole, from the end).
pub fn split(
    len: usize,
    valid: f64,
    test: f64,
) -> (std::ops::Range<usize>, std::ops::Range<usize>, std::ops::Range<usize>) {
    let n_test = ((len as f64) * test).round() as usize;
    let n_valid = ((len as f64) * valid).round() as usize;
    let train_end = len.saturating_sub(n_test + n_valid);
    let valid_end = len.saturating_sub(n_test);
    (0..train_end, train_end..valid_end, valid_end..len)
}

/// How values are scaled before the model sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalerKind {
    /// (x − mean) / std
    #[default]
    ZScore,
    /// (x − min) / (max − min)
    MinMax,
}

/// A per-column affine scaling `(x − shift) / scale`, fitted on the training
/// rows only (so no test-period information leaks in) and saved with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// How it was fitted.
    pub kind: ScalerKind,
    /// Per-column shift: the mean (z-score) or the minimum (min-max).
    pub shift: Vec<f32>,
    /// Per-column scale: the std (z-score) or max − min (min-max); 1 for a constant column.
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Fits on `rows` of every column.
    pub fn fit(kind: ScalerKind, columns: &[Vec<f32>], rows: std::ops::Range<usize>) -> Self {
        let (mut shift, mut scale) = (Vec::new(), Vec::new());
        for col in columns {
            let xs = &col[rows.clone()];
            let n = xs.len().max(1) as f64;
            let (a, b) = match kind {
                ScalerKind::ZScore => {
                    let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / n;
                    let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
                ScalerKind::MinMax => {
                    let lo = xs.iter().copied().fold(f32::INFINITY, f32::min) as f64;
                    let hi = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    (lo, hi - lo)
                }
            };
            shift.push(a as f32);
            scale.push(if b > 1e-12 { b as f32 } else { 1.0 }); // a constant column stays finite
        }
        Self { kind, shift, scale }
    }

    /// Scales a raw value of `column`: `(x − shift) / scale`.
    pub fn transform(&self, column: usize, x: f32) -> f32 {
        (x - self.shift[column]) / self.scale[column]
    }

    /// Maps a scaled value of `column` back to raw units: `y · scale + shift`.
    pub fn inverse(&self, column: usize, y: f32) -> f32 {
        y * self.scale[column] + self.shift[column]
    }
}

/// The built-in series: `len` hourly values with a trend, daily (24) and
/// weekly (168) seasonality and Gaussian noise, seeded.
pub fn synthetic(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::Rng::derive(seed, "series");
    (0..len)
        .map(|t| {
            let t = t as f32;
            let daily = (2.0 * std::f32::consts::PI * t / 24.0).sin();
            let weekly = 0.5 * (2.0 * std::f32::consts::PI * t / 168.0).sin();
            10.0 + 0.002 * t + 2.0 * daily + weekly + 0.3 * rng.normal()
        })
        .collect()
}

/// `k` timestamps continuing `known` at its last interval, in the same
/// layout: numbers (`17`, `2.5`), dates (`2024-03-01`) and date-times
/// (`2024-03-01 13:00`, `2024-03-01T13:00:00.250`, with `Z` or an offset
/// such as `+02:00`, which is kept). Dates a whole number of months apart
/// (monthly, quarterly, yearly data; month ends stay month ends) continue in
/// calendar months, others by the same duration; the calendar is `jiff`'s.
/// Empty strings when the last two are not in one of these layouts, and an
/// error when the continuation leaves the calendar (or a number overflows).
pub fn extrapolate_timestamps(known: &[String], k: usize) -> Result<Vec<String>> {
    let n = known.len();
    if n < 2 {
        return Ok(vec![String::new(); k]);
    }
    let (a, b) = (known[n - 2].as_str(), known[n - 1].as_str());
    let overflow = || Error::config("timestamp", format!("continuing {a}, {b} for {k} steps overflows"));
    let k = i64::try_from(k).map_err(|_| overflow())?;
    if let (Ok(x), Ok(y)) = (a.parse::<i64>(), b.parse::<i64>()) {
        let step = y.checked_sub(x).ok_or_else(overflow)?;
        return (1..=k)
            .map(|i| Ok(i.checked_mul(step).and_then(|s| s.checked_add(y)).ok_or_else(overflow)?.to_string()))
            .collect();
    }
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        let next = |i: i64| Some(y + i as f64 * (y - x)).filter(|v| v.is_finite()).ok_or_else(overflow);
        return (1..=k).map(|i| Ok(format!("{}", next(i)?))).collect();
    }
    let (Some((x, xl)), Some((y, mut layout))) = (Stamp::parse(a), Stamp::parse(b)) else {
        return Ok(vec![String::new(); k as usize]);
    };
    if xl.suffix != layout.suffix {
        // Two offsets (a daylight-saving change): the civil step would be wrong.
        return Ok(vec![String::new(); k as usize]);
    }
    // Written as precisely as the more precise of the two (`…00.5`, `…01`).
    layout.seconds |= xl.seconds;
    layout.fraction = layout.fraction.max(xl.fraction);
    let months = (y.year() as i64 * 12 + y.month() as i64) - (x.year() as i64 * 12 + x.month() as i64);
    let month_end = |d: &jiff::civil::DateTime| d.day() == d.days_in_month();
    let calendar = x.time() == y.time() && months > 0 && (x.day() == y.day() || (month_end(&x) && month_end(&y)));
    let step = y.duration_since(x);
    (1..=k)
        .map(|i| {
            let next = if calendar {
                let span =
                    i.checked_mul(months).and_then(|m| jiff::Span::new().try_months(m).ok()).ok_or_else(overflow)?;
                let d = y.checked_add(span).map_err(|_| overflow())?;
                if month_end(&y) {
                    d.last_of_month()
                } else {
                    d
                }
            } else if step.is_positive() {
                let total = step.checked_mul(i32::try_from(i).map_err(|_| overflow())?).ok_or_else(overflow)?;
                y.checked_add(total).map_err(|_| overflow())?
            } else {
                return Ok(String::new());
            };
            Ok(layout.format(next))
        })
        .collect()
}

/// A timestamp in one of [`extrapolate_timestamps`]' date layouts as
/// seconds since 1970-01-01 00:00 in its own civil time (an offset or `Z`
/// is ignored), for plotting; `None` for anything else.
pub fn stamp_seconds(s: &str) -> Option<f64> {
    let (t, _) = Stamp::parse(s)?;
    Some(crate::chart::civil_seconds(t))
}

/// How a date-time was written, to write its continuation the same way.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    /// `None` for a date alone; else `' '` or `'T'` before the time.
    sep: Option<char>,
    /// Whether the time has seconds.
    seconds: bool,
    /// Digits after the decimal point of the seconds (0: none).
    fraction: usize,
    /// `Z`, an offset such as `+02:00`, or nothing: fixed, so kept as written.
    suffix: String,
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z|±HH:MM]`, parsed strictly.
struct Stamp;

impl Stamp {
    fn parse(s: &str) -> Option<(jiff::civil::DateTime, Layout)> {
        let b = s.as_bytes();
        // Digits only, read as bytes: no slicing inside a multi-byte character.
        let num = |r: std::ops::Range<usize>| {
            b.get(r)
                .filter(|t| !t.is_empty() && t.iter().all(|c| c.is_ascii_digit()))
                .map(|t| t.iter().fold(0i64, |acc, c| acc * 10 + (c - b'0') as i64))
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let date = jiff::civil::Date::new(num(0..4)? as i16, num(5..7)? as i8, num(8..10)? as i8).ok()?;
        let mut layout = Layout { sep: None, seconds: false, fraction: 0, suffix: String::new() };
        if b.len() == 10 {
            return Some((date.to_datetime(jiff::civil::Time::midnight()), layout));
        }
        let sep = b[10] as char;
        if !(sep == ' ' || sep == 'T') || b.get(13) != Some(&b':') {
            return None;
        }
        layout.sep = Some(sep);
        let (hour, minute) = (num(11..13)?, num(14..16)?);
        let (mut second, mut nanos, mut at) = (0, 0, 16);
        if b.get(16) == Some(&b':') {
            second = num(17..19)?;
            layout.seconds = true;
            at = 19;
            if b.get(19) == Some(&b'.') {
                let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
                if !(1..=9).contains(&digits) {
                    return None;
                }
                nanos = num(20..20 + digits)? * 10i64.pow(9 - digits as u32);
                layout.fraction = digits;
                at = 20 + digits;
            }
        }
        let suffix = std::str::from_utf8(&b[at..]).ok()?;
        let offset = suffix.as_bytes();
        let is_offset = offset.len() == 6
            && (offset[0] == b'+' || offset[0] == b'-')
            && offset[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| offset[i].is_ascii_digit());
        if !(suffix.is_empty() || suffix == "Z" || is_offset) {
            return None;
        }
        layout.suffix = suffix.to_string();
        let time = jiff::civil::Time::new(hour as i8, minute as i8, second as i8, nanos as i32).ok()?;
        Some((date.to_datetime(time), layout))
    }
}

impl Layout {
    fn format(&self, t: jiff::civil::DateTime) -> String {
        let date = format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day());
        let Some(sep) = self.sep else { return date };
        let mut s = format!("{date}{sep}{:02}:{:02}", t.hour(), t.minute());
        if self.seconds {
            s += &format!(":{:02}", t.second());
            if self.fraction > 0 {
                let nanos = format!("{:09}", t.subsec_nanosecond());
                s += &format!(".{}", &nanos[..self.fraction]);
            }
        }
        s + &self.suffix
    }
}

/// Whether `path` names a CSV file (forecasting data).
pub fn is_csv(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolling_origin_fold_moves_validation_back_and_trains_before_it() {
        let series = |n: usize| Series {
            names: vec!["y".into()],
            columns: vec![(0..n).map(|t| t as f32).collect()],
            timestamps: None,
            ids: None,
        };
        let cfg = |fold| SeriesConfig { fold, season: Some(1), ..Default::default() };
        let s = SeriesData::from_series(series(100), 1, &cfg(0), None).unwrap();
        assert_eq!((s.train, s.valid, s.test), (0..70, 70..80, 80..100));
        let s = SeriesData::from_series(series(100), 1, &cfg(2), None).unwrap();
        assert_eq!((s.train.clone(), s.valid, s.test), (0..50, 50..60, 60..100));
        // The scaler is the fold's: fitted on its own training rows.
        assert!((s.scaler.shift[0] - 24.5).abs() < 1e-4, "{:?}", s.scaler);
        let e = SeriesData::from_series(series(100), 1, &cfg(7), None).unwrap_err().to_string();
        assert!(e.contains("data.fold") && e.contains("fold 7"), "{e}");
    }

    /// Quoted fields with the delimiter or a newline inside, `;` and tab
    /// delimiters: what the hand-written splitter got wrong.
    #[test]
    fn csv_quoting_and_delimiters_are_read_as_spreadsheets_write_them() {
        let d = tempfile::tempdir().unwrap();
        let spec = |name: &str, text: &str| {
            let path = d.path().join(name);
            std::fs::write(&path, text).unwrap();
            SeriesSpec {
                path,
                targets: vec!["sales".into()],
                covariates: vec![],
                timestamp: Some("note".into()),
                fill: FillPolicy::Error,
                id: None,
            }
        };
        let s = read_csv(&spec("q.csv", "note,sales\n\"a, b\",1.5\n\"two\nlines\",2\n\"say \"\"hi\"\"\",3\n")).unwrap();
        assert_eq!(s.columns[0], vec![1.5, 2.0, 3.0]);
        assert_eq!(s.timestamps.unwrap(), vec!["a, b", "two\nlines", "say \"hi\""]);
        let s = read_csv(&spec("semi.csv", "note;sales\nx;1\ny;2\n")).unwrap();
        assert_eq!(s.columns[0], vec![1.0, 2.0]);
        let s = read_csv(&spec("tab.csv", "note\tsales\nx\t4\n")).unwrap();
        assert_eq!(s.columns[0], vec![4.0]);
        // A bad cell after a multi-line field is reported at its own line.
        let e = read_csv(&spec("bad.csv", "note,sales\n\"a\nb\",1\nc,oops\n")).unwrap_err().to_string();
        assert!(e.contains("bad.csv:4") && e.contains("'oops' is not a number"), "{e}");
    }

    fn spec(dir: &Path, text: &str, fill: FillPolicy) -> SeriesSpec {
        let path = dir.join("s.csv");
        std::fs::write(&path, text).unwrap();
        SeriesSpec {
            path,
            targets: vec!["load".into()],
            covariates: vec!["temp".into()],
            timestamp: Some("date".into()),
            fill,
            id: None,
        }
    }

    #[test]
    fn reads_columns_and_names_bad_cells_by_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let text = "date,temp,load\n2024-01-01,\"1,5\",10\n2024-01-02,2.5,11\n2024-01-03,3,x\n";
        let e = read_csv(&spec(dir.path(), text, FillPolicy::Error)).unwrap_err().to_string();
        assert!(e.contains("s.csv:2") && e.contains("column 'temp'") && e.contains("'1,5'"), "{e}");
        let text = "date,temp,load\n2024-01-01,1.5,10\n2024-01-02,2.5,11\n2024-01-03,3,x\n";
        let e = read_csv(&spec(dir.path(), text, FillPolicy::Error)).unwrap_err().to_string();
        assert!(e.contains("s.csv:4") && e.contains("column 'load'") && e.contains("'x' is not a number"), "{e}");
        let s = read_csv(&spec(dir.path(), text, FillPolicy::Forward)).unwrap();
        assert_eq!(s.columns, vec![vec![10.0, 11.0, 11.0], vec![1.5, 2.5, 3.0]]);
        assert_eq!(s.timestamps.as_ref().unwrap()[2], "2024-01-03");
        let s = read_csv(&spec(dir.path(), text, FillPolicy::Zero)).unwrap();
        assert_eq!(s.columns[0][2], 0.0);
        let e = read_csv(&spec(dir.path(), "date,temp\n1,2\n", FillPolicy::Error)).unwrap_err().to_string();
        assert!(e.contains("no column 'load'") && e.contains("date, temp"), "{e}");
        let e = read_csv(&spec(dir.path(), "date,temp,load\n", FillPolicy::Error)).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn the_scaler_sees_only_the_training_rows() {
        let mut col: Vec<f32> = (0..100).map(|v| v as f32).collect();
        let (train, _, test) = split(col.len(), 0.1, 0.2);
        assert_eq!((train.clone(), test.clone()), (0..70, 80..100));
        let a = Scaler::fit(ScalerKind::ZScore, &[col.clone()], train.clone());
        // Changing the test period changes nothing the scaler knows.
        col[test].iter_mut().for_each(|v| *v *= 1000.0);
        let b = Scaler::fit(ScalerKind::ZScore, &[col.clone()], train.clone());
        assert_eq!(a, b);
        assert!((a.shift[0] - 34.5).abs() < 1e-4);
        let m = Scaler::fit(ScalerKind::MinMax, &[col.clone()], train);
        assert_eq!((m.transform(0, 0.0), m.transform(0, 69.0)), (0.0, 1.0));
        assert!((m.inverse(0, m.transform(0, 12.5)) - 12.5).abs() < 1e-5);
        // The loaded dataset scales with the training rows only, and its
        // windows keep their futures inside their own split.
        let cfg = SeriesConfig::default();
        let series = Series { names: vec!["v".into()], columns: vec![col], timestamps: None, ids: None };
        let d = SeriesData::from_series(series, 1, &cfg, None).unwrap();
        assert_eq!(d.scaler, a);
        let starts = d.starts(&d.test, 10, 3, 1);
        assert_eq!((starts[0], *starts.last().unwrap()), (70, 87));
        assert!(d.starts(&d.train, 10, 3, 1).iter().all(|s| s + 13 <= 70));
        assert!(d.starts(&(0..12), 10, 3, 1).is_empty());
    }

    #[test]
    fn dates_become_seconds_for_plots() {
        assert_eq!(stamp_seconds("1970-01-02"), Some(86_400.0));
        assert_eq!(stamp_seconds("1969-12-31T23:59:30.5Z"), Some(-29.5));
        assert_eq!(stamp_seconds("2024-03-01 13:00+02:00"), stamp_seconds("2024-03-01T13:00"));
        for s in ["1990", "mon", "2024-13-01", ""] {
            assert_eq!(stamp_seconds(s), None, "{s}");
        }
    }

    #[test]
    fn timestamps_continue_at_their_last_interval() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(extrapolate_timestamps(&s(&["3", "5"]), 2).unwrap(), s(&["7", "9"]));
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-02-27", "2024-02-28"]), 2).unwrap(),
            s(&["2024-02-29", "2024-03-01"])
        );
        assert_eq!(extrapolate_timestamps(&s(&["2001-12-22", "2001-12-29"]), 1).unwrap(), s(&["2002-01-05"]));
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-03-31 22:00", "2024-03-31 23:00"]), 2).unwrap(),
            s(&["2024-04-01 00:00", "2024-04-01 01:00"])
        );
        assert_eq!(
            extrapolate_timestamps(&s(&["1969-12-31T23:59:30", "1969-12-31T23:59:45"]), 1).unwrap(),
            s(&["1970-01-01T00:00:00"])
        );
        assert_eq!(extrapolate_timestamps(&s(&["mon", "tue"]), 1).unwrap(), s(&[""]));
        // Calendar months: monthly, month ends, quarterly, yearly.
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-01-01", "2024-02-01"]), 2).unwrap(),
            s(&["2024-03-01", "2024-04-01"])
        );
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-01-31", "2024-02-29"]), 2).unwrap(),
            s(&["2024-03-31", "2024-04-30"])
        );
        assert_eq!(extrapolate_timestamps(&s(&["2023-11-15", "2024-02-15"]), 1).unwrap(), s(&["2024-05-15"]));
        assert_eq!(extrapolate_timestamps(&s(&["2020-01-01", "2021-01-01"]), 1).unwrap(), s(&["2022-01-01"]));
        // Never a panic on odd text, and no half-parsed layouts.
        assert_eq!(extrapolate_timestamps(&s(&["2024-01-01 1時0", "2024-01-01 1時0"]), 1).unwrap(), s(&[""]));
        assert_eq!(extrapolate_timestamps(&s(&["2024-01-01 13:00.05", "2024-01-01 14:00.05"]), 1).unwrap(), s(&[""]));
        assert_eq!(extrapolate_timestamps(&s(&["x"]), 1).unwrap(), s(&[""]));
        // UTC and offsets are kept, fractional seconds continue.
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-12-31T23:00:00Z", "2024-12-31T23:30:00Z"]), 2).unwrap(),
            s(&["2025-01-01T00:00:00Z", "2025-01-01T00:30:00Z"])
        );
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-03-01T12:00+02:00", "2024-03-01T13:00+02:00"]), 1).unwrap(),
            s(&["2024-03-01T14:00+02:00"])
        );
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-03-01 12:00:00.250", "2024-03-01 12:00:00.750"]), 2).unwrap(),
            s(&["2024-03-01 12:00:01.250", "2024-03-01 12:00:01.750"])
        );
        assert_eq!(
            extrapolate_timestamps(&s(&["2024-03-01 12:00:00.5", "2024-03-01 12:00:01"]), 2).unwrap(),
            s(&["2024-03-01 12:00:01.5", "2024-03-01 12:00:02.0"])
        );
        // A change of offset: no continuation rather than a wrong one.
        let dst = extrapolate_timestamps(&s(&["2024-03-31T01:00+01:00", "2024-03-31T03:00+02:00"]), 1).unwrap();
        assert_eq!(dst, s(&[""]));
        assert!(extrapolate_timestamps(&s(&["1e308", "1.7e308"]), 3).is_err());
        // Past the end of the calendar: an error, not a wrapped date.
        let e = extrapolate_timestamps(&s(&["9000-01-01", "9999-01-01"]), 2).unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        // Overflow is an error naming the timestamps, not a wrapped number.
        let e = extrapolate_timestamps(&s(&["0", "9223372036854775000"]), 3).unwrap_err().to_string();
        assert!(e.contains("timestamp") && e.contains("overflows"), "{e}");
    }

    #[test]
    fn the_synthetic_series_is_seeded_and_seasonal() {
        assert_eq!(synthetic(50, 1), synthetic(50, 1));
        assert_ne!(synthetic(50, 1), synthetic(50, 2));
        let x = synthetic(24 * 200, 3);
        assert_eq!(crate::data::season::infer_season(&x, 200), 24);
    }
}
