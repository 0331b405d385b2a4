//! Helpers of the real-server integration tests: starting and stopping servers on 127.0.0.1.
//!
//! Every test starts **its own** server ([`PgServer`], [`RedisServer`]) on a free port of
//! 127.0.0.1, in a temporary directory named `redress-it-*` under the system's temporary
//! directory, and the server is stopped and its directory removed when the value is dropped.
//! Tests are therefore hermetic, may run in parallel, and may stop and restart their server.
//!
//! # Missing servers
//!
//! | Binary | Found in | Package |
//! |--------|----------|---------|
//! | `initdb`, `postgres` | `PATH`, then `/usr/lib/postgresql/<version>/bin` (newest first) | `postgresql` |
//! | `redis-server` | `PATH` | `redis-server` |
//!
//! A test passes its server's start result through [`or_skip`]:
//!
//! | Start result | `REDRESS_REQUIRE_SERVERS` | [`or_skip`] |
//! |--------------|---------------------------|-------------|
//! | started | any | `Ok(Some(server))` |
//! | a binary is missing | unset, or anything but `1` | prints `skipped: <reason>`, `Ok(None)`: the test returns and passes |
//! | a binary is missing | `1` (CI) | `Err`, naming the binary and the package to install: the test fails |
//! | the server failed to start | any | `Err` with the server's log tail: the test fails |
//!
//! ```no_run
//! use redress_integration::{RedisServer, ServerError, or_skip};
//!
//! # fn test() -> Result<(), ServerError> {
//! let Some(redis) = or_skip(RedisServer::start())? else {
//!     return Ok(()); // skipped
//! };
//! println!("redis on {}", redis.url());
//! # Ok(()) }
//! ```
//!
//! # Processes
//!
//! Servers are children of the test process, started in the foreground (no daemonizing), with
//! their temporary directory as working directory (so a stray one can be recognised by its
//! `/proc/<pid>/cwd`). When the tests run as root, PostgreSQL (which refuses to run as root)
//! runs as the `postgres` user, which then owns the temporary directory.
//!
//! | Server | Started with | Ready when | Stopped by |
//! |--------|--------------|------------|------------|
//! | PostgreSQL | `initdb` (trust auth, no sync), then `postgres -h 127.0.0.1 -k <dir>` with fsync off, small shared buffers and a 10 ms `deadlock_timeout` | its log says it accepts connections and its port accepts a TCP connection | `SIGINT` (fast shutdown), then `SIGQUIT`, then `SIGKILL` |
//! | Redis | `redis-server --bind 127.0.0.1 --port <port> --dir <dir> --save '' --appendonly yes --appendfsync always` | `PING` answers `+PONG` | [`RedisServer::kill`]: `SIGKILL` (a crash); [`RedisServer::stop`]: `SIGTERM`, then `SIGKILL` |
//! | Redis Cluster | three `redis-server --cluster-enabled yes --cluster-port <bus>` nodes, slots assigned with `CLUSTER ADDSLOTSRANGE` and joined with `CLUSTER MEET` | every node's `CLUSTER INFO` says `cluster_state:ok` | `SIGKILL` on drop |
//!
//! Readiness is polled at most [`READY_ATTEMPTS`] times, [`POLL_INTERVAL`] apart (about 30 s in
//! all); a server that exits or never becomes ready fails the start with its log tail.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

mod cluster;
pub use cluster::RedisCluster;

/// The environment variable that turns a missing server binary into a test failure (`1`).
pub const REQUIRE_SERVERS: &str = "REDRESS_REQUIRE_SERVERS";

/// The pause between two readiness checks (and between two checks that a stopped server
/// has exited).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many readiness checks a server gets before its start fails (about 30 s in all).
pub const READY_ATTEMPTS: u32 = 600;

/// How many exit checks a server gets after each stop signal (about 10 s).
const EXIT_ATTEMPTS: u32 = 200;

/// How many lines of a server's log an error shows.
const LOG_TAIL_LINES: usize = 30;

/// The prefix of the temporary directories of the servers (`.ci/run` recognises stray
/// servers by it).
pub const DIR_PREFIX: &str = "redress-it-";

