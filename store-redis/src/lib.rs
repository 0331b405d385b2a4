//! Fleet-wide circuit breakers and retry budgets for redress, shared through Redis.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use redress::{Budget, CircuitBreaker, Policy, Retry};
//! use redress_redis::Fleet;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = Arc::new(CircuitBreaker::failure_rate(0.5, 50, Duration::from_secs(10)).build()?);
//! let budget = Arc::new(Budget::ratio(0.1, 5.0, Duration::from_secs(10)).build()?);
//! let policy = Policy::builder()
//!     .retry(Retry::builder().max_attempts(3).budget(budget.clone()))
//!     .breaker(breaker.clone())
//!     .build()?;
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379/")?;
//! let conn = redis::aio::ConnectionManager::new(client).await?;
//! let fleet = Fleet::builder("checkout")
//!     .interval(Duration::from_secs(1))
//!     .on_event(|e| eprintln!("fleet: {e:?}"))
//!     .build(conn)?;
//! // Background tasks: one exchange per object per second, none on the call path.
//! let _breaker_sync = fleet.share_breaker("payments-db", breaker)?;
//! let _budget_sync = fleet.share_budget("payments-db", budget)?;
//!
//! // Calls go through `policy` as before (redress_tokio::call, the tower layer, …); they
//! // decide from local memory, which now counts what the whole fleet did.
//! # let _ = policy;
//! # Ok(()) }
//! ```
//!
//! # When to use it
//! A breaker or budget kept by each process alone sees only that process's share of the
//! evidence: with 200 instances, each sees 1/200 of the failures, trips late, and spends its
//! own budget, so the fleet retries 200 budgets' worth into a sick dependency. Share them
//! when many instances call the same dependency and its health, not each instance's luck,
//! should decide. Do not share what is per instance by nature (a breaker in front of one
//! connection pool, a budget meant to protect one process's own latency).
//!
//! # How it works
//! [`Fleet::share_breaker`] and [`Fleet::share_budget`] spawn one tokio task per object. Every
//! `interval` the task runs one exchange, the steps of [`redress::fleet`]:
//!
//! 1. take the object's [snapshot](redress::Budget::snapshot): its own counts per time
//!    bucket, mapped once to wall-clock buckets of the fleet;
//! 2. run **one** Lua script (one round trip) that raises this instance's own counts in
//!    time-bucketed keys to the snapshot's and adds the difference to the fleet's totals
//!    (`HINCRBY`, `PEXPIRE`), publishes a breaker transition of this instance if there was
//!    one, and reads the fleet's breaker state, what the *other* instances counted over the
//!    window (totals minus this instance's own), and how many instances share a budget;
//! 3. [merge](redress::Budget::merge) the others' counts into the object, valid for
//!    `stale_after`; a budget also gets its share of what the fleet has left, split between
//!    the instances that exchanged within `stale_after`;
//! 4. breakers: [follow](redress::CircuitBreaker::follow) an open or close another instance
//!    published.
//!
//! Pushes are idempotent: an exchange whose reply was lost (a timeout while Redis was slow)
//! pushes the same absolute counts again and changes nothing, and a Redis that lost its data
//! gets every instance's counts back at its next exchange.
//!
//! Calls never wait for Redis: admission, recording and withdrawal read local memory only.
//!
//! # Consistency model
//! Eventually consistent, within bounds set by the sync interval `i` (plus the round trip,
//! at most `timeout`):
//!
//! | What | Bound |
//! |------|-------|
//! | a breaker transition of one instance is followed by every instance | one interval after it is published, which happens at that instance's next exchange: two intervals from the transition itself |
//! | a failure-rate breaker trips after the fleet's failures cross its threshold | two intervals: counts reach the store at the recorder's next exchange and every instance sees them at its own next one; the first instance to see the crossing opens and publishes, the rest follow |
//! | a shared budget's overshoot | at most what the other instances withdraw between two of their exchanges (one interval plus the round trip), since an instance sees their withdrawals one exchange late; with the split, each of them withdraws at most its share (`remaining / instances`, the division's remainder drawn by lot) in that time. Before an instance's first exchange it decides alone |
//!
//! Budgets share their counts in both kinds (a rolling budget's cap and a ratio budget's
//! deposits and floor become the fleet's). Failure-rate breakers share counts and decisions;
//! consecutive breakers share decisions only (see [`redress::fleet`] for why). Half-open
//! probing is per instance: when a fleet-wide open ends, every instance admits its own
//! probes, and the first to close or reopen publishes it (the last published decision wins).
//!
//! # Faults
//! Redis down, slow or restarted: the exchange fails or times out (`timeout`, default half
//! the interval). The object keeps deciding from local memory: the fleet's counts it merged
//! last are used until `stale_after` (default three intervals), then it decides from its own
//! counts alone (fail-open to local decisions). Calls are never blocked. The task emits
//! [`SyncEvent::Degraded`] on the first failed exchange, keeps trying every interval, and
//! emits [`SyncEvent::Resumed`] when an exchange succeeds again. Counts recorded while Redis
//! was away are pushed then, if they are still in the window. A Redis that restarts empty
//! (no persistence, or `FLUSHALL`) is recognised by its incarnation key, and one that lost
//! only its latest writes (a failover to a lagging replica, an append-only file with
//! `everysec`) by a sequence number that went back: the task emits
//! [`SyncEvent::StoreReset`]. The push in that same exchange already put the instance's
//! whole counts back (pushes are absolute), and an open the instance published itself is
//! published again at its next exchange; a state it only followed is not. Use a
//! connection that reconnects, such as `redis::aio::ConnectionManager` (its reconnect
//! backoff decides how soon after a restart sharing resumes: about 0.6 s with its
//! defaults); a plain multiplexed connection stays broken after a restart.
//!
//! # Keys
//! Every key of one shared object starts with `<prefix>:{<namespace>:<name>}` (prefix
//! `redress` by default); the braces are a Redis Cluster hash tag. Budgets and breakers with
//! the same name use different keys.
//!
//! | Key | Type | Holds | Expires |
//! |-----|------|-------|---------|
//! | `…:budget:v1:<width_ms>:<bucket>` | hash: fleet totals `w` (cost withdrawn) and `d` (first attempts), and each instance's own `<instance>:w`, `<instance>:d` | a budget's counts in the wall-clock bucket `bucket` (ms since the Unix epoch / `width_ms`) | two windows + `stale_after` after its last write |
//! | `…:breaker:v1:<width_ms>:<bucket>` | hash: totals `f` (failures) and `c` (calls), `<instance>:f`, `<instance>:c`, and `s`, the fleet's transition its counts belong to (a bucket from an earlier transition is emptied before use) | a failure-rate breaker's counts in one bucket | as above |
//! | `…:budget:members` | sorted set: `<instance>` → wall-clock ms of its last exchange | the instances that split a budget's remainder (those seen within `stale_after`) | 24 hours after its last exchange |
//! | `…:breaker:state` | string `1 <seq> open <until_ms> <instance>` or `1 <seq> close <instance>` | the last published transition | 24 hours after its last exchange |
//! | `…:breaker:published` | hash: instance → the generation of its breaker it last published | so an exchange repeated after a lost reply does not publish the same decision again over a newer one | 24 hours after its last exchange |
//! | `…:breaker:seq` | integer | the number of published transitions | 24 hours after its last exchange |
//! | `…:budget:incarnation`, `…:breaker:incarnation` | string | a token that changes when Redis lost its data | 24 hours after its last exchange |
//!
//! `<instance>` in fields, members and states is the [instance id](FleetBuilder::instance_id)
//! with a random suffix per process (`<id>.<8 hex digits>`), so a restarted process that
//! keeps its id (a pod name) starts afresh instead of inheriting what its predecessor
//! pushed. Events name other instances by their id alone.
//!
//! **Versions:** the `v1` in counter keys and the leading `1` of the state are the format
//! version. An instance of a later format writes other counter keys (the two never mix) and
//! a state that this one ignores with [`SyncEvent::Ignored`]. Instances configured with
//! different bucket widths write different keys and do not share counts.
//!
//! **Clocks:** buckets and the open-until instant are on the wall clock, so instances'
//! clocks should agree (NTP); a skew of `s` shifts an instance's counts and its reading of
//! an open-until by `s`. A followed open-until is cut to the follower's own recovery plus
//! one interval, so one badly wrong clock cannot hold the fleet open.
//!
//! **Recovery and interval:** give breakers a recovery longer than the sync interval. An
//! instance publishes its open at its next exchange; a breaker that is already half-open
//! by then has nothing left to publish.
//!
//! With the `tracing` feature, every [`SyncEvent`] is also logged (target `redress_redis`):
//! `warn` for [`SyncEvent::Degraded`] and [`SyncEvent::Ignored`], `info` for the rest.
//!
//! # Redis Cluster
//! Pass a `redis::cluster_async::ClusterConnection` (the `redis` crate's `cluster-async`
//! feature) to [`FleetBuilder::build`]: the connection type only needs
//! `redis::aio::ConnectionLike + Clone`. All keys of an object share one hash tag, so the
//! exchange script runs on the node that owns that slot. Different objects spread over the
//! cluster by their tags.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod exchange;
mod script;
mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redress::{Budget, CircuitBreaker, CircuitState, Clock, ConfigError, Instant, SystemClock};
use tokio::task::JoinHandle;

