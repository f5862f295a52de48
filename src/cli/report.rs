//! Human-readable reports: a metrics table and decoded examples.

use shiftlm::data::{Pair, Tokenizer};
use shiftlm::eval::EvalReport;

pub fn print_metrics(r: &EvalReport) {
    println!("evaluation on {} examples ({} supervised tokens):", r.examples, r.tokens);
    println!("  loss                      {:.4}", r.loss);
    println!("  perplexity                {:.4}", r.perplexity);
    println!("  token accuracy (forced)   {:.2}%", 100.0 * r.token_accuracy);
    println!("  token accuracy (free)     {:.2}%", 100.0 * r.free_running_token_accuracy);
    println!("  macro F1 (forced)         {:.4}", r.macro_f1);
    println!("  exact match (forced)      {:.2}%", 100.0 * r.teacher_forced_exact_match);
    println!("  exact match (free)        {:.2}%", 100.0 * r.exact_match);
}

pub fn print_examples(tok: &Tokenizer, pairs: &[Pair], outputs: &[Vec<u32>], n: usize) {
    println!("examples (free-running decoding):");
    for (p, out) in pairs.iter().zip(outputs).take(n) {
        let mark = if *out == p.target { "ok  " } else { "MISS" };
        println!("  {mark} source {}", tok.decode(&p.source));
        println!("       target {}", tok.decode(&p.target));
        println!("       output {}", tok.decode(out));
    }
}

/// Teacher-forced metrics of a language model, as `eval` reports them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CausalReport {
    pub loss: f64,
    pub perplexity: f64,
    pub token_accuracy: f64,
    pub macro_f1: f64,
    /// Whole-sequence match has no meaning for free text.
    pub exact_match: Option<f64>,
    pub tokens: usize,
}

pub fn causal_report(st: &shiftlm::eval::TeacherForcedStats) -> CausalReport {
    CausalReport {
        loss: st.loss(),
        perplexity: st.loss().exp(),
        token_accuracy: st.accuracy(),
        macro_f1: st.macro_f1(),
        exact_match: None,
        tokens: st.tokens,
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

/// The metrics as one JSON object, plus extra fields.
pub fn json_line(r: &EvalReport, extra: serde_json::Value) -> String {
    let mut v = serde_json::to_value(r).expect("report serialises");
    if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v.to_string()
}

/// A forecaster's metrics beside the naive and seasonal-naive baselines.
pub fn print_forecast(r: &shiftlm::eval::forecast::ForecastReport, what: &str) {
    let b = &r.baselines;
    println!(
        "forecast accuracy on the {what}: {} windows × horizon {} (season {}; MASE < 1 beats seasonal naive in-sample)",
        r.windows, r.horizon, r.season
    );
    println!("  {:<16}{:>10}{:>10}{:>10}{:>10}{:>10}", "", "MASE", "MAE", "RMSE", "sMAPE %", "MAPE %");
    for (name, m) in [("model", &r.model), ("naive", &b.naive), ("seasonal naive", &b.seasonal_naive)] {
        let mape = m.mape.map_or("-".to_string(), |v| format!("{v:.2}"));
        let mase = m.mase.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!("  {name:<16}{mase:>10}{:>10.4}{:>10.4}{:>10.2}{mape:>10}", m.mae, m.rmse, m.smape);
    }
    let verdict = |beats: bool| if beats { "beats both baselines" } else { "does NOT beat the better baseline" };
    match (r.model.mase, b.naive.mase.zip(b.seasonal_naive.mase)) {
        (Some(m), Some((n, s))) => println!("  the model {} (MASE {m:.3} vs {:.3})", verdict(m < n.min(s)), n.min(s)),
        _ => {
            // MASE's scale is undefined: compare MAE, its numerator.
            let best = b.naive.mae.min(b.seasonal_naive.mae);
            println!(
                "  the model {} (MAE {:.4} vs {best:.4}); MASE is undefined: the training rows are no longer than the season ({}) or do not change over it",
                verdict(r.model.mae < best),
                r.model.mae,
                r.season
            );
        }
    }
}
