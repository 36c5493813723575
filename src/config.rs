//! Command line and configuration: clap parses the flags, figment layers the sources.
//!
//! Precedence, lowest first: built-in defaults < TOML `--config-file` < `CODEX_*` environment variables <
//! command-line flags. Keys are the long option names (`storage-quota = "20GiB"` in TOML,
//! `CODEX_STORAGE_QUOTA=20GiB` in the environment). Everything is parsed into typed values once, at startup;
//! a bad value stops the node with a message naming the option.

use crate::client::{ClientArgs, ClientCommand};
use crate::units::{ByteSize, Seconds};
use clap::{Parser, ValueEnum};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// Codex: a decentralized durability engine. Without a command, runs the node.
#[derive(Debug, Parser)]
#[command(name = "codex", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub node: NodeFlags,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Option<ClientCommand>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Colors when writing to a terminal.
    Auto,
    Colors,
    Nocolors,
    Json,
    /// No log output.
    None,
}

/// The node's options. Every flag is optional here so that unset flags do not hide lower layers.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeFlags {
    /// TOML configuration file (keys are the long option names).
    #[arg(long, env = "CODEX_CONFIG_FILE")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Log level and per-topic levels, e.g. `info` or `info;trace:store,restapi`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    /// Metrics listen address [default: 127.0.0.1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<IpAddr>,
    /// Metrics port [default: 8008].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<u16>,
    /// Directory for the node key and the repository [default: ~/.cache/codex].
    #[arg(short = 'd', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Multiaddresses to listen on (networking; see README) [default: /ip4/0.0.0.0/tcp/0].
    #[arg(short = 'i', long)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listen_addrs: Vec<String>,
    /// NAT handling: any, none, upnp, pmp or extip:IP (networking) [default: any].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<String>,
    /// Let AutoNAT count private and documentation IP ranges as reachable (testnets on a LAN or one host)
    /// [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_lan: Option<bool>,
    /// Serve as a circuit relay (v2) for nodes behind NAT, within the --relay-* limits [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    /// Relay: reservations held by all peers together [default: 128].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_max_reservations: Option<usize>,
    /// Relay: circuits relayed at once [default: 16].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_max_circuits: Option<usize>,
    /// Relay: circuits relayed at once for one peer [default: 4].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_max_circuits_per_peer: Option<usize>,
    /// Relay: bytes per circuit and direction, e.g. 1GiB; 0 = no limit. The default carries hole punching and
    /// small messages, not data [default: 128KiB].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_circuit_bytes: Option<ByteSize>,
    /// Relay: how long one circuit may last, e.g. 2m [default: 2m].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_circuit_duration: Option<Seconds>,
    /// Discovery port (networking) [default: 8090].
    #[arg(short = 'u', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disc_port: Option<u16>,
    /// Node key file, relative to the data dir unless absolute [default: key].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_privkey: Option<PathBuf>,
    /// Bootstrap nodes, `spr:` records or multiaddrs (networking).
    #[arg(short = 'b', long)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_node: Vec<String>,
    /// Maximum peers (networking) [default: 160].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_peers: Option<u32>,
    /// HTTP worker threads; 0 = one per core, at most 16 [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_threads: Option<usize>,
    /// libp2p agent string (networking) [default: Codex].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_string: Option<String>,
    /// REST API bind address [default: 127.0.0.1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_bindaddr: Option<IpAddr>,
    /// REST API port [default: 8080].
    #[arg(short = 'p', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_port: Option<u16>,
    /// Allowed CORS origin; `*` allows all. CORS is off when unset.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_cors_origin: Option<String>,
    /// Extra `Host` names the REST API answers to, repeatable (`name`, `name:port`, an IP; `*` = any). Loopback
    /// names and the bind address are always allowed.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_allowed_hosts: Vec<String>,
    /// Uploads that may run at once; more are answered 503 [default: 8].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_max_uploads: Option<usize>,
    /// An upload body that sends nothing for this long is dropped, e.g. 60s [default: 60s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_upload_timeout: Option<Seconds>,
    /// Repository backend; only `fs` (segment files + redb metadata) is supported [default: fs].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_kind: Option<String>,
    /// Storage quota, e.g. 20GiB [default: 20GiB].
    #[arg(short = 'q', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_quota: Option<ByteSize>,
    /// Block time to live, e.g. 30d; 0 keeps blocks forever [default: 30d].
    #[arg(short = 't', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_ttl: Option<Seconds>,
    /// Interval between expiry sweeps, e.g. 10m [default: 10m].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_mi: Option<Seconds>,
    /// Records checked per expiry sweep [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_mn: Option<u64>,
    /// Per-block retry budget of network downloads (networking) [default: 3000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_retries: Option<u64>,
    /// Block cache in MiB; accepted for compatibility, the OS page cache does this job [default: 0].
    #[arg(short = 'c', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<u64>,
    /// Directory of the storage-proof keys (`codex prover setup`) [default: circuits/ in the data dir].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_dir: Option<PathBuf>,
    /// Make every Nth storage proof invalid on purpose, for testing; 0 = never [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulate_proof_failures: Option<u32>,
    /// The marketplace options: set by the `persistence` command (see `persistence.rs`), or in the file and
    /// environment (`persistence = true`, `eth-provider = …`).
    #[arg(skip)]
    #[serde(flatten)]
    pub market: crate::persistence::MarketFlags,
}

