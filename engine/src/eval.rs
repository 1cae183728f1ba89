//! Held-out evaluation of a model folder's `eval.jsonl`: does the model answer better when it
//! thinks longer, and does it think longer on answers than on plain filler text?

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::exit::ExitCriterion;
use crate::kernels::Kernels;
use crate::model::RecurrentModel;
use crate::session::Session;
use crate::settings::ThinkingSettings;
use crate::tokenizer::Tokenizer;
use crate::trace::Record;

/// One held-out sentence split where its checkable answer sits. An empty answer marks a filler
/// sentence (all of it in `prompt`): nothing to check, only easy tokens to count iterations on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalExample {
    pub family: String,
    pub prompt: String,
    pub answer: String,
    pub suffix: String,
}

impl EvalExample {
    pub fn is_filler(&self) -> bool {
        self.answer.is_empty()
    }
}

/// Reads `eval.jsonl`: one example per line; a bad line is an error naming it.
pub fn read_examples(text: &str) -> Result<Vec<EvalExample>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| EngineError::Setting(format!("eval.jsonl line {}: {e}", i + 1)))
        })
        .collect()
}

/// Keeps the first `per_family` examples of every family, in file order.
pub fn sample(examples: Vec<EvalExample>, per_family: usize) -> Vec<EvalExample> {
    let mut kept: BTreeMap<String, usize> = BTreeMap::new();
    examples
        .into_iter()
        .filter(|e| {
            let n = kept.entry(e.family.clone()).or_default();
            *n += 1;
            *n <= per_family
        })
        .collect()
}

/// Exact-match accuracy of one family at one iteration count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub family: String,
    pub steps: usize,
    pub correct: usize,
    pub total: usize,
    /// Whether each example of the family, in file order, was answered exactly.
    pub outcomes: Vec<bool>,
}

impl Accuracy {
    pub fn percent(&self) -> f64 {
        100.0 * self.correct as f64 / self.total.max(1) as f64
    }
}

/// Mean iterations used under an exit criterion by answer tokens, by the other tokens of the
/// same sentences, and by the tokens of filler sentences. Answer tokens are those that spell the
/// answer: a space the tokenizer splits off before a number is always the next token there, so
/// it counts with the other tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitUse {
    pub criterion: ExitCriterion,
    pub max_steps: usize,
    pub answer_tokens: usize,
    pub answer_mean: f64,
    pub other_tokens: usize,
    pub other_mean: f64,
    /// Zero in tables made from an eval.jsonl without filler sentences.
    #[serde(default)]
    pub filler_tokens: usize,
    #[serde(default)]
    pub filler_mean: f64,
    /// The answer tokens again, by family in file order: which kind of problem makes the model
    /// think longer. Empty in tables written before it was measured.
    #[serde(default)]
    pub answer_by_family: Vec<FamilyExitUse>,
    /// The answer tokens again, split by whether their problem needed the iterations. Absent in
    /// tables written before it was measured and when only one iteration count was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_by_need: Option<NeedSplit>,
}

/// Answer tokens of problems answered wrong at the fewest iterations measured and right at the
/// most (the iterations did the work), against those of problems right at both: whether the
/// tokens that need thinking take longer to settle, problem by problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeedSplit {
    pub fewest: usize,
    pub most: usize,
    pub needed: TokenMean,
    pub not_needed: TokenMean,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMean {
    pub tokens: usize,
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyExitUse {
    pub family: String,
    pub tokens: usize,
    pub mean: f64,
}

/// How each token's state starts in every measurement of an evaluation. The paper's random
/// start is the default; a start with less noise (a smaller spread, or the previous token's
/// final state) shows how much of the iterations every token spends washing the noise out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// Multiplies the spread of the random initial state (0 starts from zero).
    pub init_scale: f32,
    /// Each token starts from the previous token's final state (continuous chain of thought).
    pub warm_start: bool,
}

