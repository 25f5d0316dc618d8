//! Top-N per group: the rows ranked `offset + 1 ..= offset + limit` in each group by an order,
//! maintained as the input changes (`ORDER BY ... LIMIT` in a view has one group; `rank <= N`
//! over `row_number()`/`rank()`/`dense_rank()` partitioned by the group key has many). The
//! operator is [`super::grouped::recompute_groups`]; with `output_rank` each row carries its
//! rank, so a row whose rank moves is retracted and inserted again.

use epoch_mvcc::StateStore;

use crate::Result;
use crate::batch::plan::{SortKey, WindowFunc};
use crate::state_table::StateTable;
use crate::types::{DataType, Datum};

/// What a top-N keeps.
#[derive(Clone, Debug)]
pub(crate) struct TopNSpec {
    /// The input's column types.
    pub types: Vec<DataType>,
    /// Group key columns (empty: one group).
    pub group_key: Vec<usize>,
    /// The order within a group.
    pub order: Vec<SortKey>,
    /// How ranks count ties.
    pub rank: WindowFunc,
    /// Ranks to skip.
    pub offset: u64,
    /// Ranks to keep after the skipped ones; all if `None`.
    pub limit: Option<u64>,
    /// Whether output rows end with their rank.
    pub output_rank: bool,
    /// The input's stream key (ties are broken by it).
    pub input_key: Vec<usize>,
    /// The state table of every input row.
    pub state_table: u32,
}

/// The kept rows of one group, in order, each with its rank when asked for.
pub(crate) async fn top<S: StateStore>(
    table: &StateTable<S>,
    spec: &TopNSpec,
    group: &[Datum],
) -> Result<Vec<Vec<Datum>>> {
    let end = spec.limit.map(|l| l.saturating_add(spec.offset));
    // Row numbers stop at the last kept row; ties may stretch ranks, so those read the group.
    let read = match (spec.rank, end) {
        (WindowFunc::RowNumber, Some(end)) => end as usize,
        _ => usize::MAX,
    };
    let rows = table.rows_with_prefix(group, read).await?;
    let order: Vec<usize> = spec.order.iter().map(|k| k.column).collect();
    let mut kept = Vec::new();
    let (mut rank, mut dense) = (0u64, 0u64);
    for (i, row) in rows.iter().enumerate() {
        let peer = i > 0 && order.iter().all(|c| rows[i - 1][*c] == row[*c]);
        if !peer {
            rank = i as u64 + 1;
            dense += 1;
        }
        let r = match spec.rank {
            WindowFunc::Rank => rank,
            WindowFunc::DenseRank => dense,
            // The planner ranks top-N only by row number, rank or dense rank.
            WindowFunc::RowNumber
            | WindowFunc::Lag { .. }
            | WindowFunc::Lead { .. }
            | WindowFunc::Aggregate { .. } => i as u64 + 1,
        };
        if end.is_some_and(|e| r > e) {
            break;
        }
        if r > spec.offset {
            let mut out = row.clone();
            if spec.output_rank {
                out.push(Datum::Int64(r as i64));
            }
            kept.push(out);
        }
    }
    Ok(kept)
}