/// Why a server could not be started or stopped.
pub enum ServerError {
    /// A server binary is not installed.
    Missing {
        /// The binary that was looked for.
        binary: &'static str,
        /// The (Debian) package that provides it.
        package: &'static str,
    },
    /// The server was found but did not start, become ready or stop.
    Failed {
        /// The server (`postgres`, `redis-server`).
        server: &'static str,
        /// What went wrong.
        reason: String,
        /// The last lines of the server's log, if any.
        log_tail: String,
    },
}

impl ServerError {
    fn failed(server: &'static str, reason: impl Into<String>, log: Option<&Path>) -> Self {
        Self::Failed {
            server,
            reason: reason.into(),
            log_tail: log.map(log_tail).unwrap_or_default(),
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { binary, package } => write!(
                f,
                "`{binary}` was not found on PATH or in /usr/lib/postgresql/*/bin; install the \
                 `{package}` package (`apt-get install -y {package}`)"
            ),
            Self::Failed {
                server,
                reason,
                log_tail,
            } => {
                write!(f, "{server}: {reason}")?;
                if !log_tail.is_empty() {
                    write!(f, "\n--- last lines of the {server} log ---\n{log_tail}")?;
                }
                Ok(())
            }
        }
    }
}

/// The message itself, so that a test returning this error prints something readable.
impl fmt::Debug for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ServerError {}

/// Whether a missing server binary fails the test: `REDRESS_REQUIRE_SERVERS=1` (CI).
pub fn servers_required() -> bool {
    std::env::var_os(REQUIRE_SERVERS).is_some_and(|v| v == "1")
}

/// The one place that decides what a missing server means (see the
/// [crate documentation](crate)): a started server is `Ok(Some(_))`; a missing binary prints
/// `skipped: <reason>` and gives `Ok(None)`, unless `REDRESS_REQUIRE_SERVERS=1`, where it is an
/// error naming the binary and its package; any other failure is an error.
///
/// # Errors
/// The server failed to start, or its binary is missing while servers are required.
pub fn or_skip<T>(started: Result<T, ServerError>) -> Result<Option<T>, ServerError> {
    or_skip_when(started, servers_required())
}

/// [`or_skip`] with the requirement given.
fn or_skip_when<T>(
    started: Result<T, ServerError>,
    required: bool,
) -> Result<Option<T>, ServerError> {
    match started {
        Ok(server) => Ok(Some(server)),
        Err(missing @ ServerError::Missing { .. }) => {
            if required {
                eprintln!("{REQUIRE_SERVERS}=1: a test whose server cannot start fails");
                Err(missing)
            } else {
                println!("skipped: {missing}");
                Ok(None)
            }
        }
        Err(failed) => Err(failed),
    }
}

// ----- finding binaries ------------------------------------------------------------------

/// Finds `binary` on `PATH`, then in `/usr/lib/postgresql/*/bin` (newest version first).
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(postgres_bin_dirs())
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// `/usr/lib/postgresql/<version>/bin`, highest version first.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn require_binary(binary: &'static str, package: &'static str) -> Result<PathBuf, ServerError> {
    find_binary(binary).ok_or(ServerError::Missing { binary, package })
}

// ----- shared plumbing -------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound, read and released).
///
/// # Errors
/// No port could be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn temp_dir(kind: &str) -> Result<TempDir, ServerError> {
    tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{kind}-"))
        .tempdir()
        .map_err(|e| ServerError::failed("harness", format!("temporary directory: {e}"), None))
}

/// The last [`LOG_TAIL_LINES`] lines of a log file.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return format!("(no log at {})", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Opens `path` for a child's stdout and stderr.
fn log_stdio(server: &'static str, path: &Path) -> Result<(Stdio, Stdio), ServerError> {
    let open = || -> std::io::Result<(Stdio, Stdio)> {
        let out = File::options().create(true).append(true).open(path)?;
        let err = out.try_clone()?;
        Ok((out.into(), err.into()))
    };
    open().map_err(|e| ServerError::failed(server, format!("log {}: {e}", path.display()), None))
}

