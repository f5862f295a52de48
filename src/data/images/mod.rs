//! Labelled grey-scale images for recognition: where they come from and how
//! they are split.
//!
//! - [`digits`]: scikit-learn's 8×8 handwritten digits, embedded (no install);
//! - [`fashion_mnist`]: Fashion-MNIST from Debian's `dataset-fashion-mnist`;
//! - [`load_dir`]: your own, as IDX files (MNIST's format) or as a folder with
//!   one subfolder per class (torchvision's ImageFolder).
//!
//! Every image of a set has one size. Pixels are kept as bytes, with the
//! value that means white (`max_value`: 255, or 16 for the digits), and
//! become floats in [0, 1] batch by batch.

pub mod digits;
pub mod folder;
pub mod idx;
pub mod strips;

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::{Path, PathBuf};

/// Labelled images of one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The pixel value that means full intensity (255, or 16 for the digits).
    pub max_value: u8,
    /// N × height × width bytes, row by row.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of one image, row by row.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.width * self.height;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Image `i` as floats in [0, 1].
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        let scale = 1.0 / f32::from(self.max_value.max(1));
        self.image(i).iter().map(|&p| f32::from(p) * scale).collect()
    }

    /// The images at `idx`, in that order, with the same classes.
    pub fn select(&self, idx: &[usize]) -> Images {
        let mut pixels = Vec::with_capacity(idx.len() * self.width * self.height);
        for &i in idx {
            pixels.extend_from_slice(self.image(i));
        }
        Images {
            width: self.width,
            height: self.height,
            max_value: self.max_value,
            pixels,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// Checks that the pixels fill every image and that every label names a
    /// class (the error names `path` and the image).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let expect = self.width.checked_mul(self.height).and_then(|n| n.checked_mul(self.len()));
        if expect != Some(self.pixels.len()) {
            return Err(Error::bad_file(
                path,
                format!("{} pixels for {} images of {}×{}", self.pixels.len(), self.len(), self.width, self.height),
            ));
        }
        self.check_labels(path)
    }

    /// Checks that every label names a class (the error names `path` and the
    /// image).
    pub(crate) fn check_labels(&self, path: &Path) -> Result<()> {
        if let Some((i, l)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= self.classes.len()) {
            return Err(Error::bad_file(
                path,
                format!("image {i}: label {l} is out of range 0..={}", self.classes.len().saturating_sub(1)),
            ));
        }
        Ok(())
    }
}

/// A training set and a test set of one size and one set of classes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSplits {
    /// Images to train on (a validation share is taken from them later).
    pub train: Images,
    /// Held-out images, never trained on.
    pub test: Images,
    /// Where they came from, for reports: `digits`, `fashion-mnist` or a path.
    pub source: String,
}

/// Where a recognition task's images come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// The embedded 8×8 digits (`--task digits`).
    Digits,
    /// Fashion-MNIST from Debian's package (`--task fashion-mnist`).
    FashionMnist,
    /// IDX files or an image folder (`--data DIR`).
    Dir(PathBuf),
}

/// The `data` table of an image-recognition run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDataConfig {
    /// Where the images come from.
    pub source: ImageSource,
    /// How training images are perturbed (`--augment`).
    #[serde(default)]
    pub augment: crate::data::augment::Augment,
    /// Share of the training images held out for validation, e.g. 0.1.
    pub valid_fraction: f64,
    /// Digit strings (`--task digit-strings`): strips of these images side
    /// by side for an encoder–decoder to read, instead of single images to
    /// classify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strings: Option<strips::StringsConfig>,
}

/// A run's images: training, validation (taken from the training set) and
/// test.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageData {
    /// Images to train on.
    pub train: Images,
    /// Held out of the training set for validation and early stopping.
    pub valid: Images,
    /// The test set, for the final report.
    pub test: Images,
    /// Where they came from, e.g. `digits`.
    pub source: String,
}

