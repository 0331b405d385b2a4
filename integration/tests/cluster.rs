//! `redress-redis` over a real three-node Redis Cluster: every key of a shared object carries
//! one hash tag, so the exchange script runs on the node that owns the slot, and two
//! instances share a budget and a breaker through the cluster as through a single server.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use redis::cluster::ClusterClient;
use redress::{Budget, CircuitBreaker, CircuitState, Clock, ErrorClass, ManualClock};
use redress_integration::{RedisCluster, or_skip};
use redress_redis::{Fleet, SyncHandle};

const INTERVAL: Duration = Duration::from_millis(50);

/// Polls `ok` every 10 ms for up to 10 s (a safety net, not a timing assertion).
async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

struct Instance {
    budget: Arc<Budget>,
    breaker: Arc<CircuitBreaker>,
    _syncs: (SyncHandle, SyncHandle),
}

async fn instance(urls: &[String], id: &str, clock: &ManualClock) -> Instance {
    let conn = ClusterClient::new(urls.to_vec())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let fleet = Fleet::builder("cluster-test")
        .interval(INTERVAL)
        .clock(clock.clone())
        .instance_id(id)
        .build(conn)
        .unwrap();
    let budget = Arc::new(
        Budget::rolling(10, Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, Duration::from_secs(60))
            .recovery(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    let syncs = (
        fleet.share_budget("payments", budget.clone()).unwrap(),
        fleet.share_breaker("payments", breaker.clone()).unwrap(),
    );
    Instance {
        budget,
        breaker,
        _syncs: syncs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_and_a_breaker_are_shared_through_a_redis_cluster() {
    let Some(cluster) = or_skip(RedisCluster::start()).unwrap() else {
        return;
    };
    let urls = cluster.urls();
    // One clock for both instances, as two processes on one host share the monotonic clock.
    let clock = ManualClock::new(redress::Instant::from_secs(1));
    let a = instance(&urls, "a", &clock).await;
    let b = instance(&urls, "b", &clock).await;

    // A spends 7 of the fleet's 10 retries; B sees them, and the 3 left are all it gets.
    for _ in 0..7 {
        assert!(a.budget.withdraw(clock.now(), ErrorClass::Transient));
    }
    eventually("B sees A's 7 withdrawals", || {
        b.budget.fleet(clock.now()).map(|c| c.withdrawn) == Some(7)
    })
    .await;
    // B's share of each exchange (split between A and B) is part of the 3, so it
    // gets them over a few exchanges; then nothing more.
    let mut granted = 0;
    for _ in 0..100 {
        granted += (0..10)
            .filter(|_| b.budget.withdraw(clock.now(), ErrorClass::Transient))
            .count();
        tokio::time::sleep(INTERVAL / 2).await;
    }
    assert_eq!(granted, 3);
    assert!(!a.budget.withdraw(clock.now(), ErrorClass::Transient));

    // A's breaker opens; B follows through the cluster.
    let permit = a.breaker.try_acquire(clock.now()).unwrap();
    a.breaker.record(
        clock.now(),
        permit,
        redress::breaker::BreakerOutcome::Failure(ErrorClass::Transient),
    );
    assert_eq!(a.breaker.state(), CircuitState::Open);
    eventually("B follows A's open breaker", || {
        b.breaker.state() == CircuitState::Open
    })
    .await;
    assert!(b.breaker.try_acquire(clock.now()).is_err());
    drop(cluster);
}
