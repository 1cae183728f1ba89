//! The generated corpus: short English sentences, a share of them (a recipe setting) plain filler
//! and the rest carrying a computation whose answer can be checked, in three families of graded
//! difficulty.
//!
//! Each computing sentence comes from a [`Problem`] (the numbers and operations) rendered through
//! one of several templates. The train/test split is decided from the problem alone, so a held-out
//! problem never reaches training under any wording.

use std::collections::HashSet;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::ops::Range;

use loopscope_engine::eval::EvalExample;
use rand::seq::IndexedRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Kinds of reasoning, from easiest to hardest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// The larger or smaller of two numbers up to 99: one look at the tens digits mostly decides.
    Compare,
    /// A value 0-99 updated one to three times by plus/minus 1-19: a short sequential computation.
    Chain,
    /// Addition or subtraction of two-digit numbers with carries and borrows, answer below 200:
    /// the first answer digit already depends on every carry, so the model has to finish the sum
    /// in latent space before writing anything.
    Arithmetic,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Compare, Family::Chain, Family::Arithmetic];
}

/// What the corpus is made of, beyond its size and seed: settings of a recipe. Each has the
/// default every recipe had before it was a setting, so older recipes repeat their corpus.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    /// Share of sentences without a computation (easy tokens next to hard ones).
    #[serde(default = "default_filler_share")]
    pub filler_share: Share,
    #[serde(default)]
    pub filler: FillerStyle,
    /// Whether comparisons may ask for the person with the larger number instead of the number:
    /// binding a name to a number is a skill of its own, which no model here learned.
    #[serde(default = "default_compare_by_name")]
    pub compare_by_name: bool,
    /// The most updates a chain makes (each chain makes 1 to this many): every update is one more
    /// step the answer waits on, so longer chains ask for more iterations. Zero is refused when
    /// the recipe is read.
    #[serde(default = "default_chain_updates")]
    pub chain_updates: NonZeroU32,
    /// Chance that a training chain spells out a value on the way ("b is a plus 5, which is 12"),
    /// for each update but the last: a worked step teaches the model to keep the running value
    /// at that point of the sentence, which it must do unseen in the held-out chains, which
    /// never show one. 0 (the default) shows none.
    #[serde(default, skip_serializing_if = "Share::is_zero")]
    pub chain_values_shown: Share,
    /// The order a chain states its updates in.
    #[serde(default, skip_serializing_if = "ChainOrder::is_forward")]
    pub chain_order: ChainOrder,
    /// How often each family's problems are drawn, relative to the others: a skill the model
    /// keeps failing can be practised more without changing how any problem is worded.
    #[serde(default, skip_serializing_if = "FamilyWeights::is_even")]
    pub family_weights: FamilyWeights,
}

/// Relative chances of the families in the training corpus (the held-out set keeps an equal
/// number of each). Negative, non-finite or all-zero weights are refused when a recipe is read.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedWeights")]
pub struct FamilyWeights {
    compare: f64,
    chain: f64,
    arithmetic: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedWeights {
    compare: f64,
    chain: f64,
    arithmetic: f64,
}

impl TryFrom<UncheckedWeights> for FamilyWeights {
    type Error = String;

    fn try_from(w: UncheckedWeights) -> Result<Self, String> {
        let all = [w.compare, w.chain, w.arithmetic];
        if all.iter().any(|x| !x.is_finite() || *x < 0.0) || all.iter().sum::<f64>() <= 0.0 {
            return Err(format!(
                "family_weights must be finite, not negative and not all zero: {all:?}"
            ));
        }
        Ok(Self {
            compare: w.compare,
            chain: w.chain,
            arithmetic: w.arithmetic,
        })
    }
}

impl Default for FamilyWeights {
    fn default() -> Self {
        Self {
            compare: 1.0,
            chain: 1.0,
            arithmetic: 1.0,
        }
    }
}

impl FamilyWeights {
    fn is_even(&self) -> bool {
        self.compare == self.chain && self.chain == self.arithmetic
    }

    fn weight(&self, family: Family) -> f64 {
        match family {
            Family::Compare => self.compare,
            Family::Chain => self.chain,
            Family::Arithmetic => self.arithmetic,
        }
    }

    fn draw(&self, rng: &mut impl Rng) -> Family {
        if self.is_even() {
            // The draw every corpus made before weights were a setting, so older recipes repeat.
            return *Family::ALL.choose(rng).expect("families exist");
        }
        let total: f64 = Family::ALL.iter().map(|&f| self.weight(f)).sum();
        let mut left = rng.random::<f64>() * total;
        for family in Family::ALL {
            if left < self.weight(family) {
                return family;
            }
            left -= self.weight(family);
        }
        // Rounding can leave a sliver past the last family.
        *Family::ALL
            .iter()
            .rev()
            .find(|&&f| self.weight(f) > 0.0)
            .expect("some weight is positive")
    }
}

/// The order of a chain's statements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainOrder {
    /// Each update follows the one it builds on ("a is 7. b is a plus 5. So b is"): a value can
    /// be worked out where it is stated, but under an exit criterion that place stops thinking
    /// as soon as its own next token is clear, so the value must be kept from there.
    #[default]
    Forward,
    /// The asked-for variable first, the starting value last ("b is a plus 5. a is 7. So b is"),
    /// in variable wording only: nothing can be worked out before the question, so the whole
    /// chain is followed, one update after another, at the answer's place.
    Backward,
    /// Each chain forward or backward with equal chance: a model going on from backward chains
    /// keeps them while it learns (or keeps) the forward ones.
    Mixed,
}

impl ChainOrder {
    fn is_forward(&self) -> bool {
        *self == ChainOrder::Forward
    }