fn signal(child: &Child, sig: Signal) {
    let Ok(id) = i32::try_from(child.id()) else {
        return;
    };
    if let Some(pid) = Pid::from_raw(id) {
        // An error means the process is gone already.
        let _ = kill_process(pid, sig);
    }
}

/// Sends each signal in turn, waiting up to [`EXIT_ATTEMPTS`] polls for the child to exit
/// after each, and reaps it. `false` if it survived them all.
fn terminate(child: &mut Child, signals: &[Signal]) -> bool {
    for &sig in signals {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        signal(child, sig);
        for _ in 0..EXIT_ATTEMPTS {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) => std::thread::sleep(POLL_INTERVAL),
            }
        }
    }
    let _ = child.kill();
    child.wait().is_ok()
}

/// Polls `ready` up to [`READY_ATTEMPTS`] times; fails early if the child exits.
fn wait_ready(
    server: &'static str,
    child: &mut Child,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ServerError> {
    for _ in 0..READY_ATTEMPTS {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ServerError::failed(
                server,
                format!("exited during start-up ({status})"),
                Some(log),
            ));
        }
        if ready() {
            return Ok(());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Err(ServerError::failed(
        server,
        format!(
            "not ready after {READY_ATTEMPTS} checks {} ms apart",
            POLL_INTERVAL.as_millis()
        ),
        Some(log),
    ))
}

fn connects(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
}

/// The user and group ids a server that refuses root runs as: `None` unless the tests run as
/// root, else those of the `postgres` user.
fn unprivileged_ids(server: &'static str) -> Result<Option<(u32, u32)>, ServerError> {
    if !rustix::process::getuid().is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, ServerError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| ServerError::failed(server, format!("running `id`: {e}"), None))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                ServerError::failed(
                    server,
                    "running as root, and there is no `postgres` user to run the server as \
                     (`initdb` and `postgres` refuse root)",
                    None,
                )
            })
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

// ----- PostgreSQL ------------------------------------------------------------------------

/// A PostgreSQL server of one test: its own cluster in a temporary directory, listening on
/// 127.0.0.1 only; stopped (fast shutdown) and deleted on drop.
pub struct PgServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    // Dropped last: the directory outlives the server.
    dir: TempDir,
}

impl PgServer {
    /// The user the cluster is created for (trust authentication).
    pub const USER: &'static str = "postgres";

