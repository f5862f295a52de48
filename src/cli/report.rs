//! Human-readable reports: a metrics table and decoded examples.

use shiftlm::api::Example;
use shiftlm::eval::{CausalReport, EvalReport};

pub fn print_metrics(r: &EvalReport) {
    println!("evaluation on {} examples ({} supervised tokens):", r.examples, r.tokens);
    println!("  loss                      {:.4}", r.loss);
    println!("  perplexity                {:.4}", r.perplexity);
    println!("  token accuracy (forced)   {:.2}%", 100.0 * r.token_accuracy);
    println!("  token accuracy (free)     {:.2}%", 100.0 * r.free_running_token_accuracy);
    println!("  macro F1 (forced)         {:.4}", r.macro_f1);
    println!("  exact match (forced)      {:.2}%", 100.0 * r.teacher_forced_exact_match);
    println!("  exact match (free)        {:.2}%", 100.0 * r.exact_match);
    if let (Some(b), Some(c)) = (r.bleu, r.chrf) {
        println!("  BLEU / chrF2 (free)       {b:.2} / {c:.2}");
    }
}

pub fn print_examples(examples: &[Example]) {
    if examples.is_empty() {
        return;
    }
    println!("examples (free-running decoding):");
    for e in examples {
        let mark = if e.correct { "ok  " } else { "MISS" };
        println!("  {mark} source {}", e.source);
        println!("       target {}", e.target);
        println!("       output {}", e.output);
    }
}

pub fn print_causal(r: &CausalReport) {
    println!("evaluation on {} held-out tokens:", r.tokens);
    println!("  loss                      {:.4}", r.loss);
    println!("  perplexity                {:.4}", r.perplexity);
    println!("  next-token accuracy       {:.2}%", 100.0 * r.token_accuracy);
    println!("  macro F1                  {:.4}", r.macro_f1);
}

/// Any serialisable report as one JSON object, plus extra fields.
pub fn json_value<T: serde::Serialize>(r: &T, extra: serde_json::Value) -> String {
    let mut v = serde_json::to_value(r).expect("report serialises");
    if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v.to_string()
}

