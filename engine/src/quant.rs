//! Quantized storage of weight matrices: q8 and q4, in groups of 32 values along each row (the
//! input dimension of a linear layer, the embedding dimension of `wte`). Only 2-D `*.weight`
//! tensors are quantized; norms and biases stay f32.
//!
//! A quantized tensor `W` is stored as `W.qweight` with `W.scales` (and `W.mins` for q4), and
//! `config.json` says `"quantization": {"format": "q8", "group_size": 32}`:
//! - **q8** is symmetric: `x ≈ scale · q` with `q` an i8 in -127..=127 and `scale = max|x| / 127`
//!   (f16) per group. Int8 has levels enough that a zero point would buy little, and a symmetric
//!   grid keeps the shader's dequantization a single multiply.
//! - **q4** is asymmetric: `x ≈ min + scale · q` with `q` in 0..=15 packed two to a byte (low
//!   nibble first), `scale = (max - min) / 15` and `min` (f16) per group. With only 16 levels a
//!   symmetric grid would waste half of them on groups whose values lean to one side.

use half::f16;
use serde::{Deserialize, Serialize};

/// Values per group sharing a scale.
pub const GROUP: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Q8,
    Q4,
}

/// The `quantization` entry of config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    pub format: Format,
    pub group_size: usize,
}

/// Suffixes of the stored parts of a quantized tensor.
pub const QWEIGHT: &str = ".qweight";
pub const SCALES: &str = ".scales";
pub const MINS: &str = ".mins";

/// Whether a checkpoint tensor is quantized: the matrices, not norms or biases.
pub fn is_quantized(name: &str, shape: &[usize]) -> bool {
    name.ends_with(".weight") && shape.len() == 2
}

/// One matrix in a quantized format, rows of `cols` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub format: Format,
    pub rows: usize,
    pub cols: usize,
    /// q8: one i8 per value; q4: two values per byte, each row padded to whole bytes.
    pub data: Vec<u8>,
    /// Per row, per group.
    pub scales: Vec<f16>,
    /// q4 only.
    pub mins: Vec<f16>,
}

fn groups(cols: usize) -> usize {
    cols.div_ceil(GROUP)
}

impl Quantized {
    /// Bytes of one stored row of data.
    pub fn row_bytes(format: Format, cols: usize) -> usize {
        match format {
            Format::Q8 => cols,
            Format::Q4 => cols.div_ceil(2),
        }
    }

