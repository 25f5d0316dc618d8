//! Batch plan nodes: plain data the planner emits and the executors run.

use epoch_mvcc::memcomparable::OrderType;
use serde::{Deserialize, Serialize};

use crate::expr::Expr;
use crate::state_table::TableDesc;
use crate::types::DataType;

/// Aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggKind {
    /// `count(*)`
    CountStar,
    /// `count(x)`: non-NULL values.
    Count,
    /// `sum(x)`
    Sum,
    /// `avg(x)`
    Avg,
    /// `min(x)`
    Min,
    /// `max(x)`
    Max,
    /// The value of the first row of the group, NULL included (for `DISTINCT ON`).
    FirstValue,
    /// `array_agg(x)`: every value, NULLs included, in input order.
    ArrayAgg,
    /// The one value of the group; a second row is an error (a scalar subquery's value).
    SingleValue,
}

/// A window function over a row's partition in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowFunc {
    /// `row_number()`: 1, 2, 3, ... (ties in any order).
    RowNumber,
    /// `rank()`: ties share a rank, gaps follow (1, 1, 3).
    Rank,
    /// `dense_rank()`: ties share a rank, no gaps (1, 1, 2).
    DenseRank,
    /// `lag(column, offset)`: the value `offset` rows before in the partition (NULL before
    /// its start).
    Lag {
        /// Input column.
        column: usize,
        /// Rows back.
        offset: usize,
    },
    /// `lead(column, offset)`: the value `offset` rows after in the partition.
    Lead {
        /// Input column.
        column: usize,
        /// Rows ahead.
        offset: usize,
    },
    /// An aggregate (count, sum, avg, min, max) over each row's frame.
    Aggregate {
        /// The aggregate.
        kind: AggKind,
        /// Input column (none for `count(*)`).
        column: Option<usize>,
        /// Result type.
        ret: DataType,
        /// The rows around each row it aggregates.
        frame: Frame,
    },
}

/// Which rows of its partition a row's window aggregate covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// `ROWS` (bounds count rows) rather than `RANGE` (`CURRENT ROW` takes the row's peers).
    pub rows: bool,
    /// Where the frame starts.
    pub start: FrameBound,
    /// Where it ends (inclusive).
    pub end: FrameBound,
}

impl Frame {
    /// The default: the partition's start up to the row and its peers (all of the partition
    /// when there is no order).
    pub const DEFAULT: Frame = Frame {
        rows: false,
        start: FrameBound::UnboundedPreceding,
        end: FrameBound::CurrentRow,
    };
}

/// One end of a [`Frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FrameBound {
    /// The partition's first row.
    UnboundedPreceding,
    /// This many rows before.
    Preceding(u64),
    /// The row (with `RANGE`, its first or last peer).
    CurrentRow,
    /// This many rows after.
    Following(u64),
    /// The partition's last row.
    UnboundedFollowing,
}

impl WindowFunc {
    /// The input column the function reads, if any.
    pub fn input_column(self) -> Option<usize> {
        match self {
            WindowFunc::Lag { column, .. } | WindowFunc::Lead { column, .. } => Some(column),
            WindowFunc::Aggregate { column, .. } => column,
            _ => None,
        }
    }

    /// The function with its input column renumbered by `f`.
    pub fn map_column(self, f: impl Fn(usize) -> usize) -> WindowFunc {
        match self {
            WindowFunc::Lag { column, offset } => WindowFunc::Lag {
                column: f(column),
                offset,
            },
            WindowFunc::Lead { column, offset } => WindowFunc::Lead {
                column: f(column),
                offset,
            },
            WindowFunc::Aggregate {
                kind,
                column,
                ret,
                frame,
            } => WindowFunc::Aggregate {
                kind,
                column: column.map(f),
                ret,
                frame,
            },
            other => other,
        }
    }

    /// The type of the function's values over input columns of `types`.
    pub fn output_type(self, types: &[DataType]) -> DataType {
        match self {
            WindowFunc::Lag { column, .. } | WindowFunc::Lead { column, .. } => types[column],
            WindowFunc::Aggregate { ret, .. } => ret,
            _ => DataType::Int64,
        }
    }
}

