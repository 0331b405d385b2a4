//! Classifier for AWS SDK errors (feature `aws`): `aws_smithy_runtime_api`'s `SdkError` and
//! `aws_smithy_types`' `ErrorMetadata`.
//!
//! ```
//! use aws_smithy_runtime_api::client::result::SdkError;
//! use aws_smithy_runtime_api::http::Response;
//! use aws_smithy_types::body::SdkBody;
//! use aws_smithy_types::error::ErrorMetadata;
//! use redress::classify::aws::{class_for_aws_code, classify_sdk_error};
//! use redress::ErrorClass;
//!
//! assert_eq!(class_for_aws_code("ThrottlingException"), Some(ErrorClass::RateLimit));
//! assert_eq!(class_for_aws_code("ValidationException"), Some(ErrorClass::Permanent));
//!
//! // An operation's error, as the SDK returns it (`ErrorMetadata` stands in for an
//! // operation's generated error type: any `ProvideErrorMetadata` will do).
//! let meta = ErrorMetadata::builder().code("SlowDown").message("Please reduce your request rate.").build();
//! let raw = Response::new(503u16.try_into().unwrap(), SdkBody::empty());
//! let err: SdkError<ErrorMetadata, Response> = SdkError::service_error(meta, raw);
//! assert_eq!(classify_sdk_error(&err).class, ErrorClass::RateLimit);
//!
//! // It is a classifier for the call: `policy.context("put").classify(classify_sdk_error::<E>)`.
//! use redress::Classify;
//! let classifier = classify_sdk_error::<ErrorMetadata>;
//! assert_eq!(classifier.classify(&err).class, ErrorClass::RateLimit);
//! ```
//!
//! # Error codes ([`class_for_aws_code`])
//!
//! The throttling and transient codes are exactly those of the SDK's own retry classifier
//! (the AWS SDK's retry classifier lists, `THROTTLING_ERRORS` and `TRANSIENT_ERRORS` of `aws-runtime`); the others are the
//! common codes of AWS services.
//!
//! | Code | Class |
//! |------|-------|
//! | `Throttling`, `ThrottlingException`, `ThrottledException`, `RequestThrottledException`, `TooManyRequestsException`, `ProvisionedThroughputExceededException`, `TransactionInProgressException`, `RequestLimitExceeded`, `BandwidthLimitExceeded`, `LimitExceededException`, `RequestThrottled`, `SlowDown`, `PriorRequestNotComplete`, `EC2ThrottledException` | `RateLimit` |
//! | `RequestTimeout`, `RequestTimeoutException` | `Transient` |
//! | `IDPCommunicationError`, `IDPCommunicationErrorException` (STS could not reach the identity provider) | `Transient` |
//! | `InternalError`, `InternalFailure`, `InternalServerError`, `InternalServerException`, `InternalServiceError`, `InternalServiceException`, `ServiceException`, `ServiceUnavailable`, `ServiceUnavailableException`, `Unavailable` | `ServerError` |
//! | `ExpiredToken`, `ExpiredTokenException`, `InvalidClientTokenId`, `UnrecognizedClientException`, `InvalidSignatureException`, `SignatureDoesNotMatch`, `IncompleteSignature`, `InvalidAccessKeyId`, `InvalidToken`, `MissingAuthenticationToken`, `MissingAuthenticationTokenException`, `AuthFailure`, `NotAuthorizedException`, `RequestExpired`, `RequestTimeTooSkewed`, `RequestInTheFuture` | `Auth` |
//! | `AccessDenied`, `AccessDeniedException`, `UnauthorizedOperation`, `AuthorizationError`, `AuthorizationErrorException`, `ForbiddenException`, `OptInRequired` | `Permission` |
//! | `TransactionConflictException`, `ConditionalCheckFailedException`, `ConflictException`, `OperationAbortedException`, `ConcurrentModificationException`, `ConcurrentModification` | `Concurrency` |
//! | `ValidationException`, `ValidationError`, `ResourceNotFoundException`, `NotFoundException`, `NotFound`, `NoSuchKey`, `NoSuchBucket`, `NoSuchEntity`, `InvalidParameterValue`, `InvalidParameterException`, `InvalidParameterCombination`, `InvalidParameterValueException`, `MissingParameter`, `InvalidRequestException`, `InvalidRequest`, `InvalidInputException`, `InvalidAction`, `MalformedQueryString`, `SerializationException`, `BadRequestException`, `UnsupportedOperation`, `UnsupportedOperationException`, `ResourceAlreadyExistsException`, `AlreadyExistsException`, `EntityAlreadyExists`, `BucketAlreadyExists`, `BucketAlreadyOwnedByYou`, `ServiceQuotaExceededException`, `ItemCollectionSizeLimitExceededException`, `EntityTooLarge`, `PayloadTooLargeException` | `Permanent` |
//! | anything else | no opinion (`None`) |
//!
//! Why these choices:
//!
//! - The SDK's own list puts `LimitExceededException` and `TransactionInProgressException`
//!   among the throttling codes; they are mirrored as they are, so redress and the SDK agree
//!   on what a throttle is.
//! - `InternalError`, `InternalFailure` and `ServiceUnavailable` are `ServerError`, as their
//!   HTTP statuses (500, 503) are in the [status table](super::class_for_status): the
//!   service failed, a retry may succeed, and a breaker should count it. (`SlowDown`, S3's 503,
//!   is a throttle.)
//! - `RequestExpired`, `RequestTimeTooSkewed` and `RequestInTheFuture` reject a signature made
//!   with a wrong clock: `Auth`, since a retry with the same clock is signed the same way.
//! - `ConditionalCheckFailedException` (DynamoDB) is `Concurrency`: the item changed since it
//!   was read. A retry that reads again (the whole read-modify-write in the operation) can
//!   succeed; one that replays the same condition cannot, so cap `Concurrency` retries.
//! - `ServiceQuotaExceededException` is `Permanent`: an account quota does not clear up within
//!   a retry loop (a full disk is `Permanent` in the I/O table for the same reason).
//!
//! # `SdkError` ([`classify_sdk_error`])
//!
//! | Variant | Class |
//! |---------|-------|
//! | `ConstructionFailure` (the request was never sent) | `Permanent` |
//! | `TimeoutError` | `Transient` |
//! | `DispatchFailure`, I/O | the kind of an `io::Error` in its source chain ([`class_for_io_kind`](super::class_for_io_kind)), else `Transient` |
//! | `DispatchFailure`, timeout | `Transient` |
//! | `DispatchFailure`, user error (an invalid request) | `Permanent` |
//! | `DispatchFailure`, other with a retry kind: throttling, transient, server, client error | `RateLimit`, `Transient`, `ServerError`, `Permanent` |
//! | `DispatchFailure`, other without one | `Unknown` |
//! | `ResponseError` (a response that could not be parsed) | the raw response's status through [`class_for_status`](super::class_for_status) when it is a failure status; else `Transient`: the SDK's example is a server that hung up before sending a complete response |
//! | `ServiceError` | its error code through the table above; else the raw response's status through [`class_for_status`](super::class_for_status); else `Unknown` |
//! | variants added later | `Unknown` |
//!
//! When a service error is retried by default (not `Auth`, `Permission` or `Permanent`) and
//! its response carries `x-amz-retry-after` (milliseconds, as the SDK reads it; ASCII digits
//! only, at most [`MAX_RETRY_AFTER`]), that becomes the classification's
//! [`retry_after`](Classification::retry_after).
//!
//! # In the chain classifier
//!
//! A generic `SdkError<E, R>` cannot be recognised in a `dyn Error` chain without knowing `E`
//! (each operation has its own error type), so pass [`classify_sdk_error`] as the call's
//! classifier. [`ChainClassifier`](super::ChainClassifier) (and so
//! [`default_classifier`](super::default_classifier)) still recognises, anywhere in a chain,
//! an [`ErrorMetadata`] (by its code) and a `ConnectorError` (the source of a
//! `DispatchFailure`, by the rules above).

