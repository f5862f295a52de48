//! Derivative-free minimisation: Nelder–Mead (with dimension-adaptive
//! coefficients), and golden-section search on an interval.
//!
//! Written here rather than taken from `argmin`: ETS's likelihood is
//! minimised the way R's `ets` does it (Nelder–Mead, an infeasible point
//! costing +∞), which needs only this small routine, and argmin's
//! framework (executors, observers, its own math traits) would be most of
//! the code it brought.

/// Minimises `f` from `x0`, the first simplex stepping `step[i]` along each
/// axis. Stops after `max_evals` evaluations, or when the simplex's values
/// differ by less than `tol` (relative). Infeasible points may return
/// `f64::INFINITY`; the start must be feasible. Returns the best point and
/// its value.
pub fn minimize(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x0: &[f64],
    step: &[f64],
    tol: f64,
    max_evals: usize,
) -> (Vec<f64>, f64) {
    let d = x0.len();
    let mut pts: Vec<Vec<f64>> = vec![x0.to_vec()];
    for i in 0..d {
        let mut p = x0.to_vec();
        p[i] += step[i];
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| nan_to_inf(f(p))).collect();
    let mut evals = d + 1;
    // Gao & Han's (2012) coefficients, which adapt to the dimension: the
    // standard (1, 2, ½, ½) stall on ETS's 15-dimensional seasonal models.
    // (For one or two dimensions they degenerate, a shrink of 0 collapsing
    // the simplex: the standard ones there.)
    let df = d as f64;
    let (alpha, gamma, rho, sigma) =
        if d <= 2 { (1.0, 2.0, 0.5, 0.5) } else { (1.0, 1.0 + 2.0 / df, 0.75 - 0.5 / df, 1.0 - 1.0 / df) };
    while evals < max_evals {
        // Order: best first.
        let mut order: Vec<usize> = (0..=d).collect();
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        pts = order.iter().map(|&i| pts[i].clone()).collect();
        vals = order.iter().map(|&i| vals[i]).collect();
        let (best, worst) = (vals[0], vals[d]);
        if worst.is_finite() && (worst - best).abs() <= tol * (best.abs() + tol) {
            break;
        }
        let centroid: Vec<f64> = (0..d).map(|j| pts[..d].iter().map(|p| p[j]).sum::<f64>() / d as f64).collect();
        let along = |t: f64| -> Vec<f64> { (0..d).map(|j| centroid[j] + t * (pts[d][j] - centroid[j])).collect() };
        let xr = along(-alpha);
        let fr = nan_to_inf(f(&xr));
        evals += 1;
        if fr < vals[0] {
            let xe = along(-gamma);
            let fe = nan_to_inf(f(&xe));
            evals += 1;
            (pts[d], vals[d]) = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < vals[d - 1] {
            (pts[d], vals[d]) = (xr, fr);
        } else {
            // Contract towards the better of the worst point and its reflection.
            let (xc, fc) = if fr < vals[d] {
                let xc = along(-rho);
                let fc = nan_to_inf(f(&xc));
                (xc, fc)
            } else {
                let xc = along(rho);
                let fc = nan_to_inf(f(&xc));
                (xc, fc)
            };
            evals += 1;
            if fc < vals[d].min(fr) {
                (pts[d], vals[d]) = (xc, fc);
            } else {
                // Shrink everything towards the best point.
                for i in 1..=d {
                    pts[i] = (0..d).map(|j| pts[0][j] + sigma * (pts[i][j] - pts[0][j])).collect();
                    vals[i] = nan_to_inf(f(&pts[i]));
                }
                evals += d;
            }
        }
    }
    let best = (0..=d).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).unwrap_or(0);
    (pts[best].clone(), vals[best])
}

fn nan_to_inf(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v
    }
}

/// The minimum of a unimodal `f` on [lo, hi] by golden-section search, to
/// within `tol` in x.
pub fn golden(f: &mut dyn FnMut(f64) -> f64, lo: f64, hi: f64, tol: f64) -> f64 {
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (lo, hi);
    let (mut c, mut d) = (b - r * (b - a), a + r * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > tol {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - r * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + r * (b - a);
            fd = f(d);
        }
    }
    // The ends too: the minimum of a monotone f sits on the boundary.
    let mid = (a + b) / 2.0;
    [(lo, f(lo)), (mid, f(mid)), (hi, f(hi))].into_iter().min_by(|x, y| x.1.total_cmp(&y.1)).map_or(mid, |p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let mut f = |x: &[f64]| 100.0 * (x[1] - x[0] * x[0]).powi(2) + (1.0 - x[0]).powi(2);
        let (x, v) = minimize(&mut f, &[-1.2, 1.0], &[0.1, 0.1], 1e-14, 5000);
        assert!((x[0] - 1.0).abs() < 1e-4 && (x[1] - 1.0).abs() < 1e-4 && v < 1e-8, "{x:?} {v}");
    }

    #[test]
    fn respects_an_infeasible_region() {
        // min (x − 2)² subject to x ≤ 1 (infeasible points cost +∞).
        let mut f = |x: &[f64]| if x[0] > 1.0 { f64::INFINITY } else { (x[0] - 2.0).powi(2) };
        let (x, _) = minimize(&mut f, &[0.0], &[0.1], 1e-12, 1000);
        assert!(x[0] <= 1.0 && x[0] > 0.999, "{x:?}");
        let g = golden(&mut |x| (x - 0.3).powi(2), 0.0, 1.0, 1e-10);
        assert!((g - 0.3).abs() < 1e-8);
        assert_eq!(golden(&mut |x| -x, 0.0, 1.0, 1e-10), 1.0);
    }
}
