//! 2-D convolution, stride 1 and zero padding, as im2col matrix products
//! with shiftlm's kernel, forward and backward.
//!
//! Why not candle's: its CPU `conv2d` backward computes the weight gradient
//! as a convolution whose kernel is the whole output map, which no matrix
//! kernel serves; a 3×3 CNN step on 28×28 images spent most of its time
//! there (BENCHMARKS.md, "CNN speed"). Here each image is unfolded into
//! columns (C_in·k·k, H_out·W_out) and every pass is one product:
//!
//! - forward  y_b = W · cols_b + b
//! - input    dcols_b = Wᵀ · dy_b, folded back into dx_b (col2im)
//! - weight   dW = Σ_b dy_b · cols_bᵀ
//! - bias     db = Σ_b Σ_pixels dy_b
//!
//! Images are split over rayon's threads, each product single-threaded on
//! one image, which stays in cache: one wide product over all the images'
//! columns at once ran at half the speed on this project's machine (its
//! unfolded operand, 14 MB for a 28×28 CNN's second layer, streams from
//! memory). The weight and bias gradients are summed over fixed blocks of
//! images, then the blocks in order, so results do not depend on the
//! thread count.

use super::sgemm::sgemm;
use super::{f32_slice, with_f32};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    b: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &[usize], wt: &[usize], pad: usize) -> Result<Self> {
        let (&[b, c_in, h, w], &[c_out, c_in2, k, k2]) = (x, wt) else {
            bail!("conv2d: input {x:?} and weight {wt:?} must be 4-D")
        };
        if c_in != c_in2 || k != k2 || k == 0 || h + 2 * pad < k || w + 2 * pad < k {
            bail!("conv2d: input {x:?} does not fit weight {wt:?} with padding {pad}");
        }
        Ok(Self { b, c_in, h, w, c_out, k, pad, ho: h + 2 * pad - k + 1, wo: w + 2 * pad - k + 1 })
    }

    /// Rows of the unfolded image: C_in·k·k.
    fn ckk(&self) -> usize {
        self.c_in * self.k * self.k
    }

    /// Output pixels per channel.
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// Row `r` = (c, ky, kx) of the unfolded image `x` (C_in, H, W): the
    /// input pixel that tap (ky, kx) of channel c sees at each output pixel
    /// (H_out·W_out values, 0 in the padding).
    fn unfold_row(&self, x: &[f32], r: usize, out: &mut [f32]) {
        let (k, p) = (self.k, self.pad as isize);
        let (c, ky, kx) = (r / (k * k), (r / k) % k, r % k);
        let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
        for oy in 0..self.ho {
            let iy = oy as isize + ky as isize - p;
            let out = &mut out[oy * self.wo..(oy + 1) * self.wo];
            if iy < 0 || iy >= self.h as isize {
                out.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * self.w..(iy as usize + 1) * self.w];
            // Output columns whose input column ox + kx − p is inside the image.
            let lo = (p - kx as isize).clamp(0, self.wo as isize) as usize;
            let hi = (self.w as isize + p - kx as isize).clamp(lo as isize, self.wo as isize) as usize;
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            if hi > lo {
                // (With lo == hi this tap sees only padding: no source column to index.)
                let s0 = (lo as isize + kx as isize - p) as usize;
                out[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
            }
        }
    }

    /// Unfolds image `x` (C_in, H, W) into `cols` (C_in·k·k, H_out·W_out).
    fn unfold(&self, x: &[f32], cols: &mut [f32]) {
        for (r, row) in cols.chunks_exact_mut(self.pixels().max(1)).enumerate() {
            self.unfold_row(x, r, row);
        }
    }

    /// Folds `cols` (C_in·k·k, H_out·W_out) back, adding into `dx` (C_in, H, W).
    fn fold(&self, cols: &[f32], dx: &mut [f32]) {
        let (k, p, n) = (self.k, self.pad as isize, self.pixels());
        for c in 0..self.c_in {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &cols[((c * k + ky) * k + kx) * n..][..n];
                    for oy in 0..self.ho {
                        let iy = oy as isize + ky as isize - p;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        let dst = &mut plane[iy as usize * self.w..(iy as usize + 1) * self.w];
                        let lo = (p - kx as isize).clamp(0, self.wo as isize) as usize;
                        let hi = (self.w as isize + p - kx as isize).clamp(lo as isize, self.wo as isize) as usize;
                        if hi <= lo {
                            continue; // this tap sees only padding here
                        }
                        let s0 = (lo as isize + kx as isize - p) as usize;
                        let src = &row[oy * self.wo + lo..oy * self.wo + hi];
                        dst[s0..s0 + (hi - lo)].iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }
}

/// Images whose weight gradients one task sums before the blocks are added
/// in order (fixed, so sums never depend on the thread count).
const IMAGE_BLOCK: usize = 4;

thread_local! {
    /// Each thread's unfolded image and full-size map, kept between calls
    /// (allocating and zeroing them per image costs as much as a product).
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f` with this thread's scratch buffers of `a` and `b` floats (their
/// contents are whatever the last call left: `f` must write before reading).
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let [x, y] = &mut *s;
        if x.len() < a {
            x.resize(a, 0.0);
        }
        if y.len() < b {
            y.resize(b, 0.0);
        }
        f(&mut x[..a], &mut y[..b])
    })
}

/// Row-major strides (column stride, row stride) of a matrix with `cols` columns.
fn rm(cols: usize) -> (isize, isize) {
    (1, cols as isize)
}

/// What follows the convolution inside the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing: y = W * x + b.
    Nothing,
    /// A ReLU: the output is max(0, y), the gradient passes where it is positive.
    Relu,
    /// A ReLU, then 2×2 max pooling (stride 2): the gradient goes to the
    /// first maximum of each window (row-major, PyTorch's choice), and
    /// nowhere if that maximum is not positive. The full-size map never
    /// leaves the op: no tensor, no gradient of its size in the graph.
    ReluPool,
}

struct Conv2dOp {
    pad: usize,
    then: Then,
    /// [`Then::ReluPool`]: for each pooled output, the offset within its
    /// (H_out·W_out) plane of the maximum it took, or `u32::MAX` where that
    /// maximum was not positive. Written by the forward pass, read by the
    /// backward pass of this application of the op.
    argmax: std::sync::Mutex<Vec<u32>>,
}

/// No positive maximum in the window: no gradient.
const NONE: u32 = u32::MAX;

/// ReLU and 2×2 max pooling of one image's convolution output `full`
/// (C_out × H_out·W_out) into `yb` (C_out × H_out/2·W_out/2), with each
/// window's argmax in `ab` (`NONE` where the maximum is not positive, or
/// NaN: a NaN passes through, as in PyTorch, and gets no gradient).
fn pool_image(g: &Geometry, full: &[f32], yb: &mut [f32], ab: &mut [u32]) {
    let (n, wo) = (g.pixels(), g.wo);
    let (q, half) = (n / 4, wo / 2);
    for c in 0..g.c_out {
        let plane = &full[c * n..(c + 1) * n];
        let (yc, ac) = (&mut yb[c * q..(c + 1) * q], &mut ab[c * q..(c + 1) * q]);
        for oy in 0..g.ho / 2 {
            let (r0, r1) = plane[2 * oy * wo..(2 * oy + 2) * wo].split_at(wo);
            let (yr, ar) = (&mut yc[oy * half..(oy + 1) * half], &mut ac[oy * half..(oy + 1) * half]);
            for (ox, (yv, av)) in yr.iter_mut().zip(ar.iter_mut()).enumerate() {
                // Branch-free: which of the four wins is data, and mispredicted
                // branches cost more than the rest of the loop.
                let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
                let (top, bottom) = (usize::from(b > a), usize::from(d > c));
                let (mt, mb) = (a.max(b), c.max(d));
                let lower = usize::from(mb > mt); // ties go to the top row
                let m = mt.max(mb);
                let at = 2 * oy * wo + 2 * ox + lower * wo + top * (1 - lower) + bottom * lower;
                let nan = a.is_nan() || b.is_nan() || c.is_nan() || d.is_nan();
                *yv = if nan { f32::NAN } else { m.max(0.0) };
                *av = if m > 0.0 && !nan { at as u32 } else { NONE };
            }
        }
    }
}

impl Conv2dOp {
    /// Image `i`, channel `c`: the gradient with respect to the
    /// convolution's output (H_out·W_out values) into `out`, from the op's
    /// output gradient `dys` (and its output `res`, or the pooling's argmax).
    #[allow(clippy::too_many_arguments)]
    fn dy_plane(&self, g: &Geometry, i: usize, c: usize, dys: &[f32], res: &[f32], argmax: &[u32], out: &mut [f32]) {
        let n = g.pixels();
        let at = (i * g.c_out + c) * n;
        match self.then {
            Then::Nothing => out.copy_from_slice(&dys[at..at + n]),
            Then::Relu => {
                let (d, r) = (&dys[at..at + n], &res[at..at + n]);
                out.iter_mut().zip(d.iter().zip(r)).for_each(|(o, (&d, &y))| *o = if y > 0.0 { d } else { 0.0 });
            }
            Then::ReluPool => {
                let q = n / 4;
                out.fill(0.0);
                let at = (i * g.c_out + c) * q;
                for (&d, &a) in dys[at..at + q].iter().zip(&argmax[at..at + q]) {
                    if a != NONE {
                        out[a as usize] = d;
                    }
                }
            }
        }
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "shiftlm-conv2d"
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
        let g = Geometry::new(l1.dims(), l2.dims(), self.pad)?;
        let (x, wt, bias) = (f32_slice(s1, l1, "conv2d")?, f32_slice(s2, l2, "conv2d")?, f32_slice(s3, l3, "conv2d")?);
        if bias.len() != g.c_out {
            bail!("conv2d: bias of {} for {} output channels", bias.len(), g.c_out);
        }
        let pool = self.then == Then::ReluPool;
        if pool && (g.ho % 2 != 0 || g.wo % 2 != 0) {
            bail!("conv2d: 2×2 pooling of a {}×{} map (an odd side)", g.ho, g.wo);
        }
        let (ckk, n, co) = (g.ckk(), g.pixels(), g.c_out);
        let _p = crate::profile::op(if pool { "conv2d_pool.fwd" } else { "conv2d.fwd" }, || {
            (format!("{:?}*{:?}", l1.dims(), l2.dims()), Some(g.b as u64 * crate::profile::matmul_flops(co, n, ckk)))
        });
        let out = if pool { co * n / 4 } else { co * n }; // per image
        let mut y = vec![0f32; g.b * out];
        let mut argmax = vec![0u32; if pool { g.b * out } else { 0 }];
        let img = g.c_in * g.h * g.w;
        let relu = self.then == Then::Relu;
        // Per image: y_b (C_out × n) = b + W (C_out × ckk) · cols_b (ckk × n), then
        // the ReLU and the pooling, on one thread, in cache.
        let image = |i: usize, yb: &mut [f32], ab: &mut [u32]| {
            with_scratch(ckk * n, if pool { co * n } else { 0 }, |cols, full| {
                g.unfold(&x[i * img..(i + 1) * img], cols);
                let dst: &mut [f32] = if pool { full } else { &mut *yb };
                for (row, &bv) in dst.chunks_exact_mut(n.max(1)).zip(bias) {
                    row.fill(bv);
                }
                // SAFETY: dst (C_out × n), W (C_out × ckk) and cols (ckk × n) are sized above.
                unsafe {
                    sgemm(co, n, ckk, dst.as_mut_ptr(), rm(n), true, wt.as_ptr(), rm(ckk), cols.as_ptr(), rm(n), 1)
                };
                if relu {
                    // (`<=` lets a NaN through, as PyTorch's ReLU does.)
                    dst.iter_mut().for_each(|v| *v = if *v <= 0.0 { 0.0 } else { *v });
                }
                if pool {
                    pool_image(&g, full, yb, ab);
                }
            })
        };
        if pool {
            y.par_chunks_mut(out.max(1))
                .zip(argmax.par_chunks_mut(out.max(1)))
                .enumerate()
                .for_each(|(i, (yb, ab))| image(i, yb, ab));
        } else {
            y.par_chunks_mut(out.max(1)).enumerate().for_each(|(i, yb)| image(i, yb, &mut []));
        }
        if pool {
            *self.argmax.lock().map_err(|_| candle_core::Error::Msg("conv2d: poisoned".into()))? = argmax;
        }
        let (ho, wo) = if pool { (g.ho / 2, g.wo / 2) } else { (g.ho, g.wo) };
        Ok((CpuStorage::F32(y), Shape::from((g.b, co, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.dims(), w.dims(), self.pad)?;
        let (ckk, n, co) = (g.ckk(), g.pixels(), g.c_out);
        let (dx_on, dw_on, db_on) = (x.track_op(), w.track_op(), b.track_op());
        let pool = self.then == Then::ReluPool;
        let _p = crate::profile::op(if pool { "conv2d_pool.bwd" } else { "conv2d.bwd" }, || {
            let products = u64::from(dx_on) + u64::from(dw_on);
            (
                format!("{:?}*{:?}", x.dims(), w.dims()),
                Some(products * g.b as u64 * crate::profile::matmul_flops(co, n, ckk)),
            )
        });
        let argmax = self.argmax.lock().map_err(|_| candle_core::Error::Msg("conv2d: poisoned".into()))?;
        if pool && argmax.len() != dy.elem_count() {
            bail!("conv2d: backward before forward");
        }
        let res =
            if self.then == Then::Relu { res.clone() } else { Tensor::zeros(0, candle_core::DType::F32, x.device())? };
        let img = g.c_in * g.h * g.w;
        let (dx, dw, db) = with_f32(x, "conv2d", |xs| {
            with_f32(w, "conv2d", |ws| {
                with_f32(&res, "conv2d", |rs| {
                    with_f32(dy, "conv2d", |dys| {
                        // Image i's gradient at the convolution's output (C_out × n).
                        let dy_image = |i: usize, out: &mut [f32]| {
                            for (c, plane) in out.chunks_exact_mut(n.max(1)).enumerate() {
                                self.dy_plane(&g, i, c, dys, rs, &argmax, plane);
                            }
                        };
                        // Per block of images: its share of dW (C_out × ckk) and db.
                        let parts: Vec<(Vec<f32>, Vec<f32>)> = if dw_on || db_on {
                            (0..g.b.div_ceil(IMAGE_BLOCK))
                                .into_par_iter()
                                .map(|blk| {
                                    with_scratch(if dw_on { ckk * n } else { 0 }, co * n, |cols, dyb| {
                                        let (mut dw, mut db) = (vec![0f32; co * ckk], vec![0f32; co]);
                                        for i in blk * IMAGE_BLOCK..((blk + 1) * IMAGE_BLOCK).min(g.b) {
                                            dy_image(i, dyb);
                                            if dw_on {
                                                g.unfold(&xs[i * img..(i + 1) * img], cols);
                                                // dW += dy_b (C_out × n) · cols_bᵀ (n × ckk)
                                                // SAFETY: buffers sized above; colsᵀ is a strided view.
                                                unsafe {
                                                    sgemm(
                                                        co,
                                                        ckk,
                                                        n,
                                                        dw.as_mut_ptr(),
                                                        rm(ckk),
                                                        true,
                                                        dyb.as_ptr(),
                                                        rm(n),
                                                        cols.as_ptr(),
                                                        (n as isize, 1),
                                                        1,
                                                    )
                                                };
                                            }
                                            for (d, row) in db.iter_mut().zip(dyb.chunks_exact(n.max(1))) {
                                                *d += super::sum(row);
                                            }
                                        }
                                        (dw, db)
                                    })
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let mut dx = vec![0f32; if dx_on { g.b * img } else { 0 }];
                        dx.par_chunks_mut(img.max(1)).enumerate().for_each(|(i, dxb)| {
                            with_scratch(ckk * n, co * n, |dcols, dyb| {
                                dy_image(i, dyb);
                                // dcols (ckk × n) = Wᵀ (ckk × C_out) · dy_b (C_out × n)
                                // SAFETY: buffers sized above; Wᵀ is a strided view.
                                unsafe {
                                    sgemm(
                                        ckk,
                                        n,
                                        co,
                                        dcols.as_mut_ptr(),
                                        rm(n),
                                        false,
                                        ws.as_ptr(),
                                        (ckk as isize, 1),
                                        dyb.as_ptr(),
                                        rm(n),
                                        1,
                                    )
                                };
                                g.fold(dcols, dxb);
                            })
                        });
                        let (dws, dbs): (Vec<Vec<f32>>, Vec<Vec<f32>>) = parts.into_iter().unzip();
                        (dx, super::add_parts(dws, co * ckk), super::add_parts(dbs, co))
                    })
                })
            })
        })????;
        let dev = x.device();
        Ok((
            dx_on.then(|| Tensor::from_vec(dx, x.shape(), dev)).transpose()?,
            dw_on.then(|| Tensor::from_vec(dw, w.shape(), dev)).transpose()?,
            db_on.then(|| Tensor::from_vec(db, co, dev)).transpose()?,
        ))
    }
}

fn apply(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize, then: Then) -> Result<Tensor> {
    let op = Conv2dOp { pad, then, argmax: Default::default() };
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

/// Convolution of `x` (B, C_in, H, W) with `w` (C_out, C_in, k, k) and bias
/// `b` (C_out), stride 1, `pad` zeros on every side → (B, C_out, H_out, W_out).
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    apply(x, w, b, pad, Then::Nothing)
}

/// [`conv2d`] followed by a ReLU, in the same pass (forward and backward).
pub fn conv2d_relu(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    apply(x, w, b, pad, Then::Relu)
}

/// [`conv2d`], a ReLU and 2×2 max pooling (stride 2) in one op: the
/// convolution's output must have even sides → (B, C_out, H_out/2, W_out/2).
pub fn conv2d_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    apply(x, w, b, pad, Then::ReluPool)
}

/// The composite version (the reference): candle's `conv2d` and a broadcast bias.
pub fn conv2d_composite(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    x.conv2d(w, pad, 1, 1, 1)?.broadcast_add(&b.reshape((1, (), 1, 1))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn gradients_match_finite_differences() {
        for (pad, k) in [(1, 3), (0, 3), (2, 5), (0, 1)] {
            let inputs = [randn(1, &[2, 3, 6, 7]), randn(2, &[4, 3, k, k]), randn(3, &[4])];
            check(&format!("conv2d pad {pad} k {k}"), |t| conv2d(&t[0], &t[1], &t[2], pad), &inputs, &[0, 1, 2]);
        }
    }

    #[test]
    fn the_fused_relu_matches_a_relu_after() {
        let inputs = [randn(11, &[3, 2, 6, 5]), randn(12, &[4, 2, 3, 3]), randn(13, &[4])];
        // Parity only: a finite-difference step straddles ReLU kinks. The
        // convolution is checked against differences above, the ReLU is candle's.
        parity(
            "conv2d_relu",
            |t| conv2d_relu(&t[0], &t[1], &t[2], 1),
            |t| conv2d_composite(&t[0], &t[1], &t[2], 1)?.relu(),
            &inputs,
            &[0, 1, 2],
            1e-4,
        );
    }

    #[test]
    fn the_fused_pooling_matches_pooling_after() {
        // Blank rows and columns make windows of tied maxima and of zeros.
        let mut x = randn(14, &[3, 2, 6, 8]).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        x.iter_mut().take(2 * 48).for_each(|v| *v = 0.0);
        let x = Tensor::from_vec(x, (3, 2, 6, 8), &candle_core::Device::Cpu).unwrap();
        let inputs = [x, randn(15, &[4, 2, 3, 3]), randn(16, &[4])];
        // Parity with the composite (whose pooling nn::pool checks against
        // differences); differences here would straddle ReLU and max kinks.
        let composite =
            |t: &[Tensor]| crate::ops::pool::max_pool_2x2_composite(&conv2d_composite(&t[0], &t[1], &t[2], 1)?.relu()?);
        parity("conv2d_relu_pool", |t| conv2d_relu_pool(&t[0], &t[1], &t[2], 1), composite, &inputs, &[0, 1, 2], 1e-4);
        let odd = [randn(1, &[1, 1, 5, 4]), randn(2, &[2, 1, 3, 3]), randn(3, &[2])];
        assert!(conv2d_relu_pool(&odd[0], &odd[1], &odd[2], 1).is_err());
    }

    #[test]
    fn matches_candle_in_value_and_gradient() {
        for (pad, k, b) in [(1, 3, 5), (0, 3, 3), (1, 1, 2), (3, 3, 1)] {
            let inputs = [randn(4, &[b, 2, 9, 5]), randn(5, &[6, 2, k, k]), randn(6, &[6])];
            parity(
                &format!("conv2d pad {pad} k {k} batch {b}"),
                |t| conv2d(&t[0], &t[1], &t[2], pad),
                |t| conv2d_composite(&t[0], &t[1], &t[2], pad),
                &inputs,
                &[0, 1, 2],
                1e-4,
            );
        }
    }

    #[test]
    fn the_same_on_any_number_of_threads() {
        let inputs = [randn(7, &[9, 3, 8, 8]), randn(8, &[16, 3, 3, 3]), randn(9, &[16])];
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let vars: Vec<candle_core::Var> =
                    inputs.iter().map(|t| candle_core::Var::from_tensor(t).unwrap()).collect();
                let y = conv2d(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor(), 1).unwrap();
                let g = (y.sqr().unwrap().sum_all().unwrap()).backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let mut out = flat(&y);
                for v in &vars {
                    out.extend(flat(g.get(v.as_tensor()).unwrap()));
                }
                out
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// Padding wider than the image: some taps see only zeros at some columns.
    #[test]
    fn padding_wider_than_the_image() {
        let inputs = [randn(21, &[2, 1, 3, 1]), randn(22, &[2, 1, 5, 5]), randn(23, &[2])];
        check("conv2d pad 2 on width 1", |t| conv2d(&t[0], &t[1], &t[2], 2), &inputs, &[0, 1, 2]);
        let inputs = [randn(24, &[1, 2, 2, 2]), randn(25, &[3, 2, 7, 7]), randn(26, &[3])];
        parity(
            "conv2d pad 3",
            |t| conv2d(&t[0], &t[1], &t[2], 3),
            |t| conv2d_composite(&t[0], &t[1], &t[2], 3),
            &inputs,
            &[0, 1, 2],
            1e-4,
        );
    }

    /// A NaN input comes out NaN through the ReLU and the pooling.
    #[test]
    fn nan_passes_through() {
        let mut x = vec![0.5f32; 16];
        x[5] = f32::NAN;
        let x = Tensor::from_vec(x, (1, 1, 4, 4), &candle_core::Device::Cpu).unwrap();
        let (w, b) =
            (Tensor::ones((1, 1, 1, 1), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(), randn(1, &[1]));
        for y in [conv2d_relu(&x, &w, &b, 0).unwrap(), conv2d_relu_pool(&x, &w, &b, 0).unwrap()] {
            assert!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().any(|v| v.is_nan()), "{y}");
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        let x = randn(1, &[1, 2, 4, 4]);
        assert!(conv2d(&x, &randn(2, &[3, 5, 3, 3]), &randn(3, &[3]), 1).is_err());
        assert!(conv2d(&x, &randn(2, &[3, 2, 3, 3]), &randn(3, &[4]), 1).is_err());
        assert!(conv2d(&x, &randn(2, &[3, 2, 7, 7]), &randn(3, &[3]), 1).is_err());
    }
}
