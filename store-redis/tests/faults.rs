//! Without a reachable Redis: configuration errors, and sync tasks that fail or hang while
//! the objects they share keep deciding locally. (Real-server tests: integration/tests/fleet.rs.)
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns lock test-only mutexes

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use redress::{Budget, ErrorClass, Instant, ManualClock};
use redress_redis::{Fleet, SharedKind, SyncEvent};

/// A connection that refuses every request, or never answers.
#[derive(Clone)]
struct Broken {
    hang: bool,
}

impl ConnectionLike for Broken {
    fn req_packed_command<'a>(&'a mut self, _: &'a Cmd) -> RedisFuture<'a, Value> {
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                pending::<()>().await;
            }
            Err(RedisError::from((ErrorKind::Io, "connection refused")))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        _: &'a Pipeline,
        _: usize,
        _: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async { Err(RedisError::from((ErrorKind::Io, "connection refused"))) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[test]
fn bad_settings_name_the_field() {
    let conn = Broken { hang: false };
    let cases = [
        (
            Fleet::builder("ns").interval(Duration::from_millis(5)),
            "interval",
        ),
        (Fleet::builder("ns").timeout(Duration::ZERO), "timeout"),
        (
            Fleet::builder("ns").timeout(Duration::from_secs(2)),
            "timeout",
        ),
        (
            Fleet::builder("ns").stale_after(Duration::from_millis(500)),
            "stale_after",
        ),
        (Fleet::builder(""), "namespace"),
        (Fleet::builder("a{b}"), "namespace"),
        (Fleet::builder("svc:payments"), "namespace"),
        (Fleet::builder("a b"), "namespace"),
        (Fleet::builder("x".repeat(201)), "namespace"),
        (Fleet::builder("ns").key_prefix(""), "key_prefix"),
        (Fleet::builder("ns").instance_id("two words"), "instance_id"),
    ];
    for (b, field) in cases {
        assert_eq!(b.build(conn.clone()).unwrap_err().field, field);
    }
    let fleet = Fleet::builder("ns").build(conn).unwrap();
    let budget = Arc::new(Budget::rolling(1, Duration::from_secs(1)).build().unwrap());
    assert_eq!(
        fleet.share_budget("b", budget.clone()).unwrap_err().field,
        "runtime",
        "outside a runtime"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    assert_eq!(fleet.share_budget("a}", budget).unwrap_err().field, "name");
}

fn recorder() -> (
    Arc<Mutex<Vec<SyncEvent>>>,
    impl Fn(&SyncEvent) + Send + Sync,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e: &SyncEvent| {
        sink.lock().unwrap().push(e.clone())
    })
}

#[tokio::test(start_paused = true)]
async fn a_refused_store_degrades_once_and_the_budget_decides_alone() {
    let (events, hook) = recorder();
    let clock = ManualClock::new(Instant::from_secs(1));
    let fleet = Fleet::builder("ns")
        .interval(Duration::from_millis(100))
        .clock(clock.clone())
        .on_event(hook)
        .build(Broken { hang: false })
        .unwrap();
    let budget = Arc::new(Budget::rolling(3, Duration::from_secs(10)).build().unwrap());
    let sync = fleet.share_budget("payments", budget.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let status = sync.status();
    assert!(status.degraded);
    assert_eq!(status.exchanges, 0);
    assert!(status.failures >= 10, "{status:?}");
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "one event per outage: {events:?}");
    match &events[0] {
        SyncEvent::Degraded { object, error } => {
            assert_eq!(object.kind, SharedKind::Budget);
            assert_eq!(object.name, "payments");
            assert!(error.contains("connection refused"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // Calls were never waiting for the store: the budget is its own.
    let now = redress::Clock::now(&clock);
    assert_eq!(budget.fleet(now), None);
    for _ in 0..3 {
        assert!(budget.withdraw(now, ErrorClass::Transient));
    }
    assert!(!budget.withdraw(now, ErrorClass::Transient));
}

#[tokio::test(start_paused = true)]
async fn a_store_that_never_answers_times_out_and_a_panicking_hook_is_contained() {
    let calls = Arc::new(Mutex::new(0u32));
    let seen = calls.clone();
    let fleet = Fleet::builder("ns")
        .interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(40))
        .on_event(move |_| {
            *seen.lock().unwrap() += 1;
            panic!("a hook that panics");
        })
        .build(Broken { hang: true })
        .unwrap();
    let budget = Arc::new(Budget::rolling(3, Duration::from_secs(10)).build().unwrap());
    let sync = fleet.share_budget("payments", budget).unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let status = sync.status();
    assert!(status.degraded);
    assert!(status.failures >= 9, "the task kept going: {status:?}");
    assert_eq!(*calls.lock().unwrap(), 1);
    sync.stop();
}