/// The node's settings after layering, every value typed and defaulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    pub log_level: String,
    pub log_format: LogFormat,
    pub metrics: bool,
    pub metrics_address: IpAddr,
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    #[serde(deserialize_with = "string_or_list")]
    pub listen_addrs: Vec<String>,
    pub nat: String,
    pub nat_lan: bool,
    pub relay: bool,
    pub relay_max_reservations: usize,
    pub relay_max_circuits: usize,
    pub relay_max_circuits_per_peer: usize,
    pub relay_circuit_bytes: ByteSize,
    pub relay_circuit_duration: Seconds,
    pub disc_port: u16,
    pub net_privkey: PathBuf,
    #[serde(deserialize_with = "string_or_list")]
    pub bootstrap_node: Vec<String>,
    pub max_peers: u32,
    pub num_threads: usize,
    pub agent_string: String,
    pub api_bindaddr: IpAddr,
    pub api_port: u16,
    pub api_cors_origin: Option<String>,
    #[serde(deserialize_with = "string_or_list")]
    pub api_allowed_hosts: Vec<String>,
    pub api_max_uploads: usize,
    pub api_upload_timeout: Seconds,
    pub repo_kind: String,
    pub storage_quota: ByteSize,
    pub block_ttl: Seconds,
    pub block_mi: Seconds,
    pub block_mn: u64,
    pub block_retries: u64,
    pub cache_size: u64,
    /// `None`: `<data-dir>/circuits`.
    pub circuit_dir: Option<PathBuf>,
    pub simulate_proof_failures: u32,
    /// The marketplace is on (the `persistence` command, or `persistence = true`).
    pub persistence: bool,
    pub eth_provider: String,
    /// The account to use; must be the private key's (checked at start).
    pub eth_account: Option<String>,
    /// File with the account's private key in hex (mode 0600).
    pub eth_private_key: Option<PathBuf>,
    pub marketplace_address: Option<String>,
    /// Samples per proof the keys in the circuit directory must have been made for.
    pub proof_samples: Option<usize>,
    /// Run a validator (with persistence).
    pub validator: bool,
    /// Most slots the validator watches; 0 = no limit.
    pub validator_max_slots: usize,
    /// Validators splitting the slots (2–65535); `None`: this one watches all.
    pub validator_groups: Option<u32>,
    pub validator_group_index: u32,
    /// Blocks a marketplace event must have before the node acts on it; `None`: 1 on a local development chain,
    /// 3 elsewhere.
    pub confirmations: Option<u64>,
    /// Start with persistence even though the proving keys are the development keys on a public chain.
    pub insecure_dev_keys: bool,
}

