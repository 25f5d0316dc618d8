//! Streaming physical planning: a bound query (as a batch plan) becomes the plan of a job that
//! maintains it incrementally.
//!
//! Every node gets a stream key (columns that identify its rows) and a distribution. Columns
//! a node needs for its key but the query does not output are appended after the query's
//! columns; the view stores them as hidden columns. Exchanges are placed where an operator
//! needs rows of one key in one actor (aggregation by group key, join by join key, top-N in a
//! single actor). The distribution key is always part of the stream key, so all changes of
//! one row take one path and stay in order.

use std::collections::HashMap;

use dataflow::batch::plan::{AggCall, AggKind, BatchPlan, JoinKind, SortKey, WindowFunc};
use dataflow::expr::{BinaryOp, Expr};
use dataflow::func::Func;
use dataflow::stream::plan::{InequalityBound, StreamPlan};
use dataflow::types::{DataType, Datum};

use crate::catalog::ColumnCatalog;
use crate::error::{PlanError, PlanResult};

/// How a node's rows are spread over its fragment's actors.
#[derive(Clone, Debug, PartialEq)]
enum Dist {
    /// One actor.
    Single,
    /// By the vnode of these columns.
    Hash(Vec<usize>),
    /// Each stream key in one actor, by no column set a parent can rely on.
    Any,
}

struct Node {
    plan: StreamPlan,
    /// Stream key columns.
    key: Vec<usize>,
    dist: Dist,
    /// Output columns of the batch plan it came from; more columns may follow.
    width: usize,
}

impl Node {
    fn types(&self) -> Vec<DataType> {
        self.plan.output_types()
    }
}

/// A view's streaming plan and storage layout.
#[derive(Clone, Debug)]
pub struct ViewPlan {
    /// The job's plan (its root's output is the view's rows).
    pub plan: StreamPlan,
    /// The view's columns: the query's, then hidden key columns.
    pub columns: Vec<ColumnCatalog>,
    /// Primary key: the stream key.
    pub pk: Vec<usize>,
    /// Ids used for the operators' state tables: `first_state_table..next_table_id`.
    pub next_table_id: u32,
    /// One actor computes every row (see [`crate::ViewCatalog::singleton`]).
    pub singleton: bool,
}

/// What a view's planner knows of the tables and views the view may read.
#[derive(Clone, Debug, Default)]
pub struct Upstreams {
    /// Ids of the tables that only take inserts (operators over them need less state).
    pub append_only: Vec<u32>,
    /// The columns of each table or view that get watermarks, by id (see
    /// [`StreamPlan::watermark_columns`]).
    pub watermarks: HashMap<u32, Vec<usize>>,
}

/// `lower <= upper` with a constant time shift moved from `upper` to `lower`
/// (`y <= x + INTERVAL '2' SECOND` as `y - INTERVAL '2' SECOND <= x`), so that `upper` is a
/// plain column, whose output watermark an interval join can then give. Only shifts without
/// months move: adding a month is not undone by subtracting one (month ends clamp).
fn column_upper(lower: Expr, upper: Expr) -> (Expr, Expr) {
    let Expr::Func {
        func: Func::AddInterval,
        args,
        ty,
    } = &upper
    else {
        return (lower, upper);
    };
    let [time @ Expr::Column { ty: column_ty, .. }, shift] = args.as_slice() else {
        return (lower, upper);
    };
    let constant = shift.input_columns().is_empty() && !shift.is_volatile();
    let Some(Datum::Interval {
        months: 0,
        days,
        nanos,
    }) = constant.then(|| shift.eval_constant().ok()).flatten()
    else {
        return (lower, upper);
    };
    if column_ty != ty || lower.data_type() != *ty {
        return (lower, upper);
    }
    let back = Datum::Interval {
        months: 0,
        days: -days,
        nanos: -nanos,
    };
    let lower = Expr::Func {
        func: Func::AddInterval,
        args: vec![lower, Expr::literal(back, DataType::Interval)],
        ty: *ty,
    };
    (lower, time.clone())
}

struct Planner {
    next_table_id: u32,
    next_exchange_id: u32,
    upstreams: Upstreams,
}

