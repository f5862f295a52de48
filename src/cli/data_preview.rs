//! `shiftlm data preview`

use super::DataArgs;
use anyhow::Context;
use shiftlm::config::RunConfig;
use shiftlm::data::augment::Augment;
use shiftlm::data::images::{self, ImageSource};
use shiftlm::data::loader::{PairLoader, WindowLoader};
use shiftlm::data::{Dataset, Splits, Tokenizer};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Print a few training batches the way a person checks a shift.

For each example, columns line up by decoder position:
  source      what the encoder reads
  decoder in  [BOS] + target   (what the decoder reads)
  labels      target + [EOS]   (what it must predict; '·' = padding, ignored)
Every supervised label equals the decoder input one column to its right.

Examples:
  shiftlm data preview
  shiftlm data preview --task sort --batches 1 --batch-size 3
  shiftlm data preview --data pairs.tsv
  shiftlm data preview --model gpt --data input.txt     (inputs x[0..T], labels x[1..T+1])

Images (--task digits, --task fashion-mnist, or --data DIR) are drawn instead:
a PNG grid with one training image per row, then copies of it as --augment
perturbs them; digit strips (--task digit-strings) likewise, each labelled
with what it reads.
  shiftlm data preview --task digits --augment shift=2,rotate=15 --out digits.png
  shiftlm data preview --task digit-strings --augment shift=3 --out strips.png";

#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Images: the augmentation to show, shift=K[,rotate=DEG][,mode=zero|wrap] (see train).
    #[arg(long, value_name = "SPEC")]
    pub augment: Option<String>,
    /// Images: where to write the grid of samples (default preview.png).
    #[arg(long, value_name = "FILE.png")]
    pub out: Option<PathBuf>,
    /// Batches to show.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub batches: usize,
    /// Examples per batch.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub batch_size: usize,
}

pub fn run(a: PreviewArgs) -> anyhow::Result<()> {
    a.data.check_task_data()?;
    match a.data.image_source() {
        Some(source) if !a.data.is_strings() && !a.data.is_speech() => return preview_images(&source, &a),
        _ => {}
    }
    if (a.augment.is_some() || a.out.is_some()) && !a.data.is_strings() && !a.data.is_speech() {
        anyhow::bail!(
            "--augment and --out preview images: use --task digits, --task fashion-mnist, --task digit-strings or --data DIR"
        );
    }
    let cfg = a.data.resolve()?;
    super::data_speech::ensure_for(&cfg)?;
    a.data.check_bpe_vocab(&cfg)?;
    cfg.validate()?;
    let (data, tok) = shiftlm::data::load(&cfg.data, cfg.train.seed, None)?;
    match data {
        Dataset::Series(s) => preview_series(&cfg, &s, &a),
        Dataset::Images(_) => match &cfg.data {
            shiftlm::config::DataConfig::Images(c) => preview_images(&c.source, &a),
            _ => unreachable!("images come from an images data config"),
        },
        Dataset::Strips(d) => preview_strips(&d, &a),
        Dataset::Speech(d) => preview_speech(&d, &a),
        Dataset::Pairs(s) => preview_pairs(&cfg, s, &tok, &a),
        Dataset::Text { train, .. } => preview_text(&cfg, train, &tok, &a),
        Dataset::Chat { train, .. } => preview_chat(&train, &tok, &a),
    }
}

/// Conversations as the model reads them, the supervised (assistant)
/// tokens between ⟦ and ⟧.
fn preview_chat(train: &[shiftlm::data::chat::Dialogue], tok: &Tokenizer, a: &PreviewArgs) -> anyhow::Result<()> {
    println!(
        "{} training conversations, vocabulary {} ids; the loss covers the tokens between ⟦ and ⟧ (the assistant turns)",
        train.len(),
        tok.vocab_size()
    );
    for (k, d) in train.iter().take(a.batches * a.batch_size.max(1)).enumerate() {
        let mut text = String::new();
        let mut inside = false;
        for (&id, &sup) in d.ids.iter().zip(&d.supervised) {
            if sup != inside {
                text.push(if sup { '⟦' } else { '⟧' });
                inside = sup;
            }
            text += &tok.token_str(id);
        }
        if inside {
            text.push('⟧');
        }
        println!(
            "
conversation {} ({} tokens)
{text}",
            k + 1,
            d.ids.len()
        );
    }
    Ok(())
}