/// The default data directory: `~/.cache/codex`, as the original on Linux.
pub fn default_data_dir() -> PathBuf {
    std::env::home_dir().unwrap_or_else(|| PathBuf::from(".")).join(".cache").join("codex")
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            log_format: LogFormat::Auto,
            metrics: false,
            metrics_address: IpAddr::from([127, 0, 0, 1]),
            metrics_port: 8008,
            data_dir: default_data_dir(),
            listen_addrs: vec!["/ip4/0.0.0.0/tcp/0".into()],
            nat: "any".into(),
            nat_lan: false,
            relay: true,
            relay_max_reservations: 128,
            relay_max_circuits: 16,
            relay_max_circuits_per_peer: 4,
            relay_circuit_bytes: ByteSize(128 << 10),
            relay_circuit_duration: Seconds(120),
            disc_port: 8090,
            net_privkey: PathBuf::from("key"),
            bootstrap_node: Vec::new(),
            max_peers: 160,
            num_threads: 0,
            agent_string: "Codex".into(),
            api_bindaddr: IpAddr::from([127, 0, 0, 1]),
            api_port: 8080,
            api_cors_origin: None,
            api_allowed_hosts: Vec::new(),
            api_max_uploads: crate::rest::DEFAULT_MAX_UPLOADS,
            api_upload_timeout: Seconds(crate::rest::DEFAULT_UPLOAD_IDLE.as_secs()),
            repo_kind: "fs".into(),
            storage_quota: ByteSize(20 << 30),
            block_ttl: Seconds(30 * 86_400),
            block_mi: Seconds(600),
            block_mn: 1000,
            block_retries: 3000,
            cache_size: 0,
            circuit_dir: None,
            simulate_proof_failures: 0,
            persistence: false,
            eth_provider: "ws://localhost:8545".into(),
            eth_account: None,
            eth_private_key: None,
            marketplace_address: None,
            proof_samples: None,
            validator: false,
            validator_max_slots: 1000,
            validator_groups: None,
            validator_group_index: 0,
            confirmations: None,
            insecure_dev_keys: false,
        }
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        OneOrMany::Many(list) => list,
    })
}

/// A configuration that cannot be used, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    #[error("configuration: config file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    #[error("configuration: {option}: {reason}")]
    Invalid { option: &'static str, reason: String },
}

/// Env keys that are the client's, not the node's.
const CLIENT_ENV_KEYS: &[&str] = &["api-url", "config-file"];

/// The option a `CODEX_*` variable sets: `CODEX_STORAGE_QUOTA` → `storage-quota`.
fn env_key(name: &str) -> Option<String> {
    let rest = name.get(..6).filter(|p| p.eq_ignore_ascii_case("CODEX_")).and(name.get(6..))?;
    Some(rest.to_ascii_lowercase().replace('_', "-"))
}

/// The keys of [`Settings`] (the long option names).
fn known_keys() -> Vec<String> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `CODEX_*` environment variables that are not node options (nor the client's `CODEX_API_URL`): the node
/// ignores them, and `main` warns about them once logging is set up. Tools often define such variables
/// (`CODEX_BIN` in `deploy/testnet.sh`); they must not stop the node.
pub fn unknown_env_vars() -> Vec<String> {
    let known = known_keys();
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            env_key(name).is_some_and(|key| !known.contains(&key) && !CLIENT_ENV_KEYS.contains(&key.as_str()))
        })
        .collect();
    unknown.sort();
    unknown
}

