//! Rule-based rewrites of bound plans, run on every query, DML source and view definition:
//!
//! - **constant folding**: expressions without column references are evaluated once; a filter
//!   that is always true disappears, one that is never true becomes an empty input;
//! - **predicate pushdown**: filter conjuncts move below projections, sorts, unions, and group
//!   keys of aggregations, into the inputs of joins (as far as outer joins allow), and
//!   column equalities across a join become its hash keys — so `FROM a, b WHERE a.x = b.y` is a
//!   hash join, not a filtered cross product;
//! - **projection pruning**: every node produces only the columns something above reads, so
//!   scans decode only the columns a query needs;
//! - **shared filter expressions**: a function call that a filter evaluates on every row and
//!   the projection above it computes again is computed once, in a projection below the
//!   filter (`SELECT f(x) ... WHERE f(x) ...`).
//!
//! Every rewrite keeps the plan's output columns as they were.

use dataflow::batch::plan::{BatchPlan, JoinKind};
use dataflow::expr::{BinaryOp, Expr};
use dataflow::types::{DataType, Datum};

/// The optimized form of `plan`, with the same output columns.
pub(crate) fn optimize(plan: BatchPlan) -> BatchPlan {
    let plan = push_down(plan, Vec::new());
    let width = plan.output_types().len();
    let (plan, _) = prune(plan, &(0..width).collect::<Vec<_>>());
    share_filter_exprs(plan)
}

/// `plan` with each projection over a filter computing once, below the filter, the function
/// calls both evaluate (see [`shared_exprs`]); the filter and the projection read them as
/// columns.
fn share_filter_exprs(plan: BatchPlan) -> BatchPlan {
    let plan = plan.map_inputs(&mut share_filter_exprs);
    let BatchPlan::Project { input, exprs } = plan else {
        return plan;
    };
    let BatchPlan::Filter {
        input: below,
        predicate,
    } = *input
    else {
        return BatchPlan::Project { input, exprs };
    };
    let mut shared = Vec::new();
    shared_exprs(&predicate, &exprs, &mut shared);
    if shared.is_empty() {
        return BatchPlan::Project {
            input: Box::new(BatchPlan::Filter {
                input: below,
                predicate,
            }),
            exprs,
        };
    }
    let types = below.output_types();
    let width = types.len();
    let mut computed = Expr::columns(&types);
    computed.extend(shared.iter().cloned());
    let read = |e: Expr| read_shared(e, &shared, width);
    BatchPlan::Project {
        input: Box::new(BatchPlan::Filter {
            input: Box::new(project(*below, computed)),
            predicate: read(predicate),
        }),
        exprs: exprs.into_iter().map(read).collect(),
    }
}

/// Adds to `out` the largest sub-expressions of `predicate` that it evaluates on every row
/// (not in a CASE's later conditions or values, nor a COALESCE's later arguments, which only
/// some rows reach: computing those for every row could fail where the query does not),
/// that call a function, are not volatile, and occur in one of `exprs`.
fn shared_exprs(predicate: &Expr, exprs: &[Expr], out: &mut Vec<Expr>) {
    if calls_function(predicate)
        && !predicate.is_volatile()
        && exprs.iter().any(|e| occurs_in(predicate, e))
    {
        if !out.contains(predicate) {
            out.push(predicate.clone());
        }
        return;
    }
    match predicate {
        Expr::Case { branches, .. } => {
            if let Some((first, _)) = branches.first() {
                shared_exprs(first, exprs, out);
            }
        }
        Expr::Coalesce { args, .. } => {
            if let Some(first) = args.first() {
                shared_exprs(first, exprs, out);
            }
        }
        _ => {
            for child in predicate.children() {
                shared_exprs(child, exprs, out);
            }
        }
    }
}

/// Whether `e` calls a function (what is worth computing once; an operator or a cast is
/// cheaper to compute again than to carry as a column).
fn calls_function(e: &Expr) -> bool {
    matches!(e, Expr::Func { .. }) || e.children().into_iter().any(calls_function)
}

