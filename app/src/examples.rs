//! The example prompts under the prompt box: an easy sentence, an arithmetic problem and a
//! variable chain. The two with an answer are held-out problems (the default model's eval.jsonl)
//! that the default model gets wrong after one iteration and right at the page's opening
//! settings, so the first thing a visitor tries shows that thinking longer helps; a test keeps
//! that true when the model changes.

pub struct Example {
    pub label: &'static str,
    pub prompt: &'static str,
    /// The right continuation's first word, where there is one.
    pub answer: Option<&'static str>,
}

pub const EXAMPLES: [Example; 3] = [
    Example {
        label: "easy sentence",
        prompt: "The old dog sleeps by the warm fire.",
        answer: None,
    },
    Example {
        label: "arithmetic",
        prompt: "Tom read 15 pages on Monday and 69 pages on Tuesday, so he read",
        answer: Some(" 84"),
    },
    Example {
        label: "variable chain",
        prompt: "a is b minus 16. b is d plus 2. d is 31. So a is",
        answer: Some(" 17"),
    },
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use burn::backend::NdArray;
    use loopscope_engine::folder::load_dir;
    use loopscope_engine::{block_on, ExitCriterion, Record, Session, ThinkingSettings};

    use super::EXAMPLES;
    use crate::app::DEFAULT_MODEL;
    use crate::state::Controls;

    /// The default model's greedy continuation of `prompt`, as many tokens as `answer` has.
    fn continuation(settings: &ThinkingSettings, prompt: &str, answer: &str) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../public")
            .join(DEFAULT_MODEL);
        let loaded = load_dir::<NdArray<f32>>(&dir, &Default::default()).unwrap();
        let tokenizer = loaded.tokenizer.as_ref().unwrap();
        let wanted = tokenizer.encode(answer).unwrap().len();
        let mut session = Session::new(&loaded.model, settings.clone(), Record::default()).unwrap();
        let mut ids = Vec::new();
        let prompt = tokenizer.encode(prompt).unwrap();
        block_on(session.generate(&prompt, wanted, &[], async |p| {
            ids.extend(p.next);
            true
        }))
        .unwrap();
        tokenizer.decode(&ids).unwrap()
    }

    #[test]
    fn the_reasoning_examples_need_more_than_one_iteration() {
        let page = Controls::new().settings_untracked().unwrap();
        assert!(
            !matches!(page.exit, ExitCriterion::None),
            "the page opens with an exit"
        );
        let one = ThinkingSettings {
            steps: 1,
            ..page.clone()
        };
        for example in EXAMPLES.iter() {
            let Some(answer) = example.answer else {
                continue;
            };
            let thought = continuation(&page, example.prompt, answer);
            assert_eq!(thought, answer, "{} at the page's settings", example.label);
            let hasty = continuation(&one, example.prompt, answer);
            assert_ne!(hasty, answer, "{} after one iteration", example.label);
        }
    }
}