/// What is shared: a breaker or a budget, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shared {
    /// Breaker or budget.
    pub kind: SharedKind,
    /// The name given to [`Fleet::share_breaker`] or [`Fleet::share_budget`].
    pub name: String,
}

/// The kinds of shared objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SharedKind {
    /// A [`CircuitBreaker`].
    Breaker,
    /// A [`Budget`].
    Budget,
}

/// Something a sync task noticed; passed to the hook of [`FleetBuilder::on_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// An exchange failed or timed out: the object decides from local memory (the fleet's
    /// last counts until they are stale, then its own alone). Emitted once per outage.
    Degraded {
        /// The object.
        object: Shared,
        /// Why the exchange failed.
        error: String,
    },
    /// An exchange succeeded again after `failures` failed ones.
    Resumed {
        /// The object.
        object: Shared,
        /// Failed exchanges in a row before this one.
        failures: u64,
    },
    /// This instance's breaker changed state, and the change was published to the fleet.
    Published {
        /// The object.
        object: Shared,
        /// The state published (`Open` or `Closed`).
        state: CircuitState,
    },
    /// The breaker followed a decision another instance published.
    Followed {
        /// The object.
        object: Shared,
        /// The state it moved to.
        state: CircuitState,
        /// The publishing instance's id.
        by: String,
    },
    /// The fleet's counts crossed the breaker's failure-rate threshold at an exchange, so
    /// it opened (and publishes that at its next exchange).
    FleetTripped {
        /// The object.
        object: Shared,
    },
    /// A stored breaker state in another format version, or unreadable, was ignored.
    Ignored {
        /// The object.
        object: Shared,
        /// The version found, or the unreadable text.
        reason: String,
    },
    /// Redis lost what it held (restarted without persistence, or was flushed). Pushes send
    /// whole counts, so the exchange that noticed already put this instance's back.
    StoreReset {
        /// The object.
        object: Shared,
    },
}

