//! Translation metrics as translators report them, computed exactly as
//! sacreBLEU 2 does by default (a fixture from `tools/make_mt_fixtures.py`
//! checks both to ±0.01):
//!
//! - [`bleu`]: corpus BLEU on 13a-tokenised text (mteval-v13a's
//!   punctuation rules), n-grams 1–4 clipped by the most any reference holds,
//!   the brevity penalty against the reference closest in length to each
//!   hypothesis (the shorter on ties), and the "exp" smoothing of mteval:
//!   an order with no match counts as 1/(2^k · total) for its k-th such
//!   order;
//! - [`chrf`]: chrF2, character 1–6-grams with whitespace removed, the
//!   statistics of each segment's best-scoring reference summed over the
//!   corpus, then precision and recall averaged over the orders present and
//!   combined with β = 2.
//!
//! Both take detokenised text, cased, as sacreBLEU does by default.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// BLEU and what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// The score, 0–100.
    pub score: f64,
    /// Matched n-grams, n = 1..=4.
    pub counts: [u64; 4],
    /// Hypothesis n-grams, n = 1..=4.
    pub totals: [u64; 4],
    /// Precisions in %, n = 1..=4 (smoothed where nothing matched).
    pub precisions: [f64; 4],
    /// The brevity penalty.
    pub bp: f64,
    /// Hypothesis tokens.
    pub sys_len: u64,
    /// Reference tokens (the closest reference of each segment).
    pub ref_len: u64,
}

/// sacreBLEU's default tokeniser, "13a" (mteval-v13a).
pub fn tokenize_13a(line: &str) -> String {
    static RULES: OnceLock<[(Regex, &str); 4]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("a fixed pattern");
        [
            // Symbols and punctuation, except period, comma and dash.
            (re(r"([\{-~\[-` -&\(-\+:-@/])"), " $1 "),
            // Period and comma, unless preceded by a digit ...
            (re(r"([^0-9])([\.,])"), "$1 $2 "),
            // ... or followed by one.
            (re(r"([\.,])([^0-9])"), " $1 $2"),
            // A dash after a digit.
            (re(r"([0-9])(-)"), "$1 $2 "),
        ]
    });
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, rep) in rules {
        line = re.replace_all(&line, *rep).into_owned();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Counts of the word n-grams (n = 1..=4) of `tokens`.
fn word_ngrams(tokens: &[&str]) -> HashMap<Vec<String>, u64> {
    let mut out = HashMap::new();
    for n in 1..=4 {
        for w in tokens.windows(n) {
            *out.entry(w.iter().map(|s| s.to_string()).collect()).or_insert(0) += 1;
        }
    }
    out
}

/// Corpus BLEU of `hyps` against each reference set in `refs` (one string
/// per hypothesis in each set).
pub fn bleu(hyps: &[String], refs: &[Vec<String>]) -> Bleu {
    let (mut counts, mut totals, mut sys_len, mut ref_len) = ([0u64; 4], [0u64; 4], 0u64, 0u64);
    for (i, h) in hyps.iter().enumerate() {
        let ht = tokenize_13a(h.trim_end());
        let htoks: Vec<&str> = ht.split(' ').filter(|t| !t.is_empty()).collect();
        let mut ref_max: HashMap<Vec<String>, u64> = HashMap::new();
        let mut closest: Option<(usize, usize)> = None; // (difference, length)
        for set in refs {
            let rt = tokenize_13a(set.get(i).map_or("", |r| r.trim_end()));
            let rtoks: Vec<&str> = rt.split(' ').filter(|t| !t.is_empty()).collect();
            let diff = htoks.len().abs_diff(rtoks.len());
            closest = match closest {
                Some((d, l)) if d < diff || (d == diff && l <= rtoks.len()) => Some((d, l)),
                _ => Some((diff, rtoks.len())),
            };
            for (g, c) in word_ngrams(&rtoks) {
                let e = ref_max.entry(g).or_insert(0);
                *e = (*e).max(c);
            }
        }
        sys_len += htoks.len() as u64;
        ref_len += closest.map_or(0, |(_, l)| l) as u64;
        for (g, c) in word_ngrams(&htoks) {
            totals[g.len() - 1] += c;
            counts[g.len() - 1] += c.min(ref_max.get(&g).copied().unwrap_or(0));
        }
    }
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0f64; 4];
    let mut score = 0.0;
    if counts.iter().any(|&c| c > 0) {
        let mut smooth = 1.0;
        for n in 0..4 {
            if totals[n] == 0 {
                break;
            }
            precisions[n] = if counts[n] == 0 {
                smooth *= 2.0;
                100.0 / (smooth * totals[n] as f64)
            } else {
                100.0 * counts[n] as f64 / totals[n] as f64
            };
        }
        let log = |p: f64| if p > 0.0 { p.ln() } else { -9_999_999_999.0 };
        score = bp * (precisions.iter().map(|&p| log(p)).sum::<f64>() / 4.0).exp();
    }
    Bleu { score, counts, totals, precisions, bp, sys_len, ref_len }
}

/// Character n-gram counts, n = 1..=6, of `s` without whitespace.
fn char_ngrams(s: &str) -> Vec<HashMap<String, u64>> {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    (1..=6)
        .map(|n| {
            let mut m = HashMap::new();
            for w in chars.windows(n) {
                *m.entry(w.iter().collect::<String>()).or_insert(0) += 1;
            }
            m
        })
        .collect()
}

/// chrF's F-score of summed statistics: [hyp, ref, match] per order.
fn chrf_score(stats: &[[u64; 3]]) -> f64 {
    let beta2 = 4.0;
    let (mut prec_sum, mut rec_sum, mut orders) = (0.0, 0.0, 0);
    for &[h, r, m] in stats {
        if h > 0 && r > 0 {
            prec_sum += m as f64 / h as f64;
            rec_sum += m as f64 / r as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    let (p, r) = (prec_sum / orders as f64, rec_sum / orders as f64);
    if p + r == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + beta2) * p * r / (beta2 * p + r)
}

/// Corpus chrF2 of `hyps` against each reference set in `refs`.
pub fn chrf(hyps: &[String], refs: &[Vec<String>]) -> f64 {
    let mut total = [[0u64; 3]; 6];
    for (i, h) in hyps.iter().enumerate() {
        let hg = char_ngrams(h);
        let mut best: Option<(f64, [[u64; 3]; 6])> = None;
        for set in refs {
            let rg = char_ngrams(set.get(i).map_or("", String::as_str));
            let mut stats = [[0u64; 3]; 6];
            for (n, (hm, rm)) in hg.iter().zip(&rg).enumerate() {
                let hyp: u64 = hm.values().sum();
                let matched: u64 = hm.iter().map(|(g, c)| (*c).min(rm.get(g).copied().unwrap_or(0))).sum();
                stats[n] = [hyp, rm.values().sum(), matched];
            }
            // Each segment keeps the statistics of its best-scoring reference.
            let f = chrf_score(&stats);
            if best.as_ref().is_none_or(|(b, _)| f > *b) {
                best = Some((f, stats));
            }
        }
        if let Some((_, s)) = best {
            for (t, x) in total.iter_mut().zip(s) {
                for k in 0..3 {
                    t[k] += x[k];
                }
            }
        }
    }
    chrf_score(&total)
}