impl Planner {
    /// Whether `plan` only ever inserts rows: sources, append-only tables, literal rows and
    /// local aggregations' partial results, and filters, projections, unnests, exchanges, unions and inner joins of such inputs.
    fn append_only(&self, plan: &StreamPlan) -> bool {
        match plan {
            StreamPlan::Source { .. } | StreamPlan::Values { .. } | StreamPlan::LocalAgg { .. } => {
                true
            }
            StreamPlan::Scan { upstream_id, .. } => {
                self.upstreams.append_only.contains(upstream_id)
            }
            StreamPlan::Filter { input, .. }
            | StreamPlan::Project { input, .. }
            | StreamPlan::Unnest { input, .. }
            | StreamPlan::Exchange { input, .. } => self.append_only(input),
            StreamPlan::Union { inputs } => inputs.iter().all(|i| self.append_only(i)),
            StreamPlan::HashJoin {
                left,
                right,
                kind: JoinKind::Inner,
                ..
            } => self.append_only(left) && self.append_only(right),
            _ => false,
        }
    }

    /// The columns of `plan`'s output that get watermarks.
    fn watermark_columns(&self, plan: &StreamPlan) -> Vec<usize> {
        plan.watermark_columns(&|id| {
            self.upstreams
                .watermarks
                .get(&id)
                .cloned()
                .unwrap_or_default()
        })
    }

    /// The bounds `condition` (over the left columns, `left_width` of them, then the right
    /// ones) puts on each side's rows by the other side's watermark columns `watermarks` (see
    /// [`InequalityBound`]), at most one per side: an interval join's state cleaning.
    fn inequality_bounds(
        &mut self,
        condition: &Expr,
        left_width: usize,
        watermarks: [Vec<usize>; 2],
    ) -> Vec<InequalityBound> {
        // The side an expression reads only, if it reads columns of one side and is not
        // volatile; and the expression over that side's own columns.
        let side_of = |e: &Expr| -> Option<usize> {
            let columns = e.input_columns();
            if columns.is_empty() || e.is_volatile() {
                None
            } else if columns.iter().all(|c| *c < left_width) {
                Some(0)
            } else if columns.iter().all(|c| *c >= left_width) {
                Some(1)
            } else {
                None
            }
        };
        let local = |e: Box<Expr>, side: usize| {
            if side == 0 {
                *e
            } else {
                e.map_columns(&|i| i - left_width)
            }
        };
        let mut out: Vec<InequalityBound> = Vec::new();
        for conjunct in condition.clone().conjuncts() {
            let Expr::Binary { op, left, right } = conjunct else {
                continue;
            };
            let (lower, upper) = match op {
                BinaryOp::Lt | BinaryOp::LtEq => (left, right),
                BinaryOp::Gt | BinaryOp::GtEq => (right, left),
                _ => continue,
            };
            let (Some(u), Some(v)) = (side_of(&lower), side_of(&upper)) else {
                continue;
            };
            if u == v || out.iter().any(|b| b.side == v) {
                continue;
            }
            let lower = local(lower, u);
            let Some(column) = lower
                .input_columns()
                .first()
                .copied()
                .filter(|c| watermarks[u].contains(c) && lower.is_monotone_in(*c))
            else {
                continue;
            };
            let (lower, upper) = column_upper(lower, local(upper, v));
            out.push(InequalityBound {
                side: v,
                upper,
                watermark_column: column,
                lower,
                table: self.table_id(),
            });
        }
        out
    }

    /// `node`'s rows held until the watermark of one of its columns passes them (`EMIT ON
    /// WINDOW CLOSE`): a column of its stream key (a window's start) if one has a watermark.
    fn emit_on_window_close(&mut self, node: Node) -> PlanResult<Node> {
        let marked = self.watermark_columns(&node.plan);
        let column = node
            .key
            .iter()
            .copied()
            .find(|k| marked.contains(k))
            .or_else(|| marked.first().copied())
            .ok_or_else(|| {
                PlanError::NotSupported(
                    "EMIT ON WINDOW CLOSE without a watermark on an output column (group a \
                     window aggregation by the window of a table or source with WATERMARK FOR)"
                        .into(),
                )
            })?;
        // The held rows are keyed by (column, stream key) and distributed as the input is:
        // by columns of that key.
        let keyed = |d: &Vec<usize>| d.iter().all(|c| *c == column || node.key.contains(c));
        let node = match &node.dist {
            Dist::Single => node,
            Dist::Hash(d) if keyed(d) => node,
            _ => {
                let key = node.key.clone();
                self.exchange(node, Dist::Hash(key))
            }
        };
        let dist_key = match &node.dist {
            Dist::Hash(d) => d.clone(),
            _ => vec![],
        };
        let state_table = self.table_id();
        let Node {
            plan,
            key,
            dist,
            width,
        } = node;
        Ok(Node {
            plan: StreamPlan::EmitOnWindowClose {
                input: Box::new(plan),
                watermark_column: column,
                input_key: key.clone(),
                dist_key,
                state_table,
            },
            key,
            dist,
            width,
        })
    }

