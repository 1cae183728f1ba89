//! The page: loads a model, generates, and keeps the views in step with the controls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use loopscope_engine::trace::PositionTrace;
use loopscope_engine::EngineError;
use wasm_bindgen::JsCast;
use web_sys::HtmlInputElement;

use crate::backend::{webgpu_adapter, BackendKind};
use crate::controls::ThinkingControls;
use crate::examples::EXAMPLES;
use crate::export::download_json;
use crate::generation::Generation;
use crate::loader::{content_hash, fetch_folder, forget, read_picked, Progress};
use crate::recovery;
use crate::runner::{engine, is_current, new_run, now, set_engine, stop_runs, Engine};
use crate::share::{self, ShareBar};
use crate::snapshot::{ModelRef, Snapshot};
use crate::state::{Page, Status};
use crate::views::{
    self, exit_chart::ExitChart, heatmap::Heatmap, lens::Lens, multiples::Multiples,
    text::GeneratedText, trajectory::Trajectory,
};

/// The model the page opens with (copied into the site by Trunk).
pub const DEFAULT_MODEL: &str = "models/loopscope-tiny-q8";

/// The source a model picked from local files is known by.
const LOCAL_FILES: &str = "local files";

/// Quiet time after the last control change before the generation re-runs.
const DEBOUNCE: Duration = Duration::from_millis(150);

fn log(message: &str) {
    web_sys::console::log_1(&message.into());
}

