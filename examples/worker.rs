//! A job worker on tokio: one shared policy (retries, a retry budget, a circuit breaker) for
//! every job, deferral while the breaker is open, and a graceful shutdown.
//!
//! A producer queues 20 jobs on a channel; the worker pulls them one by one and runs each
//! under the policy against an inventory service that is simulated in-process:
//!
//! - jobs 4 and 11 time out once (`Transient`): retried, then they succeed;
//! - job 7 is invalid (`Permanent`): not retried, it fails at once;
//! - job 9 always finds its record locked (`Concurrency`): retried until `max_attempts`;
//! - when job 12 arrives the service goes down for 300 ms (`ServerError` on every call):
//!   three failures in a row open the breaker, and from then on the worker does not call the
//!   service at all. A call the breaker refuses ends with `StopReason::CircuitOpen { until }`,
//!   and the worker puts the job back on the queue for when the breaker admits a probe
//!   again. Once a probe succeeds the breaker closes and the deferred jobs go through.
//!
//! When every job is settled the main task fires the `AbortHandle` the worker listens to:
//! the worker stops taking jobs, and a call sleeping between attempts would stop at once
//! (`StopReason::Aborted`). In a service the same handle is fired from a signal handler.
//!
//! `cargo run -p redress-examples --example worker`
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redress::backoff::exponential;
use redress::{
    AbortHandle, Budget, CircuitBreaker, CircuitState, Clock, ErrorClass, Event, EventKind, Policy,
    Retry, StopReason, SystemClock,
};
use redress_tokio::RunAsync;
use tokio::sync::{mpsc, watch};

const JOBS: u32 = 20;
/// The job whose arrival starts the outage, and how long the outage lasts.
const OUTAGE_AT_JOB: u32 = 12;
const OUTAGE: Duration = Duration::from_millis(300);
/// How long the breaker stays open before it lets one probe through.
const RECOVERY: Duration = Duration::from_millis(100);
/// A job deferred this many times is given up (a real worker would park it).
const MAX_DEFERRALS: u32 = 50;

/// What the inventory service answers when it does not reserve.
#[derive(Debug)]
enum InventoryError {
    /// The request timed out.
    Timeout,
    /// The service is down (a 503).
    Unavailable,
    /// Someone else holds the record.
    Locked,
    /// The job's data is wrong.
    Invalid,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Unavailable => "service unavailable",
            Self::Locked => "record locked",
            Self::Invalid => "invalid item",
        })
    }
}

impl std::error::Error for InventoryError {}

/// The classifier: what each error means to the policy.
fn classify(err: &InventoryError) -> ErrorClass {
    match err {
        InventoryError::Timeout => ErrorClass::Transient,
        InventoryError::Unavailable => ErrorClass::ServerError,
        InventoryError::Locked => ErrorClass::Concurrency,
        InventoryError::Invalid => ErrorClass::Permanent,
    }
}

/// The simulated dependency.
#[derive(Default)]
struct Inventory {
    calls: AtomicU32,
    /// When the outage ends, once it has started.
    outage_ends: Mutex<Option<tokio::time::Instant>>,
    /// Jobs seen at least once (the flaky ones fail only their first call).
    seen: Mutex<HashSet<u32>>,
}

