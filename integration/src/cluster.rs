//! A three-node Redis Cluster of one test (three masters, no replicas), on 127.0.0.1 only.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{
    POLL_INTERVAL, READY_ATTEMPTS, ServerError, connects, free_port, log_stdio, log_tail, pong,
    require_binary, temp_dir, wait_ready,
};

const SERVER: &str = "redis-server";

/// The slot ranges of the three masters: 16384 slots in all.
const SLOTS: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

struct Node {
    child: Child,
    port: u16,
}

/// Three `redis-server` processes in cluster mode, each with its own port and cluster-bus
/// port, their slots assigned and met; ready when every node reports `cluster_state:ok`.
/// Stopped (`SIGKILL`) and deleted on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    log: PathBuf,
    // Dropped last: the directory outlives the servers.
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts the cluster.
    ///
    /// # Errors
    /// [`ServerError::Missing`] if `redis-server` is not installed; [`ServerError::Failed`] if
    /// a node does not start or the cluster does not become ready.
    pub fn start() -> Result<Self, ServerError> {
        let binary = require_binary("redis-server", "redis-server")?;
        let dir = temp_dir("redis-cluster")?;
        let log = dir.path().join("cluster.log");
        let mut cluster = Self {
            nodes: Vec::new(),
            log,
            _dir: dir,
        };
        let no_port =
            |e: std::io::Error| ServerError::failed(SERVER, format!("no free port: {e}"), None);
        for (i, &(from, to)) in SLOTS.iter().enumerate() {
            let port = free_port().map_err(no_port)?;
            let bus = free_port().map_err(no_port)?;
            let node_dir = cluster._dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| ServerError::failed(SERVER, format!("node directory: {e}"), None))?;
            let (out, err) = log_stdio(SERVER, &cluster.log)?;
            let child = Command::new(&binary)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--logfile", ""])
                .arg("--dir")
                .arg(&node_dir)
                .current_dir(&node_dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| {
                    ServerError::failed(SERVER, format!("running {}: {e}", binary.display()), None)
                })?;
            let mut node = Node { child, port };
            let ready = wait_ready(SERVER, &mut node.child, &cluster.log, || pong(port));
            cluster.nodes.push(node);
            ready?;
            cluster.command(i, &format!("CLUSTER ADDSLOTSRANGE {from} {to}"))?;
            if i > 0 {
                cluster.command(0, &format!("CLUSTER MEET 127.0.0.1 {port} {bus}"))?;
            }
        }
        for i in 0..cluster.nodes.len() {
            let mut ok = false;
            for _ in 0..READY_ATTEMPTS {
                if cluster
                    .command(i, "CLUSTER INFO")?
                    .contains("cluster_state:ok")
                {
                    ok = true;
                    break;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
            if !ok {
                return Err(ServerError::failed(
                    SERVER,
                    format!("node {i}: the cluster never reported cluster_state:ok"),
                    Some(&cluster.log),
                ));
            }
        }
        Ok(cluster)
    }

    /// The nodes' URLs (`redis://127.0.0.1:<port>/`), for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect()
    }

    /// The last lines of the nodes' shared log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Sends one inline command to node `i` and returns its raw reply.
    fn command(&self, i: usize, command: &str) -> Result<String, ServerError> {
        let port = self.nodes[i].port;
        let fail = |what: String| ServerError::failed(SERVER, what, Some(&self.log));
        let mut stream = connects(port).ok_or_else(|| fail(format!("node {i}: no connection")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .and_then(|()| stream.write_all(format!("{command}\r\n").as_bytes()))
            .map_err(|e| fail(format!("node {i}: {command}: {e}")))?;
        let mut reply = Vec::new();
        let mut buf = [0_u8; 4096];
        loop {
            let n = stream
                .read(&mut buf)
                .map_err(|e| fail(format!("node {i}: {command}: {e}")))?;
            reply.extend_from_slice(&buf[..n]);
            // A status or error line, or a bulk string read to its end.
            let text = String::from_utf8_lossy(&reply);
            let done = n == 0
                || ((text.starts_with('+') || text.starts_with('-')) && text.ends_with("\r\n"))
                || (text.starts_with('$') && bulk_complete(&text));
            if done {
                break;
            }
        }
        let text = String::from_utf8_lossy(&reply).into_owned();
        if text.starts_with('-') {
            return Err(fail(format!("node {i}: {command}: {}", text.trim())));
        }
        Ok(text)
    }
}

fn bulk_complete(text: &str) -> bool {
    let Some((len, rest)) = text[1..].split_once("\r\n") else {
        return false;
    };
    len.parse::<usize>().is_ok_and(|len| rest.len() >= len + 2)
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}
