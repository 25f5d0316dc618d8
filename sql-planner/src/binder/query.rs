//! Binding queries into batch plans.

use dataflow::batch::plan::{
    AggCall, AggKind, BatchPlan, Frame, FrameBound, JoinKind, SortKey, WindowFunc,
};
use dataflow::expr::{BinaryOp, Expr};
use dataflow::func::Func;
use dataflow::types::{DataType, Datum};
use epoch_mvcc::memcomparable::OrderType;
use sqlparser::ast::{self, SetExpr};

use super::Binder;
use super::expr::{
    AggContext, ExprBinder, Params, Scope, ScopeColumn, agg_kind, agg_return_type, coerce,
    common_type, contains_agg, ident_name, is_untyped_literal, unify,
};
use super::subquery::{and_all as and_all_ast, split_and};
use crate::corresponding;
use crate::error::{PlanError, PlanResult};

/// A bound query: its plan and named output columns.
#[derive(Clone, Debug)]
pub(crate) struct BoundQuery {
    pub plan: BatchPlan,
    pub scope: Scope,
}

impl BoundQuery {
    /// Output column names and types.
    pub(crate) fn columns(&self) -> Vec<(String, DataType)> {
        self.scope
            .columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| (c.name.clone(), c.ty))
            .collect()
    }
}

fn output_scope(names: Vec<String>, types: &[DataType]) -> Scope {
    Scope {
        columns: names
            .into_iter()
            .zip(types)
            .map(|(name, ty)| ScopeColumn {
                table: None,
                name,
                ty: *ty,
                hidden: false,
                outer: false,
            })
            .collect(),
    }
}

/// The name of a call of a set-returning function (`unnest`, `generate_series`).
fn set_function_name(f: &ast::Function) -> Option<String> {
    let name = f.name.to_string().to_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    (f.over.is_none() && matches!(name, "unnest" | "generate_series")).then(|| name.to_string())
}

/// `e` as RisingWave prints it in errors: casts spelled `CAST(x AS T)`.
fn casts_spelled_out(e: &ast::Expr) -> String {
    use ast::Expr as E;
    match e {
        E::Cast {
            expr, data_type, ..
        } => format!("CAST({} AS {data_type})", casts_spelled_out(expr)),
        E::BinaryOp { left, op, right } => format!(
            "{} {op} {}",
            casts_spelled_out(left),
            casts_spelled_out(right)
        ),
        E::Nested(inner) => format!("({})", casts_spelled_out(inner)),
        other => other.to_string(),
    }
}

/// A constant non-negative integer (LIMIT, OFFSET), possibly computed (`LIMIT 1 + 2`), or a
/// string literal of one (`LIMIT '2'`). Errors are worded as RisingWave words them.
fn const_u64(e: &ast::Expr, what: &str) -> PlanResult<u64> {
    let expr_error = |message: String| PlanError::Caused {
        causes: vec!["Expr error".into(), message],
        sqlstate: "22023",
    };
    let expects = format!(
        "expects an integer or expression that can be evaluated to an integer after {what}"
    );
    if matches!(e, ast::Expr::Function(f) if set_function_name(f).is_some()) {
        return Err(expr_error(format!(
            "{expects}, but found non-const expression"
        )));
    }
    // Bound without columns in scope: anything that binds is a constant.
    let bound =
        ExprBinder::bind_plain(&Scope::default(), &Params::default(), e).map_err(|err| {
            PlanError::Caused {
                causes: vec![
                    format!("Failed to bind expression: {}", casts_spelled_out(e)),
                    err.to_string(),
                ],
                sqlstate: err.sqlstate(),
            }
        })?;
    let value = match &bound {
        Expr::Literal {
            value: Datum::Varchar(text),
            ty: DataType::Varchar,
        } => match text.trim().parse::<i64>() {
            Ok(v) => Datum::Int64(v),
            Err(parse) => {
                return Err(expr_error(format!(
                    "{expects},\nbut the evaluation of the expression returns error:Expr error: \
                     error while evaluating expression `str_parse('{text}')`: \
                     Parse error: bigint {parse}"
                )));
            }
        },
        _ if is_untyped_literal(&bound) => Datum::Null,
        _ if !bound.data_type().is_numeric() => return Err(expr_error(expects)),
        _ => constant(coerce(bound, DataType::Int64)?)?,
    };
    match value {
        Datum::Int64(v) if v >= 0 => Ok(v as u64),
        // LIMIT NULL is no limit; OFFSET NULL skips nothing.
        Datum::Null if what == "LIMIT" => Ok(u64::MAX),
        Datum::Null => Ok(0),
        Datum::Int64(v) => Err(expr_error(format!(
            "{what} must not be negative, but found: {v}"
        ))),
        _ => Err(expr_error(expects)),
    }
}

pub(crate) fn column_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(id) => ident_name(id),
        ast::Expr::CompoundIdentifier(ids) => ids.last().map(ident_name).unwrap_or_default(),
        ast::Expr::Function(f) => f
            .name
            .0
            .last()
            .map(|p| p.to_string().to_lowercase())
            .unwrap_or_default(),
        ast::Expr::Cast { expr, .. } | ast::Expr::Nested(expr) => column_name(expr),
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Extract { .. } => "extract".into(),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Interval(_) => "interval".into(),
        ast::Expr::Ceil { .. } => "ceil".into(),
        ast::Expr::Floor { .. } => "floor".into(),
        // `(s).field`: the field's name.
        ast::Expr::CompoundFieldAccess { access_chain, .. } => match access_chain.last() {
            Some(ast::AccessExpr::Dot(ast::Expr::Identifier(id))) => ident_name(id),
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

/// The query's output reduced to `columns`, in that order.
fn keep_columns(q: BoundQuery, columns: impl Iterator<Item = usize>) -> BoundQuery {
    let columns: Vec<usize> = columns.collect();
    let types = q.plan.output_types();
    let exprs = columns
        .iter()
        .map(|c| Expr::column(*c, types[*c]))
        .collect();
    let names = columns
        .iter()
        .map(|c| q.scope.columns[*c].name.clone())
        .collect();
    let kept: Vec<DataType> = columns.iter().map(|c| types[*c]).collect();
    BoundQuery {
        plan: BatchPlan::Project {
            input: Box::new(q.plan),
            exprs,
        },
        scope: output_scope(names, &kept),
    }
}

/// Projects `plan`'s output to `types` (casting where they differ).
fn project_to(plan: BatchPlan, types: &[DataType]) -> PlanResult<BatchPlan> {
    let current = plan.output_types();
    if current == types {
        return Ok(plan);
    }
    let exprs = current
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (from, to))| coerce(Expr::column(i, *from), *to))
        .collect::<PlanResult<Vec<_>>>()?;
    Ok(BatchPlan::Project {
        input: Box::new(plan),
        exprs,
    })
}

/// `FETCH FIRST n ROWS ONLY` (a limit) or `... WITH TIES`: the rows ranked at most `n` by the
/// query's order, ties included.
fn fetch_first(plan: BatchPlan, fetch: &ast::Fetch) -> PlanResult<BatchPlan> {
    if fetch.percent {
        return Err(PlanError::NotSupported("FETCH FIRST ... PERCENT".into()));
    }
    let n = fetch
        .quantity
        .as_ref()
        .map(|q| const_u64(q, "FETCH FIRST"))
        .transpose()?
        .unwrap_or(1);
    if !fetch.with_ties {
        return Ok(BatchPlan::Limit {
            input: Box::new(plan),
            limit: Some(n),
            offset: 0,
        });
    }
    let (input, keys) = match plan {
        BatchPlan::Sort { input, keys } => (input, keys),
        // Ordered by columns the query does not output, projected away after the sort.
        BatchPlan::Project { input, exprs } if matches!(*input, BatchPlan::Sort { .. }) => {
            return Ok(BatchPlan::Project {
                input: Box::new(fetch_first(*input, fetch)?),
                exprs,
            });
        }
        _ => {
            return Err(PlanError::Syntax(
                "WITH TIES cannot be specified without ORDER BY clause".into(),
            ));
        }
    };
    let types = input.output_types();
    let ranked = BatchPlan::OverWindow {
        input,
        partition_by: vec![],
        order_by: keys.clone(),
        calls: vec![WindowFunc::Rank],
    };
    let rank = Expr::column(types.len(), DataType::Int64);
    let top = BatchPlan::Filter {
        input: Box::new(ranked),
        predicate: Expr::binary(
            BinaryOp::LtEq,
            rank,
            Expr::literal(Datum::Int64(n as i64), DataType::Int64),
        ),
    };
    Ok(BatchPlan::Sort {
        input: Box::new(BatchPlan::Project {
            input: Box::new(top),
            exprs: Expr::columns(&types),
        }),
        keys,
    })
}

