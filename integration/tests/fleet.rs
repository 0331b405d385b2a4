//! Fleet-wide breakers and budgets (`redress-redis`) against a real `redis-server`.
//!
//! Every test starts its own server and runs "instances" the way a fleet would: each on its
//! own OS thread with its own current-thread tokio runtime, its own reconnecting
//! `ConnectionManager`, its own [`Fleet`] (instance id `instance-<i>`) and its own breaker or
//! budget. The dependency is a fake whose failures the test controls, called through
//! `redress_tokio` (or the budget is driven directly where that states the property more
//! precisely). Sync interval [`INTERVAL`] (100 ms), exchange timeout [`TIMEOUT`] (50 ms).
//! Times are measured on the wall (monotonic) clock by the instances and by a watcher thread
//! that polls the breakers every millisecond; no sleep stands in for an assertion.
//!
//! | Test | Expected |
//! |------|----------|
//! | `a_failure_rate_breaker_trips_fleet_wide_within_two_intervals` | 4 instances × 12 failing calls, `min_throughput` 40: shared, every breaker opens within 2 × interval + timeout of the fleet's 40th failure, and no instance made 40 calls itself; not shared, the same load opens none (each counts 12 of 12) |
//! | `a_published_open_and_close_are_followed_within_one_interval` | consecutive breakers (decisions only): instance 0 opens alone; the others open within interval + timeout of its publication, with its open-until (± 5 ms), refuse calls without attempting them, and close within interval + timeout of its published close after its probe succeeded; none of them publishes |
//! | `a_shared_budget_caps_the_fleets_retries` | `rolling(100, 10 s)`, 4 instances withdrawing every 5 ms for 8 intervals with staggered sync phases: shared, 100 ≤ granted ≤ 100 + what the other three can withdraw in interval + timeout (3 × 31); not shared, exactly 4 × 100 |
//! | `killing_redis_loses_no_call_and_sharing_resumes` | calls continue through a `SIGKILL` of the server and its restart: started = completed, all succeed; each instance emits `Degraded` then `Resumed` (once each, no `StoreReset`: the AOF kept everything); afterwards each instance's merged fleet count equals the other instances' own withdrawals exactly, and Redis holds exactly the fleet's total |
//! | `an_unknown_state_version_is_ignored_with_an_event` | a `2 …` open written into the state key gives one `Ignored { reason: "2" }`, the breaker stays closed (generation 0) and admits every call; a garbled `1 …` is ignored too; a valid `1 …` open written the same way is followed (the control) |
//! | `a_flushed_store_is_detected_and_counts_are_pushed_again` | `FLUSHALL` while both instances hold counts (some not pushed yet): each emits one `StoreReset`; afterwards each merged count equals the other's own withdrawals exactly and Redis holds exactly the total (nothing lost, nothing pushed twice) |
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use redress::backoff::constant;
use redress::breaker::BreakerOutcome;
use redress::fleet::FleetBreakerCounts;
use redress::{
    Budget, CircuitBreaker, CircuitState, ErrorClass, Instant, Policy, Retry, SystemClock,
};
use redress_integration::{RedisServer, or_skip};
use redress_redis::{Fleet, SyncEvent, SyncHandle};
use tokio::sync::{Barrier, watch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The sync interval of every instance.
const INTERVAL: Duration = Duration::from_millis(100);
/// The exchange timeout: the longest a round trip can take before it counts as failed.
const TIMEOUT: Duration = Duration::from_millis(50);
/// How long a wait for something due within a few intervals may last before the test fails
/// (a safety net against hangs, not a bound under test).
const PATIENCE: Duration = Duration::from_secs(5);
/// The name every object is shared under.
const NAME: &str = "dependency";

/// Now on the time line of `redress_tokio` and of the fleet's default clock.
fn now() -> Instant {
    SystemClock::instant_from_std(StdInstant::now())
}

/// What the fake dependency fails with: `TimedOut`, classified `Transient`.
fn down() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::TimedOut)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What every test of this file starts with: its turn, its own Redis server, and an event
/// log. The tests run one at a time (each starts several instances with their own threads,
/// and timing bounds are checked, so they do not share the machine's two cores): keep
/// `_turn` bound until the test ends.
struct Setup {
    _turn: MutexGuard<'static, ()>,
    server: RedisServer,
    url: String,
    log: Log,
}

/// Waits for this test's turn and starts its server; `None` when the test is skipped.
fn setup() -> Result<Option<Setup>, BoxError> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = or_skip(RedisServer::start())? else {
        return Ok(None);
    };
    Ok(Some(Setup {
        _turn: turn,
        url: server.url(),
        server,
        log: Log::default(),
    }))
}

/// Every event of every instance, with when it was emitted.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(StdInstant, usize, SyncEvent)>>>);

impl Log {
    fn hook(&self, instance: usize) -> impl Fn(&SyncEvent) + Send + Sync + 'static {
        let log = self.clone();
        move |e| {
            log.0
                .lock()
                .unwrap()
                .push((StdInstant::now(), instance, e.clone()));
        }
    }

    /// The events of one instance, oldest first.
    fn of(&self, instance: usize) -> Vec<(StdInstant, SyncEvent)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, i, _)| *i == instance)
            .map(|(t, _, e)| (*t, e.clone()))
            .collect()
    }

    /// When `instance` first emitted an event matching `pred`.
    fn first(&self, instance: usize, pred: impl Fn(&SyncEvent) -> bool) -> Option<StdInstant> {
        self.of(instance)
            .into_iter()
            .find(|(_, e)| pred(e))
            .map(|(t, _)| t)
    }

    fn count(&self, instance: usize, pred: impl Fn(&SyncEvent) -> bool) -> usize {
        self.of(instance).iter().filter(|(_, e)| pred(e)).count()
    }
}

/// One instance's fleet: its own connection, its id, the test's interval and event log.
async fn fleet(
    url: &str,
    namespace: &str,
    instance: usize,
    log: &Log,
) -> Result<Fleet<ConnectionManager>, BoxError> {
    let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
    Ok(Fleet::builder(namespace)
        .interval(INTERVAL)
        .timeout(TIMEOUT)
        .instance_id(format!("instance-{instance}"))
        .on_event(log.hook(instance))
        .build(conn)?)
}