    /// Whether the next chain is stated backward; draws only for `Mixed`, so the other orders'
    /// corpora are unchanged.
    fn draw_backward(self, rng: &mut impl Rng) -> bool {
        match self {
            ChainOrder::Forward => false,
            ChainOrder::Backward => true,
            ChainOrder::Mixed => rng.random_bool(0.5),
        }
    }
}

/// A chance from 0 to 1. Anything else is refused when a recipe is read: a draw with it would
/// panic halfway through building the corpus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Share(f64);

impl TryFrom<f64> for Share {
    type Error = String;

    fn try_from(p: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&p) {
            Ok(Self(p))
        } else {
            Err(format!("a share or chance must be from 0 to 1, not {p}"))
        }
    }
}

impl From<Share> for f64 {
    fn from(share: Share) -> f64 {
        share.0
    }
}

impl Share {
    pub fn get(self) -> f64 {
        self.0
    }

    fn is_zero(&self) -> bool {
        self.0 == 0.0
    }
}

fn default_filler_share() -> Share {
    Share(0.25)
}

fn default_compare_by_name() -> bool {
    true
}

fn default_chain_updates() -> NonZeroU32 {
    NonZeroU32::new(3).expect("3 is not zero")
}

impl Mix {
    /// The corpus every recipe used before these were settings: word-list filler, named comparisons.
    #[cfg(test)]
    pub fn word_lists(filler_share: f64) -> Self {
        Self {
            filler_share: Share::try_from(filler_share).expect("a share from 0 to 1"),
            filler: FillerStyle::WordLists,
            compare_by_name: true,
            chain_updates: default_chain_updates(),
            chain_values_shown: Share::default(),
            chain_order: ChainOrder::Forward,
            family_weights: FamilyWeights::default(),
        }
    }
}

/// How filler sentences are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillerStyle {
    /// A small grammar whose slots take words uniformly from lists: every slot is a guess, so
    /// these are the least predictable tokens of the corpus, not the easiest.
    #[default]
    WordLists,
    /// Everyday sentences from a fixed stock, a few with a person's name: after a sentence's
    /// first words the rest is known, as much of natural text is.
    Stock,
}

/// One sentence split where the answer sits: `prompt + answer + suffix` is the whole sentence.
/// The answer starts with a space, so tokenizing the prompt and the answer apart gives the same
/// tokens as tokenizing them together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub family: Family,
    pub prompt: String,
    pub answer: String,
    pub suffix: String,
}

impl Example {
    pub fn sentence(&self) -> String {
        format!("{}{}{}", self.prompt, self.answer, self.suffix)
    }
}

/// The content of a computing sentence, independent of its wording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// `a - b` when `subtract` (then `a >= b`), else `a + b`.
    Arithmetic { a: u32, b: u32, subtract: bool },
    /// `start` followed by signed updates; every intermediate value stays within 0-99.
    Chain { start: u32, steps: Vec<i32> },
    /// Pick the larger (or smaller) of two different numbers.
    Compare { a: u32, b: u32, larger: bool },
}

impl Problem {
    pub fn family(&self) -> Family {
        match self {
            Problem::Arithmetic { .. } => Family::Arithmetic,
            Problem::Chain { .. } => Family::Chain,
            Problem::Compare { .. } => Family::Compare,
        }
    }

    /// The number the sentence asks for (for comparisons, the chosen one of the two).
    pub fn solution(&self) -> u32 {
        match *self {
            Problem::Arithmetic { a, b, subtract } => {
                if subtract {
                    a - b
                } else {
                    a + b
                }
            }
            Problem::Chain { start, ref steps } => {
                steps.iter().fold(start as i32, |value, step| value + step) as u32
            }
            Problem::Compare { a, b, larger } => {
                if larger {
                    a.max(b)
                } else {
                    a.min(b)
                }
            }
        }
    }

    /// A canonical description: operand order is dropped where it doesn't change the problem,
    /// so `389 + 472` and `472 + 389` land in the same split.
    fn key(&self) -> String {
        match *self {
            Problem::Arithmetic {
                a,
                b,
                subtract: true,
            } => format!("arithmetic {a}-{b}"),
            Problem::Arithmetic {
                a,
                b,
                subtract: false,
            } => {
                format!("arithmetic {}+{}", a.min(b), a.max(b))
            }
            Problem::Chain { start, ref steps } => {
                let steps: String = steps.iter().map(|s| format!("{s:+}")).collect();
                format!("chain {start}{steps}")
            }
            Problem::Compare { a, b, larger } => {
                let pick = if larger { "max" } else { "min" };
                format!("compare {pick} {} {}", a.min(b), a.max(b))
            }
        }
    }
}

/// Whether a problem belongs to the test split (about one in ten). A fixed hash rather than
/// `std`'s hasher, whose output may change between Rust releases.
pub fn is_held_out(problem: &Problem) -> bool {
    let fnv = problem
        .key()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    // splitmix64 finalizer: FNV's low bits alone mix poorly.
    let mut z = fnv;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z % 10 == 0
}

/// Generated text with the place of every answer in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    /// One sentence per line, each ending with `\n`.
    pub text: String,
    /// Byte ranges of the answers in `text`, in order: the tokens the training loss can weigh more.
    pub answers: Vec<Range<usize>>,
}

