//! The parameter store: every trainable tensor by its safetensors name,
//! sorted (candle's `VarMap` iterates in hash order), initialised from the
//! store's own seeded stream so the same seed gives the same weights.

use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Which parameters are frozen, by name.
type Frozen = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Inner {
    vars: BTreeMap<String, Var>,
    rng: Rng,
    frozen: Option<Frozen>,
    /// Values the parameters may still take, when loading from files: a
    /// model whose config asks for more than the files hold is refused
    /// before it allocates (a `vocab_size` of 10¹¹ would otherwise try).
    budget: Option<(u64, String)>,
}

/// Named trainable tensors. Cloning shares the same tensors.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    device: Device,
}

impl ParamStore {
    /// An empty store whose new tensors are initialised from `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                vars: BTreeMap::new(),
                rng: Rng::derive(seed, "init"),
                frozen: None,
                budget: None,
            })),
            device: device.clone(),
        }
    }

    /// Limits what new parameters may allocate in all, when a model is
    /// built to load `files` holding `values` values: a parameter past the
    /// limit is an error naming it and the files, raised before anything is
    /// allocated. The limit leaves room (4× the files, and at least 2²⁶
    /// values) so that a model of merely the wrong shape is still reported
    /// tensor by tensor by the strict load.
    pub fn limit(&self, values: u64, files: &str) {
        let budget = values.saturating_mul(4).max(1 << 26);
        self.lock().budget = Some((budget, files.to_string()));
    }

    /// A builder that creates (or returns) tensors in this store.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, self.device.clone())
    }

    /// The device the store's tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Freezes the parameters whose names `frozen` accepts, for models built
    /// after this call: they reach the model as constants, so backprop gives
    /// them no gradient and [`ParamStore::trainable_vars`] leaves them out
    /// (no optimizer state either). Loading and saving still cover them.
    pub fn freeze(&self, frozen: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.lock().frozen = Some(Arc::new(frozen));
    }

    /// Whether the parameter `name` is frozen (see [`ParamStore::freeze`]).
    pub fn is_frozen(&self, name: &str) -> bool {
        self.lock().frozen.as_ref().is_some_and(|f| f(name))
    }

    /// The variables that train, sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.vars().into_iter().filter(|(k, _)| !self.is_frozen(k)).collect()
    }

    /// Every variable, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.lock().vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// One variable by name.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().vars.get(name).cloned()
    }

    /// Total number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.lock().vars.values().map(|v| v.elem_count()).sum()
    }

    /// Overwrites one tensor's values (shape must match).
    pub fn set(&self, name: &str, value: &Tensor) -> Result<()> {
        let var =
            self.get(name).ok_or_else(|| Error::Checkpoint { path: name.into(), msg: "no such parameter".into() })?;
        var.set(value)?;
        Ok(())
    }

    /// Every tensor as the bytes of a safetensors file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let tensors: Vec<(String, Tensor)> = self.vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
        safetensors_bytes(&tensors)
    }

    /// Writes every tensor to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, &self.to_bytes()?)
    }

    /// Whether every value is finite (a checkpoint is never written otherwise).
    pub fn all_finite(&self) -> Result<bool> {
        for (_, v) in self.vars() {
            let s = v.as_tensor().abs()?.sum_all()?.to_scalar::<f32>()?;
            if !s.is_finite() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Loads a safetensors file into the existing tensors. Every parameter
    /// must be present with the right shape, and nothing else may be there:
    /// the error names the first offending tensor.
    pub fn load(&self, path: &Path) -> Result<()> {
        self.load_except(path, |_| false)
    }

    /// [`ParamStore::load`], silently skipping file tensors for which
    /// `ignorable` holds (buffers such as GPT-2's `attn.bias`).
    pub fn load_except(&self, path: &Path, ignorable: impl Fn(&str) -> bool) -> Result<()> {
        self.load_files_except(&[path.to_path_buf()], ignorable)
    }

    /// [`ParamStore::load_except`] from several files together (the shards
    /// of a `transformers` folder), read one at a time. Errors name the first file.
    pub fn load_files_except(&self, paths: &[std::path::PathBuf], ignorable: impl Fn(&str) -> bool) -> Result<()> {
        let mut tensors = RawTensors::new();
        for path in paths {
            gather(&mut tensors, &crate::io::read(path)?, path)?;
        }
        self.assign(tensors, paths.first().map(|p| p.as_path()), ignorable)
    }

    /// [`ParamStore::load_files_except`] from bytes already read (each with
    /// the path its errors name).
    pub fn load_bytes_except(&self, files: &[(&Path, &[u8])], ignorable: impl Fn(&str) -> bool) -> Result<()> {
        let mut tensors = RawTensors::new();
        for (path, bytes) in files {
            gather(&mut tensors, bytes, path)?;
        }
        self.assign(tensors, files.first().map(|(p, _)| *p), ignorable)
    }

    /// Sets every parameter from `tensors`, strictly (every parameter present
    /// with its shape, nothing else but `ignorable` names).
    fn assign(&self, mut tensors: RawTensors, path: Option<&Path>, ignorable: impl Fn(&str) -> bool) -> Result<()> {
        let path = path.unwrap_or(Path::new("<no files>"));
        tensors.retain(|name, _| !ignorable(name) || self.get(name).is_some());
        let vars: Vec<(String, Tensor)> = self.vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
        for (name, t) in assign_strict(&vars, &tensors, path)? {
            self.set(&name, &t)?;
        }
        Ok(())
    }

    fn init(rng: &mut Rng, shape: &Shape, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => (0..n).map(|_| rng.uniform(lo as f32, up as f32)).collect(),
            Init::Randn { mean, stdev } => (0..n).map(|_| mean as f32 + stdev as f32 * rng.normal()).collect(),
            Init::Kaiming { dist, fan, non_linearity } => {
                let fan = fan.for_shape(shape).max(1) as f64;
                let std = non_linearity.gain() / fan.sqrt();
                match dist {
                    NormalOrUniform::Normal => (0..n).map(|_| std as f32 * rng.normal()).collect(),
                    NormalOrUniform::Uniform => {
                        let b = (3f64.sqrt() * std) as f32;
                        (0..n).map(|_| rng.uniform(-b, b)).collect()
                    }
                }
            }
        }
    }
}

