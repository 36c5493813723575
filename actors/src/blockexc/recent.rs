//! A bounded memory of keys seen lately (ended fetches and downloads, whose late answers are expected; trees
//! peers asked about before this node fetched them).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys noted less than `keep` ago, at most `max` of them (the oldest are forgotten first).
pub struct Recent<K> {
    keep: Duration,
    max: usize,
    seen: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Copy> Recent<K> {
    pub fn new(keep: Duration, max: usize) -> Self {
        Self { keep, max, seen: HashMap::new() }
    }

    pub fn note(&mut self, key: K, now: Instant) {
        if self.seen.len() >= self.max && !self.seen.contains_key(&key) {
            self.expire(now);
            if self.seen.len() >= self.max
                && let Some(oldest) = self.seen.iter().min_by_key(|(_, at)| **at).map(|(key, _)| *key)
            {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key, now);
    }

    /// True when `key` was noted less than `keep` before `now`.
    pub fn contains(&self, key: &K, now: Instant) -> bool {
        self.seen.get(key).is_some_and(|at| now.duration_since(*at) < self.keep)
    }

    /// Forgets `key`; true when it was noted less than `keep` before `now`.
    pub fn take(&mut self, key: &K, now: Instant) -> bool {
        self.seen.remove(key).is_some_and(|at| now.duration_since(at) < self.keep)
    }

    /// Forgets keys noted `keep` or longer ago.
    pub fn expire(&mut self, now: Instant) {
        let keep = self.keep;
        self.seen.retain(|_, at| now.duration_since(*at) < keep);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_for_a_while_and_bounded() {
        let (mut recent, now) = (Recent::new(Duration::from_secs(30), 4), Instant::now());
        recent.note(1u32, now);
        assert!(recent.contains(&1, now + Duration::from_secs(29)));
        assert!(!recent.contains(&1, now + Duration::from_secs(30)));
        assert!(!recent.contains(&2, now));
        for key in 2..10u32 {
            recent.note(key, now + Duration::from_secs(u64::from(key)));
        }
        assert_eq!(recent.len(), 4, "bounded");
        assert!(recent.contains(&9, now + Duration::from_secs(10)), "the newest stay");
        assert!(!recent.contains(&2, now + Duration::from_secs(10)), "the oldest go first");
        assert!(recent.take(&9, now + Duration::from_secs(10)), "noted lately");
        assert!(!recent.take(&9, now + Duration::from_secs(10)), "taken once");
        recent.expire(now + Duration::from_secs(100));
        assert!(recent.is_empty());
    }
}