/// `sentences` sentences of the training split: a share `mix.filler_share` of filler, the rest
/// spread evenly over the families. The same seed gives the same text.
pub fn training_text(seed: u64, sentences: usize, mix: &Mix) -> Corpus {
    let mut corpus = Corpus {
        text: String::new(),
        answers: Vec::new(),
    };
    for (_, sentence, answer) in training_sentences(seed, *mix).take(sentences) {
        let start = corpus.text.len();
        corpus.text.push_str(&sentence);
        corpus.text.push('\n');
        if let Some(answer) = answer {
            corpus
                .answers
                .push(start + answer.start..start + answer.end);
        }
    }
    corpus
}

/// Training sentences with the problem behind each and the answer's byte range (`None` for
/// filler).
fn training_sentences(
    seed: u64,
    mix: Mix,
) -> impl Iterator<Item = (Option<Problem>, String, Option<Range<usize>>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    std::iter::repeat_with(move || {
        if rng.random_bool(mix.filler_share.get()) {
            return (None, filler(mix.filler, &mut rng), None);
        }
        let family = mix.family_weights.draw(&mut rng);
        let problem = sample_problem(family, false, &mix, &mut rng);
        let example = render(&problem, &mix, &mut rng);
        let answer = example.prompt.len()..example.prompt.len() + example.answer.len();
        (Some(problem), example.sentence(), Some(answer))
    })
}

/// `per_family` examples of each family from the held-out split, grouped by family, each
/// problem at most once. Returns fewer when a family runs out of distinct held-out problems.
pub fn test_set(seed: u64, per_family: usize, mix: &Mix) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut examples = Vec::with_capacity(per_family * Family::ALL.len());
    for family in Family::ALL {
        let mut seen = HashSet::new();
        let mut attempts = 0;
        while seen.len() < per_family && attempts < per_family * 100 {
            attempts += 1;
            let problem = sample_problem(family, true, mix, &mut rng);
            if seen.insert(problem.key()) {
                // Held-out chains never show a value on the way: the model must keep it unseen.
                let unshown = Mix {
                    chain_values_shown: Share::default(),
                    ..*mix
                };
                examples.push(render(&problem, &unshown, &mut rng));
            }
        }
    }
    examples
}

/// `count` filler sentences for measuring how many iterations easy tokens use. Filler has no
/// split: these may also occur in training, which is harmless since nothing in them is checked.
pub fn filler_set(seed: u64, count: usize, style: FillerStyle) -> Vec<String> {
    // Another stream than `test_set`'s, so adding filler leaves the held-out problems as they were.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00f1_11e7);
    (0..count).map(|_| filler(style, &mut rng)).collect()
}

/// One JSON object per line with `family`, `prompt`, `answer` and `suffix`: the eval file the
/// engine reads from the model folder. Filler sentences follow the examples as family `filler`
/// with the whole sentence as the prompt and an empty answer.
pub fn write_eval_jsonl(
    examples: &[Example],
    fillers: &[String],
    mut writer: impl Write,
) -> io::Result<()> {
    for example in examples {
        serde_json::to_writer(&mut writer, example)?;
        writer.write_all(b"\n")?;
    }
    for sentence in fillers {
        let line = EvalExample {
            family: "filler".into(),
            prompt: sentence.clone(),
            answer: String::new(),
            suffix: String::new(),
        };
        serde_json::to_writer(&mut writer, &line)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()
}

fn sample_problem(family: Family, held_out: bool, mix: &Mix, rng: &mut impl Rng) -> Problem {
    loop {
        let problem = match family {
            Family::Arithmetic => arithmetic(rng),
            Family::Chain => chain(mix.chain_updates, rng),
            Family::Compare => compare(rng),
        };
        if is_held_out(&problem) == held_out {
            return problem;
        }
    }
}

fn arithmetic(rng: &mut impl Rng) -> Problem {
    let subtract = rng.random_bool(0.5);
    let (x, y) = (operand(rng), operand(rng));
    let (a, b) = if subtract {
        (x.max(y), x.min(y))
    } else {
        (x, y)
    };
    Problem::Arithmetic { a, b, subtract }
}

/// Two-digit operands: sums with carries are already out of reach of one iteration of a small
/// model, and stay learnable in a CPU-sized training run.
fn operand(rng: &mut impl Rng) -> u32 {
    rng.random_range(10..100)
}

fn chain(most_updates: NonZeroU32, rng: &mut impl Rng) -> Problem {
    let start = rng.random_range(0..100);
    let mut value = start as i32;
    let steps = (0..rng.random_range(1..=most_updates.get()))
        .map(|_| {
            let size = rng.random_range(1..20);
            let up = if value + size > 99 {
                false
            } else if value - size < 0 {
                true
            } else {
                rng.random_bool(0.5)
            };
            let step = if up { size } else { -size };
            value += step;
            step
        })
        .collect();
    Problem::Chain { start, steps }
}

fn compare(rng: &mut impl Rng) -> Problem {
    let a = rng.random_range(1..100);
    let b = loop {
        let b = rng.random_range(1..100);
        if b != a {
            break b;
        }
    };
    Problem::Compare {
        a,
        b,
        larger: rng.random_bool(0.5),
    }
}

const PEOPLE: [(&str, &str); 16] = [
    ("Tom", "he"),
    ("Mia", "she"),
    ("Sam", "he"),
    ("Anna", "she"),
    ("Ben", "he"),
    ("Lily", "she"),
    ("Max", "he"),
    ("Emma", "she"),
    ("Leo", "he"),
    ("Zoe", "she"),
    ("Jack", "he"),
    ("Nora", "she"),
    ("Finn", "he"),
    ("Ruby", "she"),
    ("Owen", "he"),
    ("Ella", "she"),
];
/// Countable things with a regular plural.
const THINGS: [&str; 14] = [
    "marble", "apple", "coin", "book", "stamp", "shell", "card", "sticker", "cookie", "pencil",
    "flower", "button", "rock", "toy",
];
const CONTAINERS: [&str; 6] = ["box", "jar", "bag", "basket", "drawer", "bowl"];
const VARIABLES: [&str; 12] = ["a", "b", "c", "d", "m", "n", "p", "q", "r", "x", "y", "z"];

fn pick<'a>(list: &[&'a str], rng: &mut impl Rng) -> &'a str {
    list.choose(rng).expect("word lists are not empty")
}

