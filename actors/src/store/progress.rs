//! The progress of a network download, shared read-only with the streams and the block exchange: an atomic
//! bitmap of held leaves (the only per-download memory that grows with the dataset: one bit a leaf), plus
//! watch channels for arrivals and status.

use codex_protocol::blockexc::DeliveryError;
use codex_protocol::erasure::ErasureLayout;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// Where a download stands, as watched by streams and the fetch driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadStatus {
    Running,
    Complete,
    Failed(String),
}

/// Which leaves of a download are held, shared (read-only) with readers that stream it while it arrives.
#[derive(Debug)]
pub struct Progress {
    leaves: u64,
    bits: Vec<AtomicU64>,
    received: AtomicU64,
    status: watch::Sender<DownloadStatus>,
    /// Bumped whenever leaves arrive, so waiting readers wake up.
    arrivals: watch::Sender<u64>,
    /// Set for a download that decodes (any K members of each erasure group will do).
    groups: OnceLock<Groups>,
    /// The leaf a stream reader waits for (`u64::MAX`: none), fetched first by the block exchange.
    reader_waits: AtomicU64,
}

/// Which erasure groups of a decoding download hold K members (the rest of such a group is not needed).
#[derive(Debug)]
struct Groups {
    layout: ErasureLayout,
    done: Vec<AtomicU64>,
    count: AtomicU64,
}

impl Progress {
    pub(super) fn new(leaves: u64, have: &[u64]) -> Self {
        let words = leaves.div_ceil(64) as usize;
        let bits: Vec<AtomicU64> = (0..words).map(|i| AtomicU64::new(have.get(i).copied().unwrap_or(0))).collect();
        // Clear bits past the end, in case a record carries garbage there.
        if !leaves.is_multiple_of(64)
            && let Some(last) = bits.last()
        {
            last.fetch_and((1u64 << (leaves % 64)) - 1, Ordering::Relaxed);
        }
        let received = bits.iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum();
        Self {
            leaves,
            bits,
            received: AtomicU64::new(received),
            status: watch::channel(DownloadStatus::Running).0,
            arrivals: watch::channel(0).0,
            groups: OnceLock::new(),
            reader_waits: AtomicU64::new(u64::MAX),
        }
    }

    /// Makes this the progress of a decoding download over `layout` (once; later calls are ignored).
    pub(super) fn decode_groups(&self, layout: ErasureLayout) {
        let words = layout.groups().div_ceil(64) as usize;
        let done = (0..words).map(|_| AtomicU64::new(0)).collect();
        let _ = self.groups.set(Groups { layout, done, count: AtomicU64::new(0) });
    }

    /// Marks erasure group `group` as holding K members.
    pub(super) fn set_group_done(&self, group: u64) {
        let Some(groups) = self.groups.get() else { return };
        let Some(word) = groups.done.get((group / 64) as usize) else { return };
        let bit = 1u64 << (group % 64);
        if word.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            groups.count.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn group_done(&self, index: u64) -> bool {
        let Some(groups) = self.groups.get() else { return false };
        let Some((group, _)) = groups.layout.group_of(index) else { return false };
        groups.done.get((group / 64) as usize).is_some_and(|w| w.load(Ordering::Acquire) & (1u64 << (group % 64)) != 0)
    }

    /// True when leaf `index` is still worth fetching: not held, and (for a decoding download) not erasure
    /// padding and not in a group that already holds K members.
    pub fn needed(&self, index: u64) -> bool {
        if self.has(index) || index >= self.leaves {
            return false;
        }
        match self.groups.get() {
            Some(groups) => !groups.layout.is_padding(index) && !self.group_done(index),
            None => true,
        }
    }

    /// Waits until every erasure group of a decoding download holds K members; `Err` with the reason when the
    /// download fails or ends before that.
    pub async fn until_decodable(&self) -> Result<(), String> {
        let mut arrivals = self.watch_arrivals();
        let mut status = self.watch_status();
        loop {
            if self.decodable() {
                return Ok(());
            }
            match self.status() {
                DownloadStatus::Running => {}
                DownloadStatus::Failed(reason) => return Err(reason),
                DownloadStatus::Complete => return Err("the download ended before it could be decoded".into()),
            }
            let dropped = tokio::select! {
                changed = arrivals.changed() => changed.is_err(),
                changed = status.changed() => changed.is_err(),
            };
            if dropped {
                return Err("the download was dropped".into());
            }
        }
    }

    /// For a decoding download: true once every erasure group holds K members (the rest can be decoded).
    pub fn decodable(&self) -> bool {
        self.groups.get().is_some_and(|g| g.count.load(Ordering::Acquire) == g.layout.groups())
    }

    /// The number of leaves in the dataset.
    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// True when leaf `index` is held (readable from the segment file).
    pub fn has(&self, index: u64) -> bool {
        index < self.leaves && self.bits[(index / 64) as usize].load(Ordering::Acquire) & (1u64 << (index % 64)) != 0
    }

    /// Leaves held so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The leaves not held yet, in order.
    pub fn missing(&self) -> Vec<u64> {
        (0..self.leaves).filter(|i| !self.has(*i)).collect()
    }

    /// Current status.
    pub fn status(&self) -> DownloadStatus {
        self.status.borrow().clone()
    }

    /// Watches the status.
    pub fn watch_status(&self) -> watch::Receiver<DownloadStatus> {
        self.status.subscribe()
    }

    /// A stream reader waits for leaf `index`: the block exchange asks for it (and the few after it) first.
    pub fn reader_waits_for(&self, index: u64) {
        self.reader_waits.store(index, Ordering::Relaxed);
    }

    /// The leaf a stream reader last waited for, if it is not held yet.
    pub fn reader_waiting(&self) -> Option<u64> {
        let index = self.reader_waits.load(Ordering::Relaxed);
        (index != u64::MAX && !self.has(index)).then_some(index)
    }

    /// Watches arrivals (the value is a counter; wake up and re-check [`Progress::has`]).
    pub fn watch_arrivals(&self) -> watch::Receiver<u64> {
        self.arrivals.subscribe()
    }

    /// Marks the download failed (readers give up); a later fetch may resume it.
    pub fn fail(&self, reason: String) {
        self.status.send_if_modified(|status| {
            if *status == DownloadStatus::Running {
                *status = DownloadStatus::Failed(reason);
                true
            } else {
                false
            }
        });
    }

    /// Reopens a failed download for a new attempt.
    pub fn restart(&self) {
        self.status.send_if_modified(|status| {
            if matches!(status, DownloadStatus::Failed(_)) {
                *status = DownloadStatus::Running;
                true
            } else {
                false
            }
        });
    }

    pub(super) fn set(&self, index: u64) {
        self.bits[(index / 64) as usize].fetch_or(1u64 << (index % 64), Ordering::Release);
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn announce_arrivals(&self) {
        self.arrivals.send_modify(|n| *n += 1);
    }

    pub(super) fn complete(&self) {
        self.status.send_replace(DownloadStatus::Complete);
        self.announce_arrivals();
    }

    pub(super) fn words(&self) -> Vec<u64> {
        self.bits.iter().map(|w| w.load(Ordering::Acquire)).collect()
    }
}

/// What became of one delivered leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafOutcome {
    /// Verified and written.
    Stored,
    /// Already held: nothing written.
    Duplicate,
    /// Failed verification: nothing written; the sender lied.
    Rejected(DeliveryError),
}
