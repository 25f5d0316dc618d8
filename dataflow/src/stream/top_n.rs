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
    /// The input only inserts: the state keeps only each group's kept rows (see
    /// [`top_trimmed`]).
    pub append_only: bool,
}

/// The last rank kept (`offset + limit`), if there is a limit.
fn end(spec: &TopNSpec) -> Option<u64> {
    spec.limit.map(|l| l.saturating_add(spec.offset))
}

/// The kept rows of one group, in order, each with its rank when asked for.
pub(crate) async fn top<S: StateStore>(
    table: &StateTable<S>,
    spec: &TopNSpec,
    group: &[Datum],
) -> Result<Vec<Vec<Datum>>> {
    // Row numbers stop at the last kept row; ties may stretch ranks, so those read the group.
    let read = match (spec.rank, end(spec)) {
        (WindowFunc::RowNumber, Some(end)) => end as usize,
        _ => usize::MAX,
    };
    let rows = table.rows_with_prefix(group, read).await?;
    Ok(kept_rows(spec, rows))
}

/// [`top`], deleting the group's rows ranked past the limit. Over an input that only
/// inserts they can never be kept again, so the state holds at most the kept rows of each
/// group (and the ties of the last) between barriers. With row numbers the group has at
/// most `most` rows (those kept and those inserted since), which is all that is read, and
/// nothing is to go while that is within the limit.
pub(crate) async fn top_trimmed<S: StateStore>(
    table: &mut StateTable<S>,
    spec: &TopNSpec,
    group: &[Datum],
    most: usize,
) -> Result<Vec<Vec<Datum>>> {
    let read = match (spec.rank, end(spec)) {
        (WindowFunc::RowNumber, Some(end)) if most as u64 <= end => {
            return top(table, spec, group).await;
        }
        (WindowFunc::RowNumber, Some(_)) => most,
        _ => usize::MAX,
    };
    let mut rows = table.rows_with_prefix(group, read).await?;
    if end(spec).is_some() {
        let ranked = ranked(spec, &rows).count();
        for row in rows.split_off(ranked) {
            table.delete(row);
        }
    }
    Ok(kept_rows(spec, rows))
}

/// The rows of a group (`rows`, in order) that are output, each with its rank when asked
/// for.
pub(crate) fn kept_rows(spec: &TopNSpec, mut rows: Vec<Vec<Datum>>) -> Vec<Vec<Datum>> {
    let ranks: Vec<u64> = ranked(spec, &rows).map(|(_, r)| r).collect();
    rows.truncate(ranks.len());
    rows.into_iter()
        .zip(ranks)
        .filter(|(_, r)| *r > spec.offset)
        .map(|(mut row, r)| {
            if spec.output_rank {
                row.push(Datum::Int64(r as i64));
            }
            row
        })
        .collect()
}

/// The first rows of a group (`rows`, in order) whose rank is within the limit, each with its
/// rank.
fn ranked<'a>(
    spec: &'a TopNSpec,
    rows: &'a [Vec<Datum>],
) -> impl Iterator<Item = (&'a Vec<Datum>, u64)> + 'a {
    let end = end(spec);
    let order: Vec<usize> = spec.order.iter().map(|k| k.column).collect();
    let (mut rank, mut dense) = (0u64, 0u64);
    rows.iter().enumerate().map_while(move |(i, row)| {
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
        (end.is_none_or(|e| r <= e)).then_some((row, r))
    })
}