/// Text windows: inputs x[0..T] over labels x[1..T+1].
fn preview_text(cfg: &RunConfig, train: Vec<u32>, tok: &Tokenizer, a: &PreviewArgs) -> anyhow::Result<()> {
    let ctx = cfg.model.context().unwrap_or(16).min(16);
    if train.len() <= ctx {
        anyhow::bail!("the text has only {} tokens", train.len());
    }
    let mut loader = WindowLoader::new(train, a.batch_size.max(1), ctx, cfg.train.seed)?;
    println!("vocabulary {} ids; windows of {ctx} tokens shown (the model's context is longer)", tok.vocab_size());
    for bi in 0..a.batches {
        let b = loader.next_batch();
        println!("\nbatch {}", bi + 1);
        for i in 0..b.b {
            let row = |v: &[u32]| {
                v[i * b.t..(i + 1) * b.t]
                    .iter()
                    .map(|&id| format!("{:>4}", tok.token_str(id).escape_debug().to_string()))
                    .collect::<String>()
            };
            println!("  window {}\n    inputs {}\n    labels {}", i + 1, row(&b.inputs), row(&b.labels));
        }
    }
    Ok(())
}

/// Pairs, column by column: source, decoder input and labels.
fn preview_pairs(cfg: &RunConfig, splits: Splits, tok: &Tokenizer, a: &PreviewArgs) -> anyhow::Result<()> {
    let mut loader = PairLoader::new(splits.train, a.batch_size.max(1), cfg.train.seed)?;
    let vocab = match tok {
        Tokenizer::Pair { source, target } => {
            format!("vocabularies of {} source and {} target ids", source.vocab_size(), target.vocab_size())
        }
        t => format!("vocabulary {} ids", t.vocab_size()),
    };
    println!("{} training pairs, {vocab} (0 <pad>, 1 <s>, 2 </s>, 3 <unk>)", loader.len());
    for bi in 0..a.batches {
        let batch = loader.next_batch();
        println!(
            "\nbatch {} — padded to source length {} and decoder length {}; {} supervised labels",
            bi + 1,
            batch.s,
            batch.t,
            batch.n_supervised
        );
        for i in 0..batch.b {
            let width = batch.s.max(batch.t);
            let cell = |ids: &[u32], mask: &[f32], j: usize, tok: &Tokenizer| -> String {
                match (ids.get(j), mask.get(j)) {
                    (Some(&id), Some(&m)) if m > 0.0 => tok.token_str(id),
                    (Some(_), Some(_)) => "·".to_string(),
                    _ => String::new(),
                }
            };
            let src = &batch.src[i * batch.s..(i + 1) * batch.s];
            let src_m = &batch.src_mask[i * batch.s..(i + 1) * batch.s];
            let dec = &batch.dec_in[i * batch.t..(i + 1) * batch.t];
            let lab = &batch.labels[i * batch.t..(i + 1) * batch.t];
            let lab_m = &batch.label_mask[i * batch.t..(i + 1) * batch.t];
            let rows: Vec<(&str, Vec<String>)> = vec![
                ("position", (0..width).map(|j| j.to_string()).collect()),
                ("source", (0..width).map(|j| cell(src, src_m, j, tok.source())).collect()),
                ("decoder in", (0..width).map(|j| cell(dec, lab_m, j, tok)).collect()),
                ("labels", (0..width).map(|j| cell(lab, lab_m, j, tok)).collect()),
            ];
            let w = rows.iter().flat_map(|(_, r)| r.iter().map(|c| c.chars().count())).max().unwrap_or(1).max(2);
            println!("  example {}", i + 1);
            for (name, cells) in rows {
                let line: String = cells.iter().map(|c| format!(" {c:>w$}")).collect();
                println!("    {name:<10}{}", line.trim_end());
            }
        }
    }
    Ok(())
}

