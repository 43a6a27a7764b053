//! nats-server nodes on this machine for the tools that need their own (the crash campaign,
//! the benchmark): one server, or a cluster with routes between the nodes, on free ports,
//! with the project's roles, every stream provisioned at as many replicas as nodes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lienthong_bus::server::{ClusterNode, NatsServer, ServerOptions};
use lienthong_bus::CredentialSet;

use crate::error::StackError;

/// Running nodes and how to reach them.
pub struct Nodes {
    pub servers: Vec<NatsServer>,
    pub credentials: CredentialSet,
    /// Every node's client address, comma-separated (what clients are given).
    pub url: String,
}

/// The store folder of node `i` (from 0) of `nodes` under the data folder `data`, as `up`
/// lays them out: `nats` for one server, `nats-1`… for a cluster.
pub fn store_dir(data: &Path, nodes: usize, i: usize) -> PathBuf {
    match nodes {
        0 | 1 => data.join("nats"),
        _ => data.join(format!("nats-{}", i + 1)),
    }
}

/// Starts `nodes` servers (more than one: a cluster named `cluster`) with stores under
/// `dir` (as [`store_dir`] lays them out) and credentials in `dir/credentials`; provisions
/// every stream at `nodes` replicas (waiting for the cluster to elect its leaders, 60 s at
/// most).
pub async fn start(dir: &Path, nodes: usize, cluster: &str) -> Result<Nodes, StackError> {
    let started = start_servers(dir, nodes, cluster).await?;
    let nodes = started.servers.len();
    let js = async_nats::jetstream::new(
        started
            .credentials
            .settings("operator", &started.url)?
            .connect("lienthong-nodes-provision")
            .await?,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match lienthong_bus::topology::provision_replicated(&js, nodes).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    Ok(started)
}

/// [`start`] without provisioning: the servers on their stores, as they are (a restore
/// fills them). A store a running bus uses is refused before anything is written.
pub async fn start_servers(dir: &Path, nodes: usize, cluster: &str) -> Result<Nodes, StackError> {
    let nodes = nodes.max(1);
    for i in 0..nodes {
        lienthong_bus::server::await_previous(&store_dir(dir, nodes, i)).await?;
    }
    let host = "127.0.0.1";
    let ports = (0..nodes)
        .map(|_| crate::stack::free_port(host))
        .collect::<Result<Vec<_>, _>>()?;
    let route_ports = (0..nodes)
        .map(|_| crate::stack::free_port(host))
        .collect::<Result<Vec<_>, _>>()?;
    let url = ports
        .iter()
        .map(|p| format!("nats://{host}:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let credentials = CredentialSet::load_or_generate(&dir.join("credentials"), &url)?;
    // One secret for the cluster's routes: every node presents it.
    let secret = lienthong_bus::credentials::new_password();
    let mut servers = Vec::with_capacity(nodes);
    for (i, port) in ports.iter().enumerate() {
        let node = (nodes > 1).then(|| ClusterNode {
            secret: secret.clone(),
            name: format!("n{}", i + 1),
            cluster: cluster.into(),
            route_port: route_ports[i],
            routes: route_ports.iter().map(|r| format!("{host}:{r}")).collect(),
        });
        servers.push(
            NatsServer::start(
                ServerOptions {
                    bin: None,
                    data_dir: store_dir(dir, nodes, i),
                    host: host.into(),
                    port: Some(*port),
                    sync_always: false,
                    node,
                    domain: None,
                    leaf: None,
                    transport: Default::default(),
                    max_file_store: None,
                },
                &credentials,
            )
            .await?,
        );
    }
    Ok(Nodes {
        servers,
        credentials,
        url,
    })
}
