//! Binding scalar expressions: names to columns, types inferred, implicit casts inserted.

use std::cell::RefCell;

use dataflow::batch::plan::AggKind;
use dataflow::datetime::DateField;
use dataflow::expr::{BinaryOp, Expr, cast};
use dataflow::func::Func;
use dataflow::types::{DataType, Datum, Decimal, StructType};
use epoch_mvcc::memcomparable::OrderType;
use sqlparser::ast::{self, BinaryOperator, UnaryOperator};

use crate::error::{PlanError, PlanResult};

/// A column visible to expressions.
#[derive(Clone, Debug)]
pub(crate) struct ScopeColumn {
    /// The table (or alias) it comes from.
    pub table: Option<String>,
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// Left out of `*`.
    pub hidden: bool,
    /// A column of an enclosing query, seen from a subquery: a name resolves to it only when
    /// no column of the subquery has that name.
    pub outer: bool,
}

/// The columns of the relation an expression is evaluated over, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    /// The position of `table.name` (or just `name`).
    pub(crate) fn resolve(&self, table: Option<&str>, name: &str) -> PlanResult<usize> {
        let named =
            |c: &ScopeColumn| c.name == name && table.is_none_or(|t| c.table.as_deref() == Some(t));
        // Inner columns shadow outer ones.
        let inner_has = self.columns.iter().any(|c| !c.outer && named(c));
        let mut found = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.outer != inner_has && named(c));
        let full = || table.map_or(name.to_string(), |t| format!("{t}.{name}"));
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (Some(_), Some(_)) => {
                // A merged USING column (unqualified, visible) shadows the hidden sides.
                let mut visible = self.columns.iter().enumerate().filter(|(_, c)| {
                    c.name == name
                        && !c.hidden
                        && table.is_none_or(|t| c.table.as_deref() == Some(t))
                });
                match (visible.next(), visible.next()) {
                    (Some((i, c)), None) if c.table.is_none() => Ok(i),
                    _ => Err(PlanError::AmbiguousColumn(name.to_string())),
                }
            }
            (None, _) => {
                if let Some(t) = table
                    && !self.columns.iter().any(|c| c.table.as_deref() == Some(t))
                {
                    return Err(PlanError::UndefinedTable(t.to_string()));
                }
                Err(PlanError::UndefinedColumn(full()))
            }
        }
    }
}

/// An aggregate found while binding, with its argument bound over the input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BoundAgg {
    pub kind: AggKind,
    pub arg: Option<Expr>,
    pub distinct: bool,
    pub ret: DataType,
    /// `array_agg(x ORDER BY ...)`: the order its values are taken in.
    pub order_by: Vec<(Expr, OrderType)>,
    /// `array_agg(x) FILTER (WHERE c)`, `count(DISTINCT x) FILTER (WHERE c)`: `c` (see
    /// `AggCall::filter`).
    pub filter: Option<Expr>,
}

/// Aggregation context: expressions are bound over the output of a grouping, where group
/// expressions and aggregates are columns.
pub(crate) struct AggContext<'a> {
    pub input: &'a Scope,
    pub group_exprs: &'a [Expr],
    pub aggs: Vec<BoundAgg>,
}

/// Identifier as PostgreSQL folds it: unquoted names are lower-cased.
pub(crate) fn ident_name(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

pub(crate) fn agg_kind(name: &str) -> Option<AggKind> {
    Some(match name {
        "count" => AggKind::Count,
        "sum" => AggKind::Sum,
        "avg" => AggKind::Avg,
        "min" => AggKind::Min,
        "max" => AggKind::Max,
        "array_agg" => AggKind::ArrayAgg,
        // `last_value(x ORDER BY y)` is bound as `first_value` in the reverse order.
        "first_value" | "last_value" => AggKind::FirstValue,
        // Written only by the binder (see `subquery.rs`).
        "__single_value" => AggKind::SingleValue,
        _ => return None,
    })
}

/// The result type of aggregate `kind` over values of type `arg` (none for count(*)), if it
/// is defined for them.
pub(crate) fn agg_return_type(kind: AggKind, arg: Option<DataType>) -> Option<DataType> {
    Some(match (kind, arg) {
        (AggKind::CountStar | AggKind::Count, _) => DataType::Int64,
        // As in PostgreSQL: sums of small integers are bigint, of bigint or numeric numeric;
        // averages of integers and numeric are numeric, of floats double precision.
        (AggKind::Sum, Some(DataType::Int16 | DataType::Int32)) => DataType::Int64,
        (AggKind::Sum, Some(DataType::Int64 | DataType::Decimal)) => DataType::Decimal,
        (AggKind::Sum, Some(t @ (DataType::Float32 | DataType::Float64 | DataType::Interval))) => t,
        (AggKind::Avg, Some(DataType::Float32 | DataType::Float64)) => DataType::Float64,
        (AggKind::Avg, Some(t)) if t.is_numeric() => DataType::Decimal,
        (AggKind::Min | AggKind::Max, Some(t)) => t,
        (AggKind::ArrayAgg, Some(t)) => DataType::list(t),
        (AggKind::FirstValue | AggKind::SingleValue, Some(t)) => t,
        _ => return None,
    })
}

/// Aggregates bound as expressions of other aggregates (see [`statistic`] and
/// [`bool_agg`]).
const DERIVED_AGGS: &[&str] = &[
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "var_samp",
    "variance",
    "var_pop",
    "stddev",
    "stddev_samp",
    "stddev_pop",
];

/// Whether `name` is an aggregate: one of [`agg_kind`]'s, or one bound through others
/// ([`DERIVED_AGGS`]).
fn is_agg_name(name: &str) -> bool {
    agg_kind(name).is_some() || DERIVED_AGGS.contains(&name)
}

/// The single argument of aggregate call `f` and its FILTER condition (TRUE without one),
/// as SQL text.
fn agg_arg_and_filter(f: &ast::Function) -> PlanResult<(&ast::FunctionArg, String)> {
    let name = function_name(f);
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(PlanError::UndefinedFunction(format!(
            "function {name}() does not exist"
        )));
    };
    let [arg] = list.args.as_slice() else {
        return Err(PlanError::UndefinedFunction(format!(
            "function {name} takes one argument"
        )));
    };
    let filter = f
        .filter
        .as_ref()
        .map_or("TRUE".to_string(), |c| format!("({c})"));
    Ok((arg, filter))
}

/// `bool_and(x)` / `every(x)` / `bool_or(x)` of a boolean `x`, through counts: NULL without
/// non-NULL values, else whether no value is false (any is true).
fn bool_agg(f: &ast::Function, name: &str) -> PlanResult<ast::Expr> {
    let (x, filter) = agg_arg_and_filter(f)?;
    let test = if name == "bool_or" {
        format!("count(*) FILTER (WHERE {filter} AND ({x})) > 0")
    } else {
        format!("count(*) FILTER (WHERE {filter} AND NOT ({x})) = 0")
    };
    super::subquery::parse_expr(&format!(
        "CASE WHEN count({x}) FILTER (WHERE {filter}) = 0 THEN NULL ELSE {test} END"
    ))
}

/// The variance and standard deviation aggregates of a number `x` of type `ty`, through the
/// count, sum and sum of squares of its values (as numeric, or double precision for floats,
/// which is also their result type).
fn statistic(f: &ast::Function, name: &str, ty: DataType) -> PlanResult<ast::Expr> {
    if !ty.is_numeric() {
        return Err(PlanError::UndefinedFunction(format!(
            "function {name}({ty}) does not exist"
        )));
    }
    if is_distinct(f) {
        return Err(PlanError::NotSupported(format!("{name}(DISTINCT ...)")));
    }
    let (x, filter) = agg_arg_and_filter(f)?;
    let t = if matches!(ty, DataType::Float32 | DataType::Float64) {
        "double precision"
    } else {
        "numeric"
    };
    let n = format!("count({x}) FILTER (WHERE {filter})");
    let s = format!("sum(CAST({x} AS {t})) FILTER (WHERE {filter})");
    let q = format!("sum(CAST({x} AS {t}) * CAST({x} AS {t})) FILTER (WHERE {filter})");
    // Rounding can take a double precision variance just below zero.
    let (least, divisor) = if name.ends_with("_pop") {
        (0, n.clone())
    } else {
        (1, format!("({n} - 1)"))
    };
    let variance = format!(
        "CASE WHEN {n} > {least} THEN greatest(({q} - {s} * {s} / {n}) / {divisor}, 0) END"
    );
    super::subquery::parse_expr(&if name.starts_with("stddev") {
        format!("CAST(sqrt({variance}) AS {t})")
    } else {
        variance
    })
}

