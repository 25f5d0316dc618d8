//! Subqueries in expressions — `(SELECT ...)`, `[NOT] EXISTS (...)`, `x [NOT] IN (SELECT ...)`
//! — unnested into left joins before the expression is bound.
//!
//! Each subquery becomes a plan joined to the outer input, whose columns are added to the scope
//! as hidden columns (`__sqN_...`); the subquery's place in the expression becomes an expression
//! over those columns. A correlated subquery is one whose WHERE compares inner and outer
//! expressions for equality: those equalities are taken out of the subquery and become the
//! join's keys, and the subquery is grouped (or deduplicated) by its side of them, so each outer
//! row meets at most one row:
//!
//! - scalar: `(SELECT agg(..) FROM s WHERE s.k = o.k)` joins `SELECT s.k, agg(..) ... GROUP BY
//!   s.k` on `o.k`; no match gives the aggregate's value over no rows (0 for count). An
//!   uncorrelated scalar subquery is checked to return at most one row.
//! - `EXISTS`: joins the distinct keys of the matching rows; true where one matched.
//! - `IN`: like `EXISTS` with the value as one more key, plus counts of the subquery's rows and
//!   NULLs for SQL's three-valued answer (`NULL` when nothing matched but a NULL was there).
//!
//! Correlation other than equalities in WHERE, and correlated subqueries that are not of these
//! shapes, are reported as not supported.

use crate::dialect::StreamDialect;
use dataflow::batch::plan::{BatchPlan, JoinKind};
use dataflow::expr::{BinaryOp, Expr};
use dataflow::types::{DataType, Datum};
use sqlparser::ast::{self, SetExpr};
use sqlparser::parser::Parser;

use super::Binder;
use super::expr::{
    ExprBinder, Scope, ScopeColumn, coerce, coerce_boolean, common_type, contains_agg,
};
use super::query::{apply_alias, keeps_left_rows};
use crate::error::{PlanError, PlanResult};

/// Some value of type `ty`, standing in for NULL in a null-safe join key.
pub(crate) fn stand_in(ty: DataType) -> Datum {
    match ty {
        DataType::Boolean => Datum::Bool(false),
        DataType::Int16 => Datum::Int16(0),
        DataType::Int32 => Datum::Int32(0),
        DataType::Int64 => Datum::Int64(0),
        DataType::Float32 => Datum::Float32(0.0),
        DataType::Float64 => Datum::Float64(0.0),
        DataType::Decimal => Datum::Decimal(dataflow::types::Decimal::ZERO),
        DataType::Varchar => Datum::Varchar(String::new()),
        DataType::Date => Datum::Date(0),
        DataType::Time => Datum::Time(0),
        DataType::Timestamp => Datum::Timestamp(0),
        DataType::Timestamptz => Datum::Timestamptz(0),
        DataType::Interval => Datum::Interval {
            months: 0,
            days: 0,
            nanos: 0,
        },
        DataType::Bytea => Datum::Bytea(vec![]),
        DataType::Jsonb => Datum::Jsonb("null".into()),
        DataType::List(_) => Datum::List(vec![]),
        DataType::Struct(s) => Datum::Struct(s.fields().iter().map(|f| stand_in(f.1)).collect()),
    }
}

/// What becomes of a subquery's rows for each outer row.
#[derive(Clone, Copy, PartialEq)]
enum Collect {
    /// Its one value (`(SELECT ...)`).
    Scalar,
    /// Its values as an array (`ARRAY(SELECT ...)`).
    Array,
    /// Whether there are any (`[NOT] EXISTS`).
    Exists { negated: bool },
}

/// A subquery with its correlated equalities taken out.
struct Decorrelated {
    /// The subquery's SELECT without those equalities (`None`: not a plain SELECT, and then
    /// uncorrelated).
    select: Option<ast::Select>,
    /// `(inner expression, outer expression)` of each equality.
    keys: Vec<(ast::Expr, ast::Expr)>,
}

/// The columns of `outer` (marked as outer) followed by those of `inner`.
fn with_outer(outer: &Scope, inner: &Scope) -> Scope {
    let mut both = outer.clone();
    for c in &mut both.columns {
        c.outer = true;
    }
    both.columns.extend(inner.columns.iter().cloned());
    both
}

/// Parses an expression the binder writes.
pub(crate) fn parse_expr(sql: &str) -> PlanResult<ast::Expr> {
    Parser::new(&StreamDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| PlanError::Syntax(e.to_string()))
}

/// Parses a query this module writes.
fn parse_query(sql: &str) -> PlanResult<ast::Query> {
    Parser::new(&StreamDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .map_err(|e| PlanError::Syntax(e.to_string()))
}

pub(crate) fn split_and(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        ast::Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other.clone()),
    }
}

pub(crate) fn and_all(conjuncts: Vec<ast::Expr>) -> Option<ast::Expr> {
    conjuncts.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    })
}

fn aliased(expr: ast::Expr, alias: &str) -> ast::SelectItem {
    ast::SelectItem::ExprWithAlias {
        expr,
        alias: ast::Ident::new(alias),
    }
}

fn query_of(select: ast::Select) -> ast::Query {
    let mut q = parse_query("SELECT 1").expect("a constant query parses");
    q.body = Box::new(SetExpr::Select(Box::new(select)));
    q
}