type HookFn = dyn Fn(&SyncEvent) + Send + Sync;

/// Settings shared by every task of a [`Fleet`].
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) namespace: String,
    pub(crate) prefix: String,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) hook: Option<Arc<HookFn>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) instance: String,
    /// This process's id in the store: the instance id and a random suffix, so a restarted
    /// process with the same instance id starts afresh instead of inheriting its
    /// predecessor's counts and published decisions.
    pub(crate) member: String,
}

impl Settings {
    pub(crate) fn emit(&self, e: SyncEvent) {
        #[cfg(feature = "tracing")]
        log(&e);
        if let Some(h) = &self.hook {
            // A hook that panics must not end the sync task.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&e)));
        }
    }
}

/// Logs an event: `warn` when sharing stopped working or a state was ignored, `info`
/// otherwise.
#[cfg(feature = "tracing")]
fn log(e: &SyncEvent) {
    match e {
        SyncEvent::Degraded { object, error } => tracing::warn!(
            target: "redress_redis", kind = ?object.kind, name = %object.name, %error,
            "fleet sharing degraded: deciding from local state"
        ),
        SyncEvent::Ignored { object, reason } => tracing::warn!(
            target: "redress_redis", kind = ?object.kind, name = %object.name, %reason,
            "ignored a breaker state of another format"
        ),
        other => tracing::info!(target: "redress_redis", event = ?other, "fleet sharing"),
    }
}

