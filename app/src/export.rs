//! Downloads: a canvas as PNG, a generation's trace as JSON.

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, HtmlCanvasElement, Url};

/// Saves a canvas as a PNG file.
fn download_canvas(canvas: &HtmlCanvasElement, name: &str) {
    if let Ok(url) = canvas.to_data_url_with_type("image/png") {
        download(&url, name);
    }
}

/// A button that saves the canvas behind `canvas` as `name`.
#[component]
pub fn ExportPng(
    canvas: NodeRef<Canvas>,
    name: &'static str,
    testid: &'static str,
) -> impl IntoView {
    let save = move |_| {
        if let Some(c) = canvas.get() {
            download_canvas(&c, name);
        }
    };
    view! { <button data-testid=testid on:click=save>"PNG"</button> }
}

/// Saves text as a JSON file.
pub fn download_json(text: &str, name: &str) {
    let parts = js_sys::Array::of1(&text.into());
    let options = BlobPropertyBag::new();
    options.set_type("application/json");
    let Ok(blob) = Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    if let Ok(url) = Url::create_object_url_with_blob(&blob) {
        download(&url, name);
        let _ = Url::revoke_object_url(&url);
    }
}

fn download(url: &str, name: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Some(anchor) = document
        .create_element("a")
        .ok()
        .and_then(|a| a.dyn_into::<HtmlAnchorElement>().ok())
    else {
        return;
    };
    anchor.set_href(url);
    anchor.set_download(name);
    anchor.click();
}
