//! Three instances share one failure-rate breaker through Redis (`redress-redis`).
//!
//! Each instance makes 12 calls to a dependency that is down. The breaker opens when at least
//! half of at least 30 calls in its window failed: no instance reaches 30 calls alone, the
//! fleet's 36 do. With the breaker shared, every instance ends open, within two sync
//! intervals of the fleet crossing the threshold, and prints what its sync task saw.
//!
//! It connects to `REDIS_URL` if set. Otherwise it starts a throwaway `redis-server` on
//! 127.0.0.1 with `redress_integration::RedisServer` (on Debian, `apt-get install
//! redis-server`); without one it says so and exits successfully.
//!
//! `cargo run -p redress-examples --example fleet`
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redress::{CircuitBreaker, CircuitState, Policy, Retry};
use redress_integration::{RedisServer, or_skip};
use redress_redis::{Fleet, SyncEvent};

const INSTANCES: usize = 3;
const CALLS: usize = 12;
const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dependency down")
    }
}

impl std::error::Error for Down {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let Some(server) = or_skip(RedisServer::start())? else {
                return Ok(());
            };
            let url = server.url();
            (Some(server), url)
        }
    };
    let namespace = format!("example-{}", std::process::id());
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut instances = Vec::new();
    for i in 0..INSTANCES {
        // Each instance as a separate process would have it: its own connection, breaker and
        // sync task.
        let conn = redis::aio::ConnectionManager::new(redis::Client::open(url.as_str())?).await?;
        let breaker = Arc::new(
            CircuitBreaker::failure_rate(0.5, 30, Duration::from_secs(10))
                .recovery(Duration::from_secs(30))
                .build()?,
        );
        let log = events.clone();
        let fleet = Fleet::builder(namespace.as_str())
            .interval(INTERVAL)
            .instance_id(format!("instance-{i}"))
            .on_event(move |e: &SyncEvent| {
                let line = format!("instance-{i}: {e:?}");
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            })
            .build(conn)?;
        let sync = fleet.share_breaker("dependency", breaker.clone())?;
        let policy = Policy::builder()
            .retry(Retry::builder().max_attempts(1))
            .breaker(breaker.clone())
            .build()?;
        instances.push((breaker, policy, sync));
    }

    for round in 0..CALLS {
        for (_, policy, _) in &instances {
            let r: Result<(), _> = redress_tokio::call(policy, async |_| Err::<(), _>(Down)).await;
            assert!(r.is_err());
        }
        if round == CALLS / 2 {
            // Let the sync tasks push half of the evidence.
            tokio::time::sleep(INTERVAL).await;
        }
    }
    let crossed = tokio::time::Instant::now();
    println!("the fleet made {} failing calls", INSTANCES * CALLS);
    // Within two sync intervals (plus round trips), every instance is open; the loop allows
    // a loaded machine five times that before it gives up.
    let bound = INTERVAL * 3;
    loop {
        let open = instances
            .iter()
            .filter(|(b, _, _)| b.state() == CircuitState::Open)
            .count();
        if open == INSTANCES {
            break;
        }
        assert!(
            crossed.elapsed() < bound * 5,
            "only {open} of {INSTANCES} instances opened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "every instance open {:?} after the last call",
        crossed.elapsed()
    );
    for (i, (b, policy, _)) in instances.iter().enumerate() {
        let r: Result<(), _> = redress_tokio::call(policy, async |_| Ok::<(), Down>(())).await;
        let e = r.expect_err("an open breaker refuses the call");
        println!("instance-{i}: {:?}, a new call: {e}", b.state());
        assert!(e.is_circuit_open() && e.attempts() == 0);
    }
    // One more exchange each: the instances publish their openings to the fleet.
    tokio::time::sleep(INTERVAL * 2).await;
    for line in events.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("{line}");
    }
    Ok(())
}
