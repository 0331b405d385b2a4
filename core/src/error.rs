//! Errors: bad configuration, rejected at construction.

use std::borrow::Cow;
use std::fmt;

/// A configuration value that breaks a rule, reported when a policy, strategy, breaker or
/// budget is built.
///
/// It names the field (a dotted path such as `strategies.rate_limit.max`), the value as
/// written, and the rule it breaks, so the message alone is enough to fix the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}` = {value}: {rule}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The field, as a dotted path.
    pub field: Cow<'static, str>,
    /// The offending value, formatted for humans.
    pub value: String,
    /// The rule the value breaks.
    pub rule: Cow<'static, str>,
}

impl ConfigError {
    /// An error for `field` holding `value`, which breaks `rule`.
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        value: impl fmt::Debug,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            value: format!("{value:?}"),
            rule: rule.into(),
        }
    }

    /// The same error with its field nested under `prefix` (`prefix.field`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = Cow::Owned(format!("{prefix}.{}", self.field));
        self
    }
}

/// Checks a rule, returning a [`ConfigError`] for `field` when it does not hold.
pub(crate) fn ensure(
    ok: bool,
    field: &'static str,
    value: impl fmt::Debug,
    rule: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(field, value, rule))
    }
}
