//! Fused multi-head attention of separate queries, keys and values:
//! `y = softmax(q kᵀ / √D + mask) v` for every head, with q (B, T, H·D) and
//! k, v (B, S, H·D) read in place (heads side by side) and y written as
//! (B, T, H·D). It serves the encoder–decoder's three attentions:
//! - encoder self-attention (S = T), and cross-attention (S the source),
//!   where the mask hides each source's padding, given as its length;
//! - decoder self-attention (`causal`), where query i of T sees keys up to
//!   i + S − T: the whole target when training, the cache when decoding.
//!
//! One op replaces the split into heads, two batched matrix products per
//! direction, the bias, the softmax and the merge of heads, with their
//! backward passes. (B, head) pairs run in parallel, each with
//! single-threaded matrix products, so the result does not depend on the
//! thread count. The backward pass recomputes the probabilities block by
//! block instead of storing them (memory: a 64×S buffer per running task).
//!
//! Masking follows the composite path it replaces (a −1e9 bias): a key
//! length of 0 leaves nothing to hide, so such a row attends to every key.

use super::attention::{matmul, SharedMut};
use super::f32_slice;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Query rows per block.
const QB: usize = 64;

struct MhaOp {
    n_head: usize,
    causal: bool,
    /// Per row of keys, how many are real (the rest is padding).
    key_lens: Option<Vec<usize>>,
    /// Per query row, the row of keys and values it reads (beam search:
    /// every hypothesis of a source reads that source's encoder output,
    /// which is then never copied); `None`: its own row.
    key_rows: Option<Vec<usize>>,
}

/// The shape of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    s: usize,
    d: usize,
    c: usize,
}

impl MhaOp {
    fn dims(&self, lq: &Layout, lk: &Layout, lv: &Layout) -> Result<Dims> {
        let (b, t, c) = lq.shape().dims3()?;
        let (bk, s, ck) = lk.shape().dims3()?;
        let rows_fit = match &self.key_rows {
            Some(r) => r.len() == b && r.iter().all(|&x| x < bk),
            None => bk == b,
        };
        if !rows_fit || ck != c || lv.shape().dims() != lk.shape().dims() {
            bail!("attention: q {:?}, k {:?} and v {:?} do not fit", lq.dims(), lk.dims(), lv.dims());
        }
        if self.n_head == 0 || c % self.n_head != 0 {
            bail!("attention: width {c} is not {} heads", self.n_head);
        }
        if self.causal && s < t {
            bail!("attention: causal with {t} queries but only {s} keys");
        }
        if let Some(l) = &self.key_lens {
            if l.len() != bk || l.iter().any(|&n| n > s) {
                bail!("attention: key lengths {l:?} for {bk} rows of {s} keys");
            }
        }
        Ok(Dims { b, t, s, d: c / self.n_head, c })
    }

    /// The row of keys and values that query row `bi` reads.
    fn key_row(&self, bi: usize) -> usize {
        self.key_rows.as_ref().map_or(bi, |r| r[bi])
    }

    /// Keys query `i` of batch row `bi` sees: `0..kend`.
    fn kend(&self, dm: &Dims, bi: usize, i: usize) -> usize {
        let len = match &self.key_lens {
            Some(l) if l[self.key_row(bi)] > 0 => l[self.key_row(bi)],
            _ => dm.s,
        };
        if self.causal {
            len.min(i + dm.s - dm.t + 1)
        } else {
            len
        }
    }

    /// Scores of rows `r0..r0 + rows` (row stride S) to probabilities, in
    /// place: row i over its visible keys, zero up to `kmax`.
    fn softmax_rows(&self, dm: &Dims, bi: usize, s: &mut [f32], r0: usize, rows: usize, kmax: usize) {
        let scale = 1.0 / (dm.d as f32).sqrt();
        for (k, row) in s.chunks_mut(dm.s).take(rows).enumerate() {
            let (vis, hidden) = row[..kmax].split_at_mut(self.kend(dm, bi, r0 + k));
            super::softmax_row(vis, hidden, scale);
        }
    }

    /// The widest key range of the query block `r0..r0 + rows`.
    fn kmax(&self, dm: &Dims, bi: usize, r0: usize, rows: usize) -> usize {
        self.kend(dm, bi, r0 + rows - 1).max(self.kend(dm, bi, r0))
    }
}

