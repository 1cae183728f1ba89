//! Generation sessions on the golden model: reproducibility, thinking controls, recording.

use std::path::PathBuf;

use burn::backend::NdArray;
use loopscope_engine::folder::load_dir;
use loopscope_engine::readback::reads_on_this_thread;
use loopscope_engine::trace::Exit;
use loopscope_engine::{
    block_on, ExitCriterion, Finish, Record, RecurrentModel, Sampling, Session, ThinkingSettings,
    Trace,
};

type B = NdArray;

fn model() -> RecurrentModel<B> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huginn-tiny-a");
    load_dir::<B>(&dir, &Default::default()).unwrap().model
}

fn sampled(seed: u64) -> ThinkingSettings {
    ThinkingSettings {
        steps: 6,
        exit: ExitCriterion::Kl { threshold: 5e-3 },
        sampling: Sampling {
            temperature: 1.0,
            top_k: 50,
            top_p: 0.95,
            min_p: 0.01,
        },
        seed,
        ..ThinkingSettings::default()
    }
}

fn generate(
    model: &RecurrentModel<B>,
    settings: ThinkingSettings,
    record: Record,
    tokens: usize,
) -> (Trace, Finish) {
    generate_ahead(model, settings, record, tokens, 1)
}

/// `generate` with the exit criterion judging `lookahead` iterations at a time.
fn generate_ahead(
    model: &RecurrentModel<B>,
    settings: ThinkingSettings,
    record: Record,
    tokens: usize,
    lookahead: usize,
) -> (Trace, Finish) {
    let mut session = Session::new(model, settings, record)
        .unwrap()
        .with_lookahead(lookahead);
    let finish =
        block_on(session.generate(&[3, 14, 15, 92, 65], tokens, &[], async |_| true)).unwrap();
    (session.into_trace(), finish)
}

#[test]
fn same_seed_same_tokens_and_trace_bit_for_bit() {
    let model = model();
    let record = Record::everything(5);
    let (a, _) = generate(&model, sampled(11), record, 12);
    let (b, _) = generate(&model, sampled(11), record, 12);
    assert_eq!(a, b);
    // Bit-level: PartialEq on f32 treats -0.0 == 0.0, so compare the serialised forms too.
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(a.generated().count(), 12);
}

#[test]
fn different_seed_different_initial_states() {
    let model = model();
    let record = Record {
        states: true,
        ..Record::default()
    };
    let (a, _) = generate(&model, sampled(1), record, 3);
    let (b, _) = generate(&model, sampled(2), record, 3);
    for (pa, pb) in a.positions.iter().zip(&b.positions) {
        assert_ne!(
            pa.initial_state, pb.initial_state,
            "position {}",
            pa.position
        );
    }
}

#[test]
fn plain_generation_records_nothing_but_counts() {
    let model = model();
    let (trace, finish) = generate(&model, sampled(3), Record::default(), 4);
    assert_eq!(finish, Finish::Length);
    assert_eq!(trace.prompt_len, 5);
    assert_eq!(trace.positions.len(), 5 + 3);
    for p in &trace.positions {
        assert!(p.steps.is_empty() && p.initial_state.is_none());
        assert!((1..=6).contains(&p.iterations));
    }
}

#[test]
fn recording_fills_every_requested_field_per_iteration() {
    let model = model();
    let (trace, _) = generate(&model, sampled(4), Record::everything(5), 3);
    let e = model.config.n_embd;
    for p in &trace.positions {
        assert_eq!(p.steps.len(), p.iterations);
        assert_eq!(p.initial_normed.as_ref().unwrap().len(), e);
        for (i, step) in p.steps.iter().enumerate() {
            assert_eq!(step.state.as_ref().unwrap().len(), e);
            assert_eq!(step.normed.as_ref().unwrap().len(), e);
            let lens = step.lens.as_ref().unwrap();
            assert_eq!(lens.len(), 5);
            assert!(lens.windows(2).all(|w| w[0].prob >= w[1].prob));
            // The delta is the distance between consecutive recorded states.
            let prev = if i == 0 {
                p.initial_state.as_ref().unwrap()
            } else {
                p.steps[i - 1].state.as_ref().unwrap()
            };
            let now = step.state.as_ref().unwrap();
            let delta = now
                .iter()
                .zip(prev)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt();
            assert!((delta - step.delta.unwrap()).abs() < 1e-3 * delta.max(1.0));
            assert!(step.exit_value.is_some());
        }
    }
}

