//! The KV cache of a recurrent-depth model: one slot per layer application. Prelude layer j,
//! core layer j at iteration i and coda layer j each keep their own keys and values.
//!
//! Tokens may use different numbers of iterations. When a token reads slot (i, j) and an earlier
//! token stopped before iteration i, it sees that token's latest iteration of core layer j (the
//! reference's "latest-m4" rule, generalised to any number of core layers). The cache keeps every
//! slot materialised for every committed position, so a read is a plain lookup.
//!
//! Slots live in buffers with room for more positions, and a commit writes the new rows into
//! them: on the GPU that is two in-place copies a slot, where joining tensors copied the
//! whole slot twice over for every token.
//!
//! With KV sharing (the paper's memory saving) there are only k core slots: iteration i reads and
//! writes slot i mod k, so a position leaves in slot s its last iteration congruent to s, and the
//! cache stops growing with the number of iterations.

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::model::{Kv, Past};

/// Which application of which layer a key/value entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Prelude(usize),
    Core { iteration: usize, layer: usize },
    Coda(usize),
}

/// Where the model reads earlier positions' keys and values and leaves those of the positions it runs.
pub trait KvMemory<B: Backend> {
    fn past(&self, slot: Slot) -> Option<Past<B>>;
    fn write(&mut self, slot: Slot, kv: Kv<B>);
}

/// No earlier positions: a plain causal forward pass over the whole sequence.
pub struct NoMemory;

impl<B: Backend> KvMemory<B> for NoMemory {
    fn past(&self, _slot: Slot) -> Option<Past<B>> {
        None
    }
    fn write(&mut self, _slot: Slot, _kv: Kv<B>) {}
}

/// How many layers each part of the model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCounts {
    pub prelude: usize,
    pub core: usize,
    pub coda: usize,
}

/// Fewest positions a cache buffer holds; it doubles when full.
const FIRST_CAPACITY: usize = 32;

/// Committed keys and values of every position processed so far, in buffers with room for more
/// positions ([batch, heads, capacity, head_dim]), so that a commit writes the new rows in place.
/// Capacity doubles when it runs out: at most twice the committed bytes are allocated.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: LayerCounts,
    /// k for KV sharing; `None` keeps one slot per iteration.
    share: Option<usize>,
    prelude: Vec<Kv<B>>,
    /// `core[i][j]`: core layer j at iteration i.
    core: Vec<Vec<Kv<B>>>,
    coda: Vec<Kv<B>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    pub fn new(layers: LayerCounts, share: Option<usize>) -> Self {
        Self {
            layers,
            share: share.map(|k| k.max(1)),
            prelude: Vec::new(),
            core: Vec::new(),
            coda: Vec::new(),
            len: 0,
        }
    }

    /// Number of committed positions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Core slots held per layer: the deepest iteration any committed position reached, or at
    /// most k with KV sharing.
    pub fn iterations(&self) -> usize {
        self.core.len()
    }

    /// The core slot an iteration reads and writes.
    fn slot_of(&self, iteration: usize) -> usize {
        self.share.map_or(iteration, |k| iteration % k)
    }

    /// Bytes of the committed positions' keys and values, at 4 bytes a value.
    pub fn bytes(&self) -> usize {
        let all = self
            .prelude
            .iter()
            .chain(self.core.iter().flatten())
            .chain(self.coda.iter());
        all.map(|kv| {
            let [b, h, _, d] = kv.k.dims();
            2 * 4 * b * h * self.len * d
        })
        .sum()
    }

    fn buffers(&self, slot: Slot) -> Option<&Kv<B>> {
        match slot {
            Slot::Prelude(j) => self.prelude.get(j),
            // Past the deepest iteration, every earlier position's latest entry is the last one.
            Slot::Core { iteration, layer } => self
                .core
                .get(self.slot_of(iteration))
                .or(self.core.last())
                .map(|layers| &layers[layer]),
            Slot::Coda(j) => self.coda.get(j),
        }
    }

    fn read(&self, slot: Slot) -> Option<Past<B>> {
        self.buffers(slot).map(|buffers| Past {
            buffers: buffers.clone(),
            len: self.len,
        })
    }

    /// Starts processing new positions: reads see the committed cache, writes are held aside.
    pub fn pending(&self) -> Pending<'_, B> {
        Pending {
            cache: self,
            writes: HashMap::new(),
        }
    }

    /// Appends the positions of `writes`, which ran `iterations` core iterations. Each slot
    /// receives the positions' last iteration that maps to it, or their last iteration when none
    /// does (a slot deeper than they went); slots that only these positions reach start from the
    /// earlier positions' latest entries.
    pub fn commit(&mut self, writes: Writes<B>, iterations: usize) {
        let Writes(mut writes) = writes;
        let mut take = |slot: Slot| {
            writes
                .remove(&slot)
                .expect("every layer application leaves its keys and values")
        };
        let own: Vec<Vec<Kv<B>>> = (0..iterations)
            .map(|iteration| {
                (0..self.layers.core)
                    .map(|layer| take(Slot::Core { iteration, layer }))
                    .collect()
            })
            .collect();
        let prelude: Vec<Kv<B>> = (0..self.layers.prelude)
            .map(|j| take(Slot::Prelude(j)))
            .collect();
        let coda: Vec<Kv<B>> = (0..self.layers.coda).map(|j| take(Slot::Coda(j))).collect();

        let (start, end) = (self.len, self.len + own[0][0].len());
        let mut depth = self.core.len().max(iterations);
        if let Some(k) = self.share {
            depth = depth.min(k);
        }
        // A new slot starts as a copy of the deepest one (burn copies it on the first write).
        while self.core.len() < depth && !self.core.is_empty() {
            let deepest = self.core[self.core.len() - 1].clone();
            self.core.push(deepest);
        }
        let capacity = |buffers: Option<&Kv<B>>| buffers.map_or(0, Kv::len);
        let grown = |buffers: Option<Kv<B>>, rows: &Kv<B>| -> Kv<B> {
            if capacity(buffers.as_ref()) >= end {
                return buffers.expect("a buffer with room");
            }
            let [b, h, _, d] = rows.k.dims();
            let room = end.max(2 * capacity(buffers.as_ref())).max(FIRST_CAPACITY);
            let zeros = || Tensor::zeros([b, h, room, d], &rows.k.device());
            let empty = Kv {
                k: zeros(),
                v: zeros(),
            };
            match buffers {
                Some(old) => empty.write(0, &old.narrow(0, start)),
                None => empty,
            }
        };
        let append = |buffers: Option<Kv<B>>, rows: &Kv<B>| grown(buffers, rows).write(start, rows);

        let mut old_core = std::mem::take(&mut self.core).into_iter();
        self.core = (0..depth)
            .map(|slot| {
                let last = (0..iterations)
                    .rev()
                    .find(|&i| self.slot_of(i) == slot)
                    .unwrap_or(iterations - 1);
                let mut old = old_core.next().map(Vec::into_iter);
                own[last]
                    .iter()
                    .map(|rows| append(old.as_mut().and_then(Iterator::next), rows))
                    .collect()
            })
            .collect();
        let mut old_prelude = std::mem::take(&mut self.prelude).into_iter();
        self.prelude = prelude
            .iter()
            .map(|rows| append(old_prelude.next(), rows))
            .collect();
        let mut old_coda = std::mem::take(&mut self.coda).into_iter();
        self.coda = coda
            .iter()
            .map(|rows| append(old_coda.next(), rows))
            .collect();
        self.len = end;
    }
}