/// `AS name(a, b, ...)`: the relation's columns get `name` as qualifier and the leading ones
/// the listed names.
/// `scope` as the FROM item `qualifier` (with `alias`, if given): a CTE's or a view's
/// columns under the name they are read by; columns of an enclosing query (see
/// `subquery.rs`) keep their qualifiers.
fn requalified(mut scope: Scope, qualifier: &str, alias: Option<&ast::TableAlias>) -> Scope {
    scope
        .columns
        .iter_mut()
        .filter(|c| !c.outer)
        .for_each(|c| c.table = Some(qualifier.to_string()));
    if let Some(alias) = alias {
        apply_alias(&mut scope, alias);
    }
    scope
}

pub(crate) fn apply_alias(scope: &mut Scope, alias: &ast::TableAlias) {
    let name = ident_name(&alias.name);
    let mut renames = alias.columns.iter();
    for c in scope.columns.iter_mut().filter(|c| !c.hidden) {
        c.table = Some(name.clone());
        if let Some(rename) = renames.next() {
            c.name = ident_name(&rename.name);
        }
    }
    for c in scope.columns.iter_mut().filter(|c| c.hidden) {
        c.table = Some(name.clone());
    }
}

/// Which output columns of `plan` are untyped literals (NULL or a string constant).
fn untyped_columns(plan: &BatchPlan) -> Vec<bool> {
    match plan {
        BatchPlan::Project { exprs, .. } => exprs.iter().map(is_untyped_literal).collect(),
        BatchPlan::Values { rows, types } => (0..types.len())
            .map(|c| rows.iter().all(|r| is_untyped_literal(&r[c])))
            .collect(),
        other => vec![false; other.output_types().len()],
    }
}

/// Every column as a group key and no aggregates: the distinct rows.
fn distinct(plan: BatchPlan) -> BatchPlan {
    let n = plan.output_types().len();
    BatchPlan::HashAgg {
        input: Box::new(plan),
        group_keys: (0..n).collect(),
        aggs: vec![],
    }
}

pub(crate) fn order_type(o: &ast::OrderByOptions) -> OrderType {
    let descending = matches!(o.sort, Some(ast::OrderBySort::Desc));
    OrderType {
        descending,
        nulls_first: o.nulls_first.unwrap_or(descending),
    }
}

