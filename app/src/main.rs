//! loopscope's page: a recurrent-depth model runs in the browser and every token's thinking is
//! drawn next to the text. `app` wires the parts; each other module is one concept.

mod app;
mod backend;
mod controls;
mod examples;
mod export;
mod generation;
mod loader;
mod projection;
mod recovery;
mod runner;
mod share;
mod snapshot;
mod state;
mod views;

fn main() {
    recovery::install();
    leptos::mount::mount_to_body(app::App);
}
