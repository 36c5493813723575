//! The `codex` binary: runs the node (no command) or talks to a node's REST API (`upload`, `download`, `list`,
//! `space`). This file is the composition root: configuration → telemetry → data dir and key → HTTP ports → actors →
//! HTTP servers, and a clean stop on SIGINT/SIGTERM.

use actix_web::http::header::HeaderValue;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use clap::Parser;
use codex::client::ClientCommand;
use codex::config::{Cli, Settings};
use codex::metrics::Metrics;
use codex::rest::{self, AllowedHosts, ApiState, CorsOrigin, UploadLimits};
use codex::telemetry::{self, LogDirectives};
use codex::{client, datadir};
use codex_actors::blockexc::BlockExchangeConfig;
use codex_actors::maintenance::MaintenanceConfig;
use codex_actors::network::{Nat, NetworkConfig, RelayLimits, parse_bootstrap};
use codex_actors::node::{GetSalesMetrics, GetSpace, GetValidatorMetrics, NodeActor, NodeConfig, NodeError, StopNode};
use codex_actors::prover::ProverConfig;
use codex_actors::store::StoreConfig;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(ClientCommand::Persistence(args)) => args.apply(&mut cli.node),
        Some(command) => return client::run(&cli.client, command),
        None => {}
    }
    let settings = match Settings::load(&cli.node) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match run_node(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(settings: Settings) -> anyhow::Result<()> {
    let directives = LogDirectives::parse(&settings.log_level)?;
    let log = telemetry::init(&directives, settings.log_format);
    let unknown = codex::config::unknown_env_vars();
    if !unknown.is_empty() {
        tracing::warn!("ignoring CODEX_* environment variables that are not node options: {}", unknown.join(", "));
    }
    let repo_dir = settings.data_dir.join("repo");
    datadir::prepare(&settings.data_dir, &settings.key_path())?;
    let key = datadir::load_or_create_key(&settings.key_path())?;
    datadir::check_free_space(&settings.data_dir, &repo_dir, settings.storage_quota)?;
    let network = network_config(&settings, key.clone())?;

    let node_config = NodeConfig {
        data_dir: settings.data_dir.clone(),
        peer_id: key.public().to_peer_id(),
        store: StoreConfig {
            repo_dir,
            quota_max: settings.storage_quota.0,
            block_ttl: (settings.block_ttl.0 > 0).then(|| settings.block_ttl.duration()),
            sweep_batch: usize::try_from(settings.block_mn).unwrap_or(usize::MAX),
        },
        maintenance: MaintenanceConfig { interval: settings.block_mi.duration() },
        network: Some(network),
        exchange: BlockExchangeConfig {
            stall_timeout: std::time::Duration::from_secs(settings.block_retries.max(1).saturating_mul(2)),
            ..BlockExchangeConfig::default()
        },
        coding_threads: settings.http_workers(),
        prover: Some(ProverConfig {
            circuit_dir: settings.circuit_path(),
            // With persistence the sales spoil proofs themselves (SaleProvingSimulated); without it the prover does.
            simulate_failures: if settings.persistence { 0 } else { settings.simulate_proof_failures },
            queue: 4,
        }),
    };
    // The HTTP ports are taken before any actor starts: a port in use stops the node with one message, before
    // it has opened its repository or joined the network.
    let api_addr = SocketAddr::new(settings.api_bindaddr, settings.api_port);
    let api_listener = listen(api_addr).with_context(|| format!("cannot listen for the REST API on {api_addr}"))?;
    let metrics_listener = if settings.metrics {
        let addr = SocketAddr::new(settings.metrics_address, settings.metrics_port);
        Some(listen(addr).with_context(|| format!("cannot listen for metrics on {addr}"))?)
    } else {
        None
    };
    let listeners = Listeners { api: api_listener, metrics: metrics_listener };
    actix_web::rt::System::new().block_on(serve(settings, node_config, listeners, log))
}

/// The HTTP servers' sockets, bound before the node starts.
struct Listeners {
    api: TcpListener,
    metrics: Option<TcpListener>,
}

/// A listening TCP socket as actix-web's own `bind` makes one: address reuse, a backlog of 1024.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

async fn serve(
    settings: Settings,
    node_config: NodeConfig,
    listeners: Listeners,
    log: telemetry::LogControl,
) -> anyhow::Result<()> {
    let node = match NodeActor::start(node_config) {
        Ok(node) => node,
        Err(err) => {
            // NodeActor::start may fail after starting some actors (the store, maintenance, the block
            // exchange). Let them run their `started` inside the runtime now: actix would otherwise run it while
            // the runtime is dropped, outside it, and panic on the timers they set up.
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
            return Err(match err {
                NodeError::Network(_) => anyhow::Error::new(err).context(format!(
                    "cannot start networking on --listen-addrs {}: use addresses of this machine (or \
                     /ip4/0.0.0.0/tcp/<port>) and ports that are free",
                    settings.listen_addrs.join(",")
                )),
                _ => anyhow::Error::new(err).context("cannot open the repository"),
            });
        }
    };
    if settings.persistence {
        enable_marketplace(&settings, &node).await?;
    }
    let metrics = Metrics::new();
    let mut state = ApiState::new(node.clone(), metrics.clone(), log);
    state.hosts = AllowedHosts::new(settings.api_bindaddr, &settings.api_allowed_hosts);
    state.uploads = UploadLimits::new(settings.api_max_uploads, settings.api_upload_timeout.duration());
    let cors = CorsOrigin(
        settings
            .api_cors_origin
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .context("--api-cors-origin is not a valid header value")?,
    );
    let api = HttpServer::new(move || rest::app(state.clone(), cors.clone()))
        .workers(settings.http_workers())
        // A client that closes its side of the connection is gone: drop its response (and a network stream
        // waiting on a stalled download) instead of keeping it until the next write fails.
        .h1_allow_half_closed(false)
        .listen(listeners.api)
        .context("cannot serve the REST API")?;
    for addr in api.addrs() {
        tracing::info!(%addr, "REST API listening on http://{addr}/api/codex/v1");
    }
    let api = api.run();

    let metrics_server = if let Some(listener) = listeners.metrics {
        let node = node.clone();
        let server = HttpServer::new(move || {
            let (metrics, node) = (metrics.clone(), node.clone());
            App::new().route(
                "/metrics",
                web::get().to(move || {
                    let (metrics, node) = (metrics.clone(), node.clone());
                    async move {
                        let sales = node.send(GetSalesMetrics).await.ok().flatten();
                        if let Some(info) = node.send(GetValidatorMetrics).await.ok().flatten() {
                            metrics.set_validator(&info);
                        }
                        match node.send(GetSpace).await {
                            Ok(space) => HttpResponse::Ok()
                                .content_type("text/plain; version=0.0.4")
                                .body(metrics.render(&space, sales.as_ref())),
                            Err(_) => HttpResponse::ServiceUnavailable().body("node stopping"),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .context("cannot serve metrics")?;
        for addr in server.addrs() {
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
        }
        Some(server.run())
    } else {
        None
    };
    let metrics_handle = metrics_server.as_ref().map(|server| server.handle());
    if let Some(server) = metrics_server {
        actix_web::rt::spawn(server);
    }
    // The API server stops on SIGINT/SIGTERM: it stops accepting, lets running requests finish (uploads
    // either complete or are dropped and roll back), then returns.
    api.await.context("REST API server failed")?;
    if let Some(handle) = metrics_handle {
        handle.stop(true).await;
    }
    node.send(StopNode).await.context("stopping the node")?;
    tracing::info!("node stopped cleanly");
    Ok(())
}

/// Connects the marketplace (the `persistence` command): the account from the key file, the chain, the
/// contract, the purchasing actor. Any failure stops the node with a message naming what to fix.
async fn enable_marketplace(settings: &Settings, node: &actix::Addr<NodeActor>) -> anyhow::Result<()> {
    use codex_actors::chain::account::read_private_key;
    use codex_actors::chain::actor::ChainConfig;
    use codex_actors::chain::market::RetryPolicy;
    use codex_actors::node::EnableMarketplace;
    use codex_actors::purchasing::PurchasingConfig;
    use codex_actors::sales::SalesConfig;
    let key_file = settings.eth_private_key.as_deref().context("--eth-private-key is required with persistence")?;
    let signer = read_private_key(key_file)?;
    if let Some(account) = &settings.eth_account
        && account.parse::<alloy::primitives::Address>().ok() != Some(signer.address())
    {
        anyhow::bail!("--eth-account {account} is not the account of --eth-private-key ({})", signer.address());
    }
    if let Some(samples) = settings.proof_samples {
        let params = codex_actors::prover::key_params(&settings.circuit_path())?;
        anyhow::ensure!(
            params.samples == samples,
            "--proof-samples {samples}: the keys in {} are for {} samples (run `codex prover setup --proof-samples \
             {samples}`)",
            settings.circuit_path().display(),
            params.samples
        );
    }
    let marketplace = settings
        .marketplace_address
        .as_deref()
        .context("--marketplace-address is required with persistence")?
        .parse()
        .context("--marketplace-address")?;
    let chain = ChainConfig {
        eth_provider: settings.eth_provider.clone(),
        signer,
        marketplace,
        retry: RetryPolicy::default(),
        tx: Default::default(),
        poll_interval: std::time::Duration::from_secs(1),
        confirmations: settings.confirmations,
    };
    let info = node
        .send(EnableMarketplace {
            chain,
            purchasing: PurchasingConfig::default(),
            sales: SalesConfig { simulate_proof_failures: settings.simulate_proof_failures, ..SalesConfig::default() },
            validator: match settings.validator {
                true => Some(codex_actors::validator::ValidatorConfig {
                    max_slots: settings.validator_max_slots,
                    groups: codex::persistence::validator_groups(settings)?,
                    ..Default::default()
                }),
                false => None,
            },
            development_keys: codex_actors::prover::is_development(&settings.circuit_path())
                && !settings.insecure_dev_keys,
        })
        .await
        .context("the node stopped")?
        .context("cannot enable the marketplace")?;
    tracing::info!(account = %info.account, marketplace = %info.marketplace, "persistence enabled");
    Ok(())
}

/// The networking options, parsed; a bad value stops the node with a message naming the option.
fn network_config(settings: &Settings, keypair: libp2p::identity::Keypair) -> anyhow::Result<NetworkConfig> {
    let listen_addrs = settings
        .listen_addrs
        .iter()
        .map(|text| text.parse().with_context(|| format!("--listen-addrs: '{text}' is not a multiaddress")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let nat = Nat::parse(&settings.nat).with_context(|| format!("--nat: '{}' is not understood", settings.nat))?;
    let bootstrap = settings
        .bootstrap_node
        .iter()
        .map(|text| parse_bootstrap(text).with_context(|| "--bootstrap-node".to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if settings.disc_port != Settings::default().disc_port {
        tracing::warn!(
            "--disc-port has no effect: discovery runs on Kademlia over the libp2p listen addresses (see README)"
        );
    }
    Ok(NetworkConfig {
        keypair,
        listen_addrs,
        nat,
        bootstrap,
        max_peers: settings.max_peers,
        agent: settings.agent_string.clone(),
        relay: settings.relay.then(|| RelayLimits {
            max_reservations: settings.relay_max_reservations,
            max_circuits: settings.relay_max_circuits,
            max_circuits_per_peer: settings.relay_max_circuits_per_peer.max(1),
            circuit_bytes: settings.relay_circuit_bytes.0,
            circuit_duration: std::time::Duration::from_secs(settings.relay_circuit_duration.0),
        }),
        nat_lan: settings.nat_lan,
    })
}