    pub fn quantize(format: Format, values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "a {rows}x{cols} matrix");
        let per_row = Self::row_bytes(format, cols);
        let mut quantized = Self {
            format,
            rows,
            cols,
            data: vec![0; rows * per_row],
            scales: Vec::with_capacity(rows * groups(cols)),
            mins: Vec::new(),
        };
        for (r, row) in values.chunks(cols).enumerate() {
            let out = &mut quantized.data[r * per_row..(r + 1) * per_row];
            for (g, group) in row.chunks(GROUP).enumerate() {
                let start = g * GROUP;
                match format {
                    Format::Q8 => {
                        let top = group.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                        let scale = f16::from_f32(top / 127.0);
                        let step = scale.to_f32();
                        for (i, x) in group.iter().enumerate() {
                            let q = if step > 0.0 {
                                (x / step).round().clamp(-127.0, 127.0)
                            } else {
                                0.0
                            };
                            out[start + i] = q as i8 as u8;
                        }
                        quantized.scales.push(scale);
                    }
                    Format::Q4 => {
                        let (lo, hi) = group
                            .iter()
                            .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                        let min = f16::from_f32(lo);
                        let scale = f16::from_f32((hi - min.to_f32()) / 15.0);
                        let (base, step) = (min.to_f32(), scale.to_f32());
                        for (i, x) in group.iter().enumerate() {
                            let q = if step > 0.0 {
                                ((x - base) / step).round().clamp(0.0, 15.0)
                            } else {
                                0.0
                            };
                            let at = start + i;
                            out[at / 2] |= (q as u8) << (4 * (at % 2));
                        }
                        quantized.scales.push(scale);
                        quantized.mins.push(min);
                    }
                }
            }
        }
        quantized
    }

    /// The values the stored codes stand for, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut values = Vec::with_capacity(self.rows * self.cols);
        (0..self.rows).for_each(|r| self.dequantize_row(r, &mut values));
        values
    }

    /// Rows `rows` (in that order, repeats allowed), row-major: an embedding lookup.
    pub fn dequantize_rows(&self, rows: &[u32]) -> Vec<f32> {
        let mut values = Vec::with_capacity(rows.len() * self.cols);
        rows.iter()
            .for_each(|&r| self.dequantize_row(r as usize, &mut values));
        values
    }

    fn dequantize_row(&self, r: usize, out: &mut Vec<f32>) {
        let per_row = Self::row_bytes(self.format, self.cols);
        let groups = groups(self.cols);
        let row = &self.data[r * per_row..(r + 1) * per_row];
        for c in 0..self.cols {
            let g = r * groups + c / GROUP;
            let scale = self.scales[g].to_f32();
            out.push(match self.format {
                Format::Q8 => scale * row[c] as i8 as f32,
                Format::Q4 => {
                    let q = (row[c / 2] >> (4 * (c % 2))) & 0x0f;
                    self.mins[g].to_f32() + scale * q as f32
                }
            });
        }
    }

    /// Whether the parts have the lengths a `rows x cols` matrix needs (a checkpoint is input).
    pub fn check(&self) -> Result<(), String> {
        let scales = self.rows * groups(self.cols);
        let mins = match self.format {
            Format::Q8 => 0,
            Format::Q4 => scales,
        };
        let data = self.rows * Self::row_bytes(self.format, self.cols);
        if self.data.len() != data || self.scales.len() != scales || self.mins.len() != mins {
            return Err(format!(
                "quantized parts do not fit a {}x{} matrix (data {} of {data}, scales {} of {scales}, mins {} of {mins})",
                self.rows,
                self.cols,
                self.data.len(),
                self.scales.len(),
                self.mins.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn q4_packs_two_values_a_byte_low_nibble_first() {
        let values: Vec<f32> = (0..32).map(|i| (i % 16) as f32).collect();
        let q = Quantized::quantize(Format::Q4, &values, 1, 32);
        assert_eq!(q.data.len(), 16);
        assert_eq!(q.data[0], 0x10, "0 in the low nibble, 1 in the high");
        assert_eq!(q.dequantize(), values);
    }

    #[test]
    fn an_all_zero_group_stays_zero() {
        for format in [Format::Q8, Format::Q4] {
            let q = Quantized::quantize(format, &[0.0; 40], 1, 40);
            assert_eq!(q.dequantize(), vec![0.0; 40]);
            assert_eq!(q.check(), Ok(()));
        }
    }

    #[test]
    fn looked_up_rows_are_the_dequantized_rows() {
        let values: Vec<f32> = (0..5 * 40).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        for format in [Format::Q8, Format::Q4] {
            let q = Quantized::quantize(format, &values, 5, 40);
            let all = q.dequantize();
            let picked = q.dequantize_rows(&[3, 0, 3]);
            let want: Vec<f32> = [3, 0, 3]
                .iter()
                .flat_map(|&r| all[r * 40..(r + 1) * 40].to_vec())
                .collect();
            assert_eq!(picked, want);
        }
    }

    #[test]
    fn mismatched_parts_are_refused() {
        let mut q = Quantized::quantize(Format::Q4, &[1.0; 64], 2, 32);
        q.mins.pop();
        assert!(q.check().unwrap_err().contains("2x32"));
    }

    proptest! {
        #[test]
        fn error_stays_within_half_a_step(
            rows in 1usize..4,
            cols in 1usize..100,
            seed in any::<u64>(),
        ) {
            let mut x = seed | 1;
            let values: Vec<f32> = (0..rows * cols)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 2001) as f32 / 1000.0 - 1.0
                })
                .collect();
            for (format, levels) in [(Format::Q8, 254.0f32), (Format::Q4, 15.0)] {
                let q = Quantized::quantize(format, &values, rows, cols);
                prop_assert_eq!(q.check(), Ok(()));
                let back = q.dequantize();
                for (r, (row, back)) in values.chunks(cols).zip(back.chunks(cols)).enumerate() {
                    for (g, (group, back)) in row.chunks(GROUP).zip(back.chunks(GROUP)).enumerate() {
                        let (lo, hi) = group.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                        let span = match format { Format::Q8 => 2.0 * lo.abs().max(hi.abs()), Format::Q4 => hi - lo };
                        // Half a step, plus f16 rounding of the scale (and min) across the group.
                        let bound = span / levels * 0.5 + span * 2e-3 + 2e-3 * lo.abs().max(hi.abs()) + 1e-6;
                        for (a, b) in group.iter().zip(back) {
                            prop_assert!((a - b).abs() <= bound, "row {} group {}: {} vs {} (bound {})", r, g, a, b, bound);
                        }
                    }
                }
            }
        }
    }
}