use std::error::Error;
use std::time::Duration;

use ::aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use ::aws_smithy_runtime_api::http::Response;
use ::aws_smithy_types::error::ErrorMetadata;
use ::aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ::aws_smithy_types::retry::ErrorKind as RetryKind;

use crate::class::{Classification, ErrorClass};
use crate::classify::{ClassifyError, io_rule, status_entry, verdict};

/// One row of the code table: code, class, detail string.
type CodeRow = (&'static str, ErrorClass, &'static str);

macro_rules! codes {
    ($($class:ident: [$($code:literal),+ $(,)?]),+ $(,)?) => {
        &[$($(($code, ErrorClass::$class, concat!("aws: ", $code)),)+)+]
    };
}

/// The error code table.
const CODES: &[CodeRow] = codes![
    // the AWS SDK's THROTTLING_ERRORS (aws-runtime), in its order.
    RateLimit: [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    ],
    // the AWS SDK's TRANSIENT_ERRORS (aws-runtime).
    Transient: ["RequestTimeout", "RequestTimeoutException"],
    Transient: ["IDPCommunicationError", "IDPCommunicationErrorException"],
    ServerError: [
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "InternalServiceError",
        "InternalServiceException",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
    ],
    Auth: [
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidToken",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "AuthFailure",
        "NotAuthorizedException",
        "RequestExpired",
        "RequestTimeTooSkewed",
        "RequestInTheFuture",
    ],
    Permission: [
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "AuthorizationErrorException",
        "ForbiddenException",
        "OptInRequired",
    ],
    Concurrency: [
        "TransactionConflictException",
        "ConditionalCheckFailedException",
        "ConflictException",
        "OperationAbortedException",
        "ConcurrentModificationException",
        "ConcurrentModification",
    ],
    Permanent: [
        "ValidationException",
        "ValidationError",
        "ResourceNotFoundException",
        "NotFoundException",
        "NotFound",
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchEntity",
        "InvalidParameterValue",
        "InvalidParameterException",
        "InvalidParameterCombination",
        "InvalidParameterValueException",
        "MissingParameter",
        "InvalidRequestException",
        "InvalidRequest",
        "InvalidInputException",
        "InvalidAction",
        "MalformedQueryString",
        "SerializationException",
        "BadRequestException",
        "UnsupportedOperation",
        "UnsupportedOperationException",
        "ResourceAlreadyExistsException",
        "AlreadyExistsException",
        "EntityAlreadyExists",
        "BucketAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "ServiceQuotaExceededException",
        "ItemCollectionSizeLimitExceededException",
        "EntityTooLarge",
        "PayloadTooLargeException",
    ],
];

