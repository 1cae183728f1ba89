//! The loaded model on its backend, and one generation run that streams tokens to the page and
//! yields to the browser between them so the page stays responsive.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use loopscope_engine::folder::{load_files, LoadedModel};
use loopscope_engine::kernels::Kernels;
use loopscope_engine::trace::PositionTrace;
use loopscope_engine::{
    EngineError, Finish, ModelConfig, Record, Session, ThinkingSettings, Tokenizer,
};

use wasm_bindgen::JsCast;

use crate::backend::{init_webgpu, BackendKind, Cpu, Gpu};
use crate::generation::Generation;

/// What the page records per iteration: ln_f(s_i) for the trajectories, the exit value and the
/// logit lens' top 5. Raw states would only double what comes back.
pub const RECORD: Record = Record {
    states: false,
    normed: true,
    deltas: false,
    exit_values: true,
    lens_top_k: 5,
};

// One engine lives behind an `Rc` for as long as its model is loaded: the size is paid once.
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    Gpu(LoadedModel<Gpu>),
    Cpu(LoadedModel<Cpu>),
}

impl Engine {
    pub async fn load(
        files: HashMap<String, Vec<u8>>,
        kind: BackendKind,
    ) -> Result<Self, EngineError> {
        let engine = match kind {
            BackendKind::WebGpu => Self::Gpu(load_files(files, &init_webgpu().await)?),
            BackendKind::Cpu => Self::Cpu(load_files(files, &Default::default())?),
        };
        if engine.tokenizer().is_none() {
            return Err(EngineError::Tokenizer(
                "the folder has no tokenizer.json, so prompts cannot be turned into tokens".into(),
            ));
        }
        Ok(engine)
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            Self::Gpu(m) => &m.model.config,
            Self::Cpu(m) => &m.model.config,
        }
    }

    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        match self {
            Self::Gpu(m) => m.tokenizer.as_ref(),
            Self::Cpu(m) => m.tokenizer.as_ref(),
        }
    }

    /// Two tokens at three iterations, so that the first real run does not pay for compiling
    /// the wasm code it calls (the browser compiles each function on its first call): on the CPU
    /// the first run's model work between yields took about 100 ms instead of 30-40. Returns
    /// the generation, for warming up the views' drawing the same way.
    pub async fn warm_up(&self) -> Result<Generation, EngineError> {
        let settings = ThinkingSettings {
            steps: 3,
            ..ThinkingSettings::default()
        };
        let prompt = "The cat";
        let mut generation = Generation::new(None, prompt.into(), settings.clone(), 2);
        let tokenizer = self
            .tokenizer()
            .expect("load refuses folders without a tokenizer");
        self.generate(
            prompt,
            settings,
            2,
            |position| {
                generation.push(position.clone(), |id| tokenizer.token_text(id));
                true
            },
            Rc::new(|| {}),
        )
        .await?;
        generation.finish();
        Ok(generation)
    }

    /// Generates from `prompt`, calling `on_token` with each generated token's position (and
    /// stopping when it returns false). `show` puts the tokens received so far on the page: it
    /// runs before each of the run's turns of the browser, so that the frame painted then shows
    /// them, and the caller runs it once more at the end.
    pub async fn generate(
        &self,
        prompt: &str,
        settings: ThinkingSettings,
        max_tokens: usize,
        on_token: impl FnMut(&PositionTrace) -> bool,
        show: Rc<dyn Fn()>,
    ) -> Result<Finish, EngineError> {
        let tokenizer = self
            .tokenizer()
            .expect("load refuses folders without a tokenizer");
        if prompt.trim().is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let ids = tokenizer.encode(prompt)?;
        let stop: Vec<u32> = tokenizer.token_id("<eos>").into_iter().collect();
        match self {
            Self::Gpu(m) => {
                let session = Session::new(&m.model, settings, RECORD)?.with_lookahead(LOOKAHEAD);
                run(session, &ids, &stop, max_tokens, on_token, show).await
            }
            Self::Cpu(m) => {
                let session = Session::new(&m.model, settings, RECORD)?;
                run(session, &ids, &stop, max_tokens, on_token, show).await
            }
        }
    }
}

/// Iterations the exit criterion judges at a time on WebGPU: each readback there is a round
/// trip to the browser's GPU process, which costs more than the iterations run past an exit.
/// On the CPU the values are already at hand, and the criterion judges every iteration.
const LOOKAHEAD: usize = 4;

