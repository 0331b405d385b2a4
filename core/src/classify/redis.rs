//! Classifier for `redis::RedisError` (feature `redis`).
//!
//! ```
//! use redress::classify::redis::classify_redis_error;
//! use redress::ErrorClass;
//!
//! // A dropped connection: try again.
//! let err = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
//! assert_eq!(classify_redis_error(&err).class, ErrorClass::Transient);
//!
//! // What the server said, as redis's own parser reads it.
//! let reply = |bytes: &[u8]| redis::parse_redis_value(bytes).unwrap().extract_error().unwrap_err();
//! assert_eq!(classify_redis_error(&reply(b"-LOADING loading the dataset\r\n")).class, ErrorClass::Transient);
//! assert_eq!(classify_redis_error(&reply(b"-WRONGPASS invalid password\r\n")).class, ErrorClass::Auth);
//! assert_eq!(classify_redis_error(&reply(b"-MOVED 3999 127.0.0.1:6381\r\n")).class, ErrorClass::Permanent);
//! ```
//!
//! # Server errors, by their code
//!
//! A server error is classified by its code (the first word of the reply, [`RedisError::code`]),
//! whether redis knows the code ([`ServerErrorKind`](::redis::ServerErrorKind)) or reports it
//! as an extension error. For a failed pipeline, redis reports the code of the first failed
//! command when it knows that code (as [`RedisError::kind`] does); otherwise its kind decides.
//!
//! | Code                                   | Class         | Why |
//! |----------------------------------------|---------------|-----|
//! | `BUSY`                                 | `Transient`   | a script or function is running; it ends or is killed |
//! | `LOADING`                              | `Transient`   | the server is loading its dataset |
//! | `TRYAGAIN`                             | `Transient`   | a multi-key command during resharding |
//! | `CLUSTERDOWN`, `MASTERDOWN`            | `Transient`   | the cluster or the replica's primary is down for now |
//! | `NOREPLICAS`                           | `Transient`   | not enough replicas acknowledge writes right now |
//! | `READONLY`                             | `Transient`   | a write reached a replica, typically a primary demoted by a failover; once the client reconnects or refreshes its slot map the retry reaches the new primary |
//! | `MOVED`, `ASK`                         | `Permanent`   | redirects: a cluster client must follow them to another node (and redis's cluster client does); sending the same request to the same node again only repeats the redirect |
//! | `NOAUTH`, `WRONGPASS`                  | `Auth`        | |
//! | `NOPERM`                               | `Permission`  | the ACL user may not run this command or touch this key |
//! | `OOM`                                  | `ServerError` | the server is at `maxmemory`; eviction, expiry or consumers may free memory, and a breaker may open meanwhile (like SQLSTATE `53200 out_of_memory`) |
//! | `MISCONF`                              | `ServerError` | the server cannot persist and refuses writes until an operator acts |
//! | `ERR max number of clients reached`    | `RateLimit`   | the server is full (like SQLSTATE `53300 too_many_connections`) |
//! | `ERR` (anything else: syntax, unknown command, wrong arguments, …) | `Permanent` | |
//! | `WRONGTYPE`, `EXECABORT`, `NOSCRIPT`, `CROSSSLOT`, `NOTBUSY`, `NOSUB`, `BUSYKEY`, `BUSYGROUP`, `NOGROUP`, `NOPROTO` | `Permanent` | the same request fails the same way |
//! | any other code                         | `Unknown`     | |
//!
//! # Other errors, by their [`ErrorKind`]
//!
//! | Kind                                   | Class |
//! |----------------------------------------|-------|
//! | `Io`: a timeout ([`is_timeout`](::redis::RedisError::is_timeout)), a refused connection ([`is_connection_refusal`](::redis::RedisError::is_connection_refusal), which counts a missing Unix socket), a dropped one ([`is_connection_dropped`](::redis::RedisError::is_connection_dropped): reset, aborted, broken pipe, end of stream, …) | `Transient` |
//! | `Io`, another `io::Error`              | [`class_for_io_kind`](super::class_for_io_kind) of its kind (`PermissionDenied` → `Permission`, …), `Transient` where that has no opinion |
//! | `AuthenticationFailed`                 | `Auth` |
//! | `Parse` (a reply or value that does not convert), `UnexpectedReturnType`, `InvalidClientConfig`, `Client` (errors found before sending, TLS setup), `EmptySentinelList`, `RESP3NotSupported` | `Permanent` |
//! | `MasterNameNotFoundBySentinel`, `NoValidReplicasFoundBySentinel`, `ClusterConnectionNotFound` | `Transient` (redis retries these itself) |
//! | anything else (`Serialize` of redis's `json` feature, kinds added later) | `Unknown` |
//!
//! With this feature on, [`ChainClassifier`](super::ChainClassifier) (and so
//! [`default_classifier`](super::default_classifier)) recognises a `RedisError`, a
//! `redis::ServerError` (by its code) and a `redis::ParsingError` (`Permanent`) anywhere in an
//! error's source chain; an `Unknown` verdict counts as no opinion there.

