//! What a token's latent trajectory does across iterations: settles on a fixed point, circles
//! in an orbit, slides along a direction, or none of these.
//!
//! Every measure is built from distances between states, so rotating or scaling all states
//! leaves the label unchanged. Orbits and sliders are judged on the last half of the
//! iterations: the first ones are the walk in from the random initial state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The distance to the final state falls below a tolerance and stays there.
    Converged,
    /// The states come back to where they were after a period.
    Orbit,
    /// The states move steadily along one direction.
    Slider,
    /// None of these (or too few iterations to tell).
    Unsettled,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::Converged,
        Shape::Orbit,
        Shape::Slider,
        Shape::Unsettled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Converged => "converged",
            Shape::Orbit => "orbit",
            Shape::Slider => "slider",
            Shape::Unsettled => "unsettled",
        }
    }
}

/// A trajectory's label and the measurements it was decided from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dynamics {
    pub shape: Shape,
    pub iterations: usize,
    /// The iteration (1-based) from which the distance to the final state stays below
    /// [`SETTLED`] of the largest distance to it.
    pub settled_at: Option<usize>,
    /// The first lag at which the tail's states come back close to where they were, and how
    /// close: the mean distance at that lag over the largest mean distance at a shorter lag.
    /// Where none comes back close enough, the lag that came closest.
    pub period: Option<usize>,
    pub recurrence: Option<f32>,
    /// RMS distance of the tail's states from their mean: an orbit's radius.
    pub radius: f32,
    /// Distance from the tail's first state to its last, per iteration.
    pub speed: f32,
    /// That distance over the length of the path walked: 1 on a straight line.
    pub straightness: f32,
    /// Speed over the tail's second half against its first half: 1 when steady.
    pub acceleration: f32,
    /// |last state| / |first state of the tail|.
    pub norm_growth: f32,
    /// A slider's unit direction of travel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Vec<f32>>,
}

/// Fewest iterations a label other than unsettled needs.
pub const MIN_ITERATIONS: usize = 6;
/// A converged trajectory ends within this fraction of its largest distance to the final state…
pub const SETTLED: f32 = 0.05;
/// …for at least this fraction of its iterations.
const SETTLED_SPAN: f32 = 0.25;
/// Tail movement, relative to the states' size, below which a trajectory is still whatever
/// its history (float noise around a fixed point would otherwise read as an orbit).
const STILL: f32 = 1e-4;
/// An orbit's states return to within this fraction of the widest separation at shorter lags.
const RECURRENT: f32 = 0.2;
/// A slider walks at least this straight…
const STRAIGHT: f32 = 0.9;
/// …at a speed that changes by less than this factor between the tail's halves.
const STEADY: f32 = 2.0;

impl Dynamics {
    /// Classifies a trajectory of states (ln_f(s_i) for i = 1..=n; not the random s_0).
    pub fn of(states: &[&[f32]]) -> Self {
        let n = states.len();
        let tail = &states[n / 2..];
        let (period, recurrence) = recurrence(tail);
        let (speed, straightness, direction) = travel(tail);
        let mut dynamics = Self {
            shape: Shape::Unsettled,
            iterations: n,
            settled_at: settled_at(states),
            period,
            recurrence,
            radius: spread(tail),
            speed,
            straightness,
            acceleration: acceleration(tail),
            norm_growth: match (tail.first(), tail.last()) {
                (Some(a), Some(b)) => ratio(norm(b), norm(a)),
                _ => 1.0,
            },
            direction: None,
        };
        dynamics.shape = dynamics.decide(mean_norm(tail));
        if dynamics.shape == Shape::Slider {
            dynamics.direction = direction;
        }
        dynamics
    }