async fn run<B: Kernels>(
    session: Session<'_, B>,
    ids: &[u32],
    stop: &[u32],
    max_tokens: usize,
    mut on_token: impl FnMut(&PositionTrace) -> bool,
    show: Rc<dyn Fn()>,
) -> Result<Finish, EngineError> {
    let turns = Rc::new(Turns::new(show));
    LONGEST_DRAW.set(0.0);
    let pause = {
        let turns = turns.clone();
        move || -> Pin<Box<dyn Future<Output = ()>>> {
            let turns = turns.clone();
            Box::pin(async move { turns.take_if_due().await })
        }
    };
    let mut session = session.with_pause(Box::new(pause));
    let finish = session
        .generate(ids, max_tokens, stop, async |position| {
            let go_on = on_token(position);
            turns.take_if_due().await;
            go_on
        })
        .await;
    web_sys::console::log_1(
        &format!(
            "loopscope: longest work between the page's own yields: model {:.0} ms, view update {:.0} ms, one view's drawing {:.0} ms (awaited GPU read-backs let the browser in too)",
            turns.model.get(),
            turns.view.get(),
            LONGEST_DRAW.get()
        )
        .into(),
    );
    finish
}

/// A run's turns of the browser: one whenever the model has worked a slice since the last,
/// after iterations and tokens alike, not after every token: each turn waits for a frame, so a
/// turn a token would bound a fast GPU at the display's rate, and redrawing the views a token
/// would cost more than the model. Keeps the longest stretches the browser waited, by who kept
/// it: frozen frames come from one or the other.
struct Turns {
    show: Rc<dyn Fn()>,
    since: Cell<f64>,
    model: Cell<f64>,
    view: Cell<f64>,
}

impl Turns {
    fn new(show: Rc<dyn Fn()>) -> Self {
        Self {
            show,
            since: Cell::new(now()),
            model: Cell::new(0.0),
            view: Cell::new(0.0),
        }
    }

    /// Shows the new tokens and lets the browser paint, if a slice of work is done.
    async fn take_if_due(&self) {
        let worked = now() - self.since.get();
        if worked < SLICE_MS {
            return;
        }
        self.model.set(self.model.get().max(worked));
        let started = now();
        (self.show)();
        self.view.set(self.view.get().max(now() - started));
        yield_to_browser().await;
        self.since.set(now());
    }
}

/// Draws one view, keeping the longest drawing of the run: the views redraw after each token
/// outside the runner's own turns, so their cost shows nowhere else.
pub fn timed_draw<R>(draw: impl FnOnce() -> R) -> R {
    let started = now();
    let drawn = draw();
    LONGEST_DRAW.set(LONGEST_DRAW.get().max(now() - started));
    drawn
}

/// Longest stretch of model work between two turns of the browser's event loop.
const SLICE_MS: f64 = 25.0;

pub fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Lets the browser paint and handle input: resumes after the next animation frame, so a frame
/// is painted between two slices of work. A bare zero timeout is not enough: Chrome ran the
/// page's timer tasks back to back and painted only every 200-230 ms. A hidden tab gets no
/// animation frames, so there (and if a frame never comes) a timer resumes the work.
pub async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve: js_sys::Function, _| {
        let Some(window) = web_sys::window() else {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
            return;
        };
        let hidden = window.document().is_none_or(|d| d.hidden());
        if !hidden {
            let after_paint = {
                let resolve = resolve.clone();
                wasm_bindgen::closure::Closure::once_into_js(move || {
                    if let Some(window) = web_sys::window() {
                        let _ = window
                            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
                    }
                })
            };
            let _ = window.request_animation_frame(after_paint.unchecked_ref());
        }
        let wait = if hidden { 0 } else { FRAME_WAIT_MS };
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, wait);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// How long a yield waits for an animation frame before going on without one.
const FRAME_WAIT_MS: i32 = 100;

thread_local! {
    /// The model the page runs (not reactive state: it holds GPU buffers and is not `Send`).
    static ENGINE: RefCell<Option<Rc<Engine>>> = const { RefCell::new(None) };
    /// The longest view drawing since the current run started.
    static LONGEST_DRAW: Cell<f64> = const { Cell::new(0.0) };
    /// Incremented by every new run and by Stop; a run goes on only while it holds the latest.
    static RUN: Cell<u64> = const { Cell::new(0) };
}

pub fn engine() -> Option<Rc<Engine>> {
    ENGINE.with_borrow(|e| e.clone())
}

pub fn set_engine(engine: Option<Rc<Engine>>) {
    ENGINE.set(engine);
}

/// Starts a new run, cancelling any earlier one; returns its ticket.
pub fn new_run() -> u64 {
    RUN.set(RUN.get() + 1);
    RUN.get()
}

/// Cancels the current run.
pub fn stop_runs() {
    RUN.set(RUN.get() + 1);
}

pub fn is_current(ticket: u64) -> bool {
    RUN.get() == ticket
}
