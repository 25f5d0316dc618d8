//! Streaming plan nodes: plain data the planner emits, the catalog stores with each view,
//! and [`super::build_job`] turns into actors.

use serde::{Deserialize, Serialize};

use crate::batch::plan::{AggCall, JoinKind, SortKey, WindowFunc};
use crate::expr::Expr;
use crate::state_table::TableDesc;
use crate::types::DataType;

/// A streaming plan. Each node's output is a stream of changes to a list of typed columns,
/// identified by a stream key the planner tracks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StreamPlan {
    /// The changes of a table or view: first its existing rows (backfill), then every change.
    Scan {
        /// Id of the table or view.
        upstream_id: u32,
        /// Its storage layout.
        table: TableDesc,
        /// Which of its columns to output (its primary key among them).
        columns: Vec<usize>,
        /// State table of the backfill's progress.
        progress_table: u32,
    },
    /// Literal rows, inserted once when the job starts.
    Values {
        /// Rows of constant expressions.
        rows: Vec<Vec<Expr>>,
        /// Column types.
        types: Vec<DataType>,
        /// State table remembering that the rows were emitted.
        state_table: u32,
    },
    /// Changes of rows where `predicate` is true.
    Filter {
        /// Input.
        input: Box<StreamPlan>,
        /// Boolean expression over the input.
        predicate: Expr,
    },
    /// Changes with new columns computed from the input.
    Project {
        /// Input.
        input: Box<StreamPlan>,
        /// One expression per output column.
        exprs: Vec<Expr>,
    },
    /// Incrementally maintained aggregation: output is the group keys, then the aggregates.
    HashAgg {
        /// Input.
        input: Box<StreamPlan>,
        /// Input columns to group by.
        group_keys: Vec<usize>,
        /// Aggregates.
        aggs: Vec<AggCall>,
        /// The input's stream key (identifies rows kept for retractable min/max).
        input_key: Vec<usize>,
        /// State table ids: the groups' intermediate results, then one per aggregate (its
        /// sorted values for min/max, its distinct values for distinct aggregates).
        tables: Vec<u32>,
    },
    /// Incrementally maintained equi-join; both sides' rows are kept in state.
    HashJoin {
        /// Left input.
        left: Box<StreamPlan>,
        /// Right input.
        right: Box<StreamPlan>,
        /// Join kind.
        kind: JoinKind,
        /// Left key columns.
        left_keys: Vec<usize>,
        /// Right key columns, pairwise equal to the left ones.
        right_keys: Vec<usize>,
        /// Extra condition over the joined row.
        condition: Option<Expr>,
        /// The left input's stream key.
        left_stream_key: Vec<usize>,
        /// The right input's stream key.
        right_stream_key: Vec<usize>,
        /// State tables of the left and right rows.
        tables: [u32; 2],
    },
    /// The first rows by `order` (after skipping `offset`), maintained as the input changes.
    TopN {
        /// Input.
        input: Box<StreamPlan>,
        /// Group key columns (empty: the whole input is one group).
        group_key: Vec<usize>,
        /// Sort keys within a group.
        order: Vec<SortKey>,
        /// How ranks count ties.
        rank: WindowFunc,
        /// Ranks to keep after the skipped ones; all if `None`.
        limit: Option<u64>,
        /// Ranks to skip.
        offset: u64,
        /// Whether output rows end with their rank.
        output_rank: bool,
        /// The input's stream key (ties are broken by it).
        input_key: Vec<usize>,
        /// State table of every input row, in output order.
        state_table: u32,
    },
    /// Window functions over each row's partition: the input's rows, each with one column
    /// per call.
    OverWindow {
        /// Input.
        input: Box<StreamPlan>,
        /// Partition key columns (empty: the whole input is one partition).
        partition_by: Vec<usize>,
        /// Sort keys within a partition.
        order_by: Vec<SortKey>,
        /// The functions.
        calls: Vec<WindowFunc>,
        /// The input's stream key (ties are broken by it).
        input_key: Vec<usize>,
        /// State table of every input row.
        state_table: u32,
    },
    /// The changes of every input (same column types).
    Union {
        /// Inputs.
        inputs: Vec<StreamPlan>,
    },
    /// A fragment boundary: the input runs in its own actors and its rows are routed by the
    /// vnode of `dist` (to a single actor when `dist` is empty).
    Exchange {
        /// Input.
        input: Box<StreamPlan>,
        /// Distribution key columns.
        dist: Vec<usize>,
        /// Unique within the plan.
        id: u32,
    },
}

