//! A generation session: prefill, then token-by-token decoding with the recurrent KV cache,
//! recording how every position thinks.

use std::future::Future;
use std::pin::Pin;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cache::{KvCache, LayerCounts};
use crate::error::{EngineError, Result};
use crate::exit::{ExitCriterion, ExitTracker, LatentStep};
use crate::kernels::Kernels;
use crate::model::RecurrentModel;
use crate::readback::{Batch, Parts};
use crate::settings::ThinkingSettings;
use crate::state::random_initial_state;
use crate::trace::{top_tokens, Exit, IterationRecord, PositionTrace, Record, TopToken, Trace};

/// The outcome of feeding tokens: the next token and the final logits it was chosen from.
#[derive(Debug, Clone)]
pub struct Step {
    pub next: u32,
    pub logits: Vec<f32>,
}

/// Why `generate` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token was generated.
    Stop,
    /// The requested number of tokens was generated.
    Length,
    /// The model's context is full.
    Context,
    /// The caller's `on_token` asked to stop.
    Cancelled,
}

impl Finish {
    /// In words, for status lines.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Stop => "end of text",
            Self::Length => "token limit",
            Self::Context => "context full",
            Self::Cancelled => "stopped",
        }
    }
}

/// Awaited after every core iteration: lets a browser caller give the event loop a turn.
pub type Pause<'m> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>> + 'm>;

pub struct Session<'m, B: Backend> {
    model: &'m RecurrentModel<B>,
    pause: Option<Pause<'m>>,
    /// Iterations run before the exit criterion judges them (see `with_lookahead`).
    lookahead: usize,
    cache: KvCache<B>,
    rng: ChaCha8Rng,
    /// Final raw state of the last processed position, for warm starts: [1, 1, embd].
    last_state: Option<Tensor<B, 3>>,
    /// s_0 for every position, supplied instead of random draws (conformance with the reference).
    given_states: Option<Vec<f32>>,
    trace: Trace,
}

impl<'m, B: Kernels> Session<'m, B> {
    pub fn new(
        model: &'m RecurrentModel<B>,
        settings: ThinkingSettings,
        record: Record,
    ) -> Result<Self> {
        settings.validate()?;
        let config = &model.config;
        let layers = LayerCounts {
            prelude: config.n_layers_in_prelude,
            core: config.n_layers_in_recurrent_block,
            coda: config.n_layers_in_coda,
        };
        Ok(Self {
            model,
            pause: None,
            lookahead: 1,
            cache: KvCache::new(layers, settings.kv_share),
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
            last_state: None,
            given_states: None,
            trace: Trace {
                settings,
                record,
                prompt_len: 0,
                positions: Vec::new(),
                cache_bytes: 0,
            },
        })
    }

    /// Uses `states` ([positions, embd], row-major) as s_0 instead of random draws.
    pub fn with_initial_states(mut self, states: Vec<f32>) -> Self {
        self.given_states = Some(states);
        self
    }

    /// Awaits `pause` after every core iteration (a browser's CPU backend never yields itself).
    pub fn with_pause(mut self, pause: Pause<'m>) -> Self {
        self.pause = Some(pause);
        self
    }

    /// Runs `iterations` core iterations (at least 1) before the exit criterion reads what it
    /// needs of them, in one readback, and drops those past the exit. The outcome is the same;
    /// what changes is the cost: every readback waits for the GPU to finish all queued work, so
    /// where a readback costs more than a few iterations (a browser's GPU, behind its own
    /// process) fewer of them pay, while on the CPU the iterations past the exit are waste.
    pub fn with_lookahead(mut self, iterations: usize) -> Self {
        self.lookahead = iterations.max(1);
        self
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    pub fn into_trace(self) -> Trace {
        self.trace
    }

    /// Positions processed so far.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Runs the prompt, then generates until a stop token, `max_new_tokens` or the end of the
    /// context, awaiting `on_token` as each token's position finishes thinking. `on_token` returns
    /// whether to go on; being async lets a browser caller yield to its event loop in between.
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        max_new_tokens: usize,
        stop: &[u32],
        mut on_token: impl AsyncFnMut(&PositionTrace) -> bool,
    ) -> Result<Finish> {
        if max_new_tokens == 0 {
            return Err(EngineError::Setting(
                "max_new_tokens must be at least 1".into(),
            ));
        }
        let mut step = self.feed(prompt).await?;
        let mut produced = 1;
        loop {
            if let Some(position) = self.trace.positions.last() {
                if !on_token(position).await {
                    return Ok(Finish::Cancelled);
                }
            }
            if stop.contains(&step.next) {
                return Ok(Finish::Stop);
            }
            if produced >= max_new_tokens {
                return Ok(Finish::Length);
            }
            if self.cache.len() >= self.model.config.block_size {
                return Ok(Finish::Context);
            }
            step = self.feed(&[step.next]).await?;
            produced += 1;
        }
    }

