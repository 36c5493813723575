//! The slot queue (seed 001 §5.2, seed 004 "Slot queue"), as pure code: which slot to try selling next.
//!
//! Every slot of every request the host heard of waits here as a [`SlotQueueItem`], ordered by [`compare`]
//! (unseen first, then the most profitable, the least collateral, the latest expiry). [`SlotQueue::pop`] hands out
//! the best item together with a [`WorkerId`] from a pool of `max_workers`; the caller runs one sale per worker and
//! gives the worker back with [`SlotQueue::return_worker`] when the sale ends.
//!
//! - A request's slots are shuffled when pushed, so hosts hearing the same request do not all start on slot 0.
//! - The queue holds at most `capacity − 1` items (one place stays free for a push, as in the original); a push past
//!   that drops the lowest-priority items and answers them.
//! - Pause and resume (seed 001 §5.2.2): when the best item is `seen` (it matched no availability already), the
//!   queue pauses instead of spinning on it; a new unseen item, an availability that grew, or
//!   [`SlotQueue::unpause`] resumes it.
//! - Items carry `not_before` (the expanding reservation window, [`super::window`]): they are not handed out before
//!   that chain time; [`SlotQueue::next_eligible_at`] tells the caller when to wake up.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::{RequestId, SlotQueueItem};

/// One of the queue's `max_workers` permits to run a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u32);

/// The original's default queue size.
pub const DEFAULT_CAPACITY: usize = 128;
/// The original's default number of concurrent sales.
pub const DEFAULT_MAX_WORKERS: usize = 3;

/// Priority order: [`Ordering::Less`] means `a` is processed first.
///
/// Unseen before seen; higher [`SlotQueueItem::profitability`]; lower collateral; later expiry; then
/// `(request_id, slot_index)` ascending. The original compares expiries only when both items carry one; to keep the
/// order total (a sort needs that), an item with an expiry goes before one without, and two items without one tie
/// on expiry.
///
/// The queue itself breaks ties between items equal on the first four criteria by push order (after the shuffle),
/// not by slot index: otherwise every host would start on the same slot of a request (seed 004).
pub fn compare(a: &SlotQueueItem, b: &SlotQueueItem) -> Ordering {
    compare_priority(a, b).then_with(|| (a.request_id, a.slot_index).cmp(&(b.request_id, b.slot_index)))
}

/// The four criteria of seed 001 §5.2.1, with the expiry rule of [`compare`].
fn compare_priority(a: &SlotQueueItem, b: &SlotQueueItem) -> Ordering {
    a.seen
        .cmp(&b.seen)
        .then_with(|| b.profitability().cmp(&a.profitability()))
        .then_with(|| a.collateral.cmp(&b.collateral))
        .then_with(|| match (a.expiry, b.expiry) {
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

/// A queued item and its push rank (the tie-break among items of equal priority).
#[derive(Debug, Clone)]
struct Queued {
    rank: u64,
    item: SlotQueueItem,
}

fn queue_order(a: &Queued, b: &Queued) -> Ordering {
    compare_priority(&a.item, &b.item).then_with(|| a.rank.cmp(&b.rank))
}

/// What [`SlotQueue::push`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Items pushed that are now queued (duplicates and items dropped by the bound are not counted).
    pub added: usize,
    /// Items dropped to keep the bound (pushed ones or older ones), lowest priority last.
    pub dropped: Vec<SlotQueueItem>,
}

/// The bounded, prioritized queue of slots to sell, with its worker pool.
#[derive(Debug, Clone)]
pub struct SlotQueue {
    /// Queued items, kept sorted by priority, then push rank.
    items: Vec<Queued>,
    next_rank: u64,
    /// Most items queued: capacity − 1.
    limit: usize,
    max_workers: usize,
    free_workers: BTreeSet<WorkerId>,
    busy_workers: BTreeSet<WorkerId>,
    paused: bool,
}

/// splitmix64: a small, well-mixed generator, enough to shuffle slots.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (multiply-high; the bias is below 2^-40 for the sizes a queue sees).
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next()) * bound as u128) >> 64) as usize
    }
}

