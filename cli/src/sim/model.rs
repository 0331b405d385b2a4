//! The dependency model compiled for the event loop: outcome and latency of one attempt at
//! a given time, from the scenario's tables, with no allocation per attempt.

use std::time::Duration;

use redress::ErrorClass;
use redress::rng::{DefaultRng, unit_f64};

use super::scenario::{Arrivals, Dependency, Latency, Load, Outage};

/// How an attempt will end, decided when it reaches the dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Success,
    Failure(ErrorClass, Option<Duration>),
    TimedOut,
}

#[derive(Clone, Debug)]
pub(crate) enum Sampler {
    Constant(u64),
    Uniform(u64, u64),
    Exponential(f64),
    Lognormal { mu: f64, sigma: f64 },
}

impl Sampler {
    pub(crate) fn new(l: &Latency) -> Self {
        let nanos = |d: &Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match l {
            Latency::Constant { value } => Self::Constant(nanos(value)),
            Latency::Uniform { min, max } => Self::Uniform(nanos(min), nanos(max)),
            Latency::Exponential { mean } => Self::Exponential(nanos(mean) as f64),
            Latency::Lognormal { median, p99 } => {
                let m = nanos(median) as f64;
                // z of the 99th percentile of a standard normal.
                const Z99: f64 = 2.326_347_874;
                Self::Lognormal {
                    mu: m.ln(),
                    sigma: ((nanos(p99) as f64) / m).ln() / Z99,
                }
            }
        }
    }

    /// A latency in nanoseconds.
    pub(crate) fn sample(&self, rng: &mut DefaultRng) -> u64 {
        match *self {
            Self::Constant(v) => v,
            Self::Uniform(lo, hi) => lo + ((hi - lo) as f64 * unit_f64(rng)) as u64,
            Self::Exponential(mean) => (-mean * (1.0 - unit_f64(rng)).ln()) as u64,
            Self::Lognormal { mu, sigma } => {
                // Box–Muller, one normal per draw (the second is not worth the state).
                let u1 = 1.0 - unit_f64(rng);
                let u2 = unit_f64(rng);
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let v = (mu + sigma * z).exp();
                if v >= 1.8e19 { u64::MAX / 4 } else { v as u64 }
            }
        }
    }
}

/// Failure probabilities as a cumulative table (classes in fixed order).
#[derive(Clone, Debug, Default)]
pub(crate) struct Failures {
    cumulative: Vec<(f64, ErrorClass)>,
}

impl Failures {
    pub(crate) fn new<'a>(table: impl IntoIterator<Item = (&'a ErrorClass, &'a f64)>) -> Self {
        let mut acc = 0.0;
        let mut cumulative = Vec::new();
        for (c, p) in table {
            if *p > 0.0 {
                acc += p;
                cumulative.push((acc, *c));
            }
        }
        Self { cumulative }
    }

    fn draw(&self, rng: &mut DefaultRng) -> Option<ErrorClass> {
        if self.cumulative.is_empty() {
            return None;
        }
        let u = unit_f64(rng);
        self.cumulative
            .iter()
            .find(|(p, _)| u < *p)
            .map(|(_, c)| *c)
    }
}

/// A token bucket of `rate` per second with a burst of one second's worth.
#[derive(Clone, Debug)]
struct TokenBucket {
    tokens: f64,
    last: u64,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        Self {
            tokens: rate,
            last: 0,
        }
    }

    fn take(&mut self, now: u64, rate: f64) -> bool {
        let dt = now.saturating_sub(self.last) as f64 * 1e-9;
        self.last = now;
        self.tokens = (self.tokens + dt * rate).min(rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Debug)]
struct CompiledOutage {
    start: u64,
    end: u64,
    failures: Option<Failures>,
    latency: Option<Sampler>,
    capacity: Option<f64>,
}

