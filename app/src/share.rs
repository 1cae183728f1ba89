//! Sharing by link. Share writes the generation and view on screen into the URL fragment (one
//! history entry per share, none per slider move); opening such a link draws it at once, and
//! once its model is loaded the page re-runs it and says whether the run reproduced the link.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::backend::BackendKind;
use crate::runner::stop_runs;
use crate::snapshot::{self, decode, payload, Fidelity, ModelRef, Snapshot, View, PREFIX};
use crate::state::{HeatMetric, Page};

/// The longest link Share makes while it can keep a trace.
pub const MAX_LINK: usize = 8192;

/// Whether a re-run of an opened link gave what the link shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Reproduced {
    /// Not decided yet, and why.
    Waiting(String),
    /// Re-run `on` a backend (in words): the same, or why not.
    Judged {
        on: String,
        verdict: Result<(), String>,
    },
}

fn current_view(page: Page) -> View {
    View {
        selected: page.selected.get_untracked().map(|s| s as u32),
        iteration: page.iteration.get_untracked() as u32,
        pair: page.pair.get_untracked() as u8,
        heat: match page.heat_metric.get_untracked() {
            HeatMetric::Distance => 0,
            HeatMetric::ExitValue => 1,
        },
    }
}

/// Shows a link's generation, settings and view, and keeps it until its model can re-run it.
fn restore(page: Page, snapshot: Snapshot) {
    stop_runs();
    let generation = snapshot.generation();
    page.controls
        .show(&generation.settings, generation.max_tokens);
    page.prompt.set(snapshot.prompt.clone());
    page.generation.set(generation);
    let view = snapshot.view;
    page.selected.set(view.selected.map(|s| s as usize));
    page.iteration.set(view.iteration.max(1) as usize);
    page.pair.set(view.pair as usize);
    page.heat_metric.set(if view.heat == 1 {
        HeatMetric::ExitValue
    } else {
        HeatMetric::Distance
    });
    page.playing.set(false);
    page.link_notice.set(None);
    let waiting = if snapshot.trace.is_none() {
        "this link holds only the settings (the trace was too long for a link): the view appears once the model has re-run"
    } else {
        "waiting for the model"
    };
    page.reproduced
        .set(Some(Reproduced::Waiting(waiting.into())));
    page.link.set(Some(snapshot));
}

/// Whether a link's model may be fetched without asking: a folder on this site.
fn loads_automatically(source: &str) -> bool {
    !source.is_empty()
        && source.len() <= 200
        && !source.starts_with('/')
        && !source.contains("..")
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

fn location() -> Option<web_sys::Location> {
    web_sys::window().map(|w| w.location())
}

/// Shows the link in the fragment `hash`, if there is one. Returns the model to load for it
/// when that model is on this site; otherwise says what the user can do.
fn open(page: Page, hash: &str) -> Option<String> {
    let text = payload(hash)?;
    match decode(text) {
        Ok(snapshot) => {
            let source = snapshot.model.source.clone();
            restore(page, snapshot);
            if loads_automatically(&source) {
                return Some(source);
            }
            page.link_notice.set(Some(format!(
                "this link was made with the model at “{source}”, which is not loaded automatically: load it with the model picker to re-run the link"
            )));
            None
        }
        Err(e) => {
            page.link_notice
                .set(Some(format!("{e}. Showing the normal page instead.")));
            None
        }
    }
}

/// At startup: shows the link the page was opened with; returns the model it needs.
pub fn open_location(page: Page) -> Option<String> {
    let hash = location()?.hash().ok()?;
    open(page, &hash)
}

/// Follows back/forward between shared states (and links pasted into the address bar):
/// `load` gets the model a link needs when it differs from the loaded one.
pub fn follow_navigation(page: Page, load: impl Fn(Page, String) + 'static) {
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let Some(hash) = location().and_then(|l| l.hash().ok()) else {
            return;
        };
        if let Some(source) = open(page, &hash) {
            load(page, source);
        }
    });
}

/// After a model has loaded: the link it should re-run, if one waits for this model.
/// Also returns the backend it runs on, in words.
pub fn link_for(page: Page, model: &ModelRef, kind: BackendKind) -> Option<(Snapshot, String)> {
    let waiting = page.link.with_untracked(|l| {
        l.as_ref()
            .is_some_and(|s| s.model.source == model.source || s.model.hash == model.hash)
    });
    if !waiting {
        return None;
    }
    // The status bar says why the CPU runs it, when it does.
    let on = match kind {
        BackendKind::Cpu => "on the CPU backend",
        BackendKind::WebGpu => "on WebGPU",
    };
    page.reproduced
        .set(Some(Reproduced::Waiting(format!("re-running {on}"))));
    page.link
        .try_update(Option::take)
        .flatten()
        .map(|link| (link, on.to_string()))
}

