//! An image folder, torchvision's ImageFolder convention: one subfolder per
//! class (sorted by name; the label is the position), holding PNG, JPEG or
//! BMP files, decoded by the `image` crate and converted to grey scale.
//!
//! Every image must have the size of the first one read: one of another size
//! is refused, naming it, rather than resized, since resizing would change
//! what the model sees without saying so. Resize the folder beforehand (e.g.
//! `mogrify -resize 28x28! */*.png`).

use super::{idx::MAX_IMAGES, idx::MAX_SIDE, Images};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The extensions read (lower case); other files are skipped.
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

fn sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    v.sort();
    Ok(v)
}

/// Reads `dir/<class>/<image>` for every class subfolder of `dir`.
pub fn read(dir: &Path) -> Result<Images> {
    let classes: Vec<PathBuf> = sorted(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(Error::bad_file(dir, "has no class subfolders (one subfolder of images per class)"));
    }
    let mut set = Images {
        width: 0,
        height: 0,
        max_value: 255,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: classes.iter().map(|c| c.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect(),
    };
    for (label, class) in classes.iter().enumerate() {
        let files: Vec<PathBuf> = sorted(class)?
            .into_iter()
            .filter(|p| {
                p.extension().is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
            })
            .collect();
        if files.is_empty() {
            return Err(Error::bad_file(class, format!("holds no images ({})", EXTENSIONS.join(", "))));
        }
        for f in files {
            if set.len() == MAX_IMAGES {
                return Err(Error::bad_file(dir, format!("holds more than {MAX_IMAGES} images")));
            }
            let (w, h, pixels) = decode(&f)?;
            if set.pixels.len() + pixels.len() > super::idx::MAX_BYTES {
                return Err(Error::bad_file(dir, format!("holds more than {} bytes of pixels", super::idx::MAX_BYTES)));
            }
            if set.is_empty() {
                (set.width, set.height) = (w, h);
            } else if (w, h) != (set.width, set.height) {
                return Err(Error::bad_file(
                    &f,
                    format!(
                        "is {w}×{h}, the folder's first image {}×{}; resize the images to one size",
                        set.width, set.height
                    ),
                ));
            }
            set.pixels.extend_from_slice(&pixels);
            set.labels.push(label as u32);
        }
    }
    Ok(set)
}

/// One image file (PNG, JPEG or BMP) as grey-scale bytes: (width, height,
/// pixels), its size checked before it is decoded.
pub fn decode(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    use image::ImageDecoder;
    let bad = |e: image::ImageError| Error::bad_file(path, format!("is not a readable image: {e}"));
    // One read: the header's size is checked before the pixels are decoded.
    let decoder = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .into_decoder()
        .map_err(bad)?;
    let (w, h) = decoder.dimensions();
    if w as usize > MAX_SIDE || h as usize > MAX_SIDE || w == 0 || h == 0 {
        return Err(Error::bad_file(path, format!("is {w}×{h}; images must be 1..={MAX_SIDE} pixels a side")));
    }
    let grey = image::DynamicImage::from_decoder(decoder).map_err(bad)?.to_luma8();
    Ok((grey.width() as usize, grey.height() as usize, grey.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32, v: u8) {
        image::GrayImage::from_pixel(w, h, image::Luma([v])).save(path).unwrap();
    }

    #[test]
    fn reads_classes_in_order_and_refuses_other_sizes() {
        let d = tempfile::tempdir().unwrap();
        for (c, v) in [("cat", 10u8), ("ant", 200)] {
            std::fs::create_dir(d.path().join(c)).unwrap();
            png(&d.path().join(c).join("a.png"), 3, 2, v);
            png(&d.path().join(c).join("b.PNG"), 3, 2, v);
        }
        std::fs::write(d.path().join("cat/notes.txt"), "skipped").unwrap();
        let set = read(d.path()).unwrap();
        assert_eq!(set.classes, ["ant", "cat"]);
        assert_eq!((set.width, set.height, set.len()), (3, 2, 4));
        assert_eq!(set.labels, [0, 0, 1, 1]);
        assert_eq!(set.image(0), &[200; 6]);
        png(&d.path().join("cat/c.png"), 4, 2, 0);
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("c.png") && e.contains("4×2") && e.contains("3×2"), "{e}");
        std::fs::remove_file(d.path().join("cat/c.png")).unwrap();
        std::fs::write(d.path().join("cat/d.png"), b"not a png").unwrap();
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("d.png") && e.contains("not a readable image"), "{e}");
        std::fs::remove_file(d.path().join("cat/d.png")).unwrap();
        std::fs::create_dir(d.path().join("empty")).unwrap();
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("holds no images"), "{e}");
    }
}