    fn decide(&self, size: f32) -> Shape {
        let n = self.iterations;
        if n < MIN_ITERATIONS {
            return Shape::Unsettled;
        }
        if self.radius <= STILL * size {
            return Shape::Converged;
        }
        if self.recurrence.is_some_and(|r| r <= RECURRENT) {
            return Shape::Orbit;
        }
        let span = ((n as f32 * SETTLED_SPAN).ceil() as usize).max(2);
        if self.settled_at.is_some_and(|t| n + 1 - t >= span) {
            return Shape::Converged;
        }
        if self.straightness >= STRAIGHT && (1.0 / STEADY..=STEADY).contains(&self.acceleration) {
            return Shape::Slider;
        }
        Shape::Unsettled
    }

    /// The numbers behind the label, in words.
    pub fn explain(&self) -> String {
        let n = self.iterations;
        match self.shape {
            Shape::Converged => match self.settled_at {
                Some(t) => format!(
                    "converged: within {:.0}% of its path of the final state from iteration {t} of {n}",
                    100.0 * SETTLED
                ),
                None => format!("converged: still over the last {} iterations", n - n / 2),
            },
            Shape::Orbit => format!(
                "orbit: period {}, radius {:.3}, returns within {:.0}%",
                self.period.unwrap_or(0),
                self.radius,
                100.0 * self.recurrence.unwrap_or(0.0)
            ),
            Shape::Slider => format!(
                "slider: {:.3} per iteration, straightness {:.2}, norm x{:.2}",
                self.speed, self.straightness, self.norm_growth
            ),
            Shape::Unsettled if n < MIN_ITERATIONS => {
                format!("unsettled: {n} iterations are too few to tell")
            }
            Shape::Unsettled => format!(
                "unsettled: no fixed point, no period, straightness {:.2}",
                self.straightness
            ),
        }
    }
}

/// How many tokens of each kind took each shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Census {
    pub counts: BTreeMap<TokenKind, BTreeMap<Shape, usize>>,
}

impl Census {
    pub fn add(&mut self, kind: TokenKind, shape: Shape) {
        *self
            .counts
            .entry(kind)
            .or_default()
            .entry(shape)
            .or_default() += 1;
    }

    /// A table: one row per token kind and a total, one column per shape.
    pub fn table(&self) -> String {
        let mut out = format!("{:<12}", "kind");
        for shape in Shape::ALL {
            out += &format!("{:>11}", shape.name());
        }
        out.push('\n');
        let mut total = BTreeMap::new();
        for (kind, counts) in &self.counts {
            out += &format!("{:<12}", kind.name());
            for shape in Shape::ALL {
                let count = counts.get(&shape).copied().unwrap_or(0);
                *total.entry(shape).or_insert(0) += count;
                out += &format!("{count:>11}");
            }
            out.push('\n');
        }
        out += &format!("{:<12}", "all");
        for shape in Shape::ALL {
            out += &format!("{:>11}", total.get(&shape).copied().unwrap_or(0));
        }
        out.push('\n');
        out
    }
}

/// What a token's text is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    Digit,
    Word,
    Punctuation,
    /// Whitespace, special tokens, mixtures.
    Other,
}

impl TokenKind {
    pub fn of(text: &str) -> Self {
        let text = text.trim();
        let all = |f: fn(&char) -> bool| !text.is_empty() && text.chars().all(|c| f(&c));
        if all(char::is_ascii_digit) {
            TokenKind::Digit
        } else if all(|c| c.is_alphabetic() || *c == '\'') {
            TokenKind::Word
        } else if all(char::is_ascii_punctuation) && !text.starts_with('<') {
            TokenKind::Punctuation
        } else {
            TokenKind::Other
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Digit => "digits",
            TokenKind::Word => "words",
            TokenKind::Punctuation => "punctuation",
            TokenKind::Other => "other",
        }
    }
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt() as f32
}

fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32
}

fn mean_norm(states: &[&[f32]]) -> f32 {
    states.iter().map(|s| norm(s)).sum::<f32>() / states.len().max(1) as f32
}

/// a / b, with 0 / 0 = 1 (no change).
fn ratio(a: f32, b: f32) -> f32 {
    if b > 0.0 {
        a / b
    } else if a > 0.0 {
        f32::INFINITY
    } else {
        1.0
    }
}

