//! The thinking controls: how long the model thinks, when it may stop early, and how it starts
//! and samples. Changing any of them re-runs the generation (see `app`).

use leptos::prelude::*;

use crate::state::Page;

/// Exit criteria the page offers, by their engine names.
const CRITERIA: [(&str, &str); 6] = [
    ("none", "none: always the full count"),
    ("kl", "KL of the logit lens"),
    ("latent-diff", "relative latent change"),
    ("entropy-diff", "entropy change"),
    ("cosine", "1 − cosine of states"),
    ("argmax", "argmax stable for n"),
];

#[component]
pub fn ThinkingControls() -> impl IntoView {
    let page = expect_context::<Page>();
    let c = page.controls;
    view! {
        <section class="panel controls">
            <h2>"Thinking"</h2>
            <label>
                {move || format!("iterations (max per token): {}", c.iterations.get())}
                <input
                    type="range"
                    data-testid="iterations"
                    min="1"
                    max="64"
                    prop:value=move || c.iterations.get()
                    on:input=move |ev| {
                        if let Some(v) = number(&ev) {
                            c.iterations.set(v as usize);
                        }
                    }
                />
            </label>
            <label>
                "exit criterion "
                <select data-testid="exit-criterion" on:change=move |ev| c.exit.set(event_target_value(&ev))>
                    {CRITERIA
                        .iter()
                        .map(|(name, label)| {
                            view! { <option value=*name selected=move || c.exit.get() == *name>{*label}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "threshold "
                <input
                    data-testid="exit-threshold"
                    size="8"
                    prop:value=move || c.threshold.get()
                    on:change=move |ev| c.threshold.set(event_target_value(&ev))
                />
            </label>
            <FractionSlider label="init scale" testid="init-scale" max=3.0 value=c.init_scale />
            <label>
                "seed "
                <input
                    type="number"
                    data-testid="seed"
                    min="0"
                    prop:value=move || c.seed.get()
                    on:change=move |ev| {
                        if let Some(v) = number(&ev).filter(|v| *v >= 0.0) {
                            c.seed.set(v as u64);
                        }
                    }
                />
            </label>
            <FractionSlider label="temperature" testid="temperature" max=2.0 value=c.temperature />
            <label>
                <input
                    type="checkbox"
                    data-testid="continuous-cot"
                    prop:checked=move || c.warm_start.get()
                    on:change=move |ev| c.warm_start.set(event_target_checked(&ev))
                />
                " continuous chain of thought (start from the previous token's state)"
            </label>
            <CountInput
                label="tokens to generate"
                testid="max-tokens"
                min=1
                max=256
                value=c.max_tokens
            />
            <CountInput
                label="KV slots shared across iterations (0: one per iteration)"
                testid="kv-share"
                min=0
                max=64
                value=c.kv_share
            />
            <TokenOverride />
        </section>
    }
}

/// A slider from 0 to `max` in steps of 0.05, labelled with its value.
#[component]
fn FractionSlider(
    label: &'static str,
    testid: &'static str,
    max: f32,
    value: RwSignal<f32>,
) -> impl IntoView {
    view! {
        <label>
            {move || format!("{label}: {:.2}", value.get())}
            <input
                type="range"
                data-testid=testid
                min="0"
                max=max
                step="0.05"
                prop:value=move || value.get()
                on:input=move |ev| {
                    if let Some(v) = number(&ev) {
                        value.set(v as f32);
                    }
                }
            />
        </label>
    }
}

/// A whole number from `min` to `max`: a typed value below `min` is ignored, one above `max`
/// is taken as `max`.
#[component]
fn CountInput(
    label: &'static str,
    testid: &'static str,
    min: usize,
    max: usize,
    value: RwSignal<usize>,
) -> impl IntoView {
    view! {
        <label>
            {label}
            " "
            <input
                type="number"
                data-testid=testid
                min=min
                max=max
                prop:value=move || value.get()
                on:change=move |ev| {
                    if let Some(v) = number(&ev).filter(|v| *v >= min as f64) {
                        value.set((v as usize).min(max));
                    }
                }
            />
        </label>
    }
}

/// Fixes the iteration count of the selected token's position, or clears that.
#[component]
fn TokenOverride() -> impl IntoView {
    let page = expect_context::<Page>();
    let overrides = page.controls.overrides;
    let position = move || {
        let selected = page.selected.get()?;
        page.generation
            .with(|g| g.tokens.get(selected).map(|t| t.position))
    };
    let current = move || position().and_then(|p| overrides.with(|o| o.get(&p).copied()));
    view! {
        <div class="override">
            {move || match position() {
                None => "Select a token to fix how long it thinks.".to_string(),
                Some(p) => format!("position {p}: "),
            }}
            <input
                type="number"
                data-testid="override"
                min="1"
                max="64"
                placeholder="iterations"
                prop:disabled=move || position().is_none()
                prop:value=move || current().map(|n| n.to_string()).unwrap_or_default()
                on:change=move |ev| {
                    let Some(p) = position() else { return };
                    let value = event_target_value(&ev);
                    overrides.update(|o| match value.trim().parse::<usize>() {
                        Ok(n) if (1..=1024).contains(&n) => {
                            o.insert(p, n);
                        }
                        _ => {
                            o.remove(&p);
                        }
                    });
                }
            />
            <span>{move || {
                let n = overrides.with(|o| o.len());
                if n == 0 { String::new() } else { format!(" ({n} fixed)") }
            }}</span>
        </div>
    }
}

/// The number an input holds (typed or slid to), if it is one.
fn number(ev: &leptos::ev::Event) -> Option<f64> {
    event_target_value(ev).trim().parse().ok()
}
