//! SQLSTATE codes (feature `sqlstate`), and the error types of `tokio-postgres` (feature
//! `tokio-postgres`) and `sqlx` (feature `sqlx`).
//!
//! ```
//! use redress::classify::sqlstate::{class_for_sqlstate, classify_sqlstate};
//! use redress::ErrorClass;
//!
//! // A serialization failure: run the whole transaction again.
//! assert_eq!(class_for_sqlstate("40001"), Some(ErrorClass::Concurrency));
//! // An exact code first, then its two-character class: 23505 unique_violation is in class 23.
//! assert_eq!(class_for_sqlstate("23505"), Some(ErrorClass::Permanent));
//! assert_eq!(class_for_sqlstate("08006"), Some(ErrorClass::Transient));
//! // Not a SQLSTATE, or MySQL's catch-all "general error": no opinion.
//! assert_eq!(class_for_sqlstate("4001"), None);
//! assert_eq!(class_for_sqlstate("HY000"), None);
//!
//! let c = classify_sqlstate("40P01").unwrap();
//! assert_eq!(c.class, ErrorClass::Concurrency);
//! assert_eq!(c.details.as_deref(), Some("sqlstate: 40P01 deadlock_detected"));
//! ```
//!
//! A SQLSTATE is five ASCII letters or digits; the first two name its class. Anything else
//! (wrong length, other characters) gets no opinion. Letters are matched without regard to
//! case. [`class_for_sqlstate`] looks the code up in the **exact codes** table first, then its
//! class in the **classes** table; a code in neither gets no opinion. The names are
//! PostgreSQL's condition names; MySQL and MariaDB use the same standard codes where they
//! exist (MySQL's deadlock, error 1213, is `40001`), and the codes marked *MySQL* are theirs.
//!
//! # Exact codes
//!
//! | Code    | Condition                                     | Class         |
//! |---------|-----------------------------------------------|---------------|
//! | `40001` | `serialization_failure` (MySQL: deadlock)     | `Concurrency` |
//! | `40P01` | `deadlock_detected`                           | `Concurrency` |
//! | `55P03` | `lock_not_available` (`lock_timeout`, `NOWAIT`) | `Concurrency` |
//! | `55006` | `object_in_use`                               | `Concurrency` |
//! | `XA102` | *MySQL* `XA_RBDEADLOCK`                       | `Concurrency` |
//! | `40002` | `transaction_integrity_constraint_violation`  | `Permanent`   |
//! | `40003` | `statement_completion_unknown`                | `Unknown`     |
//! | `08007` | `transaction_resolution_unknown`              | `Unknown`     |
//! | `08P01` | `protocol_violation`                          | `Permanent`   |
//! | `53300` | `too_many_connections`                        | `RateLimit`   |
//! | `53100` | `disk_full`                                   | `Permanent`   |
//! | `53200` | `out_of_memory`                               | `ServerError` |
//! | `53400` | `configuration_limit_exceeded`                | `Permanent`   |
//! | `57014` | `query_canceled` (`statement_timeout`, cancel request) | `Transient` |
//! | `70100` | *MySQL* query execution was interrupted       | `Transient`   |
//! | `57P01` | `admin_shutdown`                              | `Transient`   |
//! | `57P02` | `crash_shutdown`                              | `Transient`   |
//! | `57P03` | `cannot_connect_now`                          | `Transient`   |
//! | `57P04` | `database_dropped`                            | `Permanent`   |
//! | `57P05` | `idle_session_timeout`                        | `Transient`   |
//! | `25P03` | `idle_in_transaction_session_timeout`         | `Transient`   |
//! | `42501` | `insufficient_privilege`                      | `Permission`  |
//! | `P0001` | `raise_exception` (a PL/pgSQL `RAISE`)        | no opinion    |
//! | `HY000` | *MySQL* general error                         | no opinion    |
//!
//! # Classes
//!
//! | Class | Condition                                     | Class         |
//! |-------|-----------------------------------------------|---------------|
//! | `08`  | `connection_exception`                        | `Transient`   |
//! | `28`  | `invalid_authorization_specification` (`28P01` `invalid_password`) | `Auth` |
//! | `40`  | `transaction_rollback`                        | `Concurrency` |
//! | `53`  | `insufficient_resources`                      | `ServerError` |
//! | `57`  | `operator_intervention`                       | `Transient`   |
//! | `58`  | `system_error` (`58030` `io_error`, …)        | `ServerError` |
//! | `72`  | `snapshot_too_old`                            | `Concurrency` |
//! | `F0`  | `config_file_error`                           | `ServerError` |
//! | `XX`  | `internal_error` (`XX001` `data_corrupted`, `XX002` `index_corrupted`) | `ServerError` |
//! | `03`  | `sql_statement_not_yet_complete`              | `Permanent`   |
//! | `09`  | `triggered_action_exception`                  | `Permanent`   |
//! | `0A`  | `feature_not_supported`                       | `Permanent`   |
//! | `0B`  | `invalid_transaction_initiation`              | `Permanent`   |
//! | `0F`  | `locator_exception`                           | `Permanent`   |
//! | `0L`  | `invalid_grantor`                             | `Permanent`   |
//! | `0P`  | `invalid_role_specification`                  | `Permanent`   |
//! | `0Z`  | `diagnostics_exception`                       | `Permanent`   |
//! | `20`  | `case_not_found`                              | `Permanent`   |
//! | `21`  | `cardinality_violation`                       | `Permanent`   |
//! | `22`  | `data_exception`                              | `Permanent`   |
//! | `23`  | `integrity_constraint_violation`              | `Permanent`   |
//! | `24`  | `invalid_cursor_state`                        | `Permanent`   |
//! | `25`  | `invalid_transaction_state`                   | `Permanent`   |
//! | `26`  | `invalid_sql_statement_name`                  | `Permanent`   |
//! | `27`  | `triggered_data_change_violation`             | `Permanent`   |
//! | `2B`  | `dependent_privilege_descriptors_still_exist` | `Permanent`   |
//! | `2D`  | `invalid_transaction_termination`             | `Permanent`   |
//! | `2F`  | `sql_routine_exception`                       | `Permanent`   |
//! | `34`  | `invalid_cursor_name`                         | `Permanent`   |
//! | `38`  | `external_routine_exception`                  | `Permanent`   |
//! | `39`  | `external_routine_invocation_exception`       | `Permanent`   |
//! | `3B`  | `savepoint_exception`                         | `Permanent`   |
//! | `3D`  | `invalid_catalog_name`                        | `Permanent`   |
//! | `3F`  | `invalid_schema_name`                         | `Permanent`   |
//! | `42`  | `syntax_error_or_access_rule_violation`       | `Permanent`   |
//! | `44`  | `with_check_option_violation`                 | `Permanent`   |
//! | `54`  | `program_limit_exceeded`                      | `Permanent`   |
//! | `55`  | `object_not_in_prerequisite_state`            | `Permanent`   |
//! | `P0`  | `plpgsql_error`                               | `Permanent`   |
//! | anything else (`00` success, `01` warning, `02` no data, `HV` foreign data wrapper, `HY`, `XA`, …) | | no opinion |
//!
//! Why these choices:
//!
//! - **Concurrency** is a conflict with concurrent work that a fresh run of the *whole
//!   transaction* may not meet again: serialization failures, deadlocks, a lock that could not
//!   be taken in time, an object another session is using, a snapshot too old to read from.
//! - **Unknown outcomes** (`40003`, `08007`): the server cannot say whether the statement or
//!   the commit took effect. Whether a retry is safe depends on the operation's idempotency, so
//!   these are reported as [`Unknown`](ErrorClass::Unknown), and the policy's setting for
//!   that class decides.
//! - `08P01 protocol_violation` is `Permanent`: a client or server bug that a new connection
//!   does not fix, unlike the rest of class `08`.
//! - `53300 too_many_connections` is `RateLimit`: the server is full and asks the caller to
//!   come back later. `53200 out_of_memory` is `ServerError` (the server is short of memory
//!   now, which may pass). `53100 disk_full` is `Permanent`, as is a full disk in
//!   [`class_for_io_kind`](super::class_for_io_kind): it does not clear up within a retry loop.
//!   `53400 configuration_limit_exceeded` is `Permanent`: the same statement hits the same
//!   limit.
//! - `57014 query_canceled` is `Transient`: it is what `statement_timeout` raises, and a
//!   timeout is a passing fault like any other (a `lock_timeout` is `55P03`, `Concurrency`).
//! - `57P05` and `25P03` end an idle session; the next attempt runs on a new connection.
//! - `25006 read_only_sql_transaction` stays `Permanent` with the rest of class `25`, although
//!   it is also what a primary demoted to standby answers during a failover; a policy that
//!   expects failovers can reclassify it.
//! - `P0001` is a user's `RAISE EXCEPTION`, whose meaning only the user knows, and MySQL
//!   reports most of its errors (lock wait timeout among them) as `HY000`: no opinion.
//!
//! # SQLite result codes ([`class_for_sqlite_code`])
//!
//! SQLite has no SQLSTATEs; its (extended) result codes are numbers, which sqlx reports as
//! the database error's code. An extended code is classified by its primary code (the low
//! eight bits: `517 SQLITE_BUSY_SNAPSHOT` is `5 SQLITE_BUSY`):
//!
//! | Primary code                  | Class         |
//! |-------------------------------|---------------|
//! | `5 SQLITE_BUSY`, `6 SQLITE_LOCKED` | `Concurrency` |
//! | `9 SQLITE_INTERRUPT`, `15 SQLITE_PROTOCOL`, `17 SQLITE_SCHEMA` | `Transient` |
//! | `3 SQLITE_PERM`, `23 SQLITE_AUTH` | `Permission` |
//! | `2 SQLITE_INTERNAL`, `7 SQLITE_NOMEM`, `10 SQLITE_IOERR`, `11 SQLITE_CORRUPT` | `ServerError` |
//! | `8 SQLITE_READONLY`, `13 SQLITE_FULL`, `14 SQLITE_CANTOPEN`, `18 SQLITE_TOOBIG`, `19 SQLITE_CONSTRAINT`, `20 SQLITE_MISMATCH`, `21 SQLITE_MISUSE`, `22 SQLITE_NOLFS`, `25 SQLITE_RANGE`, `26 SQLITE_NOTADB` | `Permanent` |
//! | anything else (`1 SQLITE_ERROR`, the generic code of syntax errors and missing tables; `4 SQLITE_ABORT`; …) | no opinion |
//!
//! # tokio-postgres ([`classify_postgres_error`], feature `tokio-postgres`)
//!
//! | `tokio_postgres::Error`                                   | Class                       |
//! |-----------------------------------------------------------|-----------------------------|
//! | carries a SQLSTATE ([`code()`](::tokio_postgres::Error::code)) in the tables above | that class |
//! | [`is_closed()`](::tokio_postgres::Error::is_closed)       | `Transient`                 |
//! | timeout waiting for the server                            | `Transient`                 |
//! | an `io::Error` in its source chain (connect, I/O)         | [`class_for_io_kind`](super::class_for_io_kind) of its kind, `Transient` where that has no opinion |
//! | authentication error (unsupported method, SASL failure)   | `Auth`                      |
//! | invalid connection string or configuration, TLS handshake error | `Permanent`           |
//! | parameter serialization, column deserialization, unknown column, wrong column, parameter or row count | `Permanent` |
//! | anything else (an unmapped SQLSTATE, unexpected or unparseable message) | `Unknown` (no opinion) |
//!
//! `tokio_postgres::Error` exposes only some of its kinds through methods; the others are
//! recognised by the fixed text its `Display` gives each kind (read into a small buffer, no
//! allocation), so a future version that rewords them gives `Unknown`, never a wrong class.
//!
//! # sqlx ([`classify_sqlx_error`], feature `sqlx`)
//!
//! | `sqlx::Error` variant       | Class                                                       |
//! |-----------------------------|-------------------------------------------------------------|
//! | `Database`                  | its `code()`: a SQLSTATE through the tables above (PostgreSQL, MySQL), else a SQLite result code (one to four digits) through [`class_for_sqlite_code`]; else its `kind()`: unique, foreign key, not-null or check violation → `Permanent`; else `Unknown` |
//! | `Io`                        | [`class_for_io_kind`](super::class_for_io_kind) of its kind, else `Transient` |
//! | `Tls`                       | an `io::Error` in its source chain by its kind, else `Permanent` (certificates, configuration) |
//! | `PoolTimedOut`              | `Transient`: every connection was busy, or none could be opened, for the pool's acquire timeout |
//! | `WorkerCrashed`             | `Transient`                                                 |
//! | `PoolClosed`                | `Permanent`: the application closed the pool                |
//! | `Configuration`, `InvalidArgument`, `RowNotFound`, `TypeNotFound`, `ColumnIndexOutOfBounds`, `ColumnNotFound`, `ColumnDecode`, `Encode`, `Decode`, `InvalidSavePointStatement` | `Permanent` |
//! | `Protocol`, `BeginFailed`   | `Unknown`: a driver bug or a desynchronised connection; nothing says whether a retry helps |
//! | `AnyDriverError`            | an `io::Error` in its source chain by its kind, else no opinion |
//! | `Migrate`, variants added later | no opinion (`Unknown`); the chain classifier looks at their sources |
//!
//! # In the chain classifier
//!
//! With these features on, [`ChainClassifier`](super::ChainClassifier) (and so
//! [`default_classifier`](super::default_classifier)) recognises, anywhere in an error's
//! source chain, `tokio_postgres::Error` and `tokio_postgres::error::DbError`, and
//! `sqlx::Error` and the `Box<dyn DatabaseError>` inside its `Database` variant. An `Unknown`
//! verdict without a reason counts as no opinion there, so the walk goes on.