/// Fisher–Yates shuffle driven by splitmix64 seeded with `seed`.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

impl SlotQueue {
    /// A queue holding at most `capacity − 1` items (`capacity` at least 2) and handing out at most `max_workers`
    /// items at a time (at least 1).
    pub fn new(capacity: usize, max_workers: usize) -> Self {
        let max_workers = max_workers.clamp(1, u32::MAX as usize);
        Self {
            items: Vec::new(),
            next_rank: 0,
            limit: capacity.max(2) - 1,
            max_workers,
            free_workers: (0..max_workers as u32).map(WorkerId).collect(),
            busy_workers: BTreeSet::new(),
            paused: false,
        }
    }

    fn position(&self, id: &RequestId, index: u64) -> Option<usize> {
        self.items.iter().position(|q| &q.item.request_id == id && q.item.slot_index == index)
    }

    fn insert_sorted(&mut self, item: SlotQueueItem) {
        let queued = Queued { rank: self.next_rank, item };
        self.next_rank = self.next_rank.wrapping_add(1);
        let at = self.items.partition_point(|q| queue_order(q, &queued) == Ordering::Less);
        self.items.insert(at, queued);
    }

    /// Pushes items (typically one request's slots), shuffled first with `seed` (the caller passes a random one).
    /// An item for a slot queued already is skipped. Past the bound, the lowest-priority items are dropped and
    /// answered. When an unseen item was added, the queue unpauses.
    pub fn push(&mut self, mut items: Vec<SlotQueueItem>, seed: u64) -> PushOutcome {
        shuffle(&mut items, seed);
        let mut pushed = Vec::new();
        for item in items {
            if self.contains(&item.request_id, item.slot_index) {
                continue;
            }
            pushed.push((item.request_id, item.slot_index, item.seen));
            self.insert_sorted(item);
        }
        let excess = self.items.len().saturating_sub(self.limit);
        let dropped: Vec<SlotQueueItem> =
            self.items.split_off(self.items.len() - excess).into_iter().map(|q| q.item).collect();
        let mut added = 0;
        for (id, index, seen) in pushed {
            if self.contains(&id, index) {
                added += 1;
                if !seen {
                    self.paused = false;
                }
            }
        }
        PushOutcome { added, dropped }
    }

    /// Removes every slot of a request (it was fulfilled, cancelled or failed); answers how many.
    pub fn remove_request(&mut self, id: &RequestId) -> usize {
        let before = self.items.len();
        self.items.retain(|q| &q.item.request_id != id);
        before - self.items.len()
    }

    /// Removes one slot (it was filled); answers whether it was queued.
    pub fn remove_slot(&mut self, id: &RequestId, index: u64) -> bool {
        match self.position(id, index) {
            Some(at) => {
                self.items.remove(at);
                true
            }
            None => false,
        }
    }

    /// The next item to process at chain time `now`, with a worker from the pool. `None` when paused, when no worker
    /// is free, or when no item has `not_before <= now`. When the best item with `not_before <= now` is `seen`, the
    /// queue pauses instead and keeps it (seed 001 §5.2.2).
    ///
    /// An unseen item whose `not_before` passed while the queue was paused counts as a new unseen push: the queue
    /// unpauses and hands it out (otherwise a slot waiting for its reservation window would wait for an availability
    /// change too).
    pub fn pop(&mut self, now: u64) -> Option<(SlotQueueItem, WorkerId)> {
        if self.free_workers.is_empty() {
            return None;
        }
        let at = self.items.iter().position(|q| q.item.not_before <= now)?;
        if self.items.get(at).is_some_and(|q| q.item.seen) {
            self.paused = true;
            return None;
        }
        // The best eligible item is unseen: when paused, it became eligible after the pause.
        self.paused = false;
        let worker = self.free_workers.pop_first()?;
        self.busy_workers.insert(worker);
        Some((self.items.remove(at).item, worker))
    }

    /// Gives a worker back when its sale ended. A worker not handed out, or given back twice, changes nothing.
    pub fn return_worker(&mut self, worker: WorkerId) {
        if self.busy_workers.remove(&worker) {
            self.free_workers.insert(worker);
        }
    }