/// Whether `part` is `e` or one of its sub-expressions.
fn occurs_in(part: &Expr, e: &Expr) -> bool {
    part == e || e.children().into_iter().any(|c| occurs_in(part, c))
}

/// `e` reading each of `shared` as column `width + i` (its position after the input's).
fn read_shared(e: Expr, shared: &[Expr], width: usize) -> Expr {
    match shared.iter().position(|s| *s == e) {
        Some(i) => Expr::column(width + i, e.data_type()),
        None => e.map_children(&mut |c| read_shared(c, shared, width)),
    }
}

/// `e` with every column-free, non-volatile sub-expression evaluated. Sub-expressions whose
/// evaluation fails (`1 / 0`) are left for the executor to report when it runs them.
pub(crate) fn fold(e: Expr) -> Expr {
    if matches!(e, Expr::Literal { .. } | Expr::Column { .. }) {
        return e;
    }
    if e.input_columns().is_empty() && !e.is_volatile() {
        if let Ok(value) = e.eval_constant() {
            return Expr::literal(value, e.data_type());
        }
        return e;
    }
    e.map_children(&mut fold)
}

/// The conjuncts of `e`, folded; `true` conjuncts are dropped.
fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    for c in e.conjuncts() {
        match fold(c) {
            Expr::Literal {
                value: Datum::Bool(true),
                ..
            } => {}
            folded => out.push(folded),
        }
    }
}

/// Whether the predicate can never be true (a constant false or NULL).
fn never_true(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Literal {
            value: Datum::Bool(false) | Datum::Null,
            ..
        }
    )
}

/// `plan` filtered by `preds` (none: `plan` itself; a never-true one: no rows).
fn filtered(plan: BatchPlan, preds: Vec<Expr>) -> BatchPlan {
    if preds.iter().any(never_true) {
        return BatchPlan::Values {
            rows: vec![],
            types: plan.output_types(),
        };
    }
    match Expr::and_all(preds) {
        Some(predicate) => BatchPlan::Filter {
            input: Box::new(plan),
            predicate,
        },
        None => plan,
    }
}

