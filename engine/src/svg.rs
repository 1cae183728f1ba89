//! A small SVG drawing of latent trajectories for the command line (the page draws its own with
//! plotters-canvas): every position faintly, chosen positions in colour with a dot per iteration.

use std::fmt::Write;

/// One position's path through the projected plane, in iteration order.
pub struct Path {
    pub label: String,
    pub points: Vec<(f32, f32)>,
    pub highlighted: bool,
}

const SIZE: f32 = 640.0;
const MARGIN: f32 = 40.0;
const COLOURS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

pub fn trajectories(title: &str, x_label: &str, y_label: &str, paths: &[Path]) -> String {
    let all = paths.iter().flat_map(|p| &p.points);
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let span = (x1 - x0).max(y1 - y0).max(1e-6);
    let inner = SIZE - 2.0 * MARGIN;
    let to_screen = |(x, y): (f32, f32)| {
        (
            MARGIN + (x - x0) / span * inner,
            SIZE - MARGIN - (y - y0) / span * inner,
        )
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{MARGIN}" y="24" font-size="14">{}</text><text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        escape(title),
        SIZE / 2.0,
        SIZE - 10.0,
        escape(x_label),
        SIZE / 2.0,
        SIZE / 2.0,
        escape(y_label)
    );
    let mut colour = COLOURS.iter().cycle();
    // Faint paths first so that highlighted ones sit on top.
    for path in paths
        .iter()
        .filter(|p| !p.highlighted)
        .chain(paths.iter().filter(|p| p.highlighted))
    {
        let points: Vec<String> = path
            .points
            .iter()
            .map(|&p| to_screen(p))
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        if !path.highlighted {
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="#bbb" stroke-width="0.7"/>"##,
                points.join(" ")
            );
            continue;
        }
        let c = colour.next().expect("cycle");
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="1.6"/>"#,
            points.join(" ")
        );
        for (i, &p) in path.points.iter().enumerate() {
            let (x, y) = to_screen(p);
            let r = if i == 0 { 4.5 } else { 2.5 };
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{c}"/>"#
            );
        }
        if let Some(&last) = path.points.last() {
            let (x, y) = to_screen(last);
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" fill="{c}">{}</text>"#,
                x + 6.0,
                y - 6.0,
                escape(&path.label)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