/// `string_agg(x, sep)` through `array_agg` of each row's separator and value: NULL values
/// (and their separators) are skipped, no values give NULL, and the separator before the
/// first value is cut off.
fn string_agg(f: &ast::Function) -> PlanResult<Option<ast::Expr>> {
    let ast::FunctionArguments::List(list) = &f.args else {
        return Ok(None);
    };
    let [x, sep] = list.args.as_slice() else {
        return Err(PlanError::UndefinedFunction(
            "function string_agg takes two arguments".into(),
        ));
    };
    let clauses: String = list.clauses.iter().map(|c| format!(" {c}")).collect();
    let filter = f
        .filter
        .as_ref()
        .map_or(String::new(), |c| format!("({c}) AND "));
    // Each value after its own row's separator; the first value's separator is cut off.
    // DISTINCT applies to (separator, value) pairs, as the separator is an argument too.
    let distinct = if is_distinct(f) { "DISTINCT " } else { "" };
    let piece = format!("COALESCE(CAST({sep} AS varchar), '') || CAST({x} AS varchar)");
    let first_sep = format!(
        "first_value(COALESCE(CAST({sep} AS varchar), ''){clauses}) \
         FILTER (WHERE {filter}({x}) IS NOT NULL)"
    );
    super::subquery::parse_expr(&format!(
        "substring(array_to_string(array_agg({distinct}{piece}{clauses}) \
         FILTER (WHERE {filter}TRUE), '') FROM char_length({first_sep}) + 1)"
    ))
    .map(Some)
}

fn function_name(f: &ast::Function) -> String {
    f.name
        .0
        .iter()
        .map(|p| p.to_string().to_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether `e` contains an aggregate call.
pub(crate) fn contains_agg(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Function(f) => {
            is_agg_name(&function_name(f))
                || function_args(f)
                    .iter()
                    .any(|a| matches!(a, Arg::Expr(x) if contains_agg(x)))
        }
        E::BinaryOp { left, right, .. }
        | E::IsDistinctFrom(left, right)
        | E::IsNotDistinctFrom(left, right) => contains_agg(left) || contains_agg(right),
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::Cast { expr, .. } => contains_agg(expr),
        E::Between {
            expr, low, high, ..
        } => contains_agg(expr) || contains_agg(low) || contains_agg(high),
        E::InList { expr, list, .. } => contains_agg(expr) || list.iter().any(contains_agg),
        E::CompoundFieldAccess { root, .. } => contains_agg(root),
        E::Collate { expr, .. } => contains_agg(expr),
        E::Array(ast::Array { elem, .. }) | E::Tuple(elem) => elem.iter().any(contains_agg),
        E::AnyOp { left, right, .. } | E::AllOp { left, right, .. } => {
            contains_agg(left) || contains_agg(right)
        }
        E::Position { expr, r#in } => contains_agg(expr) || contains_agg(r#in),
        E::Trim {
            expr,
            trim_what,
            trim_characters,
            ..
        } => {
            contains_agg(expr)
                || trim_what.as_deref().is_some_and(contains_agg)
                || trim_characters.iter().flatten().any(contains_agg)
        }
        E::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            contains_agg(expr)
                || substring_from.as_deref().is_some_and(contains_agg)
                || substring_for.as_deref().is_some_and(contains_agg)
        }
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_agg)
                || conditions
                    .iter()
                    .any(|c| contains_agg(&c.condition) || contains_agg(&c.result))
                || else_result.as_deref().is_some_and(contains_agg)
        }
        _ => false,
    }
}

enum Arg<'a> {
    Expr(&'a ast::Expr),
    Star,
}

fn function_args(f: &ast::Function) -> Vec<Arg<'_>> {
    match &f.args {
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Arg::Expr(e),
                _ => Arg::Star,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_distinct(f: &ast::Function) -> bool {
    matches!(&f.args, ast::FunctionArguments::List(l) if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)))
}

fn numeric_rank(t: DataType) -> Option<u8> {
    Some(match t {
        DataType::Int16 => 1,
        DataType::Int32 => 2,
        DataType::Int64 => 3,
        DataType::Decimal => 4,
        DataType::Float32 => 5,
        DataType::Float64 => 6,
        _ => return None,
    })
}

/// Literals without a declared type (strings and NULL) adapt to the other operand.
pub(crate) fn is_untyped_literal(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Literal {
            value: Datum::Null,
            ..
        } | Expr::Literal {
            value: Datum::Varchar(_),
            ty: DataType::Varchar
        }
    )
}

/// The type two operands are compared or combined in.
pub(crate) fn common_type(l: &Expr, r: &Expr) -> PlanResult<DataType> {
    let (a, b) = (l.data_type(), r.data_type());
    if a == b {
        return Ok(a);
    }
    if is_untyped_literal(r) {
        return Ok(a);
    }
    if is_untyped_literal(l) {
        return Ok(b);
    }
    if let (Some(x), Some(y)) = (numeric_rank(a), numeric_rank(b)) {
        let wider = if x >= y { a } else { b };
        // bigint or numeric with real widens to double, as in PostgreSQL.
        let bigint_with_real = wider == DataType::Float32 && matches!(x.min(y), 3 | 4);
        return Ok(if bigint_with_real {
            DataType::Float64
        } else {
            wider
        });
    }
    use DataType::*;
    Ok(match (a, b) {
        // Field by field, the left's names kept; a row constructor's untyped fields adapt.
        (Struct(x), Struct(y)) if x.fields().len() == y.fields().len() => {
            let (lf, rf) = (struct_fields(l, x), struct_fields(r, y));
            DataType::structure(
                x.fields()
                    .iter()
                    .zip(lf.iter().zip(&rf))
                    .map(|((name, _), (p, q))| Ok((name.clone(), common_type(p, q)?)))
                    .collect::<PlanResult<_>>()?,
            )
        }
        (Date, Timestamp) | (Timestamp, Date) => Timestamp,
        (Date | Timestamp, Timestamptz) | (Timestamptz, Date | Timestamp) => Timestamptz,
        _ => {
            return Err(PlanError::TypeMismatch(format!(
                "cannot combine {a} and {b}"
            )));
        }
    })
}

/// The fields of struct-typed `e`: a row constructor's arguments, else columns of the field
/// types.
fn struct_fields(e: &Expr, s: StructType) -> Vec<Expr> {
    match e {
        Expr::Func {
            func: Func::RowConstruct,
            args,
            ..
        } => args.clone(),
        _ => s.fields().iter().map(|f| Expr::column(0, f.1)).collect(),
    }
}

/// The type values of several expressions (CASE branches, COALESCE arguments, a VALUES
/// column) share: the common type of the typed ones; untyped literals adapt to it.
pub(crate) fn unify<'a>(exprs: impl Iterator<Item = &'a Expr>) -> PlanResult<DataType> {
    let mut first = None;
    let mut typed: Option<DataType> = None;
    for e in exprs {
        first.get_or_insert(e.data_type());
        if is_untyped_literal(e) {
            continue;
        }
        typed = Some(match typed {
            None => e.data_type(),
            Some(t) => common_type(&Expr::column(0, t), e)?,
        });
    }
    Ok(typed.or(first).unwrap_or(DataType::Varchar))
}

/// `e` as type `to`: constants are converted now (so bad literals fail at planning time with
/// the value in the message), anything else gets a cast.
pub(crate) fn coerce(e: Expr, to: DataType) -> PlanResult<Expr> {
    if e.data_type() == to {
        return Ok(e);
    }
    match e {
        Expr::Literal {
            value: Datum::Null, ..
        } => Ok(Expr::literal(Datum::Null, to)),
        Expr::Literal { value, ty } => {
            let text = match &value {
                Datum::Varchar(s) => s.trim().to_string(),
                other => other.to_text().unwrap_or_default(),
            };
            let array = value.to_array(ty, 1);
            let converted = cast(&array, ty, to).map_err(|e| match e {
                dataflow::Error::OutOfRange(_) => PlanError::TypeMismatch(e.to_string()),
                dataflow::Error::InvalidValue(m) => PlanError::InvalidArgument(m),
                _ => PlanError::InvalidLiteral {
                    ty: to.to_string(),
                    value: text,
                },
            })?;
            Ok(Expr::literal(Datum::from_array(converted.as_ref(), 0), to))
        }
        // A row constructor converts field by field, so its literals convert now.
        Expr::Func {
            func: Func::RowConstruct,
            args,
            ..
        } if matches!(to, DataType::Struct(s) if s.fields().len() == args.len()) => {
            let DataType::Struct(s) = to else {
                unreachable!("matched")
            };
            let args = args
                .into_iter()
                .zip(s.fields())
                .map(|(a, (_, t))| coerce(a, *t))
                .collect::<PlanResult<_>>()?;
            Ok(Expr::Func {
                func: Func::RowConstruct,
                args,
                ty: to,
            })
        }
        other => Ok(Expr::Cast {
            expr: Box::new(other),
            to,
        }),
    }
}