/// The response header in which AWS services ask for a delay, in milliseconds.
const RETRY_AFTER_HEADER: &str = "x-amz-retry-after";

/// The longest `x-amz-retry-after` hint taken (5 minutes, as the `http` and `tonic`
/// classifiers cap theirs): a larger value, bogus or hostile, must not park a caller.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The class of an AWS error code (the `code` of an [`ErrorMetadata`]), or `None` for a code
/// the table does not know. See the [module documentation](self) for the table.
pub fn class_for_aws_code(code: &str) -> Option<ErrorClass> {
    code_entry(code).map(|(class, _)| class)
}

fn code_entry(code: &str) -> Option<(ErrorClass, &'static str)> {
    CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|&(_, class, details)| (class, details))
}

/// The classification of an [`ErrorMetadata`] by its code (details `"aws: <code>"`), or
/// `None` when it has no code or the table does not know it.
pub fn classify_error_metadata(meta: &ErrorMetadata) -> Option<Classification> {
    let (class, details) = code_entry(meta.code()?)?;
    Some(verdict(class, details))
}

impl ClassifyError for ErrorMetadata {
    /// [`classify_error_metadata`].
    fn classification(&self) -> Option<Classification> {
        classify_error_metadata(self)
    }
}

/// Classifies an `SdkError` as the AWS SDK returns it from an operation. See the
/// [module documentation](self#sdkerror-classify_sdk_error) for the table.
///
/// Pass it as the call's classifier (`classify_sdk_error::<OperationError>`): a generic
/// `SdkError` cannot be recognised by the chain classifier.
pub fn classify_sdk_error<E: ProvideErrorMetadata>(err: &SdkError<E, Response>) -> Classification {
    use ErrorClass::{Permanent, Transient, Unknown};
    match err {
        SdkError::ConstructionFailure(_) => verdict(Permanent, "aws: construction failure"),
        SdkError::TimeoutError(_) => verdict(Transient, "aws: timeout"),
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(connector) => connector_opinion(connector),
            None => verdict(Unknown, "aws: dispatch failure"),
        },
        SdkError::ResponseError(context) => status_opinion(context.raw())
            .unwrap_or_else(|| verdict(Transient, "aws: unparseable response")),
        SdkError::ServiceError(context) => {
            let found = context
                .err()
                .code()
                .and_then(code_entry)
                .map(|(class, details)| verdict(class, details))
                .or_else(|| status_opinion(context.raw()));
            match found {
                Some(found) => with_retry_after(found, context.raw()),
                None => Classification::new(Unknown),
            }
        }
        _ => Classification::new(Unknown),
    }
}