use std::error::Error;
use std::io;

use ::redis::{ErrorKind, ParsingError, RedisError, ServerError};

use crate::class::{Classification, ErrorClass};
use crate::classify::{ClassifyError, chain, io_entry, verdict};

/// One row of the server code table: code, class, detail string.
type CodeRow = (&'static str, ErrorClass, &'static str);

macro_rules! codes {
    ($($class:ident: [$($code:literal),+ $(,)?]),+ $(,)?) => {
        &[$($(($code, ErrorClass::$class, concat!("redis: ", $code)),)+)+]
    };
}

/// The server error codes (`ERR` is handled on its own, and MOVED and ASK have their own
/// details).
const CODES: &[CodeRow] = codes![
    Transient: [
        "BUSY",
        "LOADING",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "MASTERDOWN",
        "NOREPLICAS",
        "READONLY",
    ],
    Auth: ["NOAUTH", "WRONGPASS"],
    Permission: ["NOPERM"],
    ServerError: ["OOM", "MISCONF"],
    Permanent: [
        "WRONGTYPE",
        "EXECABORT",
        "NOSCRIPT",
        "CROSSSLOT",
        "NOTBUSY",
        "NOSUB",
        "BUSYKEY",
        "BUSYGROUP",
        "NOGROUP",
        "NOPROTO",
    ],
];

/// The redirects, with the reason they are not retried.
const REDIRECTS: &[CodeRow] = &[
    (
        "MOVED",
        ErrorClass::Permanent,
        "redis: MOVED redirect; a cluster client must follow it to another node, sending the \
         request to the same node again repeats it",
    ),
    (
        "ASK",
        ErrorClass::Permanent,
        "redis: ASK redirect; a cluster client must follow it to another node, sending the \
         request to the same node again repeats it",
    ),
];

/// The detail of `-ERR` when the server has no room for another client.
const MAX_CLIENTS: &str = "max number of clients reached";

/// Classifies a `redis::RedisError`: server errors by their code, other errors by their kind.
/// See the [module documentation](self) for the tables.
pub fn classify_redis_error(err: &RedisError) -> Classification {
    opinion(err).unwrap_or(Classification::new(ErrorClass::Unknown))
}

impl ClassifyError for RedisError {
    /// [`classify_redis_error`], or `None` where that gives `Unknown`.
    fn classification(&self) -> Option<Classification> {
        opinion(self)
    }
}

/// The chain classifier's probe: `Some` when `err` is a `RedisError` (or the `ServerError` or
/// `ParsingError` one carries) with a known class.
pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
    if let Some(err) = err.downcast_ref::<RedisError>() {
        return opinion(err);
    }
    if let Some(err) = err.downcast_ref::<ServerError>() {
        let (class, details) = code_entry(err.code(), err.details())?;
        return Some(verdict(class, details));
    }
    err.downcast_ref::<ParsingError>()
        .map(|_| verdict(ErrorClass::Permanent, "redis: parse error"))
}

