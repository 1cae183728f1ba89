//! The logit lens of the selected token: what the model would write if it stopped after each
//! iteration, with the iteration from which the final answer stays on top marked.

use leptos::prelude::*;

use crate::state::Page;

#[component]
pub fn Lens() -> impl IntoView {
    let page = expect_context::<Page>();
    let rows = move || {
        let selected = page.selected.get()?;
        let current = page.iteration.get();
        page.generation.with(|g| {
            let thought = g.tokens.get(selected)?;
            let settles = thought.answer_settles_at();
            Some(
                thought
                    .lens
                    .iter()
                    .enumerate()
                    .map(|(i, top)| {
                        let iteration = i + 1;
                        let cells = top
                            .iter()
                            .map(|t| {
                                let text = format!("{:?} {:.0}%", g.text(t.id), t.prob * 100.0);
                                view! { <td>{text}</td> }
                            })
                            .collect_view();
                        let mark = if settles == Some(iteration) {
                            "answer settles"
                        } else {
                            ""
                        };
                        view! {
                            <tr
                                class:current=current == iteration
                                class:settles=settles == Some(iteration)
                                on:click=move |_| page.iteration.set(iteration)
                            >
                                <th>{iteration}</th>
                                {cells}
                                <td class="mark">{mark}</td>
                            </tr>
                        }
                    })
                    .collect_view(),
            )
        })
    };
    view! {
        <section class="panel">
            <h2>"Logit lens: top 5 per iteration"</h2>
            <div class="lens-scroll">
                <table data-testid="lens">
                    <thead>
                        <tr><th>"i"</th><th colspan="5">"coda(ln_f(s_i)): most likely next tokens"</th><th></th></tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
}