#[test]
fn a_token_reads_back_once_plus_what_the_exit_criterion_needs() {
    let model = model();
    let fixed = ThinkingSettings {
        exit: ExitCriterion::None,
        ..sampled(5)
    };
    let before = reads_on_this_thread();
    let (trace, _) = generate(&model, fixed, Record::everything(5), 4);
    assert_eq!(trace.positions.len(), 5 + 3);
    assert_eq!(
        reads_on_this_thread() - before,
        4,
        "every recorded state, lens and delta of a token comes back in one transfer"
    );

    // The KL criterion reads the lens after every iteration, or after every `lookahead` (the
    // last window ends at the iteration limit); the recording still costs one more.
    let recordings = [(Record::everything(5), 1), (Record::default(), 0)];
    for ((record, extra), lookahead) in recordings.into_iter().flat_map(|r| [(r, 1), (r, 4)]) {
        let before = reads_on_this_thread();
        let (trace, _) = generate_ahead(&model, sampled(5), record, 4, lookahead);
        // One feed per picked token: the prompt's last position, then each fed token.
        let want: usize = trace
            .generated()
            .map(|p| p.iterations.div_ceil(lookahead) + extra)
            .sum();
        assert_eq!(reads_on_this_thread() - before, want, "{record:?}");
    }
}

#[test]
fn iterations_run_past_the_exit_leave_nothing_behind() {
    // With a lookahead the KL exit judges four iterations at a time and drops those past the
    // exit. Replaying the counts it chose as fixed overrides runs nothing past them: the tokens,
    // states and lens must be the same, so the dropped iterations touched neither the cache nor
    // the trace.
    let model = model();
    let record = Record::everything(5);
    let (judged, _) = generate_ahead(&model, sampled(3), record, 8, 4);
    assert_eq!(judged, generate(&model, sampled(3), record, 8).0);
    assert!(
        judged
            .positions
            .iter()
            .any(|p| p.exit == Exit::Converged && p.iterations % 4 != 0),
        "some position exits inside a window"
    );
    let mut fixed = sampled(3);
    for p in &judged.positions {
        fixed.overrides.insert(p.position, p.iterations);
    }
    let (replayed, _) = generate(&model, fixed, record, 8);
    assert_eq!(judged.positions.len(), replayed.positions.len());
    for (a, b) in judged.positions.iter().zip(&replayed.positions) {
        assert_eq!(
            (a.token, a.next, a.iterations),
            (b.token, b.next, b.iterations)
        );
        assert_eq!(b.exit, Exit::Fixed);
        for (x, y) in a.steps.iter().zip(&b.steps) {
            assert_eq!(
                (&x.state, &x.normed, &x.lens),
                (&y.state, &y.normed, &y.lens)
            );
        }
    }
}

#[test]
fn overrides_fix_a_positions_iteration_count() {
    let model = model();
    let mut settings = sampled(5);
    settings.overrides.insert(6, 17);
    settings.overrides.insert(7, 1);
    let (trace, _) = generate(&model, settings, Record::default(), 5);
    let at = |pos: usize| trace.positions.iter().find(|p| p.position == pos).unwrap();
    assert_eq!((at(6).iterations, at(6).exit), (17, Exit::Fixed));
    assert_eq!((at(7).iterations, at(7).exit), (1, Exit::Fixed));
    assert!(at(8).iterations <= 6);
}

#[test]
fn min_steps_delays_the_exit() {
    let model = model();
    let loose = ThinkingSettings {
        steps: 20,
        exit: ExitCriterion::Kl { threshold: 10.0 },
        ..ThinkingSettings::default()
    };
    let (trace, _) = generate(&model, loose.clone(), Record::default(), 2);
    assert!(trace
        .positions
        .iter()
        .all(|p| p.iterations == 1 && p.exit == Exit::Converged));
    let (trace, _) = generate(
        &model,
        ThinkingSettings {
            min_steps: 4,
            ..loose
        },
        Record::default(),
        2,
    );
    assert!(trace.positions.iter().all(|p| p.iterations == 4));
}

