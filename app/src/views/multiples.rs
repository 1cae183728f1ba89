//! Small multiples: every token's trajectory in a frame of its own, centred on its own mean and
//! scaled to its own extent (as the paper's figures draw them), grouped by the shape it took.
//! A filter shows one shape only, here and in the text. Clicking a frame selects its token.

use leptos::html::Canvas;
use leptos::prelude::*;
use loopscope_engine::dynamics::{Shape, MIN_ITERATIONS};
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::{HtmlCanvasElement, MouseEvent};

use crate::generation::Generation;
use crate::runner::timed_draw;
use crate::state::Page;

const COLUMNS: u32 = 6;
/// A frame's side in canvas pixels, caption included.
const CELL: u32 = 100;
const CAPTION: u32 = 14;
const MARGIN: f64 = 6.0;

/// The badge shown after a token in the text.
pub fn mark(shape: Shape) -> &'static str {
    match shape {
        Shape::Converged => "•",
        Shape::Orbit => "↻",
        Shape::Slider => "→",
        Shape::Unsettled => "~",
    }
}

fn heading(shape: Shape) -> &'static str {
    match shape {
        Shape::Converged => "Converged to a point",
        Shape::Orbit => "Orbits",
        Shape::Slider => "Sliders",
        Shape::Unsettled => "Unsettled",
    }
}

/// Indices of the tokens that took `shape`, in text order.
fn members(g: &Generation, shape: Shape) -> Vec<usize> {
    g.tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.label.as_ref().is_some_and(|l| l.shape == shape))
        .map(|(i, _)| i)
        .collect()
}

/// `points` in pixels of a `size`-wide square: centred on their mean, the farthest point at the
/// edge (less a margin), y up.
pub fn fit_to_frame(points: &[(f32, f32)], size: f64) -> Vec<(f64, f64)> {
    let n = points.len().max(1) as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(x, y), p| {
        (x + p.0 as f64 / n, y + p.1 as f64 / n)
    });
    let reach = points
        .iter()
        .map(|p| (p.0 as f64 - mx).abs().max((p.1 as f64 - my).abs()))
        .fold(0.0, f64::max);
    let scale = if reach > 0.0 {
        (size / 2.0 - MARGIN) / reach
    } else {
        0.0
    };
    points
        .iter()
        .map(|p| {
            (
                size / 2.0 + (p.0 as f64 - mx) * scale,
                size / 2.0 - (p.1 as f64 - my) * scale,
            )
        })
        .collect()
}

#[component]
pub fn Multiples() -> impl IntoView {
    let page = expect_context::<Page>();
    let count = move |shape: Shape| page.generation.with(|g| g.count(shape));
    let labelled = move || Shape::ALL.into_iter().map(count).sum::<usize>();
    let options = move || {
        let all = labelled();
        let filter = page.shape_filter.get();
        std::iter::once(view! {
            <option value="all" selected=filter.is_none()>{format!("all shapes ({all})")}</option>
        })
        .chain(Shape::ALL.into_iter().map(|shape| {
            view! {
                <option value=shape.name() selected=filter == Some(shape)>
                    {format!("{} {} ({})", mark(shape), shape.name(), count(shape))}
                </option>
            }
        }))
        .collect_view()
    };
    let notice = move || {
        let (tokens, short) = page.generation.with(|g| {
            let short = g
                .tokens
                .iter()
                .filter(|t| t.label.is_some() && t.iterations < MIN_ITERATIONS)
                .count();
            (g.tokens.len(), short)
        });
        let filter = page.shape_filter.get();
        if tokens == 0 {
            Some("Generate to see every token's trajectory side by side.".to_string())
        } else if labelled() == 0 {
            Some("These tokens have no labels (the link predates them); they appear once the model has re-run.".into())
        } else if let Some(shape) = filter.filter(|&s| count(s) == 0) {
            Some(format!(
                "No token's trajectory is {} in this generation.",
                shape.name()
            ))
        } else if short > 0 {
            let tokens = if short == 1 { "token" } else { "tokens" };
            Some(format!(
                "{short} {tokens} ran fewer than {MIN_ITERATIONS} iterations, too few to tell a shape: set the exit criterion to none to let every token run its full count."
            ))
        } else {
            None
        }
    };
    view! {
        <section class="panel multiples" data-testid="multiples">
            <h2>"Shapes: every token's trajectory on its own scale"</h2>
            <div class="row">
                <label>
                    "show "
                    <select
                        data-testid="shape-filter"
                        on:change=move |ev| {
                            let name = event_target_value(&ev);
                            page.shape_filter.set(Shape::ALL.into_iter().find(|s| s.name() == name));
                        }
                    >
                        {options}
                    </select>
                </label>
            </div>
            {move || notice().map(|text| view! { <p class="legend" data-testid="multiples-notice">{text}</p> })}
            {Shape::ALL.into_iter().map(|shape| view! { <ShapeGroup shape=shape /> }).collect_view()}
        </section>
    }
}