fn settled_at(states: &[&[f32]]) -> Option<usize> {
    let last = states.last()?;
    let d: Vec<f32> = states.iter().map(|s| distance(s, last)).collect();
    let widest = d.iter().copied().fold(0.0, f32::max);
    let stays_from = d
        .iter()
        .rposition(|&x| x > SETTLED * widest)
        .map_or(0, |i| i + 1);
    Some(stays_from + 1)
}

/// RMS distance from the mean.
fn spread(states: &[&[f32]]) -> f32 {
    let Some(first) = states.first() else {
        return 0.0;
    };
    let n = states.len() as f64;
    let mut mean = vec![0.0f64; first.len()];
    for s in states {
        mean.iter_mut()
            .zip(s.iter())
            .for_each(|(m, &x)| *m += x as f64 / n);
    }
    let sum: f64 = states
        .iter()
        .flat_map(|s| s.iter().zip(&mean).map(|(&x, m)| (x as f64 - m).powi(2)))
        .sum();
    (sum / n).sqrt() as f32
}

/// The first lag (at least 2, at most half the states, so that two periods are seen) at which
/// the mean distance between states that far apart drops to [`RECURRENT`] of the largest mean
/// distance at any shorter lag; else the best lag and its ratio.
fn recurrence(states: &[&[f32]]) -> (Option<usize>, Option<f32>) {
    let lags = states.len() / 2;
    if lags < 2 {
        return (None, None);
    }
    let separation = |lag: usize| {
        let pairs = states.len() - lag;
        (0..pairs)
            .map(|i| distance(states[i], states[i + lag]))
            .sum::<f32>()
            / pairs as f32
    };
    let mut widest = separation(1);
    let mut best: Option<(usize, f32)> = None;
    for lag in 2..=lags {
        let e = separation(lag);
        let r = ratio(e, widest);
        if r <= RECURRENT {
            return (Some(lag), Some(r));
        }
        if best.is_none_or(|(_, b)| r < b) {
            best = Some((lag, r));
        }
        widest = widest.max(e);
    }
    best.map_or((None, None), |(lag, r)| (Some(lag), Some(r)))
}

/// (speed, straightness, unit direction) from the first state to the last.
fn travel(states: &[&[f32]]) -> (f32, f32, Option<Vec<f32>>) {
    let (Some(first), Some(last)) = (states.first(), states.last()) else {
        return (0.0, 0.0, None);
    };
    let net = distance(first, last);
    let walked: f32 = states.windows(2).map(|w| distance(w[0], w[1])).sum();
    let steps = (states.len() - 1).max(1) as f32;
    let direction = (net > 0.0).then(|| {
        last.iter()
            .zip(first.iter())
            .map(|(b, a)| (b - a) / net)
            .collect()
    });
    (net / steps, ratio(net, walked).min(1.0), direction)
}