#[test]
fn warm_start_begins_from_the_previous_final_state() {
    let model = model();
    let settings = ThinkingSettings {
        steps: 3,
        warm_start: true,
        ..ThinkingSettings::default()
    };
    let (trace, _) = generate(
        &model,
        settings,
        Record {
            states: true,
            ..Record::default()
        },
        4,
    );
    for pair in trace
        .positions
        .windows(2)
        .filter(|w| w[1].position > trace.prompt_len - 1)
    {
        let final_state = pair[0].steps.last().unwrap().state.as_ref().unwrap();
        assert_eq!(
            pair[1].initial_state.as_ref().unwrap(),
            final_state,
            "position {}",
            pair[1].position
        );
    }
}

#[test]
fn generation_stops_at_a_stop_token_and_at_the_context_end() {
    let model = model();
    let settings = ThinkingSettings {
        steps: 2,
        ..ThinkingSettings::default()
    };
    let (trace, _) = generate(&model, settings.clone(), Record::default(), 3);
    let first = trace.generated().next().unwrap().next.unwrap();
    let mut session = Session::new(&model, settings.clone(), Record::default()).unwrap();
    let finish =
        block_on(session.generate(&[3, 14, 15, 92, 65], 10, &[first], async |_| true)).unwrap();
    assert_eq!(
        (finish, session.trace().generated().count()),
        (Finish::Stop, 1)
    );

    let context = model.config.block_size;
    let mut session = Session::new(&model, settings, Record::default()).unwrap();
    let finish = block_on(session.generate(&[1; 120], 1000, &[], async |_| true)).unwrap();
    assert_eq!(finish, Finish::Context);
    assert_eq!(session.len(), context);
}

#[test]
fn on_token_can_cancel_generation() {
    let model = model();
    let settings = ThinkingSettings {
        steps: 2,
        ..ThinkingSettings::default()
    };
    let mut session = Session::new(&model, settings, Record::default()).unwrap();
    let mut seen = 0;
    let finish = block_on(session.generate(&[3, 14, 15], 10, &[], async |_| {
        seen += 1;
        seen < 3
    }))
    .unwrap();
    assert_eq!(finish, Finish::Cancelled);
    assert_eq!(session.trace().generated().count(), 3);
}

#[test]
fn the_pause_runs_after_every_iteration() {
    let model = model();
    let settings = ThinkingSettings {
        steps: 3,
        ..ThinkingSettings::default()
    };
    let pauses = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = pauses.clone();
    let mut session = Session::new(&model, settings, Record::default())
        .unwrap()
        .with_pause(Box::new(move || {
            counter.set(counter.get() + 1);
            Box::pin(std::future::ready(()))
        }));
    block_on(session.generate(&[3, 14, 15], 4, &[], async |_| true)).unwrap();
    // Prefill and three decoded tokens, three iterations each.
    assert_eq!(pauses.get(), 4 * 3);
}

#[test]
fn kv_sharing_with_as_many_slots_as_iterations_changes_nothing() {
    let model = model();
    let record = Record::everything(5);
    let plain = ThinkingSettings {
        steps: 6,
        ..ThinkingSettings::default()
    };
    let (a, _) = generate(&model, plain.clone(), record, 6);
    let wide = ThinkingSettings {
        kv_share: Some(6),
        ..plain.clone()
    };
    let (mut b, _) = generate(&model, wide, record, 6);
    assert_eq!(a.cache_bytes, b.cache_bytes);
    b.settings.kv_share = None;
    assert_eq!(a, b);
}

#[test]
fn kv_sharing_bounds_the_cache_and_still_generates() {
    let model = model();
    let c = &model.config;
    let steps = 12;
    let run = |kv_share| {
        let settings = ThinkingSettings {
            steps,
            kv_share,
            ..ThinkingSettings::default()
        };
        generate(&model, settings, Record::default(), 6).0
    };
    let (full, shared) = (run(None), run(Some(4)));
    assert_eq!(shared.generated().count(), 6);
    // Per position: one entry per prelude and coda layer, and per core layer one per slot.
    let entries = |slots: usize| {
        c.n_layers_in_prelude + c.n_layers_in_coda + slots * c.n_layers_in_recurrent_block
    };
    assert_eq!(
        full.cache_bytes * entries(4),
        shared.cache_bytes * entries(steps)
    );
    assert!((shared.cache_bytes_per_token() - shared.cache_bytes as f64 / 10.0).abs() < 1e-9);
    let invalid = ThinkingSettings {
        kv_share: Some(0),
        ..ThinkingSettings::default()
    };
    assert!(Session::new(&model, invalid, Record::default()).is_err());
}