/// Where a model comes from.
enum ModelSource {
    Url(String),
    Picked(HashMap<String, Vec<u8>>),
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Loads a model and makes it the page's; on failure the previous model stays in use.
async fn load_model(page: Page, source: ModelSource, name: String) {
    stop_runs();
    let started = now();
    page.status.set(Status::Loading(name.clone()));
    page.progress.set(None);
    let (files, from_cache) = match &source {
        ModelSource::Url(url) => {
            let name = name.clone();
            let on_progress = move |p: Progress| {
                page.progress.set(Some(p));
                let percent = (100 * p.loaded).checked_div(p.total).unwrap_or(0);
                page.status.set(Status::Loading(format!(
                    "{name}: {percent}% ({} of {})",
                    megabytes(p.loaded),
                    megabytes(p.total)
                )));
            };
            match fetch_folder(url, on_progress).await {
                Ok(f) => (f.files, f.from_cache),
                Err(e) => return fail(page, format!("could not load the model: {e}")),
            }
        }
        ModelSource::Picked(files) => (files.clone(), false),
    };
    let bytes: u64 = files.values().map(|f| f.len() as u64).sum();
    let names: Vec<String> = files.keys().cloned().collect();
    let model = ModelRef {
        source: match &source {
            ModelSource::Url(url) => url.clone(),
            ModelSource::Picked(_) => LOCAL_FILES.into(),
        },
        hash: content_hash(&files),
    };
    let kind = match webgpu_adapter().await {
        Ok(()) => BackendKind::WebGpu,
        Err(why) => {
            page.backend_note.set(Some(format!(
                "{why}: running on the CPU backend, which is slower."
            )));
            BackendKind::Cpu
        }
    };
    // On the CPU the model warms up within the load. On WebGPU a warm-up would also compile
    // every kernel, which for a large model takes longer than the load itself.
    let loaded = match Engine::load(files, kind).await {
        Ok(engine) if kind == BackendKind::Cpu => engine.warm_up().await.map(|generation| {
            views::warm_up(&generation);
            engine
        }),
        other => other,
    };
    match loaded {
        Ok(engine) => {
            let mean = engine.config().mean_recurrence;
            set_engine(Some(Rc::new(engine)));
            page.backend.set(Some(kind));
            page.model_name.set(name.clone());
            let ms = now() - started;
            page.timing.update(|t| t.load_ms = Some(ms));
            let cached = if from_cache {
                ", from the browser cache"
            } else {
                ""
            };
            log(&format!(
                "loopscope: loaded {name} ({}{cached}) on {} in {ms:.0} ms",
                megabytes(bytes),
                kind.name()
            ));
            page.status.set(Status::Ready(format!(
                "{name}, {}{cached}; mean recurrence {mean}",
                megabytes(bytes)
            )));
            page.model.set(Some(model.clone()));
            recovery::recovered();
            if let Some((link, on)) = share::link_for(page, &model, kind) {
                generate(page, Run::Link(Box::new(link), on));
            }
        }
        Err(e) => {
            if let ModelSource::Url(url) = &source {
                forget(url, &names).await;
            }
            fail(page, format!("not a model folder: {e}"));
        }
    }
}

fn fail(page: Page, message: String) {
    log(&format!("loopscope: {message}"));
    page.status.set(Status::Error(message));
}

/// Why a generation runs.
enum Run {
    /// The Generate button.
    Button,
    /// A control changed at this time (for the control-to-view timing).
    Control(f64),
    /// An opened link is re-run with its own settings, to check that it reproduces (on the
    /// backend named in words).
    Link(Box<Snapshot>, String),
}

/// Generates with the current prompt and controls, or with a link's.
fn generate(page: Page, run: Run) {
    let Some(engine) = engine() else {
        return fail(page, "no model is loaded yet".into());
    };
    let asked = match &run {
        Run::Link(link, _) => link
            .settings
            .thinking()
            .map(|s| (link.prompt.clone(), s, link.settings.max_tokens as usize)),
        _ => page.controls.settings_untracked().map(|s| {
            let max_tokens = page.controls.max_tokens.get_untracked();
            (page.prompt.get_untracked(), s, max_tokens)
        }),
    };
    let (prompt, settings, max_tokens) = match asked {
        Ok(asked) => asked,
        Err(e) => return fail(page, e),
    };
    if prompt.trim().is_empty() {
        return fail(page, EngineError::EmptyPrompt.to_string());
    }
    let ticket = new_run();
    page.status.set(Status::Generating);
    page.playing.set(false);
    // The previous generation stays on screen until the new one has a token, so a run that
    // fails (a prompt too long, say) loses nothing.
    let fresh = Generation::new(
        page.model.get_untracked(),
        prompt.clone(),
        settings.clone(),
        max_tokens,
    );
    spawn_local(async move {
        let started = now();
        let first = Cell::new(None);
        // Tokens wait here until the runner gives the browser a turn: one update of the
        // generation, and so one redraw of the views, for all of them.
        let received: Rc<RefCell<Vec<PositionTrace>>> = Rc::default();
        let show: Rc<dyn Fn()> = {
            let (received, engine) = (received.clone(), engine.clone());
            let fresh = RefCell::new(Some(fresh));
            Rc::new(move || {
                let tokens = std::mem::take(&mut *received.borrow_mut());
                if tokens.is_empty() || !is_current(ticket) {
                    return;
                }
                if let Some(fresh) = fresh.borrow_mut().take() {
                    page.generation.set(fresh);
                }
                let tokenizer = engine.tokenizer().expect("loaded engines have a tokenizer");
                page.generation.update(|g| {
                    for position in tokens {
                        g.push(position, |id| tokenizer.token_text(id));
                    }
                });
            })
        };
        let result = engine
            .generate(
                &prompt,
                settings,
                max_tokens,
                |position| {
                    if !is_current(ticket) {
                        return false;
                    }
                    if first.get().is_none() {
                        first.set(Some(now() - started));
                    }
                    received.borrow_mut().push(position.clone());
                    true
                },
                show.clone(),
            )
            .await;
        if !is_current(ticket) {
            return;
        }
        show();
        page.generation.update(Generation::finish);
        let elapsed = now() - started;
        let count = page.generation.with_untracked(|g| g.tokens.len());
        let last = count.saturating_sub(1);
        page.selected
            .update(|s| *s = Some(s.map_or(0, |s| s.min(last))));
        let steps = page.selected_iterations_untracked();
        page.iteration.update(|i| *i = (*i).clamp(1, steps.max(1)));
        let outcome = match result {
            Ok(finish) => {
                page.status.set(Status::Ready(format!(
                    "{count} tokens ({})",
                    finish.reason()
                )));
                Ok(())
            }
            Err(e) => {
                fail(page, e.to_string());
                Err(e.to_string())
            }
        };
        if let Run::Link(link, on) = &run {
            share::judge(page, link, on.clone(), outcome);
        }
        let control_to_view = match run {
            Run::Control(changed_at) => Some(now() - changed_at),
            _ => None,
        };
        page.timing.update(|t| {
            t.first_token_ms = first.get();
            // A run that failed before its first token leaves the previous generation on
            // screen: its tokens are not this run's.
            t.tokens_per_s =
                (first.get().is_some() && elapsed > 0.0).then(|| count as f64 * 1000.0 / elapsed);
            if control_to_view.is_some() {
                t.control_to_view_ms = control_to_view;
            }
        });
        log(&format!(
            "loopscope: {}",
            page.timing.get_untracked().text()
        ));
    });
}

/// Loads the model at `source` and names it by its folder.
fn load_from(page: Page, source: String) {
    let name = source
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    spawn_local(load_model(page, ModelSource::Url(source), name));
}

#[component]
pub fn App() -> impl IntoView {
    let page = Page::new();
    provide_context(page);
    if let Some(prompt) = recovery::kept_prompt() {
        page.prompt.set(prompt);
    }
    // A shared link is drawn before anything loads, then names the model to load.
    let source = share::open_location(page).unwrap_or_else(|| DEFAULT_MODEL.into());
    load_from(page, source);
    share::follow_navigation(page, |page, source| {
        let same = page.model.get_untracked().filter(|m| m.source == source);
        let kind = page.backend.get_untracked();
        match same
            .zip(kind)
            .and_then(|(m, kind)| share::link_for(page, &m, kind))
        {
            Some((link, on)) => generate(page, Run::Link(Box::new(link), on)),
            None => load_from(page, source),
        }
    });

    // Any control change re-runs the last generation, once the controls have been quiet.
    let debounce = Rc::new(Cell::new(0u64));
    Effect::new(move |previous: Option<()>| {
        let _ = page.controls.settings();
        page.controls.max_tokens.track();
        if previous.is_none() {
            return;
        }
        let changed_at = now();
        let mine = debounce.get() + 1;
        debounce.set(mine);
        let debounce = debounce.clone();
        set_timeout(
            move || {
                // Only when the controls differ from what is on screen: a link that sets them
                // to its own settings must not trigger a plain re-run.
                let asked = page.controls.settings_untracked().ok();
                let max_tokens = page.controls.max_tokens.get_untracked();
                let stale = page.generation.with_untracked(|g| {
                    !g.prompt.is_empty()
                        && (asked.as_ref() != Some(&g.settings) || max_tokens != g.max_tokens)
                });
                if debounce.get() == mine && stale && engine().is_some() {
                    generate(page, Run::Control(changed_at));
                }
            },
            DEBOUNCE,
        );
    });

    view! {
        <header>
            <h1>"loopscope"</h1>
            <p class="tagline">"Watch a recurrent-depth language model think: every token's latent state, iteration by iteration."</p>
        </header>
        <StatusBar />
        <ShareBar />
        <ModelPicker />
        <main>
            <div class="column">
                <PromptBox />
                <GeneratedText />
                <ThinkingControls />
            </div>
            <div class="column">
                <Trajectory />
                <ExitChart />
            </div>
            <div class="column">
                <Lens />
                <Heatmap />
            </div>
        </main>
        <Multiples />
    }
}

#[component]
fn StatusBar() -> impl IntoView {
    let page = expect_context::<Page>();
    let status_class = move || match page.status.get() {
        Status::Error(_) => "status error",
        _ => "status",
    };
    view! {
        <div class="status-bar">
            <span class=status_class data-testid="status">{move || page.status.get().text()}</span>
            {move || page.progress.get().filter(|_| matches!(page.status.get(), Status::Loading(_))).map(|p| {
                view! { <progress data-testid="progress" max=p.total.max(1) value=p.loaded></progress> }
            })}
            <span class="backend">"backend: " <b data-testid="backend">{move || page.backend.get().map_or("–", |b| b.name())}</b></span>
            {move || page.backend_note.get().map(|note| view! { <span class="note" data-testid="backend-note">{note}</span> })}
            <span class="timing" data-testid="timing">{move || page.timing.get().text()}</span>
        </div>
    }
}

#[component]
fn ModelPicker() -> impl IntoView {
    let page = expect_context::<Page>();
    let url = RwSignal::new(String::new());
    let load_url = move || {
        let target = url.get_untracked().trim().to_string();
        if target.is_empty() {
            return fail(page, "enter the URL of a model folder".into());
        }
        load_from(page, target);
    };
    let on_files = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(list) = input.files() else { return };
        spawn_local(async move {
            match read_picked(&list).await {
                Ok(files) => load_model(page, ModelSource::Picked(files), LOCAL_FILES.into()).await,
                Err(e) => fail(page, e.to_string()),
            }
        });
    };
    view! {
        <details class="model-picker" data-testid="model-picker">
            <summary>{move || format!("model: {}", page.model_name.get())}</summary>
            <div class="row">
                <input
                    data-testid="model-url"
                    placeholder="URL of a model folder (config.json, model.safetensors, tokenizer.json)"
                    size="60"
                    prop:value=move || url.get()
                    on:input=move |ev| url.set(event_target_value(&ev))
                    on:keydown=move |ev| if ev.key() == "Enter" { load_url() }
                />
                <button data-testid="model-load" on:click=move |_| load_url()>"Load"</button>
                <button on:click=move |_| load_from(page, DEFAULT_MODEL.into())>
                    "Default model"
                </button>
            </div>
            <label>
                "or local files: "
                <input type="file" multiple data-testid="model-files" on:change=on_files />
            </label>
        </details>
    }
}

