//! The selected token's latent trajectory in a pair of principal components, drawn up to the
//! current iteration, with the other tokens' paths faintly behind it. Play, pause and scrub.

use std::time::Duration;

use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use crate::export::ExportPng;
use crate::generation::Generation;
use crate::runner::timed_draw;
use crate::state::Page;

/// Components shown, as the paper pairs them.
pub const PAIR_NAMES: [&str; 3] = ["1-2", "3-4", "5-6"];

#[component]
pub fn Trajectory() -> impl IntoView {
    let page = expect_context::<Page>();
    let canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let (selected, iteration, pair) =
            (page.selected.get(), page.iteration.get(), page.pair.get());
        let Some(element) = canvas.get() else { return };
        page.generation
            .with(|g| timed_draw(|| draw(&element, g, selected, iteration, pair)));
    });
    // Playing advances one iteration per tick and wraps around.
    Effect::new(move |_| {
        if !page.playing.get() {
            return;
        }
        let handle = set_interval_with_handle(
            move || {
                let last = page.selected_iterations();
                page.iteration
                    .update(|i| *i = if *i >= last { 1 } else { *i + 1 });
            },
            Duration::from_millis(160),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <section class="panel">
            <h2>"Trajectory: PCA of ln_f(s_i)"</h2>
            <canvas node_ref=canvas data-testid="trajectory" width="480" height="360"></canvas>
            <div class="row">
                <button data-testid="play" on:click=move |_| page.playing.update(|p| *p = !*p)>
                    {move || if page.playing.get() { "pause" } else { "play" }}
                </button>
                <input
                    type="range"
                    data-testid="scrub"
                    min="1"
                    prop:max=move || page.selected_iterations().max(1)
                    prop:value=move || page.iteration.get()
                    on:input=move |ev| {
                        page.playing.set(false);
                        if let Ok(i) = event_target_value(&ev).parse() {
                            page.iteration.set(i);
                        }
                    }
                />
                <span data-testid="iteration">
                    {move || format!("iteration {} of {}", page.iteration.get(), page.selected_iterations())}
                </span>
                <label>
                    "components "
                    <select
                        data-testid="components"
                        on:change=move |ev| {
                            if let Ok(p) = event_target_value(&ev).parse() {
                                page.pair.set(p);
                            }
                        }
                    >
                        {PAIR_NAMES
                            .iter()
                            .enumerate()
                            .map(|(i, name)| view! { <option value=i selected=move || page.pair.get() == i>{*name}</option> })
                            .collect_view()}
                    </select>
                </label>
                <ExportPng canvas=canvas name="trajectory.png" testid="export-trajectory" />
            </div>
        </section>
    }
}

pub(super) fn draw(
    canvas: &HtmlCanvasElement,
    g: &Generation,
    selected: Option<usize>,
    iteration: usize,
    pair: usize,
) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let root = backend.into_drawing_area();
    let _ = root.fill(&WHITE);
    let Some(projection) = &g.projection else {
        let _ = root.draw(&Text::new(
            "Generate to see trajectories",
            (150, 170),
            ("sans-serif", 15),
        ));
        let _ = root.present();
        return;
    };
    if !projection.pairs.get(pair).copied().unwrap_or(false) {
        let _ = root.draw(&Text::new(
            format!(
                "Components {}-{} are not in this link; they appear once the model has re-run",
                2 * pair + 1,
                2 * pair + 2
            ),
            (20, 170),
            ("sans-serif", 13),
        ));
        let _ = root.present();
        return;
    }
    let (cx, cy) = (2 * pair, 2 * pair + 1);
    let points = projection.paths.iter().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in points {
        (x0, x1, y0, y1) = (x0.min(p[cx]), x1.max(p[cx]), y0.min(p[cy]), y1.max(p[cy]));
    }
    let pad = |lo: f32, hi: f32| {
        let m = ((hi - lo) * 0.08).max(1e-3);
        (lo - m)..(hi + m)
    };
    let Ok(mut chart) = ChartBuilder::on(&root)
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(40)
        .build_cartesian_2d(pad(x0, x1), pad(y0, y1))
    else {
        return;
    };
    let _ = chart
        .configure_mesh()
        .x_desc(format!("PC{}", cx + 1))
        .y_desc(format!("PC{}", cy + 1))
        .light_line_style(RGBColor(240, 240, 240))
        .draw();
    let faint = RGBAColor(100, 116, 139, 0.45);
    for (t, path) in projection.paths.iter().enumerate() {
        if Some(t) != selected {
            let _ = chart.draw_series(LineSeries::new(path.iter().map(|p| (p[cx], p[cy])), faint));
        }
    }
    if let Some(path) = selected.and_then(|t| projection.paths.get(t)) {
        let shown = &path[..iteration.clamp(1, path.len().max(1)).min(path.len())];
        let line = RGBColor(37, 99, 235);
        let _ = chart.draw_series(LineSeries::new(
            shown.iter().map(|p| (p[cx], p[cy])),
            line.stroke_width(2),
        ));
        let _ = chart.draw_series(
            shown
                .iter()
                .map(|p| Circle::new((p[cx], p[cy]), 2, line.filled())),
        );
        if let Some(first) = path.first() {
            let _ = chart.draw_series([Circle::new(
                (first[cx], first[cy]),
                5,
                BLACK.stroke_width(1),
            )]);
        }
        if let Some(now) = shown.last() {
            let _ = chart.draw_series([Circle::new(
                (now[cx], now[cy]),
                6,
                RGBColor(220, 38, 38).filled(),
            )]);
        }
    }
    let _ = root.present();
}