use std::error::Error;

use crate::class::{Classification, ErrorClass};
use crate::classify::verdict;

/// One row of the exact-code table: code, class (`None`: no opinion), detail string.
type CodeRow = (&'static str, Option<ErrorClass>, &'static str);

/// One row of the class table: two-character class, class, detail string.
type ClassRow = (&'static str, ErrorClass, &'static str);

macro_rules! codes {
    ($($code:literal $name:literal => $class:ident),+ $(,)?) => {
        &[$(($code, codes!(@class $class), concat!("sqlstate: ", $code, " ", $name)),)+]
    };
    (@class None) => { None };
    (@class $class:ident) => { Some(ErrorClass::$class) };
}

macro_rules! classes {
    ($($class:literal $name:literal => $verdict:ident),+ $(,)?) => {
        &[$(($class, ErrorClass::$verdict, concat!("sqlstate: class ", $class, " ", $name)),)+]
    };
}

/// The exact codes, looked up before the classes.
const CODES: &[CodeRow] = codes![
    "40001" "serialization_failure" => Concurrency,
    "40P01" "deadlock_detected" => Concurrency,
    "55P03" "lock_not_available" => Concurrency,
    "55006" "object_in_use" => Concurrency,
    "XA102" "xa_rbdeadlock" => Concurrency,
    "40002" "transaction_integrity_constraint_violation" => Permanent,
    "40003" "statement_completion_unknown" => Unknown,
    "08007" "transaction_resolution_unknown" => Unknown,
    "08P01" "protocol_violation" => Permanent,
    "53300" "too_many_connections" => RateLimit,
    "53100" "disk_full" => Permanent,
    "53200" "out_of_memory" => ServerError,
    "53400" "configuration_limit_exceeded" => Permanent,
    "57014" "query_canceled" => Transient,
    "70100" "query_interrupted" => Transient,
    "57P01" "admin_shutdown" => Transient,
    "57P02" "crash_shutdown" => Transient,
    "57P03" "cannot_connect_now" => Transient,
    "57P04" "database_dropped" => Permanent,
    "57P05" "idle_session_timeout" => Transient,
    "25P03" "idle_in_transaction_session_timeout" => Transient,
    "42501" "insufficient_privilege" => Permission,
    "P0001" "raise_exception" => None,
    "HY000" "general_error" => None,
];

