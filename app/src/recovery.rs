//! What the page does when the GPU fails. burn's WebGPU runtime panics when its device is lost
//! (a buffer read-back fails), and a panic leaves the wasm instance unusable (panics abort). So
//! a lost device or a panic on the GPU marks WebGPU as unusable for this tab, keeps the prompt
//! (a shared link stays in the URL), and reloads the page once; the new page runs on the CPU.

use std::sync::atomic::{AtomicBool, Ordering};

use wasm_bindgen::JsCast;
use web_sys::{HtmlTextAreaElement, Storage};

const GPU_FAILED: &str = "loopscope-gpu-failed";
const PROMPT: &str = "loopscope-prompt";
/// Set before a recovery reload, cleared once a model has loaded: a page that fails again
/// before that shows a message instead of reloading in a loop.
const RELOADING: &str = "loopscope-reloading";

/// Whether burn's WebGPU runtime has been set up in this page (a panic is then blamed on it).
static ON_GPU: AtomicBool = AtomicBool::new(false);

fn session() -> Option<Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        if ON_GPU.load(Ordering::Relaxed) {
            gpu_failed();
        } else {
            stopped(&format!(
                "the page stopped after an internal error ({info}); reload it to go on"
            ));
        }
    }));
}

pub fn set_on_gpu() {
    ON_GPU.store(true, Ordering::Relaxed);
}

/// The GPU device is gone: reload on the CPU, keeping the prompt.
pub fn gpu_failed() {
    let (Some(window), Some(storage)) = (web_sys::window(), session()) else {
        return;
    };
    if storage.get_item(RELOADING).ok().flatten().is_some() {
        return stopped("the GPU failed again right after the page reloaded; reload it to go on");
    }
    let prompt = window
        .document()
        .and_then(|d| d.query_selector("[data-testid=prompt]").ok().flatten())
        .and_then(|e| e.dyn_into::<HtmlTextAreaElement>().ok())
        .map(|t| t.value());
    let _ = storage.set_item(GPU_FAILED, "1");
    let _ = storage.set_item(RELOADING, "1");
    if let Some(prompt) = prompt {
        let _ = storage.set_item(PROMPT, &prompt);
    }
    let _ = window.location().reload();
}

/// Writes `message` into the page without the app, which can no longer run.
fn stopped(message: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let (Ok(banner), Some(body)) = (document.create_element("p"), document.body()) {
        banner.set_class_name("status error fatal");
        banner.set_text_content(Some(message));
        let _ = body.prepend_with_node_1(&banner);
    }
}

/// Whether WebGPU failed earlier in this tab.
pub fn gpu_failed_before() -> bool {
    session().is_some_and(|s| s.get_item(GPU_FAILED).ok().flatten().is_some())
}

/// The prompt a recovery reload kept, once.
pub fn kept_prompt() -> Option<String> {
    let storage = session()?;
    let prompt = storage.get_item(PROMPT).ok().flatten();
    let _ = storage.remove_item(PROMPT);
    prompt
}

/// A model has loaded: a later failure may reload again.
pub fn recovered() {
    if let Some(storage) = session() {
        let _ = storage.remove_item(RELOADING);
    }
}