    /// Processes `tokens` (the prompt on the first call, then one token at a time) and picks the
    /// token that follows them. All positions of one call run the same number of iterations,
    /// decided on the last one, as the reference does for a prompt.
    pub async fn feed(&mut self, tokens: &[u32]) -> Result<Step> {
        let model = self.model;
        let config = &model.config;
        let (s, e, vocab) = (tokens.len(), config.n_embd, config.padded_vocab_size);
        let start = self.cache.len();
        if s == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if start + s > config.block_size {
            return Err(if start == 0 {
                EngineError::PromptTooLong {
                    tokens: s,
                    context: config.block_size,
                }
            } else {
                EngineError::ContextFull {
                    context: config.block_size,
                }
            });
        }
        if let Some((i, &id)) = tokens
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= vocab)
        {
            return Err(EngineError::UnknownToken {
                id,
                position: start + i,
                vocab,
            });
        }
        let settings = &self.trace.settings;
        let record = self.trace.record;
        let (max_steps, exit_applies) = settings.plan(start + s - 1);
        let criterion = if exit_applies {
            settings.exit
        } else {
            ExitCriterion::None
        };
        let need_lens = criterion.needs_lens() || record.lens_top_k > 0;
        let need_latents = criterion.needs_latents() || record.deltas;
        let recording = record != Record::default();
        let device = model.device();

        let mut state = match (&self.given_states, &self.last_state) {
            (Some(given), _) => {
                let wanted = (start + s) * e;
                let values = given.get(start * e..wanted).ok_or_else(|| {
                    EngineError::Setting(format!(
                        "given initial states cover {} values, {wanted} needed",
                        given.len()
                    ))
                })?;
                Tensor::from_data(TensorData::new(values.to_vec(), [1, s, e]), &device)
            }
            (None, Some(last)) if settings.warm_start && s == 1 => last.clone(),
            _ => {
                let values = random_initial_state(&mut self.rng, s, config, settings.init_scale);
                Tensor::from_data(TensorData::new(values, [1, s, e]), &device)
            }
        };

        let mut batch = Batch::default();
        let initial = Snapshot::queue(model, &state, record, &mut batch).await?;
        let mut pending = self.cache.pending();
        let embedded = model.prelude_forward(tokens, [1, s], start, &mut pending);

