//! A source of literal rows: inserted once, in the job's first epoch.

use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::OrderType;
use futures::StreamExt;

use super::{Message, MessageStream};
use crate::chunk::{StreamChunk, batch_of, schema_of};
use crate::expr::Expr;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum, array_from_datums};
use crate::{Error, Result};

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

fn evaluate(rows: &[Vec<Expr>], types: &[DataType]) -> Result<StreamChunk> {
    let empty = batch_of(schema_of(&[]), vec![], 1)?;
    let mut columns = vec![Vec::with_capacity(rows.len()); types.len()];
    for row in rows {
        for (c, expr) in row.iter().enumerate() {
            let v = super::simple::eval_lenient(expr, &empty);
            columns[c].push(Datum::from_array(v.as_ref(), 0));
        }
    }
    let arrays = types
        .iter()
        .zip(&columns)
        .map(|(t, vals)| array_from_datums(*t, vals.iter()))
        .collect();
    Ok(StreamChunk::inserts(batch_of(
        schema_of(types),
        arrays,
        rows.len(),
    )?))
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
                yield Message::Chunk(evaluate(&rows, &types)?);
            }
        }
    })
}