/// One aggregate of a hash aggregation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggCall {
    /// The function.
    pub kind: AggKind,
    /// Input column (none for `count(*)`).
    pub arg: Option<usize>,
    /// Aggregate distinct values only.
    pub distinct: bool,
    /// Result type.
    pub ret: DataType,
    /// A boolean input column: only rows where it is true are aggregated (`FILTER (WHERE
    /// ...)` of `array_agg` and `first_value`, which keep NULLs, and of distinct aggregates,
    /// whose state is by argument column; other aggregates skip NULLs, and their filter is a
    /// CASE of their argument instead).
    #[serde(default)]
    pub filter: Option<usize>,
    /// The order in which the values count (`array_agg(x ORDER BY y)`, `first_value`):
    /// ties keep input order in a batch and stream key order in a view.
    #[serde(default)]
    pub order_by: Vec<SortKey>,
}

impl AggCall {
    /// `kind(arg)` returning `ret`: over all values, unfiltered, in no order.
    pub fn new(kind: AggKind, arg: Option<usize>, ret: DataType) -> AggCall {
        AggCall {
            kind,
            arg,
            distinct: false,
            ret,
            filter: None,
            order_by: Vec::new(),
        }
    }

    /// The input columns the call reads: its argument, filter and order.
    pub fn input_columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.arg
            .into_iter()
            .chain(self.filter)
            .chain(self.order_by.iter().map(|k| k.column))
    }

    /// The call with each input column `c` read from `f(c)` instead.
    pub fn map_columns(mut self, f: impl Fn(usize) -> usize) -> AggCall {
        self.arg = self.arg.map(&f);
        self.filter = self.filter.map(&f);
        for k in &mut self.order_by {
            k.column = f(k.column);
        }
        self
    }
}

impl AggKind {
    /// Whether the aggregate's result depends on the order of its values.
    pub fn is_ordered(self) -> bool {
        matches!(self, AggKind::ArrayAgg | AggKind::FirstValue)
    }
}

/// Kinds of joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JoinKind {
    /// Matching pairs only.
    Inner,
    /// Plus unmatched left rows.
    LeftOuter,
    /// Plus unmatched right rows.
    RightOuter,
    /// Plus unmatched rows of both sides.
    FullOuter,
    /// Left rows with at least one match, once each; only the left columns (`EXISTS`).
    LeftSemi,
    /// Left rows without a match; only the left columns (`NOT EXISTS`).
    LeftAnti,
}

impl JoinKind {
    /// Whether the output has the right side's columns (all but semi and anti joins).
    pub fn outputs_right(self) -> bool {
        !matches!(self, JoinKind::LeftSemi | JoinKind::LeftAnti)
    }
}

/// One sort key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    /// Input column.
    pub column: usize,
    /// Direction and NULL placement.
    pub order: OrderType,
}

/// A batch query plan. Every node's output is a list of typed columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BatchPlan {
    /// Literal rows; each expression is evaluated without input columns.
    Values {
        /// Rows of expressions.
        rows: Vec<Vec<Expr>>,
        /// Column types.
        types: Vec<DataType>,
    },
    /// A table's rows as of the query's epoch.
    Scan {
        /// The table.
        table: TableDesc,
        /// Which of its columns to output ([`TableDesc::commit_time_column`]: each row's
        /// commit time).
        columns: Vec<usize>,
    },
    /// Rows where `predicate` is true.
    Filter {
        /// Input.
        input: Box<BatchPlan>,
        /// Boolean expression over the input.
        predicate: Expr,
    },
    /// Each input row once per element of the array `list` computes from it, followed by that
    /// element; rows whose array is NULL or empty are dropped (`unnest`, and set-returning
    /// functions generally).
    Unnest {
        /// Input.
        input: Box<BatchPlan>,
        /// An array expression over the input.
        list: Expr,
    },
    /// New columns computed from the input.
    Project {
        /// Input.
        input: Box<BatchPlan>,
        /// One expression per output column.
        exprs: Vec<Expr>,
    },
    /// Groups by `group_keys` and computes `aggs`; output is the keys, then the aggregates.
    /// Without keys, exactly one row.
    HashAgg {
        /// Input.
        input: Box<BatchPlan>,
        /// Input columns to group by.
        group_keys: Vec<usize>,
        /// Aggregates.
        aggs: Vec<AggCall>,
    },
    /// Joins left and right on equal keys (NULL never equals) and an optional condition over
    /// the joined row (left columns, then right columns).
    HashJoin {
        /// Left input.
        left: Box<BatchPlan>,
        /// Right input.
        right: Box<BatchPlan>,
        /// Join kind.
        kind: JoinKind,
        /// Left key columns.
        left_keys: Vec<usize>,
        /// Right key columns, pairwise equal to the left ones.
        right_keys: Vec<usize>,
        /// Extra condition over the joined row.
        condition: Option<Expr>,
    },
    /// Sorted rows.
    Sort {
        /// Input.
        input: Box<BatchPlan>,
        /// Keys, most significant first.
        keys: Vec<SortKey>,
    },
    /// Skips `offset` rows, then keeps at most `limit`.
    Limit {
        /// Input.
        input: Box<BatchPlan>,
        /// Rows to keep; all if `None`.
        limit: Option<u64>,
        /// Rows to skip.
        offset: u64,
    },
    /// Ranking window functions: the input's columns, then one bigint column per function,
    /// each row's rank in its partition by `order_by`.
    OverWindow {
        /// Input.
        input: Box<BatchPlan>,
        /// Partition columns.
        partition_by: Vec<usize>,
        /// The order within a partition.
        order_by: Vec<SortKey>,
        /// The functions.
        calls: Vec<WindowFunc>,
    },
    /// The input's rows, failing with a cardinality error if there are more than one (a
    /// scalar subquery).
    MaxOneRow {
        /// Input.
        input: Box<BatchPlan>,
    },
    /// All rows of every input (same column types).
    UnionAll {
        /// Inputs.
        inputs: Vec<BatchPlan>,
    },
    /// A source's rows (only a materialized view reads them: a source has no stored rows).
    Source {
        /// Id of the source.
        source_id: u32,
        /// The source.
        source: crate::source::SourceSpec,
        /// Which of its columns to output.
        columns: Vec<usize>,
    },
}

