//! Inverted dropout as one op, alone or added to a residual stream
//! (`x + dropout(y)`, every Transformer block's two residual branches).
//!
//! Candle's composite (`y * mask`, then `x + …`) costs more than the two
//! passes it takes: its `Mul` backward also computes a gradient for the
//! mask, which nothing reads (a product, a zero buffer and an add per
//! dropout), and every extra graph edge costs another zero buffer and add
//! when gradients are accumulated. Here the mask is one byte per element,
//! kept inside the op, and the backward pass is a single masked scale.
//!
//! The mask draws one `next_f32` per element, in order, exactly as the
//! composite did, so training with either gives the same numbers bit for bit.

use super::{f32_slice, with_f32, ELEM_BLOCK};
use crate::rng::Rng;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Which elements survive: 1 kept (scaled by `scale`), 0 dropped.
#[derive(Clone)]
struct Mask {
    keep: Arc<Vec<u8>>,
    scale: f32,
}

impl Mask {
    /// Draws `n` elements, each dropped with probability `p`.
    fn draw(n: usize, p: f32, rng: &mut Rng) -> Self {
        let keep = (0..n).map(|_| u8::from(rng.next_f32() >= p)).collect();
        Self { keep: Arc::new(keep), scale: 1.0 / (1.0 - p) }
    }

    /// out = base + mask ⊙ y (or mask ⊙ y without a base), in parallel blocks.
    fn apply(&self, y: &[f32], base: Option<&[f32]>) -> Vec<f32> {
        let mut out = super::output(y.len()); // written element by element
        let s = self.scale;
        out.par_chunks_mut(ELEM_BLOCK)
            .zip(y.par_chunks(ELEM_BLOCK))
            .zip(self.keep.par_chunks(ELEM_BLOCK))
            .enumerate()
            .for_each(|(blk, ((ob, yb), mb))| match base {
                Some(x) => {
                    let xb = &x[blk * ELEM_BLOCK..blk * ELEM_BLOCK + ob.len()];
                    for (((o, &v), &m), &b) in ob.iter_mut().zip(yb).zip(mb).zip(xb) {
                        o.write(b + if m != 0 { v * s } else { 0.0 });
                    }
                }
                None => {
                    for ((o, &v), &m) in ob.iter_mut().zip(yb).zip(mb) {
                        o.write(if m != 0 { v * s } else { 0.0 });
                    }
                }
            });
        // SAFETY: every element was written above.
        unsafe { super::init(out) }
    }

    /// mask ⊙ g, the gradient of the dropped branch.
    fn grad(&self, g: &Tensor) -> Result<Tensor> {
        let dy = with_f32(g, "dropout", |g| self.apply(g, None))?;
        Tensor::from_vec(dy, g.shape(), g.device())
    }
}

struct DropoutOp(Mask);

impl CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "shiftlm-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("dropout.fwd", || (format!("{:?}", l.dims()), None));
        let y = f32_slice(s, l, "dropout")?;
        Ok((CpuStorage::F32(self.0.apply(y, None)), l.shape().clone()))
    }

    fn bwd(&self, _y: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let _p = crate::profile::op("dropout.bwd", || (format!("{:?}", g.dims()), None));
        Ok(Some(self.0.grad(g)?))
    }
}

struct DropoutAddOp(Mask);

