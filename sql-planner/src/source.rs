//! `CREATE SOURCE` and `DROP SOURCE`, which the SQL parser does not know, and the options of
//! the `nexmark` and `datagen` connectors. Before parsing, `CREATE SOURCE` becomes `CREATE
//! TABLE` with the table option [`OPTION`] (the binder makes it a source), its dotted option
//! names (`nexmark.table.type`) become quoted names, a trailing `FORMAT ... ENCODE ...` is
//! dropped, and `DROP SOURCE` becomes `DROP STREAM` (an object PostgreSQL does not have, so
//! the binder can tell a source's drop from a table's; a `DROP STREAM` typed as such is
//! refused).

use std::borrow::Cow;

use crate::dialect::is_word;
use dataflow::source::{
    Connector, DatagenField, DatagenKind, DatagenSource, NexmarkSource, NexmarkTable, SourceSpec,
};
use dataflow::types::DataType;
use sqlparser::ast;
use sqlparser::tokenizer::{Token, Word};

use crate::catalog::ColumnCatalog;
use crate::error::{PlanError, PlanResult};

/// The table option that marks a rewritten `CREATE SOURCE`.
pub(crate) const OPTION: &str = "__source";

/// `sql` with its `CREATE SOURCE` and `DROP SOURCE` statements rewritten as tables.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("source") && !lower.contains("stream") {
        return Ok(Cow::Borrowed(sql));
    }
    let (tokens, solid) = crate::dialect::tokens(sql)?;
    let mut out: Vec<String> = tokens.iter().map(Token::to_string).collect();
    let mut n = 0;
    while n + 1 < solid.len() {
        let (t, next) = (&tokens[solid[n]], &tokens[solid[n + 1]]);
        let creates = is_word(t, "create") && is_word(next, "source");
        if is_word(t, "drop") && is_word(next, "stream") {
            return Err(PlanError::Syntax(
                "syntax error at or near \"STREAM\"".into(),
            ));
        }
        if is_word(t, "drop") && is_word(next, "source") {
            out[solid[n + 1]] = "STREAM".into();
        }
        if !creates {
            n += 1;
            continue;
        }
        out[solid[n + 1]] = "TABLE".into();
        // The rest of the statement: find `WITH (` after the column list.
        let mut end = (n..solid.len())
            .find(|m| tokens[solid[*m]] == Token::SemiColon)
            .unwrap_or(solid.len());
        // `FORMAT PLAIN ENCODE JSON [(...)]`: generated rows have no encoding to choose.
        if let Some(format) = (n + 2..end).find(|m| {
            is_word(&tokens[solid[*m]], "format")
                && solid
                    .get(m + 2)
                    .is_some_and(|i| is_word(&tokens[*i], "encode"))
        }) {
            let stop = solid.get(end).copied().unwrap_or(tokens.len());
            for piece in &mut out[solid[format]..stop] {
                piece.clear();
            }
            end = format;
        }
        let with = (n + 2..end).find(|m| {
            is_word(&tokens[solid[*m]], "with")
                && solid
                    .get(m + 1)
                    .is_some_and(|i| tokens[*i] == Token::LParen)
        });
        match with {
            None => {
                let last = solid[end - 1];
                out[last] = format!("{} WITH ({OPTION} = true)", out[last]);
            }
            Some(w) => {
                let open = solid[w + 1];
                out[open] = format!("({OPTION} = true, ");
                // Dotted names at key positions become one quoted name.
                let mut m = w + 2;
                let mut key_position = true;
                while m < end {
                    let token = &tokens[solid[m]];
                    if key_position && matches!(token, Token::Word(_)) {
                        let mut parts = vec![token.to_string()];
                        let mut last = m;
                        while last + 2 < end
                            && tokens[solid[last + 1]] == Token::Period
                            && matches!(tokens[solid[last + 2]], Token::Word(_))
                        {
                            parts.push(tokens[solid[last + 2]].to_string());
                            last += 2;
                        }
                        if last > m {
                            let quoted = Token::Word(Word {
                                value: parts.join("."),
                                quote_style: Some('"'),
                                keyword: sqlparser::keywords::Keyword::NoKeyword,
                            });
                            out[solid[m]] = quoted.to_string();
                            // The other parts, and whitespace between them, go.
                            for piece in &mut out[solid[m] + 1..=solid[last]] {
                                piece.clear();
                            }
                        }
                        m = last + 1;
                        key_position = false;
                        continue;
                    }
                    key_position = *token == Token::Comma;
                    m += 1;
                }
            }
        }
        n = end;
    }
    Ok(Cow::Owned(out.concat()))
}

/// The `CREATE SOURCE` statement of a source bound from its rewritten form.
pub(crate) fn definition(ct: &ast::CreateTable) -> String {
    ct.to_string()
        .replacen("CREATE TABLE", "CREATE SOURCE", 1)
        .replacen(&format!("{OPTION} = true, "), "", 1)
        .replacen(&format!(" WITH ({OPTION} = true)"), "", 1)
}