/// Pushes the conjuncts `preds` (over `plan`'s output) as deep into `plan` as they may go.
fn push_down(plan: BatchPlan, mut preds: Vec<Expr>) -> BatchPlan {
    // A predicate without columns or with a volatile function stays where it was written.
    let movable = |p: &Expr| !p.input_columns().is_empty() && !p.is_volatile();
    match plan {
        BatchPlan::Filter { input, predicate } => {
            conjuncts(predicate, &mut preds);
            let (down, keep): (Vec<_>, Vec<_>) = preds.into_iter().partition(movable);
            filtered(push_down(*input, down), keep)
        }
        BatchPlan::Project { input, exprs } => {
            let exprs: Vec<Expr> = exprs.into_iter().map(fold).collect();
            let (down, keep): (Vec<_>, Vec<_>) = preds.into_iter().partition(|p| {
                movable(p) && p.input_columns().iter().all(|c| !exprs[*c].is_volatile())
            });
            let down = down
                .into_iter()
                .map(|p| fold(p.substitute(&exprs)))
                .collect();
            filtered(
                BatchPlan::Project {
                    input: Box::new(push_down(*input, down)),
                    exprs,
                },
                keep,
            )
        }
        BatchPlan::Sort { input, keys } => BatchPlan::Sort {
            input: Box::new(push_down(*input, preds)),
            keys,
        },
        BatchPlan::UnionAll { inputs } => BatchPlan::UnionAll {
            inputs: inputs
                .into_iter()
                .map(|i| push_down(i, preds.clone()))
                .collect(),
        },
        BatchPlan::HashAgg {
            input,
            group_keys,
            aggs,
        } => {
            let g = group_keys.len();
            let (down, keep): (Vec<_>, Vec<_>) = preds
                .into_iter()
                .partition(|p| movable(p) && p.input_columns().iter().all(|c| *c < g));
            let down = down
                .into_iter()
                .map(|p| p.map_columns(&|c| group_keys[c]))
                .collect();
            filtered(
                BatchPlan::HashAgg {
                    input: Box::new(push_down(*input, down)),
                    group_keys,
                    aggs,
                },
                keep,
            )
        }
        BatchPlan::HashJoin {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            condition,
        } => push_into_join(*left, *right, kind, left_keys, right_keys, condition, preds),
        BatchPlan::Limit {
            input,
            limit,
            offset,
        } => filtered(
            BatchPlan::Limit {
                input: Box::new(push_down(*input, Vec::new())),
                limit,
                offset,
            },
            preds,
        ),
        // Whole partitions may be filtered before ranking; anything else is filtered after.
        BatchPlan::OverWindow {
            input,
            partition_by,
            order_by,
            calls,
        } => {
            let (down, keep): (Vec<_>, Vec<_>) = preds.into_iter().partition(|p| {
                movable(p) && p.input_columns().iter().all(|c| partition_by.contains(c))
            });
            filtered(
                BatchPlan::OverWindow {
                    input: Box::new(push_down(*input, down)),
                    partition_by,
                    order_by,
                    calls,
                },
                keep,
            )
        }
        BatchPlan::MaxOneRow { input } => filtered(
            BatchPlan::MaxOneRow {
                input: Box::new(push_down(*input, Vec::new())),
            },
            preds,
        ),
        BatchPlan::Unnest { input, list } => filtered(
            BatchPlan::Unnest {
                input: Box::new(push_down(*input, Vec::new())),
                list,
            },
            preds,
        ),
        leaf @ (BatchPlan::Scan { .. } | BatchPlan::Values { .. } | BatchPlan::Source { .. }) => {
            filtered(leaf, preds)
        }
    }
}

/// Which inputs of a join a predicate reads.
#[derive(PartialEq)]
enum Side {
    Left,
    Right,
    Both,
}

fn side(p: &Expr, left_width: usize) -> Side {
    let cols = p.input_columns();
    if cols.iter().all(|c| *c < left_width) {
        Side::Left
    } else if cols.iter().all(|c| *c >= left_width) {
        Side::Right
    } else {
        Side::Both
    }
}

/// `l = r` of a left column and a right column of one type: (left column, right column).
fn equi_key(p: &Expr, left_width: usize) -> Option<(usize, usize)> {
    let Expr::Binary {
        op: BinaryOp::Eq,
        left,
        right,
    } = p
    else {
        return None;
    };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column { index: a, ty: ta }, Expr::Column { index: b, ty: tb })
            if ta == tb && (*a < left_width) != (*b < left_width) =>
        {
            Some(if *a < left_width {
                (*a, *b - left_width)
            } else {
                (*b, *a - left_width)
            })
        }
        _ => None,
    }
}