impl CustomOp2 for DropoutAddOp {
    fn name(&self) -> &'static str {
        "shiftlm-dropout-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("dropout_add.fwd", || (format!("{:?}", l1.dims()), None));
        let x = f32_slice(s1, l1, "dropout_add")?;
        let y = f32_slice(s2, l2, "dropout_add")?;
        if l1.dims() != l2.dims() {
            candle_core::bail!("dropout_add: residual {:?} and branch {:?} differ", l1.dims(), l2.dims());
        }
        Ok((CpuStorage::F32(self.0.apply(y, Some(x))), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _p = crate::profile::op("dropout_add.bwd", || (format!("{:?}", g.dims()), None));
        Ok((Some(g.clone()), Some(self.0.grad(g)?)))
    }
}

/// Zeroes each element with probability `p` and scales the rest by
/// 1/(1−p). With no generator (evaluation) or `p == 0` it is the identity.
pub fn dropout(y: &Tensor, p: f32, rng: Option<&mut Rng>) -> Result<Tensor> {
    let rng = match rng {
        Some(r) if p > 0.0 => r,
        _ => return Ok(y.clone()),
    };
    let mask = Mask::draw(y.elem_count(), p, rng);
    if y.dtype() != DType::F32 || !y.device().is_cpu() {
        return composite(y, &mask);
    }
    y.contiguous()?.apply_op1_arc(Arc::new(Box::new(DropoutOp(mask))))
}

/// `x + dropout(y)`: a residual branch `y` dropped and added back to the
/// stream `x` (same shape) in one op; without a generator or with `p == 0`
/// plain `x + y`.
pub fn dropout_add(x: &Tensor, y: &Tensor, p: f32, rng: Option<&mut Rng>) -> Result<Tensor> {
    let rng = match rng {
        Some(r) if p > 0.0 => r,
        _ => return x + y,
    };
    let mask = Mask::draw(y.elem_count(), p, rng);
    if y.dtype() != DType::F32 || x.dtype() != DType::F32 || !y.device().is_cpu() {
        return x + composite(y, &mask)?;
    }
    x.contiguous()?.apply_op2_arc(&y.contiguous()?, Arc::new(Box::new(DropoutAddOp(mask))))
}

/// The mask as a tensor product, for dtypes and devices the op does not take.
fn composite(y: &Tensor, mask: &Mask) -> Result<Tensor> {
    let m: Vec<f32> = mask.keep.iter().map(|&k| if k != 0 { mask.scale } else { 0.0 }).collect();
    y.mul(&Tensor::from_vec(m, y.shape(), y.device())?.to_dtype(y.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, randn};
    use candle_core::{Device, Var};

    #[test]
    fn identity_in_eval_and_unbiased_in_training() {
        let x = Tensor::ones(10_000, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(dropout(&x, 0.5, None).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 10_000.0);
        let mut rng = Rng::new(1);
        let y = dropout(&x, 0.3, Some(&mut rng)).unwrap();
        let mean = y.mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        let kept = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(kept.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    }

    /// The same draws as the composite `y * mask` it replaced, so runs
    /// trained before and after agree bit for bit.
    #[test]
    fn matches_the_composite_bit_for_bit() {
        let (x, y) = (randn(3, &[4, 7, 33]), randn(4, &[4, 7, 33]));
        let mut a = Rng::new(9);
        let mut b = a.clone();
        let fused = dropout_add(&x, &y, 0.25, Some(&mut a)).unwrap();
        let m: Vec<f32> = (0..y.elem_count()).map(|_| if b.next_f32() < 0.25 { 0.0 } else { 1.0 / 0.75 }).collect();
        let want = (&x + y.mul(&Tensor::from_vec(m, y.shape(), &Device::Cpu).unwrap()).unwrap()).unwrap();
        assert_eq!(
            fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(a, b, "one draw per element");
    }

    #[test]
    fn gradients() {
        // A fixed mask per call: each evaluation redraws from the same seed.
        let inputs = [randn(1, &[3, 40]), randn(2, &[3, 40])];
        check("dropout", |t| dropout(&t[1], 0.4, Some(&mut Rng::new(5))), &inputs, &[1]);
        check("dropout_add", |t| dropout_add(&t[0], &t[1], 0.4, Some(&mut Rng::new(5))), &inputs, &[0, 1]);
        // Eval: the identity and a plain sum.
        check("dropout_eval", |t| dropout_add(&t[0], &t[1], 0.4, None), &inputs, &[0, 1]);
        // Dropped elements get no gradient, kept ones 1/(1−p).
        let v = Var::from_tensor(&Tensor::ones(200, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let out = dropout(v.as_tensor(), 0.5, Some(&mut Rng::new(2))).unwrap();
        let g = out.sum_all().unwrap().backward().unwrap();
        let gv = g.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let fwd = out.to_vec1::<f32>().unwrap();
        assert!(gv.iter().zip(&fwd).all(|(&d, &f)| d == f && (d == 0.0 || d == 2.0)));
        assert!(gv.contains(&0.0) && gv.contains(&2.0));
    }
}
