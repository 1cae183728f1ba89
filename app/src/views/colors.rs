//! The page's color scales, shared by the text, the heatmap and the charts.

use plotters::style::RGBColor;

/// A perceptually ordered scale from dark blue (0) through teal and green to yellow (1).
pub fn heat(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let scaled = t * (STOPS.len() - 1) as f64;
    let i = (scaled.floor() as usize).min(STOPS.len() - 2);
    let f = scaled - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Whether text on `color` reads better in black than in white.
pub fn dark_text_on(color: RGBColor) -> bool {
    let RGBColor(r, g, b) = color;
    0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64 > 150.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_ends_and_clamps() {
        assert_eq!(heat(0.0), RGBColor(68, 1, 84));
        assert_eq!(heat(1.0), RGBColor(253, 231, 37));
        assert_eq!(heat(7.0), heat(1.0));
        assert_eq!(heat(f64::NAN), heat(0.0));
        assert!(dark_text_on(heat(1.0)) && !dark_text_on(heat(0.0)));
    }
}
