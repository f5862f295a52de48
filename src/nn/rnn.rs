//! LSTM and GRU layers with PyTorch's parameter names and equations
//! (`weight_ih_l{k}` (G·H, in), `weight_hh_l{k}` (G·H, H), `bias_ih_l{k}`,
//! `bias_hh_l{k}`; gate order i,f,g,o for LSTM and r,z,n for GRU).
//!
//! For speed, the input projection of every time step is one matrix product
//! before the recurrence; only `h Wₕₕᵀ` remains inside the loop.

use crate::rng::Rng;
use candle_core::{Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use super::dropout::dropout;

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// Long short-term memory: four gates (i, f, g, o) and a cell state `c`.
    Lstm,
    /// Gated recurrent unit: three gates (r, z, n), no cell state.
    Gru,
}

impl CellKind {
    fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
}

/// The state a layer carries between steps: `h` (B, H) and, for LSTM, `c`.
#[derive(Debug, Clone)]
pub struct RnnState {
    /// Hidden state, (B, H).
    pub h: Tensor,
    /// Cell state (B, H) for LSTM; `None` for GRU.
    pub c: Option<Tensor>,
}

impl RnnState {
    /// Rows `idx` of the state (beam search reorders hypotheses with it).
    pub fn select(&self, idx: &Tensor) -> Result<Self> {
        Ok(Self { h: self.h.index_select(idx, 0)?, c: self.c.as_ref().map(|c| c.index_select(idx, 0)).transpose()? })
    }
}

/// One recurrent layer.
#[derive(Debug, Clone)]
pub struct RnnLayer {
    kind: CellKind,
    hidden: usize,
    w_ih: Tensor, // (G*H, in)
    w_hh: Tensor, // (G*H, H)
    b_ih: Tensor, // (G*H)
    b_hh: Tensor, // (G*H)
}

impl RnnLayer {
    /// Layer `layer` of a stack; `vb` is the stack's prefix (e.g. `encoder.rnn`).
    /// Weights start uniform in ±1/√H as in PyTorch; an LSTM's forget-gate
    /// bias starts at `forget_bias` (1.0 per Jozefowicz et al. 2015, as
    /// Keras' `unit_forget_bias`), so early gradients flow through time.
    pub fn new(
        kind: CellKind,
        in_dim: usize,
        hidden: usize,
        layer: usize,
        forget_bias: f32,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let g = kind.gates() * hidden;
        let k = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform { lo: -k, up: k };
        let w_ih = vb.get_with_hints((g, in_dim), &format!("weight_ih_l{layer}"), init)?;
        let w_hh = vb.get_with_hints((g, hidden), &format!("weight_hh_l{layer}"), init)?;
        let b_ih = vb.get_with_hints(g, &format!("bias_ih_l{layer}"), init)?;
        let b_hh = vb.get_with_hints(g, &format!("bias_hh_l{layer}"), init)?;
        if kind == CellKind::Lstm && forget_bias != 0.0 && b_ih.is_variable() {
            let mut v = b_ih.to_vec1::<f32>()?;
            v[hidden..2 * hidden].iter_mut().for_each(|x| *x += forget_bias);
            Var::from_tensor(&b_ih)?.set(&Tensor::from_vec(v, g, b_ih.device())?)?;
        }
        Ok(Self { kind, hidden, w_ih, w_hh, b_ih, b_hh })
    }

    /// A zero state for a batch of `b`.
    pub fn zero_state(&self, b: usize, x: &Tensor) -> Result<RnnState> {
        let h = Tensor::zeros((b, self.hidden), x.dtype(), x.device())?;
        let c = (self.kind == CellKind::Lstm).then(|| h.clone());
        Ok(RnnState { h, c })
    }

    /// Runs the layer over `x` (B, T, in) from `init` (zeros if `None`).
    /// Where `mask` (B, T) is 0 the state is carried unchanged, so the final
    /// state of a right-padded sequence is the one at its last real token.
    /// Returns the outputs (B, T, H) and the final state.
    pub fn forward(&self, x: &Tensor, init: Option<&RnnState>, mask: Option<&Tensor>) -> Result<(Tensor, RnnState)> {
        self.forward_masked(x, init, mask, None)
    }