/// A source of `connector` options over `columns` (declared columns, then the hidden row
/// id).
pub(crate) fn spec(
    options: &[(String, String)],
    columns: &[ColumnCatalog],
) -> PlanResult<SourceSpec> {
    let option = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match option("connector") {
        Some(c) if c.eq_ignore_ascii_case("nexmark") => nexmark_spec(options, columns),
        Some(c) if c.eq_ignore_ascii_case("datagen") => datagen_spec(options, columns),
        Some(other) => Err(PlanError::NotSupported(format!(
            "connector '{other}' (nexmark and datagen are)"
        ))),
        None => Err(PlanError::InvalidArgument(
            "a source needs WITH (connector = '...')".into(),
        )),
    }
}

/// The time since the Unix epoch in milliseconds.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A `datagen` source: each declared column generated by its `fields.<column>.*` options.
fn datagen_spec(options: &[(String, String)], columns: &[ColumnCatalog]) -> PlanResult<SourceSpec> {
    let option = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let declared: Vec<&ColumnCatalog> = columns.iter().filter(|c| !c.hidden).collect();
    for (key, _) in options {
        let known = match key.split('.').collect::<Vec<_>>().as_slice() {
            ["connector"] => true,
            ["datagen", "rows", "per", "second"] | ["datagen", "split", "num"] => true,
            ["fields", column, option] => {
                declared.iter().any(|c| c.name == *column)
                    && matches!(
                        *option,
                        "kind"
                            | "start"
                            | "end"
                            | "min"
                            | "max"
                            | "seed"
                            | "length"
                            | "max_past"
                            | "max_past_mode"
                    )
            }
            _ => false,
        };
        if !known {
            return Err(PlanError::InvalidArgument(format!(
                "unknown option {key} of the datagen connector"
            )));
        }
    }
    let parse = |name: &str| -> PlanResult<Option<f64>> {
        option(name)
            .map(|v| {
                v.trim().parse::<f64>().map_err(|_| {
                    PlanError::InvalidArgument(format!("{name} must be a number, not '{v}'"))
                })
            })
            .transpose()
    };
    let whole = |name: &str| -> PlanResult<Option<i64>> {
        option(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    PlanError::InvalidArgument(format!("{name} must be a whole number, not '{v}'"))
                })
            })
            .transpose()
    };
    let unsigned = |name: &str| -> PlanResult<Option<u64>> {
        whole(name)?
            .map(|v| {
                u64::try_from(v)
                    .map_err(|_| PlanError::InvalidArgument(format!("{name} must not be negative")))
            })
            .transpose()
    };
    let mut fields = Vec::new();
    for column in &declared {
        let key = |o: &str| format!("fields.{}.{o}", column.name);
        let seed = unsigned(&key("seed"))?.unwrap_or(0);
        let kind = option(&key("kind"))
            .unwrap_or("random")
            .to_ascii_lowercase();
        let numeric = column.ty.is_numeric();
        let kind = match (kind.as_str(), column.ty) {
            ("sequence", _) if numeric => {
                let start = whole(&key("start"))?.unwrap_or(0);
                let end = whole(&key("end"))?.unwrap_or(i64::MAX);
                DatagenKind::Sequence { start, end }
            }
            ("random", _) if numeric => {
                let greatest = match column.ty {
                    DataType::Int16 => f64::from(i16::MAX),
                    DataType::Int32 => f64::from(i32::MAX),
                    _ => i64::MAX as f64,
                };
                let min = parse(&key("min"))?.unwrap_or(0.0);
                let max = parse(&key("max"))?.unwrap_or(greatest);
                if min > max {
                    return Err(PlanError::InvalidArgument(format!(
                        "{} is greater than {}",
                        key("min"),
                        key("max")
                    )));
                }
                DatagenKind::Random { min, max, seed }
            }
            ("random", DataType::Varchar) => DatagenKind::RandomString {
                length: unsigned(&key("length"))?.unwrap_or(10) as usize,
                seed,
            },
            ("random", DataType::Boolean) => DatagenKind::RandomBool { seed },
            ("random", DataType::Timestamp | DataType::Timestamptz | DataType::Date) => {
                if let Some(mode) = option(&key("max_past_mode"))
                    && !mode.eq_ignore_ascii_case("absolute")
                {
                    return Err(PlanError::NotSupported(format!(
                        "{} = '{mode}' (times are within max_past before the source was created)",
                        key("max_past_mode")
                    )));
                }
                let max_past_ms = match option(&key("max_past")) {
                    Some(text) => duration_ms(text).ok_or_else(|| {
                        PlanError::InvalidArgument(format!(
                            "{} must be a duration such as '2h 30m', not '{text}'",
                            key("max_past")
                        ))
                    })?,
                    None => 86_400_000,
                };
                DatagenKind::RandomTime { max_past_ms, seed }
            }
            (kind, ty) => {
                return Err(PlanError::NotSupported(format!(
                    "datagen kind '{kind}' for column {} of type {ty}",
                    column.name
                )));
            }
        };
        fields.push(DatagenField {
            ty: column.ty,
            kind,
        });
    }
    Ok(SourceSpec {
        watermark: None,
        splits: split_num("datagen.split.num", unsigned("datagen.split.num")?)?,
        fields: (0..fields.len()).collect(),
        connector: Connector::Datagen(DatagenSource {
            fields,
            rows_per_second: unsigned("datagen.rows.per.second")?.unwrap_or(10),
            base_time_ms: now_ms(),
        }),
    })
}