impl Settings {
    /// Layers defaults, the config file, `CODEX_*` variables and `flags`, then validates.
    pub fn load(flags: &NodeFlags) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &flags.config_file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.clone()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only variables that name an option: others are reported by `unknown_env_vars`, not fatal. (Unknown
        // keys in the TOML file stay an error: that file is the node's alone.)
        let known = known_keys();
        let env = Env::prefixed("CODEX_").filter_map(move |key| {
            let key = key.as_str().to_ascii_lowercase().replace('_', "-");
            known.contains(&key).then(|| key.into())
        });
        figment = figment.merge(env).merge(Serialized::defaults(flags));
        let settings: Settings = figment.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.repo_kind != "fs" {
            return Err(ConfigError::Invalid {
                option: "repo-kind",
                reason: format!(
                    "'{}' is not supported; this node keeps blocks in segment files with redb metadata: use fs",
                    self.repo_kind
                ),
            });
        }
        if self.num_threads == 1 {
            return Err(ConfigError::Invalid {
                option: "num-threads",
                reason: "must be 0 (automatic) or at least 2".into(),
            });
        }
        let nat_ok = matches!(self.nat.as_str(), "any" | "none" | "upnp" | "pmp")
            || self.nat.strip_prefix("extip:").is_some_and(|ip| ip.parse::<IpAddr>().is_ok());
        if !nat_ok {
            return Err(ConfigError::Invalid {
                option: "nat",
                reason: format!("'{}' is not one of any, none, upnp, pmp, extip:<IP>", self.nat),
            });
        }
        if self.relay && (self.relay_max_circuits == 0 || self.relay_max_reservations == 0) {
            return Err(ConfigError::Invalid {
                option: "relay-max-circuits",
                reason: "circuits and reservations must be at least 1 (use --relay false to stop relaying)".into(),
            });
        }
        if self.relay && self.relay_circuit_duration.0 == 0 {
            return Err(ConfigError::Invalid {
                option: "relay-circuit-duration",
                reason: "must be at least 1 second".into(),
            });
        }
        for addr in &self.listen_addrs {
            if let Err(err) = addr.parse::<libp2p::Multiaddr>() {
                return Err(ConfigError::Invalid {
                    option: "listen-addrs",
                    reason: format!("'{addr}' is not a multiaddress such as /ip4/0.0.0.0/tcp/8070 ({err})"),
                });
            }
        }
        for node in &self.bootstrap_node {
            if let Err(err) = codex_actors::network::parse_bootstrap(node) {
                return Err(ConfigError::Invalid {
                    option: "bootstrap-node",
                    reason: format!(
                        "'{node}' is not an spr: record or a multiaddress ending in /p2p/<peer id> ({err})"
                    ),
                });
            }
        }
        for host in &self.api_allowed_hosts {
            crate::rest::check_allowed_host(host)
                .map_err(|reason| ConfigError::Invalid { option: "api-allowed-hosts", reason })?;
        }
        if self.api_max_uploads == 0 {
            return Err(ConfigError::Invalid { option: "api-max-uploads", reason: "must be at least 1".into() });
        }
        if self.api_upload_timeout.0 == 0 {
            return Err(ConfigError::Invalid {
                option: "api-upload-timeout",
                reason: "must be at least 1 second".into(),
            });
        }
        if self.storage_quota.0 == 0 {
            return Err(ConfigError::Invalid { option: "storage-quota", reason: "must be more than 0".into() });
        }
        if self.block_mi.0 == 0 {
            return Err(ConfigError::Invalid { option: "block-mi", reason: "must be at least 1 second".into() });
        }
        if self.block_mn == 0 {
            return Err(ConfigError::Invalid { option: "block-mn", reason: "must be at least 1".into() });
        }
        crate::telemetry::LogDirectives::parse(&self.log_level)
            .map_err(|err| ConfigError::Invalid { option: "log-level", reason: err.to_string() })?;
        if self.persistence {
            crate::persistence::validate(self)?;
        }
        Ok(())
    }

