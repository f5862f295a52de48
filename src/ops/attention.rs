//! Fused causal self-attention over packed `qkv` (B, T, (H + 2·H_kv)·D):
//! `y = softmax(q kᵀ / √D + causal mask) v` for every head, written straight
//! into (B, T, H·D) with the heads side by side. One op replaces the split
//! into heads, two batched matrix products, the mask, the softmax and the
//! merge of heads, and their backward passes (which in candle pad every
//! slice of qkv with zeros and add them up).
//!
//! The H query heads come first, then H_kv key heads and H_kv value heads:
//! GPT-2's `c_attn` output as it is (H_kv = H), or Llama's q, k and v
//! projections side by side, where each key/value head serves H / H_kv
//! query heads (grouped-query attention; Ainslie et al. 2023).
//!
//! Key/value groups run in parallel, one (batch, group) per task, each with
//! single-threaded matrix products; the result does not depend on the
//! thread count. The backward pass recomputes the attention probabilities
//! instead of storing them (memory: one T×T buffer per running task).

use super::f32_slice;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct CausalAttentionOp {
    n_head: usize,
    n_kv_head: usize,
}

/// The shape of one call: batch, time, head width and the row stride of qkv.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    d: usize,
    /// Output width H·D, also where the keys start in a qkv row.
    c: usize,
    /// Width of a qkv row, (H + 2·H_kv)·D.
    row: usize,
}

impl Dims {
    /// Offsets within a qkv row of query head `hi`'s, and of its group's
    /// key and value columns.
    fn columns(&self, hi: usize, n_head: usize, n_kv_head: usize) -> (usize, usize, usize) {
        let g = hi / (n_head / n_kv_head);
        (hi * self.d, self.c + g * self.d, self.c + (n_kv_head + g) * self.d)
    }
}

/// A raw pointer that tasks may share: they write disjoint parts. (Also the
/// encoder–decoder attention's, `super::mha`.)
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: each task writes only its own heads' columns (of y, or of dq, dk,
// dv, dqkv), so no two threads write the same element, and the buffer
// outlives the parallel loop that shares it.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// `dst (m×n) = lhs (m×k) · rhs (k×n)`, or `+=` with `acc`, on strided
/// matrices: (column stride, row stride) for each.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_s: (isize, isize),
    lhs: *const f32,
    lhs_s: (isize, isize),
    rhs: *const f32,
    rhs_s: (isize, isize),
    acc: bool,
) {
    super::sgemm::sgemm(m, n, k, dst, dst_s, acc, lhs, lhs_s, rhs, rhs_s, 1) // heads run in parallel already
}

/// Query rows per block: block i needs keys 0..(i+1)·QB only, so the
/// products skip the masked upper triangle a block at a time.
const QB: usize = 64;

/// Scaled causal softmax, in place, of the score rows `r0..r0 + rows` (row
/// stride `t`): row i keeps keys j ≤ i and zeroes i < j < `kend`.
fn causal_softmax_rows(s: &mut [f32], t: usize, r0: usize, rows: usize, kend: usize, scale: f32) {
    for (k, row) in s.chunks_mut(t).take(rows).enumerate() {
        let (vis, hidden) = row[..kend].split_at_mut(r0 + k + 1);
        super::softmax_row(vis, hidden, scale);
    }
}

impl CausalAttentionOp {
    fn dims(&self, l: &Layout) -> Result<Dims> {
        let (b, t, row) = l.shape().dims3()?;
        let (h, h_kv) = (self.n_head, self.n_kv_head);
        if h == 0 || h_kv == 0 || h % h_kv != 0 {
            bail!("causal_attention: {h} query heads cannot share {h_kv} key/value heads");
        }
        let heads = h + 2 * h_kv;
        if row % heads != 0 {
            bail!("causal_attention: qkv width {row} is not ({h} + 2 × {h_kv}) heads × head size");
        }
        let d = row / heads;
        Ok(Dims { b, t, d, c: h * d, row })
    }
}

