//! TensorBoard scalar logs, written without TensorFlow: a TFRecord file of
//! `Event` protocol buffers (`tensorflow/core/util/event.proto`), each
//! framed as `len (u64 LE) · masked crc32c(len) · data · masked crc32c(data)`.
//! Only the few protobuf fields TensorBoard needs for scalars are encoded.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), from the `crc32c` crate (hardware-accelerated
/// where the CPU has it).
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// TFRecord's masked CRC.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_delimited(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// An `Event` with wall time, step and either a file version or one scalar.
fn event(wall_time: f64, step: i64, file_version: Option<&str>, scalar: Option<(&str, f32)>) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(0x09); // field 1, fixed64: wall_time
    e.extend_from_slice(&wall_time.to_le_bytes());
    e.push(0x10); // field 2, varint: step
    varint(step as u64, &mut e);
    if let Some(v) = file_version {
        len_delimited(3, v.as_bytes(), &mut e);
    }
    if let Some((tag, value)) = scalar {
        let mut val = Vec::new();
        len_delimited(1, tag.as_bytes(), &mut val); // Value.tag
        val.push(0x15); // field 2, fixed32: simple_value
        val.extend_from_slice(&value.to_le_bytes());
        let mut summary = Vec::new();
        len_delimited(1, &val, &mut summary); // Summary.value
        len_delimited(5, &summary, &mut e); // Event.summary
    }
    e
}

/// Appends scalar events to one `events.out.tfevents.*` file in a folder.
pub struct TensorBoardWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl TensorBoardWriter {
    /// A new event file in `dir` (created if needed).
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = dir.join(format!("events.out.tfevents.{}.shiftlm.{}", now.as_secs(), std::process::id()));
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = Self { file: std::io::BufWriter::new(file), path };
        w.record(&event(now.as_secs_f64(), 0, Some("brain.Event:2"), None))?;
        Ok(w)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&buf).map_err(|e| Error::io(&self.path, e))
    }

    /// Logs `value` under `tag` (e.g. `train/loss`) at `step`.
    pub fn scalar(&mut self, tag: &str, step: usize, value: f32) -> Result<()> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.record(&event(wall.as_secs_f64(), step as i64, None, Some((tag, value))))
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads back the scalars of an event file, checking every CRC: the
/// (tag, step, value) triples in order. For tests and `shiftlm plot`.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: &str| Error::Checkpoint { path: path.to_path_buf(), msg: msg.to_string() };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let header = bytes.get(pos..pos + 12).ok_or_else(|| bad("truncated record header"))?;
        let len = u64::from_le_bytes(header[..8].try_into().expect("8 bytes")) as usize;
        if masked_crc(&header[..8]).to_le_bytes() != header[8..12] {
            return Err(bad("bad length CRC"));
        }
        let data = bytes.get(pos + 12..pos + 12 + len).ok_or_else(|| bad("truncated record"))?;
        let crc = bytes.get(pos + 12 + len..pos + 16 + len).ok_or_else(|| bad("truncated CRC"))?;
        if masked_crc(data).to_le_bytes() != crc {
            return Err(bad("bad data CRC"));
        }
        if let Some(s) = parse_event(data) {
            out.push(s);
        }
        pos += 16 + len;
    }
    Ok(out)
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Walks protobuf fields, calling `f(field, wire_type, payload)`.
fn fields(b: &[u8], mut f: impl FnMut(u64, u64, &[u8])) -> Option<()> {
    let mut pos = 0;
    while pos < b.len() {
        let key = read_varint(b, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let start = pos;
        match wire {
            0 => {
                read_varint(b, &mut pos)?;
            }
            1 => pos += 8,
            2 => {
                let n = read_varint(b, &mut pos)? as usize;
                f(field, wire, b.get(pos..pos + n)?);
                pos += n;
                continue;
            }
            5 => pos += 4,
            _ => return None,
        }
        f(field, wire, b.get(start..pos)?);
    }
    Some(())
}

fn parse_event(data: &[u8]) -> Option<(String, i64, f32)> {
    let (mut step, mut scalar) = (0i64, None);
    fields(data, |field, _, payload| match field {
        2 => step = read_varint(payload, &mut 0).unwrap_or(0) as i64,
        5 => {
            fields(payload, |f, _, value| {
                if f == 1 {
                    let (mut tag, mut v) = (String::new(), f32::NAN);
                    fields(value, |f, _, p| match f {
                        1 => tag = String::from_utf8_lossy(p).into_owned(),
                        2 => v = f32::from_le_bytes(p.try_into().unwrap_or([0; 4])),
                        _ => {}
                    });
                    scalar = Some((tag, v));
                }
            });
        }
        _ => {}
    })?;
    scalar.map(|(t, v)| (t, step, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn written_scalars_parse_back_with_valid_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TensorBoardWriter::create(dir.path()).unwrap();
        w.scalar("train/loss", 1, 2.5).unwrap();
        w.scalar("train/loss", 300, 0.125).unwrap();
        w.scalar("valid/loss", 300, 0.25).unwrap();
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents."));
        let s = read_scalars(&path).unwrap();
        assert_eq!(
            s,
            vec![("train/loss".into(), 1, 2.5), ("train/loss".into(), 300, 0.125), ("valid/loss".into(), 300, 0.25)]
        );
        // A flipped byte is caught.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(read_scalars(&path).is_err());
    }
}
