//! f32 matrix product with an AVX-512 kernel, used by the fused ops where
//! the CPU has AVX-512F (AMD Zen 4/5, Intel since Skylake-SP); elsewhere it
//! hands over to the `gemm` crate that candle uses. That crate's kernels
//! are AVX2 only on stable Rust, which leaves half of a full-width AVX-512
//! core idle (125 vs ~210 GFLOP/s on one core of this project's machine).
//!
//! The structure is the classic one (Goto & van de Geijn 2008): B is
//! packed in panels of NR = 32 columns (two 16-float registers), A in
//! panels of MR = 12 rows, and a 12 × 32 register tile accumulates one
//! panel product; blocks of KC × NC of B and MC × KC of A are sized to stay
//! in L1/L2. Packing reads any strides, so transposed operands cost nothing
//! extra. Threads split the rows of C; each C element is computed by one
//! thread in the same order whatever the thread count.
//!
//! Under `--precision bf16` ([`super::cpu::set_precision`]) the products
//! that [`sgemm`] packs round both operands to bf16 as they are packed and
//! multiply them with AVX512_BF16's `vdpbf16ps`, which does twice the
//! multiply-adds of an f32 FMA per instruction, accumulating in f32; the
//! result is f32 as always. Panels then hold k in pairs (the instruction
//! multiplies two consecutive k at once). Products with a [`PackedRhs`]
//! (the recurrences' Wₕₕ, latency-bound) stay f32.

use rayon::prelude::*;

const MR: usize = 12;
const NR: usize = 32;
const KC: usize = 256;
const MC: usize = 96; // a multiple of MR
const NC: usize = 2048; // a multiple of NR

/// A strided matrix view: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct Mat {
    /// Pointer to element (0, 0).
    pub ptr: *const f32,
    /// Row stride, in elements.
    pub rs: isize,
    /// Column stride, in elements (1 for a row-major matrix).
    pub cs: isize,
}
// SAFETY: a `Mat` is only read, and the caller of `sgemm` keeps the matrix
// alive and unchanged for the whole product (the function's contract), so
// the threads that share it see the same valid memory.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

#[derive(Clone, Copy)]
struct MatMut(*mut f32, isize, isize);
// SAFETY: the threads of one product write disjoint blocks of rows of the
// destination (`gemm_with` hands each a range of rows), and the caller of
// `sgemm` keeps it alive and otherwise untouched until the product returns.
unsafe impl Send for MatMut {}
unsafe impl Sync for MatMut {}

/// `dst (m×n) = lhs (m×k) · rhs (k×n)`, or `+=` with `acc`. Strides are
/// (column stride, row stride) pairs as in the `gemm` crate. `threads` > 1
/// splits the rows of `dst`.
///
/// # Safety
/// Every pointer must be valid for its matrix and `dst` must not overlap
/// the inputs.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_s: (isize, isize),
    acc: bool,
    lhs: *const f32,
    lhs_s: (isize, isize),
    rhs: *const f32,
    rhs_s: (isize, isize),
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // Packing costs a pass over both operands, which only pays when each
    // packed value is used many times: thin products (decoding one token
    // at a time is a matrix-vector product) go to the `gemm` crate.
    if m >= 16 && n >= 16 && k >= 16 && super::cpu::avx512() {
        let a = Mat { ptr: lhs, rs: lhs_s.1, cs: lhs_s.0 };
        let b = Mat { ptr: rhs, rs: rhs_s.1, cs: rhs_s.0 };
        let c = MatMut(dst, dst_s.1, dst_s.0);
        return avx512::gemm(m, n, k, c, acc, a, b, super::cpu::bf16_products(), threads);
    }
    portable(m, n, k, dst, dst_s, acc, lhs, lhs_s, rhs, rhs_s, threads)
}

/// [`sgemm`] on all of rayon's threads.
///
/// # Safety
/// As for [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_s: (isize, isize),
    acc: bool,
    lhs: *const f32,
    lhs_s: (isize, isize),
    rhs: *const f32,
    rhs_s: (isize, isize),
) {
    sgemm(m, n, k, dst, dst_s, acc, lhs, lhs_s, rhs, rhs_s, rayon::current_num_threads())
}

