//! Convergence of every token at every iteration: how far ln_f(s_i) still is from where the
//! token ended, or the exit criterion's value. Clicking a cell selects that token and iteration.

use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::{HtmlCanvasElement, MouseEvent};

use super::colors::heat;
use crate::export::ExportPng;
use crate::generation::Generation;
use crate::runner::timed_draw;
use crate::state::{HeatMetric, Page};

const WIDTH: f64 = 640.0;
const LEFT: f64 = 90.0;
const TOP: f64 = 20.0;
const ROW: f64 = 14.0;

/// Where each cell sits on the canvas; drawing and clicking share it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    pub rows: usize,
    pub columns: usize,
}

impl Layout {
    pub fn of(g: &Generation) -> Self {
        Self {
            rows: g.tokens.len(),
            columns: g.max_iterations(),
        }
    }

    pub fn height(&self) -> f64 {
        TOP + ROW * self.rows.max(1) as f64 + 4.0
    }

    fn column_width(&self) -> f64 {
        (WIDTH - LEFT - 8.0) / self.columns.max(1) as f64
    }

    /// (x0, y0, x1, y1) of the cell of token `row` at iteration `column + 1`.
    pub fn cell(&self, row: usize, column: usize) -> (f64, f64, f64, f64) {
        let w = self.column_width();
        let x0 = LEFT + w * column as f64;
        let y0 = TOP + ROW * row as f64;
        (x0, y0, x0 + w, y0 + ROW)
    }

    /// (token, 1-based iteration) under a canvas point.
    pub fn hit(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        if x < LEFT || y < TOP {
            return None;
        }
        let column = ((x - LEFT) / self.column_width()) as usize;
        let row = ((y - TOP) / ROW) as usize;
        (row < self.rows && column < self.columns).then_some((row, column + 1))
    }
}

/// The metric for every token and iteration, scaled to 0-1 (log scale for exit values, which
/// span many orders of magnitude). Missing values are `None`.
fn values(g: &Generation, metric: HeatMetric) -> Vec<Vec<Option<f64>>> {
    let raw: Vec<Vec<Option<f64>>> = g
        .tokens
        .iter()
        .map(|t| match metric {
            HeatMetric::Distance => t.distance.iter().map(|&d| Some(d as f64)).collect(),
            HeatMetric::ExitValue => t
                .exit_values
                .iter()
                .map(|v| v.filter(|v| *v > 0.0).map(|v| (v as f64).log10()))
                .collect(),
        })
        .collect();
    let all = raw.iter().flatten().flatten();
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = (hi - lo).max(1e-9);
    raw.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| v.map(|v| (v - lo) / span))
                .collect()
        })
        .collect()
}

#[component]
pub fn Heatmap() -> impl IntoView {
    let page = expect_context::<Page>();
    let canvas = NodeRef::<Canvas>::new();
    let layout = move || page.generation.with(Layout::of);
    Effect::new(move |_| {
        let (metric, selected, iteration) = (
            page.heat_metric.get(),
            page.selected.get(),
            page.iteration.get(),
        );
        let layout = layout();
        let Some(element) = canvas.get() else { return };
        element.set_height(layout.height() as u32);
        page.generation
            .with(|g| timed_draw(|| draw(&element, g, layout, metric, selected, iteration)));
    });
    let on_click = move |ev: MouseEvent| {
        let Some(element) = canvas.get() else { return };
        // The canvas may be drawn scaled by CSS.
        let scale = element.width() as f64 / element.client_width().max(1) as f64;
        if let Some((token, iteration)) =
            layout().hit(ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale)
        {
            page.selected.set(Some(token));
            page.iteration.set(iteration);
            page.playing.set(false);
        }
    };
    view! {
        <section class="panel">
            <h2>"Convergence: tokens × iterations"</h2>
            <div class="row">
                <select
                    data-testid="heatmap-metric"
                    on:change=move |ev| {
                        page.heat_metric.set(if event_target_value(&ev) == "exit" { HeatMetric::ExitValue } else { HeatMetric::Distance });
                    }
                >
                    <option value="distance">"|ln_f(s_i) − ln_f(s_final)|"</option>
                    <option value="exit">"exit criterion value (log)"</option>
                </select>
                <ExportPng canvas=canvas name="heatmap.png" testid="export-heatmap" />
            </div>
            <canvas node_ref=canvas data-testid="heatmap" width=WIDTH as u32 height="40" on:click=on_click></canvas>
        </section>
    }
}

pub(super) fn draw(
    canvas: &HtmlCanvasElement,
    g: &Generation,
    layout: Layout,
    metric: HeatMetric,
    selected: Option<usize>,
    iteration: usize,
) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let root = backend.into_drawing_area();
    let _ = root.fill(&WHITE);
    let px = |v: f64| v.round() as i32;
    let label = ("sans-serif", 11).into_font();
    for column in (0..layout.columns).step_by(layout.columns.div_ceil(16).max(1)) {
        let (x0, ..) = layout.cell(0, column);
        let _ = root.draw(&Text::new(
            format!("{}", column + 1),
            (px(x0), 4),
            label.clone(),
        ));
    }
    let missing = RGBColor(235, 235, 235);
    for (row, values) in values(g, metric).iter().enumerate() {
        let (_, y0, _, _) = layout.cell(row, 0);
        let text: String = g.tokens.get(row).map_or(String::new(), |t| {
            format!("{:?}", g.text(t.id)).chars().take(12).collect()
        });
        let _ = root.draw(&Text::new(text, (4, px(y0) + 1), label.clone()));
        for column in 0..layout.columns {
            let (x0, y0, x1, y1) = layout.cell(row, column);
            let color = match values.get(column) {
                Some(Some(v)) => heat(1.0 - v),
                Some(None) => missing,
                None => WHITE,
            };
            let _ = root.draw(&Rectangle::new(
                [(px(x0), px(y0)), (px(x1), px(y1))],
                color.filled(),
            ));
        }
    }
    if let Some(row) = selected.filter(|&r| r < layout.rows) {
        let (x0, y0, _, _) = layout.cell(row, 0);
        let (_, _, x1, y1) = layout.cell(row, layout.columns.saturating_sub(1));
        let _ = root.draw(&Rectangle::new(
            [(px(x0), px(y0)), (px(x1), px(y1))],
            BLACK.stroke_width(1),
        ));
        if iteration >= 1 && iteration <= layout.columns {
            let (x0, y0, x1, y1) = layout.cell(row, iteration - 1);
            let _ = root.draw(&Rectangle::new(
                [(px(x0), px(y0)), (px(x1), px(y1))],
                RGBColor(220, 38, 38).stroke_width(2),
            ));
        }
    }
    let _ = root.present();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_finds_the_cell_it_was_drawn_in() {
        let layout = Layout {
            rows: 5,
            columns: 16,
        };
        for row in 0..5 {
            for column in 0..16 {
                let (x0, y0, x1, y1) = layout.cell(row, column);
                assert_eq!(
                    layout.hit((x0 + x1) / 2.0, (y0 + y1) / 2.0),
                    Some((row, column + 1))
                );
            }
        }
        assert_eq!(layout.hit(LEFT - 1.0, TOP + 1.0), None);
        assert_eq!(layout.hit(LEFT + 1.0, layout.height() + 5.0), None);
    }
}