    fn table_id(&mut self) -> u32 {
        self.next_table_id += 1;
        self.next_table_id - 1
    }

    fn exchange(&mut self, node: Node, dist: Dist) -> Node {
        if node.dist == dist {
            return node;
        }
        let keys = match &dist {
            Dist::Hash(k) => k.clone(),
            _ => vec![],
        };
        self.next_exchange_id += 1;
        Node {
            plan: StreamPlan::Exchange {
                input: Box::new(node.plan),
                dist: keys,
                id: self.next_exchange_id - 1,
            },
            dist,
            ..node
        }
    }

    /// An aggregation over an input that only inserts, spread over several actors and not
    /// by the group keys: each actor aggregates its own rows of an epoch by group, and the
    /// actor of each group combines their partial results, instead of every row going to it.
    fn two_phase_agg(&mut self, input: Node, group_keys: Vec<usize>, aggs: Vec<AggCall>) -> Node {
        let g = group_keys.len();
        let local = Node {
            width: g + aggs.len(),
            plan: StreamPlan::LocalAgg {
                input: Box::new(input.plan),
                group_keys,
                aggs: aggs.clone(),
            },
            key: vec![],
            dist: Dist::Any,
        };
        let dist = if g == 0 {
            Dist::Single
        } else {
            Dist::Hash((0..g).collect())
        };
        let partials = self.exchange(local, dist.clone());
        let append_only = self.append_only(&partials.plan);
        let tables = (0..=aggs.len()).map(|_| self.table_id()).collect();
        let global = Node {
            width: g + aggs.len(),
            plan: StreamPlan::HashAgg {
                input: Box::new(partials.plan),
                group_keys: (0..g).collect(),
                aggs: aggs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| dataflow::stream::combining_call(c, g + i))
                    .collect(),
                input_key: vec![],
                tables,
                append_only,
                distinct_shared: true,
            },
            key: (0..g).collect(),
            dist,
        };
        if g > 0 {
            return global;
        }
        // Without groups, a count is 0, not NULL, before any partial result arrives.
        let exprs = aggs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let column = Expr::column(i, c.ret);
                match c.kind {
                    AggKind::CountStar | AggKind::Count => Expr::Coalesce {
                        args: vec![column, Expr::literal(Datum::Int64(0), DataType::Int64)],
                        ty: DataType::Int64,
                    },
                    _ => column,
                }
            })
            .collect();
        self.project(global, exprs)
    }

    /// Projects `exprs`, keeping the input's stream key (appended where not projected).
    fn project(&self, input: Node, mut exprs: Vec<Expr>) -> Node {
        let width = exprs.len();
        let types = input.types();
        let position = |exprs: &mut Vec<Expr>, c: usize| {
            exprs
                .iter()
                .position(|e| matches!(e, Expr::Column { index, .. } if *index == c))
                .unwrap_or_else(|| {
                    exprs.push(Expr::column(c, types[c]));
                    exprs.len() - 1
                })
        };
        let key: Vec<usize> = input.key.iter().map(|k| position(&mut exprs, *k)).collect();
        let dist = match input.dist {
            Dist::Hash(d) => Dist::Hash(d.iter().map(|c| position(&mut exprs, *c)).collect()),
            other => other,
        };
        Node {
            plan: StreamPlan::Project {
                input: Box::new(input.plan),
                exprs,
            },
            key,
            dist,
            width,
        }
    }

    fn plan(&mut self, batch: BatchPlan) -> PlanResult<Node> {
        Ok(match batch {
            BatchPlan::Values { rows, mut types } => {
                no_clock(rows.iter().flatten())?;
                let width = types.len();
                let rows = rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut row)| {
                        row.push(Expr::literal(Datum::Int64(i as i64), DataType::Int64));
                        row
                    })
                    .collect();
                types.push(DataType::Int64);
                Node {
                    plan: StreamPlan::Values {
                        rows,
                        types,
                        state_table: self.table_id(),
                    },
                    key: vec![width],
                    dist: Dist::Single,
                    width,
                }
            }
            // A source's rows are new on every read: its row id (the event's offset) keys
            // them. One actor generates a source of one split; parallel actors share out
            // the splits of two or more.
            BatchPlan::Source {
                source_id,
                source,
                mut columns,
            } => {
                let width = columns.len();
                let row_id = source.types().len() - 1;
                let key = vec![
                    columns
                        .iter()
                        .position(|c| *c == row_id)
                        .unwrap_or_else(|| {
                            columns.push(row_id);
                            columns.len() - 1
                        }),
                ];
                let types = source.types();
                let dist = if source.splits > 1 {
                    Dist::Any
                } else {
                    Dist::Single
                };
                let plan = StreamPlan::Source {
                    source_id,
                    source,
                    state_table: self.table_id(),
                };
                Node {
                    plan: StreamPlan::Project {
                        input: Box::new(plan),
                        exprs: columns
                            .iter()
                            .map(|c| Expr::column(*c, types[*c]))
                            .collect(),
                    },
                    key,
                    dist,
                    width,
                }
            }
            BatchPlan::Scan { table, mut columns } => {
                if columns.contains(&table.commit_time_column()) {
                    return Err(PlanError::NotSupported(format!(
                        "{} in a materialized view",
                        crate::catalog::COMMIT_TIME_COLUMN
                    )));
                }
                let width = columns.len();
                let mut key = Vec::new();
                for pk in &table.pk {
                    key.push(columns.iter().position(|c| c == pk).unwrap_or_else(|| {
                        columns.push(*pk);
                        columns.len() - 1
                    }));
                }
                Node {
                    plan: StreamPlan::Scan {
                        upstream_id: table.table_id,
                        table,
                        columns,
                        progress_table: self.table_id(),
                    },
                    key,
                    dist: Dist::Single,
                    width,
                }
            }
            // A filter on ranks, possibly below a projection choosing columns (as pruning
            // leaves it).
            BatchPlan::Filter { input, predicate } if is_group_top_n(&input, &predicate) => {
                let (over, exprs) = match *input {
                    BatchPlan::Project { input, exprs } => (*input, Some(exprs)),
                    over => (over, None),
                };
                let BatchPlan::OverWindow {
                    input,
                    partition_by,
                    order_by,
                    calls,
                } = over
                else {
                    unreachable!("is_ranking checked it")
                };
                let predicate = match &exprs {
                    Some(exprs) => predicate.substitute(exprs),
                    None => predicate,
                };
                let top = self.group_top_n(*input, partition_by, order_by, calls, predicate)?;
                match exprs {
                    Some(exprs) => self.project(top, exprs),
                    None => top,
                }
            }
            BatchPlan::Filter { input, predicate } => {
                no_clock([&predicate])?;
                let input = self.plan(*input)?;
                Node {
                    plan: StreamPlan::Filter {
                        input: Box::new(input.plan),
                        predicate,
                    },
                    ..input
                }
            }
            BatchPlan::Project { input, exprs } => {
                no_clock(&exprs)?;
                let input = self.plan(*input)?;
                self.project(input, exprs)
            }
            BatchPlan::HashAgg {
                input,
                group_keys,
                aggs,
            } => {
                if aggs.iter().any(|a| a.kind.is_ordered() && a.distinct) {
                    return Err(PlanError::NotSupported(
                        "array_agg or string_agg of DISTINCT values in a materialized view".into(),
                    ));
                }
                if aggs.iter().any(|a| a.kind == AggKind::SingleValue) {
                    return Err(PlanError::NotSupported(
                        "this correlated subquery in a materialized view".into(),
                    ));
                }
                let input = self.plan(*input)?;
                let dist = if group_keys.is_empty() {
                    Dist::Single
                } else {
                    Dist::Hash(group_keys.clone())
                };
                if input.dist != dist
                    && input.dist != Dist::Single
                    && self.append_only(&input.plan)
                    && dataflow::stream::splits_in_two(&aggs)
                {
                    return Ok(self.two_phase_agg(input, group_keys, aggs));
                }
                let input = self.exchange(input, dist.clone());
                let g = group_keys.len();
                let tables = (0..=aggs.len()).map(|_| self.table_id()).collect();
                Node {
                    width: g + aggs.len(),
                    plan: StreamPlan::HashAgg {
                        input_key: input.key.clone(),
                        append_only: self.append_only(&input.plan),
                        distinct_shared: true,
                        input: Box::new(input.plan),
                        group_keys,
                        aggs,
                        tables,
                    },
                    key: (0..g).collect(),
                    dist: if g == 0 {
                        Dist::Single
                    } else {
                        Dist::Hash((0..g).collect())
                    },
                }
            }
            BatchPlan::HashJoin {
                left,
                right,
                kind,
                left_keys,
                right_keys,
                condition,
            } => {
                let left = self.plan(*left)?;
                let right = self.plan(*right)?;
                let (ldist, rdist) = if left_keys.is_empty() {
                    (Dist::Single, Dist::Single)
                } else {
                    (
                        Dist::Hash(left_keys.clone()),
                        Dist::Hash(right_keys.clone()),
                    )
                };
                let left = self.exchange(left, ldist);
                let right = self.exchange(right, rdist);
                let (lw, lall) = (left.width, left.types().len());
                let (rw, rall) = (right.width, right.types().len());
                // The batch condition sees left then right query columns; here the left
                // side's extra key columns come between them.
                let condition =
                    condition.map(|c| c.map_columns(&|i| if i < lw { i } else { i + lall - lw }));
                let watermarks = [
                    self.watermark_columns(&left.plan),
                    self.watermark_columns(&right.plan),
                ];
                let inequalities = match &condition {
                    Some(c) => self.inequality_bounds(c, lall, watermarks),
                    None => Vec::new(),
                };
                let single = left.dist == Dist::Single;
                let dist = if single { Dist::Single } else { Dist::Any };
                let mut key: Vec<usize> = Vec::new();
                let mut add = |c: usize| {
                    if !key.contains(&c) {
                        key.push(c);
                    }
                };
                left_keys.iter().chain(&left.key).for_each(|c| add(*c));
                if kind.outputs_right() {
                    right_keys
                        .iter()
                        .chain(&right.key)
                        .for_each(|c| add(c + lall));
                }
                let joined = StreamPlan::HashJoin {
                    left_stream_key: left.key.clone(),
                    right_stream_key: right.key.clone(),
                    left: Box::new(left.plan),
                    right: Box::new(right.plan),
                    kind,
                    left_keys,
                    right_keys,
                    condition,
                    tables: [self.table_id(), self.table_id()],
                    inequalities,
                };
                if !kind.outputs_right() {
                    // Semi and anti joins pass the left side's columns on, keyed by the join key
                    // (their distribution) and the left stream key.
                    return Ok(Node {
                        plan: joined,
                        key,
                        dist,
                        width: lw,
                    });
                }
                let types = joined.output_types();
                // Reorder to the query's columns first: left's, right's, then the extras.
                let order: Vec<usize> = (0..lw)
                    .chain(lall..lall + rw)
                    .chain(lw..lall)
                    .chain(lall + rw..lall + rall)
                    .collect();
                let new_pos = |c: usize| order.iter().position(|o| *o == c).expect("permutation");
                Node {
                    plan: StreamPlan::Project {
                        input: Box::new(joined),
                        exprs: order.iter().map(|c| Expr::column(*c, types[*c])).collect(),
                    },
                    key: key.iter().map(|c| new_pos(*c)).collect(),
                    dist,
                    width: lw + rw,
                }
            }
            BatchPlan::Unnest { input, list } => {
                no_clock([&list])?;
                let input = self.plan(*input)?;
                let (all, w) = (input.types().len(), input.width);
                let unnest = StreamPlan::Unnest {
                    input: Box::new(input.plan),
                    list,
                };
                // The element goes right after the query's columns; the input's key extras
                // and the element's position (which with the input's key keys a row) after.
                let types = unnest.output_types();
                let order_of: Vec<usize> =
                    (0..w).chain([all]).chain(w..all).chain([all + 1]).collect();
                let moved = |c: &usize| if *c < w { *c } else { c + 1 };
                let mut key: Vec<usize> = input.key.iter().map(moved).collect();
                key.push(all + 1);
                Node {
                    plan: StreamPlan::Project {
                        input: Box::new(unnest),
                        exprs: order_of
                            .iter()
                            .map(|c| Expr::column(*c, types[*c]))
                            .collect(),
                    },
                    key,
                    dist: match input.dist {
                        Dist::Hash(d) => Dist::Hash(d.iter().map(moved).collect()),
                        other => other,
                    },
                    width: w + 1,
                }
            }
            BatchPlan::MaxOneRow { .. } => {
                return Err(PlanError::NotSupported(
                    "Scalar subquery might produce more than one row (in a materialized view only aggregates without GROUP BY may be used as scalar subqueries)"
                        .into(),
                ));
            }
            // Rows of a view have no order; only a limit makes one matter.
            BatchPlan::Sort { input, .. } => self.plan(*input)?,
            BatchPlan::Limit {
                input,
                limit,
                offset,
            } => {
                let (input, order) = match *input {
                    BatchPlan::Sort { input, keys } => (*input, keys),
                    other => (other, vec![]),
                };
                let input = self.plan(input)?;
                let input = self.exchange(input, Dist::Single);
                let order: Vec<SortKey> = order;
                Node {
                    plan: StreamPlan::TopN {
                        input_key: input.key.clone(),
                        append_only: self.append_only(&input.plan),
                        input: Box::new(input.plan),
                        group_key: vec![],
                        order,
                        rank: WindowFunc::RowNumber,
                        limit,
                        offset,
                        output_rank: false,
                        state_table: self.table_id(),
                    },
                    ..input
                }
            }
            BatchPlan::OverWindow {
                input,
                partition_by,
                order_by,
                calls,
            } => {
                let input = self.plan(*input)?;
                let dist = if partition_by.is_empty() {
                    Dist::Single
                } else {
                    Dist::Hash(partition_by.clone())
                };
                let input = self.exchange(input, dist.clone());
                let (all, w, n) = (input.types().len(), input.width, calls.len());
                let mut key_with_partition = partition_by.clone();
                key_with_partition.extend(input.key.iter().filter(|c| !partition_by.contains(c)));
                let over = StreamPlan::OverWindow {
                    input_key: input.key.clone(),
                    input: Box::new(input.plan),
                    partition_by,
                    order_by,
                    calls,
                    state_table: self.table_id(),
                };
                // The functions' columns go right after the query's, before the key extras.
                let types = over.output_types();
                let order_of: Vec<usize> = (0..w).chain(all..all + n).chain(w..all).collect();
                Node {
                    plan: StreamPlan::Project {
                        input: Box::new(over),
                        exprs: order_of
                            .iter()
                            .map(|c| Expr::column(*c, types[*c]))
                            .collect(),
                    },
                    // A row whose partition changes leaves one partition's actor and enters
                    // another's: the partition key is part of the stream key, so the two
                    // halves are different rows downstream.
                    key: key_with_partition
                        .iter()
                        .map(|c| if *c < w { *c } else { c + n })
                        .collect(),
                    dist,
                    width: w + n,
                }
            }
            BatchPlan::UnionAll { inputs } => self.union(inputs)?,
        })
    }

    /// `rank <= N` (and `rank > M`) over one ranking window function: the top rows of each
    /// partition. Other conditions on the ranked rows are applied after.
    fn group_top_n(
        &mut self,
        input: BatchPlan,
        partition_by: Vec<usize>,
        order: Vec<SortKey>,
        calls: Vec<WindowFunc>,
        predicate: Expr,
    ) -> PlanResult<Node> {
        let unsupported = || {
            PlanError::NotSupported(
                "window functions in a materialized view, except one ranking filtered by \
                 `rank <= N` (group top-N)"
                    .into(),
            )
        };
        let [rank @ (WindowFunc::RowNumber | WindowFunc::Rank | WindowFunc::DenseRank)] =
            calls.as_slice()
        else {
            return Err(unsupported());
        };
        let rank_column = input.output_types().len();
        let conjuncts = predicate.conjuncts();
        let (mut offset, mut max, mut rest) = (0u64, None::<u64>, Vec::new());
        for c in conjuncts {
            match rank_bound(&c, rank_column) {
                Some((op, n)) => {
                    let n = u64::try_from(n.max(0)).unwrap_or(0);
                    match op {
                        BinaryOp::LtEq => max = Some(max.map_or(n, |m| m.min(n))),
                        BinaryOp::Lt => {
                            let n = n.saturating_sub(1);
                            max = Some(max.map_or(n, |m| m.min(n)));
                        }
                        BinaryOp::Gt => offset = offset.max(n),
                        BinaryOp::GtEq => offset = offset.max(n.saturating_sub(1)),
                        _ => {
                            offset = offset.max(n.saturating_sub(1));
                            max = Some(max.map_or(n, |m| m.min(n)));
                        }
                    }
                }
                None => rest.push(c),
            }
        }
        let Some(max) = max else {
            return Err(unsupported());
        };
        let input = self.plan(input)?;
        let dist = if partition_by.is_empty() {
            Dist::Single
        } else {
            Dist::Hash(partition_by.clone())
        };
        let input = self.exchange(input, dist);
        let all = input.types().len();
        let w = input.width;
        let mut key = partition_by.clone();
        key.extend(input.key.iter().filter(|c| !partition_by.contains(c)));
        let top = StreamPlan::TopN {
            input_key: input.key.clone(),
            append_only: self.append_only(&input.plan),
            input: Box::new(input.plan),
            group_key: partition_by,
            order,
            rank: *rank,
            limit: Some(max.saturating_sub(offset)),
            offset,
            output_rank: true,
            state_table: self.table_id(),
        };
        // The rank column goes right after the query's columns, before the key extras.
        let types = top.output_types();
        let order_of: Vec<usize> = (0..w).chain([all]).chain(w..all).collect();
        let node = Node {
            plan: StreamPlan::Project {
                input: Box::new(top),
                exprs: order_of
                    .iter()
                    .map(|c| Expr::column(*c, types[*c]))
                    .collect(),
            },
            key: key
                .iter()
                .map(|c| if *c < w { *c } else { c + 1 })
                .collect(),
            dist: Dist::Any,
            width: w + 1,
        };
        Ok(
            match rest
                .into_iter()
                .reduce(|a, b| Expr::binary(BinaryOp::And, a, b))
            {
                Some(predicate) => Node {
                    plan: StreamPlan::Filter {
                        input: Box::new(node.plan),
                        predicate,
                    },
                    ..node
                },
                None => node,
            },
        )
    }

    /// Each input's rows get the key columns of every input (NULL but its own) and the
    /// input's number, which together identify a row of the union.
    fn union(&mut self, inputs: Vec<BatchPlan>) -> PlanResult<Node> {
        let nodes = inputs
            .into_iter()
            .map(|i| self.plan(i))
            .collect::<PlanResult<Vec<_>>>()?;
        let width = nodes.first().map_or(0, |n| n.width);
        let key_types: Vec<Vec<DataType>> = nodes
            .iter()
            .map(|n| {
                let t = n.types();
                n.key.iter().map(|k| t[*k]).collect()
            })
            .collect();
        let extra: usize = key_types.iter().map(Vec::len).sum::<usize>() + 1;
        let key: Vec<usize> = (width..width + extra).collect();
        let mut planned = Vec::new();
        for (i, node) in nodes.into_iter().enumerate() {
            let types = node.types();
            let mut exprs = Expr::columns(&types[..width]);
            for (j, kt) in key_types.iter().enumerate() {
                if i == j {
                    exprs.extend(node.key.iter().map(|k| Expr::column(*k, types[*k])));
                } else {
                    exprs.extend(kt.iter().map(|t| Expr::literal(Datum::Null, *t)));
                }
            }
            exprs.push(Expr::literal(Datum::Int32(i as i32), DataType::Int32));
            let projected = Node {
                plan: StreamPlan::Project {
                    input: Box::new(node.plan),
                    exprs,
                },
                key: key.clone(),
                dist: Dist::Any,
                width,
            };
            planned.push(self.exchange(projected, Dist::Hash(key.clone())).plan);
        }
        Ok(Node {
            plan: StreamPlan::Union { inputs: planned },
            key: key.clone(),
            dist: Dist::Hash(key),
            width,
        })
    }
}

