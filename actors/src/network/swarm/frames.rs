//! Blockexc stream framing: the per-peer writer (one outbound stream, opened again on another connection when
//! its connection closes under it) and the bounded frame readers.

use super::{BLOCKEXC, FRAME_DEADLINE, PeerGate, Readers};
use crate::network::{Frame, NetEvent};
use codex_protocol::blockexc::{MAX_FRAME_SIZE, Message as WireMessage};
use codex_protocol::frame::{MAX_PREFIX_LEN, parse_len_prefix_max, put_varint};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use libp2p::PeerId;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Read buffer per blockexc stream.
const READ_BUFFER: usize = 64 * 1024;
/// Stream openings or writes that may fail in a row before the writer gives up on the peer.
const WRITE_ATTEMPTS: usize = 3;

/// Opens our outbound stream to `peer`, reads from it, and writes every queued frame to it. When the stream's
/// connection closes while the peer stays connected (a relayed connection closed after hole punching gave a
/// direct one), a new stream is opened on a remaining connection and the frame that failed is written again.
pub(super) async fn write_frames(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut frames: mpsc::Receiver<Frame>,
    readers: Readers,
    gate: Arc<PeerGate>,
) {
    let mut unsent: Option<Frame> = None;
    let mut failures = 0;
    let mut prefix = Vec::with_capacity(10);
    'streams: loop {
        if failures >= WRITE_ATTEMPTS || !gate.connected.load(Ordering::Acquire) {
            return;
        }
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stream = match control.open_stream(peer, BLOCKEXC).await {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!(%peer, %err, "no blockexc stream to the peer");
                failures += 1;
                continue;
            }
        };
        let (reader, mut writer) = stream.split();
        let (readers, reader_gate) = (readers.clone(), gate.clone());
        tokio::spawn(async move { read_frames(peer, reader, &readers, &reader_gate).await });
        loop {
            let frame = match unsent.take() {
                Some(frame) => frame,
                None => match frames.recv().await {
                    Some(frame) => frame,
                    None => {
                        let _ = writer.close().await;
                        return;
                    }
                },
            };
            prefix.clear();
            put_varint(&mut prefix, frame.bytes.len() as u64);
            let written = async {
                writer.write_all(&prefix).await?;
                writer.write_all(&frame.bytes).await?;
                writer.flush().await
            };
            if let Err(err) = written.await {
                tracing::debug!(%peer, %err, "blockexc stream write failed");
                unsent = Some(frame);
                failures += 1;
                continue 'streams;
            }
            failures = 0;
        }
    }
}

/// Reads frames from one stream until it ends or sends garbage. The peer's gate allows one frame in flight
/// across its streams (read, decoded and handled); the shared budget bounds the bytes of all peers' frames.
pub(super) async fn read_frames<R: AsyncRead + Unpin>(peer: PeerId, stream: R, readers: &Readers, gate: &PeerGate) {
    let malformed = |reason: String| readers.events.do_send(NetEvent::Malformed { peer, reason });
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let len = match read_frame_len(&mut reader).await {
            Ok(Some(len)) => len,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(%peer, %err, "blockexc stream read failed");
                if err.kind() == std::io::ErrorKind::InvalidData {
                    malformed(err.to_string());
                }
                return;
            }
        };
        let Ok(_in_flight) = gate.frame.acquire().await else { return };
        let body = read_budgeted_body(&mut reader, len, &readers.budget);
        let (frame, _budget) = match tokio::time::timeout(FRAME_DEADLINE, body).await {
            Ok(Ok(read)) => read,
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "blockexc stream read failed");
                return;
            }
            Err(_) => {
                let reason = format!("a frame of {len} bytes did not arrive within {FRAME_DEADLINE:?}");
                readers.events.do_send(NetEvent::Stalled { peer, reason });
                return;
            }
        };
        match WireMessage::decode(&frame) {
            Ok(message) => {
                drop(frame);
                if readers.events.send(NetEvent::Message { peer, message }).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                malformed(err.to_string());
                return;
            }
        }
    }
}

/// Reads a frame's length prefix with [`codex_protocol::frame::parse_len_prefix_max`] (the parser the fuzz target
/// `frame` exercises): `Ok(None)` at a clean end of stream; lengths over [`MAX_FRAME_SIZE`] and overlong varints
/// are `InvalidData`.
async fn read_frame_len<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<usize>> {
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    for filled in 0..MAX_PREFIX_LEN {
        let Some(slot) = prefix.get_mut(filled..=filled) else { break };
        if reader.read(slot).await? == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let parsed = parse_len_prefix_max(prefix.get(..=filled).unwrap_or_default(), MAX_FRAME_SIZE as u64)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string()))?;
        if let Some((len, _)) = parsed {
            return Ok(Some(len as usize));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame length varint too long"))
}

/// Budget taken per step of a frame body: a frame holds budget only for bytes that arrived (give or take a step).
const BUDGET_STEP: usize = 256 * 1024;

/// Reads a frame body of `len` bytes, taking budget from `budget` step by step as its bytes arrive, so a peer that
/// announces a large frame and trickles it holds no more budget than it sent. The permits are returned with the
/// body and held until the message is handled.
async fn read_budgeted_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    budget: &Arc<Semaphore>,
) -> std::io::Result<(Vec<u8>, Option<OwnedSemaphorePermit>)> {
    let mut frame = Vec::with_capacity(len.min(BUDGET_STEP));
    let mut held: Option<OwnedSemaphorePermit> = None;
    while frame.len() < len {
        let step = (len - frame.len()).min(BUDGET_STEP);
        let permit = budget
            .clone()
            .acquire_many_owned(step as u32)
            .await
            .map_err(|_| std::io::Error::other("the frame budget is closed"))?;
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        let start = frame.len();
        frame.resize(start + step, 0);
        reader.read_exact(frame.get_mut(start..).unwrap_or_default()).await?;
    }
    Ok((frame, held))
}

/// Reads one frame (varint length + body, at most [`MAX_FRAME_SIZE`]): `Ok(None)` at a clean end of stream.
/// For callers outside the node's readers (tests, tools): the body is read as the readers read it, with a budget
/// of its own.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    match read_frame_len(reader).await? {
        Some(len) => {
            let budget = Arc::new(Semaphore::new(MAX_FRAME_SIZE));
            read_budgeted_body(reader, len, &budget).await.map(|(frame, _)| Some(frame))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversized_lengths() {
        futures::executor::block_on(async {
            let mut bytes = Vec::new();
            for body in [vec![], vec![7u8; 300]] {
                put_varint(&mut bytes, body.len() as u64);
                bytes.extend_from_slice(&body);
            }
            let mut reader = futures::io::Cursor::new(bytes);
            assert_eq!(read_frame(&mut reader).await.expect("frame"), Some(vec![]));
            assert_eq!(read_frame(&mut reader).await.expect("frame"), Some(vec![7u8; 300]));
            assert_eq!(read_frame(&mut reader).await.expect("end"), None);

            let mut huge = Vec::new();
            put_varint(&mut huge, MAX_FRAME_SIZE as u64 + 1);
            let err = read_frame(&mut futures::io::Cursor::new(huge)).await.expect_err("too large");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

            let mut short = Vec::new();
            put_varint(&mut short, 10);
            short.extend_from_slice(&[1, 2, 3]);
            assert!(read_frame(&mut futures::io::Cursor::new(short)).await.is_err());
            let endless = vec![0xffu8; 20];
            assert!(read_frame(&mut futures::io::Cursor::new(endless)).await.is_err());
        });
    }
}
