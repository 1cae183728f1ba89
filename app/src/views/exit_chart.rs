//! The selected token's exit-criterion value per iteration against the threshold.

use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use crate::runner::timed_draw;
use crate::state::Page;

#[component]
pub fn ExitChart() -> impl IntoView {
    let page = expect_context::<Page>();
    let canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let selected = page.selected.get();
        let iteration = page.iteration.get();
        let criterion = page.generation.with(|g| g.settings.exit);
        let threshold = criterion.threshold();
        let values: Vec<Option<f32>> = page.generation.with(|g| {
            selected
                .and_then(|i| g.tokens.get(i))
                .map(|t| t.exit_values.clone())
                .unwrap_or_default()
        });
        let Some(element) = canvas.get() else { return };
        timed_draw(|| {
            draw(
                &element,
                &values,
                threshold,
                iteration,
                &criterion.to_string(),
            )
        });
    });
    view! {
        <section class="panel">
            <h2>"Exit criterion per iteration"</h2>
            <canvas node_ref=canvas data-testid="exit-chart" width="480" height="200"></canvas>
        </section>
    }
}

pub(super) fn draw(
    canvas: &HtmlCanvasElement,
    values: &[Option<f32>],
    threshold: Option<f32>,
    iteration: usize,
    name: &str,
) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let root = backend.into_drawing_area();
    let _ = root.fill(&WHITE);
    // Values span orders of magnitude: plot log10.
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.filter(|v| *v > 0.0)
                .map(|v| ((i + 1) as f64, (v as f64).log10()))
        })
        .collect();
    if points.is_empty() {
        let message = if values.is_empty() {
            "Select a token"
        } else {
            "No exit values (criterion: none or fixed count)"
        };
        let _ = root.draw(&Text::new(message, (20, 90), ("sans-serif", 14)));
        let _ = root.present();
        return;
    }
    let log_threshold = threshold.filter(|t| *t > 0.0).map(|t| (t as f64).log10());
    let ys = points.iter().map(|p| p.1).chain(log_threshold);
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let Ok(mut chart) = ChartBuilder::on(&root)
        .margin(8)
        .x_label_area_size(26)
        .y_label_area_size(44)
        .build_cartesian_2d(0.5..values.len() as f64 + 0.5, (lo - 0.3)..(hi + 0.3))
    else {
        return;
    };
    let _ = chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc(format!("log10 {name}"))
        .light_line_style(RGBColor(240, 240, 240))
        .draw();
    let blue = RGBColor(37, 99, 235);
    let _ = chart.draw_series(LineSeries::new(
        points.iter().copied(),
        blue.stroke_width(2),
    ));
    let _ = chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, blue.filled())));
    if let Some(t) = log_threshold {
        let red = RGBColor(220, 38, 38);
        let _ = chart.draw_series(LineSeries::new(
            [(0.5, t), (values.len() as f64 + 0.5, t)],
            red,
        ));
    }
    if let Some(&(x, y)) = points.iter().find(|p| p.0 as usize == iteration) {
        let _ = chart.draw_series([Circle::new((x, y), 5, BLACK.stroke_width(1))]);
    }
    let _ = root.present();
}
