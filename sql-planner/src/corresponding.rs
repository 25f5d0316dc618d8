//! `UNION / INTERSECT / EXCEPT ... CORRESPONDING [BY (columns)]`, which the SQL parser does not
//! know: before parsing, `CORRESPONDING` becomes the parser's `BY NAME` quantifier and a `BY`
//! column list travels as a `/*corresponding+ a,b*/` hint on the right side's first `SELECT`.
//! The binder gives `BY NAME` the standard's CORRESPONDING meaning (see
//! [`corresponding_columns`]).

use std::borrow::Cow;

use crate::dialect::StreamDialect;
use sqlparser::ast::{self, SetExpr};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Span, Token, Tokenizer};

use crate::binder::expr::ident_name;
use crate::error::{PlanError, PlanResult};

/// The hint prefix that carries a `CORRESPONDING BY` column list.
const HINT: &str = "corresponding";

/// `sql` with every `CORRESPONDING [BY (...)]` rewritten into what the parser accepts.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    if !sql.to_ascii_lowercase().contains("corresponding") {
        return Ok(Cow::Borrowed(sql));
    }
    let tokens = Tokenizer::new(&StreamDialect, sql)
        .tokenize()
        .map_err(|e| PlanError::Syntax(e.to_string()))?;
    let is_space = |t: &Token| matches!(t, Token::Whitespace(_));
    let keyword = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.keyword == k);
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    // Non-whitespace tokens seen so far, to look back at the set operator.
    let mut previous: Vec<&Token> = Vec::new();
    // A column list waiting for the next SELECT.
    let mut pending: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let set_operator = |t: &Token| {
            [Keyword::UNION, Keyword::INTERSECT, Keyword::EXCEPT]
                .iter()
                .any(|k| keyword(t, *k))
        };
        let follows_set_operator = match previous.as_slice() {
            [.., op] if set_operator(op) => true,
            [.., op, q] => {
                set_operator(op) && (keyword(q, Keyword::ALL) || keyword(q, Keyword::DISTINCT))
            }
            _ => false,
        };
        if keyword(t, Keyword::CORRESPONDING) && follows_set_operator {
            out.push("BY NAME".into());
            previous.push(t);
            i += 1;
            // An optional `BY (a, b, ...)`.
            let mut j = i;
            while j < tokens.len() && is_space(&tokens[j]) {
                j += 1;
            }
            if j < tokens.len() && keyword(&tokens[j], Keyword::BY) {
                let mut names = Vec::new();
                let mut k = j + 1;
                let mut expect_name = true;
                let mut opened = false;
                while k < tokens.len() {
                    match &tokens[k] {
                        Token::Whitespace(_) => {}
                        Token::LParen if !opened => opened = true,
                        Token::Word(w) if opened && expect_name => {
                            names.push(ident_name(&w.to_ident(Span::empty())));
                            expect_name = false;
                        }
                        Token::Comma if opened && !expect_name => expect_name = true,
                        Token::RParen if opened && !expect_name => break,
                        other => {
                            return Err(PlanError::Syntax(format!(
                                "unexpected {other} in CORRESPONDING BY"
                            )));
                        }
                    }
                    k += 1;
                }
                if k == tokens.len() {
                    return Err(PlanError::Syntax("unterminated CORRESPONDING BY".into()));
                }
                if names.iter().any(|n| n.contains([',', '*', '/'])) {
                    return Err(PlanError::NotSupported(
                        "CORRESPONDING BY a column whose name holds ',', '*' or '/'".into(),
                    ));
                }
                pending = Some(names.join(","));
                i = k + 1;
            }
            continue;
        }
        out.push(t.to_string());
        if keyword(t, Keyword::SELECT)
            && let Some(names) = pending.take()
        {
            out.push(format!(" /*{HINT}+{names}*/ "));
        }
        if !is_space(t) {
            previous.push(t);
        }
        i += 1;
    }
    if pending.is_some() {
        return Err(PlanError::NotSupported(
            "CORRESPONDING BY before a side that does not start with SELECT".into(),
        ));
    }
    Ok(Cow::Owned(out.concat()))
}

/// Whether a set operation's quantifier asks for CORRESPONDING.
pub(crate) fn is_corresponding(q: &ast::SetQuantifier) -> bool {
    matches!(
        q,
        ast::SetQuantifier::ByName
            | ast::SetQuantifier::AllByName
            | ast::SetQuantifier::DistinctByName
    )
}

/// The `CORRESPONDING BY` list of a set operation whose right side is `right`, if it had one.
fn by_list(right: &SetExpr) -> Option<Vec<String>> {
    match right {
        SetExpr::Select(s) => s
            .optimizer_hints
            .iter()
            .find(|h| h.prefix == HINT)
            .map(|h| {
                h.text
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect()
            }),
        SetExpr::Query(q) => by_list(&q.body),
        SetExpr::SetOperation { left, .. } => by_list(left),
        _ => None,
    }
}

/// The (left, right) column positions a CORRESPONDING set operation keeps: those named in its
/// `BY` list, else every left column whose name the right side has, in left order.
pub(crate) fn corresponding_columns(
    left: &[String],
    right: &[String],
    right_expr: &SetExpr,
) -> PlanResult<Vec<(usize, usize)>> {
    let find = |side: &[String], name: &str| side.iter().position(|c| c == name);
    match by_list(right_expr) {
        Some(names) => names
            .iter()
            .map(|n| match (find(left, n), find(right, n)) {
                (Some(l), Some(r)) => Ok((l, r)),
                _ => Err(PlanError::InvalidSetOperation(format!(
                    "Column name `{n}` in CORRESPONDING BY is not found in a side of the UNION \
                     operation. It shall be included in both sides."
                ))),
            })
            .collect(),
        None => {
            let pairs: Vec<(usize, usize)> = left
                .iter()
                .enumerate()
                .filter_map(|(l, n)| find(right, n).map(|r| (l, r)))
                .collect();
            if pairs.is_empty() {
                let list = |side: &[String]| {
                    side.iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(PlanError::InvalidSetOperation(format!(
                    "When CORRESPONDING is specified, at least one column of the left side \
                     shall have a column name that is the column name of some column of the \
                     right side in a UNION operation. Left side query column list: ({}). Right \
                     side query column list: ({}).",
                    list(left),
                    list(right)
                )));
            }
            Ok(pairs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_corresponding_into_parsable_sql() {
        assert_eq!(
            rewrite("select * from t1 union all corresponding select * from t2").unwrap(),
            "select * from t1 union all BY NAME select * from t2"
        );
        assert_eq!(
            rewrite("select 1 union corresponding by (V4, \"v1\") (select * from t2)").unwrap(),
            "select 1 union BY NAME (select /*corresponding+v4,v1*/  * from t2)"
        );
        // Not after a set operator, or inside a string: left alone.
        assert_eq!(
            rewrite("select 'union corresponding' as corresponding").unwrap(),
            "select 'union corresponding' as corresponding"
        );
        assert!(rewrite("select 1 union corresponding by (a select 2").is_err());
    }
}
