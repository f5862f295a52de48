//! TEMPORARY STUB (being replaced by the real rasterizer).
pub struct Series<'a> {
    pub label: &'a str,
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
    pub markers: bool,
}
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
    pub vlines: Vec<f64>,
    pub width: usize,
    pub height: usize,
}
impl Chart<'_> {
    pub fn to_png(&self) -> Vec<u8> {
        b"\x89PNG\r\n\x1a\n".to_vec()
    }
}
