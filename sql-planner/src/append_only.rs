//! `CREATE TABLE ... APPEND ONLY`, which the SQL parser does not know: before parsing, the
//! clause after a table's column list becomes the option `WITH (append_only = true)` (merged
//! into a `WITH (...)` that follows), which the binder reads.

use std::borrow::Cow;

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

use crate::error::PlanResult;

/// The table option `APPEND ONLY` becomes.
pub(crate) const OPTION: &str = "append_only";

/// `sql` with every `) APPEND ONLY` of a CREATE TABLE rewritten into a table option.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    if !sql.to_ascii_lowercase().contains("append") {
        return Ok(Cow::Borrowed(sql));
    }
    // The non-whitespace tokens' indices, to look around a token.
    let (tokens, solid) = crate::dialect::tokens(sql)?;
    let word = |t: Option<&Token>, w: &str| t.is_some_and(|t| crate::dialect::is_word(t, w));
    let mut out = String::with_capacity(sql.len() + 32);
    let mut skip_until = 0;
    for (n, &i) in solid.iter().enumerate() {
        let t = &tokens[i];
        let from = solid.get(n.wrapping_sub(1)).map_or(0, |p| p + 1);
        // Whitespace before this token, unless it was consumed by a rewrite.
        if i >= skip_until {
            for w in &tokens[from.max(skip_until)..i] {
                out.push_str(&w.to_string());
            }
        }
        if i < skip_until {
            continue;
        }
        let at = |k: usize| solid.get(n + k).map(|j| &tokens[*j]);
        let after_columns = n > 0 && tokens[solid[n - 1]] == Token::RParen;
        if after_columns && word(Some(t), "append") && word(at(1), "only") {
            let with = matches!(at(2), Some(Token::Word(w)) if w.keyword == Keyword::WITH)
                && at(3) == Some(&Token::LParen);
            if with {
                out.push_str(&format!("WITH ({OPTION} = true, "));
                skip_until = solid[n + 3] + 1;
            } else {
                out.push_str(&format!("WITH ({OPTION} = true)"));
                skip_until = solid[n + 1] + 1;
            }
            continue;
        }
        out.push_str(&t.to_string());
    }
    for w in &tokens[solid.last().map_or(0, |l| l + 1).max(skip_until)..] {
        out.push_str(&w.to_string());
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_only_becomes_a_table_option() {
        assert_eq!(
            rewrite("create table t (v int) append only;").unwrap(),
            "create table t (v int) WITH (append_only = true);"
        );
        assert_eq!(
            rewrite("CREATE TABLE t (v int) APPEND ONLY WITH (x = 1)").unwrap(),
            "CREATE TABLE t (v int) WITH (append_only = true, x = 1)"
        );
        let untouched = "SELECT 'append only' FROM appended";
        assert_eq!(rewrite(untouched).unwrap(), untouched);
    }
}