    pub fn unpause(&mut self) {
        self.paused = false;
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// An availability changed. When it grew (it was created, or [`super::ledger::UpdateOutcome::grew`]), every
    /// queued item may match now: all are marked unseen again and the queue unpauses.
    pub fn availability_changed(&mut self, grew: bool) {
        if !grew {
            return;
        }
        for q in &mut self.items {
            q.item.seen = false;
        }
        self.items.sort_by(queue_order);
        self.paused = false;
    }

    pub fn contains(&self, id: &RequestId, index: u64) -> bool {
        self.position(id, index).is_some()
    }

    pub fn has_request(&self, id: &RequestId) -> bool {
        self.items.iter().any(|q| &q.item.request_id == id)
    }

    /// Queued items in priority order.
    pub fn items(&self) -> Vec<SlotQueueItem> {
        self.items.iter().map(|q| q.item.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Workers not handed out.
    pub fn free_workers(&self) -> usize {
        self.free_workers.len()
    }

    /// The pool's size.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// The earliest `not_before` of a queued item later than `now`: when to try [`SlotQueue::pop`] again.
    pub fn next_eligible_at(&self, now: u64) -> Option<u64> {
        self.items.iter().map(|q| q.item.not_before).filter(|&t| t > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sales::{B256, U256};
    use proptest::prelude::*;

    fn item(request: u8, slot: u64) -> SlotQueueItem {
        SlotQueueItem {
            request_id: B256::repeat_byte(request),
            slot_index: slot,
            slot_size: 1024,
            duration: 100,
            price_per_byte_per_second: U256::from(10),
            collateral: U256::from(50),
            expiry: Some(1000),
            seen: false,
            not_before: 0,
        }
    }

    fn slots(request: u8, count: u64) -> Vec<SlotQueueItem> {
        (0..count).map(|slot| item(request, slot)).collect()
    }

    fn keys(items: &[SlotQueueItem]) -> Vec<(B256, u64)> {
        items.iter().map(|item| (item.request_id, item.slot_index)).collect()
    }

    #[test]
    fn ordering_table() {
        let base = item(1, 0);
        let with = |f: &dyn Fn(&mut SlotQueueItem)| {
            let mut item = base.clone();
            f(&mut item);
            item
        };
        // (first, second): `first` wins on the criterion named, all earlier criteria tying, later ones against it.
        let cases: Vec<(&str, SlotQueueItem, SlotQueueItem)> = vec![
            (
                "unseen before seen",
                with(&|i| {
                    i.price_per_byte_per_second = U256::from(1);
                    i.collateral = U256::from(99);
                    i.request_id = B256::repeat_byte(9);
                }),
                with(&|i| i.seen = true),
            ),
            (
                "higher profitability (duration)",
                with(&|i| {
                    i.duration = 101;
                    i.collateral = U256::from(99);
                    i.expiry = Some(1);
                }),
                base.clone(),
            ),
            ("higher profitability (size)", with(&|i| i.slot_size = 1025), with(&|i| i.collateral = U256::from(1))),
            (
                "higher profitability (price)",
                with(&|i| {
                    i.price_per_byte_per_second = U256::from(11);
                    i.request_id = B256::repeat_byte(9);
                }),
                base.clone(),
            ),
            (
                "lower collateral",
                with(&|i| {
                    i.collateral = U256::from(49);
                    i.expiry = Some(1);
                    i.request_id = B256::repeat_byte(9);
                }),
                base.clone(),
            ),
            (
                "later expiry",
                with(&|i| {
                    i.expiry = Some(1001);
                    i.request_id = B256::repeat_byte(9);
                }),
                base.clone(),
            ),
            ("some expiry before none", with(&|i| i.request_id = B256::repeat_byte(9)), with(&|i| i.expiry = None)),
            ("request id", base.clone(), with(&|i| i.request_id = B256::repeat_byte(2))),
            ("slot index", base.clone(), with(&|i| i.slot_index = 1)),
        ];
        for (name, first, second) in cases {
            assert_eq!(compare(&first, &second), Ordering::Less, "{name}");
            assert_eq!(compare(&second, &first), Ordering::Greater, "{name}");
        }
        assert_eq!(compare(&base, &base), Ordering::Equal);
        let none = with(&|i| i.expiry = None);
        assert_eq!(compare(&none, &none.clone()), Ordering::Equal);
    }

    #[test]
    fn shuffle_permutes_and_depends_on_seed() {
        let original: Vec<u64> = (0..10).collect();
        let mut orders = Vec::new();
        for seed in [1u64, 2, 3] {
            let mut shuffled = original.clone();
            shuffle(&mut shuffled, seed);
            let mut sorted = shuffled.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, original, "a permutation");
            let mut again = original.clone();
            shuffle(&mut again, seed);
            assert_eq!(again, shuffled, "deterministic");
            orders.push(shuffled);
        }
        assert_ne!(orders[0], orders[1]);
        assert_ne!(orders[1], orders[2]);
        assert_ne!(orders[0], orders[2]);
        assert_ne!(orders[0], original);
    }

    #[test]
    fn push_shuffles_a_requests_slots() {
        let order = |seed| {
            let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
            assert_eq!(queue.push(slots(1, 10), seed).added, 10);
            let popped: Vec<u64> = std::iter::from_fn(|| {
                let (item, worker) = queue.pop(0)?;
                queue.return_worker(worker);
                Some(item.slot_index)
            })
            .collect();
            assert_eq!(popped.len(), 10);
            popped
        };
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2));
        assert_ne!(order(1), (0..10).collect::<Vec<_>>());
        let mut sorted = order(2);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn push_orders_and_skips_duplicates() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let outcome = queue.push(slots(1, 4), 7);
        assert_eq!(outcome, PushOutcome { added: 4, dropped: vec![] });
        let mut queued = keys(&queue.items());
        queued.sort();
        assert_eq!(queued, keys(&slots(1, 4)));
        let outcome = queue.push(vec![item(1, 2), item(1, 4), item(1, 4)], 9);
        assert_eq!(outcome.added, 1);
        assert_eq!(queue.len(), 5);
        assert!(queue.contains(&B256::repeat_byte(1), 4));
        assert!(!queue.contains(&B256::repeat_byte(1), 5));
        assert!(queue.has_request(&B256::repeat_byte(1)));
        assert!(!queue.has_request(&B256::repeat_byte(2)));
    }

    #[test]
    fn bound_keeps_capacity_minus_one_and_drops_the_lowest() {
        let mut queue = SlotQueue::new(4, 1);
        let cheap = |request, slot| {
            let mut i = item(request, slot);
            i.price_per_byte_per_second = U256::from(5 - slot);
            i
        };
        assert_eq!(queue.push(vec![cheap(1, 0), cheap(1, 1)], 1).added, 2);
        let outcome = queue.push(vec![item(2, 0), item(2, 1)], 1);
        assert_eq!(outcome.added, 2);
        assert_eq!(keys(&outcome.dropped), vec![(B256::repeat_byte(1), 1)]);
        assert_eq!(queue.len(), 3);
        assert_eq!(
            keys(&queue.items()),
            vec![(B256::repeat_byte(2), 0), (B256::repeat_byte(2), 1), (B256::repeat_byte(1), 0)]
        );
        // A pushed item that is itself the lowest is dropped, not added.
        let outcome = queue.push(vec![cheap(3, 0)], 1);
        assert_eq!(outcome.added, 0);
        assert_eq!(keys(&outcome.dropped), vec![(B256::repeat_byte(3), 0)]);
        assert_eq!(SlotQueue::new(0, 1).limit, 1, "capacity is clamped to 2");
    }

    #[test]
    fn pauses_on_a_seen_item_and_keeps_it() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut seen = item(1, 0);
        seen.seen = true;
        queue.push(vec![seen], 0);
        assert_eq!(queue.pop(0), None);
        assert!(queue.paused());
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.free_workers(), DEFAULT_MAX_WORKERS);
        assert_eq!(queue.pop(0), None, "stays paused");
    }