/// The chain classifier's probe: `Some` when `err` is an `ErrorMetadata` with a known code, or
/// a `ConnectorError`.
pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
    if let Some(meta) = err.downcast_ref::<ErrorMetadata>() {
        return classify_error_metadata(meta);
    }
    let connector = err.downcast_ref::<ConnectorError>()?;
    Some(connector_opinion(connector)).filter(|c| c.class != ErrorClass::Unknown)
}

fn connector_opinion(err: &ConnectorError) -> Classification {
    use ErrorClass::{Permanent, RateLimit, ServerError, Transient, Unknown};
    if err.is_timeout() {
        verdict(Transient, "aws: dispatch timeout")
    } else if err.is_io() {
        io_rule(err).unwrap_or_else(|| verdict(Transient, "aws: dispatch io error"))
    } else if err.is_user() {
        verdict(Permanent, "aws: dispatch user error")
    } else {
        match err.as_other() {
            Some(RetryKind::ThrottlingError) => {
                verdict(RateLimit, "aws: dispatch throttling error")
            }
            Some(RetryKind::TransientError) => verdict(Transient, "aws: dispatch transient error"),
            Some(RetryKind::ServerError) => verdict(ServerError, "aws: dispatch server error"),
            Some(RetryKind::ClientError) => verdict(Permanent, "aws: dispatch client error"),
            _ => Classification::new(Unknown),
        }
    }
}

/// The raw response's status through the status table, when it is a failure status.
fn status_opinion(raw: &Response) -> Option<Classification> {
    let (class, details) = status_entry(raw.status().as_u16())?;
    Some(verdict(class, details))
}

fn with_retry_after(found: Classification, raw: &Response) -> Classification {
    if !found.class.is_retryable_by_default() {
        return found;
    }
    let wait = raw
        .headers()
        .get(RETRY_AFTER_HEADER)
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        // Digits only; too many of them for a u64 is as long as the cap allows.
        .map(|v| {
            v.parse::<u64>()
                .map_or(MAX_RETRY_AFTER, Duration::from_millis)
        })
        .map(|wait| wait.min(MAX_RETRY_AFTER));
    match wait {
        Some(wait) => found.with_retry_after(wait),
        None => found,
    }
}

#[cfg(test)]
mod tests {
    use core::fmt;
    use std::io;

    use ::aws_smithy_runtime_api::client::result::ConnectorError;
    use ::aws_smithy_types::body::SdkBody;

    use super::*;
    use crate::classify::strict_classifier;

    /// An operation's error type, as the SDK generates them.
    #[derive(Debug)]
    struct OpError(ErrorMetadata);