/// Parses a SQL type name.
pub(crate) fn sql_type(t: &ast::DataType) -> PlanResult<DataType> {
    use ast::DataType as T;
    Ok(match t {
        T::Boolean | T::Bool => DataType::Boolean,
        T::SmallInt(_) | T::Int2(_) => DataType::Int16,
        T::Int(_) | T::Integer(_) | T::Int4(_) => DataType::Int32,
        T::BigInt(_) | T::Int8(_) => DataType::Int64,
        T::Real | T::Float4 => DataType::Float32,
        T::Double(_) | T::DoublePrecision | T::Float8 | T::Float(_) => DataType::Float64,
        T::Numeric(_) | T::Decimal(_) | T::Dec(_) => DataType::Decimal,
        T::Varchar(_) | T::Text | T::String(_) | T::CharacterVarying(_) | T::CharVarying(_) => {
            DataType::Varchar
        }
        T::Date => DataType::Date,
        T::Time(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => DataType::Time,
        T::Timestamp(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => {
            DataType::Timestamp
        }
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            DataType::Timestamptz
        }
        T::Interval { .. } => DataType::Interval,
        T::Bytea => DataType::Bytea,
        T::JSONB => DataType::Jsonb,
        T::Struct(fields, _) => DataType::structure(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let name = f
                        .field_name
                        .as_ref()
                        .map_or_else(|| format!("f{}", i + 1), ident_name);
                    Ok((name, sql_type(&f.field_type)?))
                })
                .collect::<PlanResult<_>>()?,
        ),
        T::Array(
            ast::ArrayElemTypeDef::SquareBracket(elem, _)
            | ast::ArrayElemTypeDef::AngleBracket(elem)
            | ast::ArrayElemTypeDef::Parenthesis(elem)
            | ast::ArrayElemTypeDef::Qualified(elem, _),
        ) => DataType::list(sql_type(elem)?),
        // `pg_catalog.int4` and the like: PostgreSQL's internal names.
        T::Custom(name, _) => {
            let name = name.to_string().to_lowercase();
            match name.strip_prefix("pg_catalog.").unwrap_or(&name) {
                "bool" => DataType::Boolean,
                "int2" => DataType::Int16,
                "int4" | "oid" => DataType::Int32,
                "int8" => DataType::Int64,
                "float4" => DataType::Float32,
                "float8" => DataType::Float64,
                "text" | "varchar" | "name" | "char" | "bpchar" => DataType::Varchar,
                "timestamptz" => DataType::Timestamptz,
                "bytea" => DataType::Bytea,
                "jsonb" => DataType::Jsonb,
                other => {
                    return Err(PlanError::UndefinedObject(format!(
                        "type \"{other}\" does not exist"
                    )));
                }
            }
        }
        other => return Err(PlanError::NotSupported(format!("type {other}"))),
    })
}

fn literal(v: &ast::Value) -> PlanResult<Expr> {
    use ast::Value as V;
    Ok(match v {
        // As in PostgreSQL: integers that fit are int or bigint, every other number is numeric
        // (double precision only beyond numeric's range).
        V::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                Expr::literal(Datum::Int32(i), DataType::Int32)
            } else if let Ok(i) = n.parse::<i64>() {
                Expr::literal(Datum::Int64(i), DataType::Int64)
            } else if let Ok(d) = n.parse::<Decimal>() {
                Expr::literal(Datum::Decimal(d), DataType::Decimal)
            } else {
                let f: f64 = n.parse().map_err(|_| PlanError::InvalidLiteral {
                    ty: "numeric".into(),
                    value: n.clone(),
                })?;
                Expr::literal(Datum::Float64(f), DataType::Float64)
            }
        }
        V::SingleQuotedString(s) | V::DoubleQuotedString(s) | V::EscapedStringLiteral(s) => {
            Expr::literal(Datum::Varchar(s.clone()), DataType::Varchar)
        }
        V::Boolean(b) => Expr::literal(Datum::Bool(*b), DataType::Boolean),
        V::Null => Expr::literal(Datum::Null, DataType::Varchar),
        other => return Err(PlanError::NotSupported(format!("literal {other}"))),
    })
}

/// Statement-wide binding context: inferred parameter types, and the catalog that system
/// functions (`pg_table_is_visible`, `'t'::regclass`, ...) answer from.
#[derive(Default)]
pub(crate) struct Params<'c> {
    /// Inferred `$n` types, by position (`None`: not known yet).
    pub types: RefCell<Vec<Option<DataType>>>,
    /// The catalog (none for expressions bound outside a statement).
    pub catalog: Option<&'c dyn crate::catalog::Catalog>,
    /// How many SQL function bodies enclose the expression being bound.
    pub function_depth: usize,
}

/// The number of a `$n` placeholder.
fn placeholder(e: &ast::Expr) -> Option<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        ast::Expr::Nested(inner) => placeholder(inner),
        _ => None,
    }
}

/// Records that parameter `$n` is used as type `ty`, unless its type is already known.
pub(crate) fn note_param(params: &Params, e: &ast::Expr, ty: DataType) {
    if let Some(n) = placeholder(e).filter(|n| *n >= 1) {
        let mut p = params.types.borrow_mut();
        if p.len() < n {
            p.resize(n, None);
        }
        p[n - 1].get_or_insert(ty);
    }
}

/// Binds expressions over a scope, optionally in an aggregation context.
pub(crate) struct ExprBinder<'s, 'a> {
    pub scope: &'s Scope,
    pub agg: Option<&'s mut AggContext<'a>>,
    pub params: &'s Params<'s>,
}

impl ExprBinder<'_, '_> {
    /// Binds over `scope` with no aggregation.
    pub(crate) fn bind_plain(scope: &Scope, params: &Params, e: &ast::Expr) -> PlanResult<Expr> {
        ExprBinder {
            scope,
            agg: None,
            params,
        }
        .bind(e)
    }

    /// Records the type of a parameter `e` used where `other` is expected (unless `other`
    /// is itself untyped).
    fn note_against(&self, e: &ast::Expr, other: &Expr) {
        if !is_untyped_literal(other) {
            note_param(self.params, e, other.data_type());
        }
    }

    /// `f` written with other aggregates, if it is one of [`DERIVED_AGGS`] called in an
    /// aggregation.
    fn derived_agg(&mut self, f: &ast::Function) -> PlanResult<Option<ast::Expr>> {
        let name = function_name(f);
        if !DERIVED_AGGS.contains(&name.as_str()) || f.over.is_some() {
            return Ok(None);
        }
        let Some(agg) = self.agg.as_deref() else {
            return Ok(None);
        };
        if name == "string_agg" {
            return string_agg(f);
        }
        let (arg, _) = agg_arg_and_filter(f)?;
        let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = arg else {
            return Err(PlanError::UndefinedFunction(format!(
                "function {name}({arg}) does not exist"
            )));
        };
        if contains_agg(x) {
            return Err(PlanError::Grouping(
                "aggregate function calls cannot be nested".into(),
            ));
        }
        let ty = ExprBinder::bind_plain(agg.input, self.params, x)?.data_type();
        match name.as_str() {
            "bool_and" | "bool_or" | "every" if ty == DataType::Boolean => {
                bool_agg(f, &name).map(Some)
            }
            "bool_and" | "bool_or" | "every" => Err(PlanError::UndefinedFunction(format!(
                "function {name}({ty}) does not exist"
            ))),
            _ => statistic(f, &name, ty).map(Some),
        }
    }

    pub(crate) fn bind(&mut self, e: &ast::Expr) -> PlanResult<Expr> {
        if let ast::Expr::Function(f) = e
            && let Some(rewritten) = self.derived_agg(f)?
        {
            return self.bind(&rewritten);
        }
        if let Some(agg) = self.agg.as_deref_mut() {
            if let ast::Expr::Function(f) = e
                && let Some(kind) = agg_kind(&function_name(f))
            {
                return bind_agg_call(agg, self.params, f, kind);
            }
            if !contains_agg(e) {
                let bound = ExprBinder::bind_plain(agg.input, self.params, e)?;
                if let Some(i) = agg.group_exprs.iter().position(|g| *g == bound) {
                    return Ok(Expr::column(i, bound.data_type()));
                }
                // An uncorrelated scalar subquery has one value for every row: any row's (the
                // minimum, which views also maintain).
                if let Expr::Column { index, ty } = &bound
                    && is_constant_subquery_column(&agg.input.columns[*index].name)
                {
                    let call = BoundAgg {
                        kind: AggKind::Min,
                        arg: Some(bound.clone()),
                        distinct: false,
                        ret: *ty,
                        order_by: vec![],
                        filter: None,
                    };
                    let i = match agg.aggs.iter().position(|a| *a == call) {
                        Some(i) => i,
                        None => {
                            agg.aggs.push(call);
                            agg.aggs.len() - 1
                        }
                    };
                    return Ok(Expr::column(agg.group_exprs.len() + i, *ty));
                }
                if let ast::Expr::Identifier(id) = e {
                    return Err(PlanError::Grouping(ident_name(id)));
                }
                if let ast::Expr::CompoundIdentifier(ids) = e {
                    return Err(PlanError::Grouping(
                        ids.iter().map(ident_name).collect::<Vec<_>>().join("."),
                    ));
                }
            }
        }
        self.bind_structure(e)
    }