/// The two-character classes.
const CLASSES: &[ClassRow] = classes![
    "08" "connection_exception" => Transient,
    "28" "invalid_authorization_specification" => Auth,
    "40" "transaction_rollback" => Concurrency,
    "53" "insufficient_resources" => ServerError,
    "57" "operator_intervention" => Transient,
    "58" "system_error" => ServerError,
    "72" "snapshot_too_old" => Concurrency,
    "F0" "config_file_error" => ServerError,
    "XX" "internal_error" => ServerError,
    "03" "sql_statement_not_yet_complete" => Permanent,
    "09" "triggered_action_exception" => Permanent,
    "0A" "feature_not_supported" => Permanent,
    "0B" "invalid_transaction_initiation" => Permanent,
    "0F" "locator_exception" => Permanent,
    "0L" "invalid_grantor" => Permanent,
    "0P" "invalid_role_specification" => Permanent,
    "0Z" "diagnostics_exception" => Permanent,
    "20" "case_not_found" => Permanent,
    "21" "cardinality_violation" => Permanent,
    "22" "data_exception" => Permanent,
    "23" "integrity_constraint_violation" => Permanent,
    "24" "invalid_cursor_state" => Permanent,
    "25" "invalid_transaction_state" => Permanent,
    "26" "invalid_sql_statement_name" => Permanent,
    "27" "triggered_data_change_violation" => Permanent,
    "2B" "dependent_privilege_descriptors_still_exist" => Permanent,
    "2D" "invalid_transaction_termination" => Permanent,
    "2F" "sql_routine_exception" => Permanent,
    "34" "invalid_cursor_name" => Permanent,
    "38" "external_routine_exception" => Permanent,
    "39" "external_routine_invocation_exception" => Permanent,
    "3B" "savepoint_exception" => Permanent,
    "3D" "invalid_catalog_name" => Permanent,
    "3F" "invalid_schema_name" => Permanent,
    "42" "syntax_error_or_access_rule_violation" => Permanent,
    "44" "with_check_option_violation" => Permanent,
    "54" "program_limit_exceeded" => Permanent,
    "55" "object_not_in_prerequisite_state" => Permanent,
    "P0" "plpgsql_error" => Permanent,
];

/// The class of a SQLSTATE: the exact code first, then its two-character class.
///
/// `None` when `code` is not five ASCII letters or digits, or the tables have no opinion
/// about it. See the [module documentation](self) for the tables.
///
/// ```
/// use redress::classify::sqlstate::class_for_sqlstate;
/// use redress::ErrorClass;
///
/// assert_eq!(class_for_sqlstate("53300"), Some(ErrorClass::RateLimit));
/// assert_eq!(class_for_sqlstate("28P01"), Some(ErrorClass::Auth));
/// assert_eq!(class_for_sqlstate("42501"), Some(ErrorClass::Permission));
/// assert_eq!(class_for_sqlstate("42P01"), Some(ErrorClass::Permanent));
/// assert_eq!(class_for_sqlstate("XX000"), Some(ErrorClass::ServerError));
/// assert_eq!(class_for_sqlstate("01000"), None);
/// ```
pub fn class_for_sqlstate(code: &str) -> Option<ErrorClass> {
    sqlstate_entry(code).map(|(class, _)| class)
}

/// The classification of a SQLSTATE ([`class_for_sqlstate`]), with details naming the code
/// and its condition: `"sqlstate: 40001 serialization_failure"` for an exact code,
/// `"sqlstate: class 23 integrity_constraint_violation"` for one known by its class. The
/// details are static strings: nothing is allocated.
pub fn classify_sqlstate(code: &str) -> Option<Classification> {
    let (class, details) = sqlstate_entry(code)?;
    Some(verdict(class, details))
}

fn sqlstate_entry(code: &str) -> Option<(ErrorClass, &'static str)> {
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if let Some(&(_, class, details)) = CODES
        .iter()
        .find(|(exact, _, _)| exact.eq_ignore_ascii_case(code))
    {
        return class.map(|class| (class, details));
    }
    let prefix = code.get(..2)?;
    CLASSES
        .iter()
        .find(|(class, _, _)| class.eq_ignore_ascii_case(prefix))
        .map(|&(_, class, details)| (class, details))
}

