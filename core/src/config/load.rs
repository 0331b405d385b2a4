//! Parsing policy files with errors located at file, line and column.

use core::fmt;

use super::PolicyConfig;
use super::locate::{Location, key_within, locate};
use crate::error::ConfigError;

/// The syntax of a policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// TOML (the default).
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// The format of a file by its extension: `.json` is JSON, anything else TOML.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Toml,
        }
    }
}

/// A policy file that could not be loaded: where, and what rule was broken.
///
/// Displays as `file:line:column: message`, the shape editors and CI annotate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadError {
    /// The file name (or whatever origin the caller passed).
    pub origin: String,
    /// Where the offending key or token is (1:1 when nothing better is known).
    pub location: Location,
    /// What is wrong: the parser's message, or the broken rule.
    pub message: String,
    /// The validation error, when the file parsed but a value breaks a rule.
    pub config: Option<Box<ConfigError>>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.location.line, self.location.column, self.message
        )
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// The dotted path of the offending key, for validation errors.
    pub fn field(&self) -> Option<&str> {
        self.config.as_ref().map(|c| &*c.field)
    }

    /// A validation error located at its key in `text`.
    pub fn from_config_error(origin: &str, text: &str, format: Format, e: ConfigError) -> Self {
        let location = locate(text, format, &e.field).unwrap_or(Location { line: 1, column: 1 });
        Self {
            origin: origin.to_owned(),
            location,
            message: e.to_string(),
            config: Some(Box::new(e)),
        }
    }

    fn syntax(origin: &str, location: Location, message: String) -> Self {
        Self {
            origin: origin.to_owned(),
            location,
            message,
            config: None,
        }
    }
}

/// The key a message of ours names first (`` `factor` is not a parameter … ``).
fn named_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(&rest[..end])
}

pub(super) fn parse(origin: &str, text: &str, format: Format) -> Result<PolicyConfig, LoadError> {
    match format {
        Format::Toml => toml::from_str::<PolicyConfig>(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            let offset = e.span().map(|span| {
                named_key(&message)
                    .and_then(|k| {
                        // A `[table]` header's span covers the header only: look on to the
                        // next header for the key.
                        let body_end = text[span.end.min(text.len())..]
                            .find("\n[")
                            .map_or(text.len(), |i| span.end + i);
                        key_within(text, span.start..body_end.max(span.end), k)
                    })
                    .unwrap_or(span.start)
            });
            let location = offset.map_or(Location { line: 1, column: 1 }, |o| {
                Location::of_offset(text, o)
            });
            LoadError::syntax(origin, location, message)
        }),
        Format::Json => serde_json::from_str::<PolicyConfig>(text).map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            let mut location = Location {
                line: e.line().max(1),
                column: e.column().max(1),
            };
            // Our own messages name a key of the object just read: point at it.
            if let Some(key) = named_key(&message) {
                let end = offset_of(text, location);
                let needle = format!("\"{key}\"");
                if let Some(at) = text[..end].rfind(&needle) {
                    location = Location::of_offset(text, at);
                }
            }
            LoadError::syntax(origin, location, message)
        }),
    }
}

/// The byte offset of a 1-based line and column (columns as serde_json counts them, bytes).
fn offset_of(text: &str, at: Location) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(at.line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut end = (line_start + at.column).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}