impl Default for Start {
    /// The session's own defaults: the paper's start.
    fn default() -> Self {
        let thinking = ThinkingSettings::default();
        Self {
            init_scale: thinking.init_scale,
            warm_start: thinking.warm_start,
        }
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "init scale {}", self.init_scale)?;
        if self.warm_start {
            write!(f, ", warm start")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub examples: usize,
    /// The default in tables written before the start was a choice.
    #[serde(default)]
    pub start: Start,
    pub accuracy: Vec<Accuracy>,
    pub exit: ExitUse,
}

/// Tokens of an example: prompt, answer and suffix encoded apart, so the answer's span is exact.
struct Encoded {
    prompt: Vec<u32>,
    answer: Vec<u32>,
    /// Leading answer tokens that are whitespace alone (the space before a number's digits).
    separator: usize,
    suffix: Vec<u32>,
    filler: bool,
}

fn encode(tokenizer: &Tokenizer, example: &EvalExample) -> Result<Encoded> {
    let answer = tokenizer.encode(&example.answer)?;
    let separator = answer
        .iter()
        .take_while(|&&id| tokenizer.token_text(id).trim().is_empty())
        .count();
    let encoded = Encoded {
        prompt: tokenizer.encode(&example.prompt)?,
        answer,
        separator,
        suffix: tokenizer.encode(&example.suffix)?,
        filler: example.is_filler(),
    };
    if encoded.prompt.len() + encoded.answer.len() + encoded.suffix.len() < 2 {
        return Err(EngineError::Setting(format!(
            "eval example {:?} has fewer than two tokens: nothing to predict",
            example.prompt
        )));
    }
    if encoded.prompt.is_empty() {
        return Err(EngineError::Setting(format!(
            "eval example with answer {:?} has an empty prompt",
            example.answer
        )));
    }
    Ok(encoded)
}

/// Iterations each predicted token used, by kind of token.
#[derive(Default)]
struct IterationUse {
    /// Each computing example's answer tokens, in the order of the examples: grouped by
    /// problem so that they can be split by family and by the problem's outcomes.
    answer: Vec<Vec<usize>>,
    other: Vec<usize>,
    filler: Vec<usize>,
}

fn settings(steps: usize, exit: ExitCriterion, start: Start) -> ThinkingSettings {
    ThinkingSettings {
        steps,
        exit,
        init_scale: start.init_scale,
        warm_start: start.warm_start,
        ..ThinkingSettings::default()
    }
}

/// Whether greedy decoding after the prompt writes exactly the answer's tokens.
async fn answers<B: Kernels>(
    model: &RecurrentModel<B>,
    example: &Encoded,
    steps: usize,
    start: Start,
) -> Result<bool> {
    let mut session = Session::new(
        model,
        settings(steps, ExitCriterion::None, start),
        Record::default(),
    )?;
    let mut step = session.feed(&example.prompt).await?;
    for (i, &wanted) in example.answer.iter().enumerate() {
        if step.next != wanted {
            return Ok(false);
        }
        if i + 1 < example.answer.len() {
            step = session.feed(&[wanted]).await?;
        }
    }
    Ok(true)
}

/// Feeds the whole sentence one token at a time under `exit` and records each prediction's
/// iteration count by what the predicted token is: answer, other, or filler.
async fn exit_use<B: Kernels>(
    model: &RecurrentModel<B>,
    example: &Encoded,
    exit: ExitCriterion,
    max_steps: usize,
    start: Start,
    used: &mut IterationUse,
) -> Result<()> {
    let tokens: Vec<u32> = [&example.prompt, &example.answer, &example.suffix]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let span =
        example.prompt.len() + example.separator..example.prompt.len() + example.answer.len();
    let mut session = Session::new(model, settings(max_steps, exit, start), Record::default())?;
    let mut answer = Vec::new();
    for (t, &token) in tokens.iter().enumerate().take(tokens.len() - 1) {
        session.feed(&[token]).await?;
        let iterations = session.trace().positions.last().map_or(0, |p| p.iterations);
        if example.filler {
            used.filler.push(iterations);
        } else if span.contains(&(t + 1)) {
            answer.push(iterations);
        } else {
            used.other.push(iterations);
        }
    }
    if !example.filler {
        used.answer.push(answer);
    }
    Ok(())
}

/// Accuracy per family at every count in `steps`, and the exit criterion's iteration use.
pub async fn evaluate<B: Kernels>(
    model: &RecurrentModel<B>,
    tokenizer: &Tokenizer,
    examples: &[EvalExample],
    steps: &[usize],
    exit: ExitCriterion,
    max_steps: usize,
    start: Start,
) -> Result<EvalReport> {
    let encoded: Vec<Encoded> = examples
        .iter()
        .map(|e| encode(tokenizer, e))
        .collect::<Result<_>>()?;
    let mut accuracy = Vec::new();
    let mut families: Vec<&str> = Vec::new();
    for example in examples.iter().filter(|e| !e.is_filler()) {
        if !families.contains(&example.family.as_str()) {
            families.push(&example.family);
        }
    }
    for &family in &families {
        for &r in steps {
            let mut outcomes = Vec::new();
            for (_, tokens) in examples
                .iter()
                .zip(&encoded)
                .filter(|(e, _)| e.family == family && !e.is_filler())
            {
                outcomes.push(answers(model, tokens, r, start).await?);
            }
            accuracy.push(Accuracy {
                family: family.to_string(),
                steps: r,
                correct: outcomes.iter().filter(|&&ok| ok).count(),
                total: outcomes.len(),
                outcomes,
            });
        }
    }
    let mut used = IterationUse::default();
    for tokens in &encoded {
        exit_use(model, tokens, exit, max_steps, start, &mut used).await?;
    }
    let answer: Vec<usize> = used.answer.iter().flatten().copied().collect();
    let computing: Vec<&EvalExample> = examples.iter().filter(|e| !e.is_filler()).collect();
    let answer_by_family = families
        .iter()
        .map(|&family| {
            let counts: Vec<usize> = computing
                .iter()
                .zip(&used.answer)
                .filter(|(e, _)| e.family == family)
                .flat_map(|(_, counts)| counts.iter().copied())
                .collect();
            FamilyExitUse {
                family: family.to_string(),
                tokens: counts.len(),
                mean: mean(&counts),
            }
        })
        .collect();
    let answer_by_need = need_split(&computing, &accuracy, &used.answer);
    Ok(EvalReport {
        examples: examples.len(),
        start,
        accuracy,
        exit: ExitUse {
            criterion: exit,
            max_steps,
            answer_tokens: answer.len(),
            answer_mean: mean(&answer),
            other_tokens: used.other.len(),
            other_mean: mean(&used.other),
            filler_tokens: used.filler.len(),
            filler_mean: mean(&used.filler),
            answer_by_family,
            answer_by_need,
        },
    })
}

fn mean(counts: &[usize]) -> f64 {
    counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64
}

/// Splits the answer tokens of `per_example` (those of `computing`, in its order) by whether the
/// example was wrong at the fewest iterations in `accuracy` and right at the most.
fn need_split(
    computing: &[&EvalExample],
    accuracy: &[Accuracy],
    per_example: &[Vec<usize>],
) -> Option<NeedSplit> {
    let fewest = accuracy.iter().map(|a| a.steps).min()?;
    let most = accuracy.iter().map(|a| a.steps).max()?;
    if fewest == most {
        return None;
    }
    let outcome = |family: &str, steps: usize, index: usize| {
        accuracy
            .iter()
            .find(|a| a.family == family && a.steps == steps)
            .is_some_and(|a| a.outcomes[index])
    };
    let (mut needed, mut not_needed) = (Vec::new(), Vec::new());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (example, counts) in computing.iter().zip(per_example) {
        let index = seen.entry(&example.family).or_default();
        match (
            outcome(&example.family, fewest, *index),
            outcome(&example.family, most, *index),
        ) {
            (false, true) => needed.extend(counts),
            (true, true) => not_needed.extend(counts),
            _ => {}
        }
        *index += 1;
    }
    let token_mean = |v: &[usize]| TokenMean {
        tokens: v.len(),
        mean: mean(v),
    };
    Some(NeedSplit {
        fewest,
        most,
        needed: token_mean(&needed),
        not_needed: token_mean(&not_needed),
    })
}

impl EvalReport {
    /// A table: one row per family, one column per iteration count, then the exit line.
    pub fn table(&self) -> String {
        let mut steps: Vec<usize> = self.accuracy.iter().map(|a| a.steps).collect();
        steps.sort_unstable();
        steps.dedup();
        let mut out = format!("{:<12}", "family");
        for r in &steps {
            out += &format!(" {:>7}", format!("r={r}"));
        }
        out += "\n";
        let mut families: Vec<&str> = self.accuracy.iter().map(|a| a.family.as_str()).collect();
        families.dedup();
        for family in families {
            out += &format!("{family:<12}");
            for r in &steps {
                let cell = self
                    .accuracy
                    .iter()
                    .find(|a| a.family == family && a.steps == *r);
                out += &format!(" {:>6.1}%", cell.map_or(f64::NAN, Accuracy::percent));
            }
            out += "\n";
        }
        if self.start != Start::default() {
            out += &format!("state start: {}\n", self.start);
        }
        let e = &self.exit;
        out += &format!(
            "exit {} (max {}): answer tokens {:.2} iterations (n={}), other tokens of those sentences {:.2} (n={})",
            e.criterion, e.max_steps, e.answer_mean, e.answer_tokens, e.other_mean, e.other_tokens,
        );
        if e.filler_tokens > 0 {
            out += &format!(
                ", filler tokens {:.2} (n={}); answer / filler {:.2}",
                e.filler_mean,
                e.filler_tokens,
                e.answer_mean / e.filler_mean
            );
        }
        if !e.answer_by_family.is_empty() {
            let by_family: Vec<String> = e
                .answer_by_family
                .iter()
                .map(|f| format!("{} {:.2} (n={})", f.family, f.mean, f.tokens))
                .collect();
            out += &format!("\nanswer tokens by family: {}", by_family.join(", "));
        }
        if let Some(split) = &e.answer_by_need {
            out += &format!(
                "\nanswer tokens of problems right only with more iterations (wrong at r={}, right at r={}) {:.2} (n={}), right at both {:.2} (n={})",
                split.fewest,
                split.most,
                split.needed.mean,
                split.needed.tokens,
                split.not_needed.mean,
                split.not_needed.tokens,
            );
        }
        out += "\n";
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(family: &str, prompt: &str) -> String {
        format!(r#"{{"family":"{family}","prompt":"{prompt}","answer":" 1","suffix":"."}}"#)
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = format!("{}\n\n{{\"family\": 3}}\n", line("chain", "a is"));
        let message = read_examples(&text).unwrap_err().to_string();
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn sample_keeps_the_first_of_each_family_in_order() {
        let text =
            ["a", "b", "c"].map(|p| line("chain", p)).join("\n") + "\n" + &line("compare", "d");
        let kept = sample(read_examples(&text).unwrap(), 2);
        let prompts: Vec<&str> = kept.iter().map(|e| e.prompt.as_str()).collect();
        assert_eq!(prompts, ["a", "b", "d"]);
    }

    fn row(family: &str, steps: usize, outcomes: &[bool]) -> Accuracy {
        Accuracy {
            family: family.to_string(),
            steps,
            correct: outcomes.iter().filter(|&&ok| ok).count(),
            total: outcomes.len(),
            outcomes: outcomes.to_vec(),
        }
    }

    #[test]
    fn need_split_follows_each_problem_by_its_place_in_its_family() {
        // Interleaved families: the n-th chain is the n-th chain outcome.
        let text = [
            line("chain", "a"),
            line("compare", "b"),
            line("chain", "c"),
            line("chain", "d"),
        ]
        .join("\n");
        let examples = read_examples(&text).unwrap();
        let computing: Vec<&EvalExample> = examples.iter().collect();
        let accuracy = [
            row("chain", 1, &[false, true, false]),
            row("chain", 8, &[true, true, false]),
            row("compare", 1, &[false]),
            row("compare", 8, &[true]),
        ];
        let per_example = [vec![5, 3], vec![4], vec![2, 2], vec![9]];
        let split = need_split(&computing, &accuracy, &per_example).unwrap();
        assert_eq!((split.fewest, split.most), (1, 8));
        // Needed: chain "a" and compare "b"; right at both: chain "c"; wrong at both: "d".
        assert_eq!(split.needed.tokens, 3);
        assert_eq!(split.needed.mean, 4.0);
        assert_eq!(split.not_needed.tokens, 2);
        assert_eq!(split.not_needed.mean, 2.0);
        let one_count = [row("chain", 4, &[true, true, false])];
        assert_eq!(need_split(&computing, &one_count, &per_example), None);
    }
}