impl CustomOp1 for CausalAttentionOp {
    fn name(&self) -> &'static str {
        "shiftlm-causal-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        // Q Kᵀ and P V over the causal half: 2·T²·D per head.
        let flops = |l: &Layout| self.dims(l).ok().map(|d| 2 * (d.b * self.n_head * d.t * d.t * d.d) as u64);
        let _p = crate::profile::op("causal_attention.fwd", || (format!("{:?}", l1.dims()), flops(l1)));
        let qkv = f32_slice(s1, l1, "causal_attention")?;
        let dm = self.dims(l1)?;
        let Dims { b, t, d, c, row } = dm;
        let (h, h_kv) = (self.n_head, self.n_kv_head);
        let scale = 1.0 / (d as f32).sqrt();
        let mut y = super::output(b * t * c); // every head's columns are written by Y = P V
        let out = SharedMut(y.as_mut_ptr().cast::<f32>());
        let rs = row as isize;
        (0..b * h_kv).into_par_iter().for_each_init(
            || vec![0f32; t * t],
            |s, bg| {
                let (bi, g) = (bg / h_kv, bg % h_kv);
                let base = qkv[bi * t * row..].as_ptr();
                for hi in g * (h / h_kv)..(g + 1) * (h / h_kv) {
                    let (qo, ko, vo) = dm.columns(hi, h, h_kv);
                    // SAFETY: every pointer stays inside its (B, T, ·) tensor; each
                    // task writes only its own heads' columns of `y`.
                    unsafe {
                        let (q, k, v) = (base.add(qo), base.add(ko), base.add(vo));
                        let dst = { out }.0.add(bi * t * c + hi * d);
                        for r0 in (0..t).step_by(QB) {
                            let (rows, kend) = (QB.min(t - r0), (r0 + QB).min(t));
                            let sb = s[r0 * t..].as_mut_ptr();
                            // S = Q Kᵀ for this block's queries and the keys they see.
                            matmul(rows, kend, d, sb, (1, t as isize), q.add(r0 * row), (1, rs), k, (rs, 1), false);
                            causal_softmax_rows(&mut s[r0 * t..], t, r0, rows, kend, scale);
                            // Y = P V
                            let y = dst.add(r0 * c);
                            let p = s[r0 * t..].as_ptr();
                            matmul(rows, d, kend, y, (1, c as isize), p, (1, t as isize), v, (1, rs), false);
                        }
                    }
                }
            },
        );
        // SAFETY: every head's columns of every row were written by Y = P V.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), Shape::from((b, t, c))))
    }

    fn bwd(&self, qkv_t: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        // S recomputed, dV, dP, dQ and dK: 5·T²·D per head over the causal half.
        let flops = |l: &Layout| self.dims(l).ok().map(|d| 5 * (d.b * self.n_head * d.t * d.t * d.d) as u64);
        let _p = crate::profile::op("causal_attention.bwd", || (format!("{:?}", qkv_t.dims()), flops(qkv_t.layout())));
        let dm = self.dims(qkv_t.layout())?;
        let Dims { b, t, d, c, row } = dm;
        let (h, h_kv) = (self.n_head, self.n_kv_head);
        let scale = 1.0 / (d as f32).sqrt();
        let dqkv = super::with_f32(qkv_t, "causal_attention", |qkv| {
            super::with_f32(g, "causal_attention", |g| {
                let mut dqkv = vec![0f32; qkv.len()];
                let out = SharedMut(dqkv.as_mut_ptr());
                let (rs, ts, cs) = (row as isize, t as isize, c as isize);
                (0..b * h_kv).into_par_iter().for_each_init(
                    || (vec![0f32; t * t], vec![0f32; t * t]),
                    |(p, dp), bg| {
                        let (bi, gi) = (bg / h_kv, bg % h_kv);
                        let base = qkv[bi * t * row..].as_ptr();
                        // The query heads of one group add into the same dK and dV.
                        for hi in gi * (h / h_kv)..(gi + 1) * (h / h_kv) {
                            let (qo, ko, vo) = dm.columns(hi, h, h_kv);
                            let gh = g[bi * t * c + hi * d..].as_ptr();
                            // SAFETY: as in the forward pass; each task writes only
                            // its own heads' q, k and v columns of `dqkv`.
                            unsafe {
                                let (q, k, v) = (base.add(qo), base.add(ko), base.add(vo));
                                let dbase = { out }.0.add(bi * t * row);
                                let (dq, dk, dv) = (dbase.add(qo), dbase.add(ko), dbase.add(vo));
                                for r0 in (0..t).step_by(QB) {
                                    let (rows, kend) = (QB.min(t - r0), (r0 + QB).min(t));
                                    let (pb, dpb) = (p[r0 * t..].as_mut_ptr(), dp[r0 * t..].as_mut_ptr());
                                    let (qb, gb) = (q.add(r0 * row), gh.add(r0 * c));
                                    matmul(rows, kend, d, pb, (1, ts), qb, (1, rs), k, (rs, 1), false); // S = Q Kᵀ
                                    causal_softmax_rows(&mut p[r0 * t..], t, r0, rows, kend, scale);
                                    matmul(kend, d, rows, dv, (1, rs), pb, (ts, 1), gb, (1, cs), true); // dV += Pᵀ G
                                    matmul(rows, kend, d, dpb, (1, ts), gb, (1, cs), v, (rs, 1), false); // dP = G Vᵀ
                                                                                                         // dS = scale · P ⊙ (dP − Σⱼ dP P), row by row (0 past the diagonal).
                                    let blk = p[r0 * t..].chunks(t).zip(dp[r0 * t..].chunks_mut(t)).take(rows);
                                    for (i, (pr, dr)) in blk.enumerate() {
                                        let n = r0 + i + 1;
                                        let dot = super::dot(&pr[..n], &dr[..n]);
                                        for j in 0..n {
                                            dr[j] = scale * pr[j] * (dr[j] - dot);
                                        }
                                        dr[n..kend].iter_mut().for_each(|x| *x = 0.0);
                                    }
                                    let dpb = dp[r0 * t..].as_ptr();
                                    let dqb = dq.add(r0 * row);
                                    matmul(rows, d, kend, dqb, (1, rs), dpb, (1, ts), k, (1, rs), false); // dQ = dS K
                                    matmul(kend, d, rows, dk, (1, rs), dpb, (ts, 1), qb, (1, rs), true);
                                    // dK += dSᵀ Q
                                }
                            }
                        }
                    },
                );
                dqkv
            })
        })??;
        Ok(Some(Tensor::from_vec(dqkv, qkv_t.shape(), qkv_t.device())?))
    }
}

