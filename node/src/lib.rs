//! The Confab node: wiring of store, actors and gateway, and the node's lifecycle.
//!
//! `start` takes a bound listener and returns a `Node` handle, so tests start nodes on port 0 and
//! stop them without signals; `main` only parses the command line, binds, and waits for a signal.

pub mod admin;
pub mod backup;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod http;
pub mod logs;
pub mod revocations;
pub mod storage_args;
pub mod stranger_args;
pub mod tls;
pub mod upload_args;

use anyhow::Context;
use confab_actors::{ActorSystem, Store};
use confab_cluster::{Cluster, ClusterConfig};
use confab_gateway::mail::Mailer;
use confab_gateway::{AppInner, router};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{NodeConfig, ServeArgs};

/// The description of the room every node makes sure exists.
const GENERAL_DESCRIPTION: &str = "Everyone's room";

/// A running node.
pub struct Node {
    pub addr: SocketAddr,
    pub system: Arc<ActorSystem>,
    pub config: NodeConfig,
    pub cluster: Option<Cluster>,
    stop: CancellationToken,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    /// Merges PostgreSQL's search index pending list out of the writer's commits.
    gin_cleaner: Option<tokio::task::JoinHandle<()>>,
    revocations: tokio::task::JoinHandle<()>,
    /// This node's claim on its SQLite database, released when the node is gone.
    _db_lock: Option<backup::DbLock>,
}

/// Connects the store, starts the actors and serves HTTP on `listener`.
pub async fn start(config: NodeConfig, listener: TcpListener) -> anyhow::Result<Node> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let db_lock = backup::DbLock::for_node(&config)?;
    let mut store = Store::open(&config.database_url, config.sqlite_sync, config.system.writer_nice)
        .await
        .with_context(|| format!("opening the database {}", redact(&config.database_url)))?;
    if let Some(cipher) = config.cipher.clone() {
        info!(key = cipher.current_id(), "message bodies are encrypted at rest");
        store = store.with_cipher(cipher);
        info!("search is unavailable: an index would hold the words of encrypted bodies in clear");
    }
    store = store.with_search(config.search);
    store.ensure_room("general", GENERAL_DESCRIPTION).await.context("creating the room general")?;
    let addr = listener.local_addr()?;
    let system_config = confab_actors::SystemConfig { http_addr: addr.to_string(), ..config.system.clone() };
    let system = Arc::new(ActorSystem::start(store, system_config).await?);
    let cluster = match &config.cluster {
        Some(c) => Some(join_cluster(c, &config, addr, system.clone()).await?),
        None => None,
    };
    let mailer = Mailer::new(config.smtp_url.as_deref(), &config.smtp_from, config.data_dir.join("outbox"))
        .map_err(|e| anyhow::anyhow!(e))?;
    info!(mail = %mailer.describe(), "sign-in codes");
    let mut gateway = config.gateway.clone();
    if gateway.public_origins.is_empty() {
        gateway.public_origins = confab_gateway::security::default_public_origins(addr, config.tls.is_some());
        if let Some(public) = config.cluster.as_ref().and_then(|c| c.public_addr.as_ref()) {
            let scheme = if config.tls.is_some() { "https" } else { "http" };
            gateway.public_origins.push(format!("{scheme}://{public}"));
        }
    }
    let blobs = open_blobs(&config).await?;
    let sweeper = confab_actors::sweeper::spawn(
        system.store().clone(),
        blobs.clone(),
        system.metrics().clone(),
        confab_actors::sweeper::SweeperConfig {
            node_id: config.system.node_id.clone(),
            every: config.upload_sweep_every,
            orphan_ttl: config.system.upload_orphan_ttl,
        },
    );
    let gin_cleaner = config.search_merge.and_then(|every| system.store().spawn_gin_cleaner(every));
    let inner = Arc::new(AppInner::new(system.clone(), gateway, mailer).with_blobs(blobs));
    let admission = inner.admission.clone();
    let app = router(inner);
    let stop = CancellationToken::new();
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let http = tokio::spawn(http::serve(listener, tls, app, admission, config.gateway.header_timeout, stop.clone()));
    let revocations = revocations::watch(system.clone(), config.revocation_poll, stop.clone()).await?;
    info!(
        per_ip = config.gateway.max_tcp_per_ip,
        unauthenticated = config.gateway.max_unauthenticated,
        header_timeout_s = config.gateway.header_timeout.as_secs_f64(),
        body_timeout_s = config.gateway.body_timeout.as_secs_f64(),
        ws_auth_timeout_s = config.gateway.ws_auth_timeout.as_secs_f64(),
        "connection limits (0: none)"
    );
    info!(
        listen = %addr,
        database = %redact(&config.database_url),
        node = %config.system.node_id,
        "confab listening on {}://{addr}",
        if config.tls.is_some() { "https" } else { "http" }
    );
    Ok(Node { addr, system, config, cluster, stop, http, sweeper, gin_cleaner, revocations, _db_lock: db_lock })
}

