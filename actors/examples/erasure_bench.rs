//! Raw erasure codec throughput: K = 3, M = 2 on 64 KiB blocks over 256 MiB of input held in memory, with the
//! same run's SHA-256 throughput over the same bytes as the baseline.
//!
//! `cargo run --release -p codex-actors --example erasure_bench`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use codex_protocol::cid::sha256;
use codex_protocol::erasure::{ErasureCodec, ErasureParams, Want};
use std::time::Instant;

const BS: usize = 64 * 1024;
const INPUT: usize = 256 << 20;

fn main() {
    let params = ErasureParams::new(3, 2).unwrap();
    let codec = ErasureCodec::new(params).unwrap();
    let (k, m) = (params.k(), params.m());
    let groups = INPUT / (k * BS);
    let mut data = common::pseudo_random(INPUT);
    let mut parity = vec![0u8; groups * m * BS];
    let mb = (groups * k * BS) as f64 / 1e6;

    let start = Instant::now();
    let mut digest_xor = 0u8;
    for block in data.chunks_exact(BS) {
        digest_xor ^= sha256(block)[0];
    }
    let sha = mb / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for (group_data, group_parity) in data.chunks_exact_mut(k * BS).zip(parity.chunks_exact_mut(m * BS)) {
        let mut shards: Vec<&mut [u8]> =
            group_data.chunks_exact_mut(BS).chain(group_parity.chunks_exact_mut(BS)).collect();
        codec.encode_group(&mut shards).unwrap();
    }
    let encode = mb / start.elapsed().as_secs_f64();

    // Decode: lose data shards 0 and 1 of every group, recover them from data 2 and both parity shards.
    let start = Instant::now();
    let mut lost = vec![0u8; 2 * BS];
    for (group_data, group_parity) in data.chunks_exact_mut(k * BS).zip(parity.chunks_exact_mut(m * BS)) {
        let mut kept = group_data[2 * BS..].to_vec();
        let mut shards: Vec<&mut [u8]> = lost.chunks_exact_mut(BS).collect();
        shards.push(&mut kept);
        shards.extend(group_parity.chunks_exact_mut(BS));
        codec.reconstruct_group(&mut shards, &[false, false, true, true, true], Want::DataOnly).unwrap();
        assert_eq!(lost[..], group_data[..2 * BS]);
    }
    let decode = mb / start.elapsed().as_secs_f64();

    println!("input {mb:.0} MB, K={k} M={m}, {BS}-byte blocks, one thread (check byte {digest_xor})");
    println!("sha256  {sha:8.0} MB/s (baseline)");
    println!("encode  {encode:8.0} MB/s of input  = {:.2} × SHA-256", encode / sha);
    println!("decode  {decode:8.0} MB/s of input  = {:.2} × SHA-256 (2 data shards lost per group)", decode / sha);
}