fn is_aggregated(s: &ast::Select) -> bool {
    !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
        || s.having.is_some()
        || s.projection.iter().any(|item| match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                contains_agg(e)
            }
            _ => false,
        })
}

/// The distinct rows of some columns of an outer input, as a relation (bound under the name
/// `relation`) that a subquery planned by those rows puts first in its FROM.
struct OuterRows {
    relation: String,
    /// The positions of the columns in the outer scope.
    columns: Vec<usize>,
    bound: super::query::BoundQuery,
}

/// The names `d0, d1, ...` under which the rows of an [`OuterRows`] relation number its
/// columns.
fn d_names(k: usize) -> Vec<String> {
    (0..k).map(|j| format!("d{j}")).collect()
}

/// `c` as two join keys on which NULL matches NULL: whether it is NULL, and its value or a
/// stand-in.
fn null_safe(c: Expr) -> [Expr; 2] {
    let ty = c.data_type();
    [
        Expr::IsNull(Box::new(c.clone())),
        Expr::Coalesce {
            args: vec![c, Expr::literal(stand_in(ty), ty)],
            ty,
        },
    ]
}

/// `select` evaluated for each row of the `k`-column relation `relation` (see [`OuterRows`]):
/// the relation joins its FROM first, its `d` columns come before `projection`, and an
/// `aggregated` select is grouped by them too.
fn per_outer_row(
    select: &ast::Select,
    relation: &str,
    k: usize,
    projection: Vec<ast::SelectItem>,
    aggregated: bool,
) -> PlanResult<ast::Select> {
    let mut inner = select.clone();
    let SetExpr::Select(from) = parse_query(&format!("SELECT 1 FROM {relation}"))?
        .body
        .as_ref()
        .clone()
    else {
        unreachable!("a SELECT parses as one");
    };
    // First, so that set-returning functions in FROM see it (as a FROM item of its own) and
    // so do the ON conditions of the first item's joins: `D CROSS JOIN a JOIN b ON ...`
    // (unless a right or full join there would give rows without a D row).
    let mut outer_item = from.from;
    match inner.from.first_mut() {
        Some(first)
            if !first.joins.is_empty()
                && first
                    .joins
                    .iter()
                    .all(|j| keeps_left_rows(&j.join_operator)) =>
        {
            let relation = std::mem::replace(&mut first.relation, outer_item.remove(0).relation);
            first.joins.insert(
                0,
                ast::Join {
                    relation,
                    global: false,
                    join_operator: ast::JoinOperator::CrossJoin(ast::JoinConstraint::None),
                },
            );
        }
        _ => {
            inner.from.splice(0..0, outer_item);
        }
    }
    let d_names = d_names(k);
    inner.projection = d_names
        .iter()
        .map(|d| Ok(aliased(parse_expr(&format!("{relation}.{d}"))?, d)))
        .chain(projection.into_iter().map(Ok))
        .collect::<PlanResult<_>>()?;
    if aggregated {
        let mut keys = match &inner.group_by {
            ast::GroupByExpr::Expressions(g, _) => g.clone(),
            ast::GroupByExpr::All(_) => vec![],
        };
        for d in &d_names {
            keys.push(parse_expr(&format!("{relation}.{d}"))?);
        }
        inner.group_by = ast::GroupByExpr::Expressions(keys, vec![]);
    }
    Ok(inner)
}