    /// [`RnnLayer::forward`] with variational dropout on the recurrent state:
    /// `hmask` (B·H values) multiplies the h that Wₕₕ reads at every step.
    pub fn forward_masked(
        &self,
        x: &Tensor,
        init: Option<&RnnState>,
        mask: Option<&Tensor>,
        hmask: Option<Vec<f32>>,
    ) -> Result<(Tensor, RnnState)> {
        let (b, t, _) = x.dims3()?;
        let hd = self.hidden;
        // Biases that sit outside the reset gate fold into the projection.
        let bias = match self.kind {
            CellKind::Lstm => (&self.b_ih + &self.b_hh)?,
            CellKind::Gru => Tensor::cat(
                &[
                    (self.b_ih.narrow(0, 0, 2 * hd)? + self.b_hh.narrow(0, 0, 2 * hd)?)?,
                    self.b_ih.narrow(0, 2 * hd, hd)?,
                ],
                0,
            )?,
        };
        use crate::ops::linear::{linear, WeightLayout};
        let xproj = linear(x, &self.w_ih, Some(&bias), WeightLayout::OutIn)?; // (B, T, G*H)
        if self.kind == CellKind::Lstm {
            let state = match init {
                Some(s) => s.clone(),
                None => self.zero_state(b, x)?,
            };
            return self.forward_lstm(&xproj, &self.w_hh.t()?, state, mask, hmask);
        }
        // GRU: one fused op over the whole sequence (crate::ops::gru); b_hn
        // rides in the augmented weight's last column.
        let init = match init {
            Some(s) => s.h.clone(),
            None => self.zero_state(b, x)?.h,
        };
        let w_aug = crate::ops::gru::augment(&self.w_hh, &self.b_hh.narrow(0, 2 * hd, hd)?)?;
        let mask = mask.map(|m| m.flatten_all()?.to_vec1::<f32>()).transpose()?;
        let outputs = crate::ops::gru::gru_masked(&xproj, &w_aug, &init, mask, hmask)?; // (B, T, H)
        let last = outputs.narrow(1, t - 1, 1)?.squeeze(1)?.contiguous()?;
        Ok((outputs, RnnState { h: last, c: None }))
    }

    /// The LSTM recurrence: one fused op over the whole sequence
    /// ([`crate::ops::lstm`]).
    fn forward_lstm(
        &self,
        xproj: &Tensor, // (B, T, 4H)
        w_hh_t: &Tensor,
        init: RnnState,
        mask: Option<&Tensor>, // (B, T)
        hmask: Option<Vec<f32>>,
    ) -> Result<(Tensor, RnnState)> {
        let t = xproj.dim(1)?;
        let hd = self.hidden;
        let c0 = init.c.as_ref().expect("LSTM state has c");
        let packed = Tensor::cat(&[&init.h, c0], 1)?; // (B, 2H) = [h | c]
        let mask = mask.map(|m| m.flatten_all()?.to_vec1::<f32>()).transpose()?;
        let states = crate::ops::lstm::lstm_masked(xproj, &w_hh_t.t()?, &packed, mask, hmask)?; // (B, T, 2H)
        let last = states.narrow(1, t - 1, 1)?.squeeze(1)?; // (B, 2H)
        let state =
            RnnState { h: last.narrow(1, 0, hd)?.contiguous()?, c: Some(last.narrow(1, hd, hd)?.contiguous()?) };
        let outputs = states.narrow(2, 0, hd)?.contiguous()?;
        Ok((outputs, state)) // (B, T, H)
    }
}

/// A stack of layers with dropout between them (not after the last, as in
/// PyTorch's `nn.LSTM`).
#[derive(Debug, Clone)]
pub struct Rnn {
    layers: Vec<RnnLayer>,
    dropout: f32,
    /// Variational dropout: per-sequence masks on inputs, states and output.
    variational: f32,
}

