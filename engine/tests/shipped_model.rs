//! The shipped default model's evaluation table (eval.json, written by `loopscope eval --json`)
//! is reproduced by re-running a sample of it on the committed weights.

use std::path::PathBuf;

use burn::backend::NdArray;
use loopscope_engine::eval::{evaluate, read_examples, sample, EvalReport, Start};
use loopscope_engine::folder::load_dir;
use loopscope_engine::{block_on, ExitCriterion};

const PER_FAMILY: usize = 8;

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../public/models/loopscope-tiny")
}

#[test]
fn a_sample_of_the_shipped_table_reproduces() {
    let dir = shipped();
    let table: EvalReport =
        serde_json::from_slice(&std::fs::read(dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(
        table.start,
        Start::default(),
        "the table is made with the paper's random start"
    );
    let loaded = load_dir::<NdArray>(&dir, &Default::default()).unwrap();
    let tokenizer = loaded.tokenizer.expect("the shipped model has a tokenizer");
    let examples =
        read_examples(&std::fs::read_to_string(dir.join("eval.jsonl")).unwrap()).unwrap();
    let examples = sample(examples, PER_FAMILY);
    let steps = [1, loaded.model.config.mean_recurrence];
    let rerun = block_on(evaluate(
        &loaded.model,
        &tokenizer,
        &examples,
        &steps,
        ExitCriterion::None,
        1,
        Start::default(),
    ))
    .unwrap();
    assert_eq!(rerun.accuracy.len(), 3 * steps.len());
    for row in &rerun.accuracy {
        let stored = table
            .accuracy
            .iter()
            .find(|a| a.family == row.family && a.steps == row.steps)
            .unwrap_or_else(|| {
                panic!("eval.json has no row for {} at r={}", row.family, row.steps)
            });
        assert_eq!(
            row.outcomes,
            stored.outcomes[..row.outcomes.len()],
            "{} at r={}",
            row.family,
            row.steps
        );
    }
}

/// The exit measurement counts as answer tokens those that spell the answer: the space the
/// tokenizer splits off before a number's digits goes with the other tokens.
#[test]
fn answer_tokens_are_the_answers_digits() {
    let loaded = load_dir::<NdArray>(&shipped(), &Default::default()).unwrap();
    let tokenizer = loaded.tokenizer.expect("the shipped model has a tokenizer");
    let line = r#"{"family":"arithmetic","prompt":"47 plus 38 is","answer":" 85","suffix":"."}"#;
    let examples = read_examples(line).unwrap();
    assert_eq!(tokenizer.encode(" 85").unwrap().len(), 3, "space, 8, 5");
    let report = block_on(evaluate(
        &loaded.model,
        &tokenizer,
        &examples,
        &[1],
        ExitCriterion::Kl { threshold: 1e-3 },
        8,
        Start::default(),
    ))
    .unwrap();
    let prompt = tokenizer.encode("47 plus 38 is").unwrap().len();
    assert_eq!(report.exit.answer_tokens, 2);
    let by_family = &report.exit.answer_by_family;
    assert_eq!(by_family.len(), 1);
    assert_eq!(
        (by_family[0].family.as_str(), by_family[0].tokens),
        ("arithmetic", 2)
    );
    assert_eq!(by_family[0].mean, report.exit.answer_mean);
    assert_eq!(report.exit.answer_by_need, None, "one iteration count only");
    // Every position but the last predicts a token: the prompt's, the space, the digits, ".".
    assert_eq!(report.exit.other_tokens, prompt - 1 + 1 + 1);
}

/// The start is applied to every measurement and recorded with them. From zero there is no
/// noise for the first iteration to wash out: the shipped model answers differently at r = 1 and
/// its filler settles sooner under the exit.
#[test]
fn a_start_from_zero_is_applied_and_recorded() {
    let dir = shipped();
    let loaded = load_dir::<NdArray>(&dir, &Default::default()).unwrap();
    let tokenizer = loaded.tokenizer.expect("the shipped model has a tokenizer");
    let examples =
        read_examples(&std::fs::read_to_string(dir.join("eval.jsonl")).unwrap()).unwrap();
    let examples = sample(examples, PER_FAMILY);
    let run = |start| {
        block_on(evaluate(
            &loaded.model,
            &tokenizer,
            &examples,
            &[1],
            ExitCriterion::Kl { threshold: 1e-3 },
            8,
            start,
        ))
        .unwrap()
    };
    let random = run(Start::default());
    let zero = run(Start {
        init_scale: 0.0,
        warm_start: false,
    });
    let outcomes = |report: &EvalReport| -> Vec<Vec<bool>> {
        report.accuracy.iter().map(|a| a.outcomes.clone()).collect()
    };
    assert_ne!(outcomes(&random), outcomes(&zero));
    assert!(
        zero.exit.filler_mean < random.exit.filler_mean,
        "{:?} against {:?}",
        zero.exit,
        random.exit
    );
    let json = serde_json::to_string(&zero).unwrap();
    assert_eq!(serde_json::from_str::<EvalReport>(&json).unwrap(), zero);
    assert!(
        zero.table().contains("state start: init scale 0\n"),
        "{}",
        zero.table()
    );
    assert!(!random.table().contains("state start"));
}
