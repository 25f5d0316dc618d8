//! Top-N per group: the rows ranked `offset + 1 ..= offset + limit` in each group by an order,
//! maintained as the input changes (`ORDER BY ... LIMIT` in a view has one group; `rank <= N`
//! over `row_number()`/`rank()`/`dense_rank()` partitioned by the group key has many).
//!
//! Every input row is kept in a state table keyed by (group key, order columns, stream key),
//! distributed by the group key, so a group's rows in order are one prefix scan. The first
//! change of a group in an epoch first reads the group's current top rows; at the barrier the
//! group's new top rows are read and the difference is emitted. With `output_rank` each row
//! carries its rank, so a row whose rank moves is retracted and inserted again.

use std::collections::{HashMap, HashSet};

use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::{self, OrderType};
use futures::StreamExt;

use super::{Message, MessageStream};
use crate::batch::plan::{SortKey, WindowFunc};
use crate::chunk::{Op, StreamChunk, batch_of, schema_of};
use crate::row_codec::columns_from_rows;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

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

/// The memcomparable encoding of a row's values: equal rows, equal bytes.
pub(crate) fn row_bytes(row: &[Datum]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in row {
        memcomparable::encode_datum(&mut out, &d.to_key(), OrderType::ASC);
    }
    out
}

/// Appends the changes that turn a group's output rows `old` into `new`: deletes of the rows
/// that went, inserts of those that came.
pub(crate) fn push_difference(
    old: Vec<Vec<Datum>>,
    new: Vec<Vec<Datum>>,
    ops: &mut Vec<Op>,
    rows: &mut Vec<Vec<Datum>>,
) {
    let old_set: HashSet<Vec<u8>> = old.iter().map(|r| row_bytes(r)).collect();
    let new_set: HashSet<Vec<u8>> = new.iter().map(|r| row_bytes(r)).collect();
    for gone in old.into_iter().filter(|r| !new_set.contains(&row_bytes(r))) {
        ops.push(Op::Delete);
        rows.push(gone);
    }
    for came in new.into_iter().filter(|r| !old_set.contains(&row_bytes(r))) {
        ops.push(Op::Insert);
        rows.push(came);
    }
}

/// The layout of every input row of an operator that reads its rows by group in order (top-N
/// by group, window functions by partition): keyed by the group key, the order columns, then
/// the rest of the stream key, and distributed by the group key.
pub(crate) fn ordered_rows_desc(
    table_id: u32,
    types: &[DataType],
    group: &[usize],
    order: &[SortKey],
    input_key: &[usize],
) -> TableDesc {
    let mut pk: Vec<usize> = group.to_vec();
    let mut pk_orders = vec![OrderType::ASC; pk.len()];
    for k in order {
        pk.push(k.column);
        pk_orders.push(k.order);
    }
    for k in input_key {
        if !pk.contains(k) {
            pk.push(*k);
            pk_orders.push(OrderType::ASC);
        }
    }
    TableDesc {
        table_id,
        types: types.to_vec(),
        pk,
        pk_orders,
        dist_key_in_pk: (0..group.len()).collect(),
    }
}

/// The layout of the rows: see [`ordered_rows_desc`].
pub(crate) fn top_n_desc(spec: &TopNSpec) -> TableDesc {
    ordered_rows_desc(
        spec.state_table,
        &spec.types,
        &spec.group_key,
        &spec.order,
        &spec.input_key,
    )
}

/// The kept rows of one group, in order, each with its rank when asked for.
async fn top<S: StateStore>(
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

/// A group's key values and the top rows it had before its first change in an epoch.
type GroupBefore = (Vec<Datum>, Vec<Vec<Datum>>);

/// Keeps the top rows of each group of `input`.
pub(crate) fn top_n<S: StateStore>(
    job: u32,
    store: S,
    mut input: MessageStream,
    spec: TopNSpec,
    cache_bytes: usize,
) -> MessageStream {
    let mut table = StateTable::new(top_n_desc(&spec), store, epoch_mvcc::Epoch(0), cache_bytes);
    // A group's rows are read in order.
    if !spec.group_key.is_empty() {
        table.index_prefix(spec.group_key.len());
    }
    let mut output_types = spec.types.clone();
    if spec.output_rank {
        output_types.push(DataType::Int64);
    }
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        // The top rows each group changed this epoch had before its first change.
        let mut before: HashMap<Vec<u8>, GroupBefore> = HashMap::new();
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
                        let group: Vec<Datum> =
                            spec.group_key.iter().map(|k| row[*k].clone()).collect();
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            before.entry(row_bytes(&group))
                        {
                            let old = top(&table, &spec, &group).await?;
                            slot.insert((group, old));
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
                        for (_, (group, old)) in before.drain() {
                            let new = top(&table, &spec, &group).await?;
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
