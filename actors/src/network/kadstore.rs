//! The Kademlia record store: provider records only, with remote ones bounded.
//!
//! Codex uses the DHT for provider records alone (who holds a manifest or tree CID); it stores no values.
//! libp2p's `MemoryStore` counts every provider key against one limit, so remote peers could fill it with
//! ADD_PROVIDER for random keys (each ~60 wire bytes, kilobytes of memory) and crowd out the node's own. Here the
//! node's own provided keys live apart from remote ones, and remote records are accepted only for keys that are
//! Codex CIDs (a Codex codec over SHA-256), with at most [`MAX_REMOTE_KEYS`] keys in all,
//! [`MAX_KEYS_PER_PROVIDER`] keys per provider, [`MAX_PROVIDERS_PER_KEY`] providers per key and
//! [`MAX_ADDRESSES`] addresses per record. Expired records are dropped when space is needed and never served.
//! Value records (PUT_VALUE) are refused.

use codex_protocol::cid::{check_codex_cid, cid_from_bytes};
use libp2p::PeerId;
use libp2p::kad::store::{Error, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::{Entry, Values};
use std::time::{Duration, Instant};

/// Keys with remote provider records, in all.
pub const MAX_REMOTE_KEYS: usize = 8192;
/// Keys one remote peer may be recorded as providing.
pub const MAX_KEYS_PER_PROVIDER: usize = 1024;
/// Providers recorded per key (Kademlia's replication factor).
pub const MAX_PROVIDERS_PER_KEY: usize = 20;
/// Addresses kept per remote provider record.
pub const MAX_ADDRESSES: usize = 8;
/// Keys this node itself provides (one manifest and one tree per dataset).
const MAX_OWN_KEYS: usize = 1 << 22;

/// Provider records: the node's own, and a bounded set of remote ones.
pub struct ProviderStore {
    local: PeerId,
    own: HashMap<RecordKey, ProviderRecord>,
    remote: HashMap<RecordKey, Vec<ProviderRecord>>,
    per_provider: HashMap<PeerId, usize>,
    /// When expired records were last dropped (at most once a second: a flood must not make every refusal
    /// walk the whole store).
    last_purge: Option<Instant>,
}

/// True for keys that are Codex CIDs: a Codex codec over a SHA-256 digest.
pub fn is_codex_key(key: &RecordKey) -> bool {
    cid_from_bytes(key.as_ref()).is_ok_and(|cid| check_codex_cid(&cid).is_ok())
}

fn expired(record: &ProviderRecord, now: Instant) -> bool {
    record.expires.is_some_and(|at| at <= now)
}

impl ProviderStore {
    pub fn new(local: PeerId) -> Self {
        Self { local, own: HashMap::new(), remote: HashMap::new(), per_provider: HashMap::new(), last_purge: None }
    }

    /// Remote keys held (for `/debug/info` and tests).
    pub fn remote_keys(&self) -> usize {
        self.remote.len()
    }

    /// Keys this node provides.
    pub fn own_keys(&self) -> usize {
        self.own.len()
    }

    fn forget_provider(&mut self, provider: &PeerId) {
        if let Entry::Occupied(mut count) = self.per_provider.entry(*provider) {
            *count.get_mut() = count.get().saturating_sub(1);
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    fn purge_expired(&mut self, now: Instant) {
        if self.last_purge.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            return;
        }
        self.last_purge = Some(now);
        let mut gone = Vec::new();
        self.remote.retain(|_, records| {
            records.retain(|record| {
                let keep = !expired(record, now);
                if !keep {
                    gone.push(record.provider);
                }
                keep
            });
            !records.is_empty()
        });
        for provider in gone {
            self.forget_provider(&provider);
        }
    }

    fn add_remote(&mut self, mut record: ProviderRecord) -> Result<()> {
        if !is_codex_key(&record.key) {
            return Err(Error::MaxProvidedKeys);
        }
        record.addresses.truncate(MAX_ADDRESSES);
        let provider = record.provider;
        if let Some(records) = self.remote.get_mut(&record.key)
            && let Some(existing) = records.iter_mut().find(|r| r.provider == provider)
        {
            *existing = record;
            return Ok(());
        }
        let now = Instant::now();
        let full_provider =
            |store: &Self| store.per_provider.get(&provider).is_some_and(|n| *n >= MAX_KEYS_PER_PROVIDER);
        let full_keys = |store: &Self| !store.remote.contains_key(&record.key) && store.remote.len() >= MAX_REMOTE_KEYS;
        if full_provider(self) || full_keys(self) {
            self.purge_expired(now);
            if full_provider(self) || full_keys(self) {
                return Err(Error::MaxProvidedKeys);
            }
        }
        let records = self.remote.entry(record.key.clone()).or_default();
        if records.len() >= MAX_PROVIDERS_PER_KEY {
            // Like libp2p's store: later providers of a full key are ignored (mitigates Sybil floods).
            return Ok(());
        }
        records.push(record);
        *self.per_provider.entry(provider).or_default() += 1;
        Ok(())
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = std::iter::Empty<Cow<'a, Record>>;
    type ProvidedIter<'a> =
        std::iter::Map<Values<'a, RecordKey, ProviderRecord>, fn(&'a ProviderRecord) -> Cow<'a, ProviderRecord>>;

    fn get(&self, _: &RecordKey) -> Option<Cow<'_, Record>> {
        None
    }

    fn put(&mut self, _: Record) -> Result<()> {
        Err(Error::MaxRecords)
    }

    fn remove(&mut self, _: &RecordKey) {}

    fn records(&self) -> Self::RecordsIter<'_> {
        std::iter::empty()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        if record.provider != self.local {
            return self.add_remote(record);
        }
        if !self.own.contains_key(&record.key) && self.own.len() >= MAX_OWN_KEYS {
            return Err(Error::MaxProvidedKeys);
        }
        self.own.insert(record.key.clone(), record);
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let now = Instant::now();
        let remote = self.remote.get(key).into_iter().flatten().filter(|r| !expired(r, now));
        self.own.get(key).into_iter().chain(remote).cloned().collect()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.own.values().map(Cow::Borrowed)
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if *provider == self.local {
            self.own.remove(key);
            return;
        }
        let Some(records) = self.remote.get_mut(key) else { return };
        let before = records.len();
        records.retain(|r| r.provider != *provider);
        let removed = before != records.len();
        if records.is_empty() {
            self.remote.remove(key);
        }
        if removed {
            self.forget_provider(provider);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::cid::{ROOT_CODEC, cid_from_sha256};

    fn codex_key(n: u64) -> RecordKey {
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&n.to_le_bytes());
        RecordKey::new(&cid_from_sha256(ROOT_CODEC, &digest).to_bytes())
    }

    fn record(key: RecordKey, provider: PeerId) -> ProviderRecord {
        ProviderRecord { key, provider, expires: None, addresses: Vec::new() }
    }

    #[test]
    fn a_flood_of_remote_keys_stays_bounded_and_own_keys_are_kept() {
        let local = PeerId::random();
        let mut store = ProviderStore::new(local);
        for n in 0..10 {
            store.add_provider(record(codex_key(1_000_000 + n), local)).expect("own key");
        }
        let attacker = PeerId::random();
        let accepted = (0..20_000).filter(|n| store.add_provider(record(codex_key(*n), attacker)).is_ok()).count();
        assert_eq!(accepted, MAX_KEYS_PER_PROVIDER);
        for n in 0..20_000 {
            let _ = store.add_provider(record(codex_key(100_000 + n), PeerId::random()));
        }
        assert_eq!(store.remote_keys(), MAX_REMOTE_KEYS);
        assert_eq!(store.own_keys(), 10);
        assert_eq!(store.provided().count(), 10);
        assert_eq!(store.providers(&codex_key(1_000_003)).len(), 1);
        // The node can still provide new keys of its own.
        store.add_provider(record(codex_key(2_000_000), local)).expect("own key after the flood");
    }

    #[test]
    fn keys_that_are_not_codex_cids_and_values_are_refused() {
        let mut store = ProviderStore::new(PeerId::random());
        assert!(store.add_provider(record(RecordKey::new(&[1u8, 2, 3, 4]), PeerId::random())).is_err());
        let raw = codex_protocol::Cid::new_v1(0x55, *cid_from_sha256(ROOT_CODEC, &[3; 32]).hash());
        assert!(store.add_provider(record(RecordKey::new(&raw.to_bytes()), PeerId::random())).is_err());
        assert!(store.put(Record::new(codex_key(1), vec![1, 2, 3])).is_err());
        assert_eq!(store.remote_keys(), 0);
    }

    #[test]
    fn addresses_are_capped_and_expired_records_make_room() {
        let mut store = ProviderStore::new(PeerId::random());
        let provider = PeerId::random();
        let mut big = record(codex_key(1), provider);
        big.addresses = (0..100).map(|p| format!("/ip4/127.0.0.1/tcp/{p}").parse().expect("addr")).collect();
        store.add_provider(big).expect("added");
        assert_eq!(store.providers(&codex_key(1))[0].addresses.len(), MAX_ADDRESSES);

        let past = Instant::now() - Duration::from_secs(1);
        for n in 0..MAX_KEYS_PER_PROVIDER as u64 {
            let mut r = record(codex_key(10 + n), provider);
            r.expires = Some(past);
            let _ = store.add_provider(r);
        }
        assert!(store.providers(&codex_key(10)).is_empty(), "expired records are not served");
        store.add_provider(record(codex_key(99_999), provider)).expect("expired records were purged");
        store.remove_provider(&codex_key(99_999), &provider);
        assert!(store.providers(&codex_key(99_999)).is_empty());
    }
}
