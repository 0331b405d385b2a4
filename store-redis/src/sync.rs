//! The sync task of one shared object: an exchange every interval, off the call path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redress::breaker::Transition;
use redress::fleet::{FleetBreakerCounts, FleetBudgetCounts, FleetDirective};
use redress::{Budget, CircuitBreaker, CircuitState, Instant};

use crate::exchange::{Clocks, Ledger, Published, Read, millis, parse};
use crate::script::{self, Answer, Request};
use crate::{Settings, Shared, StatusCells, SyncEvent};

/// How long the state, sequence and incarnation keys live after the last exchange.
const META_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest TTL given to a bucket key (a year; `PEXPIRE` takes at most `i64::MAX` ms).
const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

pub(crate) enum Object {
    Breaker(Arc<CircuitBreaker>),
    Budget(Arc<Budget>),
}

pub(crate) struct Task<C> {
    conn: C,
    settings: Arc<Settings>,
    shared: Shared,
    object: Object,
    status: Arc<StatusCells>,
    script: redis::Script,
    base: String,
    ledger: Ledger,
    /// The store's incarnation as last seen.
    incarnation: Option<String>,
    /// Tokens offered as the incarnation so far (each round trip offers a new one).
    offers: u64,
    /// Breakers: the sequence number of the last published state applied (or published).
    applied: Option<u64>,
    /// Breakers: the generation after the last exchange; a change is this instance's own.
    generation: Option<u64>,
    /// Breakers: the highest sequence number seen in this incarnation of the store.
    max_seq: u64,
    /// Breakers: the generation of the breaker this process last published.
    published: Option<u64>,
    /// The last ignored state, so it is reported once.
    ignored: Option<String>,
    /// The object's window.
    window: Duration,
    /// Whether counts are shared (budgets, failure-rate breakers) or decisions only.
    with_counts: bool,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

impl<C> Task<C>
where
    C: redis::aio::ConnectionLike + Send + Sync + 'static,
{
    pub(crate) fn new(
        conn: C,
        settings: Arc<Settings>,
        shared: Shared,
        object: Object,
        status: Arc<StatusCells>,
    ) -> Self {
        let (kind, window, with_counts) = match &object {
            Object::Breaker(b) => {
                let s = b.snapshot(Instant::ZERO);
                ("breaker", s.window, s.bucket_width.is_some())
            }
            Object::Budget(b) => ("budget", b.snapshot(Instant::ZERO).window, true),
        };
        let base = format!(
            "{}:{{{}:{}}}:{kind}",
            settings.prefix, settings.namespace, shared.name
        );
        Self {
            conn,
            settings,
            shared,
            object,
            status,
            script: script::script(),
            base,
            ledger: Ledger::default(),
            incarnation: None,
            offers: 0,
            applied: None,
            generation: None,
            max_seq: 0,
            published: None,
            ignored: None,
            window,
            with_counts,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let timeout = self.settings.timeout;
            let result = match tokio::time::timeout(timeout, self.exchange()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            self.settle(result);
        }
    }

    fn settle(&mut self, result: Result<(), String>) {
        let s = &self.status;
        match result {
            Ok(()) => {
                s.exchanges.fetch_add(1, Ordering::Relaxed);
                let failing = s.failing.swap(0, Ordering::Relaxed);
                if failing > 0 {
                    self.settings.emit(SyncEvent::Resumed {
                        object: self.shared.clone(),
                        failures: failing,
                    });
                }
            }
            Err(error) => {
                s.failures.fetch_add(1, Ordering::Relaxed);
                if s.failing.fetch_add(1, Ordering::Relaxed) == 0 {
                    self.settings.emit(SyncEvent::Degraded {
                        object: self.shared.clone(),
                        error,
                    });
                }
            }
        }
    }

    fn now(&self) -> Clocks {
        Clocks {
            local: self.settings.clock.now(),
            wall_ms: wall_ms(),
        }
    }

    async fn exchange(&mut self) -> Result<(), String> {
        match &self.object {
            Object::Budget(b) => {
                let b = b.clone();
                self.exchange_budget(&b).await
            }
            Object::Breaker(b) => {
                let b = b.clone();
                self.exchange_breaker(&b).await
            }
        }
    }

    async fn exchange_budget(&mut self, budget: &Budget) -> Result<(), String> {
        let clocks = self.now();
        let snap = budget.snapshot(clocks.local);
        let counts: Vec<(Instant, [u64; 2])> = snap
            .buckets
            .iter()
            .map(|b| (b.start, [b.withdrawn, b.deposits]))
            .collect();
        let width_ms = width_ms(snap.bucket_width);
        // One bucket more than the window holds, as the budget itself counts: the cap then
        // holds for every window, not only bucket-aligned ones.
        let len = millis(snap.window).div_ceil(width_ms) + 1;
        let plan = self.ledger.plan(clocks, &counts, width_ms, len);
        let keys = bucket_keys(&format!("{}:v1:{width_ms}", self.base), &plan);
        // Every instance that exchanged within `stale_after` shares the remainder.
        let since = clocks
            .wall_ms
            .saturating_sub(millis(self.settings.stale_after))
            .max(1);
        let answer = self
            .round_trip(keys, false, "", ["w", "d"], since, 0)
            .await?;
        self.store_reset(&answer);
        let Some(others) = answer.others else {
            return Ok(());
        };
        let instances = u32::try_from(answer.members).unwrap_or(u32::MAX);
        let round = clocks.wall_ms / millis(self.settings.interval).max(1);
        budget.merge(
            clocks.local,
            FleetBudgetCounts {
                withdrawn: others[0],
                deposits: others[1],
                instances,
                ticket: ticket(&self.settings.member, round, instances),
            },
            clocks.local + self.settings.stale_after,
        );
        Ok(())
    }

    async fn exchange_breaker(&mut self, breaker: &CircuitBreaker) -> Result<(), String> {
        let clocks = self.now();
        let snap = breaker.snapshot(clocks.local);
        let changed = self.generation != Some(snap.generation);
        if changed {
            // Counts restart at every transition.
            self.ledger.reset();
        }
        let first = self.generation.is_none();
        let publish = match (snap.state, snap.open_until) {
            (CircuitState::Open, Some(until)) if changed => Some(Published::Open {
                until_ms: clocks.to_wall_ms(until),
                by: self.settings.member.clone(),
            }),
            // A breaker that starts closed has nothing to tell the fleet.
            (CircuitState::Closed, _) if changed && !first => Some(Published::Close {
                by: self.settings.member.clone(),
            }),
            _ => None,
        };
        let publish_text = publish.as_ref().map(Published::encode).unwrap_or_default();
        let (counts, width_ms, len) = match snap.bucket_width {
            Some(w) => {
                let width_ms = width_ms(w);
                let counts: Vec<(Instant, [u64; 2])> = snap
                    .buckets
                    .iter()
                    .map(|b| (b.start, [b.failures, b.failures + b.successes]))
                    .collect();
                (counts, width_ms, millis(snap.window).div_ceil(width_ms))
            }
            None => (Vec::new(), 1, 0),
        };
        let plan = self.ledger.plan(clocks, &counts, width_ms, len.max(1));
        let keys = if self.with_counts {
            bucket_keys(&format!("{}:v1:{width_ms}", self.base), &plan)
        } else {
            Vec::new()
        };
        let answer = self
            .round_trip(keys, true, &publish_text, ["f", "c"], 0, snap.generation)
            .await?;
        // Before the state is read: after a reset, sequence numbers start again at 1. An
        // open this process published is gone with the store's data: published again.
        let republish = self.store_reset(&answer) && self.published == Some(snap.generation);
        if self.rolled_back(&answer, snap.generation) {
            return Ok(());
        }
        if let (Some(p), true) = (&publish, answer.published) {
            self.applied = Some(answer.seq);
            self.published = Some(snap.generation);
            self.settings.emit(SyncEvent::Published {
                object: self.shared.clone(),
                state: match p {
                    Published::Open { .. } => CircuitState::Open,
                    Published::Close { .. } => CircuitState::Closed,
                },
            });
        }
        // What the breaker does after the snapshot is its own, to be published next time;
        // what following does is not.
        self.generation = Some(if self.apply_state(breaker, &answer, snap.generation) {
            breaker.generation()
        } else {
            snap.generation
        });
        if republish && self.generation == Some(snap.generation) {
            self.generation = None;
        }
        let (Some(others), true) = (answer.others, self.with_counts) else {
            return Ok(());
        };
        let now = self.settings.clock.now();
        let merged = breaker.merge(
            now,
            FleetBreakerCounts {
                failures: others[0],
                calls: others[1],
            },
            clocks.local + self.settings.stale_after,
        );
        if merged == Some(Transition::Opened) {
            self.settings.emit(SyncEvent::FleetTripped {
                object: self.shared.clone(),
            });
        }
        Ok(())
    }

    /// True if the store went back to an earlier sequence number in the same incarnation: it
    /// lost recent writes (a failover to a lagging replica, an append-only file not yet
    /// synced). The state it holds now is one this process saw before, so it is not
    /// followed again. If the breaker's state (`generation`) is the one this process
    /// published, it is published again at the next exchange; a state it only followed is
    /// not: that is not its evidence.
    fn rolled_back(&mut self, answer: &Answer, generation: u64) -> bool {
        if answer.seq >= self.max_seq {
            self.max_seq = answer.seq;
            return false;
        }
        self.applied = Some(answer.seq);
        if self.published == Some(generation) {
            self.generation = None;
        }
        self.max_seq = answer.seq;
        self.ledger.reset();
        self.settings.emit(SyncEvent::StoreReset {
            object: self.shared.clone(),
        });
        true
    }

    /// Follows a state another instance published, once per sequence number; true if the
    /// breaker changed state. A breaker that changed state on its own since the exchange's
    /// snapshot (`seen`) does not follow this time: its own, newer transition is published
    /// at the next exchange, before the state is read again.
    fn apply_state(&mut self, breaker: &CircuitBreaker, answer: &Answer, seen: u64) -> bool {
        match parse(&answer.state) {
            Read::Nothing => false,
            Read::UnknownVersion(reason) | Read::Garbled(reason) => {
                if self.ignored.as_deref() != Some(answer.state.as_str()) {
                    self.ignored = Some(answer.state.clone());
                    self.settings.emit(SyncEvent::Ignored {
                        object: self.shared.clone(),
                        reason,
                    });
                }
                false
            }
            Read::State { seq, state } => {
                if self.applied == Some(seq) || breaker.generation() != seen {
                    return false;
                }
                self.applied = Some(seq);
                let clocks = self.now();
                // An open-until beyond this breaker's own recovery (plus an interval for the
                // clocks' offsets) comes from a skewed clock: it is cut to that, so one wrong
                // clock cannot hold the fleet open.
                let longest = clocks.local
                    + breaker
                        .config()
                        .recovery
                        .saturating_add(self.settings.interval);
                let (directive, by) = match state {
                    Published::Open { until_ms, by } => (
                        FleetDirective::Open {
                            until: clocks.to_local(until_ms).min(longest),
                        },
                        by,
                    ),
                    Published::Close { by } => (FleetDirective::Close, by),
                };
                if by == self.settings.member {
                    return false;
                }
                // Events name the publisher by its instance id, without the process suffix.
                let by = by
                    .rsplit_once('.')
                    .map_or(by.as_str(), |(id, _)| id)
                    .to_owned();
                let Some(t) = breaker.follow(clocks.local, directive) else {
                    return false;
                };
                {
                    self.settings.emit(SyncEvent::Followed {
                        object: self.shared.clone(),
                        state: match t {
                            Transition::Opened => CircuitState::Open,
                            Transition::HalfOpened => CircuitState::HalfOpen,
                            Transition::Closed => CircuitState::Closed,
                        },
                        by,
                    });
                }
                true
            }
        }
    }

    /// Notes the store's incarnation; true if the store lost what it held since the last
    /// exchange. The counts need nothing (every push sends this instance's whole counts,
    /// so this round's push already restored them), but the sequence numbers applied
    /// before are forgotten: the new store counts them from 1 again.
    fn store_reset(&mut self, answer: &Answer) -> bool {
        if self.incarnation.as_deref() == Some(answer.incarnation.as_str()) {
            return false;
        }
        if self
            .incarnation
            .replace(answer.incarnation.clone())
            .is_none()
        {
            return false;
        }
        self.applied = None;
        self.max_seq = answer.seq;
        self.settings.emit(SyncEvent::StoreReset {
            object: self.shared.clone(),
        });
        true
    }

    /// A token never offered before as the store's incarnation. A token offered again after
    /// the store lost its data would recreate the incarnation the instances knew, and none
    /// of them would notice the loss.
    fn candidate(&mut self) -> String {
        self.offers += 1;
        format!("{}-{}-{}", self.settings.instance, wall_ms(), self.offers)
    }

    async fn round_trip(
        &mut self,
        buckets: Vec<(String, [u64; 2])>,
        breaker: bool,
        publish: &str,
        fields: [&str; 2],
        members_since_ms: u64,
        publish_token: u64,
    ) -> Result<Answer, String> {
        let incarnation_key = format!("{}:incarnation", self.base);
        let state_key = format!("{}:state", self.base);
        let seq_key = format!("{}:seq", self.base);
        let members_key = format!("{}:members", self.base);
        let published_key = format!("{}:published", self.base);
        // A bucket outlives the window by a window and `stale_after`: long enough for every
        // instance to read it while it counts, short enough that Redis forgets the fleet.
        let ttl = millis(
            self.window
                .saturating_mul(2)
                .saturating_add(self.settings.stale_after),
        )
        .min(MAX_TTL_MS);
        let candidate = self.candidate();
        let req = Request {
            incarnation_key: &incarnation_key,
            state_key: &state_key,
            seq_key: &seq_key,
            members_key: &members_key,
            published_key: &published_key,
            buckets: &buckets,
            bucket_ttl_ms: ttl,
            incarnation: &candidate,
            breaker,
            publish,
            meta_ttl_ms: millis(META_TTL),
            fields,
            instance: &self.settings.member,
            wall_ms: wall_ms(),
            members_since_ms,
            publish_token,
        };
        script::run(&self.script, &mut self.conn, &req)
            .await
            .map_err(|e| e.to_string())
    }
}

/// This instance's draw for the split of a budget's remainder in exchange `round`: a hash
/// of its id and the round, so different instances draw differently and each one's draw
/// changes every round.
fn ticket(instance: &str, round: u64, instances: u32) -> u32 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    (instance, round).hash(&mut h);
    u32::try_from(h.finish() % u64::from(instances.max(1))).unwrap_or(0)
}

/// The keys of `plan`'s window under `prefix`, with this instance's counts in each.
fn bucket_keys(prefix: &str, plan: &crate::exchange::Plan) -> Vec<(String, [u64; 2])> {
    plan.own
        .iter()
        .enumerate()
        .map(|(i, own)| (format!("{prefix}:{}", plan.first + i as u64), *own))
        .collect()
}

/// A bucket's width in whole milliseconds, rounded up.
fn width_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SharedKind;
    use std::sync::Mutex;