    fn bind_structure(&mut self, e: &ast::Expr) -> PlanResult<Expr> {
        use ast::Expr as E;
        match e {
            E::Ceil {
                expr,
                field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime),
            }
            | E::Floor {
                expr,
                field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime),
            } => {
                let func = if matches!(e, E::Ceil { .. }) {
                    Func::Ceil
                } else {
                    Func::Floor
                };
                let arg = self.bind(expr)?;
                let ty = if arg.data_type() == DataType::Decimal {
                    DataType::Decimal
                } else {
                    DataType::Float64
                };
                Ok(Expr::Func {
                    func,
                    args: vec![coerce(arg, ty)?],
                    ty,
                })
            }
            // `INTERVAL '1 day'`, `INTERVAL '90' DAY`.
            E::Interval(interval) => {
                let text = match self.bind(&interval.value)?.eval_constant() {
                    Ok(Datum::Varchar(s)) => s,
                    Ok(Datum::Null) => return Ok(Expr::literal(Datum::Null, DataType::Interval)),
                    Ok(other) => format!("{other:?}"),
                    Err(_) => {
                        return Err(PlanError::NotSupported(
                            "an interval of a non-constant value".into(),
                        ));
                    }
                };
                let text = match &interval.leading_field {
                    Some(unit) if !text.chars().any(|c| c.is_ascii_alphabetic()) => {
                        format!("{text} {unit}")
                    }
                    _ => text,
                };
                coerce(
                    Expr::literal(Datum::Varchar(text), DataType::Varchar),
                    DataType::Interval,
                )
            }
            E::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            }
            | E::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => {
                let escape = match escape_char {
                    None => None,
                    Some(c) => Some(self.bind(c)?.eval_constant()),
                };
                let default_escape = match &escape {
                    None => true,
                    Some(Ok(Datum::Varchar(c))) => c == "\\",
                    Some(_) => false,
                };
                if !default_escape {
                    return Err(PlanError::NotSupported(
                        "LIKE with an ESCAPE character other than '\\'".into(),
                    ));
                }
                let op = if matches!(e, E::Like { .. }) {
                    BinaryOp::Like
                } else {
                    BinaryOp::ILike
                };
                let matched = Expr::binary(
                    op,
                    coerce(self.bind(expr)?, DataType::Varchar)?,
                    coerce(self.bind(pattern)?, DataType::Varchar)?,
                );
                Ok(if *negated {
                    Expr::Not(Box::new(matched))
                } else {
                    matched
                })
            }
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![coerce(self.bind(expr)?, DataType::Varchar)?];
                args.push(match substring_from {
                    Some(from) => coerce(self.bind(from)?, DataType::Int32)?,
                    None => Expr::literal(Datum::Int32(1), DataType::Int32),
                });
                if let Some(count) = substring_for {
                    args.push(coerce(self.bind(count)?, DataType::Int32)?);
                }
                Ok(Expr::Func {
                    func: Func::Substring,
                    args,
                    ty: DataType::Varchar,
                })
            }
            E::Position { expr, r#in } => {
                let (sub, s) = (self.bind(expr)?, self.bind(r#in)?);
                self.call("strpos", vec![s, sub])
            }
            // TRIM([BOTH | LEADING | TRAILING] [characters] FROM s), or TRIM(s, characters).
            E::Trim {
                trim_where,
                trim_what,
                expr,
                trim_characters,
            } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![self.bind(expr)?];
                for c in trim_what
                    .iter()
                    .map(AsRef::as_ref)
                    .chain(trim_characters.iter().flatten())
                {
                    args.push(self.bind(c)?);
                }
                self.call(name, args)
            }
            E::Extract { field, expr, .. } => {
                let name = field.to_string().trim_matches('\'').to_string();
                let field = DateField::parse(&name).ok_or_else(|| {
                    PlanError::InvalidArgument(format!("unit \"{name}\" not recognized"))
                })?;
                extract(field, self.bind(expr)?)
            }
            E::Identifier(id) => {
                let i = self.scope.resolve(None, &ident_name(id))?;
                Ok(Expr::column(i, self.scope.columns[i].ty))
            }
            // `schema.table.column` resolves like `table.column`.
            E::CompoundIdentifier(ids) if ids.len() == 3 => {
                let i = self
                    .scope
                    .resolve(Some(&ident_name(&ids[1])), &ident_name(&ids[2]))?;
                Ok(Expr::column(i, self.scope.columns[i].ty))
            }
            E::CompoundIdentifier(ids) if ids.len() == 2 => {
                let i = self
                    .scope
                    .resolve(Some(&ident_name(&ids[0])), &ident_name(&ids[1]))?;
                Ok(Expr::column(i, self.scope.columns[i].ty))
            }
            E::Value(v) if placeholder(e).is_some() => {
                let _ = v;
                // Untyped until its use tells (see `note_param`); bound as an untyped NULL.
                let mut p = self.params.types.borrow_mut();
                let n = placeholder(e).expect("checked");
                if p.len() < n {
                    p.resize(n, None);
                }
                Ok(Expr::literal(Datum::Null, DataType::Varchar))
            }
            E::Value(v) => literal(&v.value),
            E::Nested(inner) => self.bind(inner),
            E::UnaryOp { op, expr } => {
                let inner = self.bind(expr)?;
                match op {
                    UnaryOperator::Not => Ok(Expr::Not(Box::new(coerce_boolean(inner)?))),
                    UnaryOperator::Minus => match inner {
                        Expr::Literal {
                            value: Datum::Int32(v),
                            ty,
                        } => Ok(Expr::literal(Datum::Int32(-v), ty)),
                        Expr::Literal {
                            value: Datum::Int64(v),
                            ty,
                        } => Ok(Expr::literal(Datum::Int64(-v), ty)),
                        Expr::Literal {
                            value: Datum::Float64(v),
                            ty,
                        } => Ok(Expr::literal(Datum::Float64(-v), ty)),
                        Expr::Literal {
                            value: Datum::Decimal(v),
                            ty,
                        } => Ok(Expr::literal(Datum::Decimal(-v), ty)),
                        other
                            if other.data_type().is_numeric()
                                || other.data_type() == DataType::Interval =>
                        {
                            Ok(Expr::Negate(Box::new(other)))
                        }
                        other => Err(PlanError::UndefinedFunction(format!(
                            "operator does not exist: - {}",
                            other.data_type()
                        ))),
                    },
                    UnaryOperator::Plus => Ok(inner),
                    UnaryOperator::PGSquareRoot
                    | UnaryOperator::PGCubeRoot
                    | UnaryOperator::PGAbs => {
                        let name = match op {
                            UnaryOperator::PGSquareRoot => "sqrt",
                            UnaryOperator::PGCubeRoot => "cbrt",
                            _ => "abs",
                        };
                        self.call(name, vec![inner])
                    }
                    other => Err(PlanError::NotSupported(format!("operator {other}"))),
                }
            }
            E::BinaryOp { left, op, right } => {
                let (l, r) = (self.bind(left)?, self.bind(right)?);
                self.note_against(left, &r);
                self.note_against(right, &l);
                bind_binary(op, l, r)
            }
            E::IsNull(inner) => Ok(Expr::IsNull(Box::new(self.bind(inner)?))),
            E::IsDistinctFrom(left, right) | E::IsNotDistinctFrom(left, right) => {
                let (l, r) = (self.bind(left)?, self.bind(right)?);
                let Expr::Binary { left, right, .. } = bind_binary(&BinaryOperator::NotEq, l, r)?
                else {
                    unreachable!("a comparison binds to a binary expression");
                };
                // NULL is not distinct from NULL, and distinct from any value.
                let distinct = Expr::Case {
                    branches: vec![
                        (Expr::IsNull(left.clone()), Expr::IsNotNull(right.clone())),
                        (
                            Expr::IsNull(right.clone()),
                            Expr::literal(Datum::Bool(true), DataType::Boolean),
                        ),
                    ],
                    otherwise: Some(Box::new(Expr::binary(BinaryOp::NotEq, *left, *right))),
                    ty: DataType::Boolean,
                };
                Ok(if matches!(e, E::IsDistinctFrom(..)) {
                    distinct
                } else {
                    Expr::Not(Box::new(distinct))
                })
            }
            // Boolean tests never return NULL: NULL is neither true nor false.
            // `IS UNKNOWN` is `IS NULL` for booleans only.
            E::IsUnknown(inner) => Ok(Expr::IsNull(Box::new(coerce_boolean(self.bind(inner)?)?))),
            E::IsNotUnknown(inner) => Ok(Expr::IsNotNull(Box::new(coerce_boolean(
                self.bind(inner)?,
            )?))),
            E::IsTrue(inner) | E::IsNotTrue(inner) | E::IsFalse(inner) | E::IsNotFalse(inner) => {
                let x = coerce_boolean(self.bind(inner)?)?;
                let tested = if matches!(e, E::IsFalse(_) | E::IsNotFalse(_)) {
                    Expr::Not(Box::new(x))
                } else {
                    x
                };
                let holds = Expr::Coalesce {
                    args: vec![tested, Expr::literal(Datum::Bool(false), DataType::Boolean)],
                    ty: DataType::Boolean,
                };
                Ok(if matches!(e, E::IsNotTrue(_) | E::IsNotFalse(_)) {
                    Expr::Not(Box::new(holds))
                } else {
                    holds
                })
            }
            E::IsNotNull(inner) => Ok(Expr::IsNotNull(Box::new(self.bind(inner)?))),
            E::Cast {
                expr, data_type, ..
            } => {
                let value = self.bind(expr)?;
                if let Some(cast) = super::system::object_reference_cast(
                    value.clone(),
                    data_type,
                    self.params.catalog,
                ) {
                    return cast;
                }
                coerce_explicit(value, sql_type(data_type)?)
            }
            E::TypedString(ts) => {
                let to = sql_type(&ts.data_type)?;
                coerce_explicit(literal(&ts.value.value)?, to)
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.bind(expr)?;
                let (lo, hi) = (self.bind(low)?, self.bind(high)?);
                self.note_against(low, &x);
                self.note_against(high, &x);
                self.note_against(expr, &lo);
                let ge = bind_binary(&BinaryOperator::GtEq, x.clone(), lo)?;
                let le = bind_binary(&BinaryOperator::LtEq, x, hi)?;
                let both = Expr::binary(BinaryOp::And, ge, le);
                Ok(if *negated {
                    Expr::Not(Box::new(both))
                } else {
                    both
                })
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.bind(expr)?;
                let mut any: Option<Expr> = None;
                for item in list {
                    let bound = self.bind(item)?;
                    self.note_against(item, &x);
                    let eq = bind_binary(&BinaryOperator::Eq, x.clone(), bound)?;
                    any = Some(match any {
                        Some(acc) => Expr::binary(BinaryOp::Or, acc, eq),
                        None => eq,
                    });
                }
                let any = any.ok_or_else(|| PlanError::Syntax("empty IN list".into()))?;
                Ok(if *negated {
                    Expr::Not(Box::new(any))
                } else {
                    any
                })
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand.as_deref().map(|o| self.bind(o)).transpose()?;
                let mut branches = Vec::new();
                for c in conditions {
                    let cond = match &operand {
                        Some(o) => {
                            bind_binary(&BinaryOperator::Eq, o.clone(), self.bind(&c.condition)?)?
                        }
                        None => coerce_boolean(self.bind(&c.condition)?)?,
                    };
                    branches.push((cond, self.bind(&c.result)?));
                }
                let otherwise = else_result.as_deref().map(|e| self.bind(e)).transpose()?;
                let ty = unify(branches.iter().map(|b| &b.1).chain(otherwise.iter()))?;
                let branches = branches
                    .into_iter()
                    .map(|(c, v)| Ok((c, coerce(v, ty)?)))
                    .collect::<PlanResult<Vec<_>>>()?;
                let otherwise = otherwise.map(|e| coerce(e, ty).map(Box::new)).transpose()?;
                Ok(Expr::Case {
                    branches,
                    otherwise,
                    ty,
                })
            }
            E::Function(f) => self.bind_function(f),
            E::Array(ast::Array { elem, .. }) => {
                let items = elem
                    .iter()
                    .map(|e| self.bind(e))
                    .collect::<PlanResult<Vec<_>>>()?;
                let ty = unify(items.iter())?;
                let args = items
                    .into_iter()
                    .map(|e| coerce(e, ty))
                    .collect::<PlanResult<Vec<_>>>()?;
                Ok(Expr::Func {
                    func: Func::ArrayConstruct,
                    args,
                    ty: DataType::list(ty),
                })
            }
            // `(a, b)`: a struct with fields f1, f2, ...
            E::Tuple(items) => {
                let args = items
                    .iter()
                    .map(|e| self.bind(e))
                    .collect::<PlanResult<Vec<_>>>()?;
                Ok(row_value(args))
            }
            E::CompoundFieldAccess { root, access_chain } => {
                let mut value = self.bind(root)?;
                for access in access_chain {
                    if let ast::AccessExpr::Dot(ast::Expr::Identifier(field)) = access {
                        value = field_access(value, &ident_name(field))?;
                        continue;
                    }
                    let ast::AccessExpr::Subscript(ast::Subscript::Index { index }) = access else {
                        return Err(PlanError::NotSupported(format!("expression {e}")));
                    };
                    let Some(elem) = value.data_type().element() else {
                        return Err(PlanError::TypeMismatch(format!(
                            "cannot subscript type {} because it does not support subscripting",
                            value.data_type()
                        )));
                    };
                    let index = coerce(self.bind(index)?, DataType::Int32)?;
                    value = Expr::Func {
                        func: Func::ArrayAccess,
                        args: vec![value, index],
                        ty: elem,
                    };
                }
                Ok(value)
            }
            E::AnyOp {
                left,
                compare_op,
                right,
                ..
            } => self.bind_array_comparison(left, compare_op, right, true),
            E::AllOp {
                left,
                compare_op,
                right,
            } => self.bind_array_comparison(left, compare_op, right, false),
            // One collation: `COLLATE "C"` or the default changes nothing.
            E::Collate { expr, collation } => {
                let name = collation.to_string().to_lowercase();
                let name = name.trim_matches('"');
                if !matches!(
                    name.strip_prefix("pg_catalog.")
                        .unwrap_or(name)
                        .trim_matches('"'),
                    "default" | "c" | "posix" | "ucs_basic"
                ) {
                    return Err(PlanError::UndefinedObject(format!(
                        "collation {collation} does not exist"
                    )));
                }
                self.bind(expr)
            }
            other => Err(PlanError::NotSupported(format!("expression {other}"))),
        }
    }

    /// `x op ANY (array)` / `x op ALL (array)`.
    fn bind_array_comparison(
        &mut self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
        any: bool,
    ) -> PlanResult<Expr> {
        let x = self.bind(left)?;
        let mut array = self.bind(right)?;
        if is_untyped_literal(&array) {
            array = coerce(array, DataType::list(x.data_type()))?;
        }
        let Some(elem) = array.data_type().element() else {
            return Err(PlanError::TypeMismatch(format!(
                "op ANY/ALL (array) requires array on right side, not {}",
                array.data_type()
            )));
        };
        let compared = bind_binary(op, x, Expr::column(0, elem))?;
        let Expr::Binary { op, left, right } = compared else {
            return Err(PlanError::NotSupported(format!("{op} ANY/ALL")));
        };
        if !matches!(
            op,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        ) {
            return Err(PlanError::NotSupported(format!("{op:?} with ANY/ALL")));
        }
        let array = coerce(array, DataType::list(right.data_type()))?;
        Ok(Expr::Func {
            func: if any {
                Func::ArrayAny(op)
            } else {
                Func::ArrayAll(op)
            },
            args: vec![*left, array],
            ty: DataType::Boolean,
        })
    }

    fn bind_function(&mut self, f: &ast::Function) -> PlanResult<Expr> {
        let name = function_name(f);
        if is_agg_name(&name) {
            return Err(PlanError::Grouping(format!(
                "aggregate function {name} is not allowed here"
            )));
        }
        let args = function_args(f)
            .into_iter()
            .map(|a| match a {
                Arg::Expr(e) => self.bind(e),
                Arg::Star => Err(PlanError::Syntax(format!("{name}(*)"))),
            })
            .collect::<PlanResult<Vec<_>>>()?;
        self.call(&name, args)
    }

    /// The scalar function `name` of bound `args`.
    fn call(&mut self, name: &str, args: Vec<Expr>) -> PlanResult<Expr> {
        match name.strip_prefix("pg_catalog.").unwrap_or(name) {
            system if super::system::is_system_function(system) => {
                super::system::system_function(system, args, self.params.catalog)
            }
            "coalesce" if !args.is_empty() => {
                let ty = unify(args.iter())?;
                let args = args
                    .into_iter()
                    .map(|a| coerce(a, ty))
                    .collect::<PlanResult<Vec<_>>>()?;
                Ok(Expr::Coalesce { args, ty })
            }
            "abs" if args.len() == 1 && args[0].data_type().is_numeric() => {
                let ty = args[0].data_type();
                Ok(Expr::Func {
                    func: Func::Abs,
                    args,
                    ty,
                })
            }
            "round" | "ceil" | "ceiling" | "floor" if !args.is_empty() && args.len() <= 2 => {
                let func = match name {
                    "round" => Func::Round,
                    "floor" => Func::Floor,
                    _ => Func::Ceil,
                };
                if args.len() == 2 && func != Func::Round {
                    return Err(PlanError::UndefinedFunction(format!(
                        "function {name} takes one argument"
                    )));
                }
                // numeric stays numeric, as does round(x, digits) of an integer; other numbers
                // are rounded as double precision.
                let arg_ty = args[0].data_type();
                let ty = if arg_ty == DataType::Decimal || (args.len() == 2 && arg_ty.is_integer())
                {
                    DataType::Decimal
                } else {
                    DataType::Float64
                };
                let mut args = args.into_iter();
                let mut bound = vec![coerce(args.next().expect("one"), ty)?];
                if let Some(digits) = args.next() {
                    bound.push(coerce(digits, DataType::Int32)?);
                }
                Ok(Expr::Func {
                    func,
                    args: bound,
                    ty,
                })
            }
            "now" | "current_timestamp" | "localtimestamp" if args.is_empty() => Ok(Expr::Func {
                func: Func::Now,
                args,
                ty: DataType::Timestamptz,
            }),
            "current_date" if args.is_empty() => Ok(Expr::Cast {
                expr: Box::new(Expr::Func {
                    func: Func::Now,
                    args,
                    ty: DataType::Timestamptz,
                }),
                to: DataType::Date,
            }),
            "date_trunc" | "date_part" if args.len() == 2 => {
                let mut args = args.into_iter();
                let unit = args.next().expect("two");
                let value = args.next().expect("two");
                let field = match unit.eval_constant() {
                    Ok(Datum::Varchar(u)) => DateField::parse(&u),
                    _ => None,
                }
                .ok_or_else(|| {
                    PlanError::InvalidArgument(format!("{name}: the unit must be a known name"))
                })?;
                if name == "date_part" {
                    return Ok(Expr::Cast {
                        expr: Box::new(extract(field, value)?),
                        to: DataType::Float64,
                    });
                }
                let value = match value.data_type() {
                    DataType::Date => coerce(value, DataType::Timestamp)?,
                    DataType::Timestamp | DataType::Timestamptz => value,
                    other => {
                        return Err(PlanError::UndefinedFunction(format!(
                            "function date_trunc(unknown, {other}) does not exist"
                        )));
                    }
                };
                let ty = value.data_type();
                Ok(Expr::Func {
                    func: Func::DateTrunc(field),
                    args: vec![value],
                    ty,
                })
            }
            "substr" | "substring" if (2..=3).contains(&args.len()) => {
                let mut args = args.into_iter();
                let mut bound = vec![coerce(args.next().expect("string"), DataType::Varchar)?];
                for a in args {
                    bound.push(coerce(a, DataType::Int32)?);
                }
                Ok(Expr::Func {
                    func: Func::Substring,
                    args: bound,
                    ty: DataType::Varchar,
                })
            }
            "to_char" if args.len() == 2 => {
                let mut args = args.into_iter();
                let t = args.next().expect("two");
                let t = match t.data_type() {
                    DataType::Timestamp | DataType::Timestamptz => t,
                    DataType::Date => coerce(t, DataType::Timestamp)?,
                    other => {
                        return Err(PlanError::UndefinedFunction(format!(
                            "function to_char({other}, character varying) does not exist"
                        )));
                    }
                };
                let format = coerce(args.next().expect("two"), DataType::Varchar)?;
                Ok(Expr::Func {
                    func: Func::ToChar,
                    args: vec![t, format],
                    ty: DataType::Varchar,
                })
            }
            "jsonb_typeof" if args.len() == 1 => Ok(Expr::Func {
                func: Func::JsonbTypeof,
                args: vec![coerce(
                    args.into_iter().next().expect("one"),
                    DataType::Jsonb,
                )?],
                ty: DataType::Varchar,
            }),
            "split_part" | "replace" if args.len() == 3 => {
                let (func, types) = if name == "split_part" {
                    (
                        Func::SplitPart,
                        [DataType::Varchar, DataType::Varchar, DataType::Int32],
                    )
                } else {
                    (Func::Replace, [DataType::Varchar; 3])
                };
                let args = args
                    .into_iter()
                    .zip(types)
                    .map(|(a, t)| coerce(a, t))
                    .collect::<PlanResult<Vec<_>>>()?;
                Ok(Expr::Func {
                    func,
                    args,
                    ty: DataType::Varchar,
                })
            }
            "regexp_match" if (2..=3).contains(&args.len()) => {
                let args = args
                    .into_iter()
                    .map(|a| coerce(a, DataType::Varchar))
                    .collect::<PlanResult<Vec<_>>>()?;
                Ok(Expr::Func {
                    func: Func::RegexpMatch,
                    args,
                    ty: DataType::list(DataType::Varchar),
                })
            }
            "random" if args.is_empty() => Ok(Expr::Func {
                func: Func::Random,
                args,
                ty: DataType::Float64,
            }),
            "upper" | "lower" | "length" | "char_length" | "character_length"
                if args.len() == 1 =>
            {
                let (func, ty) = match name {
                    "upper" => (Func::Upper, DataType::Varchar),
                    "lower" => (Func::Lower, DataType::Varchar),
                    _ => (Func::CharLength, DataType::Int32),
                };
                let arg = coerce(args.into_iter().next().expect("one"), DataType::Varchar)?;
                Ok(Expr::Func {
                    func,
                    args: vec![arg],
                    ty,
                })
            }
            "array_length" | "array_upper" | "array_lower" | "cardinality" | "array_to_string"
            | "array_append" | "array_prepend" | "array_cat" => {
                array_function(name.strip_prefix("pg_catalog.").unwrap_or(name), args)
            }
            // RisingWave's name for array_to_string.
            "array_join" => array_function("array_to_string", args),
            // concat(a, b, ...): the arguments as text, NULLs left out.
            "concat" if !args.is_empty() => {
                let text = |a: Expr| -> PlanResult<Expr> {
                    Ok(Expr::Coalesce {
                        args: vec![
                            coerce(a, DataType::Varchar)?,
                            Expr::literal(Datum::Varchar(String::new()), DataType::Varchar),
                        ],
                        ty: DataType::Varchar,
                    })
                };
                let mut parts = args.into_iter().map(text);
                let first = parts.next().expect("not empty")?;
                parts.try_fold(first, |acc, part| {
                    Ok(Expr::binary(BinaryOp::Concat, acc, part?))
                })
            }
            "booleq" | "boolne" if args.len() == 2 => {
                let op = if name == "booleq" {
                    BinaryOp::Eq
                } else {
                    BinaryOp::NotEq
                };
                let mut args = args.into_iter().map(coerce_boolean);
                let (l, r) = (args.next().expect("two")?, args.next().expect("two")?);
                Ok(Expr::binary(op, l, r))
            }
            builtin if let Some(bound) = super::builtin::bind_builtin(builtin, args.clone()) => {
                bound
            }
            _ if let Some(function) = self.params.catalog.and_then(|c| {
                let qualified = if name.contains('.') {
                    name.to_string()
                } else {
                    crate::catalog::qualified(crate::catalog::DEFAULT_SCHEMA, name)
                };
                c.function(&qualified)
                    .filter(|f| f.args.len() == args.len())
            }) =>
            {
                super::function::inline(&function, args, self.params)
            }
            _ => Err(PlanError::UndefinedFunction(format!(
                "function {name}({}) does not exist",
                args.iter()
                    .map(|a| a.data_type().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

fn bind_agg_call(
    agg: &mut AggContext<'_>,
    params: &Params,
    f: &ast::Function,
    kind: AggKind,
) -> PlanResult<Expr> {
    let args = function_args(f);
    let (kind, arg) = match (kind, args.as_slice()) {
        (AggKind::Count, [Arg::Star]) | (AggKind::Count, []) => (AggKind::CountStar, None),
        (kind, [Arg::Expr(e)]) => {
            if contains_agg(e) {
                return Err(PlanError::Grouping(
                    "aggregate function calls cannot be nested".into(),
                ));
            }
            (kind, Some(ExprBinder::bind_plain(agg.input, params, e)?))
        }
        _ => {
            return Err(PlanError::UndefinedFunction(format!(
                "function {}(...) does not exist",
                function_name(f)
            )));
        }
    };
    // `agg(x) FILTER (WHERE c)` is `agg(CASE WHEN c THEN x END)`: every aggregate but
    // count(*) skips NULLs, and count(*) becomes a count of a constant.
    let mut row_filter = None;
    let (kind, arg) = match &f.filter {
        None => (kind, arg),
        // Arrays and first values keep NULLs: the filter must drop rows, not values. Distinct
        // aggregates keep their argument, so that those of one column share their state.
        Some(filter) if kind.is_ordered() || is_distinct(f) => {
            if contains_agg(filter) {
                return Err(PlanError::Grouping(
                    "aggregate functions are not allowed in FILTER".into(),
                ));
            }
            row_filter = Some(coerce_boolean(ExprBinder::bind_plain(
                agg.input, params, filter,
            )?)?);
            (kind, arg)
        }
        Some(filter) => {
            if contains_agg(filter) {
                return Err(PlanError::Grouping(
                    "aggregate functions are not allowed in FILTER".into(),
                ));
            }
            let cond = coerce_boolean(ExprBinder::bind_plain(agg.input, params, filter)?)?;
            let (kind, value) = match (kind, arg) {
                (AggKind::CountStar, _) => (
                    AggKind::Count,
                    Expr::literal(Datum::Int32(1), DataType::Int32),
                ),
                (kind, arg) => (
                    kind,
                    arg.expect("aggregates other than count(*) have an argument"),
                ),
            };
            let ty = value.data_type();
            let filtered = Expr::Case {
                branches: vec![(cond, value)],
                otherwise: None,
                ty,
            };
            (kind, Some(filtered))
        }
    };
    let arg_ty = arg.as_ref().map(Expr::data_type);
    let ret = agg_return_type(kind, arg_ty).ok_or_else(|| {
        PlanError::UndefinedFunction(format!(
            "function {}({}) does not exist",
            function_name(f),
            arg_ty.map_or(String::new(), |t| t.to_string())
        ))
    })?;
    // Only arrays and first values depend on the order of their values.
    let mut order_by = Vec::new();
    let reverse = function_name(f) == "last_value";
    if let ast::FunctionArguments::List(list) = &f.args {
        for clause in &list.clauses {
            match clause {
                ast::FunctionArgumentClause::OrderBy(items) if kind.is_ordered() => {
                    for item in items {
                        let e = ExprBinder::bind_plain(agg.input, params, &item.expr)?;
                        let mut order = super::query::order_type(&item.options);
                        if reverse {
                            order.descending = !order.descending;
                            order.nulls_first = !order.nulls_first;
                        }
                        order_by.push((e, order));
                    }
                }
                ast::FunctionArgumentClause::OrderBy(_) => {}
                other => {
                    return Err(PlanError::NotSupported(format!(
                        "{other} in an aggregate call"
                    )));
                }
            }
        }
    }
    let bound = BoundAgg {
        kind,
        arg,
        distinct: is_distinct(f),
        ret,
        order_by,
        filter: row_filter,
    };
    let index = match agg.aggs.iter().position(|a| *a == bound) {
        Some(i) => i,
        None => {
            agg.aggs.push(bound);
            agg.aggs.len() - 1
        }
    };
    Ok(Expr::column(agg.group_exprs.len() + index, ret))
}

/// The hidden column holding an uncorrelated scalar subquery's value (see `subquery.rs`).
pub(crate) fn is_constant_subquery_column(name: &str) -> bool {
    name.starts_with("__sq") && name.ends_with("_const")
}

pub(crate) fn coerce_boolean(e: Expr) -> PlanResult<Expr> {
    match e.data_type() {
        DataType::Boolean => Ok(e),
        _ if is_untyped_literal(&e) => coerce(e, DataType::Boolean),
        other => Err(PlanError::TypeMismatch(format!(
            "argument must be type boolean, not type {other}"
        ))),
    }
}

/// An explicit `CAST`: any conversion Arrow can do is allowed.
fn coerce_explicit(e: Expr, to: DataType) -> PlanResult<Expr> {
    coerce(e, to)
}

/// `EXTRACT(field FROM value)`, as numeric.
pub(crate) fn extract(field: DateField, value: Expr) -> PlanResult<Expr> {
    use DataType::*;
    if !matches!(
        value.data_type(),
        Date | Time | Timestamp | Timestamptz | Interval
    ) {
        return Err(PlanError::UndefinedFunction(format!(
            "function extract(unknown, {}) does not exist",
            value.data_type()
        )));
    }
    Ok(Expr::Func {
        func: Func::Extract(field),
        args: vec![value],
        ty: Decimal,
    })
}

fn func(func: Func, args: Vec<Expr>, ty: DataType) -> Expr {
    Expr::Func { func, args, ty }
}

/// Arithmetic on dates, times, timestamps and intervals, as PostgreSQL defines it (`None`: not
/// such an operation).
fn datetime_arithmetic(op: BinaryOp, l: &Expr, r: &Expr) -> PlanResult<Option<Expr>> {
    use DataType::*;
    let (lt, rt) = (l.data_type(), r.data_type());
    let moment = |t: DataType| matches!(t, Date | Time | Timestamp | Timestamptz);
    let negate = |e: Expr| Expr::Negate(Box::new(e));
    let plus_interval = |t: Expr, i: Expr| {
        let ty = match t.data_type() {
            Date => Timestamp,
            other => other,
        };
        func(Func::AddInterval, vec![t, i], ty)
    };
    let factor = |e: Expr| coerce(e, Float64);
    Ok(Some(match (op, lt, rt) {
        (BinaryOp::Add, t, Interval) if moment(t) => plus_interval(l.clone(), r.clone()),
        (BinaryOp::Add, Interval, t) if moment(t) => plus_interval(r.clone(), l.clone()),
        (BinaryOp::Sub, t, Interval) if moment(t) => plus_interval(l.clone(), negate(r.clone())),
        (BinaryOp::Add, Date, t) if t.is_integer() => func(
            Func::AddDays,
            vec![l.clone(), coerce(r.clone(), Int32)?],
            Date,
        ),
        (BinaryOp::Add, t, Date) if t.is_integer() => func(
            Func::AddDays,
            vec![r.clone(), coerce(l.clone(), Int32)?],
            Date,
        ),
        (BinaryOp::Sub, Date, t) if t.is_integer() => func(
            Func::AddDays,
            vec![l.clone(), negate(coerce(r.clone(), Int32)?)],
            Date,
        ),
        (BinaryOp::Sub, Date, Date) => func(Func::DaysBetween, vec![l.clone(), r.clone()], Int32),
        (BinaryOp::Sub, Timestamp | Timestamptz | Date, Timestamp | Timestamptz | Date)
            if lt != Date || rt != Date =>
        {
            let ty = common_type(l, r)?;
            func(
                Func::TimestampDiff,
                vec![coerce(l.clone(), ty)?, coerce(r.clone(), ty)?],
                Interval,
            )
        }
        (BinaryOp::Add, Interval, Interval) => {
            func(Func::IntervalAdd, vec![l.clone(), r.clone()], Interval)
        }
        (BinaryOp::Sub, Interval, Interval) => func(
            Func::IntervalAdd,
            vec![l.clone(), negate(r.clone())],
            Interval,
        ),
        (BinaryOp::Mul, Interval, t) if t.is_numeric() => func(
            Func::IntervalMul,
            vec![l.clone(), factor(r.clone())?],
            Interval,
        ),
        (BinaryOp::Mul, t, Interval) if t.is_numeric() => func(
            Func::IntervalMul,
            vec![r.clone(), factor(l.clone())?],
            Interval,
        ),
        (BinaryOp::Div, Interval, t) if t.is_numeric() => {
            let one = Expr::literal(Datum::Float64(1.0), Float64);
            let inverse = Expr::binary(BinaryOp::Div, one, factor(r.clone())?);
            func(Func::IntervalMul, vec![l.clone(), inverse], Interval)
        }
        _ => return Ok(None),
    }))
}

/// An array function of `args`.
fn array_function(name: &str, args: Vec<Expr>) -> PlanResult<Expr> {
    let no_function = |args: &[Expr]| {
        PlanError::UndefinedFunction(format!(
            "function {name}({}) does not exist",
            args.iter()
                .map(|a| a.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    let array = |e: Expr| -> PlanResult<Expr> {
        if is_untyped_literal(&e) {
            coerce(e, DataType::list(DataType::Varchar))
        } else if e.data_type().element().is_some() {
            Ok(e)
        } else {
            Err(PlanError::UndefinedFunction(format!(
                "function {name} does not take {}",
                e.data_type()
            )))
        }
    };
    let (func, args, ty) = match (name, args.len()) {
        ("array_length" | "array_upper" | "array_lower", 2) => {
            let mut a = args.into_iter();
            let (list, dim) = (a.next().expect("two"), a.next().expect("two"));
            let func = match name {
                "array_length" => Func::ArrayLength,
                "array_upper" => Func::ArrayUpper,
                _ => Func::ArrayLower,
            };
            (
                func,
                vec![array(list)?, coerce(dim, DataType::Int32)?],
                DataType::Int32,
            )
        }
        ("cardinality", 1) => (
            Func::Cardinality,
            vec![array(args.into_iter().next().expect("one"))?],
            DataType::Int32,
        ),
        ("array_to_string", 2 | 3) => {
            let mut a = args.into_iter();
            let list = array(a.next().expect("array"))?;
            let texts = a
                .map(|e| coerce(e, DataType::Varchar))
                .collect::<PlanResult<Vec<_>>>()?;
            (
                Func::ArrayToString,
                std::iter::once(list).chain(texts).collect(),
                DataType::Varchar,
            )
        }
        ("array_append" | "array_prepend" | "array_cat", 2) => {
            let mut a = args.into_iter();
            let (l, r) = (a.next().expect("two"), a.next().expect("two"));
            return array_concat(l, r, name).map_err(|_| no_function(&[]));
        }
        _ => return Err(no_function(&args)),
    };
    Ok(Expr::Func { func, args, ty })
}

/// `l || r` where one side is an array (or, for `name` given, that array function): arrays
/// concatenate, an element is appended or prepended.
fn array_concat(l: Expr, r: Expr, name: &str) -> PlanResult<Expr> {
    let (lt, rt) = (l.data_type().element(), r.data_type().element());
    let (func, args, ty) = match (lt, rt, name) {
        (Some(_), Some(_), "||" | "array_cat") => {
            let ty = common_type(&l, &r)?;
            (Func::ArrayCat, vec![coerce(l, ty)?, coerce(r, ty)?], ty)
        }
        (Some(e), _, "||" | "array_append") => {
            let ty = DataType::list(e);
            (Func::ArrayAppend, vec![l, coerce(r, e)?], ty)
        }
        (_, Some(e), "||" | "array_prepend") => {
            let ty = DataType::list(e);
            (Func::ArrayPrepend, vec![coerce(l, e)?, r], ty)
        }
        _ => {
            return Err(PlanError::UndefinedFunction(format!(
                "function {name}({}, {}) does not exist",
                l.data_type(),
                r.data_type()
            )));
        }
    };
    Ok(Expr::Func { func, args, ty })
}

/// The struct of `fields` (`(a, b)`, `ROW(a, b)`), its fields named f1, f2, ...
pub(crate) fn row_value(fields: Vec<Expr>) -> Expr {
    let ty = DataType::structure(
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("f{}", i + 1), f.data_type()))
            .collect(),
    );
    Expr::Func {
        func: Func::RowConstruct,
        args: fields,
        ty,
    }
}

/// `(value).name`: a field of a struct.
fn field_access(value: Expr, name: &str) -> PlanResult<Expr> {
    let DataType::Struct(s) = value.data_type() else {
        return Err(PlanError::TypeMismatch(format!(
            "column notation .{name} applied to type {}, which is not a composite type",
            value.data_type()
        )));
    };
    let Some(index) = s.fields().iter().position(|(n, _)| n == name) else {
        return Err(PlanError::UndefinedColumn(name.to_string()));
    };
    Ok(Expr::Func {
        func: Func::FieldAccess { index },
        args: vec![value],
        ty: s.fields()[index].1,
    })
}

/// `j -> key`, `j -> index` and their `->>` forms.
fn jsonb_access(text: bool, doc: Expr, key: Expr) -> PlanResult<Expr> {
    let op = if text { "->>" } else { "->" };
    let undefined = |doc: &Expr, key: &Expr| {
        PlanError::UndefinedFunction(format!(
            "operator does not exist: {} {op} {}",
            doc.data_type(),
            key.data_type()
        ))
    };
    if doc.data_type() != DataType::Jsonb && !is_untyped_literal(&doc) {
        return Err(undefined(&doc, &key));
    }
    let key = match key.data_type() {
        DataType::Int16 | DataType::Int32 => coerce(key, DataType::Int32)?,
        DataType::Varchar => key,
        _ => return Err(undefined(&doc, &key)),
    };
    Ok(Expr::Func {
        func: Func::JsonbAccess { text },
        args: vec![coerce(doc, DataType::Jsonb)?, key],
        ty: if text {
            DataType::Varchar
        } else {
            DataType::Jsonb
        },
    })
}

/// Binds `l op r` with implicit casts to a common type.
pub(crate) fn bind_binary(op: &BinaryOperator, l: Expr, r: Expr) -> PlanResult<Expr> {
    use BinaryOperator as B;
    let no_operator = |l: &Expr, r: &Expr| {
        PlanError::UndefinedFunction(format!(
            "operator does not exist: {} {op} {}",
            l.data_type(),
            r.data_type()
        ))
    };
    let op = match op {
        B::Arrow | B::LongArrow => return jsonb_access(*op == B::LongArrow, l, r),
        B::PGExp => {
            return super::builtin::bind_builtin("power", vec![l, r]).expect("power is a builtin");
        }
        B::Plus => BinaryOp::Add,
        B::Minus => BinaryOp::Sub,
        B::Multiply => BinaryOp::Mul,
        B::Divide => BinaryOp::Div,
        B::Modulo => BinaryOp::Mod,
        B::Eq => BinaryOp::Eq,
        B::NotEq => BinaryOp::NotEq,
        B::Lt => BinaryOp::Lt,
        B::LtEq => BinaryOp::LtEq,
        B::Gt => BinaryOp::Gt,
        B::GtEq => BinaryOp::GtEq,
        B::And => BinaryOp::And,
        B::Or => BinaryOp::Or,
        B::StringConcat => BinaryOp::Concat,
        B::PGRegexMatch => BinaryOp::RegexMatch,
        B::PGRegexNotMatch => BinaryOp::RegexNotMatch,
        // `OPERATOR(pg_catalog.~)` and the like: the operator named.
        B::PGCustomBinaryOperator(parts) => {
            let named = match parts.last().map(String::as_str) {
                Some("~") => B::PGRegexMatch,
                Some("!~") => B::PGRegexNotMatch,
                Some("=") => B::Eq,
                Some("<>") => B::NotEq,
                Some("<") => B::Lt,
                Some("<=") => B::LtEq,
                Some(">") => B::Gt,
                Some(">=") => B::GtEq,
                Some("+") => B::Plus,
                Some("-") => B::Minus,
                Some("||") => B::StringConcat,
                _ => return Err(PlanError::NotSupported(format!("operator {op}"))),
            };
            return bind_binary(&named, l, r);
        }
        other => return Err(PlanError::NotSupported(format!("operator {other}"))),
    };
    match op {
        BinaryOp::And | BinaryOp::Or => {
            Ok(Expr::binary(op, coerce_boolean(l)?, coerce_boolean(r)?))
        }
        BinaryOp::Concat
            if l.data_type().element().is_some() || r.data_type().element().is_some() =>
        {
            array_concat(l, r, "||")
        }
        BinaryOp::Concat | BinaryOp::RegexMatch | BinaryOp::RegexNotMatch => Ok(Expr::binary(
            op,
            coerce(l, DataType::Varchar)?,
            coerce(r, DataType::Varchar)?,
        )),
        // Arithmetic of two literals of unknown type: any numeric type would do.
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
            if is_untyped_literal(&l) && is_untyped_literal(&r) =>
        {
            Err(PlanError::AmbiguousFunction(arithmetic_call(op, &l, &r)))
        }
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
            if !is_untyped_literal(&l) && !is_untyped_literal(&r) =>
        {
            if let Some(e) = datetime_arithmetic(op, &l, &r)? {
                return Ok(e);
            }
            let ty = common_type(&l, &r).map_err(|_| no_operator(&l, &r))?;
            if !ty.is_numeric() {
                return Err(no_operator(&l, &r));
            }
            Ok(Expr::binary(op, coerce(l, ty)?, coerce(r, ty)?))
        }
        _ => {
            let arithmetic = !op.is_predicate();
            let undefined = || {
                if arithmetic {
                    PlanError::UndefinedFunction(format!(
                        "function {} does not exist",
                        arithmetic_call(op, &l, &r)
                    ))
                } else {
                    no_operator(&l, &r)
                }
            };
            let ty = common_type(&l, &r).map_err(|_| undefined())?;
            if arithmetic && !ty.is_numeric() {
                return Err(undefined());
            }
            Ok(Expr::binary(op, coerce(l, ty)?, coerce(r, ty)?))
        }
    }
}

/// An arithmetic operator as the call RisingWave names in errors: `add(unknown, jsonb)`.
fn arithmetic_call(op: BinaryOp, l: &Expr, r: &Expr) -> String {
    let name = match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "subtract",
        BinaryOp::Mul => "multiply",
        BinaryOp::Div => "divide",
        _ => "modulus",
    };
    let ty = |e: &Expr| {
        if is_untyped_literal(e) {
            "unknown".to_string()
        } else {
            e.data_type().to_string()
        }
    };
    format!("{name}({}, {})", ty(l), ty(r))
}