/// Forecasting windows as the model sees them (scaled): the end of the past,
/// the decoder's shifted input and the values it is scored on.
fn preview_series(
    cfg: &shiftlm::config::RunConfig,
    s: &shiftlm::data::series::SeriesData,
    a: &PreviewArgs,
) -> anyhow::Result<()> {
    let shiftlm::model::ModelConfig::Forecaster(m) = &cfg.model else { anyhow::bail!("not a forecasting config") };
    let (l, h) = (m.context, m.horizon);
    println!("{}", s.describe());
    let whose = if s.is_panel() { "each series' own training rows'" } else { "the training rows'" };
    println!(
        "columns {} (targets first: {}); values scaled with {whose} {:?}",
        s.series.names.join(", "),
        s.n_targets,
        s.scaler.kind
    );
    // Windows from every series (long format), each named by its series and row there.
    let starts = s.split_starts(|d| &d.train, l, h, 1);
    let place = |st: usize| match s.panel.iter().rev().find(|p| p.offset <= st) {
        Some(p) => format!("row {} of series '{}'", st - p.offset, p.id),
        None => format!("row {st}"),
    };
    let shown = (a.batches * a.batch_size).max(1);
    let f = |v: &[f32]| v.iter().map(|x| format!("{x:>7.3}")).collect::<String>();
    for &st in starts.iter().step_by((starts.len() / shown).max(1)).take(shown) {
        let b = shiftlm::data::shift::ForecastBatch::new(&s.scaled[..1], 1, &[st], l, h, true);
        let k = h.min(6);
        println!("\nwindow at {}: past {l} steps, horizon {h} (first {k} shown)", place(st));
        println!("  past (last {k})  {}", f(&b.past[l - k..]));
        println!("  decoder reads   {}", f(&b.dec_in.as_deref().unwrap_or_default()[..k]));
        println!("  scored on       {}", f(&b.labels[..k]));
    }
    Ok(())
}

/// Digit strips: a PNG grid, one training strip per row (labelled with what
/// it reads) followed by three augmented copies of it.
fn preview_strips(d: &shiftlm::data::images::strips::StripData, a: &PreviewArgs) -> anyhow::Result<()> {
    let title = |spec: &str| format!("digit strips from {}: each strip, then 3 draws of {spec}", d.source);
    let (out, n, spec) = write_grid(&d.train.images, &|i| d.train.texts[i].clone(), 3, 256, &title, a)?;
    println!("{}", d.describe());
    println!("wrote {} ({n} strips, each then 3 draws of {spec})", out.display());
    Ok(())
}

