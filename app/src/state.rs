//! The page's reactive state: what is loaded, what the user asked for, what was generated and
//! which part of it is being looked at. Views read it from context.

use std::collections::BTreeMap;

use leptos::prelude::*;
use loopscope_engine::dynamics::Shape;
use loopscope_engine::{ExitCriterion, Sampling, ThinkingSettings};

use crate::backend::BackendKind;
use crate::generation::Generation;
use crate::loader::Progress;
use crate::share::Reproduced;
use crate::snapshot::{ModelRef, Snapshot};

/// What the status line says; tests read its first word.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Loading(String),
    Ready(String),
    Generating,
    Error(String),
}

impl Status {
    pub fn text(&self) -> String {
        match self {
            Self::Loading(what) => format!("loading {what}"),
            Self::Ready(what) if what.is_empty() => "ready".into(),
            Self::Ready(what) => format!("ready: {what}"),
            Self::Generating => "generating".into(),
            Self::Error(message) => format!("error: {message}"),
        }
    }
}

/// The thinking controls. Every one of them re-runs the generation when changed.
#[derive(Clone, Copy)]
pub struct Controls {
    pub iterations: RwSignal<usize>,
    /// `none`, `kl`, `latent-diff`, `entropy-diff`, `cosine` or `argmax`.
    pub exit: RwSignal<String>,
    pub threshold: RwSignal<String>,
    pub init_scale: RwSignal<f32>,
    pub seed: RwSignal<u64>,
    pub temperature: RwSignal<f32>,
    pub warm_start: RwSignal<bool>,
    /// Fixed iteration counts for chosen positions.
    pub overrides: RwSignal<BTreeMap<usize, usize>>,
    pub max_tokens: RwSignal<usize>,
    /// KV sharing: iteration i uses cache slot i mod k; 0 keeps one slot per iteration.
    pub kv_share: RwSignal<usize>,
}

impl Controls {
    /// The controls as the page opens.
    pub fn new() -> Self {
        Self {
            iterations: RwSignal::new(16),
            exit: RwSignal::new("kl".into()),
            threshold: RwSignal::new("1e-3".into()),
            init_scale: RwSignal::new(1.0),
            seed: RwSignal::new(0),
            temperature: RwSignal::new(0.0),
            warm_start: RwSignal::new(false),
            overrides: RwSignal::new(BTreeMap::new()),
            max_tokens: RwSignal::new(32),
            kv_share: RwSignal::new(0),
        }
    }

    /// The engine's settings for the current controls (tracked, so an effect reading this
    /// re-runs on any change), or what is wrong with them.
    pub fn settings(&self) -> Result<ThinkingSettings, String> {
        self.track();
        self.settings_untracked()
    }

    fn track(&self) {
        self.iterations.track();
        self.exit.track();
        self.threshold.track();
        self.init_scale.track();
        self.seed.track();
        self.temperature.track();
        self.warm_start.track();
        self.overrides.track();
        self.kv_share.track();
    }

    /// Shows `settings` (from a shared link) in the controls.
    pub fn show(&self, settings: &ThinkingSettings, max_tokens: usize) {
        self.iterations.set(settings.steps);
        let exit = settings.exit.to_string();
        let (kind, threshold) = exit.split_once(':').unwrap_or((&exit, ""));
        self.exit.set(kind.to_string());
        if !threshold.is_empty() {
            self.threshold.set(threshold.to_string());
        }
        self.init_scale.set(settings.init_scale);
        self.seed.set(settings.seed);
        self.temperature.set(settings.sampling.temperature);
        self.warm_start.set(settings.warm_start);
        self.overrides.set(settings.overrides.clone());
        self.max_tokens.set(max_tokens);
        self.kv_share.set(settings.kv_share.unwrap_or(0));
    }

    pub fn settings_untracked(&self) -> Result<ThinkingSettings, String> {
        let exit = match self.exit.get_untracked().as_str() {
            "none" => ExitCriterion::None,
            kind => format!("{kind}:{}", self.threshold.get_untracked().trim())
                .parse::<ExitCriterion>()
                .map_err(|e| e.to_string())?,
        };
        let settings = ThinkingSettings {
            steps: self.iterations.get_untracked(),
            exit,
            overrides: self.overrides.get_untracked(),
            init_scale: self.init_scale.get_untracked(),
            warm_start: self.warm_start.get_untracked(),
            sampling: Sampling {
                temperature: self.temperature.get_untracked(),
                ..Sampling::default()
            },
            seed: self.seed.get_untracked(),
            kv_share: Some(self.kv_share.get_untracked()).filter(|&k| k > 0),
            ..ThinkingSettings::default()
        };
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }
}