/// A right-hand side packed once for many products with different left-hand
/// sides: a recurrence multiplies by the same weights at every step, and
/// packing them each time would cost as much as the product itself.
pub struct PackedRhs<'a> {
    k: usize,
    n: usize,
    /// The packed KC × NC blocks in the kernel's order, when the AVX-512
    /// path takes products of this shape.
    blocks: Option<Vec<Vec<f32>>>,
    /// The matrix itself (products too small for packing read it directly),
    /// borrowed for as long as the packed value lives.
    rhs: &'a [f32],
    rhs_s: (isize, isize),
}

impl<'a> PackedRhs<'a> {
    /// Packs `rhs` (k×n, strides as in [`sgemm`], both non-negative) for
    /// products with `m` rows of left-hand side; when they are too small to
    /// use packed panels (m, n or k below 16, or no AVX-512) nothing is
    /// packed. Panics if the strides reach past `rhs` (a bug in the caller).
    pub fn new(m: usize, k: usize, n: usize, rhs: &'a [f32], rhs_s: (isize, isize)) -> Self {
        let last = |count: usize, stride: isize| count.saturating_sub(1) as isize * stride;
        let reach = last(n, rhs_s.0) + last(k, rhs_s.1);
        assert!(
            rhs_s.0 >= 0 && rhs_s.1 >= 0 && (k * n == 0 || (reach as usize) < rhs.len()),
            "PackedRhs: strides reach past the matrix"
        );
        #[allow(unused_mut)]
        let mut blocks = None;
        #[cfg(target_arch = "x86_64")]
        if m >= 16 && n >= 16 && k >= 16 && super::cpu::avx512() {
            // SAFETY: every element the strides reach lies inside `rhs` (checked above).
            blocks = Some(unsafe { avx512::pack_all(k, n, Mat { ptr: rhs.as_ptr(), rs: rhs_s.1, cs: rhs_s.0 }) });
        }
        Self { k, n, blocks, rhs, rhs_s }
    }
}

/// [`sgemm`] with a packed right-hand side, on `threads` threads (1: on
/// this one, no task at all): `dst (m×n) (+)= lhs (m×k) · rhs`. The result
/// is bit-identical to [`sgemm`]'s in f32 (packed products stay f32 under
/// `--precision bf16`). Any `m` takes the packed path when the matrix was
/// packed, so that a product split into blocks of rows computes every
/// element as the whole product does, bit for bit.
///
/// # Safety
/// As for [`sgemm`] (the packed matrix is borrowed, so it is still valid).
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_packed(
    m: usize,
    dst: *mut f32,
    dst_s: (isize, isize),
    acc: bool,
    lhs: *const f32,
    lhs_s: (isize, isize),
    rhs: &PackedRhs,
    threads: usize,
) {
    let (n, k) = (rhs.n, rhs.k);
    if m == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(blocks) = &rhs.blocks {
        let a = Mat { ptr: lhs, rs: lhs_s.1, cs: lhs_s.0 };
        let b = Mat { ptr: rhs.rhs.as_ptr(), rs: rhs.rhs_s.1, cs: rhs.rhs_s.0 };
        let c = MatMut(dst, dst_s.1, dst_s.0);
        return avx512::gemm_with(m, n, k, c, acc, a, b, Some(blocks), false, threads);
    }
    sgemm(m, n, k, dst, dst_s, acc, lhs, lhs_s, rhs.rhs.as_ptr(), rhs.rhs_s, threads)
}

