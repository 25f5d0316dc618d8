//! `jsonb` values. A value is kept as its normalized text, the form PostgreSQL prints: object
//! keys sorted (shorter keys first, then bytewise) with the last of duplicate keys kept,
//! `", "` between items and `": "` after keys, numbers as `numeric` prints them. Equal
//! documents have equal texts, so values compare, hash and group by their text.

use std::fmt::Write;

use arrow::array::ArrayRef;

use crate::decimal::Decimal;
use crate::func::{Func, each_row};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

/// A parsed JSON document.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, as `numeric` prints it.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object: keys in jsonb order, each once.
    Object(Vec<(String, Json)>),
}

/// Evaluates a jsonb function ([`Func::JsonbAccess`], [`Func::JsonbTypeof`]), a row at a time.
pub(crate) fn eval(func: Func, args: &[ArrayRef], ty: DataType) -> Result<ArrayRef> {
    each_row(args, ty, |row| {
        let Datum::Jsonb(doc) = &row[0] else {
            return Err(Error::Internal(format!("{func:?} of {:?}", row[0])));
        };
        let doc = Json::parse(doc)?;
        Ok(match (func, row.get(1)) {
            (Func::JsonbTypeof, None) => Datum::Varchar(doc.type_name().into()),
            (Func::JsonbAccess { text }, Some(key)) => {
                let value = match key {
                    Datum::Varchar(k) => doc.field(k),
                    Datum::Int32(i) => doc.element(i64::from(*i)),
                    other => return Err(Error::Internal(format!("jsonb key {other:?}"))),
                };
                match value {
                    None => Datum::Null,
                    Some(v) if text => v.to_text().map_or(Datum::Null, Datum::Varchar),
                    Some(v) => Datum::Jsonb(v.to_string()),
                }
            }
            (func, _) => return Err(Error::Internal(format!("{func:?} is not a jsonb function"))),
        })
    })
}

/// The normalized text of JSON document `text`.
pub fn normalize(text: &str) -> Result<String> {
    Ok(Json::parse(text)?.to_string())
}

impl Json {
    /// Parses a JSON document (RFC 8259), as PostgreSQL's jsonb input does.
    pub fn parse(text: &str) -> Result<Json> {
        let mut p = Parser {
            s: text.as_bytes(),
            pos: 0,
            text,
        };
        let value = p.value(0)?;
        p.skip_space();
        if p.pos != p.s.len() {
            return Err(p.error());
        }
        Ok(value)
    }

    /// The value of object field `key` (`->`), if this is an object with it.
    pub fn field(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Element `i` of an array (`->`; negative counts from the end).
    pub fn element(&self, i: i64) -> Option<&Json> {
        match self {
            Json::Array(items) => {
                let i = if i < 0 { items.len() as i64 + i } else { i };
                usize::try_from(i).ok().and_then(|i| items.get(i))
            }
            _ => None,
        }
    }

    /// The value as `->>` gives it: strings unquoted, NULL for JSON null, else the text.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// `jsonb_typeof`: object, array, string, number, boolean or null.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => f.write_str(n),
            Json::String(s) => write_string(f, s),
            Json::Array(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Json::Object(fields) => {
                f.write_char('{')?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_string(f, key)?;
                    write!(f, ": {value}")?;
                }
                f.write_char('}')
            }
        }
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn write_string(f: &mut impl Write, s: &str) -> std::fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Documents nest at most this deep (PostgreSQL's stack depth limit plays this part).
const MAX_DEPTH: usize = 1000;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn error(&self) -> Error {
        Error::InvalidText {
            ty: "json".into(),
            value: self.text.into(),
        }
    }

    fn skip_space(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > MAX_DEPTH {
            return Err(self.error());
        }
        self.skip_space();
        let Some(&b) = self.s.get(self.pos) else {
            return Err(self.error());
        };
        match b {
            b'{' => {
                self.pos += 1;
                let mut fields: Vec<(String, Json)> = Vec::new();
                self.skip_space();
                if !self.eat("}") {
                    loop {
                        self.skip_space();
                        if self.s.get(self.pos) != Some(&b'"') {
                            return Err(self.error());
                        }
                        let key = self.string()?;
                        self.skip_space();
                        if !self.eat(":") {
                            return Err(self.error());
                        }
                        let value = self.value(depth + 1)?;
                        match fields.iter_mut().find(|(k, _)| *k == key) {
                            Some(field) => field.1 = value,
                            None => fields.push((key, value)),
                        }
                        self.skip_space();
                        if self.eat("}") {
                            break;
                        }
                        if !self.eat(",") {
                            return Err(self.error());
                        }
                    }
                }
                fields.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
                Ok(Json::Object(fields))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_space();
                if !self.eat("]") {
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.skip_space();
                        if self.eat("]") {
                            break;
                        }
                        if !self.eat(",") {
                            return Err(self.error());
                        }
                    }
                }
                Ok(Json::Array(items))
            }
            b'"' => self.string().map(Json::String),
            b't' if self.eat("true") => Ok(Json::Bool(true)),
            b'f' if self.eat("false") => Ok(Json::Bool(false)),
            b'n' if self.eat("null") => Ok(Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.error()),
        }
    }