/// Two different people.
fn two_people(rng: &mut impl Rng) -> (&'static str, &'static str) {
    let first = PEOPLE.choose(rng).expect("people exist").0;
    loop {
        let second = PEOPLE.choose(rng).expect("people exist").0;
        if second != first {
            return (first, second);
        }
    }
}

fn counted(n: u32, noun: &str) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// `problem` in words, as `mix` asks: comparisons name a person as the answer only when
/// `compare_by_name` allows; chains follow `chain_order` and spell out each value on the way with
/// chance `chain_values_shown`.
fn render(problem: &Problem, mix: &Mix, rng: &mut impl Rng) -> Example {
    let family = problem.family();
    let number = format!(" {}", problem.solution());
    let (prompt, answer, suffix) = match *problem {
        Problem::Arithmetic { a, b, subtract } => {
            let c = problem.solution();
            let (name, he) = *PEOPLE.choose(rng).expect("people exist");
            let thing = pick(&THINGS, rng);
            let box_ = pick(&CONTAINERS, rng);
            let (prompt, suffix) = match (subtract, rng.random_range(0..4)) {
                (false, 0) => {
                    let verb = pick(&["found", "won", "got", "bought"], rng);
                    (
                        format!("{name} had {a} {thing}s and {verb} {b} more, so now {he} has"),
                        format!(" {}.", counted(c, thing)),
                    )
                }
                (false, 1) => (
                    format!(
                        "There were {a} {thing}s in the {box_}, and {name} put in {b} more, \
                         which makes"
                    ),
                    format!(" {} in the {box_}.", counted(c, thing)),
                ),
                (false, 2) => (format!("{a} plus {b} is"), ".".to_string()),
                (false, _) => (
                    format!(
                        "{name} read {a} pages on Monday and {b} pages on Tuesday, so {he} read"
                    ),
                    " pages in all.".to_string(),
                ),
                (true, 0) => {
                    let verb = pick(&["lost", "gave away", "sold"], rng);
                    (
                        format!("{name} had {a} {thing}s and {verb} {b} of them, so now {he} has"),
                        format!(" {}.", counted(c, thing)),
                    )
                }
                (true, 1) => (
                    format!(
                        "There were {a} {thing}s in the {box_}, and {name} took out {b}, \
                         which leaves"
                    ),
                    format!(" {} in the {box_}.", counted(c, thing)),
                ),
                (true, 2) => (format!("{a} minus {b} is"), ".".to_string()),
                (true, _) => (
                    format!("If you take {b} away from {a}, you get"),
                    ".".to_string(),
                ),
            };
            (prompt, number, suffix)
        }
        Problem::Chain { start, ref steps } => {
            let (prompt, suffix) = render_chain(start, steps, problem.solution(), mix, rng);
            (prompt, number, suffix)
        }
        Problem::Compare { a, b, larger } => {
            let (first, second) = two_people(rng);
            let winner = |x: u32| {
                if x == problem.solution() {
                    first
                } else {
                    second
                }
            };
            match rng.random_range(0..if mix.compare_by_name { 4 } else { 2 }) {
                0 => {
                    let which = if larger { "larger" } else { "smaller" };
                    (
                        format!("Which is {which}, {a} or {b}? It is"),
                        number,
                        ".".to_string(),
                    )
                }
                1 => {
                    let which = if larger { "bigger" } else { "smaller" };
                    (
                        format!("Between {a} and {b}, the {which} number is"),
                        number,
                        ".".to_string(),
                    )
                }
                2 => {
                    let thing = pick(&THINGS, rng);
                    let which = if larger { "more" } else { "fewer" };
                    (
                        format!(
                            "{first} has {a} {} and {second} has {b} {}, so the one with {which} is",
                            counted(a, thing),
                            counted(b, thing)
                        ),
                        format!(" {}", winner(a)),
                        ".".to_string(),
                    )
                }
                _ => {
                    let which = if larger { "older" } else { "younger" };
                    (
                        format!(
                            "{first} is {a} {} old and {second} is {b}, so the {which} one is",
                            counted(a, "year")
                        ),
                        format!(" {}", winner(a)),
                        ".".to_string(),
                    )
                }
            }
        }
    };
    Example {
        family,
        prompt,
        answer,
        suffix,
    }
}

