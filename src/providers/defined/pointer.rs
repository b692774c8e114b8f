//! JSON Pointers (RFC 6901) into a delivery's body, with the one extension
//! checkpoint lists need: a `~latest` segment, "the latest element of this
//! array". `~` must be followed by `0` or `1` in a standard pointer, so
//! `~latest` can never be a key's name: a pointer without it means exactly
//! what RFC 6901 says.

use std::fmt;

use serde_json::Value;

/// The segment that stands for an array's latest element. Both senders
/// shipped list their checkpoints oldest first, so it is the last one.
pub const LATEST: &str = "~latest";

/// One pointer, parsed: its segments unescaped, and where `~latest` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    segments: Vec<Segment>,
    /// The line of the definition it is written on (0 when not from one).
    line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Latest,
}

impl Pointer {
    /// Parses `text`: empty (the whole body) or `/`-separated segments,
    /// `~0` and `~1` escaping `~` and `/`, and at most one `~latest`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                segments: Vec::new(),
                line: 0,
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "'{text}' is not a JSON Pointer: it must start with / (RFC 6901)"
            ));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw == LATEST {
                segments.push(Segment::Latest);
                continue;
            }
            segments.push(Segment::Key(unescape(raw).ok_or_else(|| {
                format!(
                    "'{text}': segment '{raw}' has a ~ that is not ~0, ~1 or the whole \
                     segment {LATEST}"
                )
            })?));
        }
        if segments.iter().filter(|s| **s == Segment::Latest).count() > 1 {
            return Err(format!(
                "'{text}' has {LATEST} more than once; one level is supported"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
            line: 0,
        })
    }

    /// This pointer, written on `line` of its definition.
    pub fn on_line(self, line: usize) -> Self {
        Self { line, ..self }
    }

    /// The line of the definition it is written on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The value this pointer reaches in `body`; JSON `null` counts as
    /// missing, as senders write `null` for a field they do not know.
    pub fn find<'v>(&self, body: &'v Value) -> Option<&'v Value> {
        let mut at = body;
        for segment in &self.segments {
            at = match (segment, at) {
                (Segment::Latest, Value::Array(items)) => items.last()?,
                (Segment::Latest, _) => return None,
                (Segment::Key(key), Value::Object(map)) => map.get(key)?,
                (Segment::Key(key), Value::Array(items)) => items.get(array_index(key)?)?,
                (Segment::Key(_), _) => return None,
            };
        }
        (!at.is_null()).then_some(at)
    }
}

/// An array index as RFC 6901 writes it: digits, no leading zero.
fn array_index(key: &str) -> Option<usize> {
    let digits = !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit());
    if !digits || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    key.parse().ok()
}

/// `~1` is `/` and `~0` is `~`; any other `~` is an error.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return None,
        }
    }
    Some(out)
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A field's pointers in order: the first that reaches a value wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallbacks(Vec<Pointer>);

impl Fallbacks {
    /// The pointers, at least one.
    pub fn new(pointers: Vec<Pointer>) -> Result<Self, String> {
        if pointers.is_empty() {
            return Err("needs at least one pointer".into());
        }
        Ok(Self(pointers))
    }

    /// The first pointer that reaches a value, with the value.
    pub fn find<'v>(&self, body: &'v Value) -> Option<(&Pointer, &'v Value)> {
        self.0.iter().find_map(|p| p.find(body).map(|v| (p, v)))
    }

    /// The pointers, in order.
    pub fn pointers(&self) -> &[Pointer] {
        &self.0
    }
}

impl fmt::Display for Fallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.0.iter().map(|p| p.text.as_str()).collect();
        f.write_str(&texts.join(", then "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(pointer: &str, body: &Value) -> Option<Value> {
        Pointer::parse(pointer).unwrap().find(body).cloned()
    }

    #[test]
    fn pointers_read_as_rfc_6901_says() {
        // RFC 6901, section 5's document and some of its pointers.
        let doc = json!({"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, " ": 7});
        assert_eq!(find("", &doc), Some(doc.clone()));
        assert_eq!(find("/foo/0", &doc), Some(json!("bar")));
        assert_eq!(find("/", &doc), Some(json!(0)));
        assert_eq!(find("/a~1b", &doc), Some(json!(1)));
        assert_eq!(find("/m~0n", &doc), Some(json!(8)));
        assert_eq!(find("/ ", &doc), Some(json!(7)));
        assert_eq!(find("/foo/01", &doc), None);
        assert_eq!(find("/foo/2", &doc), None);
        assert!(Pointer::parse("foo").is_err());
        assert!(Pointer::parse("/a~2").is_err());
    }

    #[test]
    fn latest_is_the_last_element_and_null_is_missing() {
        let doc = json!({"checkpoints": [{"t": "1"}, {"t": "2", "city": null}]});
        assert_eq!(find("/checkpoints/~latest/t", &doc), Some(json!("2")));
        assert_eq!(find("/checkpoints/~latest/city", &doc), None);
        assert_eq!(
            find("/checkpoints/~latest/t", &json!({"checkpoints": []})),
            None
        );
        let twice = Pointer::parse("/a/~latest/b/~latest").unwrap_err();
        assert!(twice.contains("more than once"), "{twice}");
    }

    #[test]
    fn the_first_pointer_that_reaches_a_value_wins() {
        let doc = json!({"order_id": null, "order_number": "1001"});
        let fallbacks = Fallbacks::new(vec![
            Pointer::parse("/order_id").unwrap(),
            Pointer::parse("/order_number").unwrap(),
        ])
        .unwrap();
        let (pointer, value) = fallbacks.find(&doc).unwrap();
        assert_eq!(
            (pointer.to_string().as_str(), value),
            ("/order_number", &json!("1001"))
        );
    }
}