/// Starts `n` instances, each on its own thread with its own current-thread runtime running
/// `body(i)`.
fn spawn<T, F, Fut>(n: usize, body: F) -> Vec<JoinHandle<Result<T, BoxError>>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, BoxError>>,
    T: Send + 'static,
{
    let body = Arc::new(body);
    (0..n)
        .map(|i| {
            let body = Arc::clone(&body);
            std::thread::Builder::new()
                .name(format!("instance-{i}"))
                .spawn(move || block_on(body(i)))
                .expect("spawn an instance thread")
        })
        .collect()
}

/// The instances' results in order; an instance's panic is the test's.
fn join<T>(handles: Vec<JoinHandle<Result<T, BoxError>>>) -> Result<Vec<T>, BoxError> {
    let mut out = Vec::new();
    for h in handles {
        match h.join() {
            Ok(r) => out.push(r?),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    Ok(out)
}

/// Waits (on an instance's runtime, so its sync task keeps running) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) -> Result<(), BoxError> {
    let start = StdInstant::now();
    while !cond() {
        if start.elapsed() > PATIENCE {
            return Err(format!("not within {PATIENCE:?}: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// [`until`] for the test's own thread.
fn until_blocking(what: &str, cond: impl Fn() -> bool) -> Result<(), BoxError> {
    let start = StdInstant::now();
    while !cond() {
        if start.elapsed() > PATIENCE {
            return Err(format!("not within {PATIENCE:?}: {what}").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Watches `breakers` from a plain thread every millisecond until each satisfied `pred`
/// once (or [`PATIENCE`] ran out): when each first did.
fn watch_breakers(
    breakers: Vec<Arc<CircuitBreaker>>,
    pred: fn(&CircuitBreaker) -> bool,
) -> JoinHandle<Vec<Option<StdInstant>>> {
    std::thread::spawn(move || {
        let start = StdInstant::now();
        let mut seen = vec![None; breakers.len()];
        while seen.iter().any(Option::is_none) && start.elapsed() < PATIENCE {
            for (s, b) in seen.iter_mut().zip(&breakers) {
                if s.is_none() && pred(b) {
                    *s = Some(StdInstant::now());
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    })
}

/// Runs `body` to completion on a current-thread runtime of the calling thread.
fn block_on<T>(body: impl Future<Output = Result<T, BoxError>>) -> Result<T, BoxError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(body)
}

/// A plain connection to a test's server, to read and write keys by hand.
fn redis_conn(url: &str) -> Result<redis::Connection, BoxError> {
    Ok(redis::Client::open(url)?.get_connection()?)
}

/// A key of the object shared under [`NAME`] in `namespace`, as redress-redis names it.
fn key(namespace: &str, rest: &str) -> String {
    format!("redress:{{{namespace}:{NAME}}}:{rest}")
}

fn wall_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

// ----- 1. failure-rate breaker: the fleet's evidence trips every instance ---------------

const TRIP_INSTANCES: usize = 4;
/// Failing calls each instance makes: 3 instances' worth (36) stay under `MIN_THROUGHPUT`.
const TRIP_CALLS: usize = 12;
const MIN_THROUGHPUT: usize = 40;
const TRIP_CALL_EVERY: Duration = Duration::from_millis(20);

struct TripRun {
    /// Calls of each instance that reached the dependency.
    attempts: Vec<usize>,
    breakers: Vec<Arc<CircuitBreaker>>,
    /// When the fleet's 40th failure was recorded.
    crossed: Option<StdInstant>,
    /// When each breaker was first seen open (shared runs).
    opened: Vec<Option<StdInstant>>,
    /// Failing calls recorded when the first breaker was seen open (shared runs).
    recorded_at_first_open: Option<usize>,
}

fn trip_run(url: Option<String>, log: &Log) -> Result<TripRun, BoxError> {
    let breakers: Vec<Arc<CircuitBreaker>> = (0..TRIP_INSTANCES)
        .map(|_| {
            CircuitBreaker::failure_rate(0.5, MIN_THROUGHPUT as u32, Duration::from_secs(10))
                .recovery(Duration::from_secs(30))
                .build()
                .map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    let recorded = Arc::new(AtomicUsize::new(0));
    let crossed = Arc::new(OnceLock::new());
    let start = Arc::new(Barrier::new(TRIP_INSTANCES));
    let shared = url.is_some();
    let watcher =
        shared.then(|| watch_breakers(breakers.clone(), |b| b.state() == CircuitState::Open));
    // Reads the fleet's recorded failures once the first breaker is seen open: a trip on
    // double-counted evidence would come before the fleet really failed `MIN_THROUGHPUT`
    // times. Seen late, the count is only larger, so a loaded machine cannot fail this.
    let first_open = shared.then(|| {
        let (breakers, recorded) = (breakers.clone(), recorded.clone());
        std::thread::spawn(move || {
            let start = StdInstant::now();
            while start.elapsed() < PATIENCE {
                if breakers.iter().any(|b| b.state() == CircuitState::Open) {
                    return Some(recorded.load(Ordering::SeqCst));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        })
    });
    let handles = spawn(TRIP_INSTANCES, {
        let (breakers, recorded, crossed, log) = (
            breakers.clone(),
            recorded.clone(),
            crossed.clone(),
            log.clone(),
        );
        move |i| {
            let (breakers, recorded, crossed, log, start, url) = (
                breakers.clone(),
                recorded.clone(),
                crossed.clone(),
                log.clone(),
                start.clone(),
                url.clone(),
            );
            async move {
                let breaker = breakers[i].clone();
                let _sync: Option<SyncHandle> = match &url {
                    Some(url) => Some(
                        fleet(url, "trip", i, &log)
                            .await?
                            .share_breaker(NAME, breaker.clone())?,
                    ),
                    None => None,
                };
                let policy = Policy::builder()
                    .retry(Retry::builder().max_attempts(1))
                    .breaker(breaker.clone())
                    .build()?;
                start.wait().await;
                let mut ticker = tokio::time::interval(TRIP_CALL_EVERY);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut attempts = 0;
                for _ in 0..TRIP_CALLS {
                    ticker.tick().await;
                    let mut reached = false;
                    let r: Result<(), _> = redress_tokio::call(&policy, async |_| {
                        reached = true;
                        Err::<(), _>(down())
                    })
                    .await;
                    let e = r.expect_err("the dependency is down");
                    if reached {
                        attempts += 1;
                        if recorded.fetch_add(1, Ordering::SeqCst) + 1 == MIN_THROUGHPUT {
                            let _ = crossed.set(StdInstant::now());
                        }
                    } else {
                        assert!(e.is_circuit_open() && e.attempts() == 0, "{e}");
                    }
                }
                if url.is_some() {
                    // Keep sharing until the whole fleet is open.
                    until("every breaker open", || {
                        breakers.iter().all(|b| b.state() == CircuitState::Open)
                    })
                    .await?;
                }
                Ok(attempts)
            }
        }
    });
    let attempts = join(handles)?;
    let opened = match watcher {
        Some(w) => w.join().expect("watcher"),
        None => vec![None; TRIP_INSTANCES],
    };
    let recorded_at_first_open = first_open.and_then(|w| w.join().expect("watcher"));
    Ok(TripRun {
        attempts,
        breakers,
        crossed: crossed.get().copied(),
        opened,
        recorded_at_first_open,
    })
}

#[test]
fn a_failure_rate_breaker_trips_fleet_wide_within_two_intervals() -> Result<(), BoxError> {
    let Some(Setup {
        _turn, server, log, ..
    }) = setup()?
    else {
        return Ok(());
    };

    // Shared: the fleet's failures trip every instance.
    let run = trip_run(Some(server.url()), &log)?;
    let crossed = run.crossed.ok_or("the fleet never recorded 40 failures")?;
    // Not before the fleet's evidence: each instance has at most one failing call whose
    // failure its breaker saw before the test counted it.
    let at_open = run
        .recorded_at_first_open
        .ok_or("no breaker was seen open")?;
    assert!(
        at_open + TRIP_INSTANCES >= MIN_THROUGHPUT,
        "a breaker opened after only {at_open} failures"
    );
    let bound = INTERVAL * 2 + TIMEOUT;
    let mut report = Vec::new();
    for (i, (opened, attempts)) in run.opened.iter().zip(&run.attempts).enumerate() {
        assert!(
            *attempts < MIN_THROUGHPUT,
            "instance {i} made {attempts} calls itself"
        );
        let opened = opened.ok_or(format!("instance {i} never opened"))?;
        let after = opened.saturating_duration_since(crossed);
        report.push(format!(
            "instance-{i}: {attempts} calls, open {:.1} ms after the crossing",
            ms(after)
        ));
        assert!(
            after <= bound,
            "instance {i} opened {after:?} after the fleet crossed the threshold (bound {bound:?})"
        );
    }
    let total: usize = run.attempts.iter().sum();
    println!(
        "shared: {total} failing calls reached the dependency; bound {bound:?}\n  {}",
        report.join("\n  ")
    );
    assert!(total >= MIN_THROUGHPUT);
    let tripped: usize = (0..TRIP_INSTANCES)
        .map(|i| log.count(i, |e| matches!(e, SyncEvent::FleetTripped { .. })))
        .sum();
    println!("  FleetTripped events: {tripped}");

    // Not shared: the same load opens no breaker; each saw only its own 12 failures.
    let run = trip_run(None, &log)?;
    for (i, b) in run.breakers.iter().enumerate() {
        assert_eq!(b.state(), CircuitState::Closed, "instance {i}");
        assert_eq!(
            b.window_counts(now()),
            (TRIP_CALLS as u64, TRIP_CALLS as u64),
            "instance {i}"
        );
    }
    assert_eq!(run.attempts, vec![TRIP_CALLS; TRIP_INSTANCES]);
    println!(
        "not shared: {} failing calls, no breaker open",
        run.attempts.iter().sum::<usize>()
    );
    Ok(())
}

// ----- 2. a decision published by one instance is followed by the others --------------

const FOLLOW_INSTANCES: usize = 4;
const RECOVERY: Duration = Duration::from_secs(1);

#[test]
fn a_published_open_and_close_are_followed_within_one_interval() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        server: _server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    let breakers: Vec<Arc<CircuitBreaker>> = (0..FOLLOW_INSTANCES)
        .map(|_| {
            CircuitBreaker::consecutive(3, Duration::from_secs(10))
                .recovery(RECOVERY)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    // Instance 0's local open: when, and until when.
    let opened_at: Arc<OnceLock<(StdInstant, Instant)>> = Arc::new(OnceLock::new());
    let closed_at: Arc<OnceLock<StdInstant>> = Arc::new(OnceLock::new());
    let start = Arc::new(Barrier::new(FOLLOW_INSTANCES));
    let opens = watch_breakers(breakers.clone(), |b| b.state() == CircuitState::Open);
    // Closed again after having opened (generation 1 is the open).
    let closes = watch_breakers(breakers.clone(), |b| {
        b.generation() >= 2 && b.state() == CircuitState::Closed
    });
    let handles = spawn(FOLLOW_INSTANCES, {
        let (breakers, opened_at, closed_at, log) = (
            breakers.clone(),
            opened_at.clone(),
            closed_at.clone(),
            log.clone(),
        );
        move |i| {
            let (breakers, opened_at, closed_at, log, start, url) = (
                breakers.clone(),
                opened_at.clone(),
                closed_at.clone(),
                log.clone(),
                start.clone(),
                url.clone(),
            );
            async move {
                let breaker = breakers[i].clone();
                let _sync = fleet(&url, "follow", i, &log)
                    .await?
                    .share_breaker(NAME, breaker.clone())?;
                let policy = Policy::builder()
                    .retry(Retry::builder().max_attempts(1))
                    .breaker(breaker.clone())
                    .build()?;
                start.wait().await;
                let all = |state: CircuitState| breakers.iter().all(|b| b.state() == state);
                if i == 0 {
                    // The dependency is down for this instance only: three failures open it.
                    for _ in 0..3 {
                        let r: Result<(), _> =
                            redress_tokio::call(&policy, async |_| Err::<(), _>(down())).await;
                        assert_eq!(r.expect_err("down").attempts(), 1);
                    }
                    assert_eq!(breaker.state(), CircuitState::Open);
                    let until_0 = breaker
                        .snapshot(now())
                        .open_until
                        .ok_or("open without an until")?;
                    let _ = opened_at.set((StdInstant::now(), until_0));
                    until("the others follow the open", || all(CircuitState::Open)).await?;
                    // After the recovery time the dependency is back: the probe closes it.
                    tokio::time::sleep_until(SystemClock::std_from_instant(until_0).into()).await;
                    let r: Result<(), _> =
                        redress_tokio::call(&policy, async |_| Ok::<(), std::io::Error>(())).await;
                    r?;
                    assert_eq!(breaker.state(), CircuitState::Closed);
                    let _ = closed_at.set(StdInstant::now());
                    until("the others follow the close", || all(CircuitState::Closed)).await?;
                    Ok(None)
                } else {
                    // The others' dependency is fine.
                    for _ in 0..3 {
                        let r: Result<(), _> =
                            redress_tokio::call(&policy, async |_| Ok::<(), std::io::Error>(()))
                                .await;
                        r?;
                    }
                    until("this instance follows the open", || {
                        breaker.state() == CircuitState::Open
                    })
                    .await?;
                    let until_i = breaker
                        .snapshot(now())
                        .open_until
                        .ok_or("open without an until")?;
                    // Following, it refuses calls without attempting them.
                    let mut reached = false;
                    let r: Result<(), _> = redress_tokio::call(&policy, async |_| {
                        reached = true;
                        Ok::<(), std::io::Error>(())
                    })
                    .await;
                    let e = r.expect_err("an open breaker refuses");
                    assert!(e.is_circuit_open() && e.attempts() == 0 && !reached, "{e}");
                    until("this instance follows the close", || {
                        breaker.state() == CircuitState::Closed
                    })
                    .await?;
                    Ok(Some(until_i))
                }
            }
        }
    });
    let untils = join(handles)?;
    let opens = opens.join().expect("watcher");
    let closes = closes.join().expect("watcher");
    let (opened_0, until_0) = *opened_at.get().ok_or("instance 0 never opened")?;
    let closed_0 = *closed_at.get().ok_or("instance 0 never closed")?;
    let published = |state: CircuitState| {
        log.first(
            0,
            |e| matches!(e, SyncEvent::Published { state: s, .. } if *s == state),
        )
    };
    let published_open = published(CircuitState::Open).ok_or("no open published")?;
    let published_close = published(CircuitState::Closed).ok_or("no close published")?;
    println!(
        "instance-0: opened locally, published {:.1} ms later; probe closed it, published {:.1} ms later",
        ms(published_open - opened_0),
        ms(published_close - closed_0)
    );
    let bound = INTERVAL + TIMEOUT;
    for i in 1..FOLLOW_INSTANCES {
        let opened = opens[i].ok_or(format!("instance {i} never opened"))?;
        let closed = closes[i].ok_or(format!("instance {i} never closed"))?;
        let until_i = untils[i].ok_or("no until")?;
        let skew = if until_i >= until_0 {
            until_i - until_0
        } else {
            until_0 - until_i
        };
        let open_lag = opened.saturating_duration_since(published_open);
        let close_lag = closed.saturating_duration_since(published_close);
        println!(
            "instance-{i}: open {:.1} ms after the publication ({:.1} ms after the local open), \
             until differs by {:.3} ms; closed {:.1} ms after the published close",
            ms(open_lag),
            ms(opened.saturating_duration_since(opened_0)),
            ms(skew),
            ms(close_lag)
        );
        assert!(open_lag <= bound, "instance {i}: open {open_lag:?} late");
        assert!(close_lag <= bound, "instance {i}: close {close_lag:?} late");
        assert!(
            skew <= Duration::from_millis(5),
            "instance {i}: open until {until_i:?}, instance 0's {until_0:?}"
        );
        let followed: Vec<(CircuitState, String)> = log
            .of(i)
            .into_iter()
            .filter_map(|(_, e)| match e {
                SyncEvent::Followed { state, by, .. } => Some((state, by)),
                _ => None,
            })
            .collect();
        assert_eq!(
            followed,
            vec![
                (CircuitState::Open, "instance-0".to_owned()),
                (CircuitState::Closed, "instance-0".to_owned())
            ],
            "instance {i}"
        );
        assert_eq!(
            log.count(i, |e| matches!(e, SyncEvent::Published { .. })),
            0,
            "instance {i} republished what it followed"
        );
    }
    Ok(())
}

// ----- 3. a shared budget caps the fleet's retries --------------------------------------

const BUDGET_INSTANCES: usize = 4;
const BUDGET_CAP: u32 = 100;
const WITHDRAW_EVERY: Duration = Duration::from_millis(5);
const BUDGET_RUN: Duration = Duration::from_millis(800);

/// Withdrawals each instance was granted.
fn budget_run(url: Option<String>, log: &Log) -> Result<Vec<u64>, BoxError> {
    let start = Arc::new(Barrier::new(BUDGET_INSTANCES));
    let log = log.clone();
    let handles = spawn(BUDGET_INSTANCES, move |i| {
        let (start, url, log) = (start.clone(), url.clone(), log.clone());
        async move {
            let budget = Arc::new(Budget::rolling(BUDGET_CAP, Duration::from_secs(10)).build()?);
            let _sync = match &url {
                Some(url) => {
                    // Staggered sync phases, as in a fleet whose instances started apart.
                    tokio::time::sleep(INTERVAL * i as u32 / BUDGET_INSTANCES as u32).await;
                    Some(
                        fleet(url, "budget", i, &log)
                            .await?
                            .share_budget(NAME, budget.clone())?,
                    )
                }
                None => None,
            };
            start.wait().await;
            let began = StdInstant::now();
            let mut ticker = tokio::time::interval(WITHDRAW_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut granted = 0u64;
            while began.elapsed() < BUDGET_RUN {
                ticker.tick().await;
                granted += u64::from(budget.withdraw(now(), ErrorClass::Transient));
            }
            Ok(granted)
        }
    });
    join(handles)
}

#[test]
fn a_shared_budget_caps_the_fleets_retries() -> Result<(), BoxError> {
    let Some(Setup {
        _turn, server, log, ..
    }) = setup()?
    else {
        return Ok(());
    };
    let cap = u64::from(BUDGET_CAP);
    // The documented overshoot: what the other instances withdraw in one interval (plus
    // the round trip, at most TIMEOUT). One instance withdraws at most once per
    // WITHDRAW_EVERY (the ticker delays, never bursts), so at most 150 / 5 + 1 = 31 times
    // in INTERVAL + TIMEOUT: the tolerance is 3 × 31 = 93. The split of the remainder
    // between instances keeps the real overshoot well under it (about 30 here, most of it
    // in the first interval, while the instances' first exchanges do not yet count all four).
    let per_interval =
        (INTERVAL + TIMEOUT).as_millis() as u64 / WITHDRAW_EVERY.as_millis() as u64 + 1;
    let tolerance = (BUDGET_INSTANCES as u64 - 1) * per_interval;

    let granted = budget_run(Some(server.url()), &log)?;
    let total: u64 = granted.iter().sum();
    println!(
        "shared: granted {granted:?} = {total} (cap {cap}, tolerance {tolerance}: up to {})",
        cap + tolerance
    );
    assert!(total >= cap, "the fleet got less than its cap: {total}");
    assert!(total <= cap + tolerance, "the fleet overspent: {total}");

    let granted = budget_run(None, &log)?;
    println!("not shared: granted {granted:?}");
    assert_eq!(granted, vec![cap; BUDGET_INSTANCES]);
    Ok(())
}

// ----- 4. a server crash: no call lost, degraded, resumed, sharing again ----------------

const OUTAGE_INSTANCES: usize = 4;
const OUTAGE_CALL_EVERY: Duration = Duration::from_millis(10);
/// The safety net of one call: a call that takes this long has hung.
const CALL_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct OutageCounts {
    started: u64,
    completed: u64,
    during_outage: u64,
    slowest: Duration,
    own: u64,
    fleet: Option<u64>,
}

/// The withdrawals in an instance's own snapshot (its own counts, not the fleet's).
fn own_withdrawals(budget: &Budget) -> u64 {
    budget
        .snapshot(now())
        .buckets
        .iter()
        .map(|b| b.withdrawn)
        .sum()
}

/// The withdrawals Redis holds for the shared budget of `namespace`.
fn stored_withdrawals(url: &str, namespace: &str) -> Result<u64, BoxError> {
    let mut conn = redis_conn(url)?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(key(namespace, "budget:v1:*"))
        .query(&mut conn)?;
    let mut sum = 0;
    for k in keys {
        let w: Option<u64> = redis::cmd("HGET").arg(&k).arg("w").query(&mut conn)?;
        sum += w.unwrap_or(0);
    }
    Ok(sum)
}

#[test]
fn killing_redis_loses_no_call_and_sharing_resumes() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        mut server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    let outage = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let handles =
        spawn(OUTAGE_INSTANCES, {
            let (url, log, outage) = (url.clone(), log.clone(), outage.clone());
            move |i| {
                let (url, log, outage, mut stop) =
                    (url.clone(), log.clone(), outage.clone(), stop_rx.clone());
                async move {
                    let budget =
                        Arc::new(Budget::rolling(100_000, Duration::from_secs(10)).build()?);
                    let sync = fleet(&url, "outage", i, &log)
                        .await?
                        .share_budget(NAME, budget.clone())?;
                    let policy = Policy::builder()
                        .retry(
                            Retry::builder()
                                .max_attempts(3)
                                .strategy(constant(Duration::from_millis(1)))
                                .budget(budget.clone()),
                        )
                        .build()?;
                    let mut c = OutageCounts {
                        started: 0,
                        completed: 0,
                        during_outage: 0,
                        slowest: Duration::ZERO,
                        own: 0,
                        fleet: None,
                    };
                    let mut ticker = tokio::time::interval(OUTAGE_CALL_EVERY);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !*stop.borrow_and_update() {
                        ticker.tick().await;
                        c.started += 1;
                        c.during_outage += u64::from(outage.load(Ordering::SeqCst));
                        let began = StdInstant::now();
                        // The first attempt fails and the retry succeeds: one withdrawal a call.
                        let call = redress_tokio::call(&policy, async |a| {
                            if a.n == 1 { Err(down()) } else { Ok(()) }
                        });
                        if let Ok(r) = tokio::time::timeout(CALL_LIMIT, call).await {
                            r?;
                            c.completed += 1;
                        }
                        c.slowest = c.slowest.max(began.elapsed());
                    }
                    // Every instance pushes its last counts within an interval and reads the
                    // others' within the next: three exchanges in a row that succeed, however
                    // slow a loaded machine makes some of them.
                    let settled = sync.status().exchanges + 3;
                    until("three more exchanges, the last one successful", || {
                        let s = sync.status();
                        s.exchanges >= settled && !s.degraded
                    })
                    .await?;
                    tokio::time::sleep(INTERVAL * 2).await;
                    until("the last exchange successful", || !sync.status().degraded).await?;
                    c.own = own_withdrawals(&budget);
                    c.fleet = budget.fleet(now()).map(|f| f.withdrawn);
                    Ok(c)
                }
            }
        });

    std::thread::sleep(INTERVAL * 3);
    // Taken before the kill and the restart: an instance may notice either before the
    // harness returns (`kill` waits for the process to exit, `start_again` for a PONG).
    let killed = StdInstant::now();
    outage.store(true, Ordering::SeqCst);
    server.kill();
    std::thread::sleep(INTERVAL * 6);
    let restarted = StdInstant::now();
    server.start_again()?;
    outage.store(false, Ordering::SeqCst);
    until_blocking("every instance resumes", || {
        (0..OUTAGE_INSTANCES).all(|i| {
            log.first(i, |e| matches!(e, SyncEvent::Resumed { .. }))
                .is_some()
        })
    })?;
    std::thread::sleep(INTERVAL * 3);
    stop_tx.send(true)?;
    let counts = join(handles)?;

    let total: u64 = counts.iter().map(|c| c.own).sum();
    for (i, c) in counts.iter().enumerate() {
        let events: Vec<(StdInstant, SyncEvent)> = log.of(i);
        let degraded = log
            .first(i, |e| matches!(e, SyncEvent::Degraded { .. }))
            .ok_or(format!("instance {i} never degraded"))?;
        let resumed = log
            .first(i, |e| matches!(e, SyncEvent::Resumed { .. }))
            .ok_or(format!("instance {i} never resumed"))?;
        println!(
            "instance-{i}: {} calls ({} during the outage), slowest {:.1} ms; degraded {:.1} ms \
             after the kill, resumed {:.1} ms after the restart; own {} withdrawals, fleet's \
             others {:?}",
            c.started,
            c.during_outage,
            ms(c.slowest),
            ms(degraded.saturating_duration_since(killed)),
            ms(resumed.saturating_duration_since(restarted)),
            c.own,
            c.fleet
        );
        assert_eq!(
            c.started, c.completed,
            "instance {i}: calls did not complete"
        );
        assert!(
            c.during_outage > 0,
            "instance {i} made no call in the outage"
        );
        assert_eq!(c.own, c.completed, "one withdrawal per call");
        let kinds: Vec<&'static str> = events
            .iter()
            .map(|(_, e)| match e {
                SyncEvent::Degraded { .. } => "degraded",
                SyncEvent::Resumed { .. } => "resumed",
                SyncEvent::StoreReset { .. } => "store reset",
                _ => "other",
            })
            .collect();
        // One Degraded/Resumed pair for the outage. A slow fsync on a loaded machine may add
        // a pair outside it, never anything else.
        assert!(
            kinds.chunks(2).all(|pair| pair == ["degraded", "resumed"]),
            "instance {i}: {kinds:?}"
        );
        // Degraded through the outage: the last event before the restart is a Degraded.
        // (It may come just before the kill, when an exchange slowed by a loaded machine
        // times out and the store dies before the next one: then the instance is degraded
        // from before the outage to after it, one pair.)
        assert!(
            matches!(
                events.iter().rfind(|(t, _)| *t <= restarted),
                Some((_, SyncEvent::Degraded { .. }))
            ),
            "instance {i}: not degraded when the store came back: {kinds:?}"
        );
        assert!(
            events
                .last()
                .is_some_and(|(t, e)| matches!(e, SyncEvent::Resumed { .. }) && *t >= restarted),
            "instance {i}: not resumed after the restart"
        );
        let _ = (degraded, resumed);
        assert_eq!(
            c.fleet,
            Some(total - c.own),
            "instance {i}: the others' withdrawals, merged after the restart"
        );
    }
    let stored = stored_withdrawals(&url, "outage")?;
    println!("redis holds {stored} withdrawals; the instances made {total}");
    assert_eq!(stored, total);
    Ok(())
}

// ----- 5. a state of an unknown format version is ignored --------------------------------

#[test]
fn an_unknown_state_version_is_ignored_with_an_event() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        server: _server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    let breaker = Arc::new(
        CircuitBreaker::failure_rate(0.5, 10, Duration::from_secs(10))
            .recovery(Duration::from_secs(30))
            .build()?,
    );
    let refused = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let handles = spawn(1, {
        let (url, log, breaker, refused, calls) = (
            url.clone(),
            log.clone(),
            breaker.clone(),
            refused.clone(),
            calls.clone(),
        );
        move |i| {
            let (url, log, breaker, refused, calls, mut stop) = (
                url.clone(),
                log.clone(),
                breaker.clone(),
                refused.clone(),
                calls.clone(),
                stop_rx.clone(),
            );
            async move {
                let _sync = fleet(&url, "versions", i, &log)
                    .await?
                    .share_breaker(NAME, breaker.clone())?;
                let policy = Policy::builder()
                    .retry(Retry::builder().max_attempts(1))
                    .breaker(breaker.clone())
                    .build()?;
                while !*stop.borrow_and_update() {
                    let r: Result<(), _> =
                        redress_tokio::call(&policy, async |_| Ok::<(), std::io::Error>(())).await;
                    calls.fetch_add(1, Ordering::SeqCst);
                    if r.is_err() {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(())
            }
        }
    });

    let mut conn = redis_conn(&url)?;
    let state_key = key("versions", "breaker:state");
    let ignored = |log: &Log| -> Vec<String> {
        log.of(0)
            .into_iter()
            .filter_map(|(_, e)| match e {
                SyncEvent::Ignored { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    };
    // A later format's open, far in the future: followed, it would open the breaker.
    let v2 = format!("2 7 open {} instance-v2", wall_ms() + 60_000);
    redis::cmd("SET")
        .arg(&state_key)
        .arg(&v2)
        .query::<()>(&mut conn)?;
    until_blocking("an Ignored event", || !ignored(&log).is_empty())?;
    // Several more exchanges read the same state: reported once, never followed.
    std::thread::sleep(INTERVAL * 3);
    assert_eq!(ignored(&log), ["2"]);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.generation(), 0);
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    let stored: String = redis::cmd("GET").arg(&state_key).query(&mut conn)?;
    assert_eq!(stored, v2, "the instance wrote over the unknown state");

    // Unreadable text in this format is ignored too.
    redis::cmd("SET")
        .arg(&state_key)
        .arg("1 x open soon instance-v1")
        .query::<()>(&mut conn)?;
    until_blocking("a second Ignored event", || ignored(&log).len() == 2)?;
    std::thread::sleep(INTERVAL * 2);
    assert_eq!(ignored(&log), ["2", "1 x open soon instance-v1"]);
    assert_eq!(
        (breaker.state(), breaker.generation()),
        (CircuitState::Closed, 0)
    );
    assert_eq!(refused.load(Ordering::SeqCst), 0);

    // The control: the same write in this format is followed.
    let seq: u64 = redis::cmd("INCR")
        .arg(key("versions", "breaker:seq"))
        .query(&mut conn)?;
    redis::cmd("SET")
        .arg(&state_key)
        .arg(format!(
            "1 {seq} open {} instance-other",
            wall_ms() + 60_000
        ))
        .query::<()>(&mut conn)?;
    until_blocking("the v1 open is followed", || {
        breaker.state() == CircuitState::Open
    })?;
    stop_tx.send(true)?;
    join(handles)?;
    println!(
        "{} calls admitted while the unknown states were stored; then the v1 open was followed",
        calls.load(Ordering::SeqCst) - refused.load(Ordering::SeqCst)
    );
    assert!(log.of(0).iter().any(|(_, e)| matches!(
        e,
        SyncEvent::Followed { state: CircuitState::Open, by, .. } if by == "instance-other"
    )));
    Ok(())
}

// ----- 6. a store that lost its data ------------------------------------------------------

/// Withdrawals of each instance before the flush (pushed), and right around it (not pushed).
const BEFORE_FLUSH: [u64; 2] = [5, 7];
const AROUND_FLUSH: [u64; 2] = [3, 4];

#[test]
fn a_flushed_store_is_detected_and_counts_are_pushed_again() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        server: _server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    // Instance 0 shares first (so its token becomes the store's incarnation), instance 1
    // half an interval after its first exchange, so their exchanges alternate.
    let (first_tx, first_rx) = watch::channel(false);
    let (flushed_tx, flushed_rx) = watch::channel(false);
    let (flush_tx, flush_rx) = std::sync::mpsc::channel::<()>();
    let flush_tx = Arc::new(Mutex::new(flush_tx));
    let both = Arc::new(Barrier::new(2));
    let first_tx = Arc::new(first_tx);
    let handles = spawn(2, {
        let (url, log) = (url.clone(), log.clone());
        move |i| {
            let (url, log, first_tx, mut first_rx, mut flushed_rx, flush_tx, both) = (
                url.clone(),
                log.clone(),
                first_tx.clone(),
                first_rx.clone(),
                flushed_rx.clone(),
                flush_tx.clone(),
                both.clone(),
            );
            async move {
                let budget = Arc::new(Budget::rolling(1000, Duration::from_secs(10)).build()?);
                let fleet = fleet(&url, "flush", i, &log).await?;
                if i == 1 {
                    first_rx.wait_for(|f| *f).await?;
                    tokio::time::sleep(INTERVAL / 2).await;
                }
                let sync = fleet.share_budget(NAME, budget.clone())?;
                if i == 0 {
                    until("the first exchange", || sync.status().exchanges >= 1).await?;
                    first_tx.send(true)?;
                }
                let withdraw = |n: u64| {
                    for _ in 0..n {
                        assert!(budget.withdraw(now(), ErrorClass::Transient));
                    }
                };
                let others = |n: u64| budget.fleet(now()).is_some_and(|f| f.withdrawn == n);
                withdraw(BEFORE_FLUSH[i]);
                until("the other's first withdrawals", || {
                    others(BEFORE_FLUSH[1 - i])
                })
                .await?;
                both.wait().await;
                if i == 1 {
                    // Right after this instance's exchange: its new withdrawals wait for the
                    // next one, and instance 0's exchange, half an interval later, is the
                    // first to meet the flushed store.
                    let n = sync.status().exchanges;
                    until("an exchange", || sync.status().exchanges > n).await?;
                    withdraw(AROUND_FLUSH[1]);
                    flush_tx.lock().unwrap().send(())?;
                    flushed_rx.wait_for(|f| *f).await?;
                } else {
                    flushed_rx.wait_for(|f| *f).await?;
                    withdraw(AROUND_FLUSH[0]);
                }
                until("a StoreReset event", || {
                    log.first(i, |e| matches!(e, SyncEvent::StoreReset { .. }))
                        .is_some()
                })
                .await?;
                let expected = BEFORE_FLUSH[1 - i] + AROUND_FLUSH[1 - i];
                until("the other's withdrawals again", || {
                    budget.fleet(now()).is_some_and(|f| f.withdrawn >= expected)
                })
                .await?;
                // Nothing more arrives later: nothing was pushed twice.
                tokio::time::sleep(INTERVAL * 3).await;
                let seen = budget.fleet(now()).map(|f| f.withdrawn);
                assert_eq!(
                    seen,
                    Some(expected),
                    "instance {i}: the other's withdrawals"
                );
                Ok((own_withdrawals(&budget), seen))
            }
        }
    });
    flush_rx.recv_timeout(PATIENCE)?;
    let mut conn = redis_conn(&url)?;
    redis::cmd("FLUSHALL").query::<()>(&mut conn)?;
    flushed_tx.send(true)?;
    let seen = join(handles)?;
    println!("after the flush: (own, the other's as merged) {seen:?}");
    for i in 0..2 {
        assert_eq!(
            log.count(i, |e| matches!(e, SyncEvent::StoreReset { .. })),
            1,
            "instance {i}"
        );
    }
    let total: u64 = BEFORE_FLUSH.iter().chain(&AROUND_FLUSH).sum();
    assert_eq!(seen.iter().map(|(own, _)| own).sum::<u64>(), total);
    assert_eq!(stored_withdrawals(&url, "flush")?, total);
    Ok(())
}

// ----- 7. a breaker's counts start again at every fleet-wide transition -----------------

/// Fills the failure-rate breaker buckets of `namespace` around now with `failures` of as
/// many calls, marked as belonging to the fleet's transition `seq`, and sets the fleet's
/// current transition to `current`.
fn seed_breaker_buckets(
    url: &str,
    namespace: &str,
    failures: u64,
    seq: u64,
    current: u64,
) -> Result<(), BoxError> {
    let mut conn = redis_conn(url)?;
    let base = key(namespace, "breaker");
    // Window 10 s in 10 buckets: 1000 ms wide.
    let newest = wall_ms() / 1000;
    for bucket in newest - 3..=newest + 1 {
        redis::cmd("HSET")
            .arg(format!("{base}:v1:1000:{bucket}"))
            .arg("f")
            .arg(failures)
            .arg("c")
            .arg(failures)
            .arg("s")
            .arg(seq)
            .exec(&mut conn)?;
    }
    redis::cmd("SET")
        .arg(format!("{base}:seq"))
        .arg(current)
        .exec(&mut conn)?;
    Ok(())
}

#[test]
fn counts_from_before_a_fleet_transition_are_not_counted() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        server: _server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    block_on(async {
        let breaker = || -> Result<Arc<CircuitBreaker>, BoxError> {
            Ok(Arc::new(
                CircuitBreaker::failure_rate(0.5, 10, Duration::from_secs(10)).build()?,
            ))
        };
        // Counts of transition 0 while the fleet is at transition 1: emptied, not merged.
        seed_breaker_buckets(&url, "stale", 50, 0, 1)?;
        let stale = breaker()?;
        let _sync = fleet(&url, "stale", 0, &log)
            .await?
            .share_breaker(NAME, stale.clone())?;
        until("a merge", || stale.fleet(now()).is_some()).await?;
        assert_eq!(
            stale.fleet(now()),
            Some(FleetBreakerCounts::default()),
            "the old transition's failures were merged"
        );
        assert_eq!(stale.state(), CircuitState::Closed);

        // The same counts under the current transition are the fleet's evidence: it trips.
        seed_breaker_buckets(&url, "current", 50, 1, 1)?;
        let current = breaker()?;
        let _sync = fleet(&url, "current", 1, &log)
            .await?
            .share_breaker(NAME, current.clone())?;
        until("the fleet's failures trip it", || {
            current.state() == CircuitState::Open
        })
        .await?;
        assert_eq!(
            log.count(1, |e| matches!(e, SyncEvent::FleetTripped { .. })),
            1
        );
        Ok(())
    })
}

// ----- 8. a store that lost its latest writes -------------------------------------------

/// Sets the breaker state and sequence number of `namespace` as a store that lost its
/// latest writes would hold them, and forgets who published what.
fn roll_back(url: &str, namespace: &str, state: &str, seq: u64) -> Result<(), BoxError> {
    let mut conn = redis_conn(url)?;
    let base = key(namespace, "breaker");
    redis::cmd("SET")
        .arg(format!("{base}:state"))
        .arg(state)
        .exec(&mut conn)?;
    redis::cmd("SET")
        .arg(format!("{base}:seq"))
        .arg(seq)
        .exec(&mut conn)?;
    redis::cmd("DEL")
        .arg(format!("{base}:published"))
        .exec(&mut conn)?;
    Ok(())
}

fn stored_state(url: &str, namespace: &str) -> Result<String, BoxError> {
    let mut conn = redis_conn(url)?;
    let state: Option<String> = redis::cmd("GET")
        .arg(key(namespace, "breaker:state"))
        .query(&mut conn)?;
    Ok(state.unwrap_or_default())
}

#[test]
fn a_store_that_lost_its_latest_writes_is_not_followed_back_in_time() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        server: _server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    block_on(async {
        let ns = "rollback";
        // The fleet's history so far: another instance's close, transition 1.
        let old_close = "1 1 close gone.0000";
        roll_back(&url, ns, old_close, 1)?;
        let breaker = || -> Result<Arc<CircuitBreaker>, BoxError> {
            Ok(Arc::new(
                CircuitBreaker::consecutive(1, Duration::from_secs(10))
                    .recovery(Duration::from_secs(30))
                    .build()?,
            ))
        };
        let (a, b) = (breaker()?, breaker()?);
        let _a = fleet(&url, ns, 0, &log)
            .await?
            .share_breaker(NAME, a.clone())?;
        let _b = fleet(&url, ns, 1, &log)
            .await?
            .share_breaker(NAME, b.clone())?;
        tokio::time::sleep(INTERVAL * 2).await;

        // A opens on its own evidence and publishes it (transition 2); B follows.
        let p = a.try_acquire(now())?;
        a.record(now(), p, BreakerOutcome::Failure(ErrorClass::Transient));
        until("B follows A's open", || b.state() == CircuitState::Open).await?;

        // The store loses its latest writes: it holds the old close of transition 1 again.
        roll_back(&url, ns, old_close, 1)?;
        until("both notice", || {
            (0..2).all(|i| log.count(i, |e| matches!(e, SyncEvent::StoreReset { .. })) == 1)
        })
        .await?;
        // Neither goes back to the old close; A publishes its open again.
        until("A's open is in the store again", || {
            stored_state(&url, ns)
                .is_ok_and(|s| s.starts_with("1 2 open ") && s.contains("instance-0."))
        })
        .await
        .map_err(|e| format!("{e}; the store holds {:?}", stored_state(&url, ns)))?;
        tokio::time::sleep(INTERVAL * 2).await;
        assert_eq!(a.state(), CircuitState::Open, "A followed the lost history");
        assert_eq!(b.state(), CircuitState::Open, "B followed the lost history");
        assert_eq!(
            log.count(0, |e| matches!(e, SyncEvent::Followed { .. })),
            0,
            "A followed something"
        );

        // The store loses everything: A's open (its own) is published again, as transition 1
        // of the new store; B's (followed) is not.
        let mut conn = redis_conn(&url)?;
        redis::cmd("FLUSHALL").exec(&mut conn)?;
        until("both notice the flush", || {
            (0..2).all(|i| log.count(i, |e| matches!(e, SyncEvent::StoreReset { .. })) == 2)
        })
        .await?;
        until("A's open is in the new store", || {
            stored_state(&url, ns)
                .is_ok_and(|s| s.starts_with("1 1 open ") && s.contains("instance-0."))
        })
        .await
        .map_err(|e| format!("{e}; the store holds {:?}", stored_state(&url, ns)))?;
        tokio::time::sleep(INTERVAL * 2).await;
        assert!(
            stored_state(&url, ns)?.starts_with("1 1 open "),
            "B published the open it followed"
        );
        assert_eq!(b.state(), CircuitState::Open);
        Ok(())
    })
}

// ----- 9. a publish whose reply was lost is not published again ----------------------------

/// A connection whose first reply to a publishing exchange (an `open …` argument) is lost
/// after Redis ran it, as when an exchange times out while Redis is slow.
#[derive(Clone)]
struct LosesFirstPublishReply {
    inner: ConnectionManager,
    lost: Arc<AtomicBool>,
}

impl redis::aio::ConnectionLike for LosesFirstPublishReply {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let reply = self.inner.req_packed_command(cmd).await?;
            let publishes = cmd.get_packed_command().windows(5).any(|w| w == b"open ");
            if publishes && !self.lost.swap(true, Ordering::SeqCst) {
                return Err((redis::ErrorKind::Io, "reply lost").into());
            }
            Ok(reply)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[test]
fn a_publish_whose_reply_was_lost_is_not_published_again() -> Result<(), BoxError> {
    let Some(Setup {
        _turn,
        server: _server,
        url,
        log,
    }) = setup()?
    else {
        return Ok(());
    };
    block_on(async {
        let ns = "lost-reply";
        let lost = Arc::new(AtomicBool::new(false));
        let conn = LosesFirstPublishReply {
            inner: ConnectionManager::new(redis::Client::open(url.as_str())?).await?,
            lost: lost.clone(),
        };
        let a = Arc::new(
            CircuitBreaker::consecutive(1, Duration::from_secs(10))
                .recovery(Duration::from_secs(30))
                .build()?,
        );
        let _sync = Fleet::builder(ns)
            .interval(INTERVAL)
            .timeout(TIMEOUT)
            .instance_id("instance-0")
            .on_event(log.hook(0))
            .build(conn)?
            .share_breaker(NAME, a.clone())?;
        tokio::time::sleep(INTERVAL * 2).await;
        let p = a.try_acquire(now())?;
        a.record(now(), p, BreakerOutcome::Failure(ErrorClass::Transient));
        // The publish ran, its reply was lost, the next exchange sends it again.
        until("the lost reply and the next exchange", || {
            lost.load(Ordering::SeqCst)
                && log.count(0, |e| matches!(e, SyncEvent::Resumed { .. })) == 1
        })
        .await?;
        tokio::time::sleep(INTERVAL * 2).await;
        let state = stored_state(&url, ns)?;
        assert!(
            state.starts_with("1 1 open "),
            "published more than once: {state:?}"
        );
        Ok(())
    })
}