/// Milliseconds of a duration written as numbers with units (`90s`, `2h 30min`, `1d`).
fn duration_ms(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let value: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" | "msec" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(value.checked_mul(unit)?)?;
        rest = rest[unit_len..].trim_start();
    }
    Some(total)
}

/// A `nexmark` source: the declared columns taken from the table's generated fields.
fn nexmark_spec(options: &[(String, String)], columns: &[ColumnCatalog]) -> PlanResult<SourceSpec> {
    let option = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| -> PlanResult<Option<u64>> {
        option(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    PlanError::InvalidArgument(format!("{name} must be a whole number, not '{v}'"))
                })
            })
            .transpose()
    };
    if let Some((unknown, _)) = options.iter().find(|(k, _)| {
        k != "connector"
            && !matches!(
                k.as_str(),
                "nexmark.table.type"
                    | "nexmark.event.num"
                    | "nexmark.min.event.gap.in.ns"
                    | "nexmark.max.chunk.size"
                    | "nexmark.split.num"
            )
    }) {
        return Err(PlanError::InvalidArgument(format!(
            "unknown option {unknown} of the nexmark connector"
        )));
    }
    let table = match option("nexmark.table.type")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("person") => NexmarkTable::Person,
        Some("auction") => NexmarkTable::Auction,
        Some("bid") => NexmarkTable::Bid,
        other => {
            return Err(PlanError::InvalidArgument(format!(
                "nexmark.table.type must be 'Person', 'Auction' or 'Bid', not {}",
                other.map_or("missing".to_string(), |o| format!("'{o}'"))
            )));
        }
    };
    let known = table.columns();
    let mut fields = Vec::new();
    for column in columns.iter().filter(|c| !c.hidden) {
        let field = known
            .iter()
            .position(|(name, _)| *name == column.name)
            .ok_or_else(|| {
                PlanError::InvalidArgument(format!(
                    "nexmark {table:?} has no column {} (it has {})",
                    column.name,
                    known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ))
            })?;
        if known[field].1 != column.ty {
            return Err(PlanError::TypeMismatch(format!(
                "column {} of nexmark {table:?} is {}, not {}",
                column.name, known[field].1, column.ty
            )));
        }
        fields.push(field);
    }
    Ok(SourceSpec {
        connector: Connector::Nexmark(NexmarkSource {
            table,
            event_num: number("nexmark.event.num")?,
            min_event_gap_ns: number("nexmark.min.event.gap.in.ns")?.unwrap_or(100_000),
            max_chunk_size: number("nexmark.max.chunk.size")?.unwrap_or(1024) as usize,
            base_time_ms: now_ms(),
        }),
        fields,
        watermark: None,
        splits: split_num("nexmark.split.num", number("nexmark.split.num")?)?,
    })
}

/// The number of splits option `name` asks for (one without it).
fn split_num(name: &str, option: Option<u64>) -> PlanResult<u32> {
    match option {
        None => Ok(1),
        Some(n @ 1..=1024) => Ok(n as u32),
        Some(n) => Err(PlanError::InvalidArgument(format!(
            "{name} must be between 1 and 1024, not {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(duration_ms("90s"), Some(90_000));
        assert_eq!(duration_ms("2h 30min"), Some(9_000_000));
        assert_eq!(duration_ms("1d"), Some(86_400_000));
        assert_eq!(duration_ms("soon"), None);
        assert_eq!(duration_ms(""), None);
    }

    #[test]
    fn create_and_drop_source_become_tables() {
        assert_eq!(
            rewrite(
                "CREATE SOURCE bid (price BIGINT) WITH (connector = 'nexmark', \
                 nexmark.table.type = 'Bid', nexmark.split.num = '2');"
            )
            .unwrap(),
            "CREATE TABLE bid (price BIGINT) WITH (__source = true, connector = 'nexmark', \
             \"nexmark.table.type\" = 'Bid', \"nexmark.split.num\" = '2');"
        );
        assert_eq!(
            rewrite("create source s (a int); drop source s").unwrap(),
            "create TABLE s (a int) WITH (__source = true); drop STREAM s"
        );
        assert!(rewrite("DROP STREAM s").is_err());
        assert_eq!(
            rewrite(
                "create source s (v int) with (connector = 'datagen', fields.v.kind = \
                 'sequence') FORMAT PLAIN ENCODE JSON;"
            )
            .unwrap(),
            "create TABLE s (v int) with (__source = true, connector = 'datagen', \
             \"fields.v.kind\" = 'sequence') ;"
        );
        let untouched = "SELECT source FROM sources";
        assert_eq!(rewrite(untouched).unwrap(), untouched);
    }
}
