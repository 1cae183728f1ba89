//! Held-out evaluation of a model folder's `eval.jsonl`: does the model answer better when it
//! thinks longer, and does it think longer on answers than on plain filler text?

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::exit::ExitCriterion;
use crate::model::RecurrentModel;
use crate::qmatmul::QuantMatmul;
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
    fn default() -> Self {
        Self {
            init_scale: 1.0,
            warm_start: false,
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
    /// With the family of the example each answer token belongs to.
    answer: Vec<(String, usize)>,
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
async fn answers<B: QuantMatmul>(
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
async fn exit_use<B: QuantMatmul>(
    model: &RecurrentModel<B>,
    family: &str,
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
    for (t, &token) in tokens.iter().enumerate().take(tokens.len() - 1) {
        session.feed(&[token]).await?;
        let iterations = session.trace().positions.last().map_or(0, |p| p.iterations);
        if example.filler {
            used.filler.push(iterations);
        } else if span.contains(&(t + 1)) {
            used.answer.push((family.to_string(), iterations));
        } else {
            used.other.push(iterations);
        }
    }
    Ok(())
}

/// Accuracy per family at every count in `steps`, and the exit criterion's iteration use.
pub async fn evaluate<B: QuantMatmul>(
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
    for (example, tokens) in examples.iter().zip(&encoded) {
        exit_use(
            model,
            &example.family,
            tokens,
            exit,
            max_steps,
            start,
            &mut used,
        )
        .await?;
    }
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    let answer: Vec<usize> = used.answer.iter().map(|(_, n)| *n).collect();
    let answer_by_family = families
        .iter()
        .map(|&family| {
            let counts: Vec<usize> = used
                .answer
                .iter()
                .filter(|(f, _)| f == family)
                .map(|(_, n)| *n)
                .collect();
            FamilyExitUse {
                family: family.to_string(),
                tokens: counts.len(),
                mean: mean(&counts),
            }
        })
        .collect();
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
        },
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
}