/// After the re-run of a link `on` a backend: says whether it reproduced.
pub fn judge(page: Page, link: &Snapshot, on: String, outcome: Result<(), String>) {
    let verdict = outcome.and_then(|()| {
        let hash = page
            .model
            .with_untracked(|m| m.as_ref().map_or(0, |m| m.hash));
        page.generation.with_untracked(|g| link.compare(hash, g))
    });
    page.reproduced
        .set(Some(Reproduced::Judged { on, verdict }));
}

fn describe(fidelity: Option<Fidelity>, pair: usize, length: usize) -> String {
    let size = format!("{:.1} KB link", length as f64 / 1024.0);
    match fidelity {
        None => format!("{size}: settings only (the trace is too long for a link; the receiver sees it once the model has re-run)"),
        Some(f) if f == snapshot::LADDER[0] => format!("{size} with the full trace"),
        Some(f) => format!(
            "{size}: trajectories in {}, {}-bit coordinates, logit lens top {}",
            if f.all_pairs {
                "all components".to_string()
            } else {
                format!("components {}-{} only", 2 * pair + 1, 2 * pair + 2)
            },
            f.coordinate_bits,
            f.lens_k
        ),
    }
}

/// Puts the link in the address bar (a new history entry) and on the clipboard.
fn publish(url: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let Ok(history) = window.history() {
        let _ = history.push_state_with_url(&JsValue::NULL, "", Some(url));
    }
    // Refused without a user gesture or permission; the read-only field still has the link.
    let _ = window.navigator().clipboard().write_text(url);
}

fn select_all(ev: leptos::ev::FocusEvent) {
    event_target::<web_sys::HtmlInputElement>(&ev).select();
}

#[component]
pub fn ShareBar() -> impl IntoView {
    let page = expect_context::<Page>();
    let detail = RwSignal::new(String::new());
    let can_share = move || {
        page.generation
            .with(|g| !g.tokens.is_empty() && g.model.is_some())
    };
    let share = move |_| {
        let Some(location) = location() else { return };
        let Ok(href) = location.href() else { return };
        let base = href.split('#').next().unwrap_or_default().to_string();
        let budget = MAX_LINK.saturating_sub(base.len() + 1 + PREFIX.len());
        let view = current_view(page);
        let Some(shared) = page.generation.with_untracked(|g| {
            g.model
                .clone()
                .map(|model| snapshot::share(g, view, model, budget))
        }) else {
            return;
        };
        let url = format!("{base}#{PREFIX}{}", shared.text);
        publish(&url);
        detail.set(describe(shared.fidelity, view.pair as usize, url.len()));
        page.share_url.set(Some(url));
    };
    let badge = move || {
        page.reproduced.get().map(|r| match r {
            Reproduced::Waiting(why) => {
                view! { <span class="badge waiting" data-testid="reproducing">{format!("reproducing: {why}")}</span> }.into_any()
            }
            Reproduced::Judged { on, verdict } => {
                let (class, text) = match verdict {
                    Ok(()) => ("badge yes", "yes".to_string()),
                    Err(why) => ("badge no", format!("no: {why}")),
                };
                view! {
                    <span class="note" data-testid="reproduced-on">{format!("link re-run {on}; same tokens and trace:")}</span>
                    <span class=class data-testid="reproduced">{text}</span>
                }
                .into_any()
            }
        })
    };
    view! {
        <div class="share-bar">
            <button data-testid="share" prop:disabled=move || !can_share() on:click=share>"Share link"</button>
            {move || page.share_url.get().map(|url| view! {
                <input data-testid="share-url" readonly size="50" prop:value=url on:focus=select_all />
                <span class="note" data-testid="share-size">{move || detail.get()}</span>
            })}
            {badge}
            {move || page.link_notice.get().map(|notice| view! { <span class="note error" data-testid="link-notice">{notice}</span> })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_folders_on_this_site_load_without_asking() {
        assert!(loads_automatically("models/loopscope-tiny"));
        for source in [
            "",
            "https://elsewhere.example/model",
            "//elsewhere.example/model",
            "/etc/models",
            "models/../../x",
            "javascript:alert(1)",
            "local files",
        ] {
            assert!(!loads_automatically(source), "{source}");
        }
    }
}