/// The blob store of uploads (`--blob-store`: the local file system under the data directory,
/// or S3), encrypted at rest with the bodies' key.
async fn open_blobs(config: &NodeConfig) -> anyhow::Result<confab_actors::blob::BlobStore> {
    confab_actors::blob::BlobStore::open(config.blob.clone())
        .await
        .map_err(|e| anyhow::anyhow!("opening the file storage: {e}"))
}

async fn join_cluster(
    c: &config::ClusterSettings,
    config: &NodeConfig,
    addr: SocketAddr,
    system: Arc<ActorSystem>,
) -> anyhow::Result<Cluster> {
    let advertise = |a: &Option<String>| {
        let a = a.clone();
        async move {
            match a {
                Some(a) => {
                    confab_cluster::resolve(&a).await.map(Some).with_context(|| format!("advertise address {a}"))
                }
                None => Ok(None),
            }
        }
    };
    let settings = ClusterConfig {
        node_id: config.system.node_id.clone(),
        cluster_id: c.cluster_id.clone(),
        gossip_listen: c.gossip_listen,
        cluster_listen: c.cluster_listen,
        gossip_advertise: advertise(&c.gossip_advertise).await?,
        cluster_advertise: advertise(&c.cluster_advertise).await?,
        http_addr: match &c.public_addr {
            Some(p) => p.clone(),
            None => confab_cluster::reachable(addr).await.to_string(),
        },
        seeds: c.seeds.clone(),
        lease_ttl: std::time::Duration::from_millis(config.system.lease_ttl_ms as u64),
        key: c.key.clone(),
        protocol_versions: c.protocol_versions.clone(),
    };
    Cluster::start(settings, system).await.context("joining the cluster")
}

impl Node {
    /// Graceful stop: stop accepting, tell connected clients to reconnect elsewhere, flush the
    /// writer, close the database. Returns false when it did not finish within the grace period.
    pub async fn shutdown(self) -> bool {
        info!("shutting down");
        let grace = self.config.shutdown_grace;
        if let Some(cluster) = &self.cluster {
            // Hand every room to its next owner first, so clients that reconnect elsewhere find
            // their rooms sequenced there.
            let handed = cluster.drain(&self.system, grace).await;
            info!(complete = handed, "rooms handed off");
        }
        self.stop.cancel();
        // A sweep stopped at any point leaves tombstones the next run finishes.
        self.sweeper.abort();
        if let Some(c) = &self.gin_cleaner {
            c.abort();
        }
        let clean =
            tokio::time::timeout(grace + std::time::Duration::from_secs(10), self.system.shutdown(grace)).await.is_ok();
        if !clean {
            warn!("shutdown did not finish in time");
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.http).await;
        let _ = self.revocations.await;
        if let Some(cluster) = self.cluster {
            cluster.shutdown().await;
        }
        clean
    }
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<bool> {
    let node = start(config, listener).await?;
    shutdown.await;
    Ok(node.shutdown().await)
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(super::redact("sqlite://data/confab.db"), "sqlite://data/confab.db");
    }
}
