//! Test helpers: central finite differences against backprop, and parity of
//! a fused op with the composite ops it replaces.

use candle_core::{Device, Tensor, Var};

/// A seeded (shape) tensor of normal values.
pub fn randn(seed: u64, shape: &[usize]) -> Tensor {
    let mut rng = crate::rng::Rng::new(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Checks d(Σ f(inputs)·R)/d(input) of every input in `differentiable`
/// against central differences in f64 on up to 40 elements each.
pub fn check(
    name: &str,
    f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    inputs: &[Tensor],
    differentiable: &[usize],
) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts).unwrap();
    let r = randn(99, out.dims());
    let loss = |xs: &[Tensor]| -> f64 {
        let y = f(xs).unwrap();
        let y = y.to_dtype(candle_core::DType::F64).unwrap();
        let r = r.to_dtype(candle_core::DType::F64).unwrap();
        (y * r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for &i in differentiable {
        let g = grads.get(&ts[i]).unwrap_or_else(|| panic!("{name}: input {i} has no gradient"));
        let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let base = inputs[i].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let step = (base.len() / 40).max(1);
        for k in (0..base.len()).step_by(step) {
            let h = 1e-2f32;
            let at = |delta: f32| {
                let mut v = base.clone();
                v[k] += delta;
                let mut xs = inputs.to_vec();
                xs[i] = Tensor::from_vec(v, inputs[i].dims(), &Device::Cpu).unwrap();
                loss(&xs)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h as f64);
            assert!(
                (fd - g[k] as f64).abs() < 2e-2 * fd.abs().max(1.0),
                "{name}: d/d input {i}[{k}]: finite differences {fd} vs backprop {}",
                g[k]
            );
        }
    }
}

/// Checks that two implementations agree in value and in every input's
/// gradient, to `tol` (max absolute difference, relative above 1).
pub fn parity(
    name: &str,
    fused: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    composite: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    inputs: &[Tensor],
    differentiable: &[usize],
    tol: f32,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>| {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts).unwrap();
        let r = randn(7, y.dims());
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gs: Vec<Vec<f32>> = differentiable
            .iter()
            .map(|&i| grads.get(&ts[i]).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect();
        (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), gs)
    };
    let (ya, ga) = run(&fused);
    let (yb, gb) = run(&composite);
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{name}: {what} sizes differ");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * y.abs().max(1.0), "{name}: {what}[{k}]: fused {x} vs composite {y}");
        }
    };
    close("value", &ya, &yb);
    for (j, (a, b)) in ga.iter().zip(&gb).enumerate() {
        close(&format!("gradient of input {}", differentiable[j]), a, b);
    }
}

/// `f(inputs)` and the gradient of ½Σ f² with respect to every input, all
/// flattened, computed on a pool of `threads` threads: for checking that a
/// result does not depend on the thread count.
pub fn on_threads(
    threads: usize,
    f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor> + Sync,
    inputs: &[Tensor],
) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let vars: Vec<Var> = inputs.iter().map(|x| Var::from_tensor(x).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts).unwrap();
        let grads = (y.sqr().unwrap().sum_all().unwrap() * 0.5).unwrap().backward().unwrap();
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = vec![flat(&y)];
        out.extend(vars.iter().map(|v| flat(grads.get(v.as_tensor()).unwrap())));
        out
    })
}
