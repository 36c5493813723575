//! The expanding reservation window: the order in which this project's hosts take a slot's reservations,
//! computed on each host's side (contracts/README.md "Reservations"). The contract does not enforce it (an
//! original host, which asks `canReserveSlot` once, must be able to reserve at once); our hosts keep to it so they
//! do not all download the same slot at the same time.
//!
//! A slot's window opens at a block `B` (the request's creation, or the slot's forced free): its seed is
//! `B.parentHash`, its start `B.timestamp`, its length the request's relative `expiry`. A host takes the slot's
//! `i`-th reservation at time `now` only if the top `8 − steps` bits of its address equal those of a source
//! address drawn from the seed, where `steps = floor((now − start) × 16 / expiry)`. So at the start one address in
//! 256 goes, and from `start + expiry/2` on every address does.
//!
//! The sales side uses [`Window::first_eligible`] as a queued slot's `not_before` (seed 001 §5.2). Everything here
//! is plain arithmetic: no panics, no overflow, also for `expiry == 0` (open to all at the start) and `now` before
//! the start (nothing opened yet: all 8 bits required).

use alloy_primitives::keccak256;

use super::{Address, B256, RequestId, U256};

/// Bits of the address that must match at the window's start.
pub const WINDOW_BITS: u64 = 8;
/// One bit fewer is required every `expiry / WINDOW_STEPS` seconds.
pub const WINDOW_STEPS: u64 = 16;

/// A slot's reservation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `B.parentHash` of the block that opened the window.
    pub seed: B256,
    /// `B.timestamp`, Unix seconds.
    pub start: u64,
    /// The request's relative expiry, seconds.
    pub expiry: u64,
}

/// `start + ceil(steps × expiry / WINDOW_STEPS)`: when `steps` steps of the window have passed (saturating).
fn after_steps(start: u64, steps: u64, expiry: u64) -> u64 {
    let steps_u = u128::from(WINDOW_STEPS);
    let offset = (u128::from(steps) * u128::from(expiry)).div_ceil(steps_u);
    u64::try_from(u128::from(start).saturating_add(offset)).unwrap_or(u64::MAX)
}

impl Window {
    /// The source address `A0`: the low 20 bytes of
    /// `keccak256(abi.encode(bytes32 seed, bytes32 request, uint64 slot_index, uint256 reservation_index))`.
    pub fn source(&self, request: RequestId, slot_index: u64, reservation_index: u64) -> Address {
        let mut input = Vec::with_capacity(128);
        input.extend_from_slice(self.seed.as_slice());
        input.extend_from_slice(request.as_slice());
        input.extend_from_slice(&U256::from(slot_index).to_be_bytes::<32>());
        input.extend_from_slice(&U256::from(reservation_index).to_be_bytes::<32>());
        Address::from_word(keccak256(&input))
    }

    /// Leading bits `host` shares with the source, capped at [`WINDOW_BITS`].
    pub fn shared_bits(&self, request: RequestId, slot_index: u64, reservation_index: u64, host: Address) -> u64 {
        let source = self.source(request, slot_index, reservation_index);
        let [host_top, ..] = host.into_array();
        let [source_top, ..] = source.into_array();
        u64::from((host_top ^ source_top).leading_zeros()).min(WINDOW_BITS)
    }

    /// Bits of the address that must match at `now`.
    fn required_bits(&self, now: u64) -> u64 {
        if now < self.start {
            return WINDOW_BITS;
        }
        if self.expiry == 0 {
            return 0;
        }
        let steps = u128::from(now - self.start) * u128::from(WINDOW_STEPS) / u128::from(self.expiry);
        u64::try_from(steps).map_or(0, |steps| WINDOW_BITS.saturating_sub(steps))
    }

    /// Whether the window lets `host` make the slot's `reservation_index`-th reservation at chain time `now`.
    pub fn eligible(
        &self,
        request: RequestId,
        slot_index: u64,
        reservation_index: u64,
        host: Address,
        now: u64,
    ) -> bool {
        let required = self.required_bits(now);
        required == 0 || self.shared_bits(request, slot_index, reservation_index, host) >= required
    }

    /// The first chain time from the window's start at which `host` is eligible:
    /// `start + ceil((8 − k) × expiry / 16)`, `k` the bits it shares with the source. (Before the start, a clock
    /// skew case, the 8-bit hosts are eligible too: steps count as 0.)
    pub fn first_eligible(&self, request: RequestId, slot_index: u64, reservation_index: u64, host: Address) -> u64 {
        let shared = self.shared_bits(request, slot_index, reservation_index, host);
        after_steps(self.start, WINDOW_BITS - shared, self.expiry)
    }

