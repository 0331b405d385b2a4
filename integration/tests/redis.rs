//! Idempotent Redis writes through `redress_tokio` while the server crashes and comes back.
//!
//! [`TASKS`] tasks each write their share of `SET key:<i> <i>` for `i` in `0..N`, one
//! connection per task, reconnecting by hand after any failure. Halfway through, every task
//! waits while the server is killed (`SIGKILL`); the tasks then resume against the dead
//! server, and it is started again on the same port after a short pause. The server keeps an
//! append-only file with `appendfsync always`, so every write it acknowledged before the crash
//! survives; a write whose reply was lost is simply retried (`SET` is idempotent). The final
//! check is exact: the server's own `DBSIZE` is `N`, and every key holds its value.
//!
//! | Phase | Expected |
//! |-------|----------|
//! | outage (dropped connection, refused connections) | failures classified `Transient` by `classify_redis_error`, retried; more than zero of them, none of another class |
//! | end | every write succeeded (no call stopped); `DBSIZE` = `N`; `MGET` gives each key its value |

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redress::backoff::full_jitter;
use redress::classify::redis::classify_redis_error;
use redress::event::Recorder;
use redress::{ErrorClass, EventKind, Policy, Retry};
use redress_integration::{RedisServer, or_skip};
use redress_tokio::RunAsync as _;
use tokio::sync::Barrier;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Concurrent writers.
const TASKS: usize = 4;
/// Writes per task.
const PER_TASK: usize = 250;
/// Writes in all: the keys `key:0` to `key:{N - 1}`.
const N: usize = TASKS * PER_TASK;

#[tokio::test]
async fn writes_survive_a_server_restart() -> Result<(), BoxError> {
    let Some(mut server) = or_skip(RedisServer::start())? else {
        return Ok(());
    };
    let client = redis::Client::open(server.url())?;
    let recorder = Recorder::default();
    let policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(500)
                .strategy(full_jitter(
                    Duration::from_millis(5),
                    Duration::from_millis(50),
                ))
                .deadline(Duration::from_secs(30)),
        )
        .hook(recorder.clone())
        .build()?;

    // Every writer and the test itself meet at `halfway`; the server is killed before they
    // meet again at `resume`, so every writer's next write meets the outage. The writers are
    // local tasks: the future of a call whose operation borrows (an async closure) is not
    // provably `Send`.
    let halfway = Arc::new(Barrier::new(TASKS + 1));
    let resume = Arc::new(Barrier::new(TASKS + 1));
    let local = tokio::task::LocalSet::new();
    let mut writers = Vec::new();
    for task in 0..TASKS {
        let (client, policy) = (client.clone(), policy.clone());
        let (halfway, resume) = (Arc::clone(&halfway), Arc::clone(&resume));
        writers.push(local.spawn_local(async move {
            let ctx = policy.context("set").classify(classify_redis_error);
            let mut conn: Option<MultiplexedConnection> = None;
            for j in 0..PER_TASK {
                if j == PER_TASK / 2 {
                    halfway.wait().await;
                    resume.wait().await;
                }
                let i = task * PER_TASK + j;
                ctx.run(async |_| set(&client, &mut conn, i).await).await?;
            }
            Ok::<(), BoxError>(())
        }));
    }
    let server = local
        .run_until(async move {
            halfway.wait().await;
            server.kill();
            resume.wait().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let server = tokio::task::spawn_blocking(move || server.start_again().map(|()| server))
                .await??;
            for writer in writers {
                writer.await??;
            }
            Ok::<RedisServer, BoxError>(server)
        })
        .await?;

    // Every call succeeded; the outage's failures were all transient, and there were some.
    let events = recorder.take();
    let successes = events
        .iter()
        .filter(|e| e.kind == EventKind::Success)
        .count();
    let stopped: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Stopped(_)))
        .collect();
    let failure_classes: Vec<Option<ErrorClass>> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Retry { .. }))
        .map(|e| e.class)
        .collect();
    println!(
        "redis: {N} writes, {} retried failures during the outage",
        failure_classes.len()
    );
    assert_eq!(successes, N);
    assert!(stopped.is_empty(), "calls stopped: {stopped:?}");
    assert!(!failure_classes.is_empty(), "no failure during the outage");
    assert!(
        failure_classes
            .iter()
            .all(|c| *c == Some(ErrorClass::Transient)),
        "{failure_classes:?}"
    );

    // The server's own count, and every value.
    let mut conn = client.get_multiplexed_async_connection().await?;
    let size: usize = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    assert_eq!(size, N, "{}", server.log_tail());
    let keys: Vec<String> = (0..N).map(key).collect();
    let values: Vec<Option<usize>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
    let expected: Vec<Option<usize>> = (0..N).map(Some).collect();
    assert_eq!(values, expected);
    Ok(())
}

fn key(i: usize) -> String {
    format!("key:{i}")
}

/// `SET key:<i> <i>` on the task's connection, connecting first if it has none; any failure
/// drops the connection, so the next attempt reconnects.
async fn set(
    client: &redis::Client,
    conn: &mut Option<MultiplexedConnection>,
    i: usize,
) -> redis::RedisResult<()> {
    let connection = match conn {
        Some(connection) => connection,
        None => conn.insert(client.get_multiplexed_async_connection().await?),
    };
    // The reply must be the server's `OK`: anything else (a socket that connected to itself
    // while the port was free reads its own command back) is a failure to retry.
    let result = redis::cmd("SET")
        .arg(key(i))
        .arg(i)
        .query_async::<redis::Value>(connection)
        .await
        .and_then(|reply| match reply {
            redis::Value::Okay => Ok(()),
            other => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "SET was not answered with OK",
                format!("{other:?}"),
            ))),
        });
    if result.is_err() {
        *conn = None;
    }
    result
}