impl CustomOp3 for MhaOp {
    fn name(&self) -> &'static str {
        "shiftlm-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dm = self.dims(lq, lk, lv)?;
        let Dims { b, t, s, d, c } = dm;
        let _p = crate::profile::op("attention.fwd", || {
            (format!("{:?}x{:?}", lq.dims(), lk.dims()), Some(4 * (b * t * s * c) as u64))
        });
        let q = f32_slice(sq, lq, "attention")?;
        let ((k, kbs), (v, vbs)) = (batch_rows(sk, lk)?, batch_rows(sv, lv)?);
        let mut y = super::output(b * t * c); // every head's columns are written by Y = P V
        let out = SharedMut(y.as_mut_ptr().cast::<f32>());
        let cs = c as isize;
        (0..b * self.n_head).into_par_iter().for_each_init(
            || vec![0f32; QB.min(t) * s],
            |sc, bh| {
                let (bi, hi) = (bh / self.n_head, bh % self.n_head);
                // SAFETY: every pointer stays inside its (B, ·, C) tensor; each
                // task writes only its own head's columns of its batch row of `y`.
                unsafe {
                    let qh = q.as_ptr().add(bi * t * c + hi * d);
                    let kh = k.as_ptr().add(self.key_row(bi) * kbs + hi * d);
                    let vh = v.as_ptr().add(self.key_row(bi) * vbs + hi * d);
                    let yh = { out }.0.add(bi * t * c + hi * d);
                    for r0 in (0..t).step_by(QB) {
                        let rows = QB.min(t - r0);
                        let kmax = self.kmax(&dm, bi, r0, rows);
                        // S = Q Kᵀ for this block's queries and the keys they see.
                        let sp = sc.as_mut_ptr();
                        matmul(rows, kmax, d, sp, (1, s as isize), qh.add(r0 * c), (1, cs), kh, (cs, 1), false);
                        self.softmax_rows(&dm, bi, sc, r0, rows, kmax);
                        // Y = P V
                        matmul(
                            rows,
                            d,
                            kmax,
                            yh.add(r0 * c),
                            (1, cs),
                            sc.as_ptr(),
                            (1, s as isize),
                            vh,
                            (1, cs),
                            false,
                        );
                    }
                }
            },
        );
        // SAFETY: every head's columns of every row were written by Y = P V.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), Shape::from((b, t, c))))
    }

    fn bwd(
        &self,
        q_t: &Tensor,
        k_t: &Tensor,
        v_t: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.key_rows.is_some() {
            bail!("attention: shared key rows are for decoding; there is no backward pass through them");
        }
        let dm = self.dims(q_t.layout(), k_t.layout(), v_t.layout())?;
        let Dims { b, t, s, d, c } = dm;
        let _p = crate::profile::op("attention.bwd", || {
            (format!("{:?}x{:?}", q_t.dims(), k_t.dims()), Some(10 * (b * t * s * c) as u64))
        });
        let scale = 1.0 / (d as f32).sqrt();
        let g = g.contiguous()?;
        let (mut dq, mut dk, mut dv) = (vec![0f32; b * t * c], vec![0f32; b * s * c], vec![0f32; b * s * c]);
        let (oq, ok, ov) = (SharedMut(dq.as_mut_ptr()), SharedMut(dk.as_mut_ptr()), SharedMut(dv.as_mut_ptr()));
        super::with_f32(q_t, "attention", |q| {
            super::with_f32(k_t, "attention", |k| {
                super::with_f32(v_t, "attention", |v| {
                    super::with_f32(&g, "attention", |g| {
                        let (cs, ss) = (c as isize, s as isize);
                        (0..b * self.n_head).into_par_iter().for_each_init(
                            || (vec![0f32; QB.min(t) * s], vec![0f32; QB.min(t) * s]),
                            |(p, dp), bh| {
                                let (bi, hi) = (bh / self.n_head, bh % self.n_head);
                                let at_q = bi * t * c + hi * d;
                                let at_k = bi * s * c + hi * d;
                                // SAFETY: as in the forward pass; each task writes only
                                // its own head's columns of its batch row of dq, dk, dv.
                                unsafe {
                                    let (qh, gh) = (q.as_ptr().add(at_q), g.as_ptr().add(at_q));
                                    let (kh, vh) = (k.as_ptr().add(at_k), v.as_ptr().add(at_k));
                                    let dqh = { oq }.0.add(at_q);
                                    let (dkh, dvh) = ({ ok }.0.add(at_k), { ov }.0.add(at_k));
                                    for r0 in (0..t).step_by(QB) {
                                        let rows = QB.min(t - r0);
                                        let kmax = self.kmax(&dm, bi, r0, rows);
                                        let (qb, gb) = (qh.add(r0 * c), gh.add(r0 * c));
                                        let (pp, dpp) = (p.as_mut_ptr(), dp.as_mut_ptr());
                                        matmul(rows, kmax, d, pp, (1, ss), qb, (1, cs), kh, (cs, 1), false); // S = Q Kᵀ
                                        self.softmax_rows(&dm, bi, p, r0, rows, kmax);
                                        matmul(kmax, d, rows, dvh, (1, cs), pp, (ss, 1), gb, (1, cs), true); // dV += Pᵀ G
                                        matmul(rows, kmax, d, dpp, (1, ss), gb, (1, cs), vh, (cs, 1), false); // dP = G Vᵀ
                                                                                                              // dS = scale · P ⊙ (dP − Σⱼ dP P), row by row (P is 0 where masked).
                                        for (pr, dr) in p.chunks(s).zip(dp.chunks_mut(s)).take(rows) {
                                            let dot = super::dot(&pr[..kmax], &dr[..kmax]);
                                            for j in 0..kmax {
                                                dr[j] = scale * pr[j] * (dr[j] - dot);
                                            }
                                        }
                                        let dsp = dp.as_ptr();
                                        matmul(
                                            rows,
                                            d,
                                            kmax,
                                            dqh.add(r0 * c),
                                            (1, cs),
                                            dsp,
                                            (1, ss),
                                            kh,
                                            (1, cs),
                                            false,
                                        ); // dQ = dS K
                                        matmul(kmax, d, rows, dkh, (1, cs), dsp, (ss, 1), qb, (1, cs), true);
                                        // dK += dSᵀ Q
                                    }
                                }
                            },
                        );
                    })
                })
            })
        })????;
        let dev = q_t.device();
        Ok((
            Some(Tensor::from_vec(dq, q_t.shape(), dev)?),
            Some(Tensor::from_vec(dk, k_t.shape(), dev)?),
            Some(Tensor::from_vec(dv, v_t.shape(), dev)?),
        ))
    }
}

