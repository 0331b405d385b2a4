//! Classification: the eight semantic classes an error (or a bad `Ok` value) falls into.
//!
//! A policy never looks at an error itself. The driver first *classifies* it into an
//! [`ErrorClass`], optionally with hints (a server's `Retry-After`), and the policy decides
//! from the class alone. Keeping the set small and fixed lets every per-class setting live in
//! a fixed table ([`ClassTable`]) with no hashing and a deterministic order.

use core::fmt;
use core::str::FromStr;
use core::time::Duration;
use std::borrow::Cow;

/// What kind of failure an error represents.
///
/// The set is closed: classifiers map every error onto one of these eight.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[repr(u8)]
pub enum ErrorClass {
    /// The caller is not authenticated (HTTP 401, expired token).
    Auth = 0,
    /// The caller is authenticated but not allowed (HTTP 403).
    Permission = 1,
    /// The request itself is wrong and will fail again (HTTP 400, 404, 422).
    Permanent = 2,
    /// A conflict with concurrent work: serialization failure, deadlock, HTTP 409.
    Concurrency = 3,
    /// The dependency asks the caller to slow down (HTTP 429, throttling).
    RateLimit = 4,
    /// The dependency failed (HTTP 5xx).
    ServerError = 5,
    /// A passing fault: timeout, connection reset, temporarily unavailable.
    Transient = 6,
    /// Nothing recognised the error.
    Unknown = 7,
}

impl ErrorClass {
    /// How many classes there are.
    pub const COUNT: usize = 8;

    /// Every class, in declaration order (the order of [`ClassTable`]).
    pub const ALL: [Self; Self::COUNT] = [
        Self::Auth,
        Self::Permission,
        Self::Permanent,
        Self::Concurrency,
        Self::RateLimit,
        Self::ServerError,
        Self::Transient,
        Self::Unknown,
    ];

    /// This class's position in [`ErrorClass::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name used in events, metrics and policy files.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Permission => "permission",
            Self::Permanent => "permanent",
            Self::Concurrency => "concurrency",
            Self::RateLimit => "rate_limit",
            Self::ServerError => "server_error",
            Self::Transient => "transient",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the default policy retries this class (all but Auth, Permission, Permanent).
    pub const fn is_retryable_by_default(self) -> bool {
        !matches!(self, Self::Auth | Self::Permission | Self::Permanent)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an [`ErrorClass`] from a name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown error class `{0}` (expected one of auth, permission, permanent, concurrency, rate_limit, server_error, transient, unknown)"
)]
pub struct UnknownClassName(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownClassName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownClassName(s.to_owned()))
    }
}

/// One value per [`ErrorClass`], indexed by class: the storage of every per-class setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct ClassTable<T>(pub [T; ErrorClass::COUNT]);

impl<T: Copy> ClassTable<T> {
    /// A table holding `value` for every class.
    pub const fn splat(value: T) -> Self {
        Self([value; ErrorClass::COUNT])
    }
}

impl<T> ClassTable<T> {
    /// The entry of `class`.
    pub fn get(&self, class: ErrorClass) -> &T {
        &self.0[class.index()]
    }

    /// The entry of `class`, mutably.
    pub fn get_mut(&mut self, class: ErrorClass) -> &mut T {
        &mut self.0[class.index()]
    }

