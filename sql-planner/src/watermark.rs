//! `WATERMARK FOR column AS expr` in `CREATE TABLE` and `CREATE SOURCE`, which the SQL parser
//! does not know: before parsing, the clause leaves the column list and becomes the table
//! options [`COLUMN`] and [`EXPR`] (merged into a `WITH (...)` that follows, which the other
//! rewrites have made by then), which the binder reads; [`definition`] puts the clause back
//! for `SHOW CREATE`.

use std::borrow::Cow;

use sqlparser::ast;
use sqlparser::tokenizer::Token;

use crate::dialect::is_word;
use crate::error::{PlanError, PlanResult};

/// The table option naming the watermark's column.
pub(crate) const COLUMN: &str = "__watermark_column";
/// The table option holding the watermark's expression.
pub(crate) const EXPR: &str = "__watermark_expr";

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `sql` with each column list's `WATERMARK FOR column AS expr` made table options.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    if !sql.to_ascii_lowercase().contains("watermark") {
        return Ok(Cow::Borrowed(sql));
    }
    let (tokens, solid) = crate::dialect::tokens(sql)?;
    let mut out: Vec<String> = tokens.iter().map(Token::to_string).collect();
    let mut depth = 0usize;
    let mut n = 0;
    let mut changed = false;
    while n < solid.len() {
        let t = &tokens[solid[n]];
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon => depth = 0,
            _ => {}
        }
        let at = |k: usize| solid.get(n + k).map(|i| &tokens[*i]);
        let clause = depth == 1
            && is_word(t, "watermark")
            && at(1).is_some_and(|t| is_word(t, "for"))
            && at(2).is_some_and(|t| matches!(t, Token::Word(_)))
            && at(3).is_some_and(|t| is_word(t, "as"))
            && n > 0
            && tokens[solid[n - 1]] == Token::Comma;
        if !clause {
            n += 1;
            continue;
        }
        // The expression runs to the comma or parenthesis that ends the list item.
        let mut end = n + 4;
        let mut inner = 0usize;
        while end < solid.len() {
            match &tokens[solid[end]] {
                Token::LParen => inner += 1,
                Token::RParen if inner == 0 => break,
                Token::RParen => inner -= 1,
                Token::Comma if inner == 0 => break,
                _ => {}
            }
            end += 1;
        }
        if end == solid.len() || n + 4 == end {
            return Err(PlanError::Syntax(
                "WATERMARK FOR column AS expression, inside the column list".into(),
            ));
        }
        let column = tokens[solid[n + 2]].to_string();
        let expr: String = tokens[solid[n + 4]..solid[end - 1] + 1]
            .iter()
            .map(Token::to_string)
            .collect();
        // Gone from the list, with the comma before it.
        for piece in &mut out[solid[n - 1]..solid[end]] {
            piece.clear();
        }
        // The list's closing parenthesis, then the options.
        let mut close = end;
        let mut level = 0usize;
        while close < solid.len() {
            match &tokens[solid[close]] {
                Token::LParen => level += 1,
                Token::RParen if level == 0 => break,
                Token::RParen => level -= 1,
                _ => {}
            }
            close += 1;
        }
        if close == solid.len() {
            return Err(PlanError::Syntax("the column list is not closed".into()));
        }
        let options = format!("{COLUMN} = {}, {EXPR} = {}", quoted(&column), quoted(&expr));
        let with = solid
            .get(close + 1)
            .is_some_and(|i| is_word(&tokens[*i], "with"))
            && solid
                .get(close + 2)
                .is_some_and(|i| tokens[*i] == Token::LParen);
        if with {
            out[solid[close + 2]] = format!("({options}, ");
        } else {
            out[solid[close]] = format!(") WITH ({options})");
        }
        changed = true;
        n = close + 1;
        depth = 0;
    }
    Ok(if changed {
        Cow::Owned(out.concat())
    } else {
        Cow::Borrowed(sql)
    })
}

/// The watermark options of a `CREATE TABLE`: its column and expression, as written.
pub(crate) fn options(ct: &ast::CreateTable) -> Option<(String, String)> {
    let ast::CreateTableOptions::With(options) = &ct.table_options else {
        return None;
    };
    let value = |name: &str| {
        options.iter().find_map(|o| match o {
            ast::SqlOption::KeyValue {
                key,
                value: ast::Expr::Value(v),
            } if key.value == name => match &v.value {
                ast::Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
    };
    Some((value(COLUMN)?, value(EXPR)?))
}

/// `sql` (a `CREATE TABLE` or `CREATE SOURCE` as printed) with the watermark options back
/// as the clause at the end of its column list.
pub(crate) fn definition(sql: &str, column: &str, expr: &str) -> String {
    let options = format!("{COLUMN} = {}, {EXPR} = {}", quoted(column), quoted(expr));
    let sql =
        sql.replacen(&format!("{options}, "), "", 1)
            .replacen(&format!(" WITH ({options})"), "", 1);
    // The column list's closing parenthesis, outside quotes.
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (i, c) in sql.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return format!(
                        "{}, WATERMARK FOR {column} AS {expr}{}",
                        &sql[..i],
                        &sql[i..]
                    );
                }
            }
            _ => {}
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clause_becomes_options_and_comes_back() {
        let sql = "CREATE TABLE t (ts TIMESTAMP, v INT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
                   WITH (append_only = true)";
        let rewritten = rewrite(sql).unwrap();
        assert_eq!(
            rewritten,
            "CREATE TABLE t (ts TIMESTAMP, v INT) WITH (__watermark_column = 'ts', \
             __watermark_expr = 'ts - INTERVAL ''5'' SECOND', append_only = true)"
        );
        assert_eq!(
            definition(&rewritten, "ts", "ts - INTERVAL '5' SECOND"),
            "CREATE TABLE t (ts TIMESTAMP, v INT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
             WITH (append_only = true)"
        );
        assert_eq!(
            rewrite("create table u (a timestamp, watermark for a as a)").unwrap(),
            "create table u (a timestamp) WITH (__watermark_column = 'a', __watermark_expr = 'a')"
        );
        let untouched = "SELECT watermark FROM t";
        assert_eq!(rewrite(untouched).unwrap(), untouched);
    }
}