/// A join with the filter conjuncts `preds` above it: single-side conjuncts go into the inputs
/// the join kind allows (those of the side whose rows it never pads with NULLs), equalities
/// across the sides of an inner join become hash keys, and the join's own condition gives its
/// conjuncts on the padded side to that input.
#[allow(clippy::too_many_arguments)]
fn push_into_join(
    left: BatchPlan,
    right: BatchPlan,
    kind: JoinKind,
    mut left_keys: Vec<usize>,
    mut right_keys: Vec<usize>,
    condition: Option<Expr>,
    preds: Vec<Expr>,
) -> BatchPlan {
    let lw = left.output_types().len();
    let (mut to_left, mut to_right, mut on, mut above) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    use JoinKind::*;
    // A filter above the join may enter an input whose rows the join never pads with NULLs;
    // a conjunct of the join's own condition may enter an input whose unmatched rows the join
    // drops.
    let filter_into = |s: &Side| match s {
        Side::Left => matches!(kind, Inner | LeftOuter | LeftSemi | LeftAnti),
        Side::Right => matches!(kind, Inner | RightOuter),
        Side::Both => kind == Inner,
    };
    let condition_into = |s: &Side| match s {
        Side::Left => matches!(kind, Inner | RightOuter | LeftSemi),
        Side::Right => matches!(kind, Inner | LeftOuter | LeftSemi | LeftAnti),
        Side::Both => false,
    };
    let fixed = |p: &Expr| p.is_volatile() || p.input_columns().is_empty();
    for p in preds {
        let s = side(&p, lw);
        if fixed(&p) || !filter_into(&s) {
            above.push(p);
            continue;
        }
        match s {
            Side::Left => to_left.push(p),
            Side::Right => to_right.push(p),
            Side::Both => on.push(p),
        }
    }
    let mut own = Vec::new();
    if let Some(c) = condition {
        conjuncts(c, &mut own);
    }
    for p in own {
        let s = side(&p, lw);
        if fixed(&p) || !condition_into(&s) {
            on.push(p);
            continue;
        }
        match s {
            Side::Left => to_left.push(p),
            _ => to_right.push(p),
        }
    }
    let mut condition = Vec::new();
    for p in on {
        match equi_key(&p, lw) {
            Some((l, r)) => {
                left_keys.push(l);
                right_keys.push(r);
            }
            None => condition.push(p),
        }
    }
    let to_right = to_right
        .into_iter()
        .map(|p| p.map_columns(&|c| c - lw))
        .collect();
    filtered(
        BatchPlan::HashJoin {
            left: Box::new(push_down(left, to_left)),
            right: Box::new(push_down(right, to_right)),
            kind,
            left_keys,
            right_keys,
            condition: Expr::and_all(condition),
        },
        above,
    )
}