/// Whether `predicate` over `plan` is a group top-N: `plan` is one ranking window function
/// (or a projection choosing columns of it) and `predicate` bounds the rank from above.
fn is_group_top_n(plan: &BatchPlan, predicate: &Expr) -> bool {
    let (over, exprs) = match plan {
        BatchPlan::Project { input, exprs }
            if exprs.iter().all(|e| matches!(e, Expr::Column { .. })) =>
        {
            (&**input, Some(exprs))
        }
        other => (other, None),
    };
    let BatchPlan::OverWindow { input, calls, .. } = over else {
        return false;
    };
    if !matches!(
        calls.as_slice(),
        [WindowFunc::RowNumber | WindowFunc::Rank | WindowFunc::DenseRank]
    ) {
        return false;
    }
    let predicate = match exprs {
        Some(exprs) => predicate.clone().substitute(exprs),
        None => predicate.clone(),
    };
    let rank_column = input.output_types().len();
    predicate.conjuncts().iter().any(|c| {
        rank_bound(c, rank_column)
            .is_some_and(|(op, _)| !matches!(op, BinaryOp::Gt | BinaryOp::GtEq))
    })
}

/// `rank op n` (or `n op rank`, flipped) for the rank column and an integer constant.
fn rank_bound(e: &Expr, rank_column: usize) -> Option<(BinaryOp, i64)> {
    let Expr::Binary { op, left, right } = e else {
        return None;
    };
    let constant = |e: &Expr| match e {
        Expr::Literal {
            value: Datum::Int64(n),
            ..
        } => Some(*n),
        Expr::Literal {
            value: Datum::Int32(n),
            ..
        } => Some(i64::from(*n)),
        _ => None,
    };
    let is_rank = |e: &Expr| matches!(e, Expr::Column { index, .. } if *index == rank_column);
    let flipped = match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::LtEq => BinaryOp::GtEq,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::GtEq => BinaryOp::LtEq,
        BinaryOp::Eq => BinaryOp::Eq,
        _ => return None,
    };
    if is_rank(left) {
        constant(right).map(|n| (*op, n))
    } else if is_rank(right) {
        constant(left).map(|n| (flipped, n))
    } else {
        None
    }
}