/// Net speed over the second half of the states against the first half.
fn acceleration(states: &[&[f32]]) -> f32 {
    let half = states.len() / 2;
    if half < 2 {
        return 1.0;
    }
    let speed = |part: &[&[f32]]| travel(part).0;
    ratio(
        speed(&states[states.len() - half..]),
        speed(&states[..half]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const DIM: usize = 96;

    /// Two orthonormal directions in DIM dimensions, random but fixed by `seed`.
    fn plane(seed: u64) -> [Vec<f32>; 2] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut random = || -> Vec<f32> { (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect() };
        let unit = |v: Vec<f32>| {
            let n = norm(&v);
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let u = unit(random());
        let v = random();
        let dot: f32 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
        let v = unit(v.iter().zip(&u).map(|(b, a)| b - dot * a).collect());
        [u, v]
    }

    /// States `centre + x u + y v` for the points (x, y), with a centre far from the origin
    /// (as ln_f states are).
    fn embed(points: &[(f32, f32)], seed: u64) -> Vec<Vec<f32>> {
        let [u, v] = plane(seed);
        let centre: Vec<f32> = (0..DIM)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7)
            .collect();
        points
            .iter()
            .map(|&(x, y)| (0..DIM).map(|i| centre[i] + x * u[i] + y * v[i]).collect())
            .collect()
    }

    fn classify(states: &[Vec<f32>]) -> Dynamics {
        let rows: Vec<&[f32]> = states.iter().map(Vec::as_slice).collect();
        Dynamics::of(&rows)
    }

    fn circle(n: usize, period: f32, radius: f32) -> Vec<(f32, f32)> {
        (0..n)
            .map(|i| {
                let a = std::f32::consts::TAU * i as f32 / period;
                (radius * a.cos(), radius * a.sin())
            })
            .collect()
    }

    fn spiral(n: usize) -> Vec<(f32, f32)> {
        circle(n, 5.0, 3.0)
            .into_iter()
            .enumerate()
            .map(|(i, (x, y))| {
                let c = 0.85f32.powi(i as i32);
                (c * x, c * y)
            })
            .collect()
    }

    fn line(n: usize) -> Vec<(f32, f32)> {
        (0..n).map(|i| (0.4 * i as f32, 0.1 * i as f32)).collect()
    }

    fn noise(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..DIM).map(|_| 2.0 + rng.random::<f32>()).collect())
            .collect()
    }

    #[test]
    fn a_contracting_spiral_converges() {
        let d = classify(&embed(&spiral(64), 1));
        assert_eq!(d.shape, Shape::Converged, "{d:?}");
        let t = d.settled_at.unwrap();
        assert!((10..=30).contains(&t), "settles at {t}");
    }

    #[test]
    fn a_circle_of_period_5_is_an_orbit_of_period_5() {
        let d = classify(&embed(&circle(64, 5.0, 2.0), 2));
        assert_eq!(d.shape, Shape::Orbit, "{d:?}");
        assert_eq!(d.period, Some(5));
        assert!((d.radius - 2.0).abs() < 0.05, "radius {}", d.radius);
    }

    #[test]
    fn an_orbit_after_a_long_approach_is_still_an_orbit() {
        // Falls in from 40 units away, then circles with radius 0.5: a tiny loop next to the
        // approach, which the distance-to-final rule alone would call converged.
        let mut points: Vec<(f32, f32)> = (0..24).map(|i| (40.0 - 1.7 * i as f32, 0.0)).collect();
        points.extend(circle(40, 7.0, 0.5));
        let d = classify(&embed(&points, 3));
        assert_eq!((d.shape, d.period), (Shape::Orbit, Some(7)), "{d:?}");
    }

    #[test]
    fn a_period_two_flip_is_an_orbit() {
        let points: Vec<(f32, f32)> = (0..32).map(|i| ((i % 2) as f32, 0.0)).collect();
        let d = classify(&embed(&points, 4));
        assert_eq!((d.shape, d.period), (Shape::Orbit, Some(2)), "{d:?}");
    }

    #[test]
    fn a_non_integer_period_is_read_as_the_nearest_return() {
        let d = classify(&embed(&circle(64, 5.3, 1.0), 5));
        assert_eq!((d.shape, d.period), (Shape::Orbit, Some(5)), "{d:?}");
    }

    #[test]
    fn a_line_is_a_slider_with_its_speed_and_direction() {
        let states = embed(&line(48), 6);
        let d = classify(&states);
        assert_eq!(d.shape, Shape::Slider, "{d:?}");
        let speed = (0.4f32 * 0.4 + 0.1 * 0.1).sqrt();
        assert!((d.speed - speed).abs() < 1e-4, "speed {}", d.speed);
        assert!(d.straightness > 0.999);
        let [u, v] = plane(6);
        let expected: Vec<f32> = (0..DIM)
            .map(|i| (0.4 * u[i] + 0.1 * v[i]) / speed)
            .collect();
        let direction = d.direction.unwrap();
        assert!(distance(&direction, &expected) < 1e-3);
    }

    #[test]
    fn a_straight_approach_that_slows_to_a_stop_is_converged_not_a_slider() {
        let points: Vec<(f32, f32)> = (0..40).map(|i| (10.0 * 0.8f32.powi(i), 0.0)).collect();
        assert_eq!(classify(&embed(&points, 7)).shape, Shape::Converged);
    }

    #[test]
    fn noise_is_unsettled() {
        let d = classify(&noise(64, 8));
        assert_eq!(d.shape, Shape::Unsettled, "{d:?}");
    }

    #[test]
    fn a_state_that_never_moves_converged_at_once() {
        let d = classify(&embed(&[(1.0, 1.0); 16], 9));
        assert_eq!((d.shape, d.settled_at), (Shape::Converged, Some(1)));
    }

    #[test]
    fn rounding_flicker_around_a_fixed_point_is_converged_not_an_orbit() {
        // Rounding can leave a converged state flipping between two neighbouring floats: a
        // perfect period-2 recurrence, but not movement anyone should call an orbit.
        let mut points = spiral(24);
        points.extend((0..40).map(|i| (1e-6 * (i % 2) as f32, 0.0)));
        let d = classify(&embed(&points, 10));
        assert_eq!(d.shape, Shape::Converged, "{d:?}");
        assert_eq!(d.period, Some(2));
    }

    #[test]
    fn too_few_iterations_are_unsettled_and_say_so() {
        let d = classify(&embed(&line(4), 11));
        assert_eq!(d.shape, Shape::Unsettled);
        assert!(d.explain().contains("too few"), "{}", d.explain());
        assert_eq!(classify(&[]).shape, Shape::Unsettled);
    }

    #[test]
    fn token_kinds() {
        assert_eq!(TokenKind::of(" 7"), TokenKind::Digit);
        assert_eq!(TokenKind::of(" marbles"), TokenKind::Word);
        assert_eq!(TokenKind::of("."), TokenKind::Punctuation);
        assert_eq!(TokenKind::of("<eos>"), TokenKind::Other);
        assert_eq!(TokenKind::of(" "), TokenKind::Other);
    }

    #[test]
    fn census_counts_per_kind_and_in_all() {
        let mut census = Census::default();
        census.add(TokenKind::Digit, Shape::Orbit);
        census.add(TokenKind::Digit, Shape::Orbit);
        census.add(TokenKind::Word, Shape::Converged);
        let table = census.table();
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .map(|c| c.parse::<usize>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(row("digits"), [0, 2, 0, 0]);
        assert_eq!(row("all"), [1, 2, 0, 0]);
    }

    /// A random rotation of DIM dimensions (a product of Householder reflections) and a scale.
    fn transform(states: &[Vec<f32>], seed: u64, scale: f32) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mirrors: Vec<Vec<f32>> = (0..4)
            .map(|_| {
                let v: Vec<f32> = (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect();
                let n = norm(&v);
                v.into_iter().map(|x| x / n).collect()
            })
            .collect();
        states
            .iter()
            .map(|s| {
                let mut s = s.clone();
                for m in &mirrors {
                    let dot: f32 = s.iter().zip(m).map(|(a, b)| a * b).sum();
                    s.iter_mut().zip(m).for_each(|(a, b)| *a -= 2.0 * dot * b);
                }
                s.into_iter().map(|x| x * scale).collect()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn rotating_or_scaling_the_states_keeps_the_label(
            kind in 0usize..4,
            seed in 0u64..1000,
            scale in 0.01f32..100.0,
        ) {
            let states = match kind {
                0 => embed(&spiral(64), seed),
                1 => embed(&circle(64, 5.0, 2.0), seed),
                2 => embed(&line(48), seed),
                _ => noise(64, seed),
            };
            let before = classify(&states);
            let after = classify(&transform(&states, seed + 1, scale));
            prop_assert_eq!(before.shape, after.shape);
            prop_assert_eq!(before.period, after.period);
            prop_assert_eq!(before.settled_at, after.settled_at);
            prop_assert!((before.straightness - after.straightness).abs() < 1e-3);
        }
    }
}