impl Binder<'_> {
    pub(crate) fn bind_query(&mut self, q: &ast::Query) -> PlanResult<BoundQuery> {
        let saved = self.ctes.len();
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(PlanError::NotSupported("WITH RECURSIVE".into()));
            }
            for cte in &with.cte_tables {
                let mut bound = self.bind_query(&cte.query)?;
                // `WITH name(a, b) AS (...)` renames the leading columns.
                for (c, alias) in bound.scope.columns.iter_mut().zip(&cte.alias.columns) {
                    c.name = ident_name(&alias.name);
                }
                self.ctes.push((ident_name(&cte.alias.name), bound));
            }
        }
        let result = self.bind_query_body(q);
        self.ctes.truncate(saved);
        result
    }

    fn bind_query_body(&mut self, q: &ast::Query) -> PlanResult<BoundQuery> {
        let order_by: &[ast::OrderByExpr] = match &q.order_by {
            Some(ast::OrderBy {
                kind: ast::OrderByKind::Expressions(items),
                ..
            }) => items,
            Some(_) => return Err(PlanError::NotSupported("ORDER BY ALL".into())),
            None => &[],
        };
        let mut bound = match q.body.as_ref() {
            SetExpr::Select(select) => self.bind_select(select, order_by)?,
            other => {
                let mut bound = self.bind_set_expr(other)?;
                if !order_by.is_empty() {
                    let keys = order_by
                        .iter()
                        .map(|item| {
                            Ok(SortKey {
                                column: self.output_position(&bound.scope, &item.expr)?,
                                order: order_type(&item.options),
                            })
                        })
                        .collect::<PlanResult<Vec<_>>>()?;
                    bound.plan = BatchPlan::Sort {
                        input: Box::new(bound.plan),
                        keys,
                    };
                }
                bound
            }
        };
        if let Some(limit) = &q.limit_clause {
            let (limit, offset) = match limit {
                ast::LimitClause::LimitOffset { limit, offset, .. } => (
                    limit.as_ref().map(|l| const_u64(l, "LIMIT")).transpose()?,
                    offset
                        .as_ref()
                        .map(|o| const_u64(&o.value, "OFFSET"))
                        .transpose()?
                        .unwrap_or(0),
                ),
                ast::LimitClause::OffsetCommaLimit { offset, limit } => (
                    Some(const_u64(limit, "LIMIT")?),
                    const_u64(offset, "OFFSET")?,
                ),
            };
            bound.plan = BatchPlan::Limit {
                input: Box::new(bound.plan),
                limit,
                offset,
            };
        }
        if let Some(fetch) = &q.fetch {
            bound.plan = fetch_first(bound.plan, fetch)?;
        }
        Ok(bound)
    }

    /// ORDER BY on a set operation: output names or positions only.
    fn output_position(&self, scope: &Scope, e: &ast::Expr) -> PlanResult<usize> {
        match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => list_position(n, scope.columns.len())
                    .ok_or_else(|| PlanError::UndefinedColumn(format!("ORDER BY position {n}"))),
                _ => Err(PlanError::NotSupported("ORDER BY a constant".into())),
            },
            ast::Expr::Identifier(id) => scope.resolve(None, &ident_name(id)),
            other => Err(PlanError::NotSupported(format!(
                "ORDER BY {other} on a set operation"
            ))),
        }
    }

    pub(crate) fn bind_set_expr(&mut self, e: &SetExpr) -> PlanResult<BoundQuery> {
        match e {
            SetExpr::Select(s) => self.bind_select(s, &[]),
            SetExpr::Query(q) => self.bind_query(q),
            SetExpr::Values(values) => self.bind_values(values),
            SetExpr::SetOperation {
                op:
                    op @ (ast::SetOperator::Union
                    | ast::SetOperator::Intersect
                    | ast::SetOperator::Except),
                set_quantifier,
                left,
                right,
            } => {
                let (mut l, mut r) = (self.bind_set_expr(left)?, self.bind_set_expr(right)?);
                if corresponding::is_corresponding(set_quantifier) {
                    let names = |q: &BoundQuery| -> Vec<String> {
                        q.scope.columns.iter().map(|c| c.name.clone()).collect()
                    };
                    let pairs =
                        corresponding::corresponding_columns(&names(&l), &names(&r), right)?;
                    l = keep_columns(l, pairs.iter().map(|p| p.0));
                    r = keep_columns(r, pairs.iter().map(|p| p.1));
                }
                let (lt, rt) = (l.plan.output_types(), r.plan.output_types());
                if lt.len() != rt.len() {
                    return Err(PlanError::Syntax(format!(
                        "each {op} query must have the same number of columns"
                    )));
                }
                // A column that is an untyped literal (NULL, a string) on one side takes the
                // other side's type, as in PostgreSQL.
                let (lu, ru) = (untyped_columns(&l.plan), untyped_columns(&r.plan));
                let types = (0..lt.len())
                    .map(|i| match (lu[i], ru[i]) {
                        (true, false) => Ok(rt[i]),
                        (false, true) => Ok(lt[i]),
                        _ => common_type(&Expr::column(0, lt[i]), &Expr::column(0, rt[i])),
                    })
                    .collect::<PlanResult<Vec<_>>>()?;
                let all = matches!(
                    set_quantifier,
                    ast::SetQuantifier::All | ast::SetQuantifier::AllByName
                );
                let (left, right) = (project_to(l.plan, &types)?, project_to(r.plan, &types)?);
                let plan = match op {
                    ast::SetOperator::Union => BatchPlan::UnionAll {
                        inputs: vec![left, right],
                    },
                    _ if all => {
                        return Err(PlanError::NotSupported(format!("{op} ALL")));
                    }
                    // Rows of the left side with (without) an equal row on the right, NULLs
                    // equal to NULLs: a semi (anti) join on null-safe keys.
                    _ => {
                        let n = types.len();
                        let null_safe = |plan: BatchPlan| BatchPlan::Project {
                            input: Box::new(plan),
                            exprs: (0..n)
                                .map(|c| Expr::column(c, types[c]))
                                .chain((0..n).flat_map(|c| {
                                    let col = Expr::column(c, types[c]);
                                    [
                                        Expr::IsNull(Box::new(col.clone())),
                                        Expr::Coalesce {
                                            args: vec![
                                                col,
                                                Expr::literal(
                                                    super::subquery::stand_in(types[c]),
                                                    types[c],
                                                ),
                                            ],
                                            ty: types[c],
                                        },
                                    ]
                                }))
                                .collect(),
                        };
                        let keys: Vec<usize> = (n..3 * n).collect();
                        BatchPlan::Project {
                            input: Box::new(BatchPlan::HashJoin {
                                left: Box::new(null_safe(left)),
                                right: Box::new(null_safe(right)),
                                kind: if matches!(op, ast::SetOperator::Intersect) {
                                    JoinKind::LeftSemi
                                } else {
                                    JoinKind::LeftAnti
                                },
                                left_keys: keys.clone(),
                                right_keys: keys,
                                condition: None,
                            }),
                            exprs: Expr::columns(&types[..n]),
                        }
                    }
                };
                let names = l.scope.columns.iter().map(|c| c.name.clone()).collect();
                Ok(BoundQuery {
                    plan: if all { plan } else { distinct(plan) },
                    scope: output_scope(names, &types),
                })
            }
            other => Err(PlanError::NotSupported(format!("{other}"))),
        }
    }

    fn bind_values(&mut self, values: &ast::Values) -> PlanResult<BoundQuery> {
        let empty = Scope::default();
        let rows = values
            .rows
            .iter()
            .map(|row| {
                row.content
                    .iter()
                    .map(|e| ExprBinder::bind_plain(&empty, &self.params, e))
                    .collect::<PlanResult<Vec<_>>>()
            })
            .collect::<PlanResult<Vec<_>>>()?;
        let width = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != width) {
            return Err(PlanError::Syntax(
                "VALUES lists must all be the same length".into(),
            ));
        }
        let mut types = Vec::with_capacity(width);
        for c in 0..width {
            types.push(unify(rows.iter().map(|row| &row[c]))?);
        }
        let rows = rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&types)
                    .map(|(e, t)| coerce(e, *t))
                    .collect::<PlanResult<Vec<_>>>()
            })
            .collect::<PlanResult<Vec<_>>>()?;
        let names = (1..=width).map(|i| format!("column{i}")).collect();
        Ok(BoundQuery {
            plan: BatchPlan::Values {
                rows,
                types: types.clone(),
            },
            scope: output_scope(names, &types),
        })
    }

    pub(crate) fn bind_from(
        &mut self,
        from: &[ast::TableWithJoins],
    ) -> PlanResult<(BatchPlan, Scope)> {
        let mut result: Option<(BatchPlan, Scope)> = None;
        for item in from {
            // Set-returning functions see the items before them (as if LATERAL).
            if item.joins.is_empty()
                && let Some((function, list, alias)) =
                    self.set_function_list(&item.relation, result.as_ref())?
            {
                let (plan, mut scope) = result.take().unwrap_or_else(one_row);
                let ty = list
                    .data_type()
                    .element()
                    .expect("set functions give arrays");
                scope
                    .columns
                    .extend(series_scope(&function, ty, alias).columns);
                result = Some((
                    BatchPlan::Unnest {
                        input: Box::new(plan),
                        list,
                    },
                    scope,
                ));
                continue;
            }
            let cross = ast::JoinOperator::CrossJoin(ast::JoinConstraint::None);
            let mut current = match result.take() {
                // A derived table that may refer to the items before it joins them first.
                Some(left)
                    if matches!(item.relation, ast::TableFactor::Derived { .. })
                        && item.joins.iter().all(|j| keeps_left_rows(&j.join_operator)) =>
                {
                    self.bind_joined_factor(left, &item.relation, &cross)?
                }
                left => {
                    let current = self.bind_table_factor(&item.relation)?;
                    match left {
                        Some(left) => {
                            let current = self.bind_joins(current, &item.joins)?;
                            result = Some(self.bind_join(left, current, &cross)?);
                            continue;
                        }
                        None => current,
                    }
                }
            };
            current = self.bind_joins(current, &item.joins)?;
            result = Some(current);
        }
        // No FROM: one row without columns.
        Ok(result.unwrap_or_else(one_row))
    }

    /// The columns of `scope` that a wildcard's `EXCLUDE (...)` (written `EXCEPT (...)`, see
    /// `dialect.rs`) leaves out.
    fn excluded_columns(
        &self,
        scope: &Scope,
        options: &ast::WildcardAdditionalOptions,
    ) -> PlanResult<Vec<usize>> {
        let ast::WildcardAdditionalOptions {
            opt_exclude,
            opt_ilike: None,
            opt_except: None,
            opt_replace: None,
            opt_rename: None,
            ..
        } = options
        else {
            return Err(PlanError::NotSupported(format!("* {options}")));
        };
        let names = match opt_exclude {
            None => return Ok(vec![]),
            Some(ast::ExcludeSelectItem::Single(name)) => std::slice::from_ref(name),
            Some(ast::ExcludeSelectItem::Multiple(names)) => names.as_slice(),
        };
        names
            .iter()
            .map(|name| {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .map(|p| p.as_ident().map_or(p.to_string(), ident_name))
                    .collect();
                match parts.as_slice() {
                    [column] => scope.resolve(None, column),
                    [.., table, column] => scope.resolve(Some(table), column),
                    [] => Err(PlanError::Syntax("an empty column name".into())),
                }
            })
            .collect()
    }

    /// `left` joined with each of `joins` in turn.
    fn bind_joins(
        &mut self,
        mut left: (BatchPlan, Scope),
        joins: &[ast::Join],
    ) -> PlanResult<(BatchPlan, Scope)> {
        for join in joins {
            left = self.bind_joined_factor(left, &join.relation, &join.join_operator)?;
        }
        Ok(left)
    }

    /// `left` joined with `factor` by `op`. A derived table may refer to `left`'s columns:
    /// with `LATERAL` to any, without only to an enclosing query's (which a correlated
    /// subquery's rewrite puts in FROM); see `bind_lateral`.
    fn bind_joined_factor(
        &mut self,
        left: (BatchPlan, Scope),
        factor: &ast::TableFactor,
        op: &ast::JoinOperator,
    ) -> PlanResult<(BatchPlan, Scope)> {
        if let ast::TableFactor::Derived {
            lateral,
            subquery,
            alias,
            ..
        } = factor
        {
            if *lateral {
                return self.bind_lateral(left, subquery, alias.as_ref(), op, false);
            }
            if left.1.columns.iter().any(|c| c.outer) {
                match self.bind_table_factor(factor) {
                    Err(PlanError::UndefinedTable(_) | PlanError::UndefinedColumn(_)) => {
                        return self.bind_lateral(left, subquery, alias.as_ref(), op, true);
                    }
                    right => return self.bind_join(left, right?, op),
                }
            }
        }
        let right = self.bind_table_factor(factor)?;
        self.bind_join(left, right, op)
    }

    /// For `unnest(array)`, and `generate_series` over more than constants, the array whose
    /// elements are the rows, bound over `left` (the FROM items before it); `None` for other
    /// functions, which are planned as tables.
    fn set_function_list<'a>(
        &mut self,
        factor: &'a ast::TableFactor,
        left: Option<&(BatchPlan, Scope)>,
    ) -> PlanResult<Option<(String, Expr, Option<&'a ast::TableAlias>)>> {
        let (function, args, alias) = match factor {
            ast::TableFactor::Table {
                name,
                alias,
                args: Some(args),
                ..
            } => {
                let function = name.to_string().to_lowercase();
                let function = function
                    .strip_prefix("pg_catalog.")
                    .unwrap_or(&function)
                    .to_string();
                let args = args
                    .args
                    .iter()
                    .map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
                        other => Err(PlanError::NotSupported(format!("argument {other}"))),
                    })
                    .collect::<PlanResult<Vec<_>>>()?;
                (function, args, alias.as_ref())
            }
            ast::TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality: false,
                ..
            } => (
                "unnest".to_string(),
                array_exprs.iter().collect(),
                alias.as_ref(),
            ),
            _ => return Ok(None),
        };
        if !matches!(function.as_str(), "unnest" | "generate_series") {
            return Ok(None);
        }
        let empty = Scope::default();
        let scope = left.map_or(&empty, |(_, s)| s);
        let bound = args
            .into_iter()
            .map(|e| ExprBinder::bind_plain(scope, &self.params, e))
            .collect::<PlanResult<Vec<_>>>()?;
        Ok(set_function_array(&function, bound, true)?.map(|list| (function, list, alias)))
    }

    /// A set-returning function of the select list (`SELECT unnest(a) FROM t`): an `Unnest`
    /// over `plan` adding its rows' values as a hidden column, which the returned expression
    /// names; `None` (changing nothing) for other functions.
    fn bind_select_set_function(
        &mut self,
        f: &ast::Function,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<Option<ast::Expr>> {
        let Some(name) = set_function_name(f) else {
            return Ok(None);
        };
        let ast::FunctionArguments::List(list) = &f.args else {
            return Ok(None);
        };
        let args = list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    ExprBinder::bind_plain(scope, &self.params, e)
                }
                other => Err(PlanError::NotSupported(format!("argument {other}"))),
            })
            .collect::<PlanResult<Vec<_>>>()?;
        let Some(list) = set_function_array(&name, args, false)? else {
            return Ok(None);
        };
        if scope.columns.iter().any(|c| c.name.starts_with("__srf")) {
            return Err(PlanError::NotSupported(
                "more than one set-returning function in a select list".into(),
            ));
        }
        let ty = list
            .data_type()
            .element()
            .expect("set functions give arrays");
        let input = std::mem::replace(
            plan,
            BatchPlan::Values {
                rows: vec![],
                types: vec![],
            },
        );
        *plan = BatchPlan::Unnest {
            input: Box::new(input),
            list,
        };
        scope.columns.push(ScopeColumn {
            table: None,
            name: "__srf".into(),
            ty,
            hidden: true,
            outer: false,
        });
        Ok(Some(super::subquery::parse_expr("__srf")?))
    }

    /// A ranking window function of the select list: an `OverWindow` over `plan` adding its
    /// value as a hidden column, which the returned expression names.
    fn bind_window(
        &mut self,
        f: &ast::Function,
        plan: &mut BatchPlan,
        scope: &mut Scope,
    ) -> PlanResult<ast::Expr> {
        let name = f.name.to_string().to_lowercase();
        let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
            return Err(PlanError::NotSupported("named windows".into()));
        };
        // Arguments, partition and order expressions become (hidden) columns of the input.
        let width = scope.columns.len();
        let mut exprs: Vec<Expr> = (0..width)
            .map(|i| Expr::column(i, scope.columns[i].ty))
            .collect();
        let column_of = |e: Expr, exprs: &mut Vec<Expr>| -> usize {
            match e {
                Expr::Column { index, .. } => index,
                other => {
                    exprs.push(other);
                    exprs.len() - 1
                }
            }
        };
        // `count(*)`: no argument.
        let mut star = false;
        let args: Vec<&ast::Expr> = match &f.args {
            ast::FunctionArguments::List(l) => l
                .args
                .iter()
                .filter(|a| {
                    let wildcard =
                        matches!(a, ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard));
                    star |= wildcard;
                    !wildcard
                })
                .map(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
                    other => Err(PlanError::NotSupported(format!("argument {other}"))),
                })
                .collect::<PlanResult<_>>()?,
            _ => vec![],
        };
        let kind = match (name.as_str(), args.as_slice()) {
            ("row_number", []) => WindowFunc::RowNumber,
            ("rank", []) => WindowFunc::Rank,
            ("dense_rank", []) => WindowFunc::DenseRank,
            ("lag" | "lead", [value, offset @ ..]) if offset.len() <= 1 => {
                let value = ExprBinder::bind_plain(scope, &self.params, value)?;
                let column = column_of(value, &mut exprs);
                let offset = match offset.first() {
                    None => 1,
                    Some(e) => {
                        match constant(coerce(
                            ExprBinder::bind_plain(scope, &self.params, e)?,
                            DataType::Int64,
                        )?)? {
                            Datum::Int64(n) if n >= 0 => n as usize,
                            _ => {
                                return Err(PlanError::InvalidArgument(format!(
                                    "the offset of {name} must be a constant, not negative"
                                )));
                            }
                        }
                    }
                };
                if name == "lag" {
                    WindowFunc::Lag { column, offset }
                } else {
                    WindowFunc::Lead { column, offset }
                }
            }
            (aggregate, _)
                if matches!(
                    agg_kind(aggregate),
                    Some(
                        AggKind::Count | AggKind::Sum | AggKind::Avg | AggKind::Min | AggKind::Max
                    )
                ) && args.len() + usize::from(star) == 1 =>
            {
                let (kind, column, arg_ty) = match (agg_kind(aggregate), args.first()) {
                    (Some(AggKind::Count), None) => (AggKind::CountStar, None, None),
                    (Some(kind), Some(arg)) => {
                        let value = ExprBinder::bind_plain(scope, &self.params, arg)?;
                        let ty = value.data_type();
                        (kind, Some(column_of(value, &mut exprs)), Some(ty))
                    }
                    _ => {
                        return Err(PlanError::UndefinedFunction(format!(
                            "function {name}(*) does not exist"
                        )));
                    }
                };
                let ret = agg_return_type(kind, arg_ty).ok_or_else(|| {
                    PlanError::UndefinedFunction(format!(
                        "function {name}({}) does not exist",
                        arg_ty.map_or(String::new(), |t| t.to_string())
                    ))
                })?;
                WindowFunc::Aggregate {
                    kind,
                    column,
                    ret,
                    frame: self.window_frame(spec.window_frame.as_ref(), scope)?,
                }
            }
            ("row_number" | "rank" | "dense_rank" | "lag" | "lead", _) => {
                return Err(PlanError::UndefinedFunction(format!(
                    "function {name} with {} arguments does not exist",
                    args.len()
                )));
            }
            _ => {
                return Err(PlanError::NotSupported(format!(
                    "window function {name} (row_number, rank, dense_rank, lag, lead, count, \
                     sum, avg, min and max are)"
                )));
            }
        };
        let mut partition_by = Vec::new();
        for p in &spec.partition_by {
            let e = ExprBinder::bind_plain(scope, &self.params, p)?;
            partition_by.push(column_of(e, &mut exprs));
        }
        let mut order_by = Vec::new();
        for o in &spec.order_by {
            let e = ExprBinder::bind_plain(scope, &self.params, &o.expr)?;
            order_by.push(SortKey {
                column: column_of(e, &mut exprs),
                order: order_type(&o.options),
            });
        }
        self.windows += 1;
        let n = self.windows;
        let computed: Vec<DataType> = exprs[width..].iter().map(Expr::data_type).collect();
        let input = std::mem::replace(
            plan,
            BatchPlan::Values {
                rows: vec![],
                types: vec![],
            },
        );
        let input = if computed.is_empty() {
            input
        } else {
            BatchPlan::Project {
                input: Box::new(input),
                exprs,
            }
        };
        *plan = BatchPlan::OverWindow {
            input: Box::new(input),
            partition_by,
            order_by,
            calls: vec![kind],
        };
        let hidden = |name: String, ty| ScopeColumn {
            table: None,
            name,
            ty,
            hidden: true,
            outer: false,
        };
        for (i, ty) in computed.into_iter().enumerate() {
            scope
                .columns
                .push(hidden(format!("__window{n}_key{i}"), ty));
        }
        let value_type = *plan.output_types().last().expect("the window's value");
        scope
            .columns
            .push(hidden(format!("__window{n}"), value_type));
        Ok(ast::Expr::Identifier(ast::Ident::new(format!(
            "__window{n}"
        ))))
    }

    /// A window's frame clause (the default frame when there is none). `RANGE` takes
    /// `UNBOUNDED` and `CURRENT ROW` bounds; `ROWS` also constant row counts.
    fn window_frame(&self, frame: Option<&ast::WindowFrame>, scope: &Scope) -> PlanResult<Frame> {
        let Some(frame) = frame else {
            return Ok(Frame::DEFAULT);
        };
        let rows = match frame.units {
            ast::WindowFrameUnits::Rows => true,
            ast::WindowFrameUnits::Range => false,
            ast::WindowFrameUnits::Groups => {
                return Err(PlanError::NotSupported("GROUPS window frames".into()));
            }
        };
        let offset = |e: &ast::Expr| -> PlanResult<u64> {
            if !rows {
                return Err(PlanError::NotSupported(
                    "RANGE frames with an offset (ROWS frames take one)".into(),
                ));
            }
            let value = coerce(
                ExprBinder::bind_plain(scope, &self.params, e)?,
                DataType::Int64,
            )?;
            match constant(value)? {
                Datum::Int64(n) if n >= 0 => Ok(n as u64),
                _ => Err(PlanError::InvalidArgument(
                    "frame offsets must be constants, not negative or NULL".into(),
                )),
            }
        };
        let bound = |b: &ast::WindowFrameBound, start: bool| -> PlanResult<FrameBound> {
            Ok(match b {
                ast::WindowFrameBound::CurrentRow => FrameBound::CurrentRow,
                ast::WindowFrameBound::Preceding(None) if start => FrameBound::UnboundedPreceding,
                ast::WindowFrameBound::Following(None) if !start => FrameBound::UnboundedFollowing,
                ast::WindowFrameBound::Preceding(Some(e)) => FrameBound::Preceding(offset(e)?),
                ast::WindowFrameBound::Following(Some(e)) => FrameBound::Following(offset(e)?),
                other => {
                    return Err(PlanError::Syntax(format!(
                        "frame {} cannot be {other}",
                        if start { "start" } else { "end" }
                    )));
                }
            })
        };
        let start = bound(&frame.start_bound, true)?;
        let end = match &frame.end_bound {
            Some(b) => bound(b, false)?,
            None => FrameBound::CurrentRow,
        };
        Ok(Frame { rows, start, end })
    }

    /// `TUMBLE(relation, time_col, size)` and `HOP(relation, time_col, slide, size)`: the
    /// relation's rows with `window_start` and `window_end` of each fixed-size window (aligned
    /// to 1970-01-01) holding `time_col` — one for tumbling windows, `size / slide` for hopping
    /// ones (the relation unnested over an array of its row's window starts).
    fn bind_time_window(
        &mut self,
        function: &str,
        args: &ast::TableFunctionArgs,
        alias: Option<&ast::TableAlias>,
    ) -> PlanResult<(BatchPlan, Scope)> {
        let usage = || {
            PlanError::UndefinedFunction(format!(
                "{function} takes a relation, a time column, {} and an optional offset",
                if function == "tumble" {
                    "a window size"
                } else {
                    "a slide, a window size"
                }
            ))
        };
        let exprs: Vec<&ast::Expr> = args
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
                _ => Err(usage()),
            })
            .collect::<PlanResult<_>>()?;
        let arity = if function == "tumble" { 3 } else { 4 };
        if exprs.len() != arity && exprs.len() != arity + 1 {
            return Err(usage());
        }
        let relation = sqlparser::parser::Parser::new(&crate::dialect::StreamDialect)
            .try_with_sql(&exprs[0].to_string())
            .and_then(|mut p| p.parse_table_factor())
            .map_err(|_| usage())?;
        let (input, mut scope) = self.bind_table_factor(&relation)?;
        let time = ExprBinder::bind_plain(&scope, &self.params, exprs[1])?;
        let time = match time.data_type() {
            DataType::Date => coerce(time, DataType::Timestamp)?,
            DataType::Timestamp | DataType::Timestamptz => time,
            other => {
                return Err(PlanError::TypeMismatch(format!(
                    "the time column of {function} must be a date or timestamp, not {other}"
                )));
            }
        };
        let micros = |e: &ast::Expr| -> PlanResult<i64> {
            match ExprBinder::bind_plain(&Scope::default(), &self.params, e)?.eval_constant() {
                Ok(Datum::Interval {
                    months: 0,
                    days,
                    nanos,
                }) if i64::from(days) * 86_400_000_000 + nanos / 1000 > 0 => {
                    Ok(i64::from(days) * 86_400_000_000 + nanos / 1000)
                }
                _ => Err(PlanError::InvalidArgument(format!(
                    "{function}: window sizes must be positive constant intervals without months"
                ))),
            }
        };
        let (slide, size) = if function == "tumble" {
            let size = micros(exprs[2])?;
            (size, size)
        } else {
            (micros(exprs[2])?, micros(exprs[3])?)
        };
        // An optional last argument shifts the windows' alignment.
        let offset = match exprs.get(arity) {
            Some(e) => {
                match ExprBinder::bind_plain(&Scope::default(), &self.params, e)?.eval_constant() {
                    Ok(Datum::Interval {
                        months: 0,
                        days,
                        nanos,
                    }) => i64::from(days) * 86_400_000_000 + nanos / 1000,
                    _ => {
                        return Err(PlanError::InvalidArgument(format!(
                            "{function}: the offset must be a constant interval without months"
                        )));
                    }
                }
            }
            None => 0,
        };
        if size % slide != 0 {
            return Err(PlanError::InvalidArgument(format!(
                "{function}: the window size must be a multiple of the slide"
            )));
        }
        let ty = time.data_type();
        let interval = |us: i64| {
            Expr::literal(
                Datum::Interval {
                    months: 0,
                    days: 0,
                    nanos: us * 1000,
                },
                DataType::Interval,
            )
        };
        let add = |e: Expr, us: i64| Expr::Func {
            func: Func::AddInterval,
            args: vec![e, interval(us)],
            ty,
        };
        let aligned = Expr::Func {
            func: Func::WindowStart,
            args: vec![
                time,
                Expr::literal(Datum::Int64(slide), DataType::Int64),
                Expr::literal(Datum::Int64(offset), DataType::Int64),
            ],
            ty,
        };
        let types = input.output_types();
        let mut exprs = Expr::columns(&types);
        // A hopping window's row goes to each of its `size / slide` windows: the input read
        // once, then unnested over an array of the window starts.
        let (input, start) = if size == slide {
            (input, aligned)
        } else {
            let starts = Expr::Func {
                func: Func::ArrayConstruct,
                args: (0..size / slide)
                    .map(|j| add(aligned.clone(), -j * slide))
                    .collect(),
                ty: DataType::list(ty),
            };
            let unnested = BatchPlan::Unnest {
                input: Box::new(input),
                list: starts,
            };
            (unnested, Expr::column(types.len(), ty))
        };
        exprs.push(start.clone());
        exprs.push(add(start, size));
        let plan = BatchPlan::Project {
            input: Box::new(input),
            exprs,
        };
        let table = scope.columns.first().and_then(|c| c.table.clone());
        for name in ["window_start", "window_end"] {
            scope.columns.push(ScopeColumn {
                table: table.clone(),
                name: name.into(),
                ty,
                hidden: false,
                outer: false,
            });
        }
        if let Some(alias) = alias {
            apply_alias(&mut scope, alias);
        }
        Ok((plan, scope))
    }

    /// `generate_series(start, stop [, step])` (stop included) and `range(...)` (excluded)
    /// over integer constants: their rows, as literal rows.
    fn bind_series(
        &mut self,
        function: &str,
        args: &ast::TableFunctionArgs,
        alias: Option<&ast::TableAlias>,
    ) -> PlanResult<(BatchPlan, Scope)> {
        /// More rows than this should come from a table, not a literal series.
        const MAX_SERIES_ROWS: i64 = 1_000_000;
        let bound = args
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    ExprBinder::bind_plain(&Scope::default(), &self.params, e)
                }
                other => Err(PlanError::NotSupported(format!("argument {other}"))),
            })
            .collect::<PlanResult<Vec<_>>>()?;
        if !(2..=3).contains(&bound.len()) || !bound.iter().all(|e| e.data_type().is_integer()) {
            return Err(PlanError::UndefinedFunction(format!(
                "function {function}({}) does not exist",
                bound
                    .iter()
                    .map(|a| a.data_type().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let ty = if bound.iter().all(|e| e.data_type() != DataType::Int64) {
            DataType::Int32
        } else {
            DataType::Int64
        };
        let mut values = Vec::with_capacity(3);
        for e in &bound {
            values.push(match constant(coerce(e.clone(), DataType::Int64)?)? {
                Datum::Int64(v) => v,
                _ => {
                    return Ok((
                        BatchPlan::Values {
                            rows: vec![],
                            types: vec![ty],
                        },
                        series_scope(function, ty, alias),
                    ));
                }
            });
        }
        let (start, stop, step) = (values[0], values[1], values.get(2).copied().unwrap_or(1));
        if step == 0 {
            return Err(PlanError::InvalidArgument(
                "step size cannot equal zero".into(),
            ));
        }
        let inclusive = function == "generate_series";
        let count = {
            let span = i128::from(stop) - i128::from(start);
            let n = span / i128::from(step) + 1;
            let exact = span % i128::from(step) == 0;
            let n = if !inclusive && exact { n - 1 } else { n };
            n.max(0)
        };
        if count > i128::from(MAX_SERIES_ROWS) {
            return Err(PlanError::NotSupported(format!(
                "a series of more than {MAX_SERIES_ROWS} rows"
            )));
        }
        let rows = (0..count as i64)
            .map(|i| {
                let v = start + i * step;
                let d = if ty == DataType::Int32 {
                    Datum::Int32(v as i32)
                } else {
                    Datum::Int64(v)
                };
                vec![Expr::literal(d, ty)]
            })
            .collect();
        Ok((
            BatchPlan::Values {
                rows,
                types: vec![ty],
            },
            series_scope(function, ty, alias),
        ))
    }

    fn bind_table_factor(&mut self, f: &ast::TableFactor) -> PlanResult<(BatchPlan, Scope)> {
        match f {
            ast::TableFactor::Table {
                name,
                alias,
                args: Some(args),
                ..
            } => {
                let function = name.to_string().to_lowercase();
                match function.strip_prefix("pg_catalog.").unwrap_or(&function) {
                    f @ ("generate_series" | "range") => self.bind_series(f, args, alias.as_ref()),
                    f @ ("tumble" | "hop") => self.bind_time_window(f, args, alias.as_ref()),
                    // A scalar function in FROM: one row, one column named after it.
                    _ => {
                        let call = super::subquery::parse_expr(&format!(
                            "{name}({})",
                            args.args
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))?;
                        let value = ExprBinder::bind_plain(&Scope::default(), &self.params, &call)?;
                        let ty = value.data_type();
                        let column = function.rsplit('.').next().unwrap_or(&function).to_string();
                        let (plan, _) = one_row();
                        Ok((
                            BatchPlan::Project {
                                input: Box::new(plan),
                                exprs: vec![value],
                            },
                            series_scope(&column, ty, alias.as_ref()),
                        ))
                    }
                }
            }
            ast::TableFactor::Table { name, alias, .. } => {
                let table_name = name
                    .0
                    .last()
                    .map(|p| p.as_ident().map_or(p.to_string(), ident_name))
                    .unwrap_or_default();
                let qualifier = alias
                    .as_ref()
                    .map_or(table_name.clone(), |a| ident_name(&a.name));
                // A schema-qualified name always means a table, never a CTE.
                let cte = if name.0.len() == 1 {
                    self.ctes.iter().rev().find(|(n, _)| *n == table_name)
                } else {
                    None
                };
                if let Some((_, cte)) = cte {
                    let scope = requalified(cte.scope.clone(), &qualifier, alias.as_ref());
                    return Ok((cte.plan.clone(), scope));
                }
                let (schema, _) = super::schema_and_name(name);
                let is_user_table = self
                    .catalog
                    .table(&crate::catalog::qualified(&schema, &table_name))
                    .is_some();
                // information_schema's views are never found without their schema.
                let system_name = if schema == "information_schema" {
                    format!("information_schema.{table_name}")
                } else {
                    table_name.clone()
                };
                if (matches!(schema.as_str(), "pg_catalog" | "information_schema")
                    || name.0.len() == 1 && !is_user_table)
                    && let Some(super::system::SystemTable { columns, rows }) =
                        super::system::system_table(self.catalog, &system_name)
                {
                    let types: Vec<DataType> = columns.iter().map(|c| c.1).collect();
                    let rows = rows
                        .into_iter()
                        .map(|r| {
                            r.into_iter()
                                .zip(&types)
                                .map(|(d, t)| Expr::literal(d, *t))
                                .collect()
                        })
                        .collect();
                    let mut scope = Scope {
                        columns: columns
                            .iter()
                            .map(|(n, ty)| ScopeColumn {
                                table: Some(qualifier.clone()),
                                name: n.to_string(),
                                ty: *ty,
                                hidden: false,
                                outer: false,
                            })
                            .collect(),
                    };
                    if let Some(alias) = alias {
                        apply_alias(&mut scope, alias);
                    }
                    return Ok((BatchPlan::Values { rows, types }, scope));
                }
                let table = self
                    .catalog
                    .table(&crate::catalog::qualified(&schema, &table_name))
                    .ok_or_else(|| PlanError::UndefinedTable(table_name.clone()))?;
                self.referenced.push(table.id);
                if let Some(view) = &table.logical {
                    return self.bind_logical_view(&table, view, &qualifier, alias.as_ref());
                }
                let mut scope = Scope {
                    columns: table
                        .columns
                        .iter()
                        .map(|c| ScopeColumn {
                            table: Some(qualifier.clone()),
                            name: c.name.clone(),
                            ty: c.ty,
                            hidden: c.hidden,
                            outer: false,
                        })
                        .collect(),
                };
                if let Some(alias) = alias {
                    apply_alias(&mut scope, alias);
                }
                let mut columns: Vec<usize> = (0..table.columns.len()).collect();
                let plan = match &table.source {
                    Some(source) => BatchPlan::Source {
                        source_id: table.id,
                        source: source.clone(),
                        columns,
                    },
                    None => {
                        // Each row's commit time, as the hidden `_rw_timestamp` (pruned when
                        // unused).
                        let desc = table.desc();
                        columns.push(desc.commit_time_column());
                        scope.columns.push(ScopeColumn {
                            table: Some(qualifier.clone()),
                            name: crate::catalog::COMMIT_TIME_COLUMN.into(),
                            ty: DataType::Timestamptz,
                            hidden: true,
                            outer: false,
                        });
                        BatchPlan::Scan {
                            columns,
                            table: desc,
                        }
                    }
                };
                Ok((plan, scope))
            }
            ast::TableFactor::Derived { lateral: true, .. } => Err(PlanError::NotSupported(
                "LATERAL as the first item of FROM".into(),
            )),
            ast::TableFactor::Derived {
                subquery, alias, ..
            } => {
                let bound = self.bind_query(subquery)?;
                let mut scope = bound.scope;
                if let Some(alias) = alias {
                    apply_alias(&mut scope, alias);
                }
                Ok((bound.plan, scope))
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => self.bind_from(std::slice::from_ref(table_with_joins)),
            other => Err(PlanError::NotSupported(format!("FROM {other}"))),
        }
    }

    /// The rows of view `table` (named `qualifier` here): its query, bound as it was written
    /// (the enclosing statement's CTEs are not in its scope), with the view's column names.
    fn bind_logical_view(
        &mut self,
        table: &crate::TableCatalog,
        view: &crate::LogicalView,
        qualifier: &str,
        alias: Option<&ast::TableAlias>,
    ) -> PlanResult<(BatchPlan, Scope)> {
        let query = match crate::parse_sql(&format!("{};", view.query))?.as_slice() {
            [ast::Statement::Query(q)] => q.clone(),
            _ => {
                return Err(PlanError::Syntax(format!(
                    "view \"{}\" has no query",
                    table.name
                )));
            }
        };
        let ctes = std::mem::take(&mut self.ctes);
        let bound = self.bind_query(&query);
        self.ctes = ctes;
        let bound = bound?;
        let mut scope = bound.scope;
        let mut visible = scope.columns.iter_mut().filter(|c| !c.hidden && !c.outer);
        for column in &table.columns {
            let Some(c) = visible.next() else { break };
            c.name.clone_from(&column.name);
        }
        Ok((bound.plan, requalified(scope, qualifier, alias)))
    }

    fn bind_join(
        &mut self,
        left: (BatchPlan, Scope),
        right: (BatchPlan, Scope),
        op: &ast::JoinOperator,
    ) -> PlanResult<(BatchPlan, Scope)> {
        use ast::JoinOperator as J;
        let (kind, constraint) = match op {
            J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::LeftOuter, c),
            J::Right(c) | J::RightOuter(c) => (JoinKind::RightOuter, c),
            J::FullOuter(c) => (JoinKind::FullOuter, c),
            J::CrossJoin(c) => (JoinKind::Inner, c),
            other => return Err(PlanError::NotSupported(format!("join {other:?}"))),
        };
        let left_width = left.1.columns.len();
        if let Some(dup) = right
            .1
            .columns
            .iter()
            .filter_map(|c| c.table.as_ref())
            .find(|t| left.1.columns.iter().any(|c| c.table.as_ref() == Some(*t)))
        {
            return Err(PlanError::DuplicateAlias(dup.clone()));
        }
        let mut scope = left.1;
        scope.columns.extend(right.1.columns);
        let (mut left_keys, mut right_keys, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        match constraint {
            ast::JoinConstraint::On(on) => {
                let cond = ExprBinder::bind_plain(&scope, &self.params, on)?;
                for c in cond.conjuncts() {
                    match &c {
                        Expr::Binary {
                            op: BinaryOp::Eq,
                            left: l,
                            right: r,
                        } => match (l.as_ref(), r.as_ref()) {
                            (
                                Expr::Column { index: a, ty: ta },
                                Expr::Column { index: b, ty: tb },
                            ) if ta == tb && (*a < left_width) != (*b < left_width) => {
                                let (lk, rk) = if *a < left_width { (*a, *b) } else { (*b, *a) };
                                left_keys.push(lk);
                                right_keys.push(rk - left_width);
                            }
                            _ => rest.push(c),
                        },
                        _ => rest.push(c),
                    }
                }
            }
            ast::JoinConstraint::None => {}
            ast::JoinConstraint::Using(_) | ast::JoinConstraint::Natural => {
                let names: Vec<String> = match constraint {
                    ast::JoinConstraint::Using(cols) => {
                        cols.iter().map(super::object_name).collect()
                    }
                    _ => scope.columns[..left_width]
                        .iter()
                        .filter(|l| {
                            !l.hidden
                                && scope.columns[left_width..]
                                    .iter()
                                    .any(|r| !r.hidden && r.name == l.name)
                        })
                        .map(|c| c.name.clone())
                        .collect(),
                };
                return self.bind_using_join(left.0, right.0, kind, scope, left_width, &names);
            }
        }
        let plan = BatchPlan::HashJoin {
            left: Box::new(left.0),
            right: Box::new(right.0),
            kind,
            left_keys,
            right_keys,
            condition: Expr::and_all(rest),
        };
        Ok((plan, scope))
    }

    /// `JOIN ... USING (names)` (and `NATURAL JOIN`): equal keys on the named columns, which
    /// then appear once, first, as PostgreSQL lists them — the left value, the right one for a
    /// right join, and the first non-NULL for a full join. `t.name` still reaches either side.
    fn bind_using_join(
        &mut self,
        left: BatchPlan,
        right: BatchPlan,
        kind: JoinKind,
        mut scope: Scope,
        left_width: usize,
        names: &[String],
    ) -> PlanResult<(BatchPlan, Scope)> {
        let (mut left_keys, mut right_keys, mut merged) = (Vec::new(), Vec::new(), Vec::new());
        for name in names {
            let side = |range: std::ops::Range<usize>| {
                let found: Vec<usize> = range.filter(|i| scope.columns[*i].name == *name).collect();
                match found.as_slice() {
                    [i] => Ok(*i),
                    [] => Err(PlanError::UndefinedColumn(format!("{name} (in USING)"))),
                    _ => Err(PlanError::AmbiguousColumn(name.clone())),
                }
            };
            let (l, r) = (side(0..left_width)?, side(left_width..scope.columns.len())?);
            let ty = common_type(
                &Expr::column(l, scope.columns[l].ty),
                &Expr::column(r, scope.columns[r].ty),
            )?;
            if scope.columns[l].ty != ty || scope.columns[r].ty != ty {
                return Err(PlanError::NotSupported(format!(
                    "USING column {name} with different types"
                )));
            }
            left_keys.push(l);
            right_keys.push(r - left_width);
            let (lc, rc) = (Expr::column(l, ty), Expr::column(r, ty));
            merged.push(match kind {
                JoinKind::Inner | JoinKind::LeftOuter | JoinKind::LeftSemi | JoinKind::LeftAnti => {
                    lc
                }
                JoinKind::RightOuter => rc,
                JoinKind::FullOuter => Expr::Coalesce {
                    args: vec![lc, rc],
                    ty,
                },
            });
            scope.columns[l].hidden = true;
            scope.columns[r].hidden = true;
        }
        let join = BatchPlan::HashJoin {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            left_keys,
            right_keys,
            condition: None,
        };
        let width = scope.columns.len();
        let exprs = merged
            .iter()
            .cloned()
            .chain((0..width).map(|i| Expr::column(i, scope.columns[i].ty)))
            .collect();
        let mut columns: Vec<ScopeColumn> = names
            .iter()
            .zip(&merged)
            .map(|(name, e)| ScopeColumn {
                table: None,
                name: name.clone(),
                ty: e.data_type(),
                hidden: false,
                outer: false,
            })
            .collect();
        columns.extend(scope.columns);
        Ok((
            BatchPlan::Project {
                input: Box::new(join),
                exprs,
            },
            Scope { columns },
        ))
    }

    fn bind_select(
        &mut self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
    ) -> PlanResult<BoundQuery> {
        let (mut plan, mut scope) = self.bind_from(&s.from)?;
        // EXISTS and IN conjuncts of WHERE become semi and anti joins; other subqueries in WHERE
        // and the select list become left joins adding hidden columns.
        let mut conjuncts = Vec::new();
        if let Some(selection) = &s.selection {
            split_and(selection, &mut conjuncts);
        }
        let mut rest = Vec::new();
        for c in conjuncts {
            if !self.semi_join(&c, &mut plan, &scope)? {
                rest.push(c);
            }
        }
        let selection = and_all_ast(rest)
            .map(|e| self.unnest_subqueries(&e, &mut plan, &mut scope))
            .transpose()?;
        let having = s
            .having
            .as_ref()
            .map(|e| self.unnest_subqueries(e, &mut plan, &mut scope))
            .transpose()?;
        // WHERE filters the FROM rows before window and set-returning functions see them.
        if let Some(selection) = &selection {
            if contains_agg(selection) {
                return Err(PlanError::Grouping(
                    "aggregate functions are not allowed in WHERE".into(),
                ));
            }
            let predicate = ExprBinder::bind_plain(&scope, &self.params, selection)?;
            if predicate.data_type() != DataType::Boolean
                && !matches!(
                    predicate,
                    Expr::Literal {
                        value: Datum::Null,
                        ..
                    }
                )
            {
                return Err(PlanError::TypeMismatch(format!(
                    "argument of WHERE must be type boolean, not type {}",
                    predicate.data_type()
                )));
            }
            plan = BatchPlan::Filter {
                input: Box::new(plan),
                predicate: coerce(predicate, DataType::Boolean)?,
            };
        }
        let mut projection = s.projection.clone();
        // An unnamed item keeps the name its expression had before the rewrite.
        let mut unnamed_names = Vec::with_capacity(projection.len());
        for item in &mut projection {
            let e = match item {
                ast::SelectItem::UnnamedExpr(e) => {
                    unnamed_names.push(Some(column_name(e)));
                    e
                }
                ast::SelectItem::ExprWithAlias { expr, .. } => {
                    unnamed_names.push(None);
                    expr
                }
                _ => {
                    unnamed_names.push(None);
                    continue;
                }
            };
            *e = self.unnest_subqueries(e, &mut plan, &mut scope)?;
            if let ast::Expr::Function(f) = e
                && f.over.is_some()
            {
                *e = self.bind_window(f, &mut plan, &mut scope)?;
            }
            if let ast::Expr::Function(f) = e
                && let Some(column) = self.bind_select_set_function(f, &mut plan, &mut scope)?
            {
                *e = column;
            }
        }
        let scope = scope;
        let mut select_list: Vec<SelectColumn> = Vec::new();
        for (item, unnamed_name) in projection.iter().zip(unnamed_names) {
            match item {
                ast::SelectItem::UnnamedExpr(e) => select_list.push(SelectColumn::Expr(
                    e,
                    unnamed_name.unwrap_or_else(|| column_name(e)),
                )),
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    select_list.push(SelectColumn::Expr(expr, ident_name(alias)))
                }
                ast::SelectItem::Wildcard(options)
                | ast::SelectItem::QualifiedWildcard(_, options) => {
                    let excluded = self.excluded_columns(&scope, options)?;
                    let qualifier = match item {
                        ast::SelectItem::QualifiedWildcard(
                            ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                            _,
                        ) => Some(
                            n.0.last()
                                .map(|p| p.as_ident().map_or(p.to_string(), ident_name))
                                .unwrap_or_default(),
                        ),
                        _ => None,
                    };
                    let before = select_list.len();
                    for (i, c) in scope.columns.iter().enumerate() {
                        if !c.hidden
                            && !excluded.contains(&i)
                            && qualifier
                                .as_ref()
                                .is_none_or(|q| c.table.as_ref() == Some(q))
                        {
                            select_list.push(SelectColumn::Star(i));
                        }
                    }
                    if let Some(q) = qualifier
                        && select_list.len() == before
                    {
                        return Err(PlanError::UndefinedTable(q));
                    }
                }
                other => return Err(PlanError::NotSupported(format!("select item {other}"))),
            }
        }
        let group_by: &[ast::Expr] = match &s.group_by {
            ast::GroupByExpr::Expressions(exprs, _) => exprs,
            ast::GroupByExpr::All(_) => return Err(PlanError::NotSupported("GROUP BY ALL".into())),
        };
        let aggregating = !group_by.is_empty()
            || s.having.is_some()
            || select_list
                .iter()
                .any(|c| matches!(c, SelectColumn::Expr(e, _) if contains_agg(e)))
            || order_by.iter().any(|o| contains_agg(&o.expr));
        // Bind the select list (and ORDER BY and HAVING) over the input, or over the grouping.
        let group_exprs = group_by
            .iter()
            .map(|g| {
                let g = group_item(g, &select_list, &scope, &self.params)?;
                if contains_agg(&g) {
                    return Err(PlanError::MisplacedAggregate("GROUP BY"));
                }
                ExprBinder::bind_plain(&scope, &self.params, &g)
            })
            .collect::<PlanResult<Vec<_>>>()?;
        let mut agg = AggContext {
            input: &scope,
            group_exprs: &group_exprs,
            aggs: Vec::new(),
        };
        let mut bind = |e: &ast::Expr| -> PlanResult<Expr> {
            if aggregating {
                ExprBinder {
                    scope: &scope,
                    agg: Some(&mut agg),
                    params: &self.params,
                }
                .bind(e)
            } else {
                ExprBinder::bind_plain(&scope, &self.params, e)
            }
        };
        let mut exprs: Vec<(Expr, String)> = Vec::new();
        for column in &select_list {
            exprs.push(match column {
                SelectColumn::Star(col) if !aggregating => {
                    let c = &scope.columns[*col];
                    (Expr::column(*col, c.ty), c.name.clone())
                }
                SelectColumn::Star(col) => (
                    bind(&star_column_name(&scope, *col))?,
                    scope.columns[*col].name.clone(),
                ),
                SelectColumn::Expr(e, name) => (bind(e)?, name.clone()),
            });
        }
        let having = having.as_ref().map(&mut bind).transpose()?;
        // ORDER BY: an output name or position, an expression of the list, or a hidden extra.
        let mut sort_keys = Vec::new();
        let visible = exprs.len();
        for item in order_by {
            let order = order_type(&item.options);
            let by_name = match &item.expr {
                // A bare name means an output column first, as in PostgreSQL.
                ast::Expr::Identifier(id) => {
                    let name = ident_name(id);
                    let matches: Vec<usize> =
                        (0..visible).filter(|i| exprs[*i].1 == name).collect();
                    (matches.len() == 1).then(|| matches[0])
                }
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => {
                        Some(list_position(n, visible).ok_or_else(|| {
                            PlanError::UndefinedColumn(format!("ORDER BY position {n}"))
                        })?)
                    }
                    _ => None,
                },
                _ => None,
            };
            let column = match by_name {
                Some(c) => c,
                None => {
                    let e = bind(&item.expr)?;
                    match exprs.iter().position(|(x, _)| *x == e) {
                        Some(c) => c,
                        None => {
                            exprs.push((e, String::new()));
                            exprs.len() - 1
                        }
                    }
                }
            };
            sort_keys.push(SortKey { column, order });
        }
        // DISTINCT ON expressions: columns of the list, or hidden extras.
        let distinct_on = match &s.distinct {
            Some(ast::Distinct::On(on)) => Some(
                on.iter()
                    .map(|e| {
                        let e = bind(e)?;
                        Ok(match exprs.iter().position(|(x, _)| *x == e) {
                            Some(c) => c,
                            None => {
                                exprs.push((e, String::new()));
                                exprs.len() - 1
                            }
                        })
                    })
                    .collect::<PlanResult<Vec<usize>>>()?,
            ),
            _ => None,
        };
        let aggs = agg.aggs;
        if aggregating {
            // Pre-project group keys and aggregate arguments, aggregate, then filter by HAVING.
            let g = group_exprs.len();
            let mut pre: Vec<Expr> = group_exprs.clone();
            let mut column_of = |e: &Expr| match pre.iter().position(|x| x == e) {
                Some(c) => c,
                None => {
                    pre.push(e.clone());
                    pre.len() - 1
                }
            };
            let mut calls = Vec::new();
            for a in &aggs {
                calls.push(AggCall {
                    kind: a.kind,
                    arg: a.arg.as_ref().map(&mut column_of),
                    distinct: a.distinct,
                    ret: a.ret,
                    filter: a.filter.as_ref().map(&mut column_of),
                    order_by: a
                        .order_by
                        .iter()
                        .map(|(e, order)| SortKey {
                            column: column_of(e),
                            order: *order,
                        })
                        .collect(),
                });
            }
            plan = BatchPlan::Project {
                input: Box::new(plan),
                exprs: pre,
            };
            plan = BatchPlan::HashAgg {
                input: Box::new(plan),
                group_keys: (0..g).collect(),
                aggs: calls,
            };
            if let Some(h) = having {
                plan = BatchPlan::Filter {
                    input: Box::new(plan),
                    predicate: coerce(h, DataType::Boolean)?,
                };
            }
        }
        let types: Vec<DataType> = exprs.iter().map(|(e, _)| e.data_type()).collect();
        plan = BatchPlan::Project {
            input: Box::new(plan),
            exprs: exprs.iter().map(|(e, _)| e.clone()).collect(),
        };
        if matches!(s.distinct, Some(ast::Distinct::Distinct)) {
            if exprs.len() > visible {
                return Err(PlanError::Syntax(
                    "for SELECT DISTINCT, ORDER BY expressions must appear in select list".into(),
                ));
            }
            plan = distinct(plan);
        } else if let Some(keys) = distinct_on {
            // The first row of each DISTINCT ON group in ORDER BY order: every column's
            // first value in that order (ties broken alike for all of them).
            let n = exprs.len();
            let g = keys.len();
            let firsts = (0..n)
                .map(|c| AggCall {
                    order_by: sort_keys.clone(),
                    ..AggCall::new(AggKind::FirstValue, Some(c), types[c])
                })
                .collect();
            plan = BatchPlan::HashAgg {
                input: Box::new(plan),
                group_keys: keys,
                aggs: firsts,
            };
            plan = BatchPlan::Project {
                input: Box::new(plan),
                exprs: (0..n).map(|c| Expr::column(g + c, types[c])).collect(),
            };
        }
        if !sort_keys.is_empty() {
            plan = BatchPlan::Sort {
                input: Box::new(plan),
                keys: sort_keys,
            };
        }
        if exprs.len() > visible {
            plan = BatchPlan::Project {
                input: Box::new(plan),
                exprs: Expr::columns(&types[..visible]),
            };
        }
        let names = exprs.into_iter().take(visible).map(|(_, n)| n).collect();
        Ok(BoundQuery {
            plan,
            scope: output_scope(names, &types[..visible]),
        })
    }
}

/// The value of an expression without column references.
/// Whether a join by `op` keeps every row of its left side.
pub(crate) fn keeps_left_rows(op: &ast::JoinOperator) -> bool {
    !matches!(
        op,
        ast::JoinOperator::Right(_)
            | ast::JoinOperator::RightOuter(_)
            | ast::JoinOperator::FullOuter(_)
    )
}

/// The value of constant expression `e`.
fn constant(e: Expr) -> PlanResult<Datum> {
    e.eval_constant()
        .map_err(|e| PlanError::InvalidArgument(e.to_string()))
}

/// The one column of a series, named after its function (or its alias).
/// One row without columns (a query without FROM).
fn one_row() -> (BatchPlan, Scope) {
    (
        BatchPlan::Values {
            rows: vec![vec![]],
            types: vec![],
        },
        Scope::default(),
    )
}

/// The array a set-returning function's rows come from: `unnest(array)` its argument,
/// `generate_series(start, stop [, step])` of integers a generated array. `None` where
/// `generate_series` in FROM has only constant arguments (then a literal series, see
/// `bind_series`).
fn set_function_array(function: &str, args: Vec<Expr>, in_from: bool) -> PlanResult<Option<Expr>> {
    let signature = |args: &[Expr]| {
        format!(
            "function {function}({}) does not exist",
            args.iter()
                .map(|a| a.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match function {
        "unnest" => match <[Expr; 1]>::try_from(args) {
            Ok([a]) if a.data_type().element().is_some() => Ok(Some(a)),
            Ok([a]) if is_untyped_literal(&a) => {
                Ok(Some(coerce(a, DataType::list(DataType::Varchar))?))
            }
            Ok(a) => Err(PlanError::UndefinedFunction(signature(&a))),
            Err(a) => Err(PlanError::UndefinedFunction(signature(&a))),
        },
        "generate_series" => {
            if in_from && args.iter().all(|a| a.input_columns().is_empty()) {
                return Ok(None);
            }
            if !(2..=3).contains(&args.len()) || !args.iter().all(|a| a.data_type().is_integer()) {
                return Err(PlanError::UndefinedFunction(signature(&args)));
            }
            let ty = if args.iter().any(|a| a.data_type() == DataType::Int64) {
                DataType::Int64
            } else {
                DataType::Int32
            };
            let args = args
                .into_iter()
                .map(|a| coerce(a, ty))
                .collect::<PlanResult<Vec<_>>>()?;
            Ok(Some(Expr::Func {
                func: Func::SeriesArray,
                args,
                ty: DataType::list(ty),
            }))
        }
        _ => Ok(None),
    }
}

fn series_scope(function: &str, ty: DataType, alias: Option<&ast::TableAlias>) -> Scope {
    let mut scope = Scope {
        columns: vec![ScopeColumn {
            table: Some(function.to_string()),
            name: function.to_string(),
            ty,
            hidden: false,
            outer: false,
        }],
    };
    if let Some(alias) = alias {
        apply_alias(&mut scope, alias);
        // A one-column function's alias names its column too, as in PostgreSQL.
        if alias.columns.is_empty() {
            scope.columns[0].name = ident_name(&alias.name);
        }
    }
    scope
}

/// One column of a select list: an expression with its output name, or a scope column a `*`
/// expands to.
enum SelectColumn<'a> {
    Expr(&'a ast::Expr, String),
    Star(usize),
}

/// The name of scope column `col`, qualified by its table where it has one.
fn star_column_name(scope: &Scope, col: usize) -> ast::Expr {
    let c = &scope.columns[col];
    ast::Expr::CompoundIdentifier(vec![
        ast::Ident::new(c.table.clone().unwrap_or_default()),
        ast::Ident::new(c.name.clone()),
    ])
}

/// What a GROUP BY item groups by, as PostgreSQL reads it: a position is that column of the
/// select list, and a bare name that is no input column is the select list's column of
/// that name; anything else is itself.
fn group_item(
    g: &ast::Expr,
    select_list: &[SelectColumn],
    scope: &Scope,
    params: &Params,
) -> PlanResult<ast::Expr> {
    let column = |c: &SelectColumn| match c {
        SelectColumn::Expr(e, _) => (*e).clone(),
        SelectColumn::Star(col) => star_column_name(scope, *col),
    };
    match g {
        ast::Expr::Value(ast::ValueWithSpan {
            value: ast::Value::Number(n, _),
            ..
        }) => list_position(n, select_list.len())
            .map(|p| column(&select_list[p]))
            .ok_or_else(|| {
                PlanError::InvalidColumnReference(format!(
                    "GROUP BY position {n} is not in select list"
                ))
            }),
        ast::Expr::Identifier(id)
            if matches!(
                ExprBinder::bind_plain(scope, params, g),
                Err(PlanError::UndefinedColumn(_))
            ) =>
        {
            let name = ident_name(id);
            let named: Vec<&SelectColumn> = select_list
                .iter()
                .filter(|c| matches!(c, SelectColumn::Expr(_, n) if *n == name))
                .collect();
            Ok(match named.as_slice() {
                [one] => column(one),
                _ => g.clone(),
            })
        }
        _ => Ok(g.clone()),
    }
}

/// The index of the 1-based position `n` (as written) in a list of `len` columns.
fn list_position(n: &str, len: usize) -> Option<usize> {
    n.parse::<usize>()
        .ok()
        .filter(|p| (1..=len).contains(p))
        .map(|p| p - 1)
}
