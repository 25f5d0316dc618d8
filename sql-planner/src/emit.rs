//! `CREATE MATERIALIZED VIEW ... AS query EMIT ON WINDOW CLOSE`, which the SQL parser does not
//! know: before parsing, the clause becomes the view option
//! `WITH (emit_on_window_close = true)`, which the binder reads.

use std::borrow::Cow;

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

use crate::dialect::{is_word, tokens};
use crate::error::{PlanError, PlanResult};

/// The view option `EMIT ON WINDOW CLOSE` becomes.
pub(crate) const OPTION: &str = "emit_on_window_close";

/// `sql` with the `EMIT ON WINDOW CLOSE` of each `CREATE MATERIALIZED VIEW` rewritten into a
/// view option.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    if !sql.to_ascii_lowercase().contains("emit") {
        return Ok(Cow::Borrowed(sql));
    }
    let (tokens, solid) = tokens(sql)?;
    let mut out: Vec<String> = tokens.iter().map(Token::to_string).collect();
    let word = |n: usize, w: &str| solid.get(n).is_some_and(|i| is_word(&tokens[*i], w));
    let mut changed = false;
    // Where the statement being read starts (its first solid token).
    let mut start = 0;
    for n in 0..solid.len() {
        if tokens[solid[n]] == Token::SemiColon {
            start = n + 1;
            continue;
        }
        let emit = word(n, "emit") && word(n + 1, "on") && word(n + 2, "window");
        if !(emit && word(n + 3, "close")) {
            continue;
        }
        // `EXPLAIN CREATE MATERIALIZED VIEW ...` too.
        let create = if word(start, "explain") {
            start + 1
        } else {
            start
        };
        let creates_view = word(create, "create") && word(create + 1, "materialized");
        // The view's `AS`: the first one outside parentheses after its name.
        let mut depth = 0i32;
        let mut as_at = None;
        for m in create + 2..n {
            match &tokens[solid[m]] {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Word(w) if depth == 0 && w.quote_style.is_none() => {
                    if w.keyword == Keyword::WITH && as_at.is_none() {
                        return Err(PlanError::NotSupported(
                            "EMIT ON WINDOW CLOSE in a view with WITH options".into(),
                        ));
                    }
                    if w.keyword == Keyword::AS {
                        as_at = Some(m);
                        break;
                    }
                }
                _ => {}
            }
        }
        let (true, Some(as_at)) = (creates_view, as_at) else {
            return Err(PlanError::Syntax(
                "EMIT ON WINDOW CLOSE ends a CREATE MATERIALIZED VIEW statement".into(),
            ));
        };
        out[solid[as_at]] = format!("WITH ({OPTION} = true) AS");
        for m in n..n + 4 {
            out[solid[m]].clear();
        }
        changed = true;
    }
    Ok(if changed {
        Cow::Owned(out.concat())
    } else {
        Cow::Borrowed(sql)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_on_window_close_becomes_a_view_option() {
        assert_eq!(
            rewrite(
                "create materialized view v (a) as select (1) as x from t emit on window close; \
                 select 1"
            )
            .unwrap(),
            "create materialized view v (a) WITH (emit_on_window_close = true) AS select (1) \
             as x from t    ; select 1"
        );
        assert!(rewrite("SELECT 1 EMIT ON WINDOW CLOSE").is_err());
        assert_eq!(
            rewrite("EXPLAIN CREATE MATERIALIZED VIEW v AS SELECT 1 EMIT ON WINDOW CLOSE").unwrap(),
            "EXPLAIN CREATE MATERIALIZED VIEW v WITH (emit_on_window_close = true) AS SELECT 1    "
        );
        let untouched = "SELECT 'emit on window close' FROM emitted";
        assert_eq!(rewrite(untouched).unwrap(), untouched);
    }
}