/// Adds the tensors of one safetensors file (`bytes`, read from `path`) to
/// `tensors`; a name already there (in an earlier shard) is an error.
fn gather(tensors: &mut RawTensors, bytes: &[u8], path: &Path) -> Result<()> {
    for (name, t) in read_safetensors(bytes, path)? {
        if tensors.insert(name.clone(), t).is_some() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                msg: format!("tensor '{name}' is in two shards"),
            });
        }
    }
    Ok(())
}

/// The number of values the tensors of a safetensors file hold, from its
/// header alone (`bytes` need only reach past the header).
pub fn safetensors_values(bytes: &[u8], path: &Path) -> Result<u64> {
    let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    let n = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let header = n.and_then(|n| bytes.get(8..8usize.checked_add(usize::try_from(n).ok()?)?));
    let header = header.ok_or_else(|| bad("not a valid safetensors file: shorter than its header".into()))?;
    let v: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| bad(format!("not a valid safetensors file: header: {e}")))?;
    let tensors =
        v.as_object().ok_or_else(|| bad("not a valid safetensors file: the header is not an object".into()))?;
    let mut total: u64 = 0;
    for (name, info) in tensors.iter().filter(|(k, _)| *k != "__metadata__") {
        let shape = info.get("shape").and_then(|s| s.as_array());
        let shape = shape.ok_or_else(|| bad(format!("not a valid safetensors file: tensor '{name}' has no shape")))?;
        let n = shape.iter().try_fold(1u64, |a, d| a.checked_mul(d.as_u64()?));
        total = n
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| bad(format!("tensor '{name}' has an impossible shape")))?;
    }
    Ok(total)
}

/// [`safetensors_values`] of a file on disk, reading only its header.
pub fn safetensors_file_values(path: &Path) -> Result<u64> {
    use std::io::Read;
    let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| bad("not a valid safetensors file: shorter than its header".into()))?;
    let n = u64::from_le_bytes(n);
    // safetensors' own limit on a header is 100 MB.
    if n > 100_000_000 || n + 8 > len {
        return Err(bad(format!("not a valid safetensors file: a header of {n} bytes in a file of {len}")));
    }
    let mut head = vec![0u8; 8 + n as usize];
    head[..8].copy_from_slice(&n.to_le_bytes());
    f.read_exact(&mut head[8..]).map_err(|e| Error::io(path, e))?;
    safetensors_values(&head, path)
}

/// Tensors read from a file: name → (shape, f32 values).
pub type RawTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Tensors as the bytes of a safetensors file (f32).
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), None)
        .map_err(|e| Error::Checkpoint { path: "<memory>".into(), msg: format!("cannot serialise tensors: {e}") })
}