/// A builder of a [`Fleet`].
#[must_use]
pub struct FleetBuilder {
    settings: Settings,
    stale_set: bool,
    timeout_set: bool,
}

impl std::fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("namespace", &self.settings.namespace)
            .field("interval", &self.settings.interval)
            .finish_non_exhaustive()
    }
}

impl FleetBuilder {
    /// How often each object exchanges with Redis (default 1 s, at least 10 ms). Shorter
    /// tightens every bound of the consistency model and costs one request per object per
    /// interval per instance.
    pub fn interval(mut self, d: Duration) -> Self {
        self.settings.interval = d;
        self
    }

    /// How long one exchange may take before it counts as failed (default half the
    /// interval; at most the interval).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.settings.timeout = d;
        self.timeout_set = true;
        self
    }

    /// How long merged fleet counts are used after the exchange that brought them
    /// (default three intervals; at least one interval). After that, with Redis away, each
    /// object decides from its own counts alone.
    pub fn stale_after(mut self, d: Duration) -> Self {
        self.settings.stale_after = d;
        self.stale_set = true;
        self
    }

    /// The first part of every key (default `redress`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// Called with every [`SyncEvent`], on the sync task. A panic in it is contained.
    pub fn on_event(mut self, hook: impl Fn(&SyncEvent) + Send + Sync + 'static) -> Self {
        self.settings.hook = Some(Arc::new(hook));
        self
    }

    /// The clock of the process's time line (default the one `redress_tokio` drivers use:
    /// tokio's clock mapped onto [`SystemClock`]'s epoch). Use the same clock the calls use.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.settings.clock = Arc::new(clock);
        self
    }

    /// This instance's id (default: random). The store sees it with a random suffix per
    /// process, so ids may be stable across restarts (a pod name) but must differ between
    /// instances running at once.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.settings.instance = id.into();
        self
    }

    /// Validates and builds over `conn`, any async Redis connection that can be cloned (a
    /// `ConnectionManager`, which reconnects, is the usual choice; a cluster connection
    /// works too).
    ///
    /// # Errors
    /// A [`ConfigError`] for an interval under 10 ms, a zero timeout or one longer than the
    /// interval, a `stale_after` shorter than the interval, or a namespace, key prefix or
    /// instance id that is empty, longer than 200 bytes, or holds whitespace, `{` or `}`,
    /// or a namespace that holds `:` (it would make `{namespace:name}` ambiguous).
    pub fn build<C>(self, conn: C) -> Result<Fleet<C>, ConfigError>
    where
        C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
    {
        let mut s = self.settings;
        if !self.timeout_set {
            s.timeout = s.interval / 2;
        }
        if !self.stale_set {
            s.stale_after = s.interval.saturating_mul(3);
        }
        if s.interval < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "interval",
                s.interval,
                "must be at least 10ms",
            ));
        }
        if s.timeout.is_zero() || s.timeout > s.interval {
            return Err(ConfigError::new(
                "timeout",
                s.timeout,
                "must be greater than zero and at most the interval",
            ));
        }
        if s.stale_after < s.interval {
            return Err(ConfigError::new(
                "stale_after",
                s.stale_after,
                "must be at least the interval",
            ));
        }
        check_name("namespace", &s.namespace)?;
        if s.namespace.contains(':') {
            // `{namespace:name}` must tell the two apart.
            return Err(ConfigError::new(
                "namespace",
                &s.namespace,
                "must not hold `:`",
            ));
        }
        check_name("key_prefix", &s.prefix)?;
        check_name("instance_id", &s.instance)?;
        s.member = format!("{}.{}", s.instance, &random_id()[..8]);
        Ok(Fleet {
            conn,
            settings: Arc::new(s),
        })
    }
}

fn check_name(field: &'static str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() || v.len() > 200 {
        return Err(ConfigError::new(field, v, "must be 1 to 200 bytes long"));
    }
    if v.chars().any(|c| c.is_whitespace() || c == '{' || c == '}') {
        return Err(ConfigError::new(
            field,
            v,
            "must not hold whitespace, `{` or `}`",
        ));
    }
    Ok(())
}