/// The dependency, ready to answer attempts.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    latency: Sampler,
    failures: Failures,
    capacity: Option<f64>,
    overload_class: ErrorClass,
    rate_limit: Option<(f64, Duration)>,
    outages: Vec<CompiledOutage>,
    limiter: TokenBucket,
    capacity_bucket: TokenBucket,
    rng: DefaultRng,
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Model {
    pub(crate) fn new(d: &Dependency, rng: DefaultRng) -> Self {
        let outage = |o: &Outage| CompiledOutage {
            start: nanos(o.start),
            end: nanos(o.end),
            failures: Some(match &o.failure {
                Some(f) => Failures::new(f),
                None => Failures::new([(&ErrorClass::ServerError, &1.0)]),
            }),
            latency: o.latency.as_ref().map(Sampler::new),
            capacity: o.capacity,
        };
        Self {
            latency: Sampler::new(&d.latency),
            failures: Failures::new(&d.failure),
            capacity: d.capacity,
            overload_class: d.overload_class,
            rate_limit: d.rate_limit.as_ref().map(|r| (r.limit, r.retry_after)),
            outages: d.outages.iter().map(outage).collect(),
            limiter: TokenBucket::new(d.rate_limit.as_ref().map_or(0.0, |r| r.limit)),
            capacity_bucket: TokenBucket::new(d.capacity.unwrap_or(0.0)),
            rng,
        }
    }

    /// How an attempt reaching the dependency at `now` (nanoseconds) ends, and after how
    /// long. Attempts arrive in time order.
    pub(crate) fn answer(&mut self, now: u64) -> (Answer, u64) {
        let outage = self.outages.iter().find(|o| o.start <= now && now < o.end);
        let latency = outage
            .and_then(|o| o.latency.as_ref())
            .unwrap_or(&self.latency)
            .sample(&mut self.rng);
        if let Some((limit, hint)) = self.rate_limit
            && !self.limiter.take(now, limit)
        {
            return (Answer::Failure(ErrorClass::RateLimit, Some(hint)), latency);
        }
        if let Some(cap) = outage.and_then(|o| o.capacity).or(self.capacity)
            && !self.capacity_bucket.take(now, cap)
        {
            return (Answer::Failure(self.overload_class, None), latency);
        }
        let failures = outage
            .and_then(|o| o.failures.as_ref())
            .unwrap_or(&self.failures);
        match failures.draw(&mut self.rng) {
            None => (Answer::Success, latency),
            Some(ErrorClass::RateLimit) => (
                Answer::Failure(ErrorClass::RateLimit, self.rate_limit.map(|(_, h)| h)),
                latency,
            ),
            Some(c) => (Answer::Failure(c, None), latency),
        }
    }
}

/// The arrival process of logical calls, aggregated over the fleet.
#[derive(Clone, Debug)]
pub(crate) struct ArrivalProcess {
    clients: u32,
    kind: Arrivals,
    /// (from nanos, calls per second for the whole fleet), sorted.
    phases: Vec<(u64, f64)>,
    next_client: u32,
    rng: DefaultRng,
}

impl ArrivalProcess {
    pub(crate) fn new(load: &Load, clients: u32, rng: DefaultRng) -> Self {
        let fleet = f64::from(clients);
        let mut phases = vec![(0, load.rate * fleet)];
        let mut later: Vec<(u64, f64)> = load
            .phases
            .iter()
            .map(|p| (nanos(p.at), p.rate * fleet))
            .collect();
        later.sort_by_key(|p| p.0);
        phases.extend(later);
        Self {
            clients,
            kind: load.arrivals,
            phases,
            next_client: 0,
            rng,
        }
    }

    /// The phase index in force at `t`.
    fn phase(&self, t: u64) -> usize {
        self.phases.partition_point(|p| p.0 <= t).saturating_sub(1)
    }

    /// The first arrival after `t` (`None`: no more arrivals ever).
    pub(crate) fn next_after(&mut self, mut t: u64) -> Option<u64> {
        loop {
            let i = self.phase(t);
            let rate = self.phases[i].1;
            let boundary = self.phases.get(i + 1).map(|p| p.0);
            if rate <= 0.0 {
                t = boundary?;
                continue;
            }
            let gap = match self.kind {
                Arrivals::Poisson => -(1.0 - unit_f64(&mut self.rng)).ln() / rate,
                Arrivals::Uniform => 1.0 / rate,
            };
            let next = t.saturating_add((gap * 1e9).max(1.0) as u64);
            match boundary {
                // Memoryless: past a rate change, draw again from the boundary.
                Some(b) if next > b => t = b,
                _ => return Some(next),
            }
        }
    }

    /// Which client starts the next call.
    pub(crate) fn client(&mut self) -> u32 {
        match self.kind {
            Arrivals::Poisson => {
                ((unit_f64(&mut self.rng) * f64::from(self.clients)) as u32).min(self.clients - 1)
            }
            Arrivals::Uniform => {
                let c = self.next_client;
                self.next_client = (c + 1) % self.clients;
                c
            }
        }
    }
}
