//! A SERIALIZABLE transaction with tokio-postgres, run again from the start when PostgreSQL
//! reports a serialization failure (`40001`) or a deadlock (`40P01`).
//!
//! `classify_postgres_error` maps both SQLSTATEs to `Concurrency`: the conflict was with
//! concurrent work, and a fresh run of the *whole transaction* (a new snapshot, reads
//! included) is the fix. The operation is therefore the transaction, not a statement: each
//! attempt begins, reads, writes and commits, and a failed attempt is rolled back when its
//! `Transaction` is dropped.
//!
//! Two rounds of two concurrent transfers, on two connections, provoke real conflicts (the
//! first attempts wait for each other at a barrier, so the race is the same every run):
//!
//! 1. both transfers read account 1, then both update it: the second writer fails with
//!    `40001 could not serialize access due to concurrent update` and is run again;
//! 2. the transfers go in opposite directions and each updates its first account before the
//!    other's: PostgreSQL detects the deadlock, aborts one of them with `40P01`, and that
//!    one is run again.
//!
//! It connects to `DATABASE_URL` if set (a libpq connection string or URL; it creates and
//! drops a table `redress_example_accounts`). Otherwise it starts a throwaway server on
//! 127.0.0.1 with `redress_integration::PgServer` (PostgreSQL's `initdb` and `postgres`
//! must be installed: on Debian, `apt-get install postgresql`); without them it says so and
//! exits successfully.
//!
//! `cargo run -p redress-examples --example postgres`
#![forbid(unsafe_code)]

use std::sync::Mutex;
use std::time::Duration;

use redress::backoff::{equal_jitter, full_jitter};
use redress::classify::sqlstate::classify_postgres_error;
use redress::{ErrorClass, Retry};
use redress_integration::{PgServer, or_skip};
use redress_tokio::RunAsync;
use tokio::sync::Barrier;
use tokio_postgres::{Client, IsolationLevel, NoTls};

/// Where the first attempts of a round wait for each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meet {
    /// After reading the source balance: both then write the same row.
    AfterRead,
    /// After updating the source account: each then wants the row the other holds.
    AfterFirstWrite,
}

/// One transfer in one SERIALIZABLE transaction: read the source balance, write it back
/// lowered (a read-modify-write), credit the destination, commit.
async fn transfer(
    client: &mut Client,
    (from, to, amount): (i32, i32, i32),
    meet: Option<(&Barrier, Meet)>,
) -> Result<(), tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await?;
    let row = tx
        .query_one(
            "SELECT balance FROM redress_example_accounts WHERE id = $1",
            &[&from],
        )
        .await?;
    let balance: i32 = row.get(0);
    if let Some((barrier, Meet::AfterRead)) = meet {
        barrier.wait().await;
    }
    tx.execute(
        "UPDATE redress_example_accounts SET balance = $2 WHERE id = $1",
        &[&from, &(balance - amount)],
    )
    .await?;
    if let Some((barrier, Meet::AfterFirstWrite)) = meet {
        barrier.wait().await;
    }
    tx.execute(
        "UPDATE redress_example_accounts SET balance = balance + $2 WHERE id = $1",
        &[&to, &amount],
    )
    .await?;
    tx.commit().await
}

async fn connect(config: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(config, NoTls).await?;
    // The connection does the I/O; it ends when the client is dropped.
    tokio::spawn(connection);
    Ok(client)
}

async fn balances(client: &Client) -> Result<Vec<(i32, i32)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, balance FROM redress_example_accounts ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn run(config: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut alice = connect(config).await?;
    let mut bob = connect(config).await?;
    alice
        .batch_execute(
            "DROP TABLE IF EXISTS redress_example_accounts;
             CREATE TABLE redress_example_accounts (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO redress_example_accounts VALUES (1, 100), (2, 100);",
        )
        .await?;

    let policy = Retry::builder()
        .max_attempts(5)
        .deadline(Duration::from_secs(20))
        // A blocked attempt (a lock that is never released) is given up after 5 s.
        .attempt_timeout(Duration::from_secs(5))
        .strategy(equal_jitter(
            Duration::from_millis(50),
            Duration::from_secs(1),
        ))
        // A conflict clears as soon as the other transaction ends: retry quickly.
        .class_strategy(
            ErrorClass::Concurrency,
            full_jitter(Duration::from_millis(5), Duration::from_millis(50)),
        )
        .policy()?;
    let ctx = policy.context("transfer").classify(classify_postgres_error);

    // The SQLSTATE and class of every failed attempt.
    let failures = Mutex::new(Vec::new());
    let rounds = [
        ("lost update", Meet::AfterRead, (1, 2, 30), (1, 2, 50)),
        ("deadlock", Meet::AfterFirstWrite, (1, 2, 10), (2, 1, 40)),
    ];
    for (name, meet, a, b) in rounds {
        println!("round: {name}");
        let barrier = Barrier::new(2);
        let run_transfer = async |who: &str, client: &mut Client, t: (i32, i32, i32)| {
            ctx.run(async |attempt| {
                let meet = (attempt.n == 1).then_some((&barrier, meet));
                let result = transfer(client, t, meet).await;
                match &result {
                    Ok(()) => println!("  {who}: attempt {} committed", attempt.n),
                    Err(e) => {
                        let code = e.code().map_or("-", |c| c.code()).to_owned();
                        let class = classify_postgres_error(e).class;
                        let message = e.as_db_error().map_or("", |db| db.message());
                        println!(
                            "  {who}: attempt {} failed: sqlstate {code} ({class}): {message}",
                            attempt.n
                        );
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((code, class));
                    }
                }
                result
            })
            .await
        };
        let (ra, rb) = tokio::join!(
            run_transfer("alice", &mut alice, a),
            run_transfer("bob", &mut bob, b)
        );
        ra?;
        rb?;
    }

    let balances = balances(&alice).await?;
    println!("balances: {balances:?}");
    alice
        .batch_execute("DROP TABLE redress_example_accounts")
        .await?;

    // 100 - 30 - 50 - 10 + 40 and 100 + 30 + 50 + 10 - 40: no transfer lost or applied twice.
    assert_eq!(balances, [(1, 50), (2, 150)]);
    // One transaction of each round was aborted, once, and run again.
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    let concurrency = ErrorClass::Concurrency;
    assert_eq!(
        failures,
        [("40001".into(), concurrency), ("40P01".into(), concurrency)]
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Kept until the end: dropping it stops the server and deletes its directory.
    let server;
    let config = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => match or_skip(PgServer::start())? {
            Some(started) => {
                server = started;
                println!("started PostgreSQL on 127.0.0.1:{}", server.port());
                server.connection_string()
            }
            None => {
                println!("no DATABASE_URL and no PostgreSQL to start: nothing to run");
                return Ok(());
            }
        },
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(&config))
}
