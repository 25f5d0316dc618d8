//! Top-N: the first rows of the input by an order, maintained as the input changes.
//!
//! Every input row is kept in a state table keyed by (order columns, stream key), so the
//! current top rows are the first rows of the table. At each barrier where the input
//! changed, the new top rows are compared with the ones emitted before and the difference
//! is emitted.

use epoch_mvcc::StateStore;
use futures::StreamExt;

use super::{Message, MessageStream};
use crate::batch::plan::SortKey;
use crate::chunk::{Op, StreamChunk, batch_of, schema_of};
use crate::row_codec::columns_from_rows;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

/// The layout of the rows: keyed by the order columns, then the input's stream key.
pub(crate) fn top_n_desc(
    table_id: u32,
    types: &[DataType],
    order: &[SortKey],
    input_key: &[usize],
) -> TableDesc {
    let mut pk: Vec<usize> = order.iter().map(|k| k.column).collect();
    let mut pk_orders: Vec<_> = order.iter().map(|k| k.order).collect();
    for k in input_key {
        if !pk.contains(k) {
            pk.push(*k);
            pk_orders.push(epoch_mvcc::memcomparable::OrderType::ASC);
        }
    }
    TableDesc {
        table_id,
        types: types.to_vec(),
        pk,
        pk_orders,
        dist_key_in_pk: vec![],
    }
}

async fn top<S: StateStore>(
    table: &StateTable<S>,
    limit: Option<u64>,
    offset: u64,
) -> Result<Vec<Vec<Datum>>> {
    let end = limit.map_or(usize::MAX, |l| l.saturating_add(offset) as usize);
    let mut rows = table.rows_with_prefix(&[], end).await?;
    rows.drain(..(offset as usize).min(rows.len()));
    Ok(rows)
}

/// Keeps the rows of `input` ranked `offset..offset + limit` by `order`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn top_n<S: StateStore>(
    job: u32,
    store: S,
    mut input: MessageStream,
    types: Vec<DataType>,
    order: Vec<SortKey>,
    limit: Option<u64>,
    offset: u64,
    input_key: Vec<usize>,
    state_table: u32,
    cache_bytes: usize,
) -> MessageStream {
    let desc = top_n_desc(state_table, &types, &order, &input_key);
    let mut table = StateTable::new(desc, store, epoch_mvcc::Epoch(0), cache_bytes);
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        let mut emitted: Vec<Vec<Datum>> = Vec::new();
        let mut dirty = false;
        while let Some(message) = input.next().await {
            match message? {
                Message::Chunk(chunk) => {
                    if first {
                        Err(Error::Internal("a job's first message must be a barrier".into()))?;
                    }
                    table.write_chunk(&chunk);
                    dirty = true;
                }
                Message::Barrier(barrier) => {
                    if first {
                        first = false;
                        table.init_epoch(barrier.epoch.curr);
                        emitted = top(&table, limit, offset).await?;
                    } else {
                        if dirty {
                            dirty = false;
                            let now = top(&table, limit, offset).await?;
                            let mut ops = Vec::new();
                            let mut rows = Vec::new();
                            for old in emitted.iter().filter(|r| !now.contains(r)) {
                                ops.push(Op::Delete);
                                rows.push(old.clone());
                            }
                            for new in now.iter().filter(|r| !emitted.contains(r)) {
                                ops.push(Op::Insert);
                                rows.push(new.clone());
                            }
                            emitted = now;
                            if !rows.is_empty() {
                                let data = batch_of(
                                    schema_of(&types),
                                    columns_from_rows(&rows, &types),
                                    rows.len(),
                                )?;
                                yield Message::Chunk(StreamChunk::new(ops, data));
                            }
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
