//! A source of literal rows: inserted once, in the job's first epoch.

use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::OrderType;
use futures::StreamExt;

use super::simple::eval_lenient;
use super::{Message, MessageStream};
use crate::Error;
use crate::batch::literal_rows;
use crate::chunk::StreamChunk;
use crate::expr::Expr;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};

/// The layout of the "rows were emitted" marker.
pub(crate) fn values_desc(table_id: u32) -> TableDesc {
    TableDesc {
        table_id,
        types: vec![DataType::Int32],
        pk: vec![0],
        pk_orders: vec![OrderType::ASC],
        dist_key_in_pk: vec![],
    }
}

/// Emits `rows` once, then only the barriers of `barriers`.
pub(crate) fn values<S: StateStore>(
    job: u32,
    rows: Vec<Vec<Expr>>,
    types: Vec<DataType>,
    mut state: StateTable<S>,
    mut barriers: MessageStream,
) -> MessageStream {
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        while let Some(message) = barriers.next().await {
            let Message::Barrier(barrier) = message? else {
                Err(Error::Internal("a values source receives barriers only".into()))?;
                return;
            };
            let stop = barrier.stops(job);
            let emit = if first {
                first = false;
                state.init_epoch(barrier.epoch.curr);
                state.get_row(&[Datum::Int32(0)]).await?.is_none()
            } else {
                state.commit(barrier.epoch.curr).await?;
                false
            };
            yield Message::Barrier(barrier);
            if stop {
                return;
            }
            if emit {
                state.insert(vec![Datum::Int32(0)]);
                let data = literal_rows(&rows, &types, |e, b| Ok(eval_lenient(e, b)))?;
                yield Message::Chunk(StreamChunk::inserts(data));
            }
        }
    })
}