    /// The node key path: `net-privkey`, relative to the data dir unless absolute.
    /// Where the storage-proof keys are.
    pub fn circuit_path(&self) -> PathBuf {
        match &self.circuit_dir {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => self.data_dir.join(dir),
            None => self.data_dir.join("circuits"),
        }
    }

    pub fn key_path(&self) -> PathBuf {
        if self.net_privkey.is_absolute() { self.net_privkey.clone() } else { self.data_dir.join(&self.net_privkey) }
    }

    /// HTTP worker threads (and erasure-coding and slot-hashing threads): `num-threads`, or one per core (at most
    /// 16).
    pub fn http_workers(&self) -> usize {
        if self.num_threads > 0 {
            return self.num_threads;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 16)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn layering_and_validation() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "codex.toml",
                "storage-quota = \"1GiB\"\napi-port = 9000\nblock-ttl = \"1d\"\nlog-level = \"debug\"",
            )?;
            jail.set_env("CODEX_API_PORT", "9100");
            jail.set_env("CODEX_LISTEN_ADDRS", "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2");
            jail.set_env("CODEX_API_URL", "http://ignored");
            let flags = NodeFlags {
                config_file: Some("codex.toml".into()),
                log_level: Some("info;trace:store".into()),
                ..NodeFlags::default()
            };
            let settings = Settings::load(&flags).expect("valid");
            assert_eq!(settings.storage_quota, ByteSize(1 << 30)); // file
            assert_eq!(settings.block_ttl, Seconds(86_400)); // file
            assert_eq!(settings.api_port, 9100); // env beats file
            assert_eq!(settings.log_level, "info;trace:store"); // flag beats file
            assert_eq!(settings.listen_addrs.len(), 2);
            assert_eq!(settings.block_mi, Seconds(600)); // default