/// Multi-head attention: `q` (B, T, H·D), `k` and `v` (B, S, H·D), heads
/// side by side → (B, T, H·D). `key_lens[b]` keys of row b are real (the
/// rest padding; 0 means all); `causal`: query i sees keys up to i + S − T.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_head: usize,
    key_lens: Option<&[usize]>,
    causal: bool,
) -> Result<Tensor> {
    attention_rows(q, k, v, n_head, key_lens, None, causal)
}

/// [`attention`] where query row b reads keys and values of row
/// `key_rows[b]` (and `key_lens` counts per row of keys). Forward only:
/// decoding, where hypotheses share their source's encoder output.
pub fn attention_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_head: usize,
    key_lens: Option<&[usize]>,
    key_rows: Option<&[usize]>,
    causal: bool,
) -> Result<Tensor> {
    let op =
        MhaOp { n_head, causal, key_lens: key_lens.map(<[usize]>::to_vec), key_rows: key_rows.map(<[usize]>::to_vec) };
    // Keys and values may be views of a decoding cache with room to spare
    // (rows apart in memory): read in place, not copied.
    let rows = |t: &Tensor| {
        let st = t.stride();
        let ok = t.dims().len() == 3 && st[2] == 1 && st[1] == t.dims()[2];
        if ok {
            Ok(t.clone())
        } else {
            t.contiguous()
        }
    };
    q.contiguous()?.apply_op3(&rows(k)?, &rows(v)?, op)
}

/// The values of a (B, S, C) tensor contiguous within each batch row, and
/// the distance between rows (S·C when it is contiguous).
fn batch_rows<'a>(s: &'a CpuStorage, l: &Layout) -> Result<(&'a [f32], usize)> {
    let CpuStorage::F32(data) = s else { bail!("attention: expects f32") };
    let (b, n, c) = l.shape().dims3()?;
    if let Some((a, e)) = l.contiguous_offsets() {
        return Ok((&data[a..e], n * c));
    }
    let st = l.stride();
    if st[2] != 1 || st[1] != c {
        bail!("attention: keys and values must be contiguous within each batch row");
    }
    let start = l.start_offset();
    let end = start + b.saturating_sub(1) * st[0] + n * c;
    if end > data.len() {
        bail!("attention: a (B, S, C) view reaches past its storage");
    }
    Ok((&data[start..end], st[0]))
}