impl Binder<'_> {
    /// Plans a WHERE conjunct `[NOT] EXISTS (SELECT ...)` or `x IN (SELECT ...)` as a semi
    /// (anti) join of `plan` with the subquery's rows, its correlated conditions — any, not
    /// only equalities — becoming the join condition. Returns false, changing nothing, for
    /// other conjuncts and for subqueries that are not a plain SELECT.
    pub(crate) fn semi_join(
        &mut self,
        conjunct: &ast::Expr,
        plan: &mut BatchPlan,
        scope: &Scope,
    ) -> PlanResult<bool> {
        let (q, negated, value) = match conjunct {
            ast::Expr::Exists { subquery, negated } => (subquery, *negated, None),
            ast::Expr::InSubquery {
                expr,
                subquery,
                negated: false,
            } => (subquery, false, Some(expr)),
            _ => return Ok(false),
        };
        let SetExpr::Select(select) = q.body.as_ref() else {
            return Ok(false);
        };
        if q.order_by.is_some()
            || q.limit_clause.is_some()
            || q.with.is_some()
            || is_aggregated(select)
        {
            return Ok(false);
        }
        // A FROM that refers to this query's columns (in a join's ON): planned by this
        // query's rows instead (see `by_outer_rows`).
        let Ok((mut right, mut inner)) = self.bind_from(&select.from) else {
            return Ok(false);
        };
        let outer_width = scope.columns.len();
        let mut conjuncts = Vec::new();
        if let Some(selection) = &select.selection {
            split_and(selection, &mut conjuncts);
        }
        // Subqueries nested in the subquery's conditions unnest into its own input. One that
        // also refers to this query's columns cannot: then the whole subquery is planned by
        // this query's rows instead (see `by_outer_rows`).
        for c in &mut conjuncts {
            match self.unnest_subqueries(c, &mut right, &mut inner) {
                Ok(unnested) => *c = unnested,
                Err(_) => return Ok(false),
            }
        }
        // The join's columns: the outer query's, then the subquery's, which shadow them.
        let both = with_outer(scope, &inner);
        let (mut local, mut condition) = (Vec::new(), Vec::new());
        for c in conjuncts {
            let e = coerce_boolean(ExprBinder::bind_plain(&both, &self.params, &c)?)?;
            if e.input_columns().iter().all(|c| *c >= outer_width) {
                local.push(e.map_columns(&|c| c - outer_width));
            } else {
                condition.push(e);
            }
        }
        if let Some(x) = value {
            let item = match select.projection.as_slice() {
                [ast::SelectItem::UnnamedExpr(e)]
                | [ast::SelectItem::ExprWithAlias { expr: e, .. }] => e,
                _ => {
                    return Err(PlanError::Syntax("subquery has too many columns".into()));
                }
            };
            let v = ExprBinder::bind_plain(&both, &self.params, item)?;
            let x = ExprBinder::bind_plain(scope, &self.params, x)?;
            let ty = common_type(&x, &v)?;
            condition.push(Expr::binary(BinaryOp::Eq, coerce(x, ty)?, coerce(v, ty)?));
        }
        let right = match local
            .into_iter()
            .reduce(|a, b| Expr::binary(BinaryOp::And, a, b))
        {
            Some(predicate) => BatchPlan::Filter {
                input: Box::new(right),
                predicate,
            },
            None => right,
        };
        let left = std::mem::replace(
            plan,
            BatchPlan::Values {
                rows: vec![],
                types: vec![],
            },
        );
        *plan = BatchPlan::HashJoin {
            left: Box::new(left),
            right: Box::new(right),
            kind: if negated {
                JoinKind::LeftAnti
            } else {
                JoinKind::LeftSemi
            },
            left_keys: vec![],
            right_keys: vec![],
            condition: Expr::and_all(condition),
        };
        Ok(true)
    }

    /// `e` with its subqueries (those not inside another query) replaced by expressions over
    /// hidden columns that left joins add to `plan` and `scope`.
    pub(crate) fn unnest_subqueries(
        &mut self,
        e: &ast::Expr,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let mut e = e.clone();
        self.rewrite(&mut e, plan, scope)?;
        Ok(e)
    }

    fn rewrite(
        &mut self,
        e: &mut ast::Expr,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<()> {
        use ast::Expr as E;
        match e {
            E::Subquery(q) => *e = self.subquery_value(q, Collect::Scalar, plan, scope)?,
            E::Exists { subquery, negated } => {
                let collect = Collect::Exists { negated: *negated };
                *e = self.subquery_value(subquery, collect, plan, scope)?
            }
            E::Function(f) if matches!(&f.args, ast::FunctionArguments::Subquery(_)) => {
                let ast::FunctionArguments::Subquery(q) = &f.args else {
                    unreachable!("matched above");
                };
                if !f.name.to_string().eq_ignore_ascii_case("array") {
                    return Err(PlanError::NotSupported(format!("{}(subquery)", f.name)));
                }
                *e = self.subquery_value(q, Collect::Array, plan, scope)?;
            }
            E::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                self.rewrite(expr, plan, scope)?;
                *e = match self.in_subquery(expr, subquery, *negated, plan, scope) {
                    Err(
                        PlanError::NotSupported(_)
                        | PlanError::UndefinedColumn(_)
                        | PlanError::UndefinedTable(_),
                    ) => self.in_by_outer_rows(expr, subquery, *negated, plan, scope)?,
                    other => other?,
                };
            }
            E::BinaryOp { left, right, .. } => {
                self.rewrite(left, plan, scope)?;
                self.rewrite(right, plan, scope)?;
            }
            E::UnaryOp { expr, .. }
            | E::Nested(expr)
            | E::IsNull(expr)
            | E::IsNotNull(expr)
            | E::IsTrue(expr)
            | E::IsFalse(expr)
            | E::IsNotTrue(expr)
            | E::IsNotFalse(expr)
            | E::Cast { expr, .. } => self.rewrite(expr, plan, scope)?,
            E::Between {
                expr, low, high, ..
            } => {
                self.rewrite(expr, plan, scope)?;
                self.rewrite(low, plan, scope)?;
                self.rewrite(high, plan, scope)?;
            }
            E::InList { expr, list, .. } => {
                self.rewrite(expr, plan, scope)?;
                for item in list {
                    self.rewrite(item, plan, scope)?;
                }
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(o) = operand {
                    self.rewrite(o, plan, scope)?;
                }
                for c in conditions {
                    self.rewrite(&mut c.condition, plan, scope)?;
                    self.rewrite(&mut c.result, plan, scope)?;
                }
                if let Some(r) = else_result {
                    self.rewrite(r, plan, scope)?;
                }
            }
            E::Function(f) => {
                if let ast::FunctionArguments::List(list) = &mut f.args {
                    for arg in &mut list.args {
                        if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = arg {
                            self.rewrite(x, plan, scope)?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Splits the subquery's WHERE into its own conditions and equalities with the outer
    /// query.
    fn decorrelate(&mut self, q: &ast::Query, outer: &Scope) -> PlanResult<Decorrelated> {
        let select = match q.body.as_ref() {
            SetExpr::Select(s)
                if q.order_by.is_none() && q.limit_clause.is_none() && q.with.is_none() =>
            {
                s.as_ref().clone()
            }
            _ => {
                return Ok(Decorrelated {
                    select: None,
                    keys: vec![],
                });
            }
        };
        let Some(selection) = &select.selection else {
            return Ok(Decorrelated {
                select: Some(select),
                keys: vec![],
            });
        };
        let (_, inner) = self.bind_from(&select.from)?;
        let params = &self.params;
        let binds = |scope: &Scope, e: &ast::Expr| ExprBinder::bind_plain(scope, params, e);
        let mut conjuncts = Vec::new();
        split_and(selection, &mut conjuncts);
        let (mut local, mut keys) = (Vec::new(), Vec::new());
        for c in conjuncts {
            let inner_error = match binds(&inner, &c) {
                Ok(_) => {
                    local.push(c);
                    continue;
                }
                Err(e) => e,
            };
            if let ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } = &c
            {
                let (l, r) = (left.as_ref().clone(), right.as_ref().clone());
                if binds(&inner, &l).is_ok() && binds(outer, &r).is_ok() {
                    keys.push((l, r));
                    continue;
                }
                if binds(&inner, &r).is_ok() && binds(outer, &l).is_ok() {
                    keys.push((r, l));
                    continue;
                }
            }
            if binds(&with_outer(outer, &inner), &c).is_ok() {
                return Err(PlanError::NotSupported(format!(
                    "a correlated subquery condition other than an equality: {c}"
                )));
            }
            return Err(inner_error);
        }
        let mut select = select;
        select.selection = and_all(local);
        Ok(Decorrelated {
            select: Some(select),
            keys,
        })
    }

    /// Left-joins `sub` (whose first `outer_keys.len()` columns are its keys) to the outer
    /// input on those keys, adding its columns to `scope` as hidden columns named
    /// `__sq<N>_<name>`; returns `N`.
    fn join_subquery(
        &mut self,
        plan: &mut BatchPlan,
        scope: &mut Scope,
        sub: BatchPlan,
        sub_names: &[&str],
        outer_keys: Vec<Expr>,
    ) -> PlanResult<usize> {
        self.subqueries += 1;
        let n = self.subqueries;
        let outer_width = scope.columns.len();
        let sub_types = sub.output_types();
        // Outer keys become (hidden) columns; both sides of a key get one type.
        let mut outer_exprs: Vec<Expr> = (0..outer_width)
            .map(|i| Expr::column(i, scope.columns[i].ty))
            .collect();
        let mut inner_exprs = Expr::columns(&sub_types);
        let (mut left_keys, mut right_keys) = (Vec::new(), Vec::new());
        for (i, o) in outer_keys.into_iter().enumerate() {
            let ty = common_type(&o, &inner_exprs[i])?;
            inner_exprs[i] = coerce(inner_exprs[i].clone(), ty)?;
            left_keys.push(outer_exprs.len());
            right_keys.push(i);
            outer_exprs.push(coerce(o, ty)?);
            scope.columns.push(ScopeColumn {
                table: None,
                name: format!("__sq{n}_key{i}"),
                ty,
                hidden: true,
                outer: false,
            });
        }
        let left = BatchPlan::Project {
            input: Box::new(std::mem::replace(
                plan,
                BatchPlan::Values {
                    rows: vec![],
                    types: vec![],
                },
            )),
            exprs: outer_exprs,
        };
        let right = BatchPlan::Project {
            input: Box::new(sub),
            exprs: inner_exprs.clone(),
        };
        *plan = BatchPlan::HashJoin {
            left: Box::new(left),
            right: Box::new(right),
            kind: JoinKind::LeftOuter,
            left_keys,
            right_keys,
            condition: None,
        };
        for (name, e) in sub_names.iter().zip(&inner_exprs) {
            scope.columns.push(ScopeColumn {
                table: None,
                name: format!("__sq{n}_{name}"),
                ty: e.data_type(),
                hidden: true,
                outer: false,
            });
        }
        Ok(n)
    }

    fn bind_keys(&self, scope: &Scope, keys: &[ast::Expr]) -> PlanResult<Vec<Expr>> {
        keys.iter()
            .map(|k| ExprBinder::bind_plain(scope, &self.params, k))
            .collect()
    }

    /// A subquery by its correlated equalities, or else (other correlation, or a shape the
    /// equalities do not cover) by the outer rows' values. A subquery that cannot be bound
    /// either way reports the second way's error.
    fn subquery_value(
        &mut self,
        q: &ast::Query,
        collect: Collect,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let by_keys = match collect {
            Collect::Scalar => self.scalar_subquery(q, plan, scope),
            Collect::Exists { negated } => self.exists_subquery(q, negated, plan, scope),
            Collect::Array => {
                let agg = parse_query(&format!("SELECT array_agg(s.v) FROM ({q}) AS s(v)"))?;
                self.scalar_subquery(&agg, plan, scope)
            }
        };
        match by_keys {
            Err(
                PlanError::NotSupported(_)
                | PlanError::UndefinedColumn(_)
                | PlanError::UndefinedTable(_),
            ) => self.by_outer_rows(q, collect, plan, scope),
            other => other,
        }
    }

    /// The distinct rows of `columns` of `plan` (over `scope`) as a relation: each column
    /// under its own name, for those that `named` accepts (hidden, and marked outer so that a
    /// subquery's own columns shadow them), then all as `d0, d1, ...`.
    fn outer_rows(
        &mut self,
        plan: &BatchPlan,
        scope: &Scope,
        columns: Vec<usize>,
        named: impl Fn(&ScopeColumn) -> bool,
        what: &str,
    ) -> OuterRows {
        self.subqueries += 1;
        let relation = format!("__sq{}_{what}", self.subqueries);
        let k = columns.len();
        let ty = |j: usize| scope.columns[columns[j]].ty;
        let distinct = BatchPlan::HashAgg {
            input: Box::new(BatchPlan::Project {
                input: Box::new(plan.clone()),
                exprs: (0..k).map(|j| Expr::column(columns[j], ty(j))).collect(),
            }),
            group_keys: (0..k).collect(),
            aggs: vec![],
        };
        let named: Vec<usize> = (0..k)
            .filter(|j| named(&scope.columns[columns[*j]]))
            .collect();
        let named_columns = named.iter().map(|j| ScopeColumn {
            hidden: true,
            outer: true,
            ..scope.columns[columns[*j]].clone()
        });
        let numbered = (0..k).map(|j| ScopeColumn {
            table: None,
            name: format!("d{j}"),
            ty: ty(j),
            hidden: true,
            outer: false,
        });
        let bound = super::query::BoundQuery {
            plan: BatchPlan::Project {
                input: Box::new(distinct),
                exprs: named
                    .iter()
                    .copied()
                    .chain(0..k)
                    .map(|j| Expr::column(j, ty(j)))
                    .collect(),
            },
            scope: Scope {
                columns: named_columns.chain(numbered).collect(),
            },
        };
        OuterRows {
            relation,
            columns,
            bound,
        }
    }

    /// A derived table in FROM whose query refers to the columns of the items before it
    /// (`left`): `LATERAL (...)`, or — with `outer_only`, where only those resolve — one that
    /// refers to an enclosing query's columns, which the rewrite of a correlated subquery (see
    /// `by_outer_rows`) puts in FROM before it. The query is planned for each distinct row of
    /// `left`, like a correlated subquery, and joined back to `left` on all its columns,
    /// NULLs matching NULLs.
    pub(crate) fn bind_lateral(
        &mut self,
        left: (BatchPlan, Scope),
        q: &ast::Query,
        alias: Option<&ast::TableAlias>,
        op: &ast::JoinOperator,
        outer_only: bool,
    ) -> PlanResult<(BatchPlan, Scope)> {
        use ast::JoinOperator as J;
        let SetExpr::Select(select) = q.body.as_ref() else {
            return Err(PlanError::NotSupported(
                "a correlated derived table other than a SELECT".into(),
            ));
        };
        if q.order_by.is_some() || q.limit_clause.is_some() || q.with.is_some() || q.fetch.is_some()
        {
            return Err(PlanError::NotSupported(
                "a correlated derived table with ORDER BY, LIMIT, FETCH or WITH".into(),
            ));
        }
        let (on, keeps_left) = match op {
            J::Join(c) | J::Inner(c) | J::CrossJoin(c) => (c, false),
            J::Left(c) | J::LeftOuter(c) => (c, true),
            other => {
                return Err(PlanError::NotSupported(format!(
                    "{other:?} with a correlated derived table"
                )));
            }
        };
        let on = match on {
            ast::JoinConstraint::On(e) => Some(e),
            ast::JoinConstraint::None => None,
            _ => {
                return Err(PlanError::NotSupported(
                    "USING or NATURAL with a correlated derived table".into(),
                ));
            }
        };
        let (mut plan, mut scope) = left;
        let rows = self.outer_rows(
            &plan,
            &scope,
            (0..scope.columns.len()).collect(),
            |c| !outer_only || c.outer,
            "lateral",
        );
        let k = rows.columns.len();
        let inner = per_outer_row(
            select,
            &rows.relation,
            k,
            select.projection.clone(),
            is_aggregated(select),
        )?;
        self.ctes.push((rows.relation, rows.bound));
        let bound = self.bind_query(&query_of(inner));
        self.ctes.pop();
        let bound = bound?;
        let types = bound.plan.output_types();
        let outputs = types.len() - k;
        let sub = BatchPlan::Project {
            exprs: (0..k)
                .flat_map(|j| null_safe(Expr::column(j, types[j])))
                .chain((k..types.len()).map(|i| Expr::column(i, types[i])))
                .chain([Expr::literal(Datum::Bool(true), DataType::Boolean)])
                .collect(),
            input: Box::new(bound.plan),
        };
        let names: Vec<String> = d_names(2 * k)
            .into_iter()
            .chain((0..outputs).map(|i| format!("c{i}")))
            .chain(["matched".to_string()])
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let keys = (0..k)
            .flat_map(|j| null_safe(Expr::column(j, scope.columns[j].ty)))
            .collect();
        self.join_subquery(&mut plan, &mut scope, sub, &names, keys)?;
        // The query's columns, named as it names them.
        let first = scope.columns.len() - 1 - outputs;
        let mut named = Scope {
            columns: bound.scope.columns[k..].to_vec(),
        };
        if let Some(alias) = alias {
            apply_alias(&mut named, alias);
        }
        for (column, name) in scope.columns[first..].iter_mut().zip(named.columns) {
            *column = ScopeColumn {
                ty: column.ty,
                ..name
            };
        }
        let matched = Expr::column(scope.columns.len() - 1, DataType::Boolean);
        // An aggregation without GROUP BY has one row for every left row: where nothing
        // matched, its aggregates over no rows (count is 0, the others NULL).
        let one_row = matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            && select.having.is_none()
            && is_aggregated(select);
        if one_row {
            let counts: Vec<bool> = select
                .projection
                .iter()
                .map(|item| {
                    matches!(item, ast::SelectItem::UnnamedExpr(ast::Expr::Function(f))
                        | ast::SelectItem::ExprWithAlias { expr: ast::Expr::Function(f), .. }
                        if f.name.to_string().eq_ignore_ascii_case("count"))
                })
                .collect();
            let exprs = (0..scope.columns.len())
                .map(|i| {
                    let column = Expr::column(i, scope.columns[i].ty);
                    if i >= first && i - first < outputs && counts[i - first] {
                        Expr::Coalesce {
                            args: vec![column, Expr::literal(Datum::Int64(0), DataType::Int64)],
                            ty: DataType::Int64,
                        }
                    } else {
                        column
                    }
                })
                .collect();
            plan = BatchPlan::Project {
                input: Box::new(plan),
                exprs,
            };
        }
        let on = on
            .map(|e| coerce_boolean(ExprBinder::bind_plain(&scope, &self.params, e)?))
            .transpose()?;
        let predicate = match (keeps_left || one_row, on) {
            (true, None) => None,
            (true, Some(on)) if one_row && !keeps_left => Some(on),
            (true, Some(on)) => {
                if on != Expr::literal(Datum::Bool(true), DataType::Boolean) {
                    return Err(PlanError::NotSupported(
                        "LEFT JOIN LATERAL with a condition other than ON TRUE".into(),
                    ));
                }
                None
            }
            (false, on) => {
                Expr::and_all([Expr::IsNotNull(Box::new(matched))].into_iter().chain(on))
            }
        };
        if let Some(predicate) = predicate {
            plan = BatchPlan::Filter {
                input: Box::new(plan),
                predicate,
            };
        }
        Ok((plan, scope))
    }

    /// Plans a correlated subquery by the distinct rows of the outer input's columns (`D`):
    /// `D` joins the subquery's FROM as a relation whose columns carry the outer names (so
    /// correlated references anywhere in the subquery resolve to them, below its own
    /// columns), the subquery's rows are collected per `D` row, and the outer input is
    /// left-joined with the result on its columns, NULLs matching NULLs. Any correlation works;
    /// the outer input is computed twice.
    fn by_outer_rows(
        &mut self,
        q: &ast::Query,
        collect: Collect,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let SetExpr::Select(select) = q.body.as_ref() else {
            return Err(PlanError::NotSupported(
                "a correlated subquery other than a SELECT".into(),
            ));
        };
        if q.limit_clause.is_some() || q.with.is_some() || q.fetch.is_some() {
            return Err(PlanError::NotSupported(
                "a correlated subquery with LIMIT, FETCH or WITH".into(),
            ));
        }
        let item = match (collect, select.projection.as_slice()) {
            (Collect::Exists { .. }, _) => parse_expr("TRUE")?,
            (_, [ast::SelectItem::UnnamedExpr(e)])
            | (_, [ast::SelectItem::ExprWithAlias { expr: e, .. }]) => e.clone(),
            _ => {
                return Err(PlanError::Syntax(
                    "subquery must return only one column".into(),
                ));
            }
        };
        let columns: Vec<usize> = (0..scope.columns.len())
            .filter(|i| !scope.columns[*i].hidden)
            .collect();
        let rows = self.outer_rows(plan, scope, columns, |_| true, "outer");
        let k = rows.columns.len();
        let column = |j: usize| Expr::column(rows.columns[j], scope.columns[rows.columns[j]].ty);
        let d_names = d_names(k);
        let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            || select.having.is_some();
        let aggregated =
            grouped || (!matches!(collect, Collect::Exists { .. }) && contains_agg(&item));
        let inner = per_outer_row(
            select,
            &rows.relation,
            k,
            vec![aliased(item.clone(), "v")],
            aggregated,
        )?;
        let mut inner_query = query_of(inner);
        // ORDER BY positions move past the `d` columns put first.
        inner_query.order_by = q.order_by.clone().map(|mut o| {
            if let ast::OrderByKind::Expressions(items) = &mut o.kind {
                for item in items {
                    if let ast::Expr::Value(v) = &item.expr
                        && let ast::Value::Number(n, _) = &v.value
                        && let Ok(n) = n.parse::<usize>()
                    {
                        item.expr =
                            ast::Expr::value(ast::Value::Number((n + k).to_string(), false));
                    }
                }
            }
            o
        });
        let s_cols: Vec<String> = d_names.iter().map(|d| format!("s.{d}")).collect();
        let s_cols = s_cols.join(", ");
        let collected = match collect {
            Collect::Exists { .. } => {
                format!("SELECT DISTINCT {s_cols}, TRUE AS matched FROM ({inner_query}) AS s")
            }
            Collect::Scalar | Collect::Array => {
                let value = if collect == Collect::Array {
                    "array_agg(s.v)"
                } else {
                    "__single_value(s.v)"
                };
                format!(
                    "SELECT {s_cols}, {value} AS value, TRUE AS matched \
                     FROM ({inner_query}) AS s GROUP BY {s_cols}"
                )
            }
        };
        self.ctes.push((rows.relation, rows.bound));
        let bound = self.bind_query(&parse_query(&collected)?);
        self.ctes.pop();
        let bound = bound?;
        let types = bound.plan.output_types();
        let sub = BatchPlan::Project {
            exprs: (0..k)
                .flat_map(|j| null_safe(Expr::column(j, types[j])))
                .chain((k..types.len()).map(|i| Expr::column(i, types[i])))
                .collect(),
            input: Box::new(bound.plan),
        };
        let names: Vec<String> = (0..2 * k)
            .map(|j| format!("d{j}"))
            .chain(match collect {
                Collect::Exists { .. } => vec!["matched".to_string()],
                _ => vec!["value".to_string(), "matched".to_string()],
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let keys = (0..k).flat_map(|j| null_safe(column(j))).collect();
        let n = self.join_subquery(plan, scope, sub, &names, keys)?;
        let counts = !grouped
            && matches!(&item, ast::Expr::Function(f)
                if f.name.to_string().eq_ignore_ascii_case("count"));
        parse_expr(&match collect {
            Collect::Exists { negated } => format!(
                "__sq{n}_matched IS {}NULL",
                if negated { "" } else { "NOT " }
            ),
            _ if counts => {
                format!("CASE WHEN __sq{n}_matched IS NULL THEN 0 ELSE __sq{n}_value END")
            }
            // `ARRAY(...)` of no rows is an empty array.
            Collect::Array => format!("COALESCE(__sq{n}_value, '{{}}')"),
            _ => format!("__sq{n}_value"),
        })
    }

    fn scalar_subquery(
        &mut self,
        q: &ast::Query,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let d = self.decorrelate(q, scope)?;
        if d.keys.is_empty() {
            let bound = self.bind_query(q)?;
            if bound.plan.output_types().len() != 1 {
                return Err(PlanError::Syntax(
                    "subquery must return only one column".into(),
                ));
            }
            // An aggregation without GROUP BY returns exactly one row.
            let one_row = d.select.as_ref().is_some_and(|s| {
                is_aggregated(s)
                    && matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
                    && s.having.is_none()
            });
            let sub = if one_row {
                bound.plan
            } else {
                BatchPlan::MaxOneRow {
                    input: Box::new(bound.plan),
                }
            };
            // Named so that aggregations can read it outside GROUP BY (one value for all rows).
            let n = self.join_subquery(plan, scope, sub, &["const"], vec![])?;
            return parse_expr(&format!("__sq{n}_const"));
        }
        let mut select = d.select.expect("correlation needs a SELECT");
        let item = match select.projection.as_slice() {
            [ast::SelectItem::UnnamedExpr(e)]
            | [ast::SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
            _ => {
                return Err(PlanError::Syntax(
                    "subquery must return only one column".into(),
                ));
            }
        };
        let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            || select.having.is_some();
        if !contains_agg(&item) || grouped {
            return Err(PlanError::NotSupported(
                "a correlated scalar subquery other than one aggregate without GROUP BY".into(),
            ));
        }
        let inner_keys: Vec<ast::Expr> = d.keys.iter().map(|(i, _)| i.clone()).collect();
        let outer_keys: Vec<ast::Expr> = d.keys.iter().map(|(_, o)| o.clone()).collect();
        let mut projection: Vec<ast::SelectItem> = inner_keys
            .iter()
            .enumerate()
            .map(|(i, k)| aliased(k.clone(), &format!("key{i}")))
            .collect();
        projection.push(aliased(item.clone(), "value"));
        projection.push(aliased(parse_expr("TRUE")?, "matched"));
        select.projection = projection;
        select.group_by = ast::GroupByExpr::Expressions(inner_keys, vec![]);
        let bound = self.bind_query(&query_of(select))?;
        let names: Vec<String> = (0..outer_keys.len())
            .map(|i| format!("key{i}"))
            .chain(["value".to_string(), "matched".to_string()])
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let outer_keys = self.bind_keys(scope, &outer_keys)?;
        let n = self.join_subquery(plan, scope, bound.plan, &names, outer_keys)?;
        // No matching rows: the aggregate over nothing (count is 0, the others NULL).
        let counts = matches!(&item, ast::Expr::Function(f)
            if f.name.to_string().eq_ignore_ascii_case("count"));
        parse_expr(&if counts {
            format!("CASE WHEN __sq{n}_matched IS NULL THEN 0 ELSE __sq{n}_value END")
        } else {
            format!("__sq{n}_value")
        })
    }

    fn exists_subquery(
        &mut self,
        q: &ast::Query,
        negated: bool,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let d = self.decorrelate(q, scope)?;
        let n = if d.keys.is_empty() {
            let sub = parse_query(&format!("SELECT TRUE AS matched FROM ({q}) AS s LIMIT 1"))?;
            let bound = self.bind_query(&sub)?;
            self.join_subquery(plan, scope, bound.plan, &["matched"], vec![])?
        } else {
            let mut select = d.select.expect("correlation needs a SELECT");
            if is_aggregated(&select) {
                return Err(PlanError::NotSupported(
                    "a correlated EXISTS over an aggregation".into(),
                ));
            }
            let (inner_keys, outer_keys): (Vec<_>, Vec<_>) = d.keys.into_iter().unzip();
            let mut names: Vec<String> = Vec::new();
            let mut projection = Vec::new();
            for (i, k) in inner_keys.into_iter().enumerate() {
                names.push(format!("key{i}"));
                projection.push(aliased(k, &format!("key{i}")));
            }
            projection.push(aliased(parse_expr("TRUE")?, "matched"));
            names.push("matched".into());
            select.projection = projection;
            select.distinct = Some(ast::Distinct::Distinct);
            let bound = self.bind_query(&query_of(select))?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let outer_keys = self.bind_keys(scope, &outer_keys)?;
            self.join_subquery(plan, scope, bound.plan, &names, outer_keys)?
        };
        parse_expr(&format!(
            "__sq{n}_matched IS {}NULL",
            if negated { "" } else { "NOT " }
        ))
    }

    /// `x [NOT] IN (q)` for a correlation `in_subquery` does not cover: a scalar subquery
    /// planned by the outer rows (see `by_outer_rows`) tells whether some row equals `x` (2),
    /// else whether some comparison was NULL (1), else (0, or no rows) not.
    fn in_by_outer_rows(
        &mut self,
        x: &ast::Expr,
        q: &ast::Query,
        negated: bool,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let code = parse_query(&format!(
            "SELECT max(CASE WHEN __in_rows.__in_value = ({x}) THEN 2 \
             WHEN (__in_rows.__in_value = ({x})) IS NULL THEN 1 ELSE 0 END) \
             FROM ({q}) AS __in_rows(__in_value)"
        ))?;
        let code = self.by_outer_rows(&code, Collect::Scalar, plan, scope)?;
        parse_expr(&format!(
            "{}(CASE COALESCE({code}, 0) WHEN 2 THEN TRUE WHEN 1 THEN NULL ELSE FALSE END)",
            if negated { "NOT " } else { "" }
        ))
    }

    fn in_subquery(
        &mut self,
        x: &ast::Expr,
        q: &ast::Query,
        negated: bool,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let d = self.decorrelate(q, scope)?;
        let (inner_keys, mut outer_keys): (Vec<_>, Vec<_>) = d.keys.into_iter().unzip();
        // Matches: distinct (keys, value); counts: rows and non-NULL values per key.
        let (matches, counts) = if inner_keys.is_empty() {
            (
                parse_query(&format!(
                    "SELECT DISTINCT c AS value, TRUE AS matched FROM ({q}) AS s(c)"
                ))?,
                parse_query(&format!(
                    "SELECT count(*) AS n, count(c) AS values FROM ({q}) AS s(c)"
                ))?,
            )
        } else {
            let select = d.select.expect("correlation needs a SELECT");
            let value = match select.projection.as_slice() {
                [ast::SelectItem::UnnamedExpr(e)]
                | [ast::SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
                _ => {
                    return Err(PlanError::Syntax("subquery has too many columns".into()));
                }
            };
            if is_aggregated(&select) {
                return Err(PlanError::NotSupported(
                    "a correlated IN over an aggregation".into(),
                ));
            }
            let keyed = |extra: Vec<ast::SelectItem>| {
                let mut s = select.clone();
                s.projection = inner_keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| aliased(k.clone(), &format!("key{i}")))
                    .chain(extra)
                    .collect();
                s
            };
            let mut m = keyed(vec![
                aliased(value.clone(), "value"),
                aliased(parse_expr("TRUE")?, "matched"),
            ]);
            m.distinct = Some(ast::Distinct::Distinct);
            let mut c = keyed(vec![
                aliased(parse_expr("count(*)")?, "n"),
                aliased(parse_expr(&format!("count({value})"))?, "values"),
            ]);
            c.group_by = ast::GroupByExpr::Expressions(inner_keys.clone(), vec![]);
            (query_of(m), query_of(c))
        };
        let key_names: Vec<String> = (0..inner_keys.len()).map(|i| format!("key{i}")).collect();
        let names = |extra: &[&str]| -> Vec<String> {
            key_names
                .iter()
                .cloned()
                .chain(extra.iter().map(|s| s.to_string()))
                .collect()
        };
        let counts_plan = self.bind_query(&counts)?.plan;
        let count_names = names(&["n", "values"]);
        let count_names: Vec<&str> = count_names.iter().map(String::as_str).collect();
        let keys = self.bind_keys(scope, &outer_keys)?;
        let c = self.join_subquery(plan, scope, counts_plan, &count_names, keys)?;
        let matches_plan = self.bind_query(&matches)?.plan;
        if matches_plan.output_types().len() != key_names.len() + 2 {
            return Err(PlanError::Syntax("subquery has too many columns".into()));
        }
        outer_keys.push(x.clone());
        let match_names = names(&["value", "matched"]);
        let match_names: Vec<&str> = match_names.iter().map(String::as_str).collect();
        let keys = self.bind_keys(scope, &outer_keys)?;
        let m = self.join_subquery(plan, scope, matches_plan, &match_names, keys)?;
        let found = format!(
            "CASE WHEN __sq{m}_matched IS NOT NULL THEN TRUE \
             WHEN COALESCE(__sq{c}_n, 0) = 0 THEN FALSE \
             WHEN ({x}) IS NULL OR __sq{c}_n > __sq{c}_values THEN NULL \
             ELSE FALSE END"
        );
        parse_expr(&if negated {
            format!("NOT ({found})")
        } else {
            found
        })
    }
}