#[component]
fn PromptBox() -> impl IntoView {
    let page = expect_context::<Page>();
    let busy = move || matches!(page.status.get(), Status::Generating | Status::Loading(_));
    view! {
        <section class="panel">
            <textarea
                data-testid="prompt"
                rows="3"
                placeholder="Type a prompt, or pick an example"
                prop:value=move || page.prompt.get()
                on:input=move |ev| page.prompt.set(event_target_value(&ev))
            ></textarea>
            <div class="row">
                {EXAMPLES
                    .iter()
                    .map(|example| {
                        let prompt = example.prompt;
                        // Tells the visitor what to look for before they change the iterations.
                        let hint = example.answer.map(|answer| {
                            format!("Right answer:{answer}. Wrong after one iteration, right at the opening settings.")
                        });
                        view! {
                            <button class="example" data-testid="example" title=hint on:click=move |_| page.prompt.set(prompt.to_string())>
                                {example.label}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <div class="row">
                <button data-testid="generate" class="primary" prop:disabled=busy on:click=move |_| generate(page, Run::Button)>
                    "Generate"
                </button>
                <button
                    data-testid="stop"
                    on:click=move |_| {
                        stop_runs();
                        page.status.set(Status::Ready("stopped".into()));
                    }
                >
                    "Stop"
                </button>
                <button
                    data-testid="export-json"
                    on:click=move |_| {
                        let text = page
                            .generation
                            .with_untracked(serde_json::to_string)
                            .unwrap_or_default();
                        download_json(&text, "loopscope-trace.json");
                    }
                >
                    "JSON"
                </button>
            </div>
        </section>
    }
}