impl BatchPlan {
    /// The types of the output columns.
    pub fn output_types(&self) -> Vec<DataType> {
        match self {
            BatchPlan::Values { types, .. } => types.clone(),
            BatchPlan::Scan { table, columns } => {
                columns.iter().map(|c| table.column_type(*c)).collect()
            }
            BatchPlan::Source {
                source, columns, ..
            } => {
                let types = source.types();
                columns.iter().map(|c| types[*c]).collect()
            }
            BatchPlan::Filter { input, .. }
            | BatchPlan::Sort { input, .. }
            | BatchPlan::Limit { input, .. }
            | BatchPlan::MaxOneRow { input } => input.output_types(),
            BatchPlan::Project { exprs, .. } => exprs.iter().map(Expr::data_type).collect(),
            BatchPlan::Unnest { input, list } => {
                let mut types = input.output_types();
                types.extend(list.data_type().element());
                types
            }
            BatchPlan::HashAgg {
                input,
                group_keys,
                aggs,
            } => {
                let types = input.output_types();
                group_keys
                    .iter()
                    .map(|k| types[*k])
                    .chain(aggs.iter().map(|a| a.ret))
                    .collect()
            }
            BatchPlan::HashJoin {
                left, right, kind, ..
            } => {
                let mut t = left.output_types();
                if kind.outputs_right() {
                    t.extend(right.output_types());
                }
                t
            }
            BatchPlan::OverWindow { input, calls, .. } => {
                let mut t = input.output_types();
                let values: Vec<DataType> = calls.iter().map(|c| c.output_type(&t)).collect();
                t.extend(values);
                t
            }
            BatchPlan::UnionAll { inputs } => inputs
                .first()
                .map(BatchPlan::output_types)
                .unwrap_or_default(),
        }
    }

