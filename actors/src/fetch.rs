//! The network fetch flow (seed 000 "fetchDatasetAsync"), as plain async functions the NodeActor runs for
//! [`crate::node::FetchDataset`], [`crate::node::FetchNetworkManifest`] and, at start, to resume downloads.
//!
//! 1. [`manifest_of`]: a manifest CID's manifest, from the store, or else fetched from peers through the block
//!    exchange ([`FetchBlock`]). Bytes from the network are untrusted: [`PutManifest`] has the
//!    store decode and [`Manifest::validate`] them *before* anything is stored or sized from them, and check them
//!    against the size of an already stored tree. An invalid manifest ends in
//!    [`NodeError::ManifestUnavailable`] (a 404 for the REST API, with the reason) and leaves nothing behind.
//! 2. [`fetch_dataset`]: `BeginDownload` (segment, quota claim for the whole dataset, or the running download,
//!    or the stored dataset), then `StartDownload` to the block exchange with the download's `Progress`. A
//!    protected dataset is decoded on download instead (`fetch_protected`).
//!
//! Runs on the system arbiter inside NodeActor futures; it only awaits other actors.

use crate::blockexc::{BlockExchangeActor, FetchBlock, LeafSet, StartDownload};
use crate::erasure::{DecodeSegment, ErasureActor, Want};
use crate::node::{FetchState, Fetched, ManifestFailure, NodeError};
use crate::store::{
    BeginDecodeDownload, BeginDownload, DecodeDownload, DownloadState, FailDownload, FinishDecode, GetBlock,
    GetManifest, ListDownloads, OpenDataset, PutManifest, StoreActor, StoreError,
};
use actix::Addr;
use bytes::Bytes;
use codex_protocol::Cid;
use codex_protocol::Manifest;
use codex_protocol::cid::{format_cid, is_manifest};

/// The manifest of `cid`: stored, or fetched from peers, validated, checked against the CID and stored.
pub async fn manifest_of(
    store: &Addr<StoreActor>,
    exchange: Option<&Addr<BlockExchangeActor>>,
    cid: Cid,
) -> Result<Manifest, NodeError> {
    if !is_manifest(&cid) {
        return Err(NodeError::NotAManifest { cid });
    }
    if let Some(manifest) = store.send(GetManifest { cid }).await?? {
        return Ok(manifest);
    }
    if let Some(bytes) = store.send(GetBlock { cid }).await?? {
        // A standalone manifest block stored earlier (perhaps before manifests were validated).
        return decode_valid(cid, &bytes);
    }
    let exchange = exchange.ok_or(NodeError::NotFound { cid })?;
    let bytes = exchange.send(FetchBlock { cid }).await?.map_err(|err| NodeError::manifest_unavailable(cid, err))?;
    store_network_manifest(store, cid, bytes).await
}

/// Has the store decode, validate, check and keep a manifest that came from a peer (nothing is stored or sized
/// from it before it validates).
async fn store_network_manifest(store: &Addr<StoreActor>, cid: Cid, bytes: Bytes) -> Result<Manifest, NodeError> {
    store.send(PutManifest { cid, data: bytes }).await?.map_err(|err| refusal(cid, err))
}

/// Decodes and validates manifest bytes; an invalid manifest is unavailable, with the reason.
fn decode_valid(cid: Cid, bytes: &[u8]) -> Result<Manifest, NodeError> {
    let invalid = |err: codex_protocol::ManifestError| NodeError::manifest_unavailable(cid, err);
    let manifest = Manifest::decode(bytes).map_err(invalid)?;
    manifest.validate().map_err(invalid)?;
    Ok(manifest)
}

/// The store's refusals of a network manifest are the peer's fault, not the node's: they make the manifest
/// unavailable (4xx) rather than an internal error.
fn refusal(cid: Cid, err: StoreError) -> NodeError {
    match err {
        StoreError::InvalidManifest { .. } | StoreError::TreeSizeMismatch { .. } | StoreError::CidMismatch { .. } => {
            NodeError::manifest_unavailable(cid, ManifestFailure::Refused(err))
        }
        other => NodeError::Store(other),
    }
}

/// Fetches dataset `cid` into the store, in the background; answers once the manifest is known. A protected
/// dataset is decoded on the way (`fetch_protected`), its data leaves fetched in order when `in_order` (a
/// stream reads them).
pub async fn fetch_dataset(
    store: Addr<StoreActor>,
    exchange: Option<Addr<BlockExchangeActor>>,
    erasure: Addr<ErasureActor>,
    cid: Cid,
    in_order: bool,
) -> Result<Fetched, NodeError> {
    let manifest = manifest_of(&store, exchange.as_ref(), cid).await?;
    if let Some(opened) = store.send(OpenDataset { cid }).await?? {
        return Ok(Fetched { manifest: opened.manifest, state: FetchState::Local });
    }
    let exchange = exchange.ok_or(NodeError::NoNetwork)?;
    if manifest.is_protected() {
        return fetch_protected(store, exchange, erasure, cid, manifest, in_order).await;
    }
    let begun = store.send(BeginDownload { manifest_cid: cid, manifest: manifest.clone() }).await?;
    match begun.map_err(|err| refusal(cid, err))? {
        DownloadState::Stored => Ok(Fetched { manifest, state: FetchState::Local }),
        DownloadState::Partial(progress) => {
            exchange.do_send(StartDownload {
                manifest_cid: cid,
                manifest: manifest.clone(),
                progress: progress.clone(),
                leaves: crate::blockexc::LeafSet::All,
            });
            Ok(Fetched { manifest, state: FetchState::Downloading(progress) })
        }
    }
}

