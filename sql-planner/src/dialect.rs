//! The SQL dialect we parse: PostgreSQL's, plus RisingWave's `SELECT * EXCEPT (columns)` and
//! `struct<name type, ...>` types.
//!
//! The parser knows `* EXCLUDE (columns)` (with qualified names, which its `* EXCEPT` does
//! not take), so `rewrite` turns a wildcard's `EXCEPT (` into `EXCLUDE (` before parsing and
//! [`StreamDialect`] accepts it; everything else is [`PostgreSqlDialect`]'s, including the
//! parser's own checks for PostgreSQL (the dialect reports PostgreSQL's type id).

use std::any::TypeId;
use std::borrow::Cow;

use sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{PlanError, PlanResult};

/// PostgreSQL with `* EXCLUDE (columns)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamDialect;

/// Methods answered as PostgreSQL answers them.
macro_rules! postgres {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret {
            PostgreSqlDialect {}.$name($($arg),*)
        })*
    };
}

impl Dialect for StreamDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn supports_select_wildcard_exclude(&self) -> bool {
        true
    }

    /// `struct<name type, ...>` types (and `STRUCT(...)` values).
    fn supports_struct_literal(&self) -> bool {
        true
    }

    fn is_table_alias(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        PostgreSqlDialect {}.is_table_alias(kw, parser)
    }

    postgres! {
        identifier_quote_style(identifier: &str) -> Option<char>;
        is_delimited_identifier_start(ch: char) -> bool;
        is_identifier_start(ch: char) -> bool;
        is_identifier_part(ch: char) -> bool;
        supports_unicode_string_literal() -> bool;
        is_reserved_for_identifier(kw: Keyword) -> bool;
        is_custom_operator_part(ch: char) -> bool;
        get_next_precedence(parser: &Parser) -> Option<Result<u8, ParserError>>;
        supports_filter_during_aggregation() -> bool;
        supports_group_by_expr() -> bool;
        supports_alter_user_as_alter_role() -> bool;
        prec_value(prec: Precedence) -> u8;
        allow_extract_custom() -> bool;
        allow_extract_single_quotes() -> bool;
        supports_create_index_with_clause() -> bool;
        supports_explain_with_utility_options() -> bool;
        supports_listen_notify() -> bool;
        supports_exclude_constraint() -> bool;
        supports_factorial_operator() -> bool;
        supports_bitwise_shift_operators() -> bool;
        supports_comment_on() -> bool;
        supports_load_extension() -> bool;
        supports_named_fn_args_with_colon_operator() -> bool;
        supports_named_fn_args_with_expr_name() -> bool;
        supports_empty_projections() -> bool;
        supports_nested_comments() -> bool;
        supports_string_escape_constant() -> bool;
        supports_numeric_literal_underscores() -> bool;
        supports_array_typedef_with_brackets() -> bool;
        supports_geometric_types() -> bool;
        supports_order_by_using_operator() -> bool;
        supports_set_names() -> bool;
        supports_alter_column_type_using() -> bool;
        supports_left_associative_joins_without_parens() -> bool;
        supports_notnull_operator() -> bool;
        supports_interval_options() -> bool;
        supports_insert_table_alias() -> bool;
        supports_create_table_like_parenthesized() -> bool;
        supports_select_wildcard_with_alias() -> bool;
        supports_comma_separated_trim() -> bool;
        supports_xml_expressions() -> bool;
        supports_aliased_function_args() -> bool;
        supports_comment_optimizer_hint() -> bool;
    }
}

/// The tokens of `sql` and the positions of those that are not whitespace: what the
/// rewrites before parsing (`CREATE SOURCE`, `APPEND ONLY`, `WATERMARK FOR`, ...) read.
pub(crate) fn tokens(sql: &str) -> PlanResult<(Vec<Token>, Vec<usize>)> {
    let tokens = Tokenizer::new(&StreamDialect, sql)
        .tokenize()
        .map_err(|e| PlanError::Syntax(e.to_string()))?;
    let solid = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i], Token::Whitespace(_)))
        .collect();
    Ok((tokens, solid))
}

/// Whether `t` is the unquoted word `w`, in any case.
pub(crate) fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// `sql` with each `* EXCEPT (` of a select list written `* EXCLUDE (`.
pub(crate) fn rewrite(sql: &str) -> PlanResult<Cow<'_, str>> {
    if !sql.to_ascii_lowercase().contains("except") {
        return Ok(Cow::Borrowed(sql));
    }
    let (mut tokens, solid) = tokens(sql)?;
    let mut changed = false;
    for w in solid.windows(3) {
        let except = matches!(&tokens[w[1]], Token::Word(x) if x.keyword == Keyword::EXCEPT);
        if tokens[w[0]] == Token::Mul && except && tokens[w[2]] == Token::LParen {
            tokens[w[1]] = Token::make_keyword("EXCLUDE");
            changed = true;
        }
    }
    Ok(if changed {
        Cow::Owned(tokens.iter().map(ToString::to_string).collect())
    } else {
        Cow::Borrowed(sql)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_except_becomes_exclude() {
        assert_eq!(
            rewrite("select * except (a, t.b), t.* EXCEPT(c) from t").unwrap(),
            "select * EXCLUDE (a, t.b), t.* EXCLUDE(c) from t"
        );
        let unchanged = "select a from t except (select b from u)";
        assert_eq!(rewrite(unchanged).unwrap(), unchanged);
    }
}
