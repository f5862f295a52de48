//! scikit-learn's 8×8 handwritten digits (1,797 images; UCI Optical
//! Recognition of Handwritten Digits, CC BY 4.0; `data/digits.md`), embedded
//! so that the demo and the tests need nothing installed.

use super::Images;
use crate::error::{Error, Result};
use std::io::Read;

/// The gzipped CSV: 64 pixels (0..16) then the digit, one image per line.
const CSV_GZ: &[u8] = include_bytes!("../../../data/digits.csv.gz");

/// All 1,797 digits, 8×8, pixel values 0..=16.
pub fn all() -> Result<Images> {
    let name = "data/digits.csv.gz (embedded)";
    let mut text = String::new();
    flate2::read::GzDecoder::new(CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::bad_file(name, format!("cannot be decompressed: {e}")))?;
    parse(&text, name)
}

/// Parses the digits CSV (also used on a corrupted copy in tests).
fn parse(text: &str, name: &str) -> Result<Images> {
    let mut set = Images {
        width: 8,
        height: 8,
        max_value: 16,
        pixels: Vec::with_capacity(1797 * 64),
        labels: Vec::with_capacity(1797),
        classes: (0..10).map(|d| d.to_string()).collect(),
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    for (i, rec) in reader.records().enumerate() {
        let bad = |msg: String| Error::BadLine { path: name.into(), line: i + 1, msg };
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        if rec.len() != 65 {
            return Err(bad(format!("{} fields; a digit has 64 pixels and a label", rec.len())));
        }
        for (k, f) in rec.iter().enumerate() {
            let v: u8 = f.trim().parse().map_err(|_| bad(format!("field {}: {f:?} is not a number", k + 1)))?;
            let limit = if k < 64 { 16 } else { 9 };
            if v > limit {
                return Err(bad(format!("field {}: {v} is out of range 0..={limit}", k + 1)));
            }
            if k < 64 {
                set.pixels.push(v);
            } else {
                set.labels.push(u32::from(v));
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_digits_are_all_there() {
        let d = all().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.pixels.len(), 1797 * 64);
        // sklearn's load_digits: the first image is a 0, the counts per class
        // are 178 182 177 183 181 182 181 179 174 180.
        assert_eq!(d.labels[0], 0);
        let mut counts = [0; 10];
        d.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        assert_eq!(&d.image(0)[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
        let e = parse("1,2,3\n", "x.csv").unwrap_err().to_string();
        assert!(e.contains("x.csv:1") && e.contains("3 fields"), "{e}");
        let row = format!("{}17\n", "0,".repeat(64));
        assert!(parse(&row, "x.csv").unwrap_err().to_string().contains("field 65: 17 is out of range 0..=9"));
    }
}
