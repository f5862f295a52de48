//! The limits every size read from a config, a file or a flag is checked
//! against before anything is allocated, with overflow-checked arithmetic:
//! a `vocab_size` of 10¹¹ or a batch of 10¹² rows is an error that names
//! the field, never an allocation that takes the machine down.

use crate::error::{Error, Result};

/// The largest value any size in a model config may take, 2²⁴ (16.8 M):
/// far above real models (GPT-2's vocabulary is 50 257, Llama 3's 128 256,
/// and widths stay in the thousands), and small enough that the product of
/// two sizes cannot overflow.
pub const MAX_SIZE: usize = 1 << 24;

/// The most values a model may hold, 2³³ (8.6 G, 34 GB of f32), checked
/// before anything is allocated.
pub const MAX_PARAMS: u64 = 1 << 33;

/// Checks that each size is at least 1 and at most [`MAX_SIZE`]; the error
/// names the field.
pub fn check_sizes(sizes: &[(&str, usize)]) -> Result<()> {
    for &(field, v) in sizes {
        if v == 0 {
            return Err(Error::config(field, "must be at least 1"));
        }
        if v > MAX_SIZE {
            return Err(Error::config(field, format!("{v} is more than the largest size shiftlm builds, {MAX_SIZE}")));
        }
    }
    Ok(())
}

/// Checks an estimate of a model's parameter count (`terms`, each a product
/// of sizes) against [`MAX_PARAMS`], with overflow-checked arithmetic. The
/// error names the field that sizes the largest term.
pub fn check_params(terms: &[(&str, &[usize])]) -> Result<()> {
    let mut total: u64 = 0;
    let mut largest = ("model", 0u64);
    for &(field, factors) in terms {
        let term = factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f as u64));
        let Some(term) = term else {
            return Err(Error::config(field, "makes the model's size overflow"));
        };
        if term > largest.1 {
            largest = (field, term);
        }
        total = total.saturating_add(term);
    }
    if total > MAX_PARAMS {
        return Err(Error::config(
            largest.0,
            format!("the model would hold about {total} values, more than {MAX_PARAMS}; this size is the largest part"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_products_that_would_overflow_are_errors() {
        check_sizes(&[("model.n_embd", 768)]).unwrap();
        let e = check_sizes(&[("model.n_embd", usize::MAX / 2)]).unwrap_err().to_string();
        assert!(e.contains("model.n_embd") && e.contains("more than the largest size"), "{e}");
        assert!(check_sizes(&[("model.n_layer", 0)]).unwrap_err().to_string().contains("at least 1"));
        // A product past u64 is an error, not a wrapped small number.
        let e = check_params(&[("model.vocab_size", &[usize::MAX, usize::MAX])]).unwrap_err().to_string();
        assert!(e.contains("model.vocab_size") && e.contains("overflow"), "{e}");
        let e = check_params(&[("model.n_layer", &[1 << 20, 1 << 20, 1 << 10])]).unwrap_err().to_string();
        assert!(e.contains("model.n_layer"), "{e}");
        check_params(&[("model.vocab_size", &[50257, 768])]).unwrap();
    }
}