    /// The plan with each direct input replaced by `f` of it.
    pub fn map_inputs(self, f: &mut impl FnMut(BatchPlan) -> BatchPlan) -> BatchPlan {
        let mut map = |input: Box<BatchPlan>| Box::new(f(*input));
        match self {
            BatchPlan::Values { .. } | BatchPlan::Scan { .. } | BatchPlan::Source { .. } => self,
            BatchPlan::Filter { input, predicate } => BatchPlan::Filter {
                input: map(input),
                predicate,
            },
            BatchPlan::Unnest { input, list } => BatchPlan::Unnest {
                input: map(input),
                list,
            },
            BatchPlan::Project { input, exprs } => BatchPlan::Project {
                input: map(input),
                exprs,
            },
            BatchPlan::HashAgg {
                input,
                group_keys,
                aggs,
            } => BatchPlan::HashAgg {
                input: map(input),
                group_keys,
                aggs,
            },
            BatchPlan::HashJoin {
                left,
                right,
                kind,
                left_keys,
                right_keys,
                condition,
            } => BatchPlan::HashJoin {
                left: map(left),
                right: map(right),
                kind,
                left_keys,
                right_keys,
                condition,
            },
            BatchPlan::Sort { input, keys } => BatchPlan::Sort {
                input: map(input),
                keys,
            },
            BatchPlan::Limit {
                input,
                limit,
                offset,
            } => BatchPlan::Limit {
                input: map(input),
                limit,
                offset,
            },
            BatchPlan::OverWindow {
                input,
                partition_by,
                order_by,
                calls,
            } => BatchPlan::OverWindow {
                input: map(input),
                partition_by,
                order_by,
                calls,
            },
            BatchPlan::MaxOneRow { input } => BatchPlan::MaxOneRow { input: map(input) },
            BatchPlan::UnionAll { inputs } => BatchPlan::UnionAll {
                inputs: inputs.into_iter().map(f).collect(),
            },
        }
    }

    /// An indented, one-node-per-line rendering for `EXPLAIN`.
    pub fn explain(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.explain_into(0, &mut out);
        out
    }

    /// Whether the plan reads any table (a plan that does not computes constant rows).
    pub fn reads_tables(&self) -> bool {
        matches!(self, BatchPlan::Scan { .. } | BatchPlan::Source { .. })
            || self.describe().1.into_iter().any(BatchPlan::reads_tables)
    }

    fn explain_into(&self, depth: usize, out: &mut Vec<String>) {
        let (line, children) = self.describe();
        out.push(format!("{}{line}", "  ".repeat(depth)));
        for c in children {
            c.explain_into(depth + 1, out);
        }
    }

    /// The node's EXPLAIN line and its inputs.
    fn describe(&self) -> (String, Vec<&BatchPlan>) {
        match self {
            BatchPlan::Values { rows, .. } => {
                (format!("BatchValues {{ rows: {} }}", rows.len()), vec![])
            }
            BatchPlan::Scan { table, columns } => (
                format!(
                    "BatchScan {{ table_id: {}, columns: {columns:?} }}",
                    table.table_id
                ),
                vec![],
            ),
            BatchPlan::Source {
                source, columns, ..
            } => (
                format!(
                    "BatchSource {{ connector: {}, columns: {columns:?} }}",
                    source.describe()
                ),
                vec![],
            ),
            BatchPlan::Filter { input, .. } => ("BatchFilter".into(), vec![input]),
            BatchPlan::Project { input, exprs } => (
                format!("BatchProject {{ exprs: {} }}", exprs.len()),
                vec![input],
            ),
            BatchPlan::HashAgg {
                input,
                group_keys,
                aggs,
            } => (
                format!(
                    "BatchHashAgg {{ group_keys: {group_keys:?}, aggs: {:?} }}",
                    aggs.iter().map(|a| a.kind).collect::<Vec<_>>()
                ),
                vec![input],
            ),
            BatchPlan::HashJoin {
                left,
                right,
                kind,
                left_keys,
                right_keys,
                ..
            } => (
                format!("BatchHashJoin {{ kind: {kind:?}, keys: {left_keys:?} = {right_keys:?} }}"),
                vec![left, right],
            ),
            BatchPlan::Sort { input, keys } => (
                format!(
                    "BatchSort {{ keys: {:?} }}",
                    keys.iter().map(|k| k.column).collect::<Vec<_>>()
                ),
                vec![input],
            ),
            BatchPlan::Limit {
                input,
                limit,
                offset,
            } => (
                format!("BatchLimit {{ limit: {limit:?}, offset: {offset} }}"),
                vec![input],
            ),
            BatchPlan::UnionAll { inputs } => ("BatchUnionAll".into(), inputs.iter().collect()),
            BatchPlan::OverWindow {
                input,
                partition_by,
                order_by,
                calls,
            } => (
                format!(
                    "BatchOverWindow {{ partition_by: {partition_by:?}, order_by: {:?}, calls: {calls:?} }}",
                    order_by.iter().map(|k| k.column).collect::<Vec<_>>()
                ),
                vec![input],
            ),
            BatchPlan::MaxOneRow { input } => ("BatchMaxOneRow".into(), vec![input]),
            BatchPlan::Unnest { input, .. } => ("BatchUnnest".into(), vec![input]),
        }
    }
}
