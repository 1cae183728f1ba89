//! Quantization of trace values for a link: each series of floats becomes integer steps on a
//! grid, stored as differences from the previous value, so that a state that has stopped moving
//! costs a run of zeros that compresses to almost nothing.

use serde::{Deserialize, Serialize};

/// Values `lo + step * code` for integer codes `0 ..= 2^bits - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub lo: f32,
    pub step: f32,
}

impl Grid {
    /// The grid spanning `values` with `2^bits` levels.
    pub fn spanning(values: impl Iterator<Item = f32>, bits: u32) -> Self {
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            return Self { lo: 0.0, step: 1.0 };
        }
        let levels = ((1u64 << bits) - 1) as f32;
        let step = (hi - lo) / levels;
        Self {
            lo,
            step: if step > 0.0 { step } else { 1.0 },
        }
    }

    pub fn code(&self, value: f32) -> i32 {
        ((value - self.lo) / self.step).round() as i32
    }

    pub fn value(&self, code: i32) -> f32 {
        self.lo + self.step * code as f32
    }

    /// Whether every code the link can hold maps to a finite value.
    pub fn is_sound(&self) -> bool {
        let far = self.lo.abs() as f64 + self.step.abs() as f64 * i32::MAX as f64;
        self.lo.is_finite() && self.step.is_finite() && self.step > 0.0 && far < f32::MAX as f64
    }
}

/// Each code minus the one before (the first minus 0). Wrapping, so any input round-trips.
pub fn deltas(codes: impl IntoIterator<Item = i32>) -> Vec<i32> {
    let mut previous = 0i32;
    codes
        .into_iter()
        .map(|c| {
            let d = c.wrapping_sub(previous);
            previous = c;
            d
        })
        .collect()
}

/// Undoes [`deltas`].
pub fn undelta(deltas: &[i32]) -> Vec<i32> {
    let mut running = 0i32;
    deltas
        .iter()
        .map(|d| {
            running = running.wrapping_add(*d);
            running
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ends_of_the_range_are_exact_levels() {
        let grid = Grid::spanning([-2.0, 0.5, 6.0].into_iter(), 8);
        assert_eq!(grid.code(-2.0), 0);
        assert_eq!(grid.code(6.0), 255);
        assert!((grid.value(255) - 6.0).abs() < 1e-5);
        assert!(grid.is_sound());
    }

    #[test]
    fn a_constant_series_still_has_a_usable_grid() {
        let grid = Grid::spanning([3.0, 3.0].into_iter(), 8);
        assert_eq!(grid.value(grid.code(3.0)), 3.0);
        assert!(grid.is_sound());
    }

    #[test]
    fn a_grid_that_can_overflow_is_unsound() {
        assert!(!Grid {
            lo: 0.0,
            step: 1e30
        }
        .is_sound());
        assert!(!Grid {
            lo: f32::NAN,
            step: 1.0
        }
        .is_sound());
        assert!(!Grid { lo: 0.0, step: 0.0 }.is_sound());
    }

    proptest! {
        #[test]
        fn deltas_round_trip(codes in proptest::collection::vec(any::<i32>(), 0..64)) {
            prop_assert_eq!(undelta(&deltas(codes.iter().copied())), codes);
        }

        #[test]
        fn quantization_error_is_at_most_half_a_step(
            values in proptest::collection::vec(-1e3f32..1e3, 1..64),
            bits in 4u32..17,
        ) {
            let grid = Grid::spanning(values.iter().copied(), bits);
            for v in values {
                prop_assert!((grid.value(grid.code(v)) - v).abs() <= grid.step * 0.5 + 1e-3);
            }
        }
    }
}
