//! The page's views of a generation, each drawing from [`crate::state::Page`].

pub mod colors;
pub mod exit_chart;
pub mod heatmap;
pub mod lens;
pub mod multiples;
pub mod text;
pub mod trajectory;

use wasm_bindgen::JsCast;

use crate::generation::Generation;
use crate::state::HeatMetric;

/// Draws every canvas view of `g` once, on a canvas that is never shown: the browser compiles
/// each wasm function on its first call, which made the first run's drawings take up to 77 ms
/// (15 ms at most afterwards) and its frames too long.
pub fn warm_up(g: &Generation) {
    let Some(canvas) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into::<web_sys::HtmlCanvasElement>().ok())
    else {
        return;
    };
    let last = g.tokens.len().checked_sub(1);
    let layout = heatmap::Layout::of(g);
    for metric in [HeatMetric::Distance, HeatMetric::ExitValue] {
        heatmap::draw(&canvas, g, layout, metric, last, 1);
    }
    trajectory::draw(&canvas, g, last, 1, 0);
    let all: Vec<usize> = (0..g.tokens.len()).collect();
    multiples::draw(&canvas, g, &all, 0, last);
    if let Some(token) = g.tokens.last() {
        let exit = g.settings.exit;
        exit_chart::draw(
            &canvas,
            &token.exit_values,
            exit.threshold(),
            1,
            &exit.to_string(),
        );
    }
}