/// Writes of the positions being processed, not yet committed.
pub struct Writes<B: Backend>(HashMap<Slot, Kv<B>>);

pub struct Pending<'a, B: Backend> {
    cache: &'a KvCache<B>,
    writes: HashMap<Slot, Kv<B>>,
}

impl<B: Backend> Pending<'_, B> {
    pub fn finish(self) -> Writes<B> {
        Writes(self.writes)
    }
}

impl<B: Backend> KvMemory<B> for Pending<'_, B> {
    fn past(&self, slot: Slot) -> Option<Past<B>> {
        self.cache.read(slot)
    }
    /// A later write to the same slot replaces the earlier one: the coda runs once per recorded
    /// iteration for the logit lens, and only its run on the final state is kept.
    fn write(&mut self, slot: Slot, kv: Kv<B>) {
        self.writes.insert(slot, kv);
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Tensor, TensorData};

    type B = NdArray;
    const LAYERS: LayerCounts = LayerCounts {
        prelude: 1,
        core: 2,
        coda: 1,
    };

    /// One position's entry whose every value is `code`.
    fn entry(code: f32) -> Kv<B> {
        let t = Tensor::<B, 4>::from_data(
            TensorData::new(vec![code; 2], [1, 1, 1, 2]),
            &Default::default(),
        );
        Kv { k: t.clone(), v: t }
    }

    /// Commits one position that ran `iterations`; core entries are coded 100*pos + 10*iteration + layer.
    fn commit(cache: &mut KvCache<B>, pos: usize, iterations: usize) {
        let mut pending = cache.pending();
        pending.write(Slot::Prelude(0), entry(-1.0));
        for iteration in 0..iterations {
            for layer in 0..2 {
                pending.write(
                    Slot::Core { iteration, layer },
                    entry((100 * pos + 10 * iteration + layer) as f32),
                );
            }
        }
        pending.write(Slot::Coda(0), entry(-2.0));
        let writes = pending.finish();
        cache.commit(writes, iterations);
    }

    fn keys(cache: &KvCache<B>, iteration: usize, layer: usize) -> Vec<f32> {
        let kv = cache
            .read(Slot::Core { iteration, layer })
            .unwrap()
            .filled();
        kv.k.into_data()
            .to_vec::<f32>()
            .unwrap()
            .chunks(2)
            .map(|c| c[0])
            .collect()
    }

    #[test]
    fn shallow_positions_show_their_latest_iteration_of_the_same_layer() {
        let mut cache = KvCache::new(LAYERS, None);
        commit(&mut cache, 0, 2);
        commit(&mut cache, 1, 4);
        commit(&mut cache, 2, 1);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.iterations(), 4);
        assert_eq!(keys(&cache, 0, 0), vec![0.0, 100.0, 200.0]);
        assert_eq!(keys(&cache, 1, 1), vec![11.0, 111.0, 201.0]);
        assert_eq!(keys(&cache, 3, 1), vec![11.0, 131.0, 201.0]);
        // Deeper than any position went: everyone's latest entry.
        assert_eq!(keys(&cache, 9, 0), vec![10.0, 130.0, 200.0]);
    }

    #[test]
    fn a_deeper_position_reads_materialised_entries_of_shallower_ones() {
        let mut cache = KvCache::new(LAYERS, None);
        commit(&mut cache, 0, 1);
        let pending = cache.pending();
        let past = pending
            .past(Slot::Core {
                iteration: 5,
                layer: 1,
            })
            .unwrap()
            .filled();
        assert_eq!(past.k.into_data().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
        assert!(pending.past(Slot::Prelude(0)).is_some());
        // The prelude's and the coda's entries and the core's layers at one iteration, each
        // keys and values of 2 floats of 4 bytes.
        let (prelude_and_coda, core_layers, iterations) = (2, 2, 1);
        assert_eq!(
            cache.bytes(),
            (prelude_and_coda + core_layers * iterations) * 2 * 4 * 2
        );
    }

    #[test]
    fn with_sharing_iteration_i_uses_slot_i_mod_k() {
        let mut cache = KvCache::new(LAYERS, Some(3));
        commit(&mut cache, 0, 7);
        commit(&mut cache, 1, 2);
        assert_eq!(cache.iterations(), 3, "three slots whatever the depth");
        // Position 0 ran iterations 0..7: slot 0 holds its iteration 6, slot 1 iteration 4,
        // slot 2 iteration 5. Position 1 ran 0 and 1 and reached no slot 2: its last (1) is there.
        assert_eq!(keys(&cache, 0, 0), vec![60.0, 100.0]);
        assert_eq!(keys(&cache, 1, 1), vec![41.0, 111.0]);
        assert_eq!(keys(&cache, 2, 0), vec![50.0, 110.0]);
        // Iteration 7 reads slot 1, iteration 9 slot 0.
        assert_eq!(keys(&cache, 7, 1), keys(&cache, 1, 1));
        assert_eq!(keys(&cache, 9, 0), keys(&cache, 0, 0));
        let shared = cache.bytes();
        let mut full = KvCache::new(LAYERS, None);
        commit(&mut full, 0, 7);
        commit(&mut full, 1, 2);
        assert_eq!(full.iterations(), 7);
        assert_eq!(
            shared * 2,
            full.bytes(),
            "2 + 3 * 2 entries a position against 2 + 7 * 2"
        );
    }

    #[test]
    fn buffers_grow_past_their_first_capacity_and_keep_every_position() {
        let mut cache = KvCache::new(LAYERS, None);
        let depth = |pos: usize| 1 + pos % 3;
        for pos in 0..3 * FIRST_CAPACITY + 5 {
            commit(&mut cache, pos, depth(pos));
        }
        // Slot 2 holds iteration 2 where a position went that deep, its last iteration elsewhere.
        let want: Vec<f32> = (0..cache.len())
            .map(|pos| (100 * pos + 10 * (depth(pos) - 1).min(2) + 1) as f32)
            .collect();
        assert_eq!(keys(&cache, 2, 1), want);
        assert_eq!(cache.bytes(), cache.len() * (2 + 2 * 3) * 2 * 4 * 2);
    }

    #[test]
    fn a_copy_of_the_cache_keeps_its_positions_while_the_original_grows() {
        let mut cache = KvCache::new(LAYERS, None);
        commit(&mut cache, 0, 2);
        let copy = cache.clone();
        commit(&mut cache, 1, 3);
        assert_eq!(keys(&copy, 0, 0), vec![0.0]);
        assert_eq!(keys(&copy, 2, 0), vec![10.0]);
        assert_eq!(keys(&cache, 2, 0), vec![10.0, 120.0]);
        assert_eq!(keys(&cache, 0, 0), vec![0.0, 100.0]);
    }
}
