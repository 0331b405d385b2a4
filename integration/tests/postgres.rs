//! Concurrent SERIALIZABLE money transfers on a real PostgreSQL server, each retried through
//! `redress_tokio` with `classify_postgres_error`.
//!
//! [`ACCOUNTS`] accounts start with [`START_BALANCE`] each. [`TASKS`] tasks, each on its own
//! connection, run [`PER_TASK`] transfers each. A transfer is one SERIALIZABLE transaction:
//! insert the transfer's id into `transfers`, lock and read both balances
//! (`SELECT … FOR UPDATE`, with `pg_sleep(0.001)` in between), write both new balances,
//! commit. Even tasks lock the lower account id first and odd tasks the higher one, so with
//! three accounts the server really reports both kinds of concurrency failure:
//!
//! | SQLSTATE | When | Class | Policy |
//! |----------|------|-------|--------|
//! | `40001` serialization failure | a transaction locks a row that another one changed and committed after its snapshot | `Concurrency` | retried (up to [`MAX_ATTEMPTS`] attempts, full jitter, 1 ms doubling up to 10 ms) |
//! | `40P01` deadlock | two transactions lock the same two rows in opposite orders | `Concurrency` | retried, likewise |
//!
//! A failed transaction rolls back entirely (its `transfers` row too), so a retried transfer
//! commits exactly once. At the end the server must show every transfer id exactly once
//! (`count(*)` = `count(DISTINCT id)` = the number of transfers), each account at the balance
//! the list of transfers implies, and the total unchanged; and the policy's hook must have
//! seen Concurrency retries (how many of each SQLSTATE is printed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use redress::backoff::full_jitter;
use redress::classify::sqlstate::classify_postgres_error;
use redress::{ErrorClass, Event, EventKind, Policy, Retry};
use redress_integration::{PgServer, or_skip};
use redress_tokio::RunAsync as _;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, IsolationLevel, NoTls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Accounts `0..ACCOUNTS`.
const ACCOUNTS: i32 = 3;
/// The opening balance of each account.
const START_BALANCE: i64 = 1000;
/// Concurrent tasks, each with its own connection.
const TASKS: usize = 8;
/// Transfers per task.
const PER_TASK: usize = 25;
/// Transfers in all.
const TRANSFERS: usize = TASKS * PER_TASK;
/// The attempts one transfer may take.
const MAX_ATTEMPTS: u32 = 1000;

/// One planned transfer.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    id: i64,
    src: i32,
    dst: i32,
    amount: i64,
}

/// The transfers of `task`: every pair of accounts, both ways, in a task-dependent order.
fn plan(task: usize) -> Vec<Transfer> {
    (0..PER_TASK)
        .map(|j| {
            let id = (task * PER_TASK + j) as i64;
            let src = ((task + j) % ACCOUNTS as usize) as i32;
            let dst = (src + 1 + (j % 2) as i32) % ACCOUNTS;
            Transfer {
                id,
                src,
                dst,
                amount: 1 + id % 10,
            }
        })
        .collect()
}