impl Inventory {
    async fn reserve(&self, job: u32) -> Result<(), InventoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = tokio::time::Instant::now();
        {
            let mut outage = self.outage_ends.lock().unwrap_or_else(|e| e.into_inner());
            if job == OUTAGE_AT_JOB && outage.is_none() {
                *outage = Some(now + OUTAGE);
            }
            if outage.is_some_and(|end| now < end) {
                return Err(InventoryError::Unavailable);
            }
        }
        let first_call = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job);
        match job {
            7 => Err(InventoryError::Invalid),
            9 => Err(InventoryError::Locked),
            4 | 11 if first_call => Err(InventoryError::Timeout),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Job {
    id: u32,
    deferrals: u32,
}

/// What the worker did.
#[derive(Debug, Default)]
struct Summary {
    succeeded: u32,
    /// Jobs that failed, by stop reason.
    failed: BTreeMap<&'static str, u32>,
    /// Times a job was put back on the queue, by stop reason.
    deferred: BTreeMap<&'static str, u32>,
}

impl Summary {
    fn settled(&self) -> u32 {
        self.succeeded + self.failed.values().sum::<u32>()
    }
}

/// Pulls jobs until `shutdown` fires; returns what it did.
async fn worker(
    policy: Policy,
    inventory: Arc<Inventory>,
    mut jobs: mpsc::Receiver<Job>,
    requeue: mpsc::Sender<Job>,
    shutdown: AbortHandle,
    settled: watch::Sender<u32>,
) -> Summary {
    let ctx = policy
        .context("reserve")
        .classify(classify)
        .abort_handle(shutdown.clone());
    let mut summary = Summary::default();
    loop {
        let job = tokio::select! {
            () = shutdown.aborted() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        // A closure returning a future that owns what it uses (rather than an async closure
        // borrowing it) keeps the worker's future `Send`, so it can be spawned.
        let (id, inventory) = (job.id, Arc::clone(&inventory));
        let (result, report) = ctx
            .run_with_report(move |_attempt| {
                let inventory = Arc::clone(&inventory);
                async move { inventory.reserve(id).await }
            })
            .await;
        let err = match result {
            Ok(()) => {
                println!(
                    "job {id:>2}: done ({} attempt(s), deferred {} time(s))",
                    report.attempts, job.deferrals
                );
                summary.succeeded += 1;
                let _ = settled.send(summary.settled());
                continue;
            }
            Err(err) => err,
        };
        match err.reason() {
            // The breaker is open: come back when it admits a probe again, without calling
            // the dependency in between.
            StopReason::CircuitOpen { until } if job.deferrals < MAX_DEFERRALS => {
                *summary.deferred.entry(err.reason().name()).or_default() += 1;
                if job.deferrals == 0 {
                    println!(
                        "job {id:>2}: deferred while the breaker is open ({} attempt(s) ran)",
                        err.attempts()
                    );
                }
                let at = tokio::time::Instant::from_std(SystemClock::std_from_instant(until));
                let requeue = requeue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let job = Job {
                        deferrals: job.deferrals + 1,
                        ..job
                    };
                    // The worker may be gone (shut down): the job is then dropped.
                    let _ = requeue.send(job).await;
                });
            }
            // The worker is shutting down (a real worker would put the job back on its
            // durable queue here).
            StopReason::Aborted => break,
            reason => {
                println!("job {id:>2}: failed: {err}");
                *summary.failed.entry(reason.name()).or_default() += 1;
                let _ = settled.send(summary.settled());
            }
        }
    }
    summary
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One budget and one breaker, shared by every job of the worker.
    // Retries may add 20% to the load, plus 5 a second.
    let budget = Arc::new(Budget::ratio(0.2, 5.0, Duration::from_secs(10)).build()?);
    let breaker = Arc::new(
        CircuitBreaker::consecutive(3, Duration::from_secs(10))
            .recovery(RECOVERY)
            .build()?,
    );
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(4)
                .deadline(Duration::from_secs(2))
                .strategy(exponential(
                    Duration::from_millis(10),
                    Duration::from_millis(80),
                ))
                .budget(Arc::clone(&budget)),
        )
        .breaker(Arc::clone(&breaker))
        .hook({
            let transitions = Arc::clone(&transitions);
            move |e: &Event<'_>| {
                let to = match e.kind {
                    EventKind::CircuitOpened => "open",
                    EventKind::CircuitHalfOpen => "half_open",
                    EventKind::CircuitClosed => "closed",
                    _ => return,
                };
                println!("  breaker -> {to}");
                transitions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(to);
            }
        })
        .build()?;

    let inventory = Arc::new(Inventory::default());
    let (tx, rx) = mpsc::channel(64);
    let (settled_tx, mut settled_rx) = watch::channel(0);
    let shutdown = AbortHandle::new();
    let handle = tokio::spawn(worker(
        policy,
        Arc::clone(&inventory),
        rx,
        tx.clone(),
        shutdown.clone(),
        settled_tx,
    ));

    for id in 1..=JOBS {
        tx.send(Job { id, deferrals: 0 }).await?;
    }
    // Wait until every job has succeeded or failed, then shut the worker down.
    settled_rx.wait_for(|n| *n == JOBS).await?;
    shutdown.abort();
    let summary = handle.await?;

    println!(
        "\nsucceeded: {}, failed: {:?}, deferred: {:?}",
        summary.succeeded, summary.failed, summary.deferred
    );
    println!(
        "inventory calls: {}, breaker: {:?}, retry budget left: {}",
        inventory.calls.load(Ordering::SeqCst),
        breaker.state(),
        budget.remaining(SystemClock.now())
    );

    // Every job settled exactly once: 18 succeeded, job 7 was not retried, job 9 ran out
    // of attempts; the outage was ridden out by deferring, not by failing jobs.
    assert_eq!(summary.succeeded, 18);
    let failed: Vec<_> = summary.failed.into_iter().collect();
    assert_eq!(failed, [("max_attempts", 1), ("non_retryable", 1)]);
    assert!(
        summary
            .deferred
            .get("circuit_open")
            .is_some_and(|n| *n >= 1)
    );
    assert_eq!(summary.deferred.len(), 1);
    let transitions = transitions.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(transitions.first(), Some(&"open"));
    assert_eq!(transitions.last(), Some(&"closed"));
    assert_eq!(breaker.state(), CircuitState::Closed);
    Ok(())
}
