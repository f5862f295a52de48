//! The vendored candle-core's backward pass (vendor/candle-core/PATCHES.md):
//! gradients are accumulated without a zero buffer per edge, and a constant
//! factor of a product gets no gradient. The values are what upstream gives.

use candle_core::{Device, Tensor, Var};

fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn a_constant_factor_gets_no_gradient() {
    let x = Var::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
    let mask = t(&[0.0, 2.0, 2.0]);
    let y = x.as_tensor().mul(&mask).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![0.0, 2.0, 2.0]);
    // Upstream stores ∂y/∂mask = x as well, computed for nothing.
    assert!(g.get(&mask).is_none(), "the patched backward (vendor/candle-core) is not in use");
}

#[test]
fn contributions_are_summed_and_single_uses_kept_as_they_are() {
    let x = Var::new(&[0.5f32, -1.5, 2.0], &Device::Cpu).unwrap();
    let w = Var::new(&[3.0f32, 1.0, -2.0], &Device::Cpu).unwrap();
    let (xs, ws) = (x.as_tensor(), w.as_tensor());
    // x used three times (twice through products, once directly), w once.
    let y = ((xs * ws).unwrap() + (xs * xs).unwrap() + xs).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap();
    let gx = g.get(xs).unwrap().to_vec1::<f32>().unwrap();
    let want: Vec<f32> = [0.5f32, -1.5, 2.0].iter().zip([3.0f32, 1.0, -2.0]).map(|(x, w)| w + 2.0 * x + 1.0).collect();
    assert_eq!(gx, want);
    assert_eq!(g.get(ws).unwrap().to_vec1::<f32>().unwrap(), vec![0.5, -1.5, 2.0]);
    // A second backward pass over the same graph gives the same store.
    let again = y.backward().unwrap();
    assert_eq!(again.get(xs).unwrap().to_vec1::<f32>().unwrap(), want);
}