/// `plan` reduced to the output columns `required` (ascending, no repeats), and for each of
/// its original output columns the new position (`None` if dropped).
fn prune(plan: BatchPlan, required: &[usize]) -> (BatchPlan, Vec<Option<usize>>) {
    let width = plan.output_types().len();
    let mapping = |kept: &[usize]| {
        let mut m = vec![None; width];
        for (new, old) in kept.iter().enumerate() {
            m[*old] = Some(new);
        }
        m
    };
    let remap = |e: Expr, m: &[Option<usize>]| e.map_columns(&|c| m[c].expect("kept column"));
    let union = |a: &[usize], b: Vec<usize>| {
        let mut all: Vec<usize> = a.iter().copied().chain(b).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    match plan {
        BatchPlan::Scan { table, columns } => (
            BatchPlan::Scan {
                table,
                columns: required.iter().map(|c| columns[*c]).collect(),
            },
            mapping(required),
        ),
        BatchPlan::Source {
            source_id,
            source,
            columns,
        } => (
            BatchPlan::Source {
                source_id,
                source,
                columns: required.iter().map(|c| columns[*c]).collect(),
            },
            mapping(required),
        ),
        BatchPlan::Values { rows, types } => (
            BatchPlan::Values {
                rows: rows
                    .into_iter()
                    .map(|row| required.iter().map(|c| row[*c].clone()).collect())
                    .collect(),
                types: required.iter().map(|c| types[*c]).collect(),
            },
            mapping(required),
        ),
        BatchPlan::Project { input, exprs } => {
            let kept: Vec<Expr> = required.iter().map(|c| exprs[*c].clone()).collect();
            let need = union(&[], kept.iter().flat_map(Expr::input_columns).collect());
            let (input, m) = prune(*input, &need);
            (
                project(input, kept.into_iter().map(|e| remap(e, &m)).collect()),
                mapping(required),
            )
        }
        BatchPlan::Filter { input, predicate } => {
            let need = union(required, predicate.input_columns());
            let (input, m) = prune(*input, &need);
            let plan = BatchPlan::Filter {
                input: Box::new(input),
                predicate: remap(predicate, &m),
            };
            select(plan, &need, required, width)
        }
        BatchPlan::Sort { input, keys } => {
            let need = union(required, keys.iter().map(|k| k.column).collect());
            let (input, m) = prune(*input, &need);
            let keys = keys
                .into_iter()
                .map(|mut k| {
                    k.column = m[k.column].expect("sort key kept");
                    k
                })
                .collect();
            let plan = BatchPlan::Sort {
                input: Box::new(input),
                keys,
            };
            select(plan, &need, required, width)
        }
        BatchPlan::Limit {
            input,
            limit,
            offset,
        } => {
            let (input, m) = prune(*input, required);
            (
                BatchPlan::Limit {
                    input: Box::new(input),
                    limit,
                    offset,
                },
                m,
            )
        }
        BatchPlan::OverWindow {
            input,
            partition_by,
            order_by,
            calls,
        } => {
            let input_width = input.output_types().len();
            let need = union(
                &partition_by,
                required
                    .iter()
                    .filter(|c| **c < input_width)
                    .copied()
                    .chain(order_by.iter().map(|k| k.column))
                    .chain(calls.iter().filter_map(|c| c.input_column()))
                    .collect(),
            );
            let (input, m) = prune(*input, &need);
            let plan = BatchPlan::OverWindow {
                input: Box::new(input),
                partition_by: partition_by
                    .iter()
                    .map(|c| m[*c].expect("partition column kept"))
                    .collect(),
                order_by: order_by
                    .into_iter()
                    .map(|mut k| {
                        k.column = m[k.column].expect("order column kept");
                        k
                    })
                    .collect(),
                calls: calls
                    .iter()
                    .map(|c| c.map_column(|i| m[i].expect("argument column kept")))
                    .collect(),
            };
            let produced: Vec<usize> = need
                .iter()
                .copied()
                .chain((0..calls.len()).map(|i| input_width + i))
                .collect();
            select(plan, &produced, required, width)
        }
        BatchPlan::Unnest { input, list } => {
            let width = input.output_types().len();
            let kept: Vec<usize> = required.iter().copied().filter(|c| *c < width).collect();
            let need = union(&kept, list.input_columns());
            let (input, m) = prune(*input, &need);
            let plan = BatchPlan::Unnest {
                input: Box::new(input),
                list: remap(list, &m),
            };
            let produced: Vec<usize> = need.iter().copied().chain([width]).collect();
            select(plan, &produced, required, width + 1)
        }
        BatchPlan::MaxOneRow { input } => {
            let (input, m) = prune(*input, required);
            (
                BatchPlan::MaxOneRow {
                    input: Box::new(input),
                },
                m,
            )
        }
        BatchPlan::UnionAll { inputs } => {
            let inputs = inputs.into_iter().map(|i| prune(i, required).0).collect();
            (BatchPlan::UnionAll { inputs }, mapping(required))
        }
        BatchPlan::HashAgg {
            input,
            group_keys,
            aggs,
        } => {
            // Group keys decide the groups, so all stay; unread aggregates go.
            let g = group_keys.len();
            let kept_aggs: Vec<usize> = required
                .iter()
                .filter(|c| **c >= g)
                .map(|c| c - g)
                .collect();
            let need = union(
                &group_keys,
                kept_aggs
                    .iter()
                    .flat_map(|a| aggs[*a].input_columns())
                    .collect(),
            );
            let (input, m) = prune(*input, &need);
            let plan = BatchPlan::HashAgg {
                input: Box::new(input),
                group_keys: group_keys
                    .iter()
                    .map(|k| m[*k].expect("group key kept"))
                    .collect(),
                aggs: kept_aggs
                    .iter()
                    .map(|a| aggs[*a].clone().map_columns(|c| m[c].expect("input kept")))
                    .collect(),
            };
            let produced: Vec<usize> = (0..g).chain(kept_aggs.iter().map(|a| a + g)).collect();
            select(plan, &produced, required, width)
        }
        BatchPlan::HashJoin {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            condition,
        } => {
            let lw = left.output_types().len();
            let cond_cols = condition
                .as_ref()
                .map(Expr::input_columns)
                .unwrap_or_default();
            let need_left = union(
                &left_keys,
                required
                    .iter()
                    .chain(&cond_cols)
                    .filter(|c| **c < lw)
                    .copied()
                    .collect(),
            );
            let need_right = union(
                &right_keys,
                required
                    .iter()
                    .chain(&cond_cols)
                    .filter(|c| **c >= lw)
                    .map(|c| c - lw)
                    .collect(),
            );
            let (left, lm) = prune(*left, &need_left);
            let (right, rm) = prune(*right, &need_right);
            let new_lw = need_left.len();
            let joined = |c: usize| {
                if c < lw {
                    lm[c].expect("kept")
                } else {
                    new_lw + rm[c - lw].expect("kept")
                }
            };
            let plan = BatchPlan::HashJoin {
                left: Box::new(left),
                right: Box::new(right),
                kind,
                left_keys: left_keys
                    .iter()
                    .map(|k| lm[*k].expect("key kept"))
                    .collect(),
                right_keys: right_keys
                    .iter()
                    .map(|k| rm[*k].expect("key kept"))
                    .collect(),
                condition: condition.map(|c| c.map_columns(&joined)),
            };
            let produced: Vec<usize> = need_left
                .iter()
                .copied()
                .chain(
                    need_right
                        .iter()
                        .map(|c| c + lw)
                        .filter(|_| kind.outputs_right()),
                )
                .collect();
            select(plan, &produced, required, width)
        }
    }
}

/// `plan` produces the original columns `produced` (ascending); narrow it to `required`
/// (a subset) with a projection when they differ.
fn select(
    plan: BatchPlan,
    produced: &[usize],
    required: &[usize],
    width: usize,
) -> (BatchPlan, Vec<Option<usize>>) {
    let mut m = vec![None; width];
    for (new, old) in required.iter().enumerate() {
        m[*old] = Some(new);
    }
    if produced == required {
        return (plan, m);
    }
    let types: Vec<DataType> = plan.output_types();
    let exprs: Vec<Expr> = required
        .iter()
        .map(|c| {
            let at = produced
                .iter()
                .position(|p| p == c)
                .expect("required columns are produced");
            Expr::column(at, types[at])
        })
        .collect();
    (project(plan, exprs), m)
}

/// `exprs` over `input`: nothing when they list the input's columns in order, one projection
/// when `input` is itself a projection whose computed columns are each read at most once.
fn project(input: BatchPlan, exprs: Vec<Expr>) -> BatchPlan {
    let types = input.output_types();
    let identity = exprs.len() == types.len()
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e, Expr::Column { index, .. } if *index == i));
    if identity {
        return input;
    }
    match input {
        BatchPlan::Project {
            input: inner,
            exprs: inner_exprs,
        } if mergeable(&exprs, &inner_exprs) => project(
            *inner,
            exprs
                .into_iter()
                .map(|e| e.substitute(&inner_exprs))
                .collect(),
        ),
        input => BatchPlan::Project {
            input: Box::new(input),
            exprs,
        },
    }
}

/// Whether `outer` may be rewritten over the input of `inner` without computing anything
/// twice: every computed (non-column, non-constant) inner expression is read at most once,
/// and none is volatile.
fn mergeable(outer: &[Expr], inner: &[Expr]) -> bool {
    let mut reads = vec![0usize; inner.len()];
    fn count(e: &Expr, reads: &mut [usize]) {
        if let Expr::Column { index, .. } = e {
            reads[*index] += 1;
        }
        for c in e.children() {
            count(c, reads);
        }
    }
    for e in outer {
        count(e, &mut reads);
    }
    inner.iter().zip(&reads).all(|(e, n)| {
        !e.is_volatile() && (*n <= 1 || matches!(e, Expr::Column { .. } | Expr::Literal { .. }))
    })
}
