//! `CREATE SOURCE` and `DROP SOURCE`, which the SQL parser does not know, and the `nexmark`
//! connector's options. Before parsing, `CREATE SOURCE` becomes `CREATE TABLE` with the table
//! option [`OPTION`] (the binder makes it a source), its dotted option names
//! (`nexmark.table.type`) become quoted names, and `DROP SOURCE` becomes `DROP TABLE`.

use std::borrow::Cow;

use crate::dialect::StreamDialect;
use dataflow::source::{NexmarkSource, NexmarkTable, SourceSpec};
use sqlparser::ast;
use sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::catalog::ColumnCatalog;
use crate::error::{PlanError, PlanResult};

/// The table option that marks a rewritten `CREATE SOURCE`.
pub(crate) const OPTION: &str = "__source";

fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// `sql` with its `CREATE SOURCE` and `DROP SOURCE` statements rewritten as tables.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    if !sql.to_ascii_lowercase().contains("source") {
        return Ok(Cow::Borrowed(sql));
    }
    let tokens = Tokenizer::new(&StreamDialect, sql)
        .tokenize()
        .map_err(|e| PlanError::Syntax(e.to_string()))?;
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i], Token::Whitespace(_)))
        .collect();
    let mut out: Vec<String> = tokens.iter().map(Token::to_string).collect();
    let mut n = 0;
    while n + 1 < solid.len() {
        let (t, next) = (&tokens[solid[n]], &tokens[solid[n + 1]]);
        let creates = is_word(t, "create") && is_word(next, "source");
        if is_word(t, "drop") && is_word(next, "source") {
            out[solid[n + 1]] = "TABLE".into();
        }
        if !creates {
            n += 1;
            continue;
        }
        out[solid[n + 1]] = "TABLE".into();
        // The rest of the statement: find `WITH (` after the column list.
        let end = (n..solid.len())
            .find(|m| tokens[solid[*m]] == Token::SemiColon)
            .unwrap_or(solid.len());
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
        Some(c) if c.eq_ignore_ascii_case("nexmark") => {}
        Some(other) => {
            return Err(PlanError::NotSupported(format!(
                "connector '{other}' (nexmark is)"
            )));
        }
        None => {
            return Err(PlanError::InvalidArgument(
                "a source needs WITH (connector = '...')".into(),
            ));
        }
    }
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
    let base_time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(SourceSpec {
        nexmark: NexmarkSource {
            table,
            event_num: number("nexmark.event.num")?,
            min_event_gap_ns: number("nexmark.min.event.gap.in.ns")?.unwrap_or(100_000),
            max_chunk_size: number("nexmark.max.chunk.size")?.unwrap_or(1024) as usize,
            base_time_ms,
        },
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "create TABLE s (a int) WITH (__source = true); drop TABLE s"
        );
        let untouched = "SELECT source FROM sources";
        assert_eq!(rewrite(untouched).unwrap(), untouched);
    }
}
