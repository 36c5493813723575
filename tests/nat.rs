//! Nodes behind real NATs (issue 9): network namespaces, veth pairs and iptables masquerading on this machine,
//! driven by `tests/nat/run.sh` (which says what each scenario checks). Needs root, so it is `#[ignore]`d in
//! the default run:
//!
//! ```sh
//! cargo test --test nat -- --ignored --nocapture
//! ```

use std::process::Command;

#[test]
#[ignore = "needs root (network namespaces); run with --ignored"]
fn members_behind_nats_exchange_data_directly_or_through_a_relay() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nat/run.sh");
    let status = Command::new("bash")
        .arg(script)
        .env("CODEX_BIN", env!("CARGO_BIN_EXE_codex"))
        .status()
        .expect("run tests/nat/run.sh");
    assert!(status.success(), "tests/nat/run.sh failed ({status}); its output above says which check");
}