    /// Creates a cluster (`initdb`) and starts `postgres` on a free port.
    ///
    /// # Errors
    /// [`ServerError::Missing`] if `initdb` or `postgres` is not installed;
    /// [`ServerError::Failed`] if the cluster cannot be created or the server does not become
    /// ready.
    pub fn start() -> Result<Self, ServerError> {
        const SERVER: &str = "postgres";
        let initdb = require_binary("initdb", "postgresql")?;
        let postgres = require_binary("postgres", "postgresql")?;
        let ids = unprivileged_ids(SERVER)?;
        let dir = temp_dir("pg")?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| {
                ServerError::failed(SERVER, format!("chown {}: {e}", dir.path().display()), None)
            })?;
        }
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");

        let init_log = dir.path().join("initdb.log");
        let (out, err) = log_stdio(SERVER, &init_log)?;
        let mut init = Command::new(&initdb);
        init.arg("-D")
            .arg(&data)
            .args(["-U", Self::USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        as_user(&mut init, ids);
        let status = init.status().map_err(|e| {
            ServerError::failed(SERVER, format!("running {}: {e}", initdb.display()), None)
        })?;
        if !status.success() {
            return Err(ServerError::failed(
                SERVER,
                format!("initdb failed ({status})"),
                Some(&init_log),
            ));
        }

        let port = free_port()
            .map_err(|e| ServerError::failed(SERVER, format!("no free port: {e}"), None))?;
        let (out, err) = log_stdio(SERVER, &log)?;
        let mut cmd = Command::new(&postgres);
        cmd.arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .arg("-k")
            .arg(dir.path())
            .args(settings(&[
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
                ("shared_buffers", "16MB"),
                ("max_connections", "64"),
                // Deadlocks are found after this wait; the default (1 s) would make every
                // deadlock of a contention test cost a second.
                ("deadlock_timeout", "10ms"),
                ("logging_collector", "off"),
            ]))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        as_user(&mut cmd, ids);
        let child = cmd.spawn().map_err(|e| {
            ServerError::failed(SERVER, format!("running {}: {e}", postgres.display()), None)
        })?;
        let mut server = Self {
            child: Some(child),
            port,
            log,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let Self {
            child, port, log, ..
        } = self;
        let Some(child) = child.as_mut() else {
            return Err(ServerError::failed("postgres", "not running", None));
        };
        let port = *port;
        wait_ready("postgres", child, log, || {
            let mut text = String::new();
            let logged = File::open(&*log)
                .and_then(|mut f| f.read_to_string(&mut text))
                .is_ok()
                && text.contains("ready to accept connections");
            logged && connects(port).is_some()
        })
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `tokio-postgres` / libpq connection string for the `postgres` database.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={} dbname=postgres connect_timeout=10",
            self.port,
            Self::USER
        )
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Stops the server: fast shutdown (`SIGINT`), then immediate (`SIGQUIT`), then `SIGKILL`.
    ///
    /// # Errors
    /// The server survived every signal.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if terminate(&mut child, &[Signal::INT, Signal::QUIT]) {
            Ok(())
        } else {
            Err(ServerError::failed(
                "postgres",
                "did not exit",
                Some(&self.log),
            ))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// `-c name=value` for each setting.
fn settings(pairs: &[(&str, &str)]) -> Vec<OsString> {
    pairs
        .iter()
        .flat_map(|(name, value)| ["-c".into(), format!("{name}={value}").into()])
        .collect()
}

fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt as _;
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
}

// ----- Redis -----------------------------------------------------------------------------

/// A Redis server of one test, on 127.0.0.1 only, with an append-only file in its temporary
/// directory (`appendfsync always`), so it can be killed and started again on the same port
/// without losing an acknowledged write. Stopped and deleted on drop.
pub struct RedisServer {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    log: PathBuf,
    // Dropped last: the directory outlives the server.
    dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free port.
    ///
    /// # Errors
    /// [`ServerError::Missing`] if `redis-server` is not installed; [`ServerError::Failed`] if
    /// it does not become ready.
    pub fn start() -> Result<Self, ServerError> {
        let binary = require_binary("redis-server", "redis-server")?;
        let dir = temp_dir("redis")?;
        let port = free_port()
            .map_err(|e| ServerError::failed("redis-server", format!("no free port: {e}"), None))?;
        let log = dir.path().join("redis.log");
        let mut server = Self {
            child: None,
            binary,
            port,
            log,
            dir,
        };
        server.start_again()?;
        Ok(server)
    }

    /// Starts the server again, on the same port and with the same directory (so with the
    /// data it had). Does nothing if it is running.
    ///
    /// # Errors
    /// The server did not start or become ready.
    pub fn start_again(&mut self) -> Result<(), ServerError> {
        const SERVER: &str = "redis-server";
        if self.is_running() {
            return Ok(());
        }
        let (out, err) = log_stdio(SERVER, &self.log)?;
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--daemonize", "no", "--logfile", ""])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                ServerError::failed(
                    SERVER,
                    format!("running {}: {e}", self.binary.display()),
                    None,
                )
            })?;
        let port = self.port;
        let child = self.child.insert(child);
        wait_ready(SERVER, child, &self.log, || pong(port))
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server (`SIGKILL`: a crash, no shutdown) and waits for it to exit. What it
    /// acknowledged is in its append-only file.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (`SIGTERM`), then with `SIGKILL` if it does not exit.
    ///
    /// # Errors
    /// The server survived every signal.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if terminate(&mut child, &[Signal::TERM]) {
            Ok(())
        } else {
            Err(ServerError::failed(
                "redis-server",
                "did not exit",
                Some(&self.log),
            ))
        }
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL (`redis://127.0.0.1:<port>/`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis server answers `PING` with `+PONG` on `port` (not `-LOADING`).
fn pong(port: u16) -> bool {
    let Some(mut stream) = connects(port) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if stream.set_read_timeout(timeout).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0_u8; 16];
    let mut read = 0;
    while read < 7 {
        match stream.read(&mut reply[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    reply[..read].starts_with(b"+PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> ServerError {
        ServerError::Missing {
            binary: "redis-server",
            package: "redis-server",
        }
    }

    fn failed() -> ServerError {
        ServerError::Failed {
            server: "postgres",
            reason: "exited during start-up".into(),
            log_tail: "FATAL: boom".into(),
        }
    }

    /// The table of the crate documentation: what `or_skip` makes of each start result.
    #[test]
    fn missing_servers_skip_unless_required() {
        // (start result, required, expected: Ok(Some), Ok(None) or Err)
        #[derive(Debug, PartialEq)]
        enum Expect {
            Started,
            Skipped,
            Fails,
        }
        let rows: Vec<(Result<u8, ServerError>, bool, Expect)> = vec![
            (Ok(1), false, Expect::Started),
            (Ok(1), true, Expect::Started),
            (Err(missing()), false, Expect::Skipped),
            (Err(missing()), true, Expect::Fails),
            (Err(failed()), false, Expect::Fails),
            (Err(failed()), true, Expect::Fails),
        ];
        for (started, required, expect) in rows {
            let got = match or_skip_when(started, required) {
                Ok(Some(_)) => Expect::Started,
                Ok(None) => Expect::Skipped,
                Err(_) => Expect::Fails,
            };
            assert_eq!(got, expect, "required: {required}");
        }
    }

    #[test]
    fn errors_name_the_binary_the_package_and_the_log() {
        let text = missing().to_string();
        assert!(text.contains("`redis-server` was not found"), "{text}");
        assert!(text.contains("apt-get install -y redis-server"), "{text}");
        let text = format!("{:?}", failed());
        assert!(
            text.starts_with("postgres: exited during start-up"),
            "{text}"
        );
        assert!(text.ends_with("FATAL: boom"), "{text}");
    }

    #[test]
    fn binaries_are_found_on_path_only_if_there() {
        assert!(find_binary("sh").is_some_and(|p| p.is_file()));
        assert_eq!(find_binary("redress-no-such-binary"), None);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = temp_dir("log").unwrap();
        let path = dir.path().join("server.log");
        let text: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        let tail = log_tail(&path);
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(tail.starts_with("line 70\n"), "{tail}");
        assert!(tail.ends_with("line 99"), "{tail}");
        assert!(log_tail(&dir.path().join("none")).starts_with("(no log at "));
    }

    /// A started server listens on 127.0.0.1 in its own directory; dropping it stops it and
    /// removes the directory.
    #[test]
    fn postgres_starts_and_is_cleaned_up() {
        let Some(pg) = or_skip(PgServer::start()).unwrap() else {
            return;
        };
        let (port, dir) = (pg.port(), pg.dir().to_path_buf());
        assert!(connects(port).is_some());
        assert!(dir.join("data").join("PG_VERSION").is_file());
        drop(pg);
        assert!(connects(port).is_none());
        assert!(!dir.exists());
    }

    /// Killed, Redis refuses connections; started again, it answers on the same port.
    #[test]
    fn redis_restarts_on_its_port_and_is_cleaned_up() {
        let Some(mut redis) = or_skip(RedisServer::start()).unwrap() else {
            return;
        };
        let (port, dir) = (redis.port(), redis.dir().to_path_buf());
        assert!(pong(port));
        redis.kill();
        assert!(!redis.is_running());
        assert!(connects(port).is_none());
        redis.start_again().unwrap();
        assert_eq!(redis.port(), port);
        assert!(pong(port));
        redis.stop().unwrap();
        assert!(connects(port).is_none());
        redis.start_again().unwrap();
        drop(redis);
        assert!(connects(port).is_none());
        assert!(!dir.exists());
    }
}
