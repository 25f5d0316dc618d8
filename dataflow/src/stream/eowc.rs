//! `EMIT ON WINDOW CLOSE`: a view that takes each row only once it is final. The input's rows
//! (a window aggregation's, typically) are held in a state table keyed by the watermark
//! column; changes to a held row replace it. At each barrier after the column's watermark
//! advanced, the rows below it can change no more: they leave the state and go downstream as
//! inserts, so the output only ever inserts.

use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::OrderType;
use futures::StreamExt;

use super::{Message, MessageStream};
use crate::chunk::{StreamChunk, batch_of, schema_of};
use crate::row_codec::columns_from_rows;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};

/// The layout of the held rows: whole input rows keyed by the watermark column, then the
/// input's stream key, distributed as the input is (by `dist_key`, input columns).
pub(crate) fn held_rows_desc(
    table_id: u32,
    types: &[DataType],
    watermark_column: usize,
    input_key: &[usize],
    dist_key: &[usize],
) -> TableDesc {
    let mut pk = vec![watermark_column];
    pk.extend(input_key.iter().filter(|c| **c != watermark_column));
    let dist_key_in_pk = dist_key
        .iter()
        .map(|c| {
            pk.iter()
                .position(|k| k == c)
                .expect("the planner distributes the input by key columns")
        })
        .collect();
    TableDesc {
        table_id,
        types: types.to_vec(),
        pk_orders: vec![OrderType::ASC; pk.len()],
        pk,
        dist_key_in_pk,
    }
}

/// Holds `input`'s rows in `held` until the watermark of `watermark_column` passes them,
/// then emits them as inserts; `vnodes` are the vnodes of this actor's rows.
pub(crate) fn emit_on_window_close<S: StateStore>(
    job: u32,
    mut input: MessageStream,
    mut held: StateTable<S>,
    watermark_column: usize,
    vnodes: Vec<u16>,
) -> MessageStream {
    let types = held.desc().types.clone();
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        // The newest watermark, while its rows are still to go out.
        let mut closing: Option<Datum> = None;
        while let Some(message) = input.next().await {
            match message? {
                Message::Chunk(chunk) => {
                    held.write_chunk(&chunk);
                    held.spill_if_full().await?;
                }
                Message::Watermark(w) if w.column == watermark_column => {
                    closing = Some(w.value);
                }
                // The output's rows never change, so other columns' watermarks tell a reader
                // nothing it could act on.
                Message::Watermark(_) => {}
                Message::Barrier(barrier) if first => {
                    held.init_epoch(barrier.epoch.curr);
                    first = false;
                    let stop = barrier.stops(job);
                    yield Message::Barrier(barrier);
                    if stop {
                        return;
                    }
                }
                Message::Barrier(barrier) => {
                    if let Some(bound) = closing.take() {
                        let mut rows = Vec::new();
                        for vnode in &vnodes {
                            rows.extend(held.delete_rows_below(*vnode, &bound).await?);
                        }
                        if !rows.is_empty() {
                            let batch = batch_of(
                                schema_of(&types),
                                columns_from_rows(&rows, &types),
                                rows.len(),
                            )?;
                            yield Message::Chunk(StreamChunk::inserts(batch));
                        }
                        yield Message::Watermark(super::Watermark {
                            column: watermark_column,
                            value: bound,
                        });
                    }
                    held.commit(barrier.epoch.curr).await?;
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