            jail.set_env("CODEX_STORAGE_QUOTA", "lots");
            let err = Settings::load(&NodeFlags::default()).expect_err("bad size");
            assert!(err.to_string().contains("not a size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "storage-qouta = 5")?;
            let flags = NodeFlags { config_file: Some("typo.toml".into()), ..NodeFlags::default() };
            assert!(Settings::load(&flags).is_err());
            let flags = NodeFlags { repo_kind: Some("sqlite".into()), ..NodeFlags::default() };
            assert!(Settings::load(&flags).expect_err("sqlite").to_string().contains("use fs"));
            let flags = NodeFlags { nat: Some("extip:nowhere".into()), ..NodeFlags::default() };
            assert!(Settings::load(&flags).is_err());
            let flags = NodeFlags { log_level: Some("loud".into()), ..NodeFlags::default() };
            assert!(Settings::load(&flags).is_err());
            let flags = NodeFlags { config_file: Some("missing.toml".into()), ..NodeFlags::default() };
            assert!(matches!(Settings::load(&flags), Err(ConfigError::MissingFile(_))));
            Ok(())
        });
    }

    /// The option named by a load error; panics on any other outcome.
    fn invalid_option(flags: &NodeFlags) -> &'static str {
        match Settings::load(flags) {
            Err(ConfigError::Invalid { option, .. }) => option,
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    #[test]
    fn addresses_and_hosts_are_checked_at_load() {
        figment::Jail::expect_with(|_| {
            for bad in ["/foo", "/ip4/1.2.3.4/tcp/x", "/ip4/300.0.0.1/tcp/1"] {
                let flags = NodeFlags { listen_addrs: vec![bad.into()], ..NodeFlags::default() };
                assert_eq!(invalid_option(&flags), "listen-addrs", "{bad}");
            }
            for bad in ["nonsense", "spr:garbage", "/ip4/1.2.3.4/tcp/1"] {
                let flags = NodeFlags { bootstrap_node: vec![bad.into()], ..NodeFlags::default() };
                assert_eq!(invalid_option(&flags), "bootstrap-node", "{bad}");
            }
            for bad in ["http://x", "a b", "host:port", "[zz]:1"] {
                let flags = NodeFlags { api_allowed_hosts: vec![bad.into()], ..NodeFlags::default() };
                assert_eq!(invalid_option(&flags), "api-allowed-hosts", "{bad}");
            }
            let flags = NodeFlags { api_max_uploads: Some(0), ..NodeFlags::default() };
            assert_eq!(invalid_option(&flags), "api-max-uploads");
            let flags = NodeFlags { api_upload_timeout: Some(Seconds(0)), ..NodeFlags::default() };
            assert_eq!(invalid_option(&flags), "api-upload-timeout");
            let good = ["codex.example", "node1:8080", "*", "10.0.0.5", "[fd00::1]:80", "fd00::2"];
            let flags = NodeFlags {
                api_allowed_hosts: good.iter().map(|h| h.to_string()).collect(),
                listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".into(), "/ip6/::1/tcp/4000".into()],
                ..NodeFlags::default()
            };
            assert_eq!(Settings::load(&flags).expect("valid").api_allowed_hosts.len(), good.len());
            Ok(())
        });
    }

    #[test]
    fn relay_and_nat_options_layer_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            let defaults = Settings::load(&NodeFlags::default()).expect("defaults");
            assert!(defaults.relay && !defaults.nat_lan);
            assert_eq!(defaults.relay_circuit_bytes, ByteSize(128 << 10));
            jail.create_file("relay.toml", "relay-circuit-bytes = \"1GiB\"\nrelay-max-circuits = 4\nnat-lan = true")?;
            jail.set_env("CODEX_RELAY_CIRCUIT_DURATION", "10m");
            let flags = NodeFlags {
                config_file: Some("relay.toml".into()),
                relay_max_circuits: Some(2),
                ..NodeFlags::default()
            };
            let settings = Settings::load(&flags).expect("valid");
            assert_eq!(settings.relay_circuit_bytes, ByteSize(1 << 30));
            assert_eq!(settings.relay_max_circuits, 2, "a flag beats the file");
            assert_eq!(settings.relay_circuit_duration, Seconds(600), "the environment beats the default");
            assert!(settings.nat_lan);
            let flags = NodeFlags { relay_max_circuits: Some(0), ..NodeFlags::default() };
            assert_eq!(invalid_option(&flags), "relay-max-circuits");
            let flags = NodeFlags { relay_circuit_duration: Some(Seconds(0)), ..NodeFlags::default() };
            assert_eq!(invalid_option(&flags), "relay-circuit-duration");
            let flags = NodeFlags { relay: Some(false), relay_max_circuits: Some(0), ..NodeFlags::default() };
            assert!(Settings::load(&flags).is_ok(), "limits of a relay that is off are not checked");
            Ok(())
        });
    }

    #[test]
    fn unknown_codex_variables_are_reported_not_fatal() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CODEX_BIN", "/usr/bin/codex");
            jail.set_env("CODEX_FLAGS", "--metrics");
            jail.set_env("CODEX_API_ALLOWED_HOSTS", "node1,node2:8080");
            jail.set_env("CODEX_API_URL", "http://client-only");
            let settings = Settings::load(&NodeFlags::default()).expect("unknown CODEX_* variables are not fatal");
            assert_eq!(settings.api_allowed_hosts, ["node1", "node2:8080"]);
            let unknown = unknown_env_vars();
            assert!(unknown.contains(&"CODEX_BIN".to_owned()) && unknown.contains(&"CODEX_FLAGS".to_owned()));
            assert!(!unknown.iter().any(|v| v == "CODEX_API_URL" || v == "CODEX_API_ALLOWED_HOSTS"), "{unknown:?}");
            // The config file is the node's own: a typo there is still an error.
            jail.create_file("typo.toml", "api-alowed-hosts = \"x\"")?;
            let flags = NodeFlags { config_file: Some("typo.toml".into()), ..NodeFlags::default() };
            assert!(Settings::load(&flags).is_err());
            Ok(())
        });
    }
}
