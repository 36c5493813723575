//! The `codex` binary: runs the node (no command) or talks to a node's REST API (`upload`, `download`, `list`,
//! `space`). This file is the composition root: configuration → telemetry → data dir and key → actors →
//! HTTP servers, and a clean stop on SIGINT/SIGTERM.

use actix_web::http::header::HeaderValue;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use clap::Parser;
use codex::config::{Cli, Settings};
use codex::metrics::Metrics;
use codex::rest::{self, ApiState, CorsOrigin};
use codex::telemetry::{self, LogDirectives};
use codex::{client, datadir};
use codex_actors::maintenance::MaintenanceConfig;
use codex_actors::node::{GetSpace, NodeActor, NodeConfig, StopNode};
use codex_actors::store::StoreConfig;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return client::run(&cli.client, command);
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
    let repo_dir = settings.data_dir.join("repo");
    datadir::prepare(&settings.data_dir)?;
    let key = datadir::load_or_create_key(&settings.key_path())?;
    datadir::check_free_space(&settings.data_dir, &repo_dir, settings.storage_quota)?;
    warn_about_network_options(&settings);

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
    };
    actix_web::rt::System::new().block_on(serve(settings, node_config, log))
}

async fn serve(settings: Settings, node_config: NodeConfig, log: telemetry::LogControl) -> anyhow::Result<()> {
    let node = NodeActor::start(node_config).context("cannot open the repository")?;
    let metrics = Metrics::new();
    let state = ApiState { node: node.clone(), metrics: metrics.clone(), log };
    let cors = CorsOrigin(
        settings
            .api_cors_origin
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .context("--api-cors-origin is not a valid header value")?,
    );
    let api_addr = (settings.api_bindaddr, settings.api_port);
    let api = HttpServer::new(move || rest::app(state.clone(), cors.clone()))
        .workers(settings.http_workers())
        .bind(api_addr)
        .with_context(|| format!("cannot listen for the REST API on {}:{}", api_addr.0, api_addr.1))?;
    for addr in api.addrs() {
        tracing::info!(%addr, "REST API listening on http://{addr}/api/codex/v1");
    }
    let api = api.run();

    let metrics_server = if settings.metrics {
        let addr = (settings.metrics_address, settings.metrics_port);
        let node = node.clone();
        let server = HttpServer::new(move || {
            let (metrics, node) = (metrics.clone(), node.clone());
            App::new().route(
                "/metrics",
                web::get().to(move || {
                    let (metrics, node) = (metrics.clone(), node.clone());
                    async move {
                        match node.send(GetSpace).await {
                            Ok(space) => HttpResponse::Ok()
                                .content_type("text/plain; version=0.0.4")
                                .body(metrics.render(&space)),
                            Err(_) => HttpResponse::ServiceUnavailable().body("node stopping"),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind(addr)
        .with_context(|| format!("cannot listen for metrics on {}:{}", addr.0, addr.1))?;
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

fn warn_about_network_options(settings: &Settings) {
    let defaults = Settings::default();
    let changed = [
        ("listen-addrs", settings.listen_addrs != defaults.listen_addrs),
        ("nat", settings.nat != defaults.nat),
        ("disc-port", settings.disc_port != defaults.disc_port),
        ("bootstrap-node", settings.bootstrap_node != defaults.bootstrap_node),
        ("max-peers", settings.max_peers != defaults.max_peers),
        ("agent-string", settings.agent_string != defaults.agent_string),
        ("block-retries", settings.block_retries != defaults.block_retries),
    ];
    for (option, _) in changed.iter().filter(|(_, changed)| *changed) {
        tracing::warn!(option, "networking is not part of this build yet: the option is validated but has no effect");
    }
}
