//! Window functions over partitions in a view: every input row is kept in a state table keyed
//! by (partition key, order columns, stream key), distributed by the partition key, so a
//! partition's rows in order are one prefix scan. The first change of a partition in an epoch
//! reads the partition's output rows (its rows with their window values); at the barrier they
//! are computed again and the difference is emitted. A change costs a pass over its
//! partition, whatever the functions are.

use std::collections::HashMap;

use epoch_mvcc::StateStore;
use futures::StreamExt;

use super::top_n::{push_difference, row_bytes};
use super::{Message, MessageStream};
use crate::batch::plan::{SortKey, WindowFunc};
use crate::chunk::{StreamChunk, batch_of, rows_of, schema_of};
use crate::row_codec::columns_from_rows;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

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

/// The layout of the rows: keyed by the partition key, the order columns, then the stream
/// key (see [`super::top_n::ordered_rows_desc`]).
pub(crate) fn over_window_desc(spec: &OverWindowSpec) -> TableDesc {
    super::top_n::ordered_rows_desc(
        spec.state_table,
        &spec.types,
        &spec.partition_by,
        &spec.order_by,
        &spec.input_key,
    )
}

/// The output rows of one partition: its rows in order, each with its window values.
async fn outputs<S: StateStore>(
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

/// A partition's key values and the output rows it had before its first change in an epoch.
type PartitionBefore = (Vec<Datum>, Vec<Vec<Datum>>);

/// Computes the window functions of `spec` over `input`, emitting changed output rows.
pub(crate) fn over_window<S: StateStore>(
    job: u32,
    store: S,
    mut input: MessageStream,
    spec: OverWindowSpec,
    cache_bytes: usize,
) -> MessageStream {
    let mut table = StateTable::new(
        over_window_desc(&spec),
        store,
        epoch_mvcc::Epoch(0),
        cache_bytes,
    );
    // A partition's rows are read in order.
    if !spec.partition_by.is_empty() {
        table.index_prefix(spec.partition_by.len());
    }
    let mut output_types = spec.types.clone();
    output_types.extend(spec.calls.iter().map(|c| c.output_type(&spec.types)));
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        let mut before: HashMap<Vec<u8>, PartitionBefore> = HashMap::new();
        while let Some(message) = input.next().await {
            match message? {
                // Output rows move between ranks: no promise about them holds.
                Message::Watermark(_) => {}
                Message::Chunk(chunk) => {
                    if first {
                        Err(Error::Internal("a job's first message must be a barrier".into()))?;
                    }
                    for (r, op) in chunk.ops().iter().enumerate() {
                        let row = chunk.row(r);
                        let partition: Vec<Datum> =
                            spec.partition_by.iter().map(|k| row[*k].clone()).collect();
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            before.entry(row_bytes(&partition))
                        {
                            let old = outputs(&table, &spec, &partition).await?;
                            slot.insert((partition, old));
                        }
                        if op.is_insert() {
                            table.insert(row);
                        } else {
                            table.delete(row);
                        }
                    }
                }
                Message::Barrier(barrier) => {
                    if first {
                        first = false;
                        table.init_epoch(barrier.epoch.curr);
                    } else {
                        let mut ops = Vec::new();
                        let mut rows = Vec::new();
                        for (_, (partition, old)) in before.drain() {
                            let new = outputs(&table, &spec, &partition).await?;
                            push_difference(old, new, &mut ops, &mut rows);
                        }
                        if !rows.is_empty() {
                            let data = batch_of(
                                schema_of(&output_types),
                                columns_from_rows(&rows, &output_types),
                                rows.len(),
                            )?;
                            yield Message::Chunk(StreamChunk::new(ops, data));
                        }
                        table.commit(barrier.epoch.curr).await?;
                    }
                    let stop = barrier.stops(job);
                    yield Message::Barrier(barrier);
                    if stop {
                        return;
                    }
                }
            }
        }
    })
}
