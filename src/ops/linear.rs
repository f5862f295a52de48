//! A fused fully connected layer, `y = x W (+ b)` over the last dimension,
//! for both weight layouts: PyTorch's `nn.Linear` (out, in) and GPT-2's
//! `Conv1D` (in, out). One op replaces the reshapes, the matrix product and
//! the bias add, and their backward passes: `dx = g Wᵀ`, `dW = xᵀ g`
//! (transposed for (out, in)), `db = Σ g`. The transposes are strides
//! given to the matrix-product kernel, never copies.

use super::sgemm::matmul;
use super::{column_sums, f32_slice, with_f32};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// How the weight is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// (out, in), as `nn.Linear`: y = x Wᵀ.
    OutIn,
    /// (in, out), as GPT-2's `Conv1D`: y = x W.
    InOut,
}

#[derive(Clone, Copy)]
struct LinearOp {
    layout: WeightLayout,
}

impl LinearOp {
    /// (in, out) of a weight of this layout.
    fn in_out(&self, w: &[usize]) -> Result<(usize, usize)> {
        let &[a, b] = w else { bail!("linear: weight must be 2-D, got {w:?}") };
        Ok(match self.layout {
            WeightLayout::OutIn => (b, a),
            WeightLayout::InOut => (a, b),
        })
    }

    /// Strides of W viewed as the (in × out) matrix of y = x W.
    fn w_io(&self, n_in: usize, n_out: usize) -> (isize, isize) {
        match self.layout {
            WeightLayout::InOut => (1, n_out as isize),
            WeightLayout::OutIn => (n_in as isize, 1),
        }
    }

