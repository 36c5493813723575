//! UploadSession: turns a byte stream into a stored dataset (seed 000, "Writing dataset").
//!
//! Not an actor but a session object owned by whoever drives the stream (the REST upload handler). It cuts the
//! stream into 64 KiB blocks (zero-padding the last), and feeds every block to two threads of its own over
//! bounded channels: a hasher (SHA-256 per block, then the CodexTree, written to the segment's tree file) and a
//! writer (blocks appended to the segment's data file, writeback started as it goes). Quota is claimed block by
//! block. [`UploadSession::finish`] waits for both threads, syncs, and sends [`CommitUpload`] to the
//! StoreActor: the dataset is visible only once that redb transaction is durable. Dropping an unfinished
//! session removes its files and returns its claim, so an interrupted upload leaves nothing behind.

use crate::store::{
    BeginUpload, CommitUpload, StoreActor, StoreError, StoredDataset, UploadTarget, remove_in_background,
};
use actix::Addr;
use bytes::Bytes;
use codex_protocol::cid::sha256;
use codex_protocol::{BlockAssembler, CodexTree, Manifest};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use tokio::sync::{mpsc, oneshot};

/// Blocks in flight to each worker thread (2 × 16 × 64 KiB = 2 MiB per upload).
const CHANNEL_BLOCKS: usize = 16;
/// Start writeback every this many bytes so the final sync has little left to do.
const WRITEBACK_STEP: u64 = 32 * 1024 * 1024;

enum Piece {
    Block(Bytes),
    End,
}

/// One upload in progress.
pub struct UploadSession {
    store: Addr<StoreActor>,
    target: UploadTarget,
    assembler: Option<BlockAssembler>,
    block_size: usize,
    filename: Option<String>,
    mimetype: Option<String>,
    hash_tx: Option<mpsc::Sender<Piece>>,
    write_tx: Option<mpsc::Sender<Piece>>,
    hashed: Option<oneshot::Receiver<Result<CodexTree, StoreError>>>,
    written: Option<oneshot::Receiver<Result<(), StoreError>>>,
    claimed: u64,
    committed: bool,
}

impl UploadSession {
    /// Starts an upload: allocates a segment and spawns the hasher and writer threads.
    pub async fn begin(
        store: Addr<StoreActor>,
        block_size: usize,
        filename: Option<String>,
        mimetype: Option<String>,
    ) -> Result<Self, StoreError> {
        let target = store.send(BeginUpload).await??;
        let data_file = File::create(&target.data_path).map_err(StoreError::io("creating the upload's data file"))?;
        let (hash_tx, hash_rx) = mpsc::channel(CHANNEL_BLOCKS);
        let (write_tx, write_rx) = mpsc::channel(CHANNEL_BLOCKS);
        let (hashed_tx, hashed) = oneshot::channel();
        let (written_tx, written) = oneshot::channel();
        let tree_path = target.tree_path.clone();
        spawn_worker(format!("upload-hash-{}", target.segment), move || {
            let _ = hashed_tx.send(hash_blocks(hash_rx, &tree_path));
        })?;
        spawn_worker(format!("upload-write-{}", target.segment), move || {
            let _ = written_tx.send(write_blocks(write_rx, data_file));
        })?;
        Ok(Self {
            store,
            target,
            assembler: Some(BlockAssembler::new(block_size)),
            block_size,
            filename,
            mimetype,
            hash_tx: Some(hash_tx),
            write_tx: Some(write_tx),
            hashed: Some(hashed),
            written: Some(written),
            claimed: 0,
            committed: false,
        })
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.assembler.as_ref().map_or(0, BlockAssembler::total_bytes)
    }