/// A global forecaster of many series: a line per series (its MASE, the best
/// baseline's), then the means over the series as [`print_forecast`] shows one.
pub fn print_panel(r: &shiftlm::eval::forecast::PanelReport, what: &str) {
    println!("{} series, each on its own {what}:", r.series.len());
    println!("  {:<20}{:>9}{:>12}  best baseline", "series", "windows", "MASE");
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for s in &r.series {
        let best = s
            .report
            .baselines
            .all()
            .into_iter()
            .filter_map(|(name, m)| m.mase.map(|v| (v, name)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let best = best.map_or("-".to_string(), |(v, name)| format!("{v:.4} {name}"));
        println!("  {:<20}{:>9}{:>12}  {best}", s.id, s.report.windows, f(s.report.model.mase));
    }
    print_forecast(&r.mean, &format!("{what}, the mean over {} series", r.series.len()));
}

/// A forecaster's metrics beside the baselines: naive, seasonal naive, and
/// the classical models fitted on the training rows (AR, ETS, Theta).
pub fn print_forecast(r: &shiftlm::eval::forecast::ForecastReport, what: &str) {
    let b = &r.baselines;
    println!(
        "forecast accuracy on the {what}: {} windows × horizon {} (season {}; MASE < 1 beats seasonal naive in-sample)",
        r.windows, r.horizon, r.season
    );
    println!("  {:<18}{:>10}{:>10}{:>10}{:>10}{:>10}", "", "MASE", "MAE", "RMSE", "sMAPE %", "MAPE %");
    let mut rows = vec![("naive".to_string(), &b.naive), ("seasonal naive".to_string(), &b.seasonal_naive)];
    rows.extend([&b.ar, &b.ets, &b.theta].into_iter().flatten().map(|c| (c.model.clone(), &c.metrics)));
    for (name, m) in std::iter::once(("model".to_string(), &r.model)).chain(rows.iter().cloned()) {
        let mape = m.mape.map_or("-".to_string(), |v| format!("{v:.2}"));
        let mase = m.mase.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!("  {name:<18}{mase:>10}{:>10.4}{:>10.4}{:>10.2}{mape:>10}", m.mae, m.rmse, m.smape);
    }
    for iv in r.intervals.iter().flatten() {
        let how = match (iv.calibrated, iv.coverage_uncalibrated) {
            (true, Some(raw)) => format!(" (calibrated on the validation split; the head's own: {:.1}%)", 100.0 * raw),
            (true, None) => " (conformal, from the errors on the validation split)".to_string(),
            _ => " (not calibrated: the validation split has no window, or is among the rows scored)".to_string(),
        };
        println!(
            "  {:.0}% interval (quantiles {}–{}): covers {:.1}% of the actual values{how}",
            100.0 * iv.level,
            iv.lower,
            iv.upper,
            100.0 * iv.coverage
        );
    }
    if let Some(w) = r.wql {
        println!("  weighted quantile loss (mean over levels): {w:.4}");
    }
    // The best baseline by MAE (MASE is MAE over one shared scale, so the
    // order is the same where MASE is defined).
    let Some((best_name, best)) = rows.iter().min_by(|a, b| a.1.mae.total_cmp(&b.1.mae)) else { return };
    let verdict = if r.model.mae == best.mae && r.model.rmse == best.rmse {
        "is the best baseline" // (--model auto chose it)
    } else if r.model.mae < best.mae {
        "beats every baseline"
    } else {
        "does NOT beat the best baseline"
    };
    match (r.model.mase, best.mase) {
        (Some(m), Some(bm)) => println!("  the model {verdict} (MASE {m:.3} vs {bm:.3}, {best_name})"),
        _ => println!(
            "  the model {verdict} (MAE {:.4} vs {:.4}, {best_name}); MASE is undefined: the training rows are no longer than the season ({}) or do not change over it",
            r.model.mae, best.mae, r.season
        ),
    }
}

/// An image classifier's accuracy, confusion matrix and robustness to shifts.
pub fn print_strips(r: &shiftlm::eval::strips::StripReport, what: &str) {
    println!(
        "{what}: {} strips, exact match {:.2}%, character error rate {:.2}%, loss {:.4}",
        r.strips,
        100.0 * r.exact_match,
        100.0 * r.cer,
        r.loss
    );
    for e in &r.examples {
        println!("  {} {:>8} → {}", if e.correct { "✓" } else { "✗" }, e.target, e.output);
    }
    let curve: Vec<String> = r.shift_curve.iter().map(|p| format!("{}: {:.1}%", p.shift, 100.0 * p.accuracy)).collect();
    println!("exact match by shift (pixels, random direction): {}", curve.join(", "));
    let cons: Vec<String> = r.consistency.iter().map(|(k, v)| format!("±{k}: {:.1}%", 100.0 * v)).collect();
    println!("consistency (two random shifts read the same): {}", cons.join(", "));
}

/// A speech model's report: accuracy or exact match/CER/WER, the shift
/// curve and consistency, and the unseen engine's figures.
pub fn print_speech(r: &shiftlm::eval::speech::SpeechReport, what: &str) {
    match (r.accuracy, r.exact_match) {
        (Some(acc), _) => println!("{what}: {} clips, accuracy {:.2}%, loss {:.4}", r.clips, 100.0 * acc, r.loss),
        (None, exact) => println!(
            "{what}: {} clips, exact match {:.2}%, CER {:.2}%, WER {:.2}%, loss {:.4}",
            r.clips,
            100.0 * exact.unwrap_or(0.0),
            100.0 * r.cer.unwrap_or(0.0),
            100.0 * r.wer.unwrap_or(0.0),
            r.loss
        ),
    }
    for e in &r.examples {
        println!("  {} {:>8} → {}", if e.correct { "✓" } else { "✗" }, e.target, e.output);
    }
    let curve: Vec<String> = r
        .shift_curve
        .iter()
        .map(|p| match p.cer {
            Some(c) => format!("±{} ms: {:.1}% (CER {:.2}%)", p.shift_ms, 100.0 * p.accuracy, 100.0 * c),
            None => format!("±{} ms: {:.1}%", p.shift_ms, 100.0 * p.accuracy),
        })
        .collect();
    println!("by offset: {}", curve.join(", "));
    println!("consistency (two random offsets within ±200 ms agree): {:.1}%", 100.0 * r.consistency);
    if let Some(u) = &r.unseen_engine {
        print_speech(u, "unseen engine (flite)");
    }
}

/// An image classifier's report: accuracy, confusion, shift curve.
pub fn print_image(r: &shiftlm::eval::image::ImageReport, what: &str) {
    println!(
        "{what}: {} images, accuracy {:.2}%, macro F1 {:.4}, loss {:.4}",
        r.images,
        100.0 * r.accuracy,
        r.macro_f1,
        r.loss
    );
    let short: Vec<String> = r.classes.iter().map(|c| c.chars().take(6).collect()).collect();
    println!("confusion (rows: true class, columns: predicted):");
    println!("  {:>8} {}", "", short.iter().map(|c| format!("{c:>6}")).collect::<Vec<_>>().join(" "));
    for (name, row) in short.iter().zip(&r.confusion) {
        println!("  {name:>8} {}", row.iter().map(|n| format!("{n:>6}")).collect::<Vec<_>>().join(" "));
    }
    let curve: Vec<String> = r.shift_curve.iter().map(|p| format!("{}: {:.1}%", p.shift, 100.0 * p.accuracy)).collect();
    println!("accuracy by shift (pixels, random direction): {}", curve.join(", "));
    let cons: Vec<String> = r.consistency.iter().map(|(k, v)| format!("±{k}: {:.1}%", 100.0 * v)).collect();
    println!("consistency (two random shifts agree): {}", cons.join(", "));
}
