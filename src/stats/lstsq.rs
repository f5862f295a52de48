//! Linear least squares by Householder QR, in `f64`.
//!
//! Written here rather than taken from a linear-algebra crate: the
//! baselines need one small dense solve (an AR order's regression: a few
//! hundred rows, at most a few dozen columns), and the crates that offer it
//! (nalgebra, ndarray-linalg) would add a large dependency tree or a system
//! LAPACK for thirty lines. QR rather than the normal equations keeps the
//! coefficients as accurate as statsmodels' (which solves by the
//! pseudo-inverse) on the ill-conditioned lag matrices of smooth series.

/// Solves min ‖X b − y‖² for `x` given row-major (`n` rows × `k` columns).
/// Returns the coefficients and the residual sum of squares, or `None` when
/// `n < k` or X is rank-deficient (a column is, to rounding, a combination
/// of the others: a constant series' lags, say).
pub fn solve(x: &[f64], n: usize, k: usize, y: &[f64]) -> Option<(Vec<f64>, f64)> {
    if n < k || x.len() != n * k || y.len() != n {
        return None;
    }
    // Column-major copy: Householder reflections work down columns.
    let mut a: Vec<Vec<f64>> = (0..k).map(|j| (0..n).map(|i| x[i * k + j]).collect()).collect();
    let mut b = y.to_vec();
    let scale: Vec<f64> = a.iter().map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
    for j in 0..k {
        let norm = a[j][j..].iter().map(|v| v * v).sum::<f64>().sqrt();
        // Rank check: what is left of column j after removing the earlier
        // columns, against its own length.
        if norm.is_nan() || norm <= 1e-10 * scale[j].max(f64::MIN_POSITIVE) {
            return None;
        }
        let alpha = if a[j][j] > 0.0 { -norm } else { norm };
        let mut v = a[j][j..].to_vec();
        v[0] -= alpha;
        let vv = v.iter().map(|t| t * t).sum::<f64>();
        if vv > 0.0 {
            let reflect = |col: &mut [f64]| {
                let d = v.iter().zip(col.iter()).map(|(p, q)| p * q).sum::<f64>() * 2.0 / vv;
                col.iter_mut().zip(&v).for_each(|(c, p)| *c -= d * p);
            };
            for col in a.iter_mut().skip(j) {
                reflect(&mut col[j..]);
            }
            reflect(&mut b[j..]);
        }
    }
    // Back substitution on R (the upper triangle).
    let mut coef = vec![0.0; k];
    for j in (0..k).rev() {
        let s: f64 = (j + 1..k).map(|c| a[c][j] * coef[c]).sum();
        coef[j] = (b[j] - s) / a[j][j];
    }
    let rss = b[k..].iter().map(|v| v * v).sum();
    Some((coef, rss))
}

/// Solves min ‖A c − y‖² for A given by its columns, through the normal
/// equations (AᵀA c = Aᵀy, by Cholesky). About four times cheaper than
/// [`solve`] for tall matrices, and accurate when A is well conditioned (the
/// error columns of an ETS filter); the residual is summed directly, not as
/// yᵀy − cᵀAᵀy, which would cancel on good fits. `None` when AᵀA is not
/// positive definite.
pub fn solve_columns(cols: &[Vec<f64>], y: &[f64]) -> Option<(Vec<f64>, f64)> {
    let k = cols.len();
    let n = y.len();
    if cols.iter().any(|c| c.len() != n) || n < k {
        return None;
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let mut g = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            g[i * k + j] = dot(&cols[i], &cols[j]);
        }
    }
    let mut c: Vec<f64> = cols.iter().map(|col| dot(col, y)).collect();
    // Cholesky, G = L Lᵀ, in the lower triangle.
    for i in 0..k {
        for j in 0..=i {
            let s = g[i * k + j] - (0..j).map(|p| g[i * k + p] * g[j * k + p]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 1e-12 * g[i * k + i].abs().max(f64::MIN_POSITIVE) {
                    return None;
                }
                g[i * k + i] = s.sqrt();
            } else {
                g[i * k + j] = s / g[j * k + j];
            }
        }
    }
    for i in 0..k {
        c[i] = (c[i] - (0..i).map(|p| g[i * k + p] * c[p]).sum::<f64>()) / g[i * k + i];
    }
    for i in (0..k).rev() {
        c[i] = (c[i] - (i + 1..k).map(|p| g[p * k + i] * c[p]).sum::<f64>()) / g[i * k + i];
    }
    let rss = (0..n).map(|t| (y[t] - cols.iter().zip(&c).map(|(col, v)| col[t] * v).sum::<f64>()).powi(2)).sum();
    Some((c, rss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_exactly_and_reports_the_residual() {
        // y = 1 + 2t, then one point moved by 1.
        let x: Vec<f64> = (0..5).flat_map(|t| [1.0, t as f64]).collect();
        let mut y: Vec<f64> = (0..5).map(|t| 1.0 + 2.0 * t as f64).collect();
        let (c, rss) = solve(&x, 5, 2, &y).unwrap();
        assert!((c[0] - 1.0).abs() < 1e-12 && (c[1] - 2.0).abs() < 1e-12 && rss < 1e-20);
        y[2] += 1.0;
        let (c, rss) = solve(&x, 5, 2, &y).unwrap();
        // Normal equations by hand: intercept 1.2, slope 2, residuals sum of squares 0.8.
        assert!((c[0] - 1.2).abs() < 1e-12 && (c[1] - 2.0).abs() < 1e-12, "{c:?}");
        assert!((rss - 0.8).abs() < 1e-12, "{rss}");
    }

    #[test]
    fn the_normal_equations_agree_with_qr() {
        let x: Vec<f64> = (0..7).flat_map(|t| [1.0, t as f64, ((t * t) % 5) as f64]).collect();
        let y: Vec<f64> = (0..7).map(|t| (t as f64).sin() * 3.0 + 1.0).collect();
        let (qr, rss_qr) = solve(&x, 7, 3, &y).unwrap();
        let cols: Vec<Vec<f64>> = (0..3).map(|j| (0..7).map(|i| x[i * 3 + j]).collect()).collect();
        let (ne, rss_ne) = solve_columns(&cols, &y).unwrap();
        for (a, b) in qr.iter().zip(&ne) {
            assert!((a - b).abs() < 1e-10, "{qr:?} {ne:?}");
        }
        assert!((rss_qr - rss_ne).abs() < 1e-10);
        assert!(solve_columns(&[vec![1.0; 4], vec![2.0; 4]], &[1.0; 4]).is_none());
    }

    #[test]
    fn refuses_a_rank_deficient_matrix() {
        let x: Vec<f64> = (0..6).flat_map(|_| [1.0, 3.0]).collect();
        assert!(solve(&x, 6, 2, &[1.0; 6]).is_none());
        assert!(solve(&[1.0], 1, 2, &[1.0]).is_none());
    }
}