/// One shape's frames, hidden when empty or filtered out.
#[component]
fn ShapeGroup(shape: Shape) -> impl IntoView {
    let page = expect_context::<Page>();
    let canvas = NodeRef::<Canvas>::new();
    let tokens = move || page.generation.with(|g| members(g, shape));
    let shown = move || page.shape_filter.get().is_none_or(|f| f == shape) && !tokens().is_empty();
    Effect::new(move |_| {
        let (pair, selected) = (page.pair.get(), page.selected.get());
        let tokens = tokens();
        let Some(element) = canvas.get() else { return };
        if !shown() {
            return;
        }
        element.set_height(CELL * (tokens.len() as u32).div_ceil(COLUMNS).max(1));
        page.generation
            .with(|g| timed_draw(|| draw(&element, g, &tokens, pair, selected)));
    });
    let on_click = move |ev: MouseEvent| {
        let Some(element) = canvas.get() else { return };
        let scale = element.width() as f64 / element.client_width().max(1) as f64;
        let (x, y) = (ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale);
        let index = (y as u32 / CELL) * COLUMNS + (x as u32 / CELL).min(COLUMNS - 1);
        if let Some(&token) = tokens().get(index as usize) {
            page.selected.set(Some(token));
            page.playing.set(false);
        }
    };
    view! {
        <div
            class="shape-group"
            data-testid="shape-group"
            data-shape=shape.name()
            data-count=move || tokens().len()
            style:display=move || if shown() { "block" } else { "none" }
        >
            <h3>{move || format!("{} {} ({})", mark(shape), heading(shape), tokens().len())}</h3>
            <canvas
                node_ref=canvas
                data-testid="multiples-canvas"
                width=CELL * COLUMNS
                height=CELL
                on:click=on_click
            ></canvas>
        </div>
    }
}

pub(super) fn draw(
    canvas: &HtmlCanvasElement,
    g: &Generation,
    tokens: &[usize],
    pair: usize,
    selected: Option<usize>,
) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let root = backend.into_drawing_area();
    let _ = root.fill(&WHITE);
    let caption = ("sans-serif", 11).into_font();
    let projection = g
        .projection
        .as_ref()
        .filter(|p| p.pairs.get(pair).copied().unwrap_or(false));
    let (cx, cy) = (2 * pair, 2 * pair + 1);
    let frame = (CELL - CAPTION) as f64;
    let line = RGBColor(37, 99, 235);
    for (slot, &t) in tokens.iter().enumerate() {
        let x0 = ((slot as u32 % COLUMNS) * CELL) as i32;
        let y0 = ((slot as u32 / COLUMNS) * CELL) as i32;
        let at = |(x, y): (f64, f64)| (x0 + x.round() as i32, y0 + y.round() as i32);
        let border = if Some(t) == selected {
            RGBColor(220, 38, 38).stroke_width(2)
        } else {
            RGBColor(226, 232, 240).stroke_width(1)
        };
        let _ = root.draw(&Rectangle::new(
            [
                (x0 + 1, y0 + 1),
                (x0 + CELL as i32 - 2, y0 + CELL as i32 - 2),
            ],
            border,
        ));
        let Some(thought) = g.tokens.get(t) else {
            continue;
        };
        let text: String = format!("{:?} {}", g.text(thought.id), thought.iterations)
            .chars()
            .take(16)
            .collect();
        let _ = root.draw(&Text::new(
            text,
            (x0 + 4, y0 + frame as i32),
            caption.clone(),
        ));
        let Some(path) = projection.and_then(|p| p.paths.get(t)) else {
            continue;
        };
        let points: Vec<(f32, f32)> = path.iter().map(|p| (p[cx], p[cy])).collect();
        let pixels: Vec<(i32, i32)> = fit_to_frame(&points, frame).into_iter().map(at).collect();
        let _ = root.draw(&PathElement::new(pixels.clone(), line.stroke_width(1)));
        if let (Some(&first), Some(&last)) = (pixels.first(), pixels.last()) {
            let _ = root.draw(&Circle::new(first, 3, BLACK.stroke_width(1)));
            let _ = root.draw(&Circle::new(last, 3, RGBColor(220, 38, 38).filled()));
        }
    }
    if projection.is_none() && g.projection.is_some() {
        let _ = root.draw(&Text::new(
            format!(
                "Components {}-{} are not in this link",
                2 * pair + 1,
                2 * pair + 2
            ),
            (8, 8),
            caption,
        ));
    }
    let _ = root.present();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_centres_the_path_and_fills_the_square() {
        // A path far from the origin and tiny: drawn the same as a large one at the centre.
        let small: Vec<(f32, f32)> = [(0.0, 0.0), (2.0, 0.0), (2.0, 1.0)]
            .iter()
            .map(|&(x, y)| (1000.0 + x / 256.0, -50.0 + y / 256.0))
            .collect();
        let large = [(-4.0, -1.0), (4.0, -1.0), (4.0, 3.0)];
        let a = fit_to_frame(&small, 86.0);
        let b = fit_to_frame(&large, 86.0);
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p.0 - q.0).abs() < 1e-3 && (p.1 - q.1).abs() < 1e-3,
                "{a:?} {b:?}"
            );
        }
        let reach = a
            .iter()
            .map(|p| (p.0 - 43.0).abs().max((p.1 - 43.0).abs()))
            .fold(0.0, f64::max);
        assert!((reach - (43.0 - MARGIN)).abs() < 1e-3);
        // y grows upwards: the highest point is nearest the top.
        assert!(a[2].1 < a[1].1);
    }

    #[test]
    fn a_path_that_never_moves_sits_in_the_middle() {
        assert_eq!(fit_to_frame(&[(3.0, 4.0); 5], 80.0), vec![(40.0, 40.0); 5]);
    }
}