    impl fmt::Display for OpError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("operation error")
        }
    }

    impl Error for OpError {}

    impl ProvideErrorMetadata for OpError {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    type Sdk = SdkError<OpError, Response>;

    fn response(status: u16) -> Response {
        Response::new(status.try_into().unwrap(), SdkBody::empty())
    }

    fn op_error(code: Option<&str>) -> OpError {
        let meta = ErrorMetadata::builder().message("test");
        OpError(match code {
            Some(code) => meta.code(code).build(),
            None => meta.build(),
        })
    }

    fn service_error(code: Option<&str>, status: u16) -> Sdk {
        SdkError::service_error(op_error(code), response(status))
    }

    #[test]
    fn every_code_in_the_table() {
        for &(code, class, details) in CODES {
            assert_eq!(class_for_aws_code(code), Some(class), "{code}");
            assert_eq!(details, format!("aws: {code}"));
            let meta = ErrorMetadata::builder().code(code).build();
            assert_eq!(
                classify_error_metadata(&meta),
                Some(verdict(class, details))
            );
            assert_eq!(meta.classification(), Some(verdict(class, details)));
            // The status says otherwise; the code wins.
            let c = classify_sdk_error(&service_error(Some(code), 400));
            assert_eq!(c, verdict(class, details), "{code}");
        }
    }

    #[test]
    fn the_sdk_retry_classifier_lists_are_mirrored_exactly() {
        const THROTTLING_ERRORS: &[&str] = &[
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "TransactionInProgressException",
            "RequestLimitExceeded",
            "BandwidthLimitExceeded",
            "LimitExceededException",
            "RequestThrottled",
            "SlowDown",
            "PriorRequestNotComplete",
            "EC2ThrottledException",
        ];
        const TRANSIENT_ERRORS: &[&str] = &["RequestTimeout", "RequestTimeoutException"];
        let rate_limit: Vec<&str> = CODES
            .iter()
            .filter(|(_, class, _)| *class == ErrorClass::RateLimit)
            .map(|(code, _, _)| *code)
            .collect();
        assert_eq!(rate_limit, THROTTLING_ERRORS);
        for code in TRANSIENT_ERRORS {
            assert_eq!(class_for_aws_code(code), Some(ErrorClass::Transient));
        }
    }

    #[test]
    fn codes_named_in_the_documentation() {
        use ErrorClass::*;
        let cases: &[(&str, Option<ErrorClass>)] = &[
            ("ThrottlingException", Some(RateLimit)),
            ("SlowDown", Some(RateLimit)),
            ("RequestTimeout", Some(Transient)),
            ("InternalError", Some(ServerError)),
            ("InternalFailure", Some(ServerError)),
            ("ServiceUnavailable", Some(ServerError)),
            ("ExpiredToken", Some(Auth)),
            ("ExpiredTokenException", Some(Auth)),
            ("InvalidClientTokenId", Some(Auth)),
            ("UnrecognizedClientException", Some(Auth)),
            ("InvalidSignatureException", Some(Auth)),
            ("SignatureDoesNotMatch", Some(Auth)),
            ("AccessDenied", Some(Permission)),
            ("AccessDeniedException", Some(Permission)),
            ("TransactionConflictException", Some(Concurrency)),
            ("ConditionalCheckFailedException", Some(Concurrency)),
            ("ValidationException", Some(Permanent)),
            ("ResourceNotFoundException", Some(Permanent)),
            ("NoSuchKey", Some(Permanent)),
            ("throttlingexception", None), // codes are case-sensitive
            ("SomethingNew", None),
            ("", None),
        ];
        for &(code, class) in cases {
            assert_eq!(class_for_aws_code(code), class, "{code}");
        }
    }

    #[test]
    fn every_sdk_error_variant() {
        use ErrorClass::*;
        let reset = || Box::new(io::Error::from(io::ErrorKind::ConnectionReset));
        let cases: Vec<(Sdk, ErrorClass, Option<&str>)> = vec![
            (
                SdkError::construction_failure("no region"),
                Permanent,
                Some("aws: construction failure"),
            ),
            (
                SdkError::timeout_error("operation timeout"),
                Transient,
                Some("aws: timeout"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::timeout("connect timeout".into())),
                Transient,
                Some("aws: dispatch timeout"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::io(reset())),
                Transient,
                Some("io: connection reset"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::io(Box::new(io::Error::from(
                    io::ErrorKind::PermissionDenied,
                )))),
                Permission,
                Some("io: permission denied"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::io("hangup".into())),
                Transient,
                Some("aws: dispatch io error"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::user("invalid uri".into())),
                Permanent,
                Some("aws: dispatch user error"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::other(
                    "x".into(),
                    Some(RetryKind::ThrottlingError),
                )),
                RateLimit,
                Some("aws: dispatch throttling error"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::other(
                    "x".into(),
                    Some(RetryKind::TransientError),
                )),
                Transient,
                Some("aws: dispatch transient error"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::other(
                    "x".into(),
                    Some(RetryKind::ServerError),
                )),
                ServerError,
                Some("aws: dispatch server error"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::other(
                    "x".into(),
                    Some(RetryKind::ClientError),
                )),
                Permanent,
                Some("aws: dispatch client error"),
            ),
            (
                SdkError::dispatch_failure(ConnectorError::other("x".into(), None)),
                Unknown,
                None,
            ),
            (
                SdkError::response_error("truncated body", response(200)),
                Transient,
                Some("aws: unparseable response"),
            ),
            (
                SdkError::response_error("bad xml", response(503)),
                ServerError,
                Some("status: 5xx"),
            ),
            (
                SdkError::response_error("bad xml", response(429)),
                RateLimit,
                Some("status: 429 too many requests"),
            ),
            (
                service_error(Some("ThrottlingException"), 400),
                RateLimit,
                Some("aws: ThrottlingException"),
            ),
            (
                service_error(Some("SomethingNew"), 403),
                Permission,
                Some("status: 403 forbidden"),
            ),
            (service_error(None, 500), ServerError, Some("status: 5xx")),
            (service_error(None, 404), Permanent, Some("status: 4xx")),
            (service_error(None, 200), Unknown, None),
            (service_error(Some("SomethingNew"), 302), Unknown, None),
        ];
        for (err, class, details) in cases {
            let c = classify_sdk_error(&err);
            assert_eq!(c.class, class, "{err:?}");
            assert_eq!(c.details.as_deref(), details, "{err:?}");
            assert_eq!(c.retry_after, None, "{err:?}");
        }
    }

    #[test]
    fn x_amz_retry_after_on_errors_retried_by_default() {
        let with_header = |code: Option<&str>, status: u16, value: &str| {
            let mut raw = response(status);
            raw.headers_mut()
                .insert(RETRY_AFTER_HEADER, value.to_owned());
            SdkError::<OpError, Response>::service_error(op_error(code), raw)
        };
        let c = classify_sdk_error(&with_header(Some("SlowDown"), 503, "5000"));
        assert_eq!(c.class, ErrorClass::RateLimit);
        assert_eq!(c.retry_after, Some(Duration::from_secs(5)));
        // By status alone.
        let c = classify_sdk_error(&with_header(None, 500, "250"));
        assert_eq!(c.class, ErrorClass::ServerError);
        assert_eq!(c.retry_after, Some(Duration::from_millis(250)));
        // Unparseable: ignored.
        let c = classify_sdk_error(&with_header(Some("SlowDown"), 503, "soon"));
        assert_eq!(c.retry_after, None);
        for odd in ["+5", "-5", "1.5", ""] {
            let c = classify_sdk_error(&with_header(Some("SlowDown"), 503, odd));
            assert_eq!(c.retry_after, None, "{odd:?}");
        }
        // Too long, or too long for a u64: the cap.
        for huge in ["3600000", "99999999999999999999999"] {
            let c = classify_sdk_error(&with_header(Some("SlowDown"), 503, huge));
            assert_eq!(c.retry_after, Some(MAX_RETRY_AFTER), "{huge}");
        }
        // Not retried by default: not attached.
        let c = classify_sdk_error(&with_header(Some("ValidationException"), 400, "5000"));
        assert_eq!(c.class, ErrorClass::Permanent);
        assert_eq!(c.retry_after, None);
    }

    #[test]
    fn the_chain_classifier_finds_metadata_and_connector_errors() {
        // A service error's chain: `SdkError` → the operation error (unknown to redress).
        // An `ErrorMetadata` wrapped by the application is recognised.
        let meta = ErrorMetadata::builder().code("ThrottlingException").build();
        let err = io::Error::other(meta);
        assert_eq!(
            strict_classifier(&err),
            verdict(ErrorClass::RateLimit, "aws: ThrottlingException")
        );
        // A dispatch failure's chain reaches its `ConnectorError`, whatever `E` is.
        let err: Sdk = SdkError::dispatch_failure(ConnectorError::user("bad".into()));
        assert_eq!(
            strict_classifier(&err),
            verdict(ErrorClass::Permanent, "aws: dispatch user error")
        );
        let err: Sdk = SdkError::dispatch_failure(ConnectorError::io(Box::new(io::Error::from(
            io::ErrorKind::TimedOut,
        ))));
        assert_eq!(strict_classifier(&err).class, ErrorClass::Transient);
        // No opinion: an unknown code, an unclassified connector error.
        let meta = ErrorMetadata::builder().code("SomethingNew").build();
        assert_eq!(meta.classification(), None);
        assert_eq!(
            strict_classifier(&meta),
            Classification::new(ErrorClass::Unknown)
        );
        let err = ConnectorError::other("x".into(), None);
        assert_eq!(
            strict_classifier(&err),
            Classification::new(ErrorClass::Unknown)
        );
    }
}
