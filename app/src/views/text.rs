//! The prompt and the generated tokens, each colored by how many iterations it used.

use leptos::prelude::*;
use loopscope_engine::trace::Exit;

use super::colors::{dark_text_on, heat};
use super::multiples::mark;
use crate::state::Page;

#[component]
pub fn GeneratedText() -> impl IntoView {
    let page = expect_context::<Page>();
    let tokens = move || {
        let max = page.controls.iterations.get();
        page.generation.with(|g| {
            g.tokens
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let text = g.text(p.id);
                    let color = heat(p.iterations as f64 / max.max(p.iterations).max(1) as f64);
                    let (r, gr, b) = (color.0, color.1, color.2);
                    let ink = if dark_text_on(color) { "#111" } else { "#fff" };
                    let exit = match p.exit {
                        Exit::Converged => "converged",
                        Exit::MaxSteps => "max-steps",
                        Exit::Fixed => "fixed",
                    };
                    let mut title = format!(
                        "{} iterations ({exit}); position {}",
                        p.iterations, p.position
                    );
                    let shape = p.label.as_ref().map(|l| l.shape);
                    if let Some(label) = &p.label {
                        title = format!("{title}\n{}", label.why);
                    }
                    let dimmed = move || page.shape_filter.get().is_some_and(|f| shape != Some(f));
                    let badge = shape.map(|shape| {
                        view! {
                            <sup class="shape" data-testid="shape" data-shape=shape.name()>
                                {mark(shape)}
                            </sup>
                        }
                    });
                    view! {
                        <span
                            class="token"
                            class:selected=move || page.selected.get() == Some(i)
                            class:converged=p.exit == Exit::Converged
                            class:dimmed=dimmed
                            data-testid="token"
                            data-iterations=p.iterations
                            data-exit=exit
                            title=title
                            style=format!("background: rgb({r},{gr},{b}); color: {ink}")
                            on:click=move |_| page.selected.set(Some(i))
                        >
                            {text.replace('\n', "⏎")}
                            {badge}
                        </span>
                    }
                })
                .collect_view()
        })
    };
    view! {
        <div class="text" data-testid="text">
            <span class="prompt-text">{move || page.generation.with(|g| g.prompt.clone())}</span>
            {tokens}
        </div>
        <p class="legend">
            "Color: iterations used (dark few, yellow many). Underlined: the exit criterion stopped it. Marks: • converged, ↻ orbit, → slider, ~ unsettled."
        </p>
    }
}