/// Prompt and suffix of a chain sentence. Each update but the last is followed by the value it
/// gives with chance `shown` (the last one's value is the answer).
fn render_chain(
    start: u32,
    steps: &[i32],
    result: u32,
    mix: &Mix,
    rng: &mut impl Rng,
) -> (String, String) {
    let shown = mix.chain_values_shown.get();
    let backward = mix.chain_order.draw_backward(rng);
    let style = rng.random_range(0..4);
    // Drawn only when some are shown, so a recipe without them keeps its corpus.
    let mut value = start as i32;
    let values: Vec<Option<i32>> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            value += step;
            let show = i + 1 < steps.len() && shown > 0.0 && rng.random_bool(shown);
            show.then_some(value)
        })
        .collect();
    let worked = |text: String, value: Option<i32>, join: &str| match value {
        Some(value) => format!("{text}{join}{value}"),
        None => text,
    };
    match style {
        _ if backward || style < 2 => {
            let mut names = VARIABLES.to_vec();
            let mut take = |rng: &mut dyn Rng| names.swap_remove(rng.random_range(0..names.len()));
            let mut current = take(rng);
            let let_style = rng.random_bool(0.5);
            let mut parts = vec![if let_style {
                format!("let {current} be {start}")
            } else {
                format!("{current} is {start}")
            }];
            for (&step, &value) in steps.iter().zip(&values) {
                let next = take(rng);
                let op = if step > 0 { "plus" } else { "minus" };
                let size = step.abs();
                let update = if let_style {
                    format!("let {next} be {current} {op} {size}")
                } else {
                    format!("{next} is {current} {op} {size}")
                };
                parts.push(worked(update, value, ", which is "));
                current = next;
            }
            if backward {
                parts.reverse();
            }
            let prompt = if let_style {
                // Every part starts with "let"; the sentence starts with "Let".
                let joined = parts.join(if backward { ", " } else { ", then " });
                format!("L{}. Then {current} is", &joined[1..])
            } else {
                format!("{}. So {current} is", parts.join(". "))
            };
            (prompt, ".".to_string())
        }
        2 => {
            let (name, _) = *PEOPLE.choose(rng).expect("people exist");
            let moves: Vec<String> = steps
                .iter()
                .zip(&values)
                .map(|(&s, &value)| {
                    let verb = if s > 0 { "gains" } else { "loses" };
                    worked(format!("{verb} {}", s.abs()), value, " to ")
                })
                .collect();
            (
                format!(
                    "{name} starts with {start} points, then {}, and ends with",
                    moves.join(", then ")
                ),
                format!(" {}.", counted(result, "point")),
            )
        }
        _ => {
            let moves: Vec<String> = steps
                .iter()
                .zip(&values)
                .map(|(&s, &value)| {
                    let verb = if s > 0 { "add" } else { "take away" };
                    worked(format!("{verb} {}", s.abs()), value, " to get ")
                })
                .collect();
            (
                format!("Start at {start}, {}, and you get", moves.join(", ")),
                ".".to_string(),
            )
        }
    }
}

const ADJECTIVES: [&str; 16] = [
    "red", "blue", "green", "small", "big", "old", "new", "happy", "quiet", "soft", "bright",
    "funny", "brown", "little", "warm", "tall",
];
const ANIMALS: [&str; 10] = [
    "dog", "cat", "bird", "horse", "rabbit", "duck", "goat", "cow", "frog", "pig",
];
const PLACES: [&str; 12] = [
    "park", "garden", "kitchen", "school", "library", "river", "forest", "shop", "house", "beach",
    "farm", "yard",
];
const OBJECTS: [&str; 12] = [
    "ball", "hat", "kite", "cup", "chair", "door", "window", "bike", "coat", "lamp", "map", "boat",
];
const ACTIONS: [&str; 10] = [
    "saw", "found", "liked", "painted", "carried", "washed", "fixed", "lost", "held", "opened",
];
const MOVES: [&str; 9] = [
    "slept", "ran", "jumped", "sang", "waited", "played", "sat", "walked", "rested",
];
const TIMES: [&str; 8] = [
    "in the morning",
    "after lunch",
    "in the evening",
    "on Sunday",
    "every day",
    "at night",
    "before school",
    "last week",
];
const WEATHER: [&str; 6] = ["sunny", "rainy", "cold", "windy", "warm", "quiet"];

/// A sentence with nothing to compute.
fn filler(style: FillerStyle, rng: &mut impl Rng) -> String {
    match style {
        FillerStyle::WordLists => word_list_filler(rng),
        FillerStyle::Stock => stock_filler(rng),
    }
}

/// Everyday sentences; `{name}` and `{he}` take a person and their pronoun.
const STOCK: [&str; 40] = [
    "The sun rises in the east and sets in the west.",
    "Once upon a time there was a little house in the woods.",
    "The cat sat on the mat and went to sleep.",
    "It is a good idea to drink water every day.",
    "The shop on the corner opens early in the morning.",
    "Birds sing in the trees when the weather is nice.",
    "We had soup and bread for dinner last night.",
    "The train to the city leaves from the old station.",
    "After the rain, the garden smelled fresh and green.",
    "The library is a quiet place to read a book.",
    "Please close the door when you leave the room.",
    "The children played in the park until it got dark.",
    "Winter is cold, and summer is warm.",
    "The river runs down the hill and into the sea.",
    "My grandmother makes the best apple pie in town.",
    "The moon was bright and the stars were out.",
    "The dog barked at the mailman again this morning.",
    "There is a small bridge over the river near the farm.",
    "The teacher wrote the date on the board.",
    "The wind blew the leaves across the yard.",
    "A cup of tea is nice on a cold afternoon.",
    "The bus was late, so we walked to school.",
    "The flowers in the window box need water.",
    "On weekends the market is full of people.",
    "The old clock in the hall still keeps good time.",
    "Thank you very much for your kind letter.",
    "The kitchen smelled of fresh bread and coffee.",
    "The boat sailed slowly out of the harbor.",
    "Snow fell all night and covered the road.",
    "The museum is closed on Mondays.",
    "{name} went to bed early because {he} was tired.",
    "{name} likes to read a book before going to sleep.",
    "{name} walked the dog around the lake after dinner.",
    "{name} opened the window to let in some fresh air.",
    "{name} could not find the keys, so {he} looked under the bed.",
    "{name} waved goodbye and got on the bus.",
    "{name} wrote a long letter to an old friend.",
    "{name} put on a warm coat and went outside.",
    "When the phone rang, {name} was in the garden.",
    "{name} made a sandwich and sat down by the window.",
];