    fn number(&mut self) -> Result<Json> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.s.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos > from
        };
        self.eat("-");
        // No leading zeros: `0`, or a nonzero digit first.
        if self.eat("0") {
            if self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                return Err(self.error());
            }
        } else if !digits(self) {
            return Err(self.error());
        }
        if self.eat(".") && !digits(self) {
            return Err(self.error());
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.error());
            }
        }
        let literal = &self.text[start..self.pos];
        let value: Decimal = literal.parse()?;
        Ok(Json::Number(value.to_string()))
    }

    /// A string literal, at its opening quote.
    fn string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self
                .s
                .get(self.pos)
                .is_some_and(|b| !matches!(b, b'"' | b'\\') && *b >= 0x20)
            {
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.s.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.s.get(self.pos).copied();
                    self.pos += 1;
                    match escaped {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => out.push(self.unicode_escape()?),
                        _ => return Err(self.error()),
                    }
                }
                // A control character or the end of the text.
                _ => return Err(self.error()),
            }
        }
    }

    /// The character of `\uXXXX` (a surrogate pair takes two), after the `u`.
    fn unicode_escape(&mut self) -> Result<char> {
        let hex = |p: &mut Self| -> Result<u32> {
            let digits = p.text.get(p.pos..p.pos + 4).ok_or_else(|| p.error())?;
            let v = u32::from_str_radix(digits, 16).map_err(|_| p.error())?;
            p.pos += 4;
            Ok(v)
        };
        let first = hex(self)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.eat("\\u") {
                return Err(self.error());
            }
            let second = hex(self)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error());
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        match char::from_u32(code) {
            // jsonb cannot hold U+0000, as PostgreSQL's text cannot.
            Some(c) if c != '\0' => Ok(c),
            _ => Err(Error::InvalidValue(
                "unsupported Unicode escape sequence in a json value".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_print_as_postgres_prints_jsonb() {
        let cases = [
            ("null", "null"),
            (" 1 ", "1"),
            ("1e2", "100"),
            ("-1.50", "-1.50"),
            (r#""a""#, r#""a""#),
            (
                r#"{"bb":1,"a":[true,false,null],"a":{}}"#,
                r#"{"a": {}, "bb": 1}"#,
            ),
            (
                r#"["x\"y\\z\n", "\u00e9\ud83d\ude00"]"#,
                r#"["x\"y\\z\n", "é😀"]"#,
            ),
        ];
        for (input, printed) in cases {
            assert_eq!(normalize(input).unwrap(), printed, "{input}");
            assert_eq!(normalize(printed).unwrap(), printed, "{printed}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "tru",
            r#"{"a" 1}"#,
            "\"\u{1}\"",
            "1 2",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2);
        assert!(normalize(&deep).is_err());
    }

    #[test]
    fn fields_and_elements() {
        let doc = Json::parse(r#"{"a": [1, "x", null], "b": "s"}"#).unwrap();
        assert_eq!(doc.field("b").and_then(Json::to_text).as_deref(), Some("s"));
        let a = doc.field("a").unwrap();
        assert_eq!(a.element(1), Some(&Json::String("x".into())));
        assert_eq!(a.element(-1).and_then(Json::to_text), None);
        assert_eq!(a.element(3), None);
        assert_eq!(doc.field("zz"), None);
        assert_eq!(a.to_string(), r#"[1, "x", null]"#);
        assert_eq!(a.type_name(), "array");
    }
}