/// The page's own measurements, shown in a small line and logged to the console.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timing {
    pub load_ms: Option<f64>,
    pub first_token_ms: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// From a control's change to the re-run's last token drawn (debounce included).
    pub control_to_view_ms: Option<f64>,
}

impl Timing {
    pub fn text(&self) -> String {
        let show =
            |v: Option<f64>, unit: &str| v.map_or("–".into(), |v| format!("{v:.0} {unit}"));
        format!(
            "model load {} · first token {} · {} · control → view {}",
            show(self.load_ms, "ms"),
            show(self.first_token_ms, "ms"),
            self.tokens_per_s
                .map_or("– tokens/s".into(), |v| format!("{v:.1} tokens/s")),
            show(self.control_to_view_ms, "ms"),
        )
    }
}

/// Which heatmap values are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeatMetric {
    /// |ln_f(s_i) - ln_f(s_final)|
    Distance,
    /// The exit criterion's value.
    ExitValue,
}

#[derive(Clone, Copy)]
pub struct Page {
    pub status: RwSignal<Status>,
    pub backend: RwSignal<Option<BackendKind>>,
    /// Why the CPU runs the model, when it does.
    pub backend_note: RwSignal<Option<String>>,
    pub model_name: RwSignal<String>,
    /// Where the loaded model came from and its content hash: what a shared link names.
    pub model: RwSignal<Option<ModelRef>>,
    /// Download progress while a model loads.
    pub progress: RwSignal<Option<Progress>>,
    pub prompt: RwSignal<String>,
    pub controls: Controls,
    pub generation: RwSignal<Generation>,
    /// Index into `generation.tokens`.
    pub selected: RwSignal<Option<usize>>,
    /// 1-based iteration shown in the trajectory and marked in the heatmap.
    pub iteration: RwSignal<usize>,
    /// 0 shows components 1-2, 1 shows 3-4, 2 shows 5-6.
    pub pair: RwSignal<usize>,
    pub playing: RwSignal<bool>,
    pub heat_metric: RwSignal<HeatMetric>,
    /// Show only tokens whose trajectory took this shape.
    pub shape_filter: RwSignal<Option<Shape>>,
    pub timing: RwSignal<Timing>,
    /// An opened link whose generation waits for its model to re-run it.
    pub link: RwSignal<Option<Snapshot>>,
    pub reproduced: RwSignal<Option<Reproduced>>,
    /// The last link made by Share.
    pub share_url: RwSignal<Option<String>>,
    /// What went wrong with an opened link.
    pub link_notice: RwSignal<Option<String>>,
}

impl Page {
    pub fn new() -> Self {
        Self {
            status: RwSignal::new(Status::Loading("model".into())),
            backend: RwSignal::new(None),
            backend_note: RwSignal::new(None),
            model_name: RwSignal::new(String::new()),
            model: RwSignal::new(None),
            progress: RwSignal::new(None),
            prompt: RwSignal::new(String::new()),
            controls: Controls::new(),
            generation: RwSignal::new(Generation::default()),
            selected: RwSignal::new(None),
            iteration: RwSignal::new(1),
            pair: RwSignal::new(0),
            playing: RwSignal::new(false),
            heat_metric: RwSignal::new(HeatMetric::Distance),
            shape_filter: RwSignal::new(None),
            timing: RwSignal::new(Timing::default()),
            link: RwSignal::new(None),
            reproduced: RwSignal::new(None),
            share_url: RwSignal::new(None),
            link_notice: RwSignal::new(None),
        }
    }
}

impl Page {
    /// Iterations recorded for the selected token (0 when none is selected).
    pub fn selected_iterations(&self) -> usize {
        self.selected.track();
        self.generation.track();
        self.selected_iterations_untracked()
    }

    pub fn selected_iterations_untracked(&self) -> usize {
        let selected = self.selected.get_untracked();
        self.generation.with_untracked(|g| {
            selected
                .and_then(|i| g.tokens.get(i))
                .map_or(0, |t| t.iterations)
        })
    }
}