    /// When every address is eligible: `start + ceil(8 × expiry / 16)`.
    pub fn open_to_all_at(&self) -> u64 {
        after_steps(self.start, WINDOW_BITS, self.expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window() -> Window {
        Window { seed: B256::repeat_byte(0x11), start: 1_700_000_000, expiry: 600 }
    }

    /// `source` with the bits after the first `k` of its top byte flipped: shares exactly `k` leading bits (k < 8),
    /// or at least 8 (k = 8).
    fn host_sharing(source: Address, k: u32) -> Address {
        let mut bytes = source.into_array();
        bytes[0] ^= 0xffu8.checked_shr(k).unwrap_or(0);
        Address::from(bytes)
    }

    #[test]
    fn keccak_is_keccak() {
        // The well-known keccak256 of the empty string (not SHA3-256).
        let expected: B256 = "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470".parse().unwrap();
        assert_eq!(keccak256([]), expected);
    }

    #[test]
    fn source_is_abi_encoded_hash() {
        let w = window();
        let request = B256::repeat_byte(0x22);
        // abi.encode(bytes32, bytes32, uint64, uint256): four big-endian 32-byte words.
        let mut words = [0u8; 128];
        words[..32].copy_from_slice(&[0x11; 32]);
        words[32..64].copy_from_slice(&[0x22; 32]);
        words[88..96].copy_from_slice(&5u64.to_be_bytes()); // slot index 5 in the third word's low 8 bytes
        words[127] = 2; // reservation index 2
        let hash = keccak256(words);
        let expected = Address::from_slice(&hash[12..]);
        assert_eq!(w.source(request, 5, 2), expected);
        // Pinned with an independent Keccak-256 (a Python one, checked against keccak256("") and ("abc")).
        let pinned: Address = "0x9f6c3a9b6289649cd5579e8ae617eebf8dd80c2c".parse().unwrap();
        assert_eq!(expected, pinned);
        // 0x9f ^ 0x90 = 0x0f: 4 shared bits, eligible from start + ceil(4 × 600 / 16) = start + 150.
        let host: Address = "0x9000000000000000000000000000000000000001".parse().unwrap();
        assert_eq!(w.shared_bits(request, 5, 2, host), 4);
        assert_eq!(w.first_eligible(request, 5, 2, host), w.start + 150);
        assert!(!w.eligible(request, 5, 2, host, w.start + 149));
        assert!(w.eligible(request, 5, 2, host, w.start + 150));
        assert_ne!(w.source(request, 5, 1), expected, "the reservation index is hashed");
        assert_ne!(w.source(request, 4, 2), expected, "the slot index is hashed");
        assert_ne!(Window { seed: B256::ZERO, ..w }.source(request, 5, 2), expected, "the seed is hashed");
    }

    #[test]
    fn shared_bits_counts_leading_bits() {
        let w = window();
        let request = B256::repeat_byte(0x22);
        let source = w.source(request, 0, 0);
        for k in 0..=8u32 {
            assert_eq!(w.shared_bits(request, 0, 0, host_sharing(source, k)), u64::from(k), "k = {k}");
        }
        // Bits after the 8th do not count.
        let mut far = source.into_array();
        far[1] ^= 0xff;
        far[19] ^= 1;
        assert_eq!(w.shared_bits(request, 0, 0, Address::from(far)), 8);
    }

    #[test]
    fn hand_computed_schedule() {
        // expiry 600: one step every 37.5 s; k shared bits ⇒ eligible from start + ceil((8 − k) × 37.5).
        let w = window();
        let request = B256::repeat_byte(0x22);
        let source = w.source(request, 3, 0);
        let expected = [300u64, 263, 225, 188, 150, 113, 75, 38, 0];
        for (k, offset) in expected.iter().enumerate() {
            let host = host_sharing(source, k as u32);
            assert_eq!(w.first_eligible(request, 3, 0, host), w.start + offset, "k = {k}");
        }
        assert_eq!(w.open_to_all_at(), w.start + 300);
        // At start + 150 (steps 4), 4 bits are required.
        assert!(w.eligible(request, 3, 0, host_sharing(source, 4), w.start + 150));
        assert!(!w.eligible(request, 3, 0, host_sharing(source, 3), w.start + 150));
        assert!(w.eligible(request, 3, 0, host_sharing(source, 3), w.start + 188));
    }

    #[test]
    fn first_eligible_is_exact() {
        let request = B256::repeat_byte(0x33);
        for expiry in [0u64, 1, 7, 16, 600, 86_400] {
            let w = Window { expiry, ..window() };
            let source = w.source(request, 1, 0);
            for k in 0..=8u32 {
                let host = host_sharing(source, k);
                let first = w.first_eligible(request, 1, 0, host);
                assert!(w.eligible(request, 1, 0, host, first), "expiry {expiry}, k {k}");
                if k < 8 {
                    assert!(!w.eligible(request, 1, 0, host, first - 1), "expiry {expiry}, k {k}");
                } else {
                    assert_eq!(first, w.start);
                }
            }
        }
    }

    #[test]
    fn open_to_all_admits_everyone() {
        let request = B256::repeat_byte(0x44);
        for expiry in [0u64, 1, 15, 600] {
            let w = Window { expiry, ..window() };
            let at = w.open_to_all_at();
            for n in 0..=255u8 {
                let host = Address::repeat_byte(n);
                assert!(w.eligible(request, 0, 0, host, at));
                assert!(w.eligible(request, 0, 0, host, u64::MAX));
            }
        }
    }

    #[test]
    fn guards_without_panics() {
        let request = B256::repeat_byte(0x55);
        let w = Window { expiry: 0, ..window() };
        let source = w.source(request, 0, 0);
        let stranger = host_sharing(source, 0);
        assert!(w.eligible(request, 0, 0, stranger, w.start), "expiry 0: open to all at the start");
        assert!(!w.eligible(request, 0, 0, stranger, w.start - 1), "before the start: 8 bits required");
        assert!(w.eligible(request, 0, 0, host_sharing(source, 8), w.start - 1));
        assert_eq!(w.open_to_all_at(), w.start);

        let w = Window { seed: B256::ZERO, start: u64::MAX - 1, expiry: u64::MAX };
        assert_eq!(w.open_to_all_at(), u64::MAX);
        assert_eq!(w.first_eligible(request, 0, 0, stranger), u64::MAX);
        assert!(!w.eligible(request, 0, 0, stranger, 0));
        let w = Window { seed: B256::ZERO, start: 0, expiry: 1 };
        assert!(w.eligible(request, 0, 0, stranger, u64::MAX));
    }

    fn b256() -> impl Strategy<Value = B256> {
        any::<[u8; 32]>().prop_map(B256::from)
    }

    fn address() -> impl Strategy<Value = Address> {
        any::<[u8; 20]>().prop_map(Address::from)
    }

    proptest! {
        #[test]
        fn eligibility_is_monotone_in_time(
            seed in b256(), request in b256(), slot in 0u64..64, index in 0u64..4, host in address(),
            start in 0u64..1_000_000, expiry in 0u64..100_000, t1 in 0u64..2_000_000, dt in 0u64..200_000,
        ) {
            let w = Window { seed, start, expiry };
            let t2 = t1 + dt;
            if w.eligible(request, slot, index, host, t1) {
                prop_assert!(w.eligible(request, slot, index, host, t2));
            }
            let first = w.first_eligible(request, slot, index, host);
            // Before the start only the 8-bit hosts are eligible (steps 0); first_eligible counts from the start.
            if t1 >= start {
                prop_assert_eq!(w.eligible(request, slot, index, host, t1), t1 >= first);
            } else {
                prop_assert_eq!(w.eligible(request, slot, index, host, t1), first == start && w.shared_bits(request, slot, index, host) == 8);
            }
            prop_assert!(first <= w.open_to_all_at());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// At start + expiry/4 four bits are required: a host is eligible for a slot with probability 1/16, for all
        /// 8 slots of a request with probability 2^-32.
        #[test]
        fn one_host_cannot_take_every_slot_early(
            seed in b256(), request in b256(), hosts in proptest::collection::vec(address(), 4),
            start in 0u64..2_000_000_000, quarters in 1u64..10_000,
        ) {
            let w = Window { seed, start, expiry: quarters * 4 };
            let now = start + quarters;
            prop_assert_eq!(w.required_bits(now), 4);
            for host in hosts {
                let slots = (0..8).filter(|&slot| w.eligible(request, slot, 0, host, now)).count();
                prop_assert!(slots < 8, "host {} eligible for all 8 slots at steps 4", host);
            }
        }
    }

    proptest! {
        // 2048 hashes a case, keccak unoptimized in test builds: fewer cases.
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// At the start one address in 256 is eligible: 8 expected (host, slot) pairs among 256 × 8.
        #[test]
        fn few_hosts_are_eligible_at_the_start(seed in b256(), request in b256(), start in 0u64..2_000_000_000) {
            let w = Window { seed, start, expiry: 600 };
            let eligible = (0..=255u8)
                .flat_map(|n| (0..8).map(move |slot| (n, slot)))
                .filter(|&(n, slot)| {
                    let mut bytes = [0u8; 20];
                    bytes[0] = n;
                    bytes[19] = n.wrapping_mul(31);
                    w.eligible(request, slot, 0, Address::from(bytes), start)
                })
                .count();
            // Every distinct top byte: exactly one in 256 matches each slot's source.
            prop_assert_eq!(eligible, 8);
            prop_assert!(eligible < 256 * 8 / 2);
        }
    }
}