impl Rnn {
    /// `n_layer` layers of `kind` and width `hidden` (the first reads `in_dim`), `dropout` between layers;
    /// `forget_bias` as in [`RnnLayer::new`], `vb` the stack's prefix (e.g. `encoder.rnn`).
    pub fn new(
        kind: CellKind,
        in_dim: usize,
        hidden: usize,
        n_layer: usize,
        dropout: f32,
        forget_bias: f32,
        vb: VarBuilder,
    ) -> Result<Self> {
        let layers = (0..n_layer)
            .map(|l| RnnLayer::new(kind, if l == 0 { in_dim } else { hidden }, hidden, l, forget_bias, &vb))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, dropout, variational: 0.0 })
    }

    /// Variational dropout with probability `p` (Gal & Ghahramani 2016): in
    /// training, each layer's input and recurrent state, and the stack's
    /// output, are multiplied by a mask drawn once per sequence and kept at
    /// every step (scaled by 1/(1 − p)), rather than a fresh mask per step.
    pub fn with_variational(mut self, p: f32) -> Self {
        self.variational = p;
        self
    }

    /// (B, T, in) → outputs of the last layer (B, T, H) and the final state
    /// of every layer.
    pub fn forward(
        &self,
        x: &Tensor,
        init: Option<&[RnnState]>,
        mask: Option<&Tensor>,
        mut rng: Option<&mut Rng>,
    ) -> Result<(Tensor, Vec<RnnState>)> {
        let mut h = x.clone();
        let mut states = Vec::with_capacity(self.layers.len());
        let p = self.variational;
        for (l, layer) in self.layers.iter().enumerate() {
            if l > 0 {
                h = dropout(&h, self.dropout, rng.as_deref_mut())?;
            }
            let hmask = match rng.as_deref_mut() {
                Some(r) if p > 0.0 => {
                    let (b, _, d) = h.dims3()?;
                    h = h.broadcast_mul(&Tensor::from_vec(sequence_mask(r, b * d, p), (b, 1, d), h.device())?)?;
                    Some(sequence_mask(r, b * layer.hidden, p))
                }
                _ => None,
            };
            let (out, st) = layer.forward_masked(&h, init.map(|s| &s[l]), mask, hmask)?;
            h = out;
            states.push(st);
        }
        if let Some(r) = rng.filter(|_| p > 0.0) {
            let (b, _, d) = h.dims3()?;
            h = h.broadcast_mul(&Tensor::from_vec(sequence_mask(r, b * d, p), (b, 1, d), h.device())?)?;
        }
        Ok((h, states))
    }
}

/// `n` dropout multipliers: 0 with probability `p`, else 1/(1 − p).
fn sequence_mask(rng: &mut Rng, n: usize, p: f32) -> Vec<f32> {
    let keep = 1.0 / (1.0 - p);
    (0..n).map(|_| if rng.next_f32() < p { 0.0 } else { keep }).collect()
}

/// Concatenates along the last dimension (a tiny helper for readability).
pub fn cat_last(xs: &[&Tensor]) -> Result<Tensor> {
    Tensor::cat(xs, D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamStore;
    use candle_core::Device;

    /// Variational dropout keeps one mask per sequence: an output unit that
    /// is dropped is dropped at every step; without training nothing is.
    #[test]
    fn variational_masks_are_the_same_at_every_step() {
        let store = ParamStore::new(5, &Device::Cpu);
        for kind in [CellKind::Lstm, CellKind::Gru] {
            let rnn = Rnn::new(kind, 6, 16, 2, 0.0, 1.0, store.var_builder().pp(format!("{kind:?}"))).unwrap();
            let rnn = rnn.with_variational(0.5);
            let x = crate::ops::gradcheck::randn(1, &[4, 7, 6]);
            let mut rng = Rng::new(9);
            let (y, _) = rnn.forward(&x, None, None, Some(&mut rng)).unwrap();
            let y = y.to_vec3::<f32>().unwrap();
            let mut dropped = 0;
            for row in &y {
                for d in 0..16 {
                    let zeros = row.iter().filter(|step| step[d] == 0.0).count();
                    assert!(zeros == 0 || zeros == 7, "{kind:?}: unit {d} dropped at {zeros} of 7 steps");
                    dropped += (zeros == 7) as usize;
                }
            }
            assert!(dropped > 10 && dropped < 54, "{kind:?}: {dropped} of 64 units dropped at p = 0.5");
            let (plain, _) = rnn.forward(&x, None, None, None).unwrap();
            assert!(plain.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&v| v != 0.0));
        }
    }
}