/// The same from candle ops (split heads, matmuls, a −1e9 bias and our
/// softmax): the reference the fused op is tested against.
pub fn attention_composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_head: usize,
    key_lens: Option<&[usize]>,
    causal: bool,
) -> Result<Tensor> {
    let split_heads = |x: &Tensor| -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        x.reshape((b, t, n_head, c / n_head))?.transpose(1, 2)
    };
    let (b, t, c) = q.dims3()?;
    let s = k.dim(1)?;
    let d = c / n_head;
    let (qh, kh, vh) = (split_heads(q)?, split_heads(k)?, split_heads(v)?);
    let scores = (qh.contiguous()?.matmul(&kh.t()?.contiguous()?)? / (d as f64).sqrt())?; // (B, H, T, S)
    let mut bias = vec![0f32; b * t * s];
    for bi in 0..b {
        let len = key_lens.map_or(s, |l| if l[bi] == 0 { s } else { l[bi] });
        for i in 0..t {
            for j in 0..s {
                if j >= len || (causal && j > i + s - t) {
                    bias[(bi * t + i) * s + j] = -1e9;
                }
            }
        }
    }
    let bias = Tensor::from_vec(bias, (b, 1, t, s), q.device())?;
    let p = super::softmax::softmax(&scores.broadcast_add(&bias)?)?;
    let y = p.matmul(&vh.contiguous()?)?;
    y.transpose(1, 2)?.reshape((b, t, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn attention_gradients() {
        let (q, k, v) = (randn(1, &[2, 5, 6]), randn(2, &[2, 7, 6]), randn(3, &[2, 7, 6]));
        let inputs = [q, k, v];
        let f = |x: &[Tensor]| attention(&x[0], &x[1], &x[2], 2, Some(&[7, 4]), false);
        check("attention (cross, padded keys)", f, &inputs, &[0, 1, 2]);
        let f = |x: &[Tensor]| attention(&x[0], &x[1], &x[2], 3, None, true);
        check("attention (causal, 5 queries on 7 keys)", f, &inputs, &[0, 1, 2]);
        // More queries than one block (QB = 64), the last partial, with padding and causality.
        let big = [randn(4, &[1, 70, 4]), randn(5, &[1, 70, 4]), randn(6, &[1, 70, 4])];
        let f = |x: &[Tensor]| attention(&x[0], &x[1], &x[2], 2, Some(&[66]), true);
        check("attention (causal, 2 blocks, padded)", f, &big, &[0, 1, 2]);
    }

    #[test]
    fn attention_matches_the_composite() {
        let (q, k, v) = (randn(7, &[3, 9, 8]), randn(8, &[3, 11, 8]), randn(9, &[3, 11, 8]));
        for (lens, causal) in
            [(None, false), (Some(&[11usize, 3, 0][..]), false), (None, true), (Some(&[10, 11, 5][..]), true)]
        {
            let f = |x: &[Tensor]| attention(&x[0], &x[1], &x[2], 2, lens, causal);
            let g = |x: &[Tensor]| attention_composite(&x[0], &x[1], &x[2], 2, lens, causal);
            parity("attention", f, g, &[q.clone(), k.clone(), v.clone()], &[0, 1, 2], 1e-5);
        }
    }

    #[test]
    fn shared_key_rows_and_strided_views_read_what_copies_would() {
        // Keys and values of 2 sources as views into buffers with room (S = 6 of 10).
        let room = |seed| randn(seed, &[2, 10, 8]);
        let (kr, vr) = (room(4), room(5));
        let (k, v) = (kr.narrow(1, 0, 6).unwrap(), vr.narrow(1, 0, 6).unwrap());
        assert!(!k.is_contiguous());
        let q = randn(6, &[4, 3, 8]);
        let rows = [1usize, 0, 1, 1];
        let lens = [4usize, 6];
        let idx = Tensor::new(&[1u32, 0, 1, 1], q.device()).unwrap();
        let gather = |t: &Tensor| t.contiguous().unwrap().index_select(&idx, 0).unwrap();
        let row_lens: Vec<usize> = rows.iter().map(|&r| lens[r]).collect();
        for causal in [false, true] {
            let got = attention_rows(&q, &k, &v, 2, Some(&lens), Some(&rows), causal).unwrap();
            let want = attention(&q, &gather(&k), &gather(&v), 2, Some(&row_lens), causal).unwrap();
            let diff = (got - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "causal {causal}");
        }
        // A row of keys that does not exist is an error, not a read past the end.
        assert!(attention_rows(&q, &k, &v, 2, None, Some(&[0, 1, 2, 0]), false).is_err());
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let (q, k) = (randn(1, &[1, 2, 6]), randn(1, &[1, 3, 6]));
        let e = attention(&q, &k, &k, 4, None, false).unwrap_err().to_string();
        assert!(e.contains("not 4 heads"), "{e}");
        let e = attention(&k, &q, &q, 2, None, true).unwrap_err().to_string();
        assert!(e.contains("causal with 3 queries"), "{e}");
        let e = attention(&q, &k, &k, 2, Some(&[4]), false).unwrap_err().to_string();
        assert!(e.contains("key lengths"), "{e}");
    }
}