/// Decode on download (seed 000 "Reading dataset" of a protected dataset): a decoding download fetches any K of
/// each erasure group's members (data first: when nothing is lost no parity is fetched), group by group or, for
/// a stream, data leaf by data leaf in order, while the original bytes stream as they arrive. Once every group holds K members, the ErasureActor decodes the
/// missing data blocks into the download's segment, and `FinishDecode` checks all data leaves against
/// `originalTreeCid` and stores the original dataset. One driver task per download does this.
async fn fetch_protected(
    store: Addr<StoreActor>,
    exchange: Addr<BlockExchangeActor>,
    erasure: Addr<ErasureActor>,
    cid: Cid,
    manifest: Manifest,
    in_order: bool,
) -> Result<Fetched, NodeError> {
    let begun = store
        .send(BeginDecodeDownload { manifest_cid: cid, manifest: manifest.clone() })
        .await?
        .map_err(|err| refusal(cid, err))?;
    let progress = begun.progress.clone();
    exchange.do_send(StartDownload {
        manifest_cid: cid,
        manifest: manifest.clone(),
        progress: progress.clone(),
        leaves: LeafSet::Groups { layout: begun.layout, in_order },
    });
    if begun.drive {
        actix::spawn(drive_decode(store, erasure, cid, manifest.clone(), begun));
    }
    Ok(Fetched { manifest, state: FetchState::Downloading(progress) })
}

/// Waits until every erasure group of a decoding download holds K members, decodes the missing data blocks,
/// and has the store check and keep the original.
async fn drive_decode(
    store: Addr<StoreActor>,
    erasure: Addr<ErasureActor>,
    cid: Cid,
    manifest: Manifest,
    begun: DecodeDownload,
) {
    let progress = begun.progress;
    if progress.until_decodable().await.is_err() {
        // Failed or dropped: the download reports why; a later fetch resumes it with a new driver.
        return;
    }
    let layout = begun.layout;
    let original = layout.original_blocks();
    let present: Vec<bool> = (0..progress.leaves()).map(|index| progress.has(index)).collect();
    let parity_held = present.iter().skip(layout.rounded() as usize).filter(|held| **held).count();
    tracing::info!(cid = %format_cid(&cid), parity_held, groups = layout.groups(), "every erasure group decodable");
    let groups: Vec<u64> = (0..layout.groups())
        .filter(|group| layout.group_members(*group).any(|index| index < original && !progress.has(index)))
        .collect();
    let tree = manifest.tree_cid;
    let recovered = if groups.is_empty() {
        Vec::new()
    } else {
        tracing::info!(cid = %format_cid(&cid), groups = groups.len(), "decoding missing blocks");
        let decode = DecodeSegment {
            params: layout.params(),
            original_blocks: original,
            block_size: manifest.block_size as usize,
            file: begun.data_path,
            present,
            groups,
            want: Want::DataOnly,
        };
        match erasure.send(decode).await {
            Ok(Ok(decoded)) => decoded.recovered,
            Ok(Err(err)) => return fail_decode(&store, tree, err.to_string()).await,
            Err(_) => return fail_decode(&store, tree, "the erasure coder stopped".into()).await,
        }
    };
    match store.send(FinishDecode { tree, recovered }).await {
        Ok(Ok(stored)) => {
            tracing::info!(cid = %format_cid(&cid), original = %format_cid(&stored.cid), "protected dataset decoded")
        }
        Ok(Err(err)) => tracing::warn!(cid = %format_cid(&cid), %err, "decoding failed"),
        Err(_) => {}
    }
}

async fn fail_decode(store: &Addr<StoreActor>, tree: Cid, reason: String) {
    tracing::warn!(tree = %format_cid(&tree), %reason, "decoding failed");
    store.do_send(FailDownload { tree, reason });
}

/// Resumes every download the store found at open.
pub async fn resume_downloads(
    store: Addr<StoreActor>,
    exchange: Option<Addr<BlockExchangeActor>>,
    erasure: Addr<ErasureActor>,
) {
    let downloads = match store.send(ListDownloads).await {
        Ok(Ok(downloads)) => downloads,
        Ok(Err(err)) => return tracing::warn!(%err, "cannot list downloads to resume"),
        Err(_) => return,
    };
    for (cid, _) in downloads {
        tracing::info!(cid = %format_cid(&cid), "resuming a download");
        if let Err(err) = fetch_dataset(store.clone(), exchange.clone(), erasure.clone(), cid, false).await {
            tracing::warn!(%err, "cannot resume a download");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::cid::{ROOT_CODEC, cid_from_sha256};

    #[test]
    fn invalid_network_manifests_are_unavailable_with_the_reason() {
        let tree = cid_from_sha256(ROOT_CODEC, &[1; 32]);
        let bad = Manifest::new_unprotected(tree, 1, 64 << 20, None, None).encode();
        let cid = Manifest::cid_of(&bad);
        match decode_valid(cid, &bad) {
            Err(NodeError::ManifestUnavailable { source, .. }) => {
                assert!(matches!(*source, ManifestFailure::Invalid(_)), "{source}");
                assert!(source.to_string().contains("block size"), "{source}")
            }
            other => panic!("expected ManifestUnavailable, got {other:?}"),
        }
        assert!(matches!(decode_valid(cid, b"garbage"), Err(NodeError::ManifestUnavailable { .. })));
        let good = Manifest::new_unprotected(tree, codex_protocol::DEFAULT_BLOCK_SIZE as u64, 10, None, None);
        assert_eq!(decode_valid(cid, &good.encode()).expect("valid"), good);
        let refused = refusal(cid, StoreError::CidMismatch { cid });
        assert!(matches!(refused, NodeError::ManifestUnavailable { .. }));
        assert!(matches!(refusal(cid, StoreError::Unavailable), NodeError::Store(StoreError::Unavailable)));
    }
}