fn opinion(err: &RedisError) -> Option<Classification> {
    if let Some((class, details)) = err.code().and_then(|code| code_entry(code, err.detail())) {
        return Some(verdict(class, details));
    }
    use ErrorClass::{Auth, Permanent, Transient};
    let (class, details) = match err.kind() {
        ErrorKind::Io => return Some(io(err)),
        ErrorKind::AuthenticationFailed => (Auth, "redis: authentication failed"),
        ErrorKind::Parse => (Permanent, "redis: parse error"),
        ErrorKind::UnexpectedReturnType => (Permanent, "redis: unexpected return type"),
        ErrorKind::InvalidClientConfig => (Permanent, "redis: invalid client config"),
        ErrorKind::Client => (Permanent, "redis: client error"),
        ErrorKind::EmptySentinelList => (Permanent, "redis: empty sentinel list"),
        ErrorKind::RESP3NotSupported => (Permanent, "redis: RESP3 not supported"),
        ErrorKind::MasterNameNotFoundBySentinel => {
            (Transient, "redis: master name not found by sentinel")
        }
        ErrorKind::NoValidReplicasFoundBySentinel => {
            (Transient, "redis: no valid replicas found by sentinel")
        }
        ErrorKind::ClusterConnectionNotFound => (Transient, "redis: cluster connection not found"),
        // Server errors whose code is not in the table, extension errors, kinds added later.
        _ => return None,
    };
    Some(verdict(class, details))
}

fn code_entry(code: &str, detail: Option<&str>) -> Option<(ErrorClass, &'static str)> {
    if code == "ERR" {
        return Some(match detail {
            Some(detail) if detail.starts_with(MAX_CLIENTS) => (
                ErrorClass::RateLimit,
                "redis: ERR max number of clients reached",
            ),
            _ => (ErrorClass::Permanent, "redis: ERR"),
        });
    }
    CODES
        .iter()
        .chain(REDIRECTS)
        .find(|(c, _, _)| *c == code)
        .map(|&(_, class, details)| (class, details))
}

fn io(err: &RedisError) -> Classification {
    let transient = |details| verdict(ErrorClass::Transient, details);
    if err.is_timeout() {
        transient("redis: timeout")
    } else if err.is_connection_refusal() {
        transient("redis: connection refused")
    } else if err.is_connection_dropped() {
        transient("redis: connection dropped")
    } else {
        io_kind(err)
            .and_then(io_entry)
            .map_or_else(|| transient("redis: io error"), |(c, d)| verdict(c, d))
    }
}

/// The kind of the `io::Error` inside `err` (redis keeps it in an `Arc<dyn Error>`, which the
/// chain walk steps into).
fn io_kind(err: &RedisError) -> Option<io::ErrorKind> {
    chain(err)
        .skip(1)
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}

#[cfg(test)]
mod tests {
    use ::redis::{ErrorKind, RedisError, ServerError, make_extension_error, parse_redis_value};

    use super::*;
    use crate::classify::strict_classifier;

    /// The error redis's own parser makes of a server reply.
    fn reply(line: &str) -> RedisError {
        let bytes = format!("-{line}\r\n");
        parse_redis_value(bytes.as_bytes())
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    fn io_error(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::from(kind))
    }

    #[test]
    fn every_server_code_in_the_table() {
        for &(code, class, details) in CODES.iter().chain(REDIRECTS) {
            let err = reply(&format!("{code} something"));
            assert_eq!(err.code(), Some(code));
            let c = classify_redis_error(&err);
            assert_eq!(c, verdict(class, details), "{code}");
            assert_eq!(err.classification(), Some(c), "{code}");
        }
    }

