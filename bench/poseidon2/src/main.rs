//! Prints permutations per second on one core for codex-protocol's Poseidon2 and for taceo-poseidon2, measured in
//! the same run, and block digests per second (64 KiB blocks, 2 KiB cells) for ours.

use std::hint::black_box;
use std::time::{Duration, Instant};

use codex_protocol::poseidon2::{self, F};

/// Runs `f` in batches until `budget` has passed; returns calls per second.
fn rate(budget: Duration, batch: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            f();
        }
        calls += batch;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);

    // Warm up both, then alternate so frequency changes hit both alike.
    let mut ours = [F::from(0u64), F::from(1u64), F::from(2u64)];
    let mut theirs = [ark_bn254_06::Fr::from(0u64), ark_bn254_06::Fr::from(1u64), ark_bn254_06::Fr::from(2u64)];
    let mut ours_rates = Vec::new();
    let mut theirs_rates = Vec::new();
    for _ in 0..3 {
        ours_rates.push(rate(budget / 3, 1000, || poseidon2::permute(black_box(&mut ours))));
        theirs_rates.push(rate(budget / 3, 1000, || taceo_poseidon2::bn254::t3::permutation_in_place(black_box(&mut theirs))));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (o, t) = (best(&ours_rates), best(&theirs_rates));
    println!("permutations/s, one core (best of 3):");
    println!("  codex-protocol poseidon2 (old HL constants, ark 0.5): {o:>12.0}  ({:.2} us each)", 1e6 / o);
    println!("  taceo-poseidon2 0.3 t3   (NEW HL constants, ark 0.6): {t:>12.0}  ({:.2} us each)", 1e6 / t);
    println!("  ratio ours / taceo: {:.2}", o / t);
    println!("  (taceo uses the new HorizenLabs constants: different outputs, a speed reference only)");

    let block: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let digests = rate(budget, 4, || {
        black_box(poseidon2::block_digest(black_box(&block), 2048));
    });
    let mib = digests * 65536.0 / (1024.0 * 1024.0);
    println!("block digests/s (64 KiB blocks, 2 KiB cells, ~1119 permutations each): {digests:.0} = {mib:.1} MiB/s");
    println!("  a 1 GiB slot (16384 blocks) on one core: {:.0} s", 16384.0 / digests);
    let _ = black_box((ours, theirs));
}