/// A view is maintained forever: `now()` in it would be frozen at the moment a row passes.
fn no_clock<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> PlanResult<()> {
    if exprs.into_iter().any(Expr::reads_clock) {
        return Err(PlanError::NotSupported(
            "now() in a materialized view".into(),
        ));
    }
    Ok(())
}

/// Plans the job of a view over `query` whose visible columns are `columns`, keyed by the
/// output columns `order` first (for an index; empty for a view); its state tables get ids
/// from `first_table_id` on.
pub fn plan_view(
    query: BatchPlan,
    columns: &[(String, DataType)],
    order: &[usize],
    first_table_id: u32,
    upstreams: Upstreams,
    emit_on_window_close: bool,
) -> PlanResult<ViewPlan> {
    let mut planner = Planner {
        next_table_id: first_table_id,
        next_exchange_id: 0,
        upstreams,
    };
    let mut node = planner.plan(query)?;
    if emit_on_window_close {
        node = planner.emit_on_window_close(node)?;
    }
    let types = node.types();
    let mut catalog_columns: Vec<ColumnCatalog> = columns
        .iter()
        .map(|(name, ty)| ColumnCatalog::new(name.clone(), *ty))
        .collect();
    for (i, ty) in types.iter().enumerate().skip(node.width) {
        catalog_columns.push(ColumnCatalog {
            name: format!("_key{i}"),
            ty: *ty,
            hidden: true,
            default: None,
        });
    }
    let mut pk = order.to_vec();
    pk.extend(node.key.iter().filter(|k| !order.contains(k)));
    Ok(ViewPlan {
        singleton: matches!(node.dist, Dist::Single),
        plan: node.plan,
        columns: catalog_columns,
        pk,
        next_table_id: planner.next_table_id,
    })
}