    /// `(class, entry)` pairs in class order.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorClass, &T)> {
        ErrorClass::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T> core::ops::Index<ErrorClass> for ClassTable<T> {
    type Output = T;
    fn index(&self, class: ErrorClass) -> &T {
        self.get(class)
    }
}

impl<T> core::ops::IndexMut<ErrorClass> for ClassTable<T> {
    fn index_mut(&mut self, class: ErrorClass) -> &mut T {
        self.get_mut(class)
    }
}

/// A set of classes, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ClassSet(u8);

impl ClassSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);
    /// Every class.
    pub const ALL: Self = Self(u8::MAX);

    /// A set of the given classes.
    pub const fn of(classes: &[ErrorClass]) -> Self {
        let mut bits = 0u8;
        let mut i = 0;
        while i < classes.len() {
            bits |= 1 << classes[i] as u8;
            i += 1;
        }
        Self(bits)
    }

    /// Whether `class` is in the set.
    pub const fn contains(self, class: ErrorClass) -> bool {
        self.0 & (1 << class as u8) != 0
    }

    /// The set with `class` added.
    pub const fn with(self, class: ErrorClass) -> Self {
        Self(self.0 | (1 << class as u8))
    }

    /// The set with `class` removed.
    pub const fn without(self, class: ErrorClass) -> Self {
        Self(self.0 & !(1 << class as u8))
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The classes in the set, in class order.
    pub fn iter(self) -> impl Iterator<Item = ErrorClass> {
        ErrorClass::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl fmt::Debug for ClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<ErrorClass> for ClassSet {
    fn from_iter<I: IntoIterator<Item = ErrorClass>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

/// The verdict of a classifier: a class plus optional hints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Classification {
    /// The semantic class.
    pub class: ErrorClass,
    /// How long the dependency asked the caller to wait (`Retry-After`, gRPC pushback).
    /// Only strategies that read it (such as [`retry_after_or`](crate::backoff::retry_after_or))
    /// honour it.
    pub retry_after: Option<Duration>,
    /// Free-form detail for logs (for example `"sqlstate 40001"`); never used for decisions
    /// or as a metric label.
    pub details: Option<Cow<'static, str>>,
}

impl Classification {
    /// A classification with no hints.
    pub const fn new(class: ErrorClass) -> Self {
        Self {
            class,
            retry_after: None,
            details: None,
        }
    }

    /// This classification with a `Retry-After` hint.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// This classification with a detail string.
    pub fn with_details(mut self, details: impl Into<Cow<'static, str>>) -> Self {
        self.details = Some(details.into());
        self
    }
}

impl From<ErrorClass> for Classification {
    fn from(class: ErrorClass) -> Self {
        Self::new(class)
    }
}

/// Classifies errors of type `E`.
///
/// Any `Fn(&E) -> impl Into<Classification>` is a classifier, so both
/// `|e: &MyError| ErrorClass::Transient` and functions returning [`Classification`] work.
pub trait Classify<E: ?Sized> {
    /// The class (and hints) of `error`.
    fn classify(&self, error: &E) -> Classification;
}

impl<E: ?Sized, F, C> Classify<E> for F
where
    F: Fn(&E) -> C,
    C: Into<Classification>,
{
    fn classify(&self, error: &E) -> Classification {
        self(error).into()
    }
}

/// Classifies successful values: `Some` marks an `Ok` value as a failure of some class
/// (for example an HTTP 503 response that arrived as `Ok`).
pub trait ClassifyResult<T: ?Sized> {
    /// `None` if `value` is a success, else its classification.
    fn classify_result(&self, value: &T) -> Option<Classification>;
}

impl<T: ?Sized, F, C> ClassifyResult<T> for F
where
    F: Fn(&T) -> Option<C>,
    C: Into<Classification>,
{
    fn classify_result(&self, value: &T) -> Option<Classification> {
        self(value).map(Into::into)
    }
}

/// The result classifier that accepts every value.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl<T: ?Sized> ClassifyResult<T> for AcceptAll {
    fn classify_result(&self, _value: &T) -> Option<Classification> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, c) in ErrorClass::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(c.name().parse::<ErrorClass>(), Ok(c));
        }
        assert!("bogus".parse::<ErrorClass>().is_err());
        assert_eq!(
            "RATE_LIMIT".parse::<ErrorClass>(),
            Ok(ErrorClass::RateLimit)
        );
    }

    #[test]
    fn closures_are_classifiers() {
        let f = |e: &u16| {
            if *e == 429 {
                Classification::new(ErrorClass::RateLimit).with_retry_after(Duration::from_secs(2))
            } else {
                ErrorClass::Unknown.into()
            }
        };
        assert_eq!(f.classify(&429).retry_after, Some(Duration::from_secs(2)));
        assert_eq!(f.classify(&1).class, ErrorClass::Unknown);
        let g = |_: &u16| ErrorClass::Transient;
        assert_eq!(
            Classify::<u16>::classify(&g, &0).class,
            ErrorClass::Transient
        );
        let r = |v: &u16| (*v >= 500).then_some(ErrorClass::ServerError);
        assert_eq!(
            r.classify_result(&503).map(|c| c.class),
            Some(ErrorClass::ServerError)
        );
        assert_eq!(r.classify_result(&200), None);
    }

    #[test]
    fn class_set_operations() {
        let s = ClassSet::of(&[ErrorClass::Auth, ErrorClass::Unknown]);
        assert!(s.contains(ErrorClass::Auth) && s.contains(ErrorClass::Unknown));
        assert!(!s.contains(ErrorClass::Transient));
        assert_eq!(
            s.without(ErrorClass::Auth).iter().collect::<Vec<_>>(),
            [ErrorClass::Unknown]
        );
        assert!(ClassSet::EMPTY.is_empty());
        assert_eq!(ClassSet::ALL.iter().count(), 8);
    }
}
