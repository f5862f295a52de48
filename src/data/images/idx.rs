//! IDX files, the format of MNIST, Fashion-MNIST and EMNIST: a magic number
//! (two zero bytes, the element type, the number of dimensions), each
//! dimension as a big-endian u32, then the elements. Plain or gzipped (told
//! by the gzip magic, not the name). Only unsigned bytes (type 0x08) are
//! read, as every one of those data sets uses.

use super::Images;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The most images one file may hold, and the largest side of an image:
/// far above any real set (EMNIST by_class has 814,255 images of 28×28),
/// and small enough that the byte count cannot overflow.
pub const MAX_IMAGES: usize = 1 << 26;
/// The largest image side read, in pixels.
pub const MAX_SIDE: usize = 4096;
/// The most bytes of data one IDX file may hold, 4 GiB (EMNIST by_class
/// is 640 MB): checked before reading, so that a small gzip file cannot
/// expand without bound.
pub const MAX_BYTES: usize = 1 << 32;

/// An IDX file's dimensions and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// e.g. `[60000, 28, 28]` for images, `[60000]` for labels.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, checking its magic number, its
/// dimensions and that its length is exactly what they say.
pub fn read(path: &Path) -> Result<Idx> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 2];
    let mut raw = std::io::BufReader::new(file);
    let peeked = {
        use std::io::BufRead;
        let buf = raw.fill_buf().map_err(|e| Error::io(path, e))?;
        head[..buf.len().min(2)].copy_from_slice(&buf[..buf.len().min(2)]);
        buf.len()
    };
    if peeked == 0 {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    let mut reader: Box<dyn Read> =
        if head == [0x1f, 0x8b] { Box::new(flate2::read::GzDecoder::new(raw)) } else { Box::new(raw) };
    let bad = |msg: String| Error::bad_file(path, msg);
    let read_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad("the file ends inside its header".into())
        } else {
            bad(format!("cannot be read: {e}"))
        }
    };
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).map_err(read_err)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(format!(
            "not an IDX file (magic number 0x{:08x}; IDX files start with two zero bytes)",
            u32::from_be_bytes(magic)
        )));
    }
    if magic[2] != 0x08 {
        let kind = match magic[2] {
            0x09 => "signed bytes",
            0x0B => "16-bit integers",
            0x0C => "32-bit integers",
            0x0D => "32-bit floats",
            0x0E => "64-bit floats",
            _ => "an unknown type",
        };
        return Err(bad(format!("holds {kind} (type 0x{:02x}); shiftlm reads IDX files of unsigned bytes", magic[2])));
    }
    let n_dims = usize::from(magic[3]);
    if !(1..=3).contains(&n_dims) {
        return Err(bad(format!("has {n_dims} dimensions; labels have 1 and images 3")));
    }
    let mut dims = Vec::with_capacity(n_dims);
    for k in 0..n_dims {
        let mut d = [0u8; 4];
        reader.read_exact(&mut d).map_err(read_err)?;
        let d = u32::from_be_bytes(d) as usize;
        let limit = if k == 0 { MAX_IMAGES } else { MAX_SIDE };
        if d == 0 || d > limit {
            return Err(bad(format!("dimension {k} is {d}; it must be 1..={limit}")));
        }
        dims.push(d);
    }
    let len: usize = dims.iter().product();
    if len > MAX_BYTES {
        return Err(bad(format!("its header promises {len} bytes of data, more than the {MAX_BYTES} shiftlm reads")));
    }
    // Read what is there, up to the header's length: a header that promises
    // more than the file holds allocates no more than the file.
    let mut data = Vec::new();
    reader.by_ref().take(len as u64).read_to_end(&mut data).map_err(|e| bad(format!("cannot be read: {e}")))?;
    if data.len() < len {
        return Err(bad(format!("is truncated: its header promises {len} bytes of data, it holds {}", data.len())));
    }
    let mut extra = [0u8; 1];
    if reader.read(&mut extra).map_err(|e| bad(format!("cannot be read: {e}")))? > 0 {
        return Err(bad(format!("is longer than its header says ({len} bytes of data)")));
    }
    Ok(Idx { dims, data })
}

