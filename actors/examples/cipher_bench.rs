//! Cipher throughput on this machine, for issue 8 (transfer speed): the AEADs a transfer between two nodes can
//! run under, sealing 256 MiB in place as 64 KiB messages (libp2p Noise frames are at most 65,535 bytes), on one
//! core, with the same run's SHA-256 over the same bytes (every block is hashed once on arrival) as the baseline.
//!
//! - ChaCha20-Poly1305, RustCrypto `chacha20poly1305` and `ring`: libp2p's Noise on TCP is fixed to this cipher;
//!   snow (its Noise implementation) has a resolver for each library, and both are in the lock file (which one
//!   libp2p-noise ends up using is to be checked).
//! - AES-256-GCM, `ring`: what rustls (libp2p's QUIC) negotiates on a CPU with AES-NI.
//! - AES-256-GCM, RustCrypto `aes-gcm`.
//!
//! Measured 2026-12-03 on the 2-core machine: SHA-256 1,757 MB/s; ChaCha20-Poly1305 RustCrypto 1,435 MB/s
//! (0.82×), ring 2,196 MB/s (1.25×); AES-256-GCM RustCrypto 1,308 MB/s (0.74×), ring 6,839 MB/s (3.89×).
//!
//! `cargo run --release -p codex-actors --example cipher_bench`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use codex_protocol::cid::sha256;
use std::time::Instant;

const MESSAGE: usize = 64 * 1024;
const INPUT: usize = 256 << 20;

/// Seals every message of `data` in place with `seal(counter, message)`; MB/s.
fn run(data: &mut [u8], mut seal: impl FnMut(u64, &mut [u8]) -> u8) -> f64 {
    let start = Instant::now();
    let mut check = 0u8;
    for (counter, message) in data.chunks_exact_mut(MESSAGE).enumerate() {
        check ^= seal(counter as u64, message);
    }
    std::hint::black_box(check);
    data.len() as f64 / 1e6 / start.elapsed().as_secs_f64()
}

fn nonce12(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

fn main() {
    let mut data = common::pseudo_random(INPUT);
    let key = [7u8; 32];

    let sha = run(&mut data, |_, message| sha256(message)[0]);

    let chacha = ChaCha20Poly1305::new((&key).into());
    let rust_chacha = run(&mut data, |counter, message| {
        let tag = chacha.encrypt_in_place_detached((&nonce12(counter)).into(), &[], message).unwrap();
        tag[0]
    });

    let aes = Aes256Gcm::new((&key).into());
    let rust_aes = run(&mut data, |counter, message| {
        let tag = aes.encrypt_in_place_detached((&nonce12(counter)).into(), &[], message).unwrap();
        tag[0]
    });

    let ring_seal = |algorithm: &'static ring::aead::Algorithm| {
        let key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(algorithm, &key).unwrap());
        move |counter: u64, message: &mut [u8]| {
            let nonce = ring::aead::Nonce::assume_unique_for_key(nonce12(counter));
            let tag = key.seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), message).unwrap();
            tag.as_ref()[0]
        }
    };
    let ring_chacha = run(&mut data, ring_seal(&ring::aead::CHACHA20_POLY1305));
    let ring_aes = run(&mut data, ring_seal(&ring::aead::AES_256_GCM));

    println!("SHA-256 (baseline)                        : {sha:7.0} MB/s");
    for (name, speed) in [
        ("ChaCha20-Poly1305, RustCrypto", rust_chacha),
        ("ChaCha20-Poly1305, ring", ring_chacha),
        ("AES-256-GCM, RustCrypto aes-gcm", rust_aes),
        ("AES-256-GCM, ring (rustls, QUIC)", ring_aes),
    ] {
        println!("{name:<42}: {speed:7.0} MB/s = {:.2}x SHA-256", speed / sha);
    }
}