/// Causal multi-head self-attention of packed `qkv` (B, T, 3C) (q, k and v
/// side by side, each C = n_head · D wide) → (B, T, C), heads side by side.
pub fn causal_self_attention(qkv: &Tensor, n_head: usize) -> Result<Tensor> {
    grouped_causal_self_attention(qkv, n_head, n_head)
}

/// Causal self-attention with grouped key/value heads: `qkv` (B, T,
/// (H + 2·H_kv)·D) holds H query heads, then H_kv key and H_kv value heads;
/// each key/value head serves H / H_kv consecutive query heads. → (B, T, H·D).
pub fn grouped_causal_self_attention(qkv: &Tensor, n_head: usize, n_kv_head: usize) -> Result<Tensor> {
    qkv.contiguous()?.apply_op1(CausalAttentionOp { n_head, n_kv_head })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, randn};

    // Parity with the composite version is checked in `nn::causal_attention`.
    #[test]
    fn causal_attention_gradients() {
        let f2 = |x: &[Tensor]| causal_self_attention(&x[0], 2);
        check("causal_attention", f2, &[randn(1, &[2, 5, 3 * 6])], &[0]);
        // Longer than one query block (QB = 64), the last block partial.
        check("causal_attention (3 blocks)", f2, &[randn(3, &[2, 150, 3 * 8])], &[0]);
        // Grouped: 4 query heads share 2 key/value heads (D = 3).
        let f = |x: &[Tensor]| grouped_causal_self_attention(&x[0], 4, 2);
        check("grouped causal_attention", f, &[randn(4, &[2, 7, (4 + 2 * 2) * 3])], &[0]);
        check("grouped causal_attention (2 blocks)", f, &[randn(5, &[1, 70, (4 + 2 * 2) * 2])], &[0]);
    }

    #[test]
    fn impossible_head_groupings_are_errors() {
        let e = grouped_causal_self_attention(&randn(1, &[1, 2, 12]), 3, 2).unwrap_err().to_string();
        assert!(e.contains("3 query heads cannot share 2"), "{e}");
        let e = grouped_causal_self_attention(&randn(1, &[1, 2, 13]), 2, 1).unwrap_err().to_string();
        assert!(e.contains("not (2 + 2 × 1) heads"), "{e}");
    }
}