/// Every tensor of a safetensors file, as (name, shape, f32 values). F16
/// and BF16 tensors (as `transformers` often saves) are widened to f32; any
/// other dtype is an error naming the tensor.
pub fn read_safetensors(bytes: &[u8], path: &Path) -> Result<RawTensors> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("not a valid safetensors file: {e}"),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let d = view.data();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => {
                d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            safetensors::Dtype::BF16 => {
                d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            safetensors::Dtype::F16 => {
                d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            other => {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    msg: format!("tensor '{name}' is {other:?}; shiftlm reads F32, F16 and BF16"),
                })
            }
        };
        out.insert(name.to_string(), (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Matches loaded tensors to `expected` by name and shape: every expected
/// tensor must be there with its shape, and nothing else may be. The error
/// names the first offending tensor.
pub fn assign_strict(expected: &[(String, Tensor)], loaded: &RawTensors, path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::with_capacity(expected.len());
    for (name, t) in expected {
        let (shape, values) =
            loaded.get(name).ok_or_else(|| Error::MissingTensor { path: path.to_path_buf(), name: name.clone() })?;
        if shape.as_slice() != t.dims() {
            return Err(Error::TensorShape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: t.dims().to_vec(),
                got: shape.clone(),
            });
        }
        out.push((name.clone(), Tensor::from_vec(values.clone(), shape.as_slice(), t.device())?));
    }
    if let Some(extra) = loaded.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
        return Err(Error::UnexpectedTensor { path: path.to_path_buf(), name: extra.clone() });
    }
    Ok(out)
}

impl SimpleBackend for ParamStore {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        let frozen = inner.frozen.as_ref().is_some_and(|f| f(name));
        // A frozen parameter reaches the model detached: same storage (so
        // loading still updates it), but no gradient is tracked.
        let hand_out = |v: &Var| if frozen { v.as_tensor().detach() } else { v.as_tensor().clone() };
        if let Some(v) = inner.vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!("parameter {name} requested with shape {s:?}, has {:?}", v.shape());
            }
            return Ok(hand_out(v));
        }
        if let Some((budget, files)) = inner.budget.take() {
            let n = s.elem_count() as u64;
            if n > budget {
                candle_core::bail!(
                    "{files}: the model's config asks for far more values than the file holds (parameter {name} of shape {:?}): a size in config.json does not match the weights",
                    s.dims()
                );
            }
            inner.budget = Some((budget - n, files));
        }
        let data = Self::init(&mut inner.rng, &s, h);
        let var = Var::from_vec(data, s, dev)?;
        let var = if var.dtype() != dtype { Var::from_tensor(&var.as_tensor().to_dtype(dtype)?)? } else { var };
        let t = hand_out(&var);
        inner.vars.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        match self.lock().vars.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().vars.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_and_strict_load() {
        let dev = Device::Cpu;
        let a = ParamStore::new(5, &dev);
        let vb = a.var_builder();
        let w = vb.pp("layer").get_with_hints((3, 4), "weight", Init::Uniform { lo: -1.0, up: 1.0 }).unwrap();
        let b = ParamStore::new(5, &dev);
        let w2 =
            b.var_builder().pp("layer").get_with_hints((3, 4), "weight", Init::Uniform { lo: -1.0, up: 1.0 }).unwrap();
        assert_eq!(w.to_vec2::<f32>().unwrap(), w2.to_vec2::<f32>().unwrap());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        a.save(&path).unwrap();
        let c = ParamStore::new(6, &dev);
        let w3 = c.var_builder().pp("layer").get_with_hints((3, 4), "weight", Init::Const(0.0)).unwrap();
        c.load(&path).unwrap();
        assert_eq!(w.to_vec2::<f32>().unwrap(), w3.to_vec2::<f32>().unwrap());

        let d = ParamStore::new(6, &dev);
        d.var_builder().pp("layer").get_with_hints((4, 3), "weight", Init::Const(0.0)).unwrap();
        let e = d.load(&path).unwrap_err().to_string();
        assert!(e.contains("layer.weight") && e.contains("[3, 4]"), "{e}");
        let f = ParamStore::new(6, &dev);
        f.var_builder().get_with_hints(3, "other", Init::Const(0.0)).unwrap();
        assert!(f.load(&path).unwrap_err().to_string().contains("missing tensor 'other'"));
    }
}
