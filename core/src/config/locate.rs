//! Finding a dotted key path (`retry.strategies.rate_limit.max`) in a file's text.

use super::load::Format;

/// A position in a file: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, counted in characters.
    pub column: usize,
}

impl Location {
    /// The position of byte `offset` in `text` (clamped to its end).
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Where the key at dotted `path` is written in `text`; when the key itself is absent (a
/// required key left out, a default), where its deepest written parent table is. `None`
/// when the text does not parse or not even the first segment is present.
pub fn locate(text: &str, format: Format, path: &str) -> Option<Location> {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let offset = match format {
        Format::Toml => toml_offset(text, &segments),
        Format::Json => json_offset(text, &segments),
    }?;
    Some(Location::of_offset(text, offset))
}

fn toml_offset(text: &str, path: &[&str]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for seg in path {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *seg) else {
            break;
        };
        found = Some(key.span().start);
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found
}

/// A tiny JSON scanner that tracks key paths: serde_json reports positions of syntax
/// errors, but validation errors need the position of a key.
fn json_offset(text: &str, path: &[&str]) -> Option<usize> {
    let mut s = JsonScan {
        bytes: text.as_bytes(),
        pos: 0,
        target: path,
        best: None,
    };
    let mut stack = Vec::new();
    s.value(&mut stack, 0)?;
    s.best.map(|(_, offset)| offset)
}

struct JsonScan<'a, 'p> {
    bytes: &'a [u8],
    pos: usize,
    target: &'p [&'p str],
    /// (depth matched, offset of that key)
    best: Option<(usize, usize)>,
}

impl JsonScan<'_, '_> {
    fn ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn string(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    let s = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
                    self.pos += 1;
                    return Some(s);
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        None
    }

    fn value(&mut self, stack: &mut Vec<String>, depth: usize) -> Option<()> {
        if depth > 128 {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => {
                self.pos += 1;
                loop {
                    self.ws();
                    if self.peek()? == b'}' {
                        self.pos += 1;
                        return Some(());
                    }
                    let key_at = self.pos;
                    let key = self.string()?;
                    stack.push(key);
                    let matched = stack.len() <= self.target.len()
                        && stack.iter().zip(self.target).all(|(a, b)| a == b);
                    if matched && self.best.is_none_or(|(d, _)| d < stack.len()) {
                        self.best = Some((stack.len(), key_at));
                    }
                    self.ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.pos += 1;
                    self.value(stack, depth + 1)?;
                    stack.pop();
                    self.ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b'}' => {}
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                loop {
                    self.ws();
                    if self.peek()? == b']' {
                        self.pos += 1;
                        return Some(());
                    }
                    // Array elements are not addressed by paths; scan past them.
                    let mut inner = Vec::new();
                    let saved = self.target;
                    self.target = &[];
                    let r = self.value(&mut inner, depth + 1);
                    self.target = saved;
                    r?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {}
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                        break;
                    }
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

/// Narrows an error that serde reports for a whole table (`span`, a byte range) to the key
/// `key` inside it, if the table's text mentions it.
pub(crate) fn key_within(text: &str, span: core::ops::Range<usize>, key: &str) -> Option<usize> {
    let region = text.get(span.clone())?;
    let bytes = region.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut from = 0;
    while let Some(i) = region[from..].find(key) {
        let at = from + i;
        let end = at + key.len();
        let before_ok = at == 0 || !ident(bytes[at - 1]);
        let after = region[end..].trim_start_matches(['"', ' ', '\t']);
        let after_ok = (end == bytes.len() || !ident(bytes[end]))
            && (after.starts_with('=') || after.starts_with(':'));
        if before_ok && after_ok {
            let quoted = at > 0 && bytes[at - 1] == b'"';
            return Some(span.start + at - usize::from(quoted));
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_toml_keys_and_falls_back_to_parents() {
        let text = "[retry]\nmax_attempts = 3\n\n[retry.strategies.rate_limit]\nkind = \"constant\"\ndelay = \"1s\"\n";
        let at = |p| locate(text, Format::Toml, p);
        assert_eq!(
            at("retry.max_attempts"),
            Some(Location { line: 2, column: 1 })
        );
        assert_eq!(
            at("retry.strategies.rate_limit.delay"),
            Some(Location { line: 6, column: 1 })
        );
        // Absent key: its deepest present parent.
        assert_eq!(
            at("retry.strategies.rate_limit.max").map(|l| l.line),
            Some(4)
        );
        assert_eq!(at("breaker.window"), None);
    }

    #[test]
    fn finds_json_keys() {
        let text = "{\n  \"retry\": {\n    \"max_attempts\": 0,\n    \"strategy\": {\"kind\": \"constant\", \"delay\": \"1s\"}\n  }\n}";
        let at = |p| locate(text, Format::Json, p);
        assert_eq!(
            at("retry.max_attempts"),
            Some(Location { line: 3, column: 5 })
        );
        assert_eq!(
            at("retry.strategy.delay"),
            Some(Location {
                line: 4,
                column: 38
            })
        );
        assert_eq!(at("retry.deadline"), Some(Location { line: 2, column: 3 }));
    }

    #[test]
    fn offsets_count_characters() {
        // "é" is two bytes: offset 6 falls inside it and counts as its start.
        assert_eq!(
            Location::of_offset("ab\ncdé", 7),
            Location { line: 2, column: 4 }
        );
        assert_eq!(
            Location::of_offset("ab\ncdé", 6),
            Location { line: 2, column: 3 }
        );
        assert_eq!(Location::of_offset("é", 1), Location { line: 1, column: 1 });
    }
}