    /// A connection to no server: the tests below drive a task's bookkeeping by hand.
    #[derive(Clone)]
    struct NoServer;

    impl redis::aio::ConnectionLike for NoServer {
        fn req_packed_command<'a>(
            &'a mut self,
            _: &'a redis::Cmd,
        ) -> redis::RedisFuture<'a, redis::Value> {
            Box::pin(async { Err((redis::ErrorKind::Io, "no server").into()) })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
            Box::pin(async { Err((redis::ErrorKind::Io, "no server").into()) })
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    fn saw_store_reset(events: &Mutex<Vec<SyncEvent>>) -> bool {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, SyncEvent::StoreReset { .. }))
    }

    fn task(object: Object, events: &Arc<Mutex<Vec<SyncEvent>>>) -> Task<NoServer> {
        let log = events.clone();
        let settings = crate::Fleet::builder("ns")
            .instance_id("me")
            .on_event(move |e| log.lock().unwrap().push(e.clone()))
            .settings;
        let kind = match object {
            Object::Breaker(_) => SharedKind::Breaker,
            Object::Budget(_) => SharedKind::Budget,
        };
        Task::new(
            NoServer,
            Arc::new(settings),
            Shared {
                kind,
                name: "dep".into(),
            },
            object,
            Arc::default(),
        )
    }

    fn answer(incarnation: &str, seq: u64, state: &str) -> Answer {
        Answer {
            incarnation: incarnation.into(),
            seq,
            state: state.into(),
            others: Some([0, 0]),
            members: 0,
            published: false,
        }
    }

    #[test]
    fn draws_differ_between_instances_and_rounds_and_stay_in_range() {
        let draws: std::collections::BTreeSet<u32> = (0..50)
            .map(|i| ticket(&format!("instance-{i}"), 7, 1000))
            .collect();
        assert!(draws.len() > 45, "{} distinct of 50", draws.len());
        let rounds: std::collections::BTreeSet<u32> =
            (0..50).map(|r| ticket("a", r, 1000)).collect();
        assert!(rounds.len() > 45);
        assert!((0..100).all(|r| ticket("a", r, 3) < 3));
        assert_eq!(ticket("a", 1, 0), 0);
    }

    fn breaker(recovery: Duration) -> Arc<CircuitBreaker> {
        Arc::new(
            CircuitBreaker::consecutive(1, Duration::from_secs(10))
                .recovery(recovery)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn a_breaker_that_changed_on_its_own_since_the_snapshot_does_not_follow() {
        let b = breaker(Duration::from_secs(30));
        let mut t = task(Object::Breaker(b.clone()), &Arc::default());
        let seen = b.generation();
        // During the round trip a local failure opens it.
        let p = b.try_acquire(t.now().local).unwrap();
        b.record(
            t.now().local,
            p,
            redress::breaker::BreakerOutcome::Failure(redress::ErrorClass::Transient),
        );
        assert!(!t.apply_state(&b, &answer("i", 4, "1 4 close other.1"), seen));
        assert_eq!(b.state(), CircuitState::Open, "its own open stands");
        // Not marked as applied: looked at again next time.
        assert_eq!(t.applied, None);
    }

    #[test]
    fn a_followed_open_is_cut_to_this_breakers_recovery_and_names_the_instance() {
        let b = breaker(Duration::from_secs(30));
        let events = Arc::default();
        let mut t = task(Object::Breaker(b.clone()), &events);
        // A publisher whose clock runs a day fast.
        let until = wall_ms() + 24 * 3600 * 1000;
        let a = answer("i", 1, &format!("1 1 open {until} far.ab12cd34"));
        assert!(t.apply_state(&b, &a, b.generation()));
        let open_until = b.snapshot(t.now().local).open_until.unwrap();
        let longest = t.now().local + Duration::from_secs(31);
        assert!(open_until <= longest, "{open_until:?} > {longest:?}");
        assert!(events.lock().unwrap().iter().any(|e| matches!(
            e,
            SyncEvent::Followed { by, .. } if by == "far"
        )));
    }

    #[test]
    fn a_store_that_went_back_to_an_earlier_sequence_number_is_not_followed_again() {
        let b = breaker(Duration::from_secs(30));
        let events = Arc::default();
        let mut t = task(Object::Breaker(b.clone()), &events);
        t.generation = Some(1);
        t.published = Some(1);
        assert!(!t.rolled_back(&answer("i", 9, ""), 1));
        // The store lost seq 9 and holds seq 8 (B's close, seen before) again.
        assert!(t.rolled_back(&answer("i", 8, "1 8 close b.1"), 1));
        assert_eq!(t.applied, Some(8));
        assert_eq!(t.generation, None, "its own open is published again");
        assert!(!t.apply_state(&b, &answer("i", 8, "1 8 close b.1"), b.generation()));
        // The next decision, numbered 9 again, is new.
        assert!(!t.rolled_back(&answer("i", 9, ""), 1));
        // A state it only followed (generation 2, not published) is not published again.
        t.generation = Some(2);
        assert!(t.rolled_back(&answer("i", 3, ""), 2));
        assert_eq!(t.generation, Some(2));
        assert!(saw_store_reset(&events));
    }

    /// A token offered once must never be offered again: after a flush, the instance that
    /// created the lost incarnation would otherwise recreate it, and nobody would notice.
    #[test]
    fn every_round_trip_offers_a_new_incarnation_token() {
        let budget = Arc::new(Budget::rolling(1, Duration::from_secs(1)).build().unwrap());
        let mut t = task(Object::Budget(budget), &Arc::default());
        let offered: std::collections::BTreeSet<String> = (0..100).map(|_| t.candidate()).collect();
        assert_eq!(offered.len(), 100);
    }

    /// Sequence numbers start again at 1 in a store that lost its data: a decision with the
    /// number of one applied before the loss is new, and is followed.
    #[test]
    fn after_a_store_reset_a_state_with_an_old_sequence_number_is_followed() {
        let breaker = Arc::new(
            CircuitBreaker::consecutive(3, Duration::from_secs(10))
                .build()
                .unwrap(),
        );
        let events = Arc::default();
        let mut t = task(Object::Breaker(breaker.clone()), &events);
        let until = wall_ms() + 60_000;

        let a = answer("old", 1, &format!("1 1 open {until} other"));
        assert!(!t.store_reset(&a));
        assert!(t.apply_state(&breaker, &a, breaker.generation()));
        assert_eq!(breaker.state(), CircuitState::Open);

        // The store was flushed, and another instance's close is the new store's first state.
        let b = answer("new", 1, "1 1 close other");
        assert!(t.store_reset(&b));
        assert!(
            t.apply_state(&breaker, &b, breaker.generation()),
            "the close was taken for the old open"
        );
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert!(saw_store_reset(&events));
    }
}
