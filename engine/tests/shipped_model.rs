//! The shipped default model's evaluation table (eval.json, written by `loopscope eval --json`)
//! is reproduced by re-running a sample of it on the committed weights.

use std::path::PathBuf;

use burn::backend::NdArray;
use loopscope_engine::eval::{evaluate, read_examples, sample, EvalReport};
use loopscope_engine::folder::load_dir;
use loopscope_engine::{block_on, ExitCriterion};

const PER_FAMILY: usize = 8;

#[test]
fn a_sample_of_the_shipped_table_reproduces() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../public/models/loopscope-tiny");
    let table: EvalReport =
        serde_json::from_slice(&std::fs::read(dir.join("eval.json")).unwrap()).unwrap();
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