    fn forward(
        &self,
        x: &[f32],
        xl: &Layout,
        w: &[f32],
        wl: &Layout,
        b: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (n_in, n_out) = self.in_out(wl.dims())?;
        if xl.dims().last() != Some(&n_in) || b.is_some_and(|b| b.len() != n_out) {
            bail!("linear: input {:?} does not fit weight {:?}", xl.dims(), wl.dims());
        }
        let rows = x.len() / n_in.max(1);
        let _p = crate::profile::op("linear.fwd", || {
            (format!("{:?}·{:?}", xl.dims(), wl.dims()), Some(crate::profile::matmul_flops(rows, n_out, n_in)))
        });
        let mut y = super::output(rows * n_out); // overwritten by the product
                                                 // SAFETY: sizes checked above.
        unsafe {
            matmul(
                rows,
                n_out,
                n_in,
                y.as_mut_ptr().cast::<f32>(),
                (1, n_out as isize),
                false,
                x.as_ptr(),
                (1, n_in as isize),
                w.as_ptr(),
                self.w_io(n_in, n_out),
            );
        }
        // SAFETY: the product wrote every element.
        let mut y = unsafe { super::init(y) };
        if let Some(b) = b {
            use rayon::prelude::*;
            let block = (super::ELEM_BLOCK / n_out.max(1)).max(1) * n_out;
            y.par_chunks_mut(block).for_each(|yb| {
                for row in yb.chunks_exact_mut(n_out) {
                    row.iter_mut().zip(b).for_each(|(v, bv)| *v += bv);
                }
            });
        }
        let mut dims = xl.dims().to_vec();
        *dims.last_mut().expect("checked") = n_out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    /// (dx, dW, db), each only where that input is tracked (frozen weights
    /// and their biases get no gradient and cost no product).
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n_in, n_out) = self.in_out(w.dims())?;
        let (ni, no) = (n_in as isize, n_out as isize);
        let dev = x.device();
        let rows = x.elem_count() / n_in.max(1);
        let _p = crate::profile::op("linear.bwd", || {
            let products = u64::from(x.track_op()) + u64::from(w.track_op()); // dx, dW
            let flops = products * crate::profile::matmul_flops(rows, n_out, n_in);
            (format!("{:?}·{:?}", x.dims(), w.dims()), Some(flops))
        });
        let dx = if x.track_op() {
            let dx = with_f32(w, "linear", |w| {
                with_f32(g, "linear", |g| {
                    let mut dx = super::output(rows * n_in); // overwritten by the product
                                                             // dx (rows × in) = g (rows × out) · Wᵀ, Wᵀ the (out × in) view.
                    let wt = match self.layout {
                        WeightLayout::InOut => (no, 1),
                        WeightLayout::OutIn => (1, ni),
                    };
                    // SAFETY: every buffer is sized from the shapes above.
                    unsafe {
                        matmul(
                            rows,
                            n_in,
                            n_out,
                            dx.as_mut_ptr().cast(),
                            (1, ni),
                            false,
                            g.as_ptr(),
                            (1, no),
                            w.as_ptr(),
                            wt,
                        );
                        // SAFETY: the product wrote every element.
                        super::init(dx)
                    }
                })
            })??;
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let dw = with_f32(x, "linear", |x| {
                with_f32(g, "linear", |g| {
                    let mut dw = super::output(n_in * n_out); // overwritten by the product
                                                              // SAFETY: every buffer is sized from the shapes above.
                    unsafe {
                        match self.layout {
                            // dW (in × out) = xᵀ g
                            WeightLayout::InOut => matmul(
                                n_in,
                                n_out,
                                rows,
                                dw.as_mut_ptr().cast(),
                                (1, no),
                                false,
                                x.as_ptr(),
                                (ni, 1),
                                g.as_ptr(),
                                (1, no),
                            ),
                            // dW (out × in) = gᵀ x
                            WeightLayout::OutIn => matmul(
                                n_out,
                                n_in,
                                rows,
                                dw.as_mut_ptr().cast(),
                                (1, ni),
                                false,
                                g.as_ptr(),
                                (no, 1),
                                x.as_ptr(),
                                (1, ni),
                            ),
                        }
                    }
                    // SAFETY: the product wrote every element.
                    unsafe { super::init(dw) }
                })
            })??;
            Some(Tensor::from_vec(dw, w.shape(), dev)?)
        } else {
            None
        };
        let db = match b {
            Some(b) if b.track_op() => {
                Some(Tensor::from_vec(with_f32(g, "linear", |g| column_sums(g, n_out))?, n_out, dev)?)
            }
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

struct LinearBiasOp(LinearOp);

impl CustomOp3 for LinearBiasOp {
    fn name(&self) -> &'static str {
        "shiftlm-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let b = f32_slice(s3, l3, "linear")?;
        self.0.forward(f32_slice(s1, l1, "linear")?, l1, f32_slice(s2, l2, "linear")?, l2, Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.0.backward(x, w, Some(b), g)
    }
}

struct LinearNoBiasOp(LinearOp);

impl CustomOp2 for LinearNoBiasOp {
    fn name(&self) -> &'static str {
        "shiftlm-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.forward(f32_slice(s1, l1, "linear")?, l1, f32_slice(s2, l2, "linear")?, l2, None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.0.backward(x, w, None, g)?;
        Ok((dx, dw))
    }
}

/// `x W (+ b)`: `x` (..., in), `w` in `layout`, `b` (out) → (..., out).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, layout: WeightLayout) -> Result<Tensor> {
    let op = LinearOp { layout };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, LinearBiasOp(op)),
        None => x.apply_op2(&w, LinearNoBiasOp(op)),
    }
}

/// The composite version (the reference).
pub fn linear_composite(x: &Tensor, w: &Tensor, b: Option<&Tensor>, layout: WeightLayout) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let n_in = *dims.last().expect("x has a last dimension");
    let wt = match layout {
        WeightLayout::OutIn => w.t()?,
        WeightLayout::InOut => w.clone(),
    };
    let y = x.reshape((x.elem_count() / n_in, n_in))?.matmul(&wt)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    *dims.last_mut().expect("x has a last dimension") = wt.dim(1)?;
    y.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn linear_gradients_and_parity() {
        let x = randn(1, &[2, 7, 5]);
        for layout in [WeightLayout::OutIn, WeightLayout::InOut] {
            let w = match layout {
                WeightLayout::OutIn => randn(2, &[3, 5]),
                WeightLayout::InOut => randn(2, &[5, 3]),
            };
            let inputs = [x.clone(), w, randn(3, &[3])];
            let f = |t: &[Tensor]| linear(&t[0], &t[1], Some(&t[2]), layout);
            check("linear", f, &inputs, &[0, 1, 2]);
            parity("linear", f, |t| linear_composite(&t[0], &t[1], Some(&t[2]), layout), &inputs, &[0, 1, 2], 1e-5);
            let f = |t: &[Tensor]| linear(&t[0], &t[1], None, layout);
            check("linear without bias", f, &inputs[..2], &[0, 1]);
            parity(
                "linear without bias",
                f,
                |t| linear_composite(&t[0], &t[1], None, layout),
                &inputs[..2],
                &[0, 1],
                1e-5,
            );
        }
    }
}