/// An images file (3 dimensions) and its labels file (1 dimension, as many
/// entries). `classes` names the labels when known; otherwise they are
/// `0..=max label`.
pub fn read_pair(images: &Path, labels: &Path, classes: Option<Vec<String>>) -> Result<Images> {
    let im = read(images)?;
    if im.dims.len() != 3 {
        return Err(Error::bad_file(images, format!("has {} dimension(s); an images file has 3", im.dims.len())));
    }
    let lb = read(labels)?;
    if lb.dims.len() != 1 {
        return Err(Error::bad_file(labels, format!("has {} dimensions; a labels file has 1", lb.dims.len())));
    }
    if lb.dims[0] != im.dims[0] {
        return Err(Error::bad_file(
            labels,
            format!("has {} labels for the {} images of {}", lb.dims[0], im.dims[0], images.display()),
        ));
    }
    let classes = classes.unwrap_or_else(|| {
        let n = lb.data.iter().copied().max().map_or(0, |m| usize::from(m) + 1);
        (0..n).map(|i| i.to_string()).collect()
    });
    let set = Images {
        width: im.dims[2],
        height: im.dims[1],
        max_value: 255,
        pixels: im.data,
        labels: lb.data.iter().map(|&l| u32::from(l)).collect(),
        classes,
    };
    set.check_labels(labels)?;
    Ok(set)
}

/// Writes an IDX file of unsigned bytes (for tests and tools).
pub fn write(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gzip {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).map_err(|e| Error::io(path, e))?;
        bytes = enc.finish().map_err(|e| Error::io(path, e))?;
    }
    crate::io::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_plain_and_gzipped() {
        let d = tempfile::tempdir().unwrap();
        for gz in [false, true] {
            let (im, lb) = (d.path().join(format!("im{gz}")), d.path().join(format!("lb{gz}")));
            let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
            write(&im, &[2, 3, 4], &pixels, gz).unwrap();
            write(&lb, &[2], &[1, 0], gz).unwrap();
            let set = read_pair(&im, &lb, None).unwrap();
            assert_eq!((set.width, set.height, set.len()), (4, 3, 2));
            assert_eq!(set.image(1), &pixels[12..]);
            assert_eq!(set.classes, ["0", "1"]);
        }
    }

    /// Each malformed file is refused with its name and what is wrong.
    #[test]
    fn malformed_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        let put = |n: &str, b: &[u8]| std::fs::write(p(n), b).unwrap();
        let err = |n: &str| read(&p(n)).unwrap_err().to_string();
        put("empty", b"");
        assert!(err("empty").contains("empty"));
        put("text", b"hello world");
        assert!(err("text").contains("not an IDX file"), "{}", err("text"));
        put("float", &[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(err("float").contains("32-bit floats"));
        put("dims", &[0, 0, 8, 4]);
        assert!(err("dims").contains("4 dimensions"));
        put("zero", &[0, 0, 8, 1, 0, 0, 0, 0]);
        assert!(err("zero").contains("dimension 0 is 0"));
        put("huge", &[0, 0, 8, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        assert!(err("huge").contains("dimension 1 is 4294967295"), "{}", err("huge"));
        put("head", &[0, 0, 8, 3, 0, 0]);
        assert!(err("head").contains("ends inside its header"));
        write(&p("short"), &[10, 2, 2], &[1; 40], false).unwrap();
        let mut b = std::fs::read(p("short")).unwrap();
        b.truncate(b.len() - 3);
        put("short", &b);
        assert!(err("short").contains("truncated") && err("short").contains("37"), "{}", err("short"));
        b.extend_from_slice(&[0; 5]);
        put("long", &b);
        assert!(err("long").contains("longer than its header"));
        assert!(err("long").contains("long"), "the message names the file");
        // A labels file that disagrees with its images, or is out of range.
        write(&p("im"), &[2, 1, 1], &[0, 0], false).unwrap();
        write(&p("lb3"), &[3], &[0, 0, 0], false).unwrap();
        let e = read_pair(&p("im"), &p("lb3"), None).unwrap_err().to_string();
        assert!(e.contains("3 labels for the 2 images"), "{e}");
        write(&p("lb"), &[2], &[0, 12], false).unwrap();
        let ten: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let e = read_pair(&p("im"), &p("lb"), Some(ten)).unwrap_err().to_string();
        assert!(e.contains("image 1: label 12 is out of range 0..=9") && e.contains("lb"), "{e}");
        let e = read_pair(&p("lb"), &p("lb"), None).unwrap_err().to_string();
        assert!(e.contains("an images file has 3"), "{e}");
    }
}
