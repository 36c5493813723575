//! The chunker: cuts a byte stream into fixed-size blocks and zero-pads the last one.
//!
//! Pure and incremental: feed it whatever chunks the transport delivers, take full blocks out as they form.
//! Full blocks that arrive aligned are passed through without copying.

use bytes::{Bytes, BytesMut};

/// The Codex default block size: 64 KiB.
pub const DEFAULT_BLOCK_SIZE: usize = 64 * 1024;

/// Assembles fixed-size blocks from a stream of arbitrary chunks.
#[derive(Debug)]
pub struct BlockAssembler {
    block_size: usize,
    partial: BytesMut,
    total: u64,
}

impl BlockAssembler {
    /// A new assembler. `block_size` must be non-zero.
    pub fn new(block_size: usize) -> Self {
        assert!(block_size > 0, "invariant: block size is non-zero");
        Self { block_size, partial: BytesMut::new(), total: 0 }
    }

    /// Bytes pushed so far (the dataset size, before padding).
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Adds `chunk`; calls `emit` with every block it completes, in order.
    pub fn push<E>(&mut self, mut chunk: Bytes, mut emit: impl FnMut(Bytes) -> Result<(), E>) -> Result<(), E> {
        self.total += chunk.len() as u64;
        if !self.partial.is_empty() {
            let wanted = self.block_size - self.partial.len();
            let take = wanted.min(chunk.len());
            self.partial.extend_from_slice(&chunk.split_to(take));
            if self.partial.len() < self.block_size {
                return Ok(());
            }
            emit(std::mem::take(&mut self.partial).freeze())?;
        }
        while chunk.len() >= self.block_size {
            emit(chunk.split_to(self.block_size))?;
        }
        if !chunk.is_empty() {
            self.partial.reserve(self.block_size);
            self.partial.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// Ends the stream: returns the last, zero-padded block if a partial one is pending.
    pub fn finish(mut self) -> Option<Bytes> {
        if self.partial.is_empty() {
            return None;
        }
        self.partial.resize(self.block_size, 0);
        Some(self.partial.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk_all(data: &[u8], cuts: &[usize], block_size: usize) -> Vec<Bytes> {
        let mut assembler = BlockAssembler::new(block_size);
        let mut blocks = Vec::new();
        let mut rest = Bytes::copy_from_slice(data);
        for cut in cuts {
            let cut = (*cut).min(rest.len());
            let piece = rest.split_to(cut);
            assembler
                .push(piece, |b| -> Result<(), ()> {
                    blocks.push(b);
                    Ok(())
                })
                .expect("no error");
        }
        assembler
            .push(rest, |b| -> Result<(), ()> {
                blocks.push(b);
                Ok(())
            })
            .expect("no error");
        blocks.extend(assembler.finish());
        blocks
    }

    #[test]
    fn boundary_sizes() {
        for (len, expected_blocks) in [(0, 0), (1, 1), (65535, 1), (65536, 1), (65537, 2), (3 * 65536 + 5, 4)] {
            let data = vec![7u8; len];
            let blocks = chunk_all(&data, &[], DEFAULT_BLOCK_SIZE);
            assert_eq!(blocks.len(), expected_blocks, "len {len}");
            assert!(blocks.iter().all(|b| b.len() == DEFAULT_BLOCK_SIZE));
        }
    }

    proptest! {
        #[test]
        fn blocks_concatenate_to_padded_input(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            block_size in 1usize..200,
        ) {
            let blocks = chunk_all(&data, &cuts, block_size);
            let joined: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
            prop_assert_eq!(joined.len(), data.len().div_ceil(block_size) * block_size);
            prop_assert_eq!(&joined[..data.len()], &data[..]);
            prop_assert!(joined[data.len()..].iter().all(|b| *b == 0));
        }
    }
}
