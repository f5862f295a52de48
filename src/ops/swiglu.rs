//! Fused SwiGLU (Shazeer 2020), Llama's MLP activation:
//! `silu(gate) ⊙ up`, with silu(x) = x·σ(x). One pass forward, one back:
//! d gate = g ⊙ up ⊙ σ(x)(1 + x(1 − σ(x))), d up = g ⊙ silu(gate).

use super::{exp, f32_slice, with_f32, ELEM_BLOCK};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct SwiGluOp;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

impl CustomOp2 for SwiGluOp {
    fn name(&self) -> &'static str {
        "shiftlm-swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("swiglu.fwd", || (format!("{:?}", l1.dims()), None));
        let (gate, up) = (f32_slice(s1, l1, "swiglu")?, f32_slice(s2, l2, "swiglu")?);
        if l1.shape() != l2.shape() {
            bail!("swiglu: gate {:?} and up {:?} differ", l1.dims(), l2.dims());
        }
        let mut y = super::output(gate.len()); // written element by element
        y.par_chunks_mut(ELEM_BLOCK).zip(gate.par_chunks(ELEM_BLOCK).zip(up.par_chunks(ELEM_BLOCK))).for_each(
            |(yb, (gb, ub))| {
                for ((o, &g), &u) in yb.iter_mut().zip(gb).zip(ub) {
                    o.write(g * sigmoid(g) * u);
                }
            },
        );
        // SAFETY: every element was written above.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _p = crate::profile::op("swiglu.bwd", || (format!("{:?}", gate.dims()), None));
        let (dgate, dup) = with_f32(gate, "swiglu", |gate| {
            with_f32(up, "swiglu", |up| {
                with_f32(g, "swiglu", |g| {
                    let (mut dgate, mut dup) = (super::output(gate.len()), super::output(gate.len())); // both written
                    dgate
                        .par_chunks_mut(ELEM_BLOCK)
                        .zip(dup.par_chunks_mut(ELEM_BLOCK))
                        .zip(gate.par_chunks(ELEM_BLOCK).zip(up.par_chunks(ELEM_BLOCK)).zip(g.par_chunks(ELEM_BLOCK)))
                        .for_each(|((dgb, dub), ((gb, ub), gr))| {
                            for i in 0..dgb.len() {
                                let (x, u, gv) = (gb[i], ub[i], gr[i]);
                                let s = sigmoid(x);
                                dgb[i].write(gv * u * s * (1.0 + x * (1.0 - s)));
                                dub[i].write(gv * x * s);
                            }
                        });
                    // SAFETY: every element of both was written above.
                    unsafe { (super::init(dgate), super::init(dup)) }
                })
            })
        })???;
        let dev = gate.device();
        Ok((Some(Tensor::from_vec(dgate, gate.shape(), dev)?), Some(Tensor::from_vec(dup, up.shape(), dev)?)))
    }
}

/// `silu(gate) ⊙ up`, both (..., F).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGluOp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn swiglu_gradients_and_parity() {
        let inputs = [(randn(1, &[3, 7, 5]) * 2.0).unwrap(), randn(2, &[3, 7, 5])];
        let f = |t: &[Tensor]| swiglu(&t[0], &t[1]);
        check("swiglu", f, &inputs, &[0, 1]);
        parity("swiglu", f, |t| t[0].silu()? * &t[1], &inputs, &[0, 1], 1e-6);
    }
}
