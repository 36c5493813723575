//! The Reed–Solomon codec of one group: K data shards and M parity shards of one block size each.

use super::{ErasureError, ErasureParams, Want};
use reed_solomon_erasure::galois_8::ReedSolomon;

/// A systematic Reed–Solomon codec over GF(2^8) for one (K, M). Cheap to share (`&self` methods); it keeps a
/// small cache of decode matrices behind a lock.
#[derive(Debug)]
pub struct ErasureCodec {
    params: ErasureParams,
    rs: ReedSolomon,
}

impl ErasureCodec {
    pub fn new(params: ErasureParams) -> Result<Self, ErasureError> {
        Ok(Self { params, rs: ReedSolomon::new(params.k(), params.m())? })
    }

    pub fn params(&self) -> ErasureParams {
        self.params
    }

    /// Fills the last M shards with the parity of the first K. All K + M shards must have one non-zero length.
    pub fn encode_group(&self, shards: &mut [&mut [u8]]) -> Result<(), ErasureError> {
        self.check_shards(shards.iter().map(|shard| shard.len()))?;
        self.rs.encode(shards)?;
        Ok(())
    }

    /// Recomputes the shards whose `present` flag is false from the present ones, without allocating shard
    /// buffers: every shard slice is full-size, missing ones are overwritten. With [`Want::DataOnly`] only the
    /// missing data shards (positions < K) are computed and missing parity shards are left untouched. Fails
    /// with [`ErasureError::TooFewShards`] when fewer than K shards are present (nothing is written then).
    pub fn reconstruct_group(
        &self,
        shards: &mut [&mut [u8]],
        present: &[bool],
        want: Want,
    ) -> Result<(), ErasureError> {
        self.check_shards(shards.iter().map(|shard| shard.len()))?;
        if present.len() != shards.len() {
            return Err(ErasureError::ShardCount { expected: shards.len(), got: present.len() });
        }
        let have = present.iter().filter(|&&p| p).count();
        if have < self.params.k() {
            return Err(ErasureError::TooFewShards { have, need: self.params.k() });
        }
        let mut flagged: Vec<(&mut [u8], bool)> =
            shards.iter_mut().zip(present).map(|(shard, &p)| (&mut **shard, p)).collect();
        match want {
            Want::DataOnly => self.rs.reconstruct_data(&mut flagged)?,
            Want::All => self.rs.reconstruct(&mut flagged)?,
        }
        Ok(())
    }

    fn check_shards(&self, lens: impl ExactSizeIterator<Item = usize>) -> Result<(), ErasureError> {
        let expected = self.params.total();
        if lens.len() != expected {
            return Err(ErasureError::ShardCount { expected, got: lens.len() });
        }
        let mut first = None;
        for (position, len) in lens.enumerate() {
            let expected = *first.get_or_insert(len);
            if len == 0 || len != expected {
                return Err(ErasureError::ShardSize { position, len, expected });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(k: u64, m: u64) -> ErasureCodec {
        ErasureCodec::new(ErasureParams::new(k, m).unwrap()).unwrap()
    }

    fn encoded(codec: &ErasureCodec, data: &[Vec<u8>], len: usize) -> Vec<Vec<u8>> {
        let mut shards: Vec<Vec<u8>> = data.to_vec();
        shards.resize(codec.params().total(), vec![0; len]);
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
        codec.encode_group(&mut refs).unwrap();
        shards
    }

    #[test]
    fn parity_is_systematic_and_deterministic() {
        let c = codec(3, 2);
        let data = vec![vec![1u8; 8], vec![2; 8], vec![4; 8]];
        let a = encoded(&c, &data, 8);
        assert_eq!(a[..3], data[..]);
        assert_eq!(a, encoded(&c, &data, 8));
        assert!(a[3..].iter().all(|parity| parity != &vec![0; 8]));
        // Zero data gives zero parity (padding groups cost nothing to check).
        let zeros = encoded(&c, &[vec![0; 8], vec![0; 8], vec![0; 8]], 8);
        assert!(zeros.iter().all(|s| s.iter().all(|&b| b == 0)));
    }

    #[test]
    fn too_few_shards_is_an_error_and_writes_nothing() {
        let c = codec(3, 2);
        let mut shards = encoded(&c, &[vec![7; 4], vec![8; 4], vec![9; 4]], 4);
        let before = shards.clone();
        let present = [true, false, false, true, false];
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
        assert_eq!(
            c.reconstruct_group(&mut refs, &present, Want::All),
            Err(ErasureError::TooFewShards { have: 2, need: 3 })
        );
        assert_eq!(shards, before);
    }

    #[test]
    fn shape_errors() {
        let c = codec(2, 1);
        let (mut a, mut b, mut p) = (vec![0u8; 4], vec![0u8; 4], vec![0u8; 3]);
        assert_eq!(
            c.encode_group(&mut [&mut a[..], &mut b[..], &mut p[..]]),
            Err(ErasureError::ShardSize { position: 2, len: 3, expected: 4 })
        );
        assert_eq!(
            c.encode_group(&mut [&mut a[..], &mut b[..]]),
            Err(ErasureError::ShardCount { expected: 3, got: 2 })
        );
        let (mut e1, mut e2, mut e3) = (vec![], vec![], vec![]);
        assert!(matches!(
            c.encode_group(&mut [&mut e1[..], &mut e2[..], &mut e3[..]]),
            Err(ErasureError::ShardSize { position: 0, len: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn any_m_losses_are_recovered(
            k in 2u64..9,
            m_seed in 1u64..9,
            len in 1usize..200,
            seed in any::<u64>(),
            lost_seed in any::<u64>(),
            data_only in any::<bool>(),
        ) {
            let m = 1 + (m_seed - 1) % k;
            let c = codec(k, m);
            let total = (k + m) as usize;
            let mut state = seed | 1;
            let mut next = move || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
            let data: Vec<Vec<u8>> = (0..k).map(|_| (0..len).map(|_| next() as u8).collect()).collect();
            let full = encoded(&c, &data, len);
            // Lose between 0 and M shards, chosen by a partial shuffle.
            let mut order: Vec<usize> = (0..total).collect();
            let mut pick = lost_seed | 1;
            for i in (1..total).rev() {
                pick ^= pick << 13; pick ^= pick >> 7; pick ^= pick << 17;
                order.swap(i, (pick % (i as u64 + 1)) as usize);
            }
            let lost = &order[..(lost_seed % (m + 1)) as usize];
            let mut shards = full.clone();
            let mut present = vec![true; total];
            for &i in lost {
                shards[i].fill(0xAA);
                present[i] = false;
            }
            let want = if data_only { Want::DataOnly } else { Want::All };
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
            c.reconstruct_group(&mut refs, &present, want).unwrap();
            for i in 0..total {
                if want == Want::All || i < k as usize || present[i] {
                    prop_assert_eq!(&shards[i], &full[i], "shard {}", i);
                } else {
                    prop_assert!(shards[i].iter().all(|&b| b == 0xAA), "parity {} touched by DataOnly", i);
                }
            }
        }
    }
}