/// Speech: the sets, the first training clips with what they say, and a
/// PNG of their log-mel features (low frequencies at the bottom), each
/// followed by three draws of `--augment`.
fn preview_speech(d: &shiftlm::data::audio::speech::SpeechData, a: &PreviewArgs) -> anyhow::Result<()> {
    use shiftlm::data::audio::augment::SpeechAugment;
    println!("{}", d.describe());
    if !d.classes.is_empty() {
        println!("keywords: {}", d.classes.join(", "));
    }
    let rate = shiftlm::data::audio::SAMPLE_RATE as f32;
    let n = (a.batches * a.batch_size).clamp(1, 64).min(d.train.len());
    for i in 0..n {
        let secs = d.train.audio[i].len() as f32 / rate;
        println!("  {:>6.2} s  {:<12} {}", secs, d.train.texts[i], d.train.paths[i].display());
    }
    let aug = SpeechAugment::parse(a.augment.as_deref().unwrap_or("none"))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("preview.png"));
    shiftlm::io::check_new(&out, true, &[])?;
    let mut rng = shiftlm::rng::Rng::derive(a.data.seed.unwrap_or(0), "augment");
    let (h, w) = (d.features.cfg.n_mels, d.frames());
    // Rows flipped (high bands on top) and scaled from [0, 2] to [0, 1].
    let image = |f: Vec<f32>| -> Vec<f32> {
        (0..h)
            .rev()
            .flat_map(|r| f[r * w..(r + 1) * w].iter().map(|v| (v / 2.0).clamp(0.0, 1.0)).collect::<Vec<_>>())
            .collect()
    };
    let copies = if aug.is_identity() { 0 } else { 3 };
    let rows = (0..n)
        .map(|i| {
            let clip = &d.train.audio[i];
            let draws = (0..copies).map(|_| image(d.augmented(clip, &aug, &mut rng)));
            (d.train.texts[i].clone(), std::iter::once(image(d.features_at(clip, 0))).chain(draws).collect())
        })
        .collect();
    let spec = if aug.is_identity() { "no augmentation".to_string() } else { a.augment.clone().unwrap_or_default() };
    let title = format!("{}: log-mel features ({h} bands x {w} frames), then 3 draws of {spec}", d.source);
    let grid = shiftlm::chart::ImageGrid { title, rows, width: w, height: h, scale: if w > 200 { 1 } else { 2 } };
    shiftlm::io::write_atomic(&out, &grid.to_png()).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} ({n} clips)", out.display());
    Ok(())
}

/// Images: a PNG grid, one training image per row followed by seven
/// augmented copies of it.
fn preview_images(source: &ImageSource, a: &PreviewArgs) -> anyhow::Result<()> {
    let sets = images::load(source)?;
    let set = &sets.train;
    let title = |spec: &str| format!("{}: each image, then 7 draws of {spec}", sets.source);
    let (out, n, spec) = write_grid(set, &|i| set.classes[set.labels[i] as usize].clone(), 7, 64, &title, a)?;
    println!(
        "{}: {} training and {} test images of {}×{}, {} classes ({})",
        sets.source,
        set.len(),
        sets.test.len(),
        set.width,
        set.height,
        set.classes.len(),
        set.classes.join(", ")
    );
    println!("wrote {} ({n} images, each then 7 draws of {spec})", out.display());
    Ok(())
}

/// Writes a PNG grid of `set`'s first images (`--batches` × `--batch-size`,
/// at most 64), each labelled by `label` and followed by `copies` draws of
/// `--augment`, scaled to about `side` pixels; returns the file, the rows
/// drawn and the augmentation as said in the title.
fn write_grid(
    set: &images::Images,
    label: &dyn Fn(usize) -> String,
    copies: usize,
    side: usize,
    title: &dyn Fn(&str) -> String,
    a: &PreviewArgs,
) -> anyhow::Result<(PathBuf, usize, String)> {
    let aug = Augment::parse(a.augment.as_deref().unwrap_or("none"))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("preview.png"));
    shiftlm::io::check_new(&out, true, &[])?;
    let n = (a.batches * a.batch_size).clamp(1, 64).min(set.len());
    let mut rng = shiftlm::rng::Rng::derive(a.data.seed.unwrap_or(0), "augment");
    let (w, h) = (set.width, set.height);
    let rows: Vec<(String, Vec<Vec<f32>>)> = (0..n)
        .map(|i| {
            let img = set.image_f32(i);
            let draws = (0..copies).map(|_| aug.apply(&img, w, h, &mut rng));
            (label(i), std::iter::once(img.clone()).chain(draws).collect())
        })
        .collect();
    let spec = if aug.is_identity() { "no augmentation".to_string() } else { a.augment.clone().unwrap_or_default() };
    let grid = shiftlm::chart::ImageGrid {
        title: title(&spec),
        rows,
        width: w,
        height: h,
        scale: (side / w.max(h)).clamp(1, 8),
    };
    shiftlm::io::write_atomic(&out, &grid.to_png()).with_context(|| format!("writing {}", out.display()))?;
    Ok((out, n, spec))
}
