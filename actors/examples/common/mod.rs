//! What the example benches share.

/// `len` bytes (rounded down to whole 8-byte words) of xorshift64 output from a fixed seed: incompressible input
/// that is the same in every run.
pub fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect()
}