/// One row of the SQLite table: primary result code, class, detail string.
type SqliteRow = (i32, ErrorClass, &'static str);

macro_rules! sqlite_codes {
    ($($code:literal $name:literal => $class:ident),+ $(,)?) => {
        &[$(($code, ErrorClass::$class, concat!("sqlite: ", $code, " ", $name)),)+]
    };
}

/// The SQLite primary result codes.
const SQLITE: &[SqliteRow] = sqlite_codes![
    5 "SQLITE_BUSY" => Concurrency,
    6 "SQLITE_LOCKED" => Concurrency,
    9 "SQLITE_INTERRUPT" => Transient,
    15 "SQLITE_PROTOCOL" => Transient,
    17 "SQLITE_SCHEMA" => Transient,
    3 "SQLITE_PERM" => Permission,
    23 "SQLITE_AUTH" => Permission,
    2 "SQLITE_INTERNAL" => ServerError,
    7 "SQLITE_NOMEM" => ServerError,
    10 "SQLITE_IOERR" => ServerError,
    11 "SQLITE_CORRUPT" => ServerError,
    8 "SQLITE_READONLY" => Permanent,
    13 "SQLITE_FULL" => Permanent,
    14 "SQLITE_CANTOPEN" => Permanent,
    18 "SQLITE_TOOBIG" => Permanent,
    19 "SQLITE_CONSTRAINT" => Permanent,
    20 "SQLITE_MISMATCH" => Permanent,
    21 "SQLITE_MISUSE" => Permanent,
    22 "SQLITE_NOLFS" => Permanent,
    25 "SQLITE_RANGE" => Permanent,
    26 "SQLITE_NOTADB" => Permanent,
];

/// The class of a SQLite result code, primary or extended (classified by its primary code,
/// the low eight bits). See the [module documentation](self#sqlite-result-codes-class_for_sqlite_code).
///
/// ```
/// use redress::classify::sqlstate::class_for_sqlite_code;
/// use redress::ErrorClass;
///
/// assert_eq!(class_for_sqlite_code(5), Some(ErrorClass::Concurrency)); // SQLITE_BUSY
/// assert_eq!(class_for_sqlite_code(2067), Some(ErrorClass::Permanent)); // SQLITE_CONSTRAINT_UNIQUE
/// assert_eq!(class_for_sqlite_code(1), None); // SQLITE_ERROR
/// ```
pub fn class_for_sqlite_code(code: i32) -> Option<ErrorClass> {
    sqlite_entry(code).map(|(class, _)| class)
}

fn sqlite_entry(code: i32) -> Option<(ErrorClass, &'static str)> {
    let primary = code & 0xff;
    SQLITE
        .iter()
        .find(|(c, _, _)| *c == primary)
        .map(|&(_, class, details)| (class, details))
}

/// A SQLite result code as sqlx reports it: one to four decimal digits.
#[cfg(any(feature = "sqlx", test))]
fn classify_sqlite_text(code: &str) -> Option<Classification> {
    if code.is_empty() || code.len() > 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (class, details) = sqlite_entry(code.parse().ok()?)?;
    Some(verdict(class, details))
}

/// The chain classifier's probe: `Some` when `err` is one of the enabled libraries' error
/// types and this module has an opinion about it.
#[allow(unused_variables)] // with only `sqlstate` enabled there is no error type to look for
pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
    let found: Option<Classification> = None;
    #[cfg(feature = "tokio-postgres")]
    let found = found.or_else(|| postgres::probe(err));
    #[cfg(feature = "sqlx")]
    let found = found.or_else(|| sqlx::probe(err));
    found
}

// ---------------------------------------------------------------------------------------------
// tokio-postgres
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tokio-postgres")]
pub use postgres::classify_postgres_error;

#[cfg(feature = "tokio-postgres")]
mod postgres {
    use core::fmt::{self, Write as _};
    use std::error::Error;

    use super::classify_sqlstate;
    use crate::class::{Classification, ErrorClass};
    use crate::classify::{ClassifyError, io_rule, verdict};

    /// Classifies a `tokio_postgres::Error`: its SQLSTATE, else a closed connection, a timeout,
    /// an I/O error, or the kind of client-side failure. See the
    /// [module documentation](super#tokio-postgres-classify_postgres_error).
    ///
    /// ```
    /// use redress::classify::sqlstate::classify_postgres_error;
    /// use redress::ErrorClass;
    ///
    /// let err = "port=not-a-number".parse::<tokio_postgres::Config>().unwrap_err();
    /// assert_eq!(classify_postgres_error(&err).class, ErrorClass::Permanent);
    /// ```
    pub fn classify_postgres_error(err: &::tokio_postgres::Error) -> Classification {
        opinion(err).unwrap_or(Classification::new(ErrorClass::Unknown))
    }

    impl ClassifyError for ::tokio_postgres::Error {
        /// [`classify_postgres_error`], or `None` where that gives a bare `Unknown`.
        fn classification(&self) -> Option<Classification> {
            opinion(self)
        }
    }

    pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
        if let Some(err) = err.downcast_ref::<::tokio_postgres::Error>() {
            return opinion(err);
        }
        let db = err.downcast_ref::<::tokio_postgres::error::DbError>()?;
        classify_sqlstate(db.code().code())
    }

    fn opinion(err: &::tokio_postgres::Error) -> Option<Classification> {
        if let Some(found) = err.code().and_then(|state| classify_sqlstate(state.code())) {
            return Some(found);
        }
        if err.is_closed() {
            return Some(transient("postgres: connection closed"));
        }
        let mut text = Prefix::default();
        // An `Err` only means the text was longer than the buffer.
        let _ = write!(text, "{err}");
        if text.is("timeout waiting for server") {
            return Some(transient("postgres: timeout waiting for server"));
        }
        if let Some(found) = io_rule(err) {
            return Some(found);
        }
        kind_entry(&text).map(|(class, details)| verdict(class, details))
    }

    fn transient(details: &'static str) -> Classification {
        Classification::new(ErrorClass::Transient).with_details(details)
    }

    /// One row of the kind tables: `Display` text (or its beginning), class, detail string.
    type KindRow = (&'static str, ErrorClass, &'static str);

    /// The client-side kinds whose `Display` text is fixed.
    const KIND_TEXTS: &[KindRow] = {
        use ErrorClass::{Auth, Permanent, Transient};
        &[
            (
                "authentication error",
                Auth,
                "postgres: authentication error",
            ),
            (
                "invalid connection string",
                Permanent,
                "postgres: invalid connection string",
            ),
            (
                "invalid configuration",
                Permanent,
                "postgres: invalid configuration",
            ),
            (
                "error performing TLS handshake",
                Permanent,
                "postgres: TLS handshake",
            ),
            (
                "query returned an unexpected number of columns",
                Permanent,
                "postgres: unexpected column count",
            ),
            (
                "query returned an unexpected number of rows",
                Permanent,
                "postgres: unexpected row count",
            ),
            // I/O errors whose `io::ErrorKind` has no class of its own.
            (
                "error communicating with the server",
                Transient,
                "postgres: io error",
            ),
            (
                "error connecting to server",
                Transient,
                "postgres: connect error",
            ),
        ]
    };

    /// The client-side kinds whose `Display` text starts with a fixed text.
    const KIND_PREFIXES: &[KindRow] = {
        use ErrorClass::Permanent;
        &[
            (
                "error serializing parameter ",
                Permanent,
                "postgres: parameter serialization",
            ),
            (
                "error deserializing column ",
                Permanent,
                "postgres: column deserialization",
            ),
            ("invalid column `", Permanent, "postgres: invalid column"),
            ("expected ", Permanent, "postgres: wrong parameter count"),
        ]
    };

    /// The client-side kinds, by the fixed `Display` text of each.
    fn kind_entry(text: &Prefix) -> Option<(ErrorClass, &'static str)> {
        KIND_TEXTS
            .iter()
            .find(|(t, _, _)| text.is(t))
            .or_else(|| KIND_PREFIXES.iter().find(|(t, _, _)| text.starts_with(t)))
            .map(|&(_, class, details)| (class, details))
    }

    /// The first bytes of a `Display` text, without allocating.
    struct Prefix {
        buf: [u8; 64],
        len: usize,
        truncated: bool,
    }

    impl Default for Prefix {
        fn default() -> Self {
            Self {
                buf: [0; 64],
                len: 0,
                truncated: false,
            }
        }
    }

    impl Prefix {
        fn bytes(&self) -> &[u8] {
            self.buf.get(..self.len).unwrap_or_default()
        }

        fn is(&self, text: &str) -> bool {
            !self.truncated && self.bytes() == text.as_bytes()
        }

        fn starts_with(&self, text: &str) -> bool {
            self.bytes().starts_with(text.as_bytes())
        }
    }

    impl fmt::Write for Prefix {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.buf.len() - self.len;
            let take = s.len().min(room);
            if let (Some(dst), Some(src)) = (
                self.buf.get_mut(self.len..self.len + take),
                s.as_bytes().get(..take),
            ) {
                dst.copy_from_slice(src);
                self.len += take;
            }
            if take < s.len() {
                self.truncated = true;
                return Err(fmt::Error);
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn text(s: &str) -> Prefix {
            let mut text = Prefix::default();
            let _ = text.write_str(s);
            text
        }

        #[test]
        fn every_kind_text() {
            for &(t, class, details) in KIND_TEXTS {
                assert_eq!(kind_entry(&text(t)), Some((class, details)), "{t}");
                // Exact texts only.
                assert_eq!(kind_entry(&text(&format!("{t}!"))), None, "{t}");
            }
        }

        #[test]
        fn every_kind_prefix() {
            for (t, class, details) in [
                (
                    "error serializing parameter 2",
                    KIND_PREFIXES[0].1,
                    KIND_PREFIXES[0].2,
                ),
                (
                    "error deserializing column 0",
                    KIND_PREFIXES[1].1,
                    KIND_PREFIXES[1].2,
                ),
                (
                    "invalid column `id`",
                    KIND_PREFIXES[2].1,
                    KIND_PREFIXES[2].2,
                ),
                (
                    "expected 2 parameters but got 1",
                    KIND_PREFIXES[3].1,
                    KIND_PREFIXES[3].2,
                ),
            ] {
                assert_eq!(kind_entry(&text(t)), Some((class, details)), "{t}");
            }
            for &(t, _, _) in KIND_PREFIXES {
                assert!(kind_entry(&text(t)).is_some(), "{t}");
            }
        }

        #[test]
        fn other_texts_and_long_texts() {
            for t in [
                "db error",
                "unexpected message from server",
                "connection closed",
                "",
            ] {
                assert_eq!(kind_entry(&text(t)), None, "{t}");
            }
            // A long text is cut, never taken for an exact one.
            let long = format!("authentication error{}", " ".repeat(100));
            let cut = text(&long);
            assert!(cut.truncated);
            assert_eq!(cut.bytes().len(), 64);
            assert_eq!(kind_entry(&cut), None);
            let long = format!("invalid column `{}`", "c".repeat(100));
            assert_eq!(
                kind_entry(&text(&long)),
                Some((ErrorClass::Permanent, "postgres: invalid column"))
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sqlx
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "sqlx")]
pub use sqlx::classify_sqlx_error;

#[cfg(feature = "sqlx")]
mod sqlx {
    use std::error::Error;

    use ::sqlx_core::error::{DatabaseError, Error as SqlxError, ErrorKind};

    use super::{classify_sqlite_text, classify_sqlstate};
    use crate::class::{Classification, ErrorClass};
    use crate::classify::{ClassifyError, io_entry, io_rule, verdict};

    /// Classifies a `sqlx::Error`, every variant. See the
    /// [module documentation](super#sqlx-classify_sqlx_error).
    ///
    /// ```
    /// use redress::classify::sqlstate::classify_sqlx_error;
    /// use redress::ErrorClass;
    /// use sqlx_core::error::Error;
    ///
    /// assert_eq!(classify_sqlx_error(&Error::PoolTimedOut).class, ErrorClass::Transient);
    /// assert_eq!(classify_sqlx_error(&Error::RowNotFound).class, ErrorClass::Permanent);
    /// let reset = Error::Io(std::io::ErrorKind::ConnectionReset.into());
    /// assert_eq!(classify_sqlx_error(&reset).class, ErrorClass::Transient);
    /// ```
    pub fn classify_sqlx_error(err: &SqlxError) -> Classification {
        opinion(err).unwrap_or(Classification::new(ErrorClass::Unknown))
    }

    impl ClassifyError for SqlxError {
        /// [`classify_sqlx_error`], or `None` where that gives a bare `Unknown`.
        fn classification(&self) -> Option<Classification> {
            opinion(self)
        }
    }

    pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
        if let Some(err) = err.downcast_ref::<SqlxError>() {
            return opinion(err);
        }
        database(&**err.downcast_ref::<Box<dyn DatabaseError>>()?)
    }

    fn opinion(err: &SqlxError) -> Option<Classification> {
        use ErrorClass::{Permanent, Transient, Unknown};
        let (class, details) = match err {
            SqlxError::Database(db) => return database(&**db),
            SqlxError::Io(io) => io_entry(io.kind()).unwrap_or((Transient, "sqlx: io error")),
            SqlxError::Tls(_) => return io_rule(err).or(Some(verdict(Permanent, "sqlx: tls"))),
            SqlxError::AnyDriverError(_) => return io_rule(err),
            SqlxError::PoolTimedOut => (Transient, "sqlx: pool timed out"),
            SqlxError::WorkerCrashed => (Transient, "sqlx: worker crashed"),
            SqlxError::PoolClosed => (Permanent, "sqlx: pool closed"),
            SqlxError::Configuration(_) => (Permanent, "sqlx: configuration"),
            SqlxError::InvalidArgument(_) => (Permanent, "sqlx: invalid argument"),
            SqlxError::RowNotFound => (Permanent, "sqlx: row not found"),
            SqlxError::TypeNotFound { .. } => (Permanent, "sqlx: type not found"),
            SqlxError::ColumnIndexOutOfBounds { .. } => {
                (Permanent, "sqlx: column index out of bounds")
            }
            SqlxError::ColumnNotFound(_) => (Permanent, "sqlx: column not found"),
            SqlxError::ColumnDecode { .. } => (Permanent, "sqlx: column decode"),
            SqlxError::Encode(_) => (Permanent, "sqlx: encode"),
            SqlxError::Decode(_) => (Permanent, "sqlx: decode"),
            SqlxError::InvalidSavePointStatement => {
                (Permanent, "sqlx: invalid savepoint statement")
            }
            SqlxError::Protocol(_) => (Unknown, "sqlx: protocol error"),
            SqlxError::BeginFailed => (Unknown, "sqlx: begin failed"),
            // `Migrate` (sqlx's `migrate` feature) and variants added later.
            _ => return None,
        };
        Some(verdict(class, details))
    }

    fn database(db: &dyn DatabaseError) -> Option<Classification> {
        let code = db.code();
        if let Some(found) = code
            .as_deref()
            .and_then(|code| classify_sqlstate(code).or_else(|| classify_sqlite_text(code)))
        {
            return Some(found);
        }
        let details = match db.kind() {
            ErrorKind::UniqueViolation => "sqlx: unique violation",
            ErrorKind::ForeignKeyViolation => "sqlx: foreign key violation",
            ErrorKind::NotNullViolation => "sqlx: not-null violation",
            ErrorKind::CheckViolation => "sqlx: check violation",
            _ => return None,
        };
        Some(verdict(ErrorClass::Permanent, details))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exact_code_maps_to_its_row() {
        for &(code, class, details) in CODES {
            assert_eq!(class_for_sqlstate(code), class, "{code}");
            let expected = class.map(|c| Classification::new(c).with_details(details));
            assert_eq!(classify_sqlstate(code), expected, "{code}");
            assert_eq!(details, format!("sqlstate: {code} {}", &details[16..]));
        }
    }

    #[test]
    fn every_class_maps_codes_not_listed_exactly() {
        for &(prefix, class, details) in CLASSES {
            // "…ZZZ" is no exact code, so the class decides.
            let code = format!("{prefix}ZZZ");
            assert_eq!(class_for_sqlstate(&code), Some(class), "{code}");
            let c = classify_sqlstate(&code).unwrap();
            assert_eq!(c.details.as_deref(), Some(details));
            assert!(details.starts_with(&format!("sqlstate: class {prefix} ")));
        }
    }

    #[test]
    fn codes_named_in_the_documentation() {
        use ErrorClass::*;
        let cases: &[(&str, Option<ErrorClass>)] = &[
            // concurrency
            ("40001", Some(Concurrency)),
            ("40P01", Some(Concurrency)),
            ("55P03", Some(Concurrency)),
            ("40000", Some(Concurrency)),
            ("72000", Some(Concurrency)),
            // 40002 / 40003 decisions
            ("40002", Some(Permanent)),
            ("40003", Some(Unknown)),
            // connection exceptions
            ("08000", Some(Transient)),
            ("08001", Some(Transient)),
            ("08003", Some(Transient)),
            ("08004", Some(Transient)),
            ("08006", Some(Transient)),
            ("08S01", Some(Transient)), // MySQL communication link failure
            ("08P01", Some(Permanent)),
            ("08007", Some(Unknown)),
            // insufficient resources
            ("53300", Some(RateLimit)),
            ("53000", Some(ServerError)),
            ("53100", Some(Permanent)),
            ("53200", Some(ServerError)),
            ("53400", Some(Permanent)),
            // operator intervention
            ("57000", Some(Transient)),
            ("57014", Some(Transient)),
            ("57P01", Some(Transient)),
            ("57P02", Some(Transient)),
            ("57P03", Some(Transient)),
            ("57P04", Some(Permanent)),
            ("57P05", Some(Transient)),
            // auth and permission
            ("28000", Some(Auth)),
            ("28P01", Some(Auth)),
            ("42501", Some(Permission)),
            // permanent classes
            ("23505", Some(Permanent)),
            ("23503", Some(Permanent)),
            ("23000", Some(Permanent)), // MySQL duplicate key
            ("22012", Some(Permanent)),
            ("22P02", Some(Permanent)),
            ("42601", Some(Permanent)),
            ("42P01", Some(Permanent)),
            ("42S02", Some(Permanent)), // MySQL table not found
            ("42000", Some(Permanent)),
            ("0A000", Some(Permanent)),
            ("3D000", Some(Permanent)),
            ("25001", Some(Permanent)),
            ("25006", Some(Permanent)),
            ("25P02", Some(Permanent)),
            ("25P03", Some(Transient)),
            ("21S01", Some(Permanent)), // MySQL column count mismatch
            ("P0002", Some(Permanent)),
            // server errors
            ("XX000", Some(ServerError)),
            ("XX001", Some(ServerError)),
            ("XX002", Some(ServerError)),
            ("58000", Some(ServerError)),
            ("58030", Some(ServerError)),
            ("F0000", Some(ServerError)),
            // MySQL
            ("70100", Some(Transient)),
            ("XA102", Some(Concurrency)),
            // no opinion
            ("HY000", None),
            ("P0001", None),
            ("00000", None),
            ("01000", None),
            ("02000", None),
            ("HV00N", None),
            ("XA100", None),
            ("ZZZZZ", None),
        ];
        for &(code, class) in cases {
            assert_eq!(class_for_sqlstate(code), class, "{code}");
        }
    }

    #[test]
    fn malformed_codes_get_no_opinion() {
        for code in [
            "",
            "4",
            "4000",
            "400011",
            "40 01",
            "4000-",
            "4000\u{e9}",
            "\u{e9}0001",
            "40001\n",
        ] {
            assert_eq!(class_for_sqlstate(code), None, "{code:?}");
            assert_eq!(classify_sqlstate(code), None, "{code:?}");
        }
    }

    #[test]
    fn letters_match_without_regard_to_case() {
        assert_eq!(class_for_sqlstate("40p01"), Some(ErrorClass::Concurrency));
        assert_eq!(class_for_sqlstate("xx000"), Some(ErrorClass::ServerError));
        assert_eq!(class_for_sqlstate("0a000"), Some(ErrorClass::Permanent));
    }

    #[test]
    fn details_are_static_strings() {
        let c = classify_sqlstate("40001").unwrap();
        assert_eq!(
            c.details.as_deref(),
            Some("sqlstate: 40001 serialization_failure")
        );
        assert!(matches!(c.details, Some(std::borrow::Cow::Borrowed(_))));
        let c = classify_sqlstate("23505").unwrap();
        assert_eq!(
            c.details.as_deref(),
            Some("sqlstate: class 23 integrity_constraint_violation")
        );
        assert!(matches!(c.details, Some(std::borrow::Cow::Borrowed(_))));
    }

    #[test]
    fn every_sqlite_row_and_its_extended_codes() {
        for &(code, class, details) in SQLITE {
            assert_eq!(class_for_sqlite_code(code), Some(class), "{code}");
            // Extended codes share the primary code's low eight bits.
            assert_eq!(
                class_for_sqlite_code(code | (3 << 8)),
                Some(class),
                "{code}"
            );
            let c = classify_sqlite_text(&code.to_string()).unwrap();
            assert_eq!(c, Classification::new(class).with_details(details));
        }
    }

    #[test]
    fn sqlite_codes_named_in_the_documentation() {
        use ErrorClass::*;
        let cases: &[(i32, Option<ErrorClass>)] = &[
            (5, Some(Concurrency)),    // SQLITE_BUSY
            (517, Some(Concurrency)),  // SQLITE_BUSY_SNAPSHOT
            (261, Some(Concurrency)),  // SQLITE_BUSY_RECOVERY
            (6, Some(Concurrency)),    // SQLITE_LOCKED
            (262, Some(Concurrency)),  // SQLITE_LOCKED_SHAREDCACHE
            (19, Some(Permanent)),     // SQLITE_CONSTRAINT
            (2067, Some(Permanent)),   // SQLITE_CONSTRAINT_UNIQUE
            (1555, Some(Permanent)),   // SQLITE_CONSTRAINT_PRIMARYKEY
            (787, Some(Permanent)),    // SQLITE_CONSTRAINT_FOREIGNKEY
            (13, Some(Permanent)),     // SQLITE_FULL
            (8, Some(Permanent)),      // SQLITE_READONLY
            (10, Some(ServerError)),   // SQLITE_IOERR
            (3850, Some(ServerError)), // SQLITE_IOERR_LOCK
            (23, Some(Permission)),    // SQLITE_AUTH
            (9, Some(Transient)),      // SQLITE_INTERRUPT
            (1, None),                 // SQLITE_ERROR
            (4, None),                 // SQLITE_ABORT
            (0, None),                 // SQLITE_OK
            (100, None),               // SQLITE_ROW
            (101, None),               // SQLITE_DONE
        ];
        for &(code, class) in cases {
            assert_eq!(class_for_sqlite_code(code), class, "{code}");
        }
    }

    #[test]
    fn sqlite_text_is_one_to_four_digits() {
        assert_eq!(
            classify_sqlite_text("2067").map(|c| c.class),
            Some(ErrorClass::Permanent)
        );
        assert_eq!(
            classify_sqlite_text("5").map(|c| c.class),
            Some(ErrorClass::Concurrency)
        );
        for code in ["", "40001", "-5", "5a", " 5", "00517x"] {
            assert_eq!(classify_sqlite_text(code), None, "{code:?}");
        }
    }

    #[cfg(feature = "sqlx")]
    mod sqlx {
        use std::borrow::Cow;
        use std::error::Error as StdError;
        use std::{fmt, io};

        use sqlx_core::error::{DatabaseError, Error, ErrorKind};

        use crate::class::{Classification, ErrorClass};
        use crate::classify::sqlstate::classify_sqlx_error;
        use crate::classify::{ClassifyError, default_classifier, strict_classifier};

        /// A database error with a chosen code and kind.
        #[derive(Debug)]
        struct TestDbError {
            code: Option<&'static str>,
            kind: fn() -> ErrorKind,
        }

        impl fmt::Display for TestDbError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "test database error {:?}", self.code)
            }
        }

        impl StdError for TestDbError {}

        impl DatabaseError for TestDbError {
            fn message(&self) -> &str {
                "test database error"
            }
            fn code(&self) -> Option<Cow<'_, str>> {
                self.code.map(Cow::Borrowed)
            }
            fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
                self
            }
            fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
                self
            }
            fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
                self
            }
            fn kind(&self) -> ErrorKind {
                (self.kind)()
            }
        }

        fn db(code: Option<&'static str>, kind: fn() -> ErrorKind) -> Error {
            Error::Database(Box::new(TestDbError { code, kind }))
        }

        fn other() -> ErrorKind {
            ErrorKind::Other
        }

        #[derive(Debug)]
        struct Leaf;
        impl fmt::Display for Leaf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("leaf")
            }
        }
        impl StdError for Leaf {}

        #[test]
        fn every_variant() {
            use ErrorClass::*;
            let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
            let cases: Vec<(Error, ErrorClass, Option<&str>)> = vec![
                (
                    db(Some("40001"), other),
                    Concurrency,
                    Some("sqlstate: 40001 serialization_failure"),
                ),
                (
                    db(Some("23505"), || ErrorKind::UniqueViolation),
                    Permanent,
                    Some("sqlstate: class 23 integrity_constraint_violation"),
                ),
                (
                    db(Some("53300"), other),
                    RateLimit,
                    Some("sqlstate: 53300 too_many_connections"),
                ),
                (db(Some("HY000"), other), Unknown, None),
                (
                    db(Some("517"), other),
                    Concurrency,
                    Some("sqlite: 5 SQLITE_BUSY"),
                ),
                (
                    db(Some("2067"), || ErrorKind::UniqueViolation),
                    Permanent,
                    Some("sqlite: 19 SQLITE_CONSTRAINT"),
                ),
                (
                    db(None, || ErrorKind::UniqueViolation),
                    Permanent,
                    Some("sqlx: unique violation"),
                ),
                (
                    db(None, || ErrorKind::ForeignKeyViolation),
                    Permanent,
                    Some("sqlx: foreign key violation"),
                ),
                (
                    db(Some("1"), || ErrorKind::NotNullViolation),
                    Permanent,
                    Some("sqlx: not-null violation"),
                ),
                (
                    db(None, || ErrorKind::CheckViolation),
                    Permanent,
                    Some("sqlx: check violation"),
                ),
                (db(None, other), Unknown, None),
                (Error::Io(reset()), Transient, Some("io: connection reset")),
                (
                    Error::Io(io::ErrorKind::PermissionDenied.into()),
                    Permission,
                    Some("io: permission denied"),
                ),
                (
                    Error::Io(io::Error::other("boom")),
                    Transient,
                    Some("sqlx: io error"),
                ),
                (
                    Error::Tls(Box::new(reset())),
                    Transient,
                    Some("io: connection reset"),
                ),
                (
                    Error::Tls("invalid certificate".into()),
                    Permanent,
                    Some("sqlx: tls"),
                ),
                (
                    Error::AnyDriverError(Box::new(reset())),
                    Transient,
                    Some("io: connection reset"),
                ),
                (Error::AnyDriverError(Box::new(Leaf)), Unknown, None),
                (Error::PoolTimedOut, Transient, Some("sqlx: pool timed out")),
                (
                    Error::WorkerCrashed,
                    Transient,
                    Some("sqlx: worker crashed"),
                ),
                (Error::PoolClosed, Permanent, Some("sqlx: pool closed")),
                (
                    Error::Configuration("bad url".into()),
                    Permanent,
                    Some("sqlx: configuration"),
                ),
                (
                    Error::InvalidArgument("x".into()),
                    Permanent,
                    Some("sqlx: invalid argument"),
                ),
                (Error::RowNotFound, Permanent, Some("sqlx: row not found")),
                (
                    Error::TypeNotFound {
                        type_name: "t".into(),
                    },
                    Permanent,
                    Some("sqlx: type not found"),
                ),
                (
                    Error::ColumnIndexOutOfBounds { index: 3, len: 2 },
                    Permanent,
                    Some("sqlx: column index out of bounds"),
                ),
                (
                    Error::ColumnNotFound("c".into()),
                    Permanent,
                    Some("sqlx: column not found"),
                ),
                (
                    Error::ColumnDecode {
                        index: "0".into(),
                        source: Box::new(Leaf),
                    },
                    Permanent,
                    Some("sqlx: column decode"),
                ),
                (
                    Error::Encode(Box::new(Leaf)),
                    Permanent,
                    Some("sqlx: encode"),
                ),
                (
                    Error::Decode(Box::new(Leaf)),
                    Permanent,
                    Some("sqlx: decode"),
                ),
                (
                    Error::InvalidSavePointStatement,
                    Permanent,
                    Some("sqlx: invalid savepoint statement"),
                ),
                (
                    Error::Protocol("garbage".into()),
                    Unknown,
                    Some("sqlx: protocol error"),
                ),
                (Error::BeginFailed, Unknown, Some("sqlx: begin failed")),
            ];
            for (err, class, details) in cases {
                let c = classify_sqlx_error(&err);
                assert_eq!(c.class, class, "{err:?}");
                assert_eq!(c.details.as_deref(), details, "{err:?}");
                // The trait gives the same verdict, or no opinion for a bare Unknown.
                let expected = details.is_some().then_some(c);
                assert_eq!(err.classification(), expected, "{err:?}");
            }
        }

        #[test]
        fn chain_classifier_finds_sqlx_errors_and_database_errors_in_a_chain() {
            let err = io::Error::other(db(Some("40P01"), other));
            let c = strict_classifier(&err);
            assert_eq!(c.class, ErrorClass::Concurrency);
            assert_eq!(
                c.details.as_deref(),
                Some("sqlstate: 40P01 deadlock_detected")
            );

            // The boxed database error alone, as `Error::source()` of `Error::Database` gives it.
            let boxed: Box<dyn DatabaseError> = Box::new(TestDbError {
                code: Some("57P01"),
                kind: other,
            });
            let c = strict_classifier(&boxed);
            assert_eq!(c.class, ErrorClass::Transient);

            // No opinion: the walk goes on to the heuristics.
            let err = Error::Protocol("x".into());
            assert_eq!(default_classifier(&err).class, ErrorClass::Unknown);
            let err = db(Some("HY000"), other);
            assert_eq!(
                default_classifier(&err),
                Classification::new(ErrorClass::Unknown)
            );
        }
    }

    #[cfg(feature = "tokio-postgres")]
    mod postgres {
        use std::io;

        use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
        use tokio_postgres::config::SslMode;
        use tokio_postgres::{Config, NoTls};

        use crate::class::{Classification, ErrorClass};
        use crate::classify::sqlstate::classify_postgres_error;
        use crate::classify::{ClassifyError, strict_classifier};

        /// What the in-memory server does after reading the startup message.
        enum Server {
            /// Closes the connection.
            Close,
            /// Sends these bytes (backend messages), then waits for the client to hang up.
            Send(Vec<u8>),
        }

        /// A backend `ErrorResponse` with a SQLSTATE.
        fn error_response(code: &str) -> Vec<u8> {
            let mut fields = Vec::new();
            for (tag, value) in [
                (b'S', "FATAL"),
                (b'V', "FATAL"),
                (b'C', code),
                (b'M', "test"),
            ] {
                fields.push(tag);
                fields.extend_from_slice(value.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            message(b'E', &fields)
        }

        fn message(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
            out.extend_from_slice(body);
            out
        }

        /// An `AuthenticationRequest` with the given method code.
        fn auth_request(method: i32) -> Vec<u8> {
            message(b'R', &method.to_be_bytes())
        }

        async fn read_startup(stream: &mut DuplexStream) -> io::Result<()> {
            let len = stream.read_i32().await?;
            let mut body = vec![0; len as usize - 4];
            stream.read_exact(&mut body).await?;
            Ok(())
        }

        async fn connect(config: &Config, server: Server) -> tokio_postgres::Error {
            let (client_end, mut server_end) = duplex(4096);
            let server = tokio::spawn(async move {
                if read_startup(&mut server_end).await.is_err() {
                    return;
                }
                match server {
                    Server::Close => drop(server_end),
                    Server::Send(bytes) => {
                        let _ = server_end.write_all(&bytes).await;
                        // Keep the connection open until the client gives up.
                        let mut rest = Vec::new();
                        let _ = server_end.read_to_end(&mut rest).await;
                    }
                }
            });
            let result = config.connect_raw(client_end, NoTls).await;
            let err = match result {
                Ok(_) => panic!("the connection succeeded"),
                Err(err) => err,
            };
            server.await.unwrap();
            err
        }

        fn config() -> Config {
            let mut config = Config::new();
            config.user("app").dbname("app");
            config
        }

        #[tokio::test]
        async fn real_errors_from_an_in_memory_server() {
            use ErrorClass::*;
            let cases: Vec<(Server, ErrorClass, &str)> = vec![
                (
                    Server::Send(error_response("28P01")),
                    Auth,
                    "sqlstate: class 28 invalid_authorization_specification",
                ),
                (
                    Server::Send(error_response("53300")),
                    RateLimit,
                    "sqlstate: 53300 too_many_connections",
                ),
                (
                    Server::Send(error_response("57P03")),
                    Transient,
                    "sqlstate: 57P03 cannot_connect_now",
                ),
                (
                    Server::Send(error_response("3D000")),
                    Permanent,
                    "sqlstate: class 3D invalid_catalog_name",
                ),
                (Server::Close, Transient, "postgres: connection closed"),
                // Kerberos V5: a method the client does not support.
                (
                    Server::Send(auth_request(2)),
                    Auth,
                    "postgres: authentication error",
                ),
                // A cleartext password request, and the configuration has none.
                (
                    Server::Send(auth_request(3)),
                    Permanent,
                    "postgres: invalid configuration",
                ),
                // An unknown authentication method: the codec's `InvalidInput` I/O error.
                (
                    Server::Send(auth_request(99)),
                    Permanent,
                    "io: invalid input",
                ),
            ];
            for (server, class, details) in cases {
                let err = connect(&config(), server).await;
                let c = classify_postgres_error(&err);
                assert_eq!(c.class, class, "{err:?}");
                assert_eq!(c.details.as_deref(), Some(details), "{err:?}");
                assert_eq!(err.classification(), Some(c.clone()));
                // Also when wrapped.
                let wrapped = io::Error::other(err);
                assert_eq!(strict_classifier(&wrapped), c);
            }
        }

        #[tokio::test]
        async fn a_server_without_tls_when_tls_is_required() {
            let mut config = config();
            config.ssl_mode(SslMode::Require);
            let (client_end, mut server_end) = duplex(64);
            let server = tokio::spawn(async move {
                let mut ssl_request = [0; 8];
                server_end.read_exact(&mut ssl_request).await.unwrap();
                server_end.write_all(b"N").await.unwrap();
                server_end
            });
            let err = match config.connect_raw(client_end, NoTls).await {
                Ok(_) => panic!("the connection succeeded"),
                Err(err) => err,
            };
            drop(server.await.unwrap());
            let c = classify_postgres_error(&err);
            assert_eq!(c.class, ErrorClass::Permanent, "{err:?}");
            assert_eq!(c.details.as_deref(), Some("postgres: TLS handshake"));
        }

        #[tokio::test]
        async fn an_unmapped_sqlstate_is_unknown_and_no_opinion() {
            let err = connect(&config(), Server::Send(error_response("HY000"))).await;
            assert_eq!(
                classify_postgres_error(&err),
                Classification::new(ErrorClass::Unknown)
            );
            assert_eq!(err.classification(), None);
            // The `DbError` inside is recognised on its own too.
            let db = err.as_db_error().unwrap().clone();
            assert_eq!(strict_classifier(&db).class, ErrorClass::Unknown);
            let err = connect(&config(), Server::Send(error_response("40001"))).await;
            let db = err.as_db_error().unwrap().clone();
            assert_eq!(strict_classifier(&db).class, ErrorClass::Concurrency);
        }

        #[test]
        fn client_side_errors() {
            let err = "port=not-a-number".parse::<Config>().unwrap_err();
            let c = classify_postgres_error(&err);
            assert_eq!(c.class, ErrorClass::Permanent);
            assert_eq!(
                c.details.as_deref(),
                Some("postgres: invalid connection string")
            );

            let err = tokio_postgres::Error::__private_api_timeout();
            let c = classify_postgres_error(&err);
            assert_eq!(c.class, ErrorClass::Transient);
            assert_eq!(
                c.details.as_deref(),
                Some("postgres: timeout waiting for server")
            );
        }
    }
}