    #[test]
    fn resumes_on_unseen_push() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut seen = item(1, 0);
        seen.seen = true;
        queue.push(vec![seen.clone()], 0);
        assert_eq!(queue.pop(0), None);
        let mut another_seen = item(1, 1);
        another_seen.seen = true;
        queue.push(vec![another_seen], 0);
        assert!(queue.paused(), "a seen push does not resume");
        queue.push(vec![item(2, 0)], 0);
        assert!(!queue.paused());
        assert_eq!(queue.pop(0).map(|(i, _)| i), Some(item(2, 0)));
        assert_eq!(queue.pop(0), None);
        assert!(queue.paused());
    }

    #[test]
    fn resumes_when_an_availability_grew_or_on_unpause() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut seen = item(1, 0);
        seen.seen = true;
        queue.push(vec![seen], 0);
        assert_eq!(queue.pop(0), None);
        queue.availability_changed(false);
        assert!(queue.paused());
        assert_eq!(queue.pop(0), None);
        queue.availability_changed(true);
        assert!(!queue.paused());
        assert!(queue.items().iter().all(|i| !i.seen));
        assert_eq!(queue.pop(0).map(|(i, _)| i), Some(item(1, 0)));

        let mut seen = item(2, 0);
        seen.seen = true;
        queue.push(vec![seen.clone()], 0);
        assert_eq!(queue.pop(0), None);
        assert!(queue.paused());
        queue.unpause();
        assert!(!queue.paused());
        assert_eq!(queue.pop(0), None, "the seen item pauses again");
        assert!(queue.paused());
    }

    #[test]
    fn workers_bound_concurrency() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, 3);
        queue.push(slots(1, 5), 3);
        let mut workers = Vec::new();
        for _ in 0..3 {
            let (_, worker) = queue.pop(0).unwrap();
            workers.push(worker);
        }
        let distinct: BTreeSet<_> = workers.iter().copied().collect();
        assert_eq!(distinct.len(), 3);
        assert_eq!(queue.free_workers(), 0);
        assert_eq!(queue.pop(0), None);
        assert!(!queue.paused(), "no worker is not a pause");
        assert_eq!(queue.len(), 2);

        queue.return_worker(workers[1]);
        let (_, reused) = queue.pop(0).unwrap();
        assert_eq!(reused, workers[1]);
        assert_eq!(queue.pop(0), None);

        queue.return_worker(workers[0]);
        queue.return_worker(workers[0]);
        queue.return_worker(WorkerId(77));
        assert_eq!(queue.free_workers(), 1, "double and foreign returns change nothing");
        assert!(queue.pop(0).is_some());
        assert_eq!(queue.pop(0), None);
    }

    #[test]
    fn not_before_is_respected() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut later = item(1, 0);
        later.not_before = 100;
        let mut sooner = item(2, 0);
        sooner.price_per_byte_per_second = U256::from(1);
        sooner.not_before = 50;
        queue.push(vec![later.clone(), sooner.clone()], 0);
        assert_eq!(queue.next_eligible_at(0), Some(50));
        assert_eq!(queue.pop(49), None);
        assert!(!queue.paused());
        assert_eq!(queue.pop(50).map(|(i, _)| i), Some(sooner));
        assert_eq!(queue.next_eligible_at(50), Some(100));
        assert_eq!(queue.next_eligible_at(100), None);
        assert_eq!(queue.pop(99), None);
        assert_eq!(queue.pop(100).map(|(i, _)| i), Some(later));
    }

    #[test]
    fn an_unseen_item_reaching_its_window_resumes() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut seen = item(1, 0);
        seen.seen = true;
        let mut waiting = item(2, 0);
        waiting.not_before = 100;
        queue.push(vec![seen, waiting.clone()], 0);
        assert_eq!(queue.pop(0), None);
        assert!(queue.paused());
        assert_eq!(queue.pop(99), None);
        assert!(queue.paused());
        assert_eq!(queue.next_eligible_at(99), Some(100));
        assert_eq!(queue.pop(100).map(|(i, _)| i), Some(waiting));
        assert!(!queue.paused());
        assert_eq!(queue.pop(100), None);
        assert!(queue.paused());
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn the_best_eligible_item_is_popped() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut best_later = item(1, 0);
        best_later.price_per_byte_per_second = U256::from(100);
        best_later.not_before = 100;
        queue.push(vec![best_later], 5);
        queue.push(vec![item(2, 1)], 5);
        queue.push(vec![item(2, 0)], 5);
        assert_eq!(queue.pop(0).map(|(i, _)| (i.request_id, i.slot_index)), Some((B256::repeat_byte(2), 1)));
        assert_eq!(queue.pop(0).map(|(i, _)| (i.request_id, i.slot_index)), Some((B256::repeat_byte(2), 0)));
        assert_eq!(queue.pop(0), None);
    }

    #[test]
    fn remove_request_and_slot() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        queue.push(slots(1, 3), 1);
        queue.push(slots(2, 2), 1);
        assert!(queue.remove_slot(&B256::repeat_byte(1), 1));
        assert!(!queue.remove_slot(&B256::repeat_byte(1), 1));
        assert_eq!(queue.remove_request(&B256::repeat_byte(2)), 2);
        assert_eq!(queue.remove_request(&B256::repeat_byte(2)), 0);
        let mut left = keys(&queue.items());
        left.sort();
        assert_eq!(left, vec![(B256::repeat_byte(1), 0), (B256::repeat_byte(1), 2)]);
        assert!(!queue.is_empty());
    }

    #[test]
    fn reprocessed_item_goes_behind_unseen_ones() {
        let mut queue = SlotQueue::new(DEFAULT_CAPACITY, DEFAULT_MAX_WORKERS);
        let mut best = item(1, 0);
        best.price_per_byte_per_second = U256::from(100);
        queue.push(vec![best.clone(), item(2, 0), item(2, 1)], 2);
        let (mut popped, worker) = queue.pop(0).unwrap();
        assert_eq!(popped, best);
        queue.return_worker(worker);
        popped.seen = true;
        assert_eq!(queue.push(vec![popped.clone()], 0).added, 1);
        assert_eq!(keys(&queue.items()).last(), Some(&(B256::repeat_byte(1), 0)));
        assert!(!queue.pop(0).unwrap().0.seen);
        assert!(!queue.pop(0).unwrap().0.seen);
        assert_eq!(queue.pop(0), None);
        assert!(queue.paused());
        assert_eq!(queue.items(), vec![popped]);
    }

    proptest! {
        #[test]
        fn workers_out_never_exceed_max(max_workers in 1usize..5, ops in proptest::collection::vec((any::<bool>(), 0u32..6), 0..80)) {
            let mut queue = SlotQueue::new(DEFAULT_CAPACITY, max_workers);
            queue.push(slots(1, 100), 0);
            let mut out: BTreeSet<WorkerId> = BTreeSet::new();
            for (is_pop, worker) in ops {
                if is_pop {
                    if let Some((_, w)) = queue.pop(0) {
                        prop_assert!(out.insert(w), "worker {:?} handed out twice", w);
                    } else {
                        prop_assert_eq!(out.len(), max_workers);
                    }
                } else {
                    queue.return_worker(WorkerId(worker));
                    out.remove(&WorkerId(worker));
                }
                prop_assert!(out.len() <= max_workers);
                prop_assert_eq!(queue.free_workers() + out.len(), max_workers);
            }
        }

        #[test]
        fn queue_stays_sorted_and_bounded(
            pushes in proptest::collection::vec((0u8..6, 0u64..6, 1u64..5, any::<bool>(), any::<u64>()), 0..60),
        ) {
            let mut queue = SlotQueue::new(10, 2);
            for (request, slot, price, seen, seed) in pushes {
                let mut i = item(request, slot);
                i.price_per_byte_per_second = U256::from(price);
                i.seen = seen;
                queue.push(vec![i], seed);
                prop_assert!(queue.len() <= 9);
                let items = queue.items();
                prop_assert!(items.windows(2).all(|w| compare_priority(&w[0], &w[1]) != Ordering::Greater));
            }
        }
    }
}