    #[test]
    fn server_replies_named_in_the_documentation() {
        use ErrorClass::*;
        let cases: &[(&str, ErrorClass, &str)] = &[
            (
                "BUSY Redis is busy running a script.",
                Transient,
                "redis: BUSY",
            ),
            (
                "LOADING Redis is loading the dataset in memory",
                Transient,
                "redis: LOADING",
            ),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                Transient,
                "redis: TRYAGAIN",
            ),
            (
                "CLUSTERDOWN The cluster is down",
                Transient,
                "redis: CLUSTERDOWN",
            ),
            (
                "MASTERDOWN Link with MASTER is down",
                Transient,
                "redis: MASTERDOWN",
            ),
            (
                "READONLY You can't write against a read only replica.",
                Transient,
                "redis: READONLY",
            ),
            (
                "NOREPLICAS Not enough good replicas to write.",
                Transient,
                "redis: NOREPLICAS",
            ),
            ("MOVED 3999 127.0.0.1:6381", Permanent, REDIRECTS[0].2),
            ("ASK 3999 127.0.0.1:6381", Permanent, REDIRECTS[1].2),
            ("NOAUTH Authentication required.", Auth, "redis: NOAUTH"),
            (
                "WRONGPASS invalid username-password pair or user is disabled.",
                Auth,
                "redis: WRONGPASS",
            ),
            (
                "NOPERM User app has no permissions to run the 'flushall' command",
                Permission,
                "redis: NOPERM",
            ),
            (
                "OOM command not allowed when used memory > 'maxmemory'.",
                ServerError,
                "redis: OOM",
            ),
            (
                "MISCONF Redis is configured to save RDB snapshots",
                ServerError,
                "redis: MISCONF",
            ),
            (
                "ERR max number of clients reached",
                RateLimit,
                "redis: ERR max number of clients reached",
            ),
            ("ERR syntax error", Permanent, "redis: ERR"),
            ("ERR unknown command 'FOO'", Permanent, "redis: ERR"),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                Permanent,
                "redis: WRONGTYPE",
            ),
            (
                "EXECABORT Transaction discarded because of previous errors.",
                Permanent,
                "redis: EXECABORT",
            ),
            ("NOSCRIPT No matching script.", Permanent, "redis: NOSCRIPT"),
            (
                "CROSSSLOT Keys in request don't hash to the same slot",
                Permanent,
                "redis: CROSSSLOT",
            ),
            (
                "BUSYKEY Target key name already exists.",
                Permanent,
                "redis: BUSYKEY",
            ),
            (
                "BUSYGROUP Consumer Group name already exists",
                Permanent,
                "redis: BUSYGROUP",
            ),
        ];
        for &(line, class, details) in cases {
            let c = classify_redis_error(&reply(line));
            assert_eq!(c, verdict(class, details), "{line}");
        }
    }

    #[test]
    fn unknown_server_codes_are_unknown_and_no_opinion() {
        for err in [
            reply("SOMETHINGNEW happened"),
            make_extension_error("SOMETHINGNEW".into(), None),
        ] {
            assert_eq!(
                classify_redis_error(&err),
                Classification::new(ErrorClass::Unknown)
            );
            assert_eq!(err.classification(), None);
        }
        // Extension errors built by hand follow the same table.
        let err = make_extension_error("BUSY".into(), Some("script".into()));
        assert_eq!(
            classify_redis_error(&err),
            verdict(ErrorClass::Transient, "redis: BUSY")
        );
    }

    #[test]
    fn server_and_parsing_errors_alone_in_a_chain() {
        let server = ServerError::try_from(reply("NOPERM no")).unwrap();
        let err = io::Error::other(server);
        assert_eq!(
            strict_classifier(&err),
            verdict(ErrorClass::Permission, "redis: NOPERM")
        );
        let server = ServerError::try_from(reply("ERR max number of clients reached")).unwrap();
        assert_eq!(strict_classifier(&server).class, ErrorClass::RateLimit);
        let value = parse_redis_value(b"+not a number\r\n").unwrap();
        let parsing = ::redis::from_redis_value::<i64>(value).unwrap_err();
        assert_eq!(
            strict_classifier(&parsing),
            verdict(ErrorClass::Permanent, "redis: parse error")
        );
    }

    #[test]
    fn io_errors() {
        use ErrorClass::*;
        use io::ErrorKind as K;
        let cases: &[(K, ErrorClass, &str)] = &[
            (K::TimedOut, Transient, "redis: timeout"),
            (K::WouldBlock, Transient, "redis: timeout"),
            (K::ConnectionRefused, Transient, "redis: connection refused"),
            (K::ConnectionReset, Transient, "redis: connection dropped"),
            (K::ConnectionAborted, Transient, "redis: connection dropped"),
            (K::BrokenPipe, Transient, "redis: connection dropped"),
            (K::UnexpectedEof, Transient, "redis: connection dropped"),
            (K::NotConnected, Transient, "redis: connection dropped"),
            (K::Interrupted, Transient, "io: interrupted"),
            (K::HostUnreachable, Transient, "io: host unreachable"),
            (K::PermissionDenied, Permission, "io: permission denied"),
            (K::Unsupported, Permanent, "io: unsupported"),
            (K::Other, Transient, "redis: io error"),
        ];
        for &(kind, class, details) in cases {
            let err = io_error(kind);
            assert!(err.is_io_error());
            assert_eq!(
                classify_redis_error(&err),
                verdict(class, details),
                "{kind:?}"
            );
        }
        // A missing Unix socket counts as a refused connection.
        let err = io_error(K::NotFound);
        let expected = if cfg!(unix) {
            "redis: connection refused"
        } else {
            "redis: connection dropped"
        };
        assert_eq!(classify_redis_error(&err), verdict(Transient, expected));
        // An I/O error without an `io::Error` (as redis reports some closed connections).
        let err = RedisError::from((ErrorKind::Io, "connection closed"));
        assert_eq!(
            classify_redis_error(&err),
            verdict(Transient, "redis: connection dropped")
        );
    }

    #[test]
    fn other_kinds() {
        use ErrorClass::*;
        let cases: &[(ErrorKind, ErrorClass, &str)] = &[
            (
                ErrorKind::AuthenticationFailed,
                Auth,
                "redis: authentication failed",
            ),
            (ErrorKind::Parse, Permanent, "redis: parse error"),
            (
                ErrorKind::UnexpectedReturnType,
                Permanent,
                "redis: unexpected return type",
            ),
            (
                ErrorKind::InvalidClientConfig,
                Permanent,
                "redis: invalid client config",
            ),
            (ErrorKind::Client, Permanent, "redis: client error"),
            (
                ErrorKind::EmptySentinelList,
                Permanent,
                "redis: empty sentinel list",
            ),
            (
                ErrorKind::RESP3NotSupported,
                Permanent,
                "redis: RESP3 not supported",
            ),
            (
                ErrorKind::MasterNameNotFoundBySentinel,
                Transient,
                "redis: master name not found by sentinel",
            ),
            (
                ErrorKind::NoValidReplicasFoundBySentinel,
                Transient,
                "redis: no valid replicas found by sentinel",
            ),
            (
                ErrorKind::ClusterConnectionNotFound,
                Transient,
                "redis: cluster connection not found",
            ),
        ];
        for &(kind, class, details) in cases {
            let err = RedisError::from((kind, "test"));
            assert_eq!(
                classify_redis_error(&err),
                verdict(class, details),
                "{kind:?}"
            );
            let err = RedisError::from((kind, "test", "with detail".to_owned()));
            assert_eq!(
                classify_redis_error(&err),
                verdict(class, details),
                "{kind:?}"
            );
        }
        // An extension error kind built by hand has no code: no opinion.
        let err = RedisError::from((ErrorKind::Extension, "test"));
        assert_eq!(err.classification(), None);
    }

    #[test]
    fn a_value_that_does_not_convert_is_permanent() {
        let value = parse_redis_value(b"+not a number\r\n").unwrap();
        let err = ::redis::from_redis_value::<i64>(value).unwrap_err();
        let err = RedisError::from(err);
        assert_eq!(classify_redis_error(&err).class, ErrorClass::Permanent);
    }

    #[test]
    fn the_chain_classifier_finds_redis_errors() {
        let err = io::Error::other(reply("LOADING loading"));
        assert_eq!(
            strict_classifier(&err),
            verdict(ErrorClass::Transient, "redis: LOADING")
        );
        // No opinion: the chain goes on (to nothing, here).
        let err = io::Error::other(reply("SOMETHINGNEW"));
        assert_eq!(
            strict_classifier(&err),
            Classification::new(ErrorClass::Unknown)
        );
    }
}