/// Shares breakers and budgets of this instance with the rest of a fleet through Redis.
///
/// Build one per namespace with [`Fleet::builder`], then hand it the objects to share.
/// Cheap to clone.
#[derive(Clone)]
pub struct Fleet<C> {
    conn: C,
    settings: Arc<Settings>,
}

impl<C> std::fmt::Debug for Fleet<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("namespace", &self.settings.namespace)
            .field("interval", &self.settings.interval)
            .field("instance", &self.settings.instance)
            .finish_non_exhaustive()
    }
}

/// The clock `redress_tokio` drivers read.
#[derive(Clone, Copy, Debug)]
struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        SystemClock::instant_from_std(tokio::time::Instant::now().into_std())
    }
}

fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl Fleet<()> {
    /// A builder for the objects of `namespace` (a service or policy name; objects of
    /// different namespaces never share).
    pub fn builder(namespace: impl Into<String>) -> FleetBuilder {
        FleetBuilder {
            settings: Settings {
                namespace: namespace.into(),
                prefix: "redress".to_owned(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
                stale_after: Duration::from_secs(3),
                hook: None,
                clock: Arc::new(TokioClock),
                instance: random_id(),
                member: String::new(),
            },
            stale_set: false,
            timeout_set: false,
        }
    }
}

impl<C> Fleet<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    /// This instance's id, as written into published breaker states.
    pub fn instance_id(&self) -> &str {
        &self.settings.instance
    }

    /// Starts sharing `breaker` under `name`: spawns its sync task on the current tokio
    /// runtime. Sharing stops when the returned handle is dropped or stopped.
    ///
    /// # Errors
    /// A [`ConfigError`] for a bad `name` (the rules of the namespace), or when called
    /// outside a tokio runtime (field `runtime`).
    pub fn share_breaker(
        &self,
        name: &str,
        breaker: Arc<CircuitBreaker>,
    ) -> Result<SyncHandle, ConfigError> {
        self.spawn(name, SharedKind::Breaker, sync::Object::Breaker(breaker))
    }

    /// Starts sharing `budget` under `name`: spawns its sync task on the current tokio
    /// runtime. Sharing stops when the returned handle is dropped or stopped.
    ///
    /// # Errors
    /// As [`share_breaker`](Self::share_breaker).
    pub fn share_budget(&self, name: &str, budget: Arc<Budget>) -> Result<SyncHandle, ConfigError> {
        self.spawn(name, SharedKind::Budget, sync::Object::Budget(budget))
    }

    fn spawn(
        &self,
        name: &str,
        kind: SharedKind,
        object: sync::Object,
    ) -> Result<SyncHandle, ConfigError> {
        check_name("name", name)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "runtime",
                "none",
                "sharing must start inside a tokio runtime",
            )
        })?;
        let status = Arc::new(StatusCells::default());
        let shared = Shared {
            kind,
            name: name.to_owned(),
        };
        let task = sync::Task::new(
            self.conn.clone(),
            self.settings.clone(),
            shared.clone(),
            object,
            status.clone(),
        );
        let join = runtime.spawn(task.run());
        Ok(SyncHandle {
            join,
            status,
            shared,
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatusCells {
    pub(crate) exchanges: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Failed exchanges in a row; sharing is degraded while it is not zero.
    pub(crate) failing: AtomicU64,
}

/// How a sync task is doing; from [`SyncHandle::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStatus {
    /// Exchanges that succeeded.
    pub exchanges: u64,
    /// Exchanges that failed or timed out, in all.
    pub failures: u64,
    /// Whether the last exchange failed (the object decides from local memory).
    pub degraded: bool,
}

/// The running sync task of one shared object. Dropping it stops the task (the object keeps
/// the fleet's last counts until they are stale, then decides alone).
#[derive(Debug)]
pub struct SyncHandle {
    join: JoinHandle<()>,
    status: Arc<StatusCells>,
    shared: Shared,
}

impl SyncHandle {
    /// What is shared.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Exchange counts and whether sharing is degraded.
    pub fn status(&self) -> SyncStatus {
        SyncStatus {
            exchanges: self.status.exchanges.load(Ordering::Relaxed),
            failures: self.status.failures.load(Ordering::Relaxed),
            degraded: self.status.failing.load(Ordering::Relaxed) > 0,
        }
    }

    /// Stops the task.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.join.abort();
    }
}