impl StreamPlan {
    /// The types of the output columns.
    pub fn output_types(&self) -> Vec<DataType> {
        match self {
            StreamPlan::Scan { table, columns, .. } => {
                columns.iter().map(|c| table.types[*c]).collect()
            }
            StreamPlan::Values { types, .. } => types.clone(),
            StreamPlan::Filter { input, .. } | StreamPlan::Exchange { input, .. } => {
                input.output_types()
            }
            StreamPlan::OverWindow { input, calls, .. } => {
                let mut t = input.output_types();
                let input_types = t.clone();
                t.extend(calls.iter().map(|c| c.output_type(&input_types)));
                t
            }
            StreamPlan::TopN {
                input, output_rank, ..
            } => {
                let mut t = input.output_types();
                if *output_rank {
                    t.push(DataType::Int64);
                }
                t
            }
            StreamPlan::Project { exprs, .. } => exprs.iter().map(Expr::data_type).collect(),
            StreamPlan::HashAgg {
                input,
                group_keys,
                aggs,
                ..
            } => {
                let types = input.output_types();
                group_keys
                    .iter()
                    .map(|k| types[*k])
                    .chain(aggs.iter().map(|a| a.ret))
                    .collect()
            }
            StreamPlan::HashJoin {
                left, right, kind, ..
            } => {
                let mut t = left.output_types();
                if kind.outputs_right() {
                    t.extend(right.output_types());
                }
                t
            }
            StreamPlan::Union { inputs } => inputs
                .first()
                .map(StreamPlan::output_types)
                .unwrap_or_default(),
        }
    }

    /// Ids of the tables and views this plan reads.
    pub fn upstreams(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.visit(&mut |p| {
            if let StreamPlan::Scan { upstream_id, .. } = p {
                out.push(*upstream_id);
            }
        });
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Ids of every state table the plan's operators own.
    pub fn state_tables(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.visit(&mut |p| match p {
            StreamPlan::Scan { progress_table, .. } => out.push(*progress_table),
            StreamPlan::Values { state_table, .. }
            | StreamPlan::TopN { state_table, .. }
            | StreamPlan::OverWindow { state_table, .. } => out.push(*state_table),
            StreamPlan::HashAgg { tables, .. } => out.extend(tables),
            StreamPlan::HashJoin { tables, .. } => out.extend(tables),
            _ => {}
        });
        out
    }

    pub(crate) fn children(&self) -> Vec<&StreamPlan> {
        match self {
            StreamPlan::Scan { .. } | StreamPlan::Values { .. } => vec![],
            StreamPlan::Filter { input, .. }
            | StreamPlan::Project { input, .. }
            | StreamPlan::HashAgg { input, .. }
            | StreamPlan::TopN { input, .. }
            | StreamPlan::OverWindow { input, .. }
            | StreamPlan::Exchange { input, .. } => vec![input],
            StreamPlan::HashJoin { left, right, .. } => vec![left, right],
            StreamPlan::Union { inputs } => inputs.iter().collect(),
        }
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a StreamPlan)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }

    /// An indented, one-node-per-line rendering for `EXPLAIN`.
    pub fn explain(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.explain_into(0, &mut out);
        out
    }

    fn explain_into(&self, depth: usize, out: &mut Vec<String>) {
        let line = match self {
            StreamPlan::Scan {
                upstream_id,
                columns,
                ..
            } => format!("StreamTableScan {{ table_id: {upstream_id}, columns: {columns:?} }}"),
            StreamPlan::Values { rows, .. } => format!("StreamValues {{ rows: {} }}", rows.len()),
            StreamPlan::Filter { .. } => "StreamFilter".into(),
            StreamPlan::Project { exprs, .. } => {
                format!("StreamProject {{ exprs: {} }}", exprs.len())
            }
            StreamPlan::HashAgg {
                group_keys, aggs, ..
            } => format!(
                "StreamHashAgg {{ group_keys: {group_keys:?}, aggs: {:?} }}",
                aggs.iter().map(|a| a.kind).collect::<Vec<_>>()
            ),
            StreamPlan::HashJoin {
                kind,
                left_keys,
                right_keys,
                ..
            } => {
                format!("StreamHashJoin {{ kind: {kind:?}, keys: {left_keys:?} = {right_keys:?} }}")
            }
            StreamPlan::TopN {
                group_key,
                order,
                rank,
                limit,
                offset,
                ..
            } if group_key.is_empty() && *rank == WindowFunc::RowNumber => format!(
                "StreamTopN {{ order: {:?}, limit: {limit:?}, offset: {offset} }}",
                order.iter().map(|k| k.column).collect::<Vec<_>>()
            ),
            StreamPlan::TopN {
                group_key,
                order,
                rank,
                limit,
                offset,
                ..
            } => format!(
                "StreamGroupTopN {{ group_key: {group_key:?}, order: {:?}, rank: {rank:?}, limit: {limit:?}, offset: {offset} }}",
                order.iter().map(|k| k.column).collect::<Vec<_>>()
            ),
            StreamPlan::OverWindow {
                partition_by,
                order_by,
                calls,
                ..
            } => format!(
                "StreamOverWindow {{ partition_by: {partition_by:?}, order_by: {:?}, calls: {calls:?} }}",
                order_by.iter().map(|k| k.column).collect::<Vec<_>>()
            ),
            StreamPlan::Union { .. } => "StreamUnion".into(),
            StreamPlan::Exchange { dist, .. } if dist.is_empty() => {
                "StreamExchange { dist: Single }".into()
            }
            StreamPlan::Exchange { dist, .. } => {
                format!("StreamExchange {{ dist: HashShard{dist:?} }}")
            }
        };
        out.push(format!("{}{line}", "  ".repeat(depth)));
        for c in self.children() {
            c.explain_into(depth + 1, out);
        }
    }
}
