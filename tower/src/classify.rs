//! Classifying the inner service's errors.
//!
//! Tower services often fail with `Box<dyn Error + Send + Sync>` ([`BoxError`]), a type that
//! does not implement `std::error::Error` itself, so a classifier of `E: Error` cannot
//! take it. A [`ClassifyServiceError`] instead takes the error by value, boxes it, and
//! returns it as a [`Classified`]: the class the policy acts on plus the error, which is
//! what a failed call's [`Error`](crate::Error) keeps.
//!
//! | Classifier | Error types | How |
//! |---|---|---|
//! | [`ChainClassifier`] (the default) | anything `Into<BoxError>`: concrete errors and boxed ones | boxes the error and walks its `source()` chain ([`ChainClassifier::classify_error`]); an error that already is a [`Classified`] keeps its class |
//! | a closure `Fn(&E) -> impl Into<Classification>` | the service's own `E` (which must be `Into<BoxError>`) | classifies the typed error, then boxes it |
//!
//! A configured [`ChainClassifier`] (`ChainClassifier::new().with_type::<MyError>()`)
//! works as is; any other [`Classify<E>`](redress::Classify) value `c` is used through a
//! closure, `move |e: &E| c.classify(e)`.

use std::error::Error as StdError;

use redress::classify::Classified;
use redress::{ChainClassifier, Classification, Classify};

/// The boxed error of tower services.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Classifies an error of the inner service and keeps it, boxed, with its class.
pub trait ClassifyServiceError<E> {
    /// The classification of `error`, with `error` boxed inside.
    fn classify_service_error(&self, error: E) -> Classified;
}

impl<E: Into<BoxError>> ClassifyServiceError<E> for ChainClassifier {
    fn classify_service_error(&self, error: E) -> Classified {
        match error.into().downcast::<Classified>() {
            Ok(classified) => *classified,
            Err(boxed) => {
                let c = Classify::<dyn StdError + Send + Sync + 'static>::classify(self, &*boxed);
                Classified::new(c, boxed)
            }
        }
    }
}

impl<E, F, K> ClassifyServiceError<E> for F
where
    F: Fn(&E) -> K,
    K: Into<Classification>,
    E: Into<BoxError>,
{
    fn classify_service_error(&self, error: E) -> Classified {
        let c = self(&error).into();
        Classified::new(c, error)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use redress::ErrorClass;

    use super::*;

    fn boxed(kind: io::ErrorKind) -> BoxError {
        Box::new(io::Error::from(kind))
    }

    #[test]
    fn the_chain_classifier_takes_concrete_and_boxed_errors() {
        // (error, expected class)
        let table: [(BoxError, ErrorClass); 4] = [
            (boxed(io::ErrorKind::ConnectionReset), ErrorClass::Transient),
            (
                boxed(io::ErrorKind::PermissionDenied),
                ErrorClass::Permission,
            ),
            ("service unavailable".into(), ErrorClass::ServerError),
            ("no idea".into(), ErrorClass::Unknown),
        ];
        let chain = ChainClassifier::new();
        for (err, class) in table {
            let text = err.to_string();
            let c = chain.classify_service_error(err);
            assert_eq!(c.classification().class, class, "{text}");
            assert_eq!(c.to_string(), text);
        }
        let c = chain.classify_service_error(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(c.classification().class, ErrorClass::Transient);
        assert!(c.inner().downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn an_error_classified_by_the_service_keeps_its_class_and_is_not_wrapped_twice() {
        let inner = Classified::new(ErrorClass::RateLimit, "slow");
        let c = ChainClassifier::new().classify_service_error(inner);
        assert_eq!(c.classification().class, ErrorClass::RateLimit);
        assert_eq!(c.inner().to_string(), "slow");
        assert!(c.inner().downcast_ref::<Classified>().is_none());
    }

    #[test]
    fn a_closure_classifies_the_typed_error_before_it_is_boxed() {
        let f = |e: &io::Error| match e.kind() {
            io::ErrorKind::NotFound => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        };
        let c = f.classify_service_error(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(c.classification().class, ErrorClass::Permanent);
        let g = |_: &BoxError| Classification::new(ErrorClass::Concurrency);
        let c = g.classify_service_error(boxed(io::ErrorKind::Other));
        assert_eq!(c.classification().class, ErrorClass::Concurrency);
    }
}