fn stock_filler(rng: &mut impl Rng) -> String {
    let (name, he) = *PEOPLE.choose(rng).expect("people exist");
    pick(&STOCK, rng)
        .replace("{name}", name)
        .replace("{he}", he)
}

/// A sentence from a small grammar over a few hundred words.
fn word_list_filler(rng: &mut impl Rng) -> String {
    let (name, he) = *PEOPLE.choose(rng).expect("people exist");
    let (adj, animal, place) = (
        pick(&ADJECTIVES, rng),
        pick(&ANIMALS, rng),
        pick(&PLACES, rng),
    );
    let (object, action, time) = (pick(&OBJECTS, rng), pick(&ACTIONS, rng), pick(&TIMES, rng));
    let walk = pick(&MOVES, rng);
    match rng.random_range(0..7) {
        0 => format!("{name} {action} the {adj} {object} in the {place}."),
        1 => format!("The {adj} {animal} {walk} near the {place} {time}."),
        2 => {
            let (first, second) = two_people(rng);
            format!("{first} and {second} went to the {place} {time}.")
        }
        3 => {
            let weather = pick(&WEATHER, rng);
            format!("It was a {weather} day, so {name} stayed in the {place}.")
        }
        4 => format!(
            "{name} likes {animal}s and {}s, but {he} does not like {object}s.",
            pick(&THINGS, rng)
        ),
        5 => format!("In the {place}, the {animal} {walk} while {name} {action} the {object}."),
        _ => format!(
            "{name} said that the {object} was {adj} and {}.",
            pick(&ADJECTIVES, rng)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(p: f64) -> Share {
        Share::try_from(p).unwrap()
    }

    /// The numbers in a sentence, in order.
    fn numbers(text: &str) -> Vec<u32> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    }

    fn answer_number(example: &Example) -> u32 {
        example.answer.trim().parse().unwrap()
    }

    #[test]
    fn same_seed_same_data() {
        assert_eq!(
            training_text(7, 500, &Mix::word_lists(0.25)),
            training_text(7, 500, &Mix::word_lists(0.25))
        );
        assert_ne!(
            training_text(7, 500, &Mix::word_lists(0.25)),
            training_text(8, 500, &Mix::word_lists(0.25))
        );
        assert_eq!(
            test_set(3, 50, &Mix::word_lists(0.25)),
            test_set(3, 50, &Mix::word_lists(0.25))
        );
    }

    #[test]
    fn arithmetic_answers_are_right() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..2000 {
            let mix = Mix::word_lists(0.1);
            let example = render(
                &sample_problem(Family::Arithmetic, false, &mix, &mut rng),
                &mix,
                &mut rng,
            );
            let n = numbers(&example.prompt);
            assert_eq!(n.len(), 2, "{example:?}");
            let subtract = ["minus", "lost", "gave away", "sold", "took out", "take"]
                .iter()
                .any(|cue| example.prompt.contains(cue));
            let expected = if subtract {
                n[0].max(n[1]) - n[0].min(n[1])
            } else {
                n[0] + n[1]
            };
            assert_eq!(answer_number(&example), expected, "{example:?}");
            assert!(expected < 200 && n.iter().all(|&x| (10..200).contains(&x)));
            assert!(example.answer.starts_with(' '));
        }
    }

    #[test]
    fn chain_answers_are_right() {
        let mix = Mix {
            chain_updates: NonZeroU32::new(6).unwrap(),
            chain_values_shown: share(0.5),
            ..Mix::word_lists(0.1)
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (mut most_updates, mut shown_values) = (0, 0);
        for _ in 0..2000 {
            let problem = sample_problem(Family::Chain, false, &mix, &mut rng);
            let Problem::Chain { steps, .. } = &problem else {
                panic!("{problem:?}")
            };
            most_updates = most_updates.max(steps.len());
            let example = render(&problem, &mix, &mut rng);
            // Replay the sentence: each number after the first applies the last cue word seen,
            // except a value shown on the way, which must be the running value.
            let (mut value, mut sign, mut shows) = (None::<i64>, 1, false);
            let mut shown_here = 0;
            for word in example.prompt.split(|c: char| !c.is_alphanumeric()) {
                match word {
                    "plus" | "gains" | "add" => sign = 1,
                    "minus" | "loses" | "take" => sign = -1,
                    "which" | "to" | "get" => shows = true,
                    _ => {
                        if let Ok(n) = word.parse::<i64>() {
                            if std::mem::take(&mut shows) {
                                assert_eq!(Some(n), value, "{example:?}");
                                shown_here += 1;
                                continue;
                            }
                            value = Some(value.map_or(n, |v| v + sign * n));
                            assert!((0..100).contains(&value.unwrap()), "{example:?}");
                        }
                    }
                }
            }
            assert_eq!(
                value.unwrap(),
                i64::from(answer_number(&example)),
                "{example:?}"
            );
            // The last update's value is the answer, never given away.
            assert!(shown_here < steps.len(), "{example:?}");
            shown_values += shown_here;
        }
        assert_eq!(most_updates, 6);
        assert!(shown_values > 500, "{shown_values}");
        let zero = serde_json::from_str::<Mix>(r#"{"chain_updates": 0}"#).unwrap_err();
        assert!(zero.to_string().contains("nonzero"), "{zero}");
    }

    #[test]
    fn backward_chains_state_the_start_last() {
        let mix = Mix {
            chain_updates: NonZeroU32::new(4).unwrap(),
            chain_values_shown: share(0.5),
            chain_order: ChainOrder::Backward,
            ..Mix::word_lists(0.1)
        };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..2000 {
            let problem = sample_problem(Family::Chain, false, &mix, &mut rng);
            let example = render(&problem, &mix, &mut rng);
            // Statements are "x is y plus 5", "let x be 7", ..., split by ". ", ", " and "then";
            // the question names the variable asked for.
            let text = example.prompt.replace(". Then ", ". So ");
            let (statements, asked) = text.rsplit_once(". So ").unwrap();
            let asked = asked.strip_suffix(" is").unwrap();
            let mut defined: Vec<(&str, Vec<&str>)> = Vec::new();
            for statement in statements.split([',', '.']).map(str::trim) {
                let words: Vec<&str> = statement
                    .split(' ')
                    .filter(|w| !["Let", "let", "is", "be", "which", ""].contains(w))
                    .collect();
                if words.len() == 1 {
                    continue; // a value shown on the way ("which is 12")
                }
                defined.push((words[0], words[1..].to_vec()));
            }
            assert_eq!(defined.len(), problem_steps(&problem) + 1, "{example:?}");
            assert_eq!(defined[0].0, asked, "{example:?}");
            // Each update names the variable of the next statement; the last is a number.
            let mut value = defined.last().unwrap().1[0].parse::<i64>().unwrap();
            for pair in defined.windows(2).rev() {
                let (_, rhs) = &pair[0];
                assert_eq!(rhs[0], pair[1].0, "{example:?}");
                let size: i64 = rhs[2].parse().unwrap();
                value += if rhs[1] == "plus" { size } else { -size };
            }
            assert_eq!(value, i64::from(answer_number(&example)), "{example:?}");
        }
    }

    #[test]
    fn mixed_chains_come_in_both_orders() {
        let mix = Mix {
            chain_order: ChainOrder::Mixed,
            ..Mix::word_lists(0.1)
        };
        // "n is 77" or "let n be 77": a statement that gives a number, not an update.
        let gives_number = |statement: &str| {
            let words: Vec<&str> = statement.split_whitespace().rev().take(2).collect();
            words[0].parse::<u32>().is_ok() && ["is", "be"].contains(&words[1])
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut forward, mut backward) = (0, 0);
        for _ in 0..2000 {
            let problem = sample_problem(Family::Chain, false, &mix, &mut rng);
            let example = render(&problem, &mix, &mut rng);
            let text = example.prompt.replace(". Then ", ". So ");
            let Some((statements, _)) = text.rsplit_once(". So ") else {
                continue; // a forward chain in one of the other wordings
            };
            let parts: Vec<&str> = statements.split([',', '.']).map(str::trim).collect();
            match (gives_number(parts[0]), gives_number(parts[parts.len() - 1])) {
                (true, false) => forward += 1,
                (false, true) => backward += 1,
                _ => panic!("{example:?}"),
            }
        }
        // Half are backward; half of the forward ones use the variable wording.
        assert!((850..1150).contains(&backward), "{backward}");
        assert!((350..650).contains(&forward), "{forward}");
    }

    fn problem_steps(problem: &Problem) -> usize {
        match problem {
            Problem::Chain { steps, .. } => steps.len(),
            _ => panic!("{problem:?}"),
        }
    }

    #[test]
    fn held_out_chains_show_no_values_on_the_way() {
        let mix = Mix {
            chain_values_shown: share(1.0),
            ..Mix::word_lists(0.1)
        };
        let chains: Vec<_> = test_set(5, 100, &mix)
            .into_iter()
            .filter(|e| e.family == Family::Chain)
            .collect();
        assert_eq!(chains.len(), 100);
        for example in chains {
            assert!(
                !example.prompt.contains("which") && !example.prompt.contains(" to "),
                "{example:?}"
            );
        }
        // Without shown values the corpus is the one recipes made before the setting existed.
        let before = Mix::word_lists(0.25);
        let text = training_text(9, 300, &before).text;
        assert!(!text.contains(", which is ") && !text.contains(" to get "));
    }

    #[test]
    fn compare_answers_are_right() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let mix = Mix::word_lists(0.1);
            let example = render(
                &sample_problem(Family::Compare, false, &mix, &mut rng),
                &mix,
                &mut rng,
            );
            let n = numbers(&example.prompt);
            assert_eq!(n.len(), 2, "{example:?}");
            let larger = ["larger", "bigger", "more", "older"]
                .iter()
                .any(|cue| example.prompt.contains(cue));
            let expected = if larger {
                n[0].max(n[1])
            } else {
                n[0].min(n[1])
            };
            let chosen = match example.answer.trim().parse::<u32>() {
                Ok(number) => number,
                // A name: the number right after it in the prompt is theirs.
                Err(_) => {
                    let after = example.prompt.split(example.answer.trim()).nth(1).unwrap();
                    numbers(after)[0]
                }
            };
            assert_eq!(chosen, expected, "{example:?}");
        }
    }

    #[test]
    fn test_problems_never_reach_training() {
        for (problem, _, _) in training_sentences(11, Mix::word_lists(0.25)).take(50_000) {
            if let Some(problem) = problem {
                assert!(!is_held_out(&problem), "{problem:?}");
            }
        }
        let train: HashSet<String> = training_text(11, 50_000, &Mix::word_lists(0.25))
            .text
            .lines()
            .map(String::from)
            .collect();
        let test = test_set(12, 300, &Mix::word_lists(0.25));
        assert!(test.iter().all(|e| !train.contains(&e.sentence())));
    }

    #[test]
    fn about_a_tenth_is_held_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for family in Family::ALL {
            let held = (0..10_000)
                .filter(|_| {
                    let problem = match family {
                        Family::Arithmetic => arithmetic(&mut rng),
                        Family::Chain => chain(default_chain_updates(), &mut rng),
                        Family::Compare => compare(&mut rng),
                    };
                    is_held_out(&problem)
                })
                .count();
            assert!((700..1300).contains(&held), "{family:?}: {held}");
        }
    }

    #[test]
    fn split_ignores_operand_order() {
        for a in 10..60 {
            for b in 10..60 {
                let sum = |a, b| {
                    is_held_out(&Problem::Arithmetic {
                        a,
                        b,
                        subtract: false,
                    })
                };
                assert_eq!(sum(a, b), sum(b, a));
            }
        }
    }

    #[test]
    fn family_weights_set_how_often_each_family_is_drawn() {
        let weights: FamilyWeights =
            serde_json::from_str(r#"{"compare": 0, "chain": 1, "arithmetic": 3}"#).unwrap();
        let mix = Mix {
            family_weights: weights,
            ..Mix::word_lists(0.0)
        };
        let count = |family| {
            training_sentences(5, mix)
                .take(4000)
                .filter(|(p, _, _)| p.as_ref().map(Problem::family) == Some(family))
                .count()
        };
        assert_eq!(count(Family::Compare), 0);
        let arithmetic = count(Family::Arithmetic);
        assert!((2850..3150).contains(&arithmetic), "{arithmetic} of 4000");
        for bad in [
            r#"{"compare": -1, "chain": 1, "arithmetic": 1}"#,
            r#"{"compare": 0, "chain": 0, "arithmetic": 0}"#,
        ] {
            let err = serde_json::from_str::<FamilyWeights>(bad).unwrap_err();
            assert!(err.to_string().contains("family_weights must be"), "{err}");
        }
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused_when_read() {
        let mix: Mix =
            serde_json::from_str(r#"{"filler_share": 1, "chain_values_shown": 0}"#).unwrap();
        assert_eq!(mix.filler_share.get(), 1.0);
        for bad in [
            r#"{"filler_share": 1.5}"#,
            r#"{"chain_values_shown": -0.1}"#,
        ] {
            let err = serde_json::from_str::<Mix>(bad).unwrap_err();
            assert!(err.to_string().contains("from 0 to 1"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_family_and_filler_appear() {
        let filler_count = |share| {
            training_sentences(5, Mix::word_lists(share))
                .take(4000)
                .filter(|(p, _, _)| p.is_none())
                .count()
        };
        let few = filler_count(0.1);
        assert!((300..500).contains(&few), "{few} filler sentences at 10%");
        let sentences: Vec<_> = training_sentences(5, Mix::word_lists(0.25))
            .take(4000)
            .collect();
        let filler = sentences.iter().filter(|(p, _, _)| p.is_none()).count();
        assert!((850..1150).contains(&filler), "{filler} filler sentences");
        for family in Family::ALL {
            let count = sentences
                .iter()
                .filter(|(p, _, _)| p.as_ref().map(Problem::family) == Some(family))
                .count();
            assert!(count > 500, "{family:?}: {count}");
        }
        for (problem, sentence, _) in &sentences {
            assert_eq!(
                problem.is_none(),
                !sentence.contains(|c: char| c.is_ascii_digit())
            );
        }
        let test = test_set(6, 40, &Mix::word_lists(0.25));
        for family in Family::ALL {
            assert_eq!(test.iter().filter(|e| e.family == family).count(), 40);
        }
    }

    #[test]
    fn eval_jsonl_has_one_object_per_line() {
        let examples = test_set(9, 5, &Mix::word_lists(0.25));
        let fillers = filler_set(9, 2, FillerStyle::WordLists);
        let mut out = Vec::new();
        write_eval_jsonl(&examples, &fillers, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), examples.len() + 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["family"], "compare");
        let back: Vec<Example> = lines[..examples.len()]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, examples);
        let filler: serde_json::Value = serde_json::from_str(lines[examples.len()]).unwrap();
        assert_eq!(filler["family"], "filler");
        assert_eq!(filler["prompt"].as_str(), Some(fillers[0].as_str()));
        assert_eq!(filler["answer"], "");
        let read: EvalExample = serde_json::from_str(lines[examples.len()]).unwrap();
        assert!(read.is_filler());
        assert!(!fillers[0].chars().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn stock_filler_and_number_comparisons() {
        let mix = Mix {
            filler_share: share(0.5),
            filler: FillerStyle::Stock,
            compare_by_name: false,
            ..Mix::word_lists(0.0)
        };
        let corpus = training_text(13, 4000, &mix);
        let fillers: Vec<&str> = corpus
            .text
            .lines()
            .filter(|l| !l.contains(|c: char| c.is_ascii_digit()))
            .collect();
        assert!((1700..2300).contains(&fillers.len()), "{}", fillers.len());
        let distinct: HashSet<&str> = fillers.iter().copied().collect();
        // The stock, and the named sentences once per person.
        assert!(
            (40..=30 + 10 * PEOPLE.len()).contains(&distinct.len()),
            "{}",
            distinct.len()
        );
        assert!(fillers.iter().all(|f| !f.contains('{')));
        let from_stock = |f: &str| {
            STOCK.iter().any(|s| {
                PEOPLE
                    .iter()
                    .any(|(name, he)| s.replace("{name}", name).replace("{he}", he) == f)
            })
        };
        assert!(fillers.iter().all(|f| from_stock(f)));
        assert!(filler_set(13, 50, FillerStyle::Stock)
            .iter()
            .all(|f| from_stock(f)));
        for example in test_set(14, 200, &mix) {
            if example.family == Family::Compare {
                assert!(example.answer.trim().parse::<u32>().is_ok(), "{example:?}");
            }
        }
    }
}