        let mut trackers = vec![ExitTracker::new(criterion, vocab); s];
        let mut steps: Vec<PendingStep> = Vec::new();
        let mut last_lens: Option<Part> = None;
        let mut iterations = 0;
        let mut exit = if criterion == ExitCriterion::None {
            Exit::Fixed
        } else {
            Exit::MaxSteps
        };
        // Iterations run but not yet judged by the exit criterion.
        let mut ahead: Vec<Ahead<B>> = Vec::new();
        let mut overshot = false;
        'think: for iteration in 0..max_steps {
            let previous = state.clone();
            state = model.core_forward(
                previous.clone(),
                embedded.clone(),
                iteration,
                start,
                &mut pending,
            );
            let lens = need_lens.then(|| model.coda_forward(state.clone(), start, &mut pending));
            let latents = need_latents.then(|| latent_steps(&previous, &state));
            let snapshot = Snapshot::queue(model, &state, record, &mut batch).await?;
            ahead.push(Ahead {
                state: state.clone(),
                lens,
                latents,
                snapshot,
            });
            if let Some(pause) = &self.pause {
                pause().await;
            }
            let last = iteration + 1 == max_steps;
            let judge = criterion != ExitCriterion::None
                && ahead.len() >= self.lookahead
                && iteration + 1 >= settings.min_steps;
            if !(judge || last) {
                continue;
            }
            // What the criterion reads comes back now, for the whole window in one readback;
            // what only the trace wants waits for the end of the token.
            let mut now = Batch::default();
            let mut parts = Vec::new();
            for ran in &mut ahead {
                let lens = ran.lens.take();
                let latents = ran.latents.take();
                parts.push((
                    Fetch::queue(lens, criterion.needs_lens(), &mut now, &mut batch).await?,
                    Fetch::queue(latents, criterion.needs_latents(), &mut now, &mut batch).await?,
                ));
            }
            let read = now.finish().await?;
            let window = ahead.len();
            for (offset, (ran, (lens, latents))) in ahead.drain(..).zip(parts).enumerate() {
                let lens = lens.map(|part| part.into_part(&read));
                let latents = latents.map(|part| part.into_part(&read));
                iterations += 1;
                let values: Vec<Option<f32>> = (0..s)
                    .map(|p| {
                        let lens = lens.as_ref().and_then(|l| l.host(p, vocab));
                        let latent = latents
                            .as_ref()
                            .and_then(|l| l.host(p, 4))
                            .map(LatentStep::from);
                        trackers[p].observe(lens, latent)
                    })
                    .collect();
                let last_value = values[s - 1];
                if recording {
                    steps.push(PendingStep {
                        snapshot: ran.snapshot,
                        lens: (lens.as_ref())
                            .filter(|_| record.lens_top_k > 0)
                            .map(|l| l.for_trace(s, vocab, record.lens_top_k)),
                        latents: (latents.as_ref())
                            .filter(|_| record.deltas)
                            .map(|l| l.for_trace(s, 4, 0)),
                        values,
                    });
                }
                last_lens = lens;
                state = ran.state;
                if iterations >= settings.min_steps && criterion.is_met(last_value) {
                    exit = Exit::Converged;
                    overshot = offset + 1 < window;
                    break 'think;
                }
            }
        }
        // Iterations past the exit left the coda's keys and values of a later state: the coda
        // runs again on the state the position keeps (the core's writes past the exit are
        // dropped by the commit, which takes the iteration count).
        if overshot {
            model.coda_forward(state.clone(), start, &mut pending);
        }
        // The lens of the last iteration is the output; without a lens, run the coda once now.
        let output = match last_lens {
            Some(lens) => lens,
            None => {
                let logits = model.coda_forward(state.clone(), start, &mut pending);
                Part::Queued(batch.queue(logits).await?)
            }
        };
        let writes = pending.finish();
        self.cache.commit(writes, iterations);
        self.trace.cache_bytes = self.cache.bytes();
        self.last_state = Some(state.narrow(1, s - 1, 1));

        let parts = batch.finish().await?;
        let last_logits = output.values(&parts)[(s - 1) * vocab..].to_vec();
        let next = self
            .trace
            .settings
            .sampling
            .pick(&last_logits, &mut self.rng);
        if start == 0 {
            self.trace.prompt_len = s;
        }
        let records = PendingStep::records(&steps, &parts, s, [e, vocab], record);
        for (p, steps) in records.into_iter().enumerate() {
            self.trace.positions.push(PositionTrace {
                position: start + p,
                token: tokens[p],
                next: (p == s - 1).then_some(next),
                iterations,
                exit,
                initial_state: initial.states.map(|i| row(parts.get(i), p, e)),
                initial_normed: initial.normed.map(|i| row(parts.get(i), p, e)),
                steps,
            });
        }
        Ok(Step {
            next,
            logits: last_logits,
        })
    }
}

/// An iteration run ahead of the exit criterion's decision.
struct Ahead<B: Backend> {
    state: Tensor<B, 3>,
    /// Lens logits and latent steps on the device, as far as the criterion or the trace needs.
    lens: Option<Tensor<B, 3>>,
    latents: Option<Tensor<B, 3>>,
    snapshot: Snapshot,
}

/// The state and ln_f(state), queued as far as `record` asks for them.
struct Snapshot {
    states: Option<usize>,
    normed: Option<usize>,
}

impl Snapshot {
    async fn queue<B: Kernels>(
        model: &RecurrentModel<B>,
        state: &Tensor<B, 3>,
        record: Record,
        batch: &mut Batch<B>,
    ) -> Result<Self> {
        let states = match record.states {
            true => Some(batch.queue(state.clone()).await?),
            false => None,
        };
        let normed = match record.normed {
            true => Some(batch.queue(model.ln_f.forward(state.clone())).await?),
            false => None,
        };
        Ok(Self { states, normed })
    }
}

/// Per-position values of one iteration ([positions, width] row-major): read at once because
/// the exit criterion needs them, or queued for the end of the token.
enum Part {
    Host(Vec<f32>),
    Queued(usize),
}

/// One iteration's lens or latents until the exit criterion judges its window.
enum Fetch {
    /// Queued to come back with the window's decision.
    Now(usize),
    /// Not read for the decision: queued with the token's trace.
    Later(Part),
}

impl Fetch {
    /// Queues `tensor`, where there is one, with the decision (`now`) or with the trace.
    async fn queue<B: Kernels>(
        tensor: Option<Tensor<B, 3>>,
        now: bool,
        decision: &mut Batch<B>,
        trace: &mut Batch<B>,
    ) -> Result<Option<Self>> {
        let Some(tensor) = tensor else {
            return Ok(None);
        };
        Ok(Some(match now {
            true => Self::Now(decision.queue(tensor).await?),
            false => Self::Later(Part::Queued(trace.queue(tensor).await?)),
        }))
    }