/// What each SQLSTATE the classifier saw was.
#[derive(Default)]
struct Seen {
    serialization: AtomicUsize,
    deadlock: AtomicUsize,
    other: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_transfers_commit_exactly_once() -> Result<(), BoxError> {
    let Some(server) = or_skip(PgServer::start())? else {
        return Ok(());
    };
    let config = server.connection_string();
    let setup = connect(&config).await?;
    // No foreign keys: the KEY SHARE lock a foreign-key check takes on each account conflicts
    // with `FOR UPDATE`, so any two concurrent transfers would deadlock whatever their order.
    setup
        .batch_execute(&format!(
            "CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL);
             CREATE TABLE transfers (
                 id BIGINT PRIMARY KEY,
                 src INT NOT NULL,
                 dst INT NOT NULL,
                 amount BIGINT NOT NULL
             );
             INSERT INTO accounts SELECT id, {START_BALANCE} FROM generate_series(0, {}) AS id;",
            ACCOUNTS - 1
        ))
        .await?;

    let concurrency_retries = Arc::new(AtomicUsize::new(0));
    let other_events = Arc::new(AtomicUsize::new(0));
    let (retries, others) = (Arc::clone(&concurrency_retries), Arc::clone(&other_events));
    let policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(MAX_ATTEMPTS)
                .strategy(full_jitter(
                    Duration::from_millis(1),
                    Duration::from_millis(10),
                ))
                .deadline(Duration::from_secs(120)),
        )
        .hook(move |event: &Event<'_>| match event.kind {
            EventKind::Retry { .. } if event.class == Some(ErrorClass::Concurrency) => {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            EventKind::Success => {}
            _ => {
                others.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()?;
    let seen = Arc::new(Seen::default());
    // The most attempts one transfer took.
    let most_attempts = Arc::new(AtomicU32::new(0));
    let started = std::time::Instant::now();

    // Local tasks: the future of a call whose operation borrows (an async closure) is not
    // provably `Send`. The connections themselves run on the runtime's workers.
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mut client = connect(&config).await?;
        let (policy, seen) = (policy.clone(), Arc::clone(&seen));
        let most = Arc::clone(&most_attempts);
        tasks.push(local.spawn_local(async move {
            let ctx = policy
                .context("transfer")
                .classify(move |err: &tokio_postgres::Error| {
                    let counter = match err.code() {
                        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE => {
                            &seen.serialization
                        }
                        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED => &seen.deadlock,
                        _ => &seen.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    classify_postgres_error(err)
                });
            let lower_first = task % 2 == 0;
            for t in plan(task) {
                ctx.run(async |attempt| {
                    most.fetch_max(attempt.n, Ordering::Relaxed);
                    transfer(&mut client, t, lower_first).await
                })
                .await
                .map_err(|e| format!("transfer {}: {e}: {:?}", t.id, e.error()))?;
            }
            Ok::<(), BoxError>(())
        }));
    }
    local
        .run_until(async {
            for task in tasks {
                task.await??;
            }
            Ok::<(), BoxError>(())
        })
        .await?;

    // Every transfer committed exactly once, by the server's own count.
    let row = setup
        .query_one("SELECT count(*), count(DISTINCT id) FROM transfers", &[])
        .await?;
    let (count, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((count, distinct), (TRANSFERS as i64, TRANSFERS as i64));
    let ids: Vec<i64> = setup
        .query("SELECT id FROM transfers ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, (0..TRANSFERS as i64).collect::<Vec<_>>());

    // Each balance is what the plan implies, and the total is unchanged.
    let mut expected = vec![START_BALANCE; ACCOUNTS as usize];
    for t in (0..TASKS).flat_map(plan) {
        expected[t.src as usize] -= t.amount;
        expected[t.dst as usize] += t.amount;
    }
    let balances: Vec<i64> = setup
        .query("SELECT balance FROM accounts ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(balances, expected);
    let total: i64 = setup
        .query_one("SELECT sum(balance)::BIGINT FROM accounts", &[])
        .await?
        .get(0);
    assert_eq!(total, START_BALANCE * i64::from(ACCOUNTS));

    let retried = concurrency_retries.load(Ordering::Relaxed);
    let serialization = seen.serialization.load(Ordering::Relaxed);
    let deadlock = seen.deadlock.load(Ordering::Relaxed);
    let other = seen.other.load(Ordering::Relaxed);
    println!(
        "postgres: {TRANSFERS} transfers by {TASKS} tasks, {retried} Concurrency retries \
         (40001 serialization failures: {serialization}, 40P01 deadlocks: {deadlock}, \
         other errors: {other}); at most {} attempts for one transfer; {:?}",
        most_attempts.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(retried > 0, "no Concurrency retry happened");
    assert!(
        serialization > 0,
        "no serialization failure (40001) happened"
    );
    assert!(deadlock > 0, "no deadlock (40P01) happened");
    // Every failure was one of the two, and every one was retried (all transfers committed).
    assert_eq!(other, 0);
    assert_eq!(retried, serialization + deadlock);
    assert_eq!(other_events.load(Ordering::Relaxed), 0);
    Ok(())
}

async fn connect(config: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(config, NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped; an error here shows up in the client's calls.
        let _ = connection.await;
    });
    Ok(client)
}

/// One transfer as one SERIALIZABLE transaction. Any error drops the transaction, which rolls
/// it back (its `transfers` row too) before the connection's next statement.
async fn transfer(
    client: &mut Client,
    t: Transfer,
    lower_first: bool,
) -> Result<(), tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await?;
    tx.execute(
        "INSERT INTO transfers (id, src, dst, amount) VALUES ($1, $2, $3, $4)",
        &[&t.id, &t.src, &t.dst, &t.amount],
    )
    .await?;
    let (low, high) = (t.src.min(t.dst), t.src.max(t.dst));
    let (first, second) = if lower_first {
        (low, high)
    } else {
        (high, low)
    };
    let lock = "SELECT balance FROM accounts WHERE id = $1 FOR UPDATE";
    let first_balance: i64 = tx.query_one(lock, &[&first]).await?.get(0);
    // Widens the window between the two locks.
    tx.execute("SELECT pg_sleep(0.001)", &[]).await?;
    let second_balance: i64 = tx.query_one(lock, &[&second]).await?.get(0);
    let balance = |id: i32| {
        if id == first {
            first_balance
        } else {
            second_balance
        }
    };
    let update = "UPDATE accounts SET balance = $2 WHERE id = $1";
    tx.execute(update, &[&t.src, &(balance(t.src) - t.amount)])
        .await?;
    tx.execute(update, &[&t.dst, &(balance(t.dst) + t.amount)])
        .await?;
    tx.commit().await
}