/// The same product with the `gemm` crate (CPUs without AVX-512F).
#[allow(clippy::too_many_arguments)]
unsafe fn portable(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_s: (isize, isize),
    acc: bool,
    lhs: *const f32,
    lhs_s: (isize, isize),
    rhs: *const f32,
    rhs_s: (isize, isize),
    threads: usize,
) {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let alpha = if acc { 1.0 } else { 0.0 };
    gemm::gemm(
        m, n, k, dst, dst_s.0, dst_s.1, acc, lhs, lhs_s.0, lhs_s.1, rhs, rhs_s.0, rhs_s.1, alpha, 1.0, false, false,
        false, par,
    )
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// Packs B[pc.., jc..] (kc × nc) into NR-wide panels: panel p holds, for
    /// each kk, the NR values B[pc+kk, jc+p·NR ..], zero-padded.
    unsafe fn pack_b(b: Mat, pc: usize, jc: usize, kc: usize, nc: usize, out: &mut [f32]) {
        for (p, panel) in out.chunks_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
            let j0 = jc + p * NR;
            let w = NR.min(jc + nc - j0);
            if b.rs == 1 && b.cs != 1 {
                // B stored by columns (a transposed (out, in) weight): walk each
                // column down k, which reads memory in order; across the
                // columns first would touch a new cache line for every value.
                for j in 0..NR {
                    if j < w {
                        let src = b.ptr.offset(pc as isize + (j0 + j) as isize * b.cs);
                        for kk in 0..kc {
                            panel[kk * NR + j] = *src.add(kk);
                        }
                    } else {
                        for kk in 0..kc {
                            panel[kk * NR + j] = 0.0;
                        }
                    }
                }
                continue;
            }
            for kk in 0..kc {
                let row = &mut panel[kk * NR..(kk + 1) * NR];
                let src = b.ptr.offset((pc + kk) as isize * b.rs + j0 as isize * b.cs);
                if b.cs == 1 && w == NR {
                    std::ptr::copy_nonoverlapping(src, row.as_mut_ptr(), NR);
                } else {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if j < w { *src.offset(j as isize * b.cs) } else { 0.0 };
                    }
                }
            }
        }
    }

    /// Packs A[ic.., pc..] (mc × kc) into MR-tall panels: panel p holds, for
    /// each kk, the MR values A[ic+p·MR .., pc+kk], zero-padded.
    unsafe fn pack_a(a: Mat, ic: usize, pc: usize, mc: usize, kc: usize, out: &mut [f32]) {
        for (p, panel) in out.chunks_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
            let i0 = ic + p * MR;
            let h = MR.min(ic + mc - i0);
            if a.rs == 1 && h == MR {
                // A stored by columns (a transposed gradient, as in dW = gᵀx): the
                // panel's MR values at each kk lie side by side, one copy each.
                for kk in 0..kc {
                    let src = a.ptr.offset(i0 as isize + (pc + kk) as isize * a.cs);
                    std::ptr::copy_nonoverlapping(src, panel.as_mut_ptr().add(kk * MR), MR);
                }
                continue;
            }
            for i in 0..MR {
                if i < h {
                    let src = a.ptr.offset((i0 + i) as isize * a.rs + pc as isize * a.cs);
                    for kk in 0..kc {
                        panel[kk * MR + i] = *src.offset(kk as isize * a.cs);
                    }
                } else {
                    for kk in 0..kc {
                        panel[kk * MR + i] = 0.0;
                    }
                }
            }
        }
    }

    /// Writes (or adds, with `acc`) the tile's h × w corner into C. A macro,
    /// not a function: the tile's registers must not go through memory.
    macro_rules! store_tile {
        ($r:expr, $c:expr, $h:expr, $w:expr, $acc:expr) => {{
            let (r, c, h, w, acc): (&[[__m512; 2]; MR], MatMut, usize, usize, bool) = (&$r, $c, $h, $w, $acc);
            let MatMut(cp, rs, cs) = c;
            if cs == 1 {
                let m0: __mmask16 = if w >= 16 { 0xffff } else { ((1u32 << w) - 1) as u16 };
                let m1: __mmask16 = if w >= 32 {
                    0xffff
                } else if w > 16 {
                    ((1u32 << (w - 16)) - 1) as u16
                } else {
                    0
                };
                for (i, ri) in r.iter().enumerate().take(h) {
                    let row = cp.offset(i as isize * rs);
                    let (mut v0, mut v1) = (ri[0], ri[1]);
                    if acc {
                        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.add(16)));
                    }
                    _mm512_mask_storeu_ps(row, m0, v0);
                    _mm512_mask_storeu_ps(row.add(16), m1, v1);
                }
            } else {
                let mut tile = [0f32; MR * NR];
                for (i, ri) in r.iter().enumerate() {
                    _mm512_storeu_ps(tile.as_mut_ptr().add(i * NR), ri[0]);
                    _mm512_storeu_ps(tile.as_mut_ptr().add(i * NR + 16), ri[1]);
                }
                for i in 0..h {
                    for j in 0..w {
                        let p = cp.offset(i as isize * rs + j as isize * cs);
                        *p = if acc { *p + tile[i * NR + j] } else { tile[i * NR + j] };
                    }
                }
            }
        }};
    }

    /// The 12 × 32 tile: C[0..h, 0..w] (+)= Apanel · Bpanel over kc.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel(kc: usize, ap: *const f32, bp: *const f32, c: MatMut, h: usize, w: usize, acc: bool) {
        let mut r = [[_mm512_setzero_ps(); 2]; MR];
        if w <= 16 {
            // A panel at most 16 wide (the last of an odd width, or a product
            // 16 wide: attention's P·V with heads of 16): the right half of
            // the tile would only multiply zeros.
            for kk in 0..kc {
                let b0 = _mm512_loadu_ps(bp.add(kk * NR));
                let a = ap.add(kk * MR);
                for (i, ri) in r.iter_mut().enumerate() {
                    ri[0] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i)), b0, ri[0]);
                }
            }
            store_tile!(r, c, h, w, acc);
            return;
        }
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(bp.add(kk * NR));
            let b1 = _mm512_loadu_ps(bp.add(kk * NR + 16));
            let a = ap.add(kk * MR);
            for (i, ri) in r.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                ri[0] = _mm512_fmadd_ps(ai, b0, ri[0]);
                ri[1] = _mm512_fmadd_ps(ai, b1, ri[1]);
            }
        }
        store_tile!(r, c, h, w, acc);
    }

    /// f32 → bf16, rounded to nearest even (NaN stays a NaN): the tests' reference
    /// for `vcvtneps2bf16`.
    #[cfg(test)]
    #[inline(always)]
    pub(super) fn bf16_bits(x: f32) -> u16 {
        let u = x.to_bits();
        let rounded = (u + 0x7fff + ((u >> 16) & 1)) >> 16;
        (if x.is_nan() { (u >> 16) | 0x40 } else { rounded }) as u16
    }

    /// Re-lays an f32 panel `src` (kc × width, k-major) as bf16 pairs, one
    /// u32 per pair: `out[q·width + j] = bf16(src[2q][j]) | bf16(src[2q + 1][j]) << 16`
    /// (zero past kc), rounded to nearest even by `vcvtneps2bf16`, 16 lanes
    /// at a time.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn pairs(src: &[f32], kc: usize, width: usize, out: &mut [u32]) {
        debug_assert!(src.len() >= kc * width && out.len() >= kc.div_ceil(2) * width);
        let to_u32 = |v: __m512| _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v)));
        for q in 0..kc.div_ceil(2) {
            let (lo, hi) = (src.as_ptr().add(2 * q * width), src.as_ptr().add((2 * q + 1) * width));
            let o = out.as_mut_ptr().add(q * width);
            for j in (0..width).step_by(16) {
                let m: __mmask16 = if width - j >= 16 { 0xffff } else { (1u16 << (width - j)) - 1 };
                let mut v = to_u32(_mm512_maskz_loadu_ps(m, lo.add(j)));
                if 2 * q + 1 < kc {
                    v = _mm512_or_si512(v, _mm512_slli_epi32::<16>(to_u32(_mm512_maskz_loadu_ps(m, hi.add(j)))));
                }
                _mm512_mask_storeu_epi32(o.add(j).cast::<i32>(), m, v);
            }
        }
    }

    /// Each kc-tall panel of `panels` (packed by [`pack_a`] or [`pack_b`],
    /// `width` wide) re-laid as bf16 pairs into `out`.
    unsafe fn to_pairs(panels: &[f32], kc: usize, width: usize, out: &mut [u32]) {
        let kc2 = kc.div_ceil(2);
        for (src, dst) in panels.chunks_exact(kc * width).zip(out.chunks_exact_mut(kc2 * width)) {
            pairs(src, kc, width, dst);
        }
    }

    /// The 12 × 32 tile from bf16 panels of `kc2` pairs of k: each
    /// `vdpbf16ps` adds a0·b0 + a1·b1 into every f32 lane.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel_bf16(kc2: usize, ap: *const u32, bp: *const u32, c: MatMut, h: usize, w: usize, acc: bool) {
        let mut r = [[_mm512_setzero_ps(); 2]; MR];
        if w <= 16 {
            // As in `kernel`: the right half would only multiply zeros.
            for q in 0..kc2 {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(q * NR).cast::<f32>()));
                let a = ap.add(q * MR);
                for (i, ri) in r.iter_mut().enumerate() {
                    let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
                    ri[0] = _mm512_dpbf16_ps(ri[0], ai, b0);
                }
            }
            store_tile!(r, c, h, w, acc);
            return;
        }
        for q in 0..kc2 {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(q * NR).cast::<f32>()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(q * NR + 16).cast::<f32>()));
            let a = ap.add(q * MR);
            for (i, ri) in r.iter_mut().enumerate() {
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
                ri[0] = _mm512_dpbf16_ps(ri[0], ai, b0);
                ri[1] = _mm512_dpbf16_ps(ri[1], ai, b1);
            }
        }
        store_tile!(r, c, h, w, acc);
    }

    /// Every KC × NC block of B, packed, in the order [`rows`] visits them.
    pub(super) unsafe fn pack_all(k: usize, n: usize, b: Mat) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let mut block = vec![0f32; kc * nc.div_ceil(NR) * NR];
                pack_b(b, pc, jc, kc, nc, &mut block);
                out.push(block);
            }
        }
        out
    }

    /// Rows `i0..i1` of C; B's blocks are packed here unless `packed` holds
    /// them; with `bf16`, both operands are packed as bf16 pairs (never with
    /// `packed`, which is f32).
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows(
        i0: usize,
        i1: usize,
        n: usize,
        k: usize,
        c: MatMut,
        acc: bool,
        a: Mat,
        b: Mat,
        packed: Option<&[Vec<f32>]>,
        bf16: bool,
        apack: &mut Vec<f32>,
    ) {
        let mut own = Vec::new();
        let (mut own16, mut apack16) = (Vec::<u32>::new(), Vec::<u32>::new());
        let mut block_index = 0;
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let first = pc == 0;
                if bf16 && packed.is_none() {
                    let kc2 = kc.div_ceil(2);
                    own16.resize(kc2 * nc.div_ceil(NR) * NR, 0);
                    own.resize(kc * nc.div_ceil(NR) * NR, 0.0);
                    pack_b(b, pc, jc, kc, nc, &mut own);
                    to_pairs(&own, kc, NR, &mut own16);
                    for ic in (i0..i1).step_by(MC) {
                        let mc = MC.min(i1 - ic);
                        apack16.resize(kc2 * mc.div_ceil(MR) * MR, 0);
                        apack.resize(kc * mc.div_ceil(MR) * MR, 0.0);
                        pack_a(a, ic, pc, mc, kc, apack);
                        to_pairs(apack, kc, MR, &mut apack16);
                        for jr in (0..nc).step_by(NR) {
                            let bp = own16.as_ptr().add((jr / NR) * kc2 * NR);
                            for ir in (0..mc).step_by(MR) {
                                let ap = apack16.as_ptr().add((ir / MR) * kc2 * MR);
                                let (ci, cj) = (ic + ir, jc + jr);
                                let tile = MatMut(c.0.offset(ci as isize * c.1 + cj as isize * c.2), c.1, c.2);
                                kernel_bf16(kc2, ap, bp, tile, MR.min(mc - ir), NR.min(nc - jr), acc || !first);
                            }
                        }
                    }
                    continue;
                }
                let bpack: &[f32] = match packed {
                    Some(blocks) => &blocks[block_index],
                    None => {
                        own.resize(kc * nc.div_ceil(NR) * NR, 0.0);
                        pack_b(b, pc, jc, kc, nc, &mut own);
                        &own
                    }
                };
                block_index += 1;
                for ic in (i0..i1).step_by(MC) {
                    let mc = MC.min(i1 - ic);
                    apack.resize(kc * mc.div_ceil(MR) * MR, 0.0);
                    pack_a(a, ic, pc, mc, kc, apack);
                    for jr in (0..nc).step_by(NR) {
                        let bp = bpack.as_ptr().add((jr / NR) * kc * NR);
                        for ir in (0..mc).step_by(MR) {
                            let ap = apack.as_ptr().add((ir / MR) * kc * MR);
                            let (ci, cj) = (ic + ir, jc + jr);
                            let tile = MatMut(c.0.offset(ci as isize * c.1 + cj as isize * c.2), c.1, c.2);
                            kernel(kc, ap, bp, tile, MR.min(mc - ir), NR.min(nc - jr), acc || !first);
                        }
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm(m: usize, n: usize, k: usize, c: MatMut, acc: bool, a: Mat, b: Mat, bf16: bool, threads: usize) {
        gemm_with(m, n, k, c, acc, a, b, None, bf16, threads)
    }

    /// [`gemm`] with B's blocks already packed (or packed here when `None`);
    /// `bf16` products as in [`rows`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_with(
        m: usize,
        n: usize,
        k: usize,
        c: MatMut,
        acc: bool,
        a: Mat,
        b: Mat,
        packed: Option<&[Vec<f32>]>,
        bf16: bool,
        threads: usize,
    ) {
        // Enough rows per task to amortise packing B; tasks split rows only.
        let tasks = if threads > 1 && m * n * k >= 1 << 18 { threads.min(m.div_ceil(MR)) } else { 1 };
        if tasks <= 1 {
            rows(0, m, n, k, c, acc, a, b, packed, bf16, &mut Vec::new());
            return;
        }
        let per = m.div_ceil(tasks).div_ceil(MR) * MR;
        let caller = rayon::current_thread_index();
        (0..tasks).into_par_iter().for_each(|t| {
            let (i0, i1) = (t * per, ((t + 1) * per).min(m));
            if i0 < i1 {
                // The profiler gives each other worker a track with its share.
                let _share = crate::profile::worker("matmul.worker", caller, || {
                    (format!("[{}, {k}]·[{k}, {n}]", i1 - i0), Some(crate::profile::matmul_flops(i1 - i0, n, k)))
                });
                rows(i0, i1, n, k, c, acc, a, b, packed, bf16, &mut Vec::new());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed matrix borrows its data, and strides that reach past it are refused.
    #[test]
    fn packing_takes_strides_that_fit() {
        let b = vec![0f32; 4 * 3];
        let _ = PackedRhs::new(1, 4, 3, &b, (1, 3)); // exactly fits
    }

    #[test]
    #[should_panic(expected = "strides reach past the matrix")]
    fn packing_refuses_strides_that_reach_past_the_matrix() {
        let b = vec![0f32; 4 * 3];
        let _ = PackedRhs::new(1, 4, 3, &b, (1, 4)); // one row too far
    }

    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        a_s: (isize, isize),
        b: &[f32],
        b_s: (isize, isize),
    ) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for kk in 0..k {
                    s += a[(i as isize * a_s.1 + kk as isize * a_s.0) as usize] as f64
                        * b[(kk as isize * b_s.1 + j as isize * b_s.0) as usize] as f64;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    type Kernel = unsafe fn(
        usize,
        usize,
        usize,
        *mut f32,
        (isize, isize),
        bool,
        *const f32,
        (isize, isize),
        *const f32,
        (isize, isize),
        usize,
    );

    /// Both the AVX-512 kernel (where the CPU has it) and the portable one.
    #[test]
    fn matches_a_reference_on_odd_shapes_strides_and_threads() {
        let mut rng = crate::rng::Rng::new(5);
        for &(m, n, k) in &[(1, 1, 1), (13, 33, 7), (100, 70, 300), (37, 130, 257), (200, 40, 64)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            for (a_s, b_s) in [((1, k as isize), (1, n as isize)), ((m as isize, 1), (k as isize, 1))] {
                let want = reference(m, n, k, &a, a_s, &b, b_s);
                for (threads, kernel) in [(1, sgemm as Kernel), (3, sgemm), (2, portable)] {
                    for (dst_s, acc) in [((1isize, n as isize), false), ((m as isize, 1isize), true)] {
                        let mut c = vec![1f32; m * n];
                        unsafe {
                            kernel(m, n, k, c.as_mut_ptr(), dst_s, acc, a.as_ptr(), a_s, b.as_ptr(), b_s, threads)
                        };
                        for i in 0..m {
                            for j in 0..n {
                                let got = c[(i as isize * dst_s.1 + j as isize * dst_s.0) as usize] as f64;
                                let w = want[i * n + j] + if acc { 1.0 } else { 0.0 };
                                assert!(
                                    (got - w).abs() < 1e-4 * (k as f64).sqrt().max(1.0),
                                    "({m},{n},{k}) [{i},{j}]: {got} vs {w}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// bf16 products equal the exact product of the bf16-rounded operands
    /// (up to f32 accumulation), on odd shapes, strides and k (a last pair
    /// half zero), and blocks of k past KC; where the CPU has AVX512_BF16.
    #[test]
    fn bf16_products_match_the_rounded_operands() {
        if !crate::ops::cpu::bf16_supported() {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        }
        let round = |x: f32| f32::from_bits((avx512::bf16_bits(x) as u32) << 16);
        assert_eq!(round(1.0 + 1.0 / 256.0), 1.0, "ties round to even");
        assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        assert!(round(f32::NAN).is_nan() && round(f32::INFINITY) == f32::INFINITY);
        let mut rng = crate::rng::Rng::new(11);
        for &(m, n, k) in &[(16, 16, 16), (37, 130, 257), (100, 70, 301), (200, 40, 64)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            let (ar, br): (Vec<f32>, Vec<f32>) =
                (a.iter().map(|&x| round(x)).collect(), b.iter().map(|&x| round(x)).collect());
            for (a_s, b_s) in [((1, k as isize), (1, n as isize)), ((m as isize, 1), (k as isize, 1))] {
                let want = reference(m, n, k, &ar, a_s, &br, b_s);
                let full = reference(m, n, k, &a, a_s, &b, b_s);
                for threads in [1, 2] {
                    let mut c = vec![1f32; m * n];
                    unsafe {
                        avx512::gemm(
                            m,
                            n,
                            k,
                            MatMut(c.as_mut_ptr(), n as isize, 1),
                            true,
                            Mat { ptr: a.as_ptr(), rs: a_s.1, cs: a_s.0 },
                            Mat { ptr: b.as_ptr(), rs: b_s.1, cs: b_s.0 },
                            true,
                            threads,
                        )
                    };
                    let mut worst = 0f64;
                    for i in 0..m * n {
                        let got = c[i] as f64 - 1.0;
                        assert!(
                            (got - want[i]).abs() < 1e-4 * (k as f64).sqrt(),
                            "({m},{n},{k}) [{i}]: {got} vs {}",
                            want[i]
                        );
                        worst = worst.max((got - full[i]).abs() / (k as f64).sqrt());
                    }
                    // And it is a bf16 product, not an f32 one: off the f32 result by about 2⁻⁹.
                    assert!(worst > 1e-4 && worst < 2e-2, "({m},{n},{k}): {worst}");
                }
            }
        }
    }

    /// A packed right-hand side gives exactly the unpacked product, on the
    /// AVX-512 path (large blocks, both strides) and on the fallback (m < 16).
    #[test]
    fn packed_rhs_is_bit_identical() {
        let mut rng = crate::rng::Rng::new(9);
        for &(m, n, k) in &[(32, 256, 64), (32, 64, 256), (40, 2100, 300), (8, 64, 32)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            for b_s in [(1, n as isize), (k as isize, 1)] {
                let packed = PackedRhs::new(m, k, n, &b, b_s);
                let (mut want, mut got) = (vec![0.5f32; m * n], vec![0.5f32; m * n]);
                unsafe {
                    matmul(
                        m,
                        n,
                        k,
                        want.as_mut_ptr(),
                        (1, n as isize),
                        true,
                        a.as_ptr(),
                        (1, k as isize),
                        b.as_ptr(),
                        b_s,
                    );
                    matmul_packed(m, got.as_mut_ptr(), (1, n as isize), true, a.as_ptr(), (1, k as isize), &packed, 2);
                }
                assert_eq!(want, got, "({m},{n},{k}) strides {b_s:?}");
            }
        }
    }

    #[test]
    #[ignore]
    fn speed() {
        let n = 1024;
        let a = vec![1.0f32; n * n];
        let b = vec![0.5f32; n * n];
        let mut c = vec![0f32; n * n];
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                for (label, ours) in [("ours", true), ("gemm crate", false)] {
                    let mut best = f64::INFINITY;
                    for _ in 0..5 {
                        let t0 = std::time::Instant::now();
                        unsafe {
                            if ours {
                                sgemm(
                                    n,
                                    n,
                                    n,
                                    c.as_mut_ptr(),
                                    (1, n as isize),
                                    false,
                                    a.as_ptr(),
                                    (1, n as isize),
                                    b.as_ptr(),
                                    (1, n as isize),
                                    threads,
                                );
                            } else {
                                let par = if threads > 1 {
                                    gemm::Parallelism::Rayon(threads)
                                } else {
                                    gemm::Parallelism::None
                                };
                                gemm::gemm(
                                    n,
                                    n,
                                    n,
                                    c.as_mut_ptr(),
                                    1,
                                    n as isize,
                                    false,
                                    a.as_ptr(),
                                    1,
                                    n as isize,
                                    b.as_ptr(),
                                    1,
                                    n as isize,
                                    0.0,
                                    1.0,
                                    false,
                                    false,
                                    false,
                                    par,
                                );
                            }
                        }
                        best = best.min(t0.elapsed().as_secs_f64());
                    }
                    eprintln!("{label} {threads} thread(s): {:.1} GFLOP/s", 2.0 * (n as f64).powi(3) / best / 1e9);
                }
            });
        }
    }
}

#[cfg(test)]
mod shape_speed {
    use super::*;

    /// One product: (label, m, n, k, dst, dst strides, lhs, lhs strides, rhs, rhs strides).
    type Case = (
        &'static str,
        usize,
        usize,
        usize,
        *mut f32,
        (isize, isize),
        *const f32,
        (isize, isize),
        *const f32,
        (isize, isize),
    );

    /// The three products of a linear layer at a Transformer's shapes (1536
    /// rows), with the strides the linear op gives them: `cargo test --release
    /// --lib linear_shapes -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn linear_shapes() {
        let rows = 1536;
        for (ni, no) in [(256usize, 256usize), (256, 1024), (1024, 256)] {
            let x = vec![0.5f32; rows * ni];
            let w = vec![0.25f32; ni * no];
            let g = vec![0.5f32; rows * no];
            let mut y = vec![0f32; rows * no.max(ni)];
            let mut dw = vec![0f32; ni * no];
            let (nis, nos) = (ni as isize, no as isize);
            let cases: [Case; 3] = [
                ("fwd y=xWt", rows, no, ni, y.as_mut_ptr(), (1, nos), x.as_ptr(), (1, nis), w.as_ptr(), (nis, 1)),
                ("bwd dx=gW", rows, ni, no, y.as_mut_ptr(), (1, nis), g.as_ptr(), (1, nos), w.as_ptr(), (1, nis)),
                ("bwd dW=gTx", no, ni, rows, dw.as_mut_ptr(), (1, nis), g.as_ptr(), (nos, 1), x.as_ptr(), (1, nis)),
            ];
            for (label, m, n, k, d, ds, a, a_s, b, bs) in cases {
                let mut best = f64::INFINITY;
                for _ in 0..20 {
                    let t0 = std::time::Instant::now();
                    // SAFETY: every buffer is sized for its product above.
                    unsafe { sgemm(m, n, k, d, ds, false, a, a_s, b, bs, 1) };
                    best = best.min(t0.elapsed().as_secs_f64());
                }
                let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
                eprintln!("{ni}->{no} {label}: {:.3} ms {gflops:.1} GFLOP/s", best * 1e3);
            }
        }
    }
}
