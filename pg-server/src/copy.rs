//! `COPY table [(columns)] FROM STDIN`: parsing the text and CSV formats into rows of fields.

use crate::error::{Error, Result};

/// How COPY input is formatted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format: delimited fields, `\N` for NULL, backslash escapes.
    Text {
        /// Field separator (tab by default).
        delimiter: char,
        /// The NULL marker (`\N` by default).
        null: String,
    },
    /// CSV: quoted fields, an unquoted empty field is NULL.
    Csv {
        /// Field separator (comma by default).
        delimiter: char,
        /// The first line holds column names.
        header: bool,
        /// The NULL marker (empty by default).
        null: String,
    },
}

/// Splits COPY input into rows of fields (`None` is NULL).
pub fn parse_rows(data: &[u8], format: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    let text = std::str::from_utf8(data).map_err(|_| {
        Error::sql(
            "22021",
            "invalid byte sequence for encoding \"UTF8\" in COPY data",
        )
    })?;
    match format {
        CopyFormat::Text { delimiter, null } => Ok(text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .take_while(|line| *line != "\\.")
            .filter(|line| !line.is_empty())
            .map(|line| {
                line.split(*delimiter)
                    .map(|f| (f != null).then(|| unescape_text(f)))
                    .collect()
            })
            .collect()),
        CopyFormat::Csv {
            delimiter,
            header,
            null,
        } => {
            let mut rows = parse_csv(text, *delimiter, null)?;
            if *header && !rows.is_empty() {
                rows.remove(0);
            }
            Ok(rows)
        }
    }
}

/// Undoes the text format's backslash escapes.
fn unescape_text(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// CSV with `"` quoting (`""` inside quotes is a quote); quoted fields may span lines.
fn parse_csv(text: &str, delimiter: char, null: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut at_field_start) = (false, false, true);
    let mut chars = text.chars().peekable();
    let finish_field = |row: &mut Vec<Option<String>>, field: &mut String, quoted: &mut bool| {
        let value = std::mem::take(field);
        row.push(if !*quoted && value == null {
            None
        } else {
            Some(value)
        });
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                quoted = true;
                at_field_start = false;
            }
            c if c == delimiter => {
                finish_field(&mut row, &mut field, &mut quoted);
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                finish_field(&mut row, &mut field, &mut quoted);
                if !(row.len() == 1 && row[0].as_deref().is_none_or(str::is_empty) && !quoted) {
                    rows.push(std::mem::take(&mut row));
                } else {
                    row.clear();
                }
                at_field_start = true;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err(Error::sql("22P04", "unterminated CSV quoted field"));
    }
    if !field.is_empty() || !row.is_empty() || quoted {
        finish_field(&mut row, &mut field, &mut quoted);
        rows.push(row);
    }
    Ok(rows
        .into_iter()
        .filter(|r| !(r.len() == 1 && r[0].as_deref() == Some("\\.")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: '\t',
            null: "\\N".into(),
        }
    }

    #[test]
    fn text_format() {
        let rows = parse_rows(b"1\ta\\tb\n2\t\\N\r\n\\.\nignored\n", &text()).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a\tb".into())],
                vec![Some("2".into()), None]
            ]
        );
    }

    #[test]
    fn csv_format() {
        let csv = CopyFormat::Csv {
            delimiter: ',',
            header: true,
            null: String::new(),
        };
        let rows = parse_rows(
            b"id,name\n1,\"a, \"\"quoted\"\"\nline\"\n2,\n3,\"\"\n",
            &csv,
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a, \"quoted\"\nline".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into()), Some(String::new())],
            ]
        );
        assert!(parse_rows(b"1,\"open\n", &csv).is_err());
        assert!(parse_rows(&[0xff, 0xfe], &text()).is_err());
    }
}