impl ImageData {
    /// Loads the source and holds out `valid_fraction` of its training set
    /// (a fixed seeded split, like the test split).
    pub fn load(cfg: &ImageDataConfig) -> Result<ImageData> {
        if !(0.0..1.0).contains(&cfg.valid_fraction) {
            return Err(Error::config("data.valid_fraction", "must be in [0, 1)"));
        }
        cfg.augment.validate()?;
        let s = load(&cfg.source)?;
        let (train, valid) = if cfg.valid_fraction > 0.0 {
            split(&s.train, cfg.valid_fraction, 1)
        } else {
            (s.train.clone(), s.train.select(&[]))
        };
        if train.is_empty() || s.test.is_empty() {
            return Err(Error::config("data", format!("{}: too few images to train and test on", s.source)));
        }
        Ok(ImageData { train, valid, test: s.test, source: s.source })
    }

    /// e.g. "1150 training, 288 validation and 359 test images of 8×8 in 10 classes (digits)".
    pub fn describe(&self) -> String {
        format!(
            "{} training, {} validation and {} test images of {}×{} in {} classes ({})",
            self.train.len(),
            self.valid.len(),
            self.test.len(),
            self.train.width,
            self.train.height,
            self.train.classes.len(),
            self.source
        )
    }
}

/// The share of a set held out for testing when it comes without a test set.
pub const TEST_FRACTION: f64 = 0.2;

/// Loads a source's train and test sets. A set without its own test set is
/// split with a fixed seed, so that runs with different seeds are tested on
/// the same images.
pub fn load(source: &ImageSource) -> Result<ImageSplits> {
    match source {
        ImageSource::Digits => {
            let (train, test) = split(&digits::all()?, TEST_FRACTION, 0);
            Ok(ImageSplits { train, test, source: "digits".into() })
        }
        ImageSource::FashionMnist => fashion_mnist(None),
        ImageSource::Dir(d) => load_dir(d, TEST_FRACTION, 0),
    }
}

/// Splits one set into train and test: a seeded shuffle, then the last
/// `test_fraction` of it held out.
pub fn split(all: &Images, test_fraction: f64, seed: u64) -> (Images, Images) {
    let mut idx: Vec<usize> = (0..all.len()).collect();
    Rng::derive(seed, "image-split").shuffle(&mut idx);
    let n_test = ((all.len() as f64 * test_fraction).round() as usize).clamp(usize::from(all.len() > 1), all.len());
    let (train, test) = idx.split_at(all.len() - n_test);
    (all.select(train), all.select(test))
}