    /// Adds the next chunk of the stream. Waits when the worker threads are behind.
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let mut blocks = Vec::new();
        let assembler = self.assembler.as_mut().ok_or(StoreError::Interrupted)?;
        assembler.push(chunk, |block| {
            blocks.push(block);
            Ok::<_, StoreError>(())
        })?;
        for block in blocks {
            self.send_block(block).await?;
        }
        Ok(())
    }

    async fn send_block(&mut self, block: Bytes) -> Result<(), StoreError> {
        self.target.quota.claim(block.len() as u64)?;
        self.claimed += block.len() as u64;
        self.send_both(Piece::Block(block.clone()), Piece::Block(block)).await
    }

    async fn send_both(&mut self, to_hasher: Piece, to_writer: Piece) -> Result<(), StoreError> {
        let hash_tx = self.hash_tx.as_ref().ok_or(StoreError::Interrupted)?;
        let write_tx = self.write_tx.as_ref().ok_or(StoreError::Interrupted)?;
        // A closed channel means a worker stopped on an error; `finish` reports it.
        let (hashed, written) = tokio::join!(hash_tx.send(to_hasher), write_tx.send(to_writer));
        if hashed.is_err() || written.is_err() {
            return Err(self.worker_error().await);
        }
        Ok(())
    }

    /// A worker stopped early: stop the other one too and report the first real cause.
    async fn worker_error(&mut self) -> StoreError {
        self.hash_tx = None;
        self.write_tx = None;
        let written = match self.written.take() {
            Some(rx) => rx.await.ok().and_then(Result::err),
            None => None,
        };
        let hashed = match self.hashed.take() {
            Some(rx) => rx.await.ok().and_then(Result::err),
            None => None,
        };
        [written, hashed]
            .into_iter()
            .flatten()
            .find(|e| !matches!(e, StoreError::Interrupted))
            .unwrap_or(StoreError::Interrupted)
    }

    /// Ends the stream, waits until data and tree are durable, and commits the dataset.
    pub async fn finish(mut self) -> Result<StoredDataset, StoreError> {
        let assembler = self.assembler.take().ok_or(StoreError::Interrupted)?;
        let dataset_size = assembler.total_bytes();
        if dataset_size == 0 {
            return Err(StoreError::EmptyDataset);
        }
        if let Some(last) = assembler.finish() {
            self.send_block(last).await?;
        }
        self.send_both(Piece::End, Piece::End).await?;
        self.hash_tx = None;
        self.write_tx = None;
        let written = self.written.take().ok_or(StoreError::Interrupted)?;
        let hashed = self.hashed.take().ok_or(StoreError::Interrupted)?;
        written.await.map_err(|_| StoreError::Interrupted)??;
        let tree = hashed.await.map_err(|_| StoreError::Interrupted)??;
        // The files' directory entries must be durable before the commit that makes them reachable.
        let dir = self.target.data_path.parent().map(std::path::Path::to_path_buf);
        if let Some(dir) = dir {
            tokio::task::spawn_blocking(move || File::open(dir).and_then(|d| d.sync_all()))
                .await
                .map_err(|_| StoreError::Interrupted)?
                .map_err(StoreError::io("syncing the segments directory"))?;
        }
        let manifest = Manifest::new_unprotected(
            tree.root_cid(),
            self.block_size as u64,
            dataset_size,
            self.filename.take(),
            self.mimetype.take(),
        );
        let claimed = self.claimed;
        let commit = CommitUpload { segment: self.target.segment, leaves: tree.into_leaves(), manifest, claimed };
        // From here the StoreActor owns the files and the claim, whatever the outcome.
        self.committed = true;
        self.store.send(commit).await?
    }
}

impl Drop for UploadSession {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Closing the channels without `End` stops the workers without syncing anything.
        self.hash_tx = None;
        self.write_tx = None;
        self.target.quota.release(self.claimed);
        remove_in_background(vec![self.target.data_path.clone(), self.target.tree_path.clone()]);
        tracing::info!(segment = self.target.segment, bytes = self.received(), "upload abandoned, its data removed");
    }
}

fn spawn_worker(name: String, work: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new().name(name).spawn(work).map(|_| ()).map_err(StoreError::io("starting an upload thread"))
}

/// Hasher thread: digests every block; at `End` builds the tree and writes it, synced, to `tree_path`.
fn hash_blocks(mut rx: mpsc::Receiver<Piece>, tree_path: &std::path::Path) -> Result<CodexTree, StoreError> {
    let mut leaves = Vec::new();
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Block(block) => leaves.push(sha256(&block)),
            Piece::End => {
                let tree = CodexTree::new(std::mem::take(&mut leaves))?;
                write_tree_file(tree_path, &tree)?;
                return Ok(tree);
            }
        }
    }
    Err(StoreError::Interrupted)
}

/// Writes every layer of `tree` to a new tree file at `path` (the layout of `store/treefile.rs`) and syncs it.
pub fn write_tree_file(path: &std::path::Path, tree: &CodexTree) -> Result<(), StoreError> {
    let mut bytes = Vec::with_capacity(tree.layers().iter().map(Vec::len).sum::<usize>() * 32);
    for layer in tree.layers() {
        for node in layer {
            bytes.extend_from_slice(node);
        }
    }
    let mut file = File::create(path).map_err(StoreError::io("creating the tree file"))?;
    file.write_all(&bytes).map_err(StoreError::io("writing the tree file"))?;
    file.sync_data().map_err(StoreError::io("syncing the tree file"))
}

/// Writer thread: appends blocks to the data file; at `End` syncs it.
fn write_blocks(mut rx: mpsc::Receiver<Piece>, mut file: File) -> Result<(), StoreError> {
    let mut written: u64 = 0;
    let mut flushed: u64 = 0;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Block(block) => {
                file.write_all(&block).map_err(StoreError::io("writing upload data"))?;
                written += block.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
            }
            Piece::End => {
                file.sync_data().map_err(StoreError::io("syncing upload data"))?;
                return Ok(());
            }
        }
    }
    Err(StoreError::Interrupted)
}

/// Asks the kernel to start writing a range back now (no wait), so dirty pages do not pile up for the final
/// sync. Purely a performance hint: errors surface at `sync_data`.
fn start_writeback(file: &File, offset: u64, len: u64) {
    // SAFETY: sync_file_range only reads the descriptor and integer arguments; the fd is open for the call.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}