    /// The part, once the decision's batch has come back.
    fn into_part(self, decision: &Parts) -> Part {
        match self {
            Self::Now(part) => Part::Host(decision.get(part).to_vec()),
            Self::Later(part) => part,
        }
    }
}

impl Part {
    /// Position `p`'s values if they are on the host already.
    fn host(&self, p: usize, width: usize) -> Option<&[f32]> {
        match self {
            Self::Host(values) => Some(&values[p * width..(p + 1) * width]),
            Self::Queued(_) => None,
        }
    }

    fn values<'a>(&'a self, parts: &'a Parts) -> &'a [f32] {
        match self {
            Self::Host(values) => values,
            Self::Queued(part) => parts.get(*part),
        }
    }

    fn position<'a>(&'a self, parts: &'a Parts, p: usize, width: usize) -> &'a [f32] {
        &self.values(parts)[p * width..(p + 1) * width]
    }

    /// What the trace keeps: read lens logits shrink to their top tokens at once, so a long
    /// prompt does not hold positions x vocabulary floats per iteration on the host.
    fn for_trace(&self, positions: usize, width: usize, top_k: usize) -> TracePart {
        match self {
            Self::Host(values) if top_k > 0 => TracePart::Top(
                values
                    .chunks(width)
                    .take(positions)
                    .map(|logits| top_tokens(logits, top_k))
                    .collect(),
            ),
            Self::Host(values) => TracePart::Values(Part::Host(values.clone())),
            Self::Queued(part) => TracePart::Values(Part::Queued(*part)),
        }
    }
}

/// One iteration waiting for the batch to finish before it becomes `IterationRecord`s.
struct PendingStep {
    snapshot: Snapshot,
    lens: Option<TracePart>,
    latents: Option<TracePart>,
    /// The exit criterion's value per position.
    values: Vec<Option<f32>>,
}

impl PendingStep {
    /// Every position's `IterationRecord`s, once the batch is on the host.
    fn records(
        steps: &[Self],
        parts: &Parts,
        positions: usize,
        [e, vocab]: [usize; 2],
        record: Record,
    ) -> Vec<Vec<IterationRecord>> {
        let mut records: Vec<Vec<IterationRecord>> = vec![Vec::new(); positions];
        for step in steps {
            for (p, steps) in records.iter_mut().enumerate() {
                let latent = step
                    .latents
                    .as_ref()
                    .map(|l| LatentStep::from(l.position(parts, p, 4)));
                steps.push(IterationRecord {
                    state: step.snapshot.states.map(|i| row(parts.get(i), p, e)),
                    normed: step.snapshot.normed.map(|i| row(parts.get(i), p, e)),
                    delta: latent.map(|l| l.delta),
                    norm: latent.map(|l| l.norm),
                    exit_value: step.values[p].filter(|_| record.exit_values),
                    lens: (step.lens.as_ref()).map(|l| l.top(parts, p, vocab, record.lens_top_k)),
                });
            }
        }
        records
    }
}

enum TracePart {
    Values(Part),
    Top(Vec<Vec<TopToken>>),
}

impl TracePart {
    fn position<'a>(&'a self, parts: &'a Parts, p: usize, width: usize) -> &'a [f32] {
        match self {
            Self::Values(part) => part.position(parts, p, width),
            Self::Top(_) => unreachable!("only lens logits shrink to top tokens"),
        }
    }

    fn top(&self, parts: &Parts, p: usize, vocab: usize, k: usize) -> Vec<TopToken> {
        match self {
            Self::Top(top) => top[p].clone(),
            Self::Values(part) => top_tokens(part.position(parts, p, vocab), k),
        }
    }
}

fn row(values: &[f32], p: usize, width: usize) -> Vec<f32> {
    values[p * width..(p + 1) * width].to_vec()
}

/// Per position: [|s - prev|, |s|, |prev|, <s, prev>] as [1, positions, 4].
fn latent_steps<B: Kernels>(previous: &Tensor<B, 3>, state: &Tensor<B, 3>) -> Tensor<B, 3> {
    let norm = |t: Tensor<B, 3>| t.powi_scalar(2).sum_dim(2).sqrt();
    let delta = norm(state.clone() - previous.clone());
    let dot = (state.clone() * previous.clone()).sum_dim(2);
    Tensor::cat(
        vec![delta, norm(state.clone()), norm(previous.clone()), dot],
        2,
    )
}