/// Where Debian's `dataset-fashion-mnist` puts its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's ten classes, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Fashion-MNIST (60,000 training and 10,000 test images, 28×28) from
/// Debian's `dataset-fashion-mnist` package, or from `dir` if given.
pub fn fashion_mnist(dir: Option<&Path>) -> Result<ImageSplits> {
    let d = dir.map_or_else(|| PathBuf::from(FASHION_MNIST_DIR), Path::to_path_buf);
    let file = |name: &str| d.join(name);
    let first = file("train-images-idx3-ubyte.gz");
    if !first.exists() {
        return Err(Error::MissingPackage { path: first, package: "dataset-fashion-mnist" });
    }
    let classes: Vec<String> = FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
    let read = |images: &str, labels: &str| idx::read_pair(&file(images), &file(labels), Some(classes.clone()));
    Ok(ImageSplits {
        train: read("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
        test: read("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
        source: "fashion-mnist".into(),
    })
}

/// Your images in `dir`: IDX files (`*-images-idx3-ubyte[.gz]` with their
/// `*-labels-idx1-ubyte[.gz]`; a name with `train` trains and one with
/// `t10k` or `test` tests), or an ImageFolder (one subfolder per class,
/// optionally under `train/` and `test/`). Without a test set, a seeded
/// `test_fraction` of the images is held out.
pub fn load_dir(dir: &Path, test_fraction: f64, seed: u64) -> Result<ImageSplits> {
    let (train, test) = read_sets(dir)?;
    splits_of(train, test, test_fraction, seed, dir.display().to_string())
}

/// The images of `dir` to evaluate a model on: its test set if it has one
/// (`test/`, or an IDX file named `t10k`/`test`), otherwise all of them.
pub fn load_for_eval(dir: &Path) -> Result<Images> {
    match read_sets(dir)? {
        (_, Some((_, test))) => Ok(test),
        (Some((_, all)), None) => Ok(all),
        (None, None) => unreachable!("read_sets finds at least one set"),
    }
}

/// The training and test sets a folder holds (at least one of them).
type Sets = (Option<(PathBuf, Images)>, Option<(PathBuf, Images)>);

fn read_sets(dir: &Path) -> Result<Sets> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let image_files: Vec<&PathBuf> = names.iter().filter(|p| file_name(p).contains("images-idx3-ubyte")).collect();
    if !image_files.is_empty() {
        let mut train = None;
        let mut test = None;
        for images in image_files {
            let name = file_name(images);
            let labels = images.with_file_name(name.replace("images-idx3-ubyte", "labels-idx1-ubyte"));
            let set = idx::read_pair(images, &labels, None)?;
            let slot = if name.contains("t10k") || name.contains("test") { &mut test } else { &mut train };
            if slot.is_some() {
                return Err(Error::bad_file(
                    images,
                    "a second IDX image file for the same split; keep one train and one test file",
                ));
            }
            *slot = Some((images.clone(), set));
        }
        return Ok((train, test));
    }
    let sub = |n: &str| names.iter().find(|p| p.is_dir() && file_name(p) == n).cloned();
    if let (Some(tr), Some(te)) = (sub("train"), sub("test")) {
        let train = folder::read(&tr)?;
        let test = folder::read(&te)?;
        if test.classes != train.classes || (test.width, test.height) != (train.width, train.height) {
            return Err(Error::bad_file(
                &te,
                format!(
                    "its classes {:?} and size {}×{} differ from train/'s {:?} and {}×{}",
                    test.classes, test.width, test.height, train.classes, train.width, train.height
                ),
            ));
        }
        return Ok((Some((tr, train)), Some((te, test))));
    }
    if names.iter().any(|p| p.is_dir()) {
        return Ok((Some((dir.to_path_buf(), folder::read(dir)?)), None));
    }
    Err(Error::bad_file(
        dir,
        "holds neither IDX files (*-images-idx3-ubyte[.gz] with *-labels-idx1-ubyte[.gz]) nor one subfolder of images per class",
    ))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Train and test sets from whatever was found; a missing test set is held
/// out of the training set.
fn splits_of(
    train: Option<(PathBuf, Images)>,
    test: Option<(PathBuf, Images)>,
    test_fraction: f64,
    seed: u64,
    source: String,
) -> Result<ImageSplits> {
    match (train, test) {
        (Some((_, train)), Some((path, mut test))) => {
            if (test.width, test.height) != (train.width, train.height) {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "images are {}×{}, the training images {}×{}",
                        test.width, test.height, train.width, train.height
                    ),
                ));
            }
            let mut train = train;
            if train.classes != test.classes {
                // IDX labels are numbers: the classes are those seen in either file.
                let n = train.classes.len().max(test.classes.len());
                let classes: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                train.classes.clone_from(&classes);
                test.classes = classes;
            }
            Ok(ImageSplits { train, test, source })
        }
        (Some((_, all)), None) | (None, Some((_, all))) => {
            let (train, test) = split(&all, test_fraction, seed);
            Ok(ImageSplits { train, test, source })
        }
        (None, None) => unreachable!("called with at least one set"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(n: usize) -> Images {
        Images {
            width: 2,
            height: 1,
            max_value: 255,
            pixels: (0..2 * n).map(|i| i as u8).collect(),
            labels: (0..n).map(|i| (i % 3) as u32).collect(),
            classes: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn splits_are_seeded_and_disjoint() {
        let all = tiny(50);
        let (tr, te) = split(&all, 0.2, 7);
        assert_eq!((tr.len(), te.len()), (40, 10));
        assert_eq!(split(&all, 0.2, 7), (tr.clone(), te.clone()));
        assert_ne!(split(&all, 0.2, 8).1, te);
        // Every image lands in exactly one split (pixel pairs are unique).
        let mut firsts: Vec<u8> = tr.pixels.chunks(2).chain(te.pixels.chunks(2)).map(|p| p[0]).collect();
        firsts.sort();
        assert_eq!(firsts, (0..50).map(|i| 2 * i as u8).collect::<Vec<_>>());
        assert_eq!(tr.image_f32(0).len(), 2);
    }

    #[test]
    fn a_missing_package_is_named() {
        let e = fashion_mnist(Some(Path::new("/nonexistent/fashion"))).unwrap_err().to_string();
        assert!(e.contains("dataset-fashion-mnist") && e.contains("apt-get install"), "{e}");
    }
}
