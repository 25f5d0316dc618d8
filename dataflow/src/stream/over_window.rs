//! Window functions over partitions in a view, maintained by
//! [`super::grouped::recompute_groups`]: a change of a partition computes the partition's
//! output rows (its rows in order with their window values) again, whatever the functions are.

use epoch_mvcc::StateStore;

use crate::Result;
use crate::batch::plan::{SortKey, WindowFunc};
use crate::chunk::{batch_of, rows_of, schema_of};
use crate::row_codec::columns_from_rows;
use crate::state_table::StateTable;
use crate::types::{DataType, Datum};

/// What an over-window operator computes.
#[derive(Clone, Debug)]
pub(crate) struct OverWindowSpec {
    /// The input's column types.
    pub types: Vec<DataType>,
    /// Partition key columns (empty: one partition).
    pub partition_by: Vec<usize>,
    /// The order within a partition.
    pub order_by: Vec<SortKey>,
    /// The functions; each adds a column after the input's.
    pub calls: Vec<WindowFunc>,
    /// The input's stream key (ties are broken by it, so results are deterministic).
    pub input_key: Vec<usize>,
    /// The state table of every input row.
    pub state_table: u32,
}

/// The output rows of one partition: its rows in order, each with its window values.
pub(crate) async fn outputs<S: StateStore>(
    table: &StateTable<S>,
    spec: &OverWindowSpec,
    partition: &[Datum],
) -> Result<Vec<Vec<Datum>>> {
    let rows = table.rows_with_prefix(partition, usize::MAX).await?;
    if rows.is_empty() {
        return Ok(rows);
    }
    let batch = batch_of(
        schema_of(&spec.types),
        columns_from_rows(&rows, &spec.types),
        rows.len(),
    )?;
    // One partition, already in order: the computation keeps ties in this (key) order.
    let computed =
        crate::batch::window::rank(&[batch], &spec.types, &[], &spec.order_by, &spec.calls)?;
    Ok(rows_of(&[computed]))
}
