//! Table scan with backfill: a new job first reads the rows its upstream table or view
//! already holds, while the upstream's new changes keep flowing, and converges to the same
//! result as if it had existed from the start.
//!
//! The snapshot is read in key order at the newest closed epoch, and re-opened at each
//! barrier at the then-newest one. Upstream changes of an epoch are buffered; at the barrier,
//! those of rows already read (key at or before the read position) are passed on, and those
//! of rows not read yet are dropped: a later snapshot read sees their effect. Progress is
//! kept in a state table, so a restarted job goes on where it stopped.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::BooleanArray;
use bytes::Bytes;
use epoch_mvcc::memcomparable::OrderType;
use epoch_mvcc::{Direction, Epoch, StateStore, StateStoreIter};
use futures::{FutureExt, StreamExt};

use super::{JobProgress, Message, MessageStream};
use crate::Error;
use crate::batch::BATCH_ROWS;
use crate::chunk::{StreamChunk, batch_of, schema_of};
use crate::row_codec::{columns_from_rows, decode_value};
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};

/// The layout of a backfill's progress: one row `(0, finished, position, rows read)`.
pub(crate) fn progress_desc(table_id: u32) -> TableDesc {
    TableDesc {
        table_id,
        types: vec![
            DataType::Int32,
            DataType::Boolean,
            DataType::Varchar,
            DataType::Int64,
        ],
        pk: vec![0],
        pk_orders: vec![OrderType::ASC],
        dist_key_in_pk: vec![],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Bytes> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

/// Where the snapshot read is.
struct Position {
    /// Key of the last row read; `None` before the first.
    last: Option<Bytes>,
    /// Every row has been read.
    exhausted: bool,
    /// Every row has been read and that is committed with a barrier.
    finished: bool,
    rows: i64,
}

impl Position {
    fn row(&self) -> Vec<Datum> {
        vec![
            Datum::Int32(0),
            Datum::Bool(self.finished),
            self.last
                .as_ref()
                .map_or(Datum::Null, |k| Datum::Varchar(hex(k))),
            Datum::Int64(self.rows),
        ]
    }

    fn from_row(row: Option<Vec<Datum>>) -> Result<Position, Error> {
        let Some(row) = row else {
            return Ok(Position {
                last: None,
                exhausted: false,
                finished: false,
                rows: 0,
            });
        };
        let corrupt = || Error::CorruptState("backfill progress".into());
        let finished = matches!(row[1], Datum::Bool(true));
        let last = match &row[2] {
            Datum::Varchar(h) => Some(unhex(h).ok_or_else(corrupt)?),
            _ => None,
        };
        let rows = match row[3] {
            Datum::Int64(n) => n,
            _ => return Err(corrupt()),
        };
        Ok(Position {
            last,
            exhausted: finished,
            finished,
            rows,
        })
    }

    /// Keeps the changes of rows the snapshot read has passed.
    fn passed(
        &self,
        upstream: &TableDesc,
        chunk: StreamChunk,
    ) -> Result<Option<StreamChunk>, Error> {
        if self.exhausted {
            return Ok(Some(chunk));
        }
        let Some(last) = &self.last else {
            return Ok(None);
        };
        let mask: BooleanArray = upstream
            .keys(chunk.data())
            .iter()
            .map(|k| Some(k <= last))
            .collect();
        Ok(match mask.true_count() {
            0 => None,
            _ => Some(chunk.filter(&mask)?),
        })
    }
}

async fn snapshot_from<S: StateStore>(
    store: &S,
    upstream: &TableDesc,
    epoch: Epoch,
    after: &Option<Bytes>,
) -> Result<S::Iter, Error> {
    let (start, end) = upstream.key_range();
    let start = match after {
        Some(k) => Bound::Excluded(k.clone()),
        None => start,
    };
    Ok(store.iter((start, end), epoch, Direction::Forward).await?)
}

fn output(columns: &[usize], chunk: StreamChunk) -> Result<Message, Error> {
    let data = chunk.data().project(columns)?;
    Ok(Message::Chunk(StreamChunk::new(chunk.ops().to_vec(), data)))
}

/// The scan of `upstream` for job `job`: backfill, then every change of `input`.
pub(crate) fn backfill<S: StateStore>(
    job: u32,
    store: S,
    upstream: TableDesc,
    columns: Vec<usize>,
    mut progress_table: StateTable<S>,
    progress: Arc<JobProgress>,
    mut input: MessageStream,
) -> MessageStream {
    Box::pin(async_stream::try_stream! {
        let first = match input.next().await {
            None => return,
            Some(Ok(Message::Barrier(b))) => b,
            Some(Ok(Message::Chunk(_) | Message::Watermark(_))) => {
                Err(Error::Internal("a job's first message must be a barrier".into()))?;
                return;
            }
            Some(Err(e)) => Err(e)?,
        };
        progress_table.init_epoch(first.epoch.curr);
        let mut pos = Position::from_row(progress_table.get_row(&[Datum::Int32(0)]).await?)?;
        let mut saved = pos.row();
        progress.rows.fetch_add(pos.rows as u64, Ordering::Relaxed);
        if pos.finished {
            progress.scans_pending.fetch_sub(1, Ordering::AcqRel);
        }
        let stop = first.stops(job);
        let mut snapshot = if pos.exhausted {
            None
        } else {
            Some(snapshot_from(&store, &upstream, first.epoch.prev, &pos.last).await?)
        };
        yield Message::Barrier(first);
        if stop {
            return;
        }
        let types = upstream.types.clone();
        let mut buffer: Vec<StreamChunk> = Vec::new();
        loop {
            // Take what the upstream has ready (everything, blocking, once the snapshot is
            // read); then read a batch of the snapshot.
            loop {
                let next = if snapshot.is_none() {
                    Some(input.next().await)
                } else {
                    input.next().now_or_never()
                };
                let Some(next) = next else { break };
                match next {
                    None => return,
                    Some(Err(e)) => Err(e)?,
                    Some(Ok(Message::Chunk(chunk))) if pos.exhausted => {
                        yield output(&columns, chunk)?;
                    }
                    Some(Ok(Message::Chunk(chunk))) => buffer.push(chunk),
                    // Once the snapshot is read, the upstream's watermarks hold here too
                    // (before, rows of the snapshot below one may still come).
                    Some(Ok(Message::Watermark(w))) => {
                        if pos.exhausted
                            && let Some(at) = columns.iter().position(|c| *c == w.column)
                        {
                            yield Message::Watermark(w.at(at));
                        }
                    }
                    Some(Ok(Message::Barrier(barrier))) => {
                        for chunk in std::mem::take(&mut buffer) {
                            if let Some(chunk) = pos.passed(&upstream, chunk)? {
                                yield output(&columns, chunk)?;
                            }
                        }
                        if pos.exhausted && !pos.finished {
                            pos.finished = true;
                            progress.scans_pending.fetch_sub(1, Ordering::AcqRel);
                        }
                        let now = pos.row();
                        if now != saved {
                            progress_table.insert(now.clone());
                            saved = now;
                        }
                        progress_table.commit(barrier.epoch.curr).await?;
                        let stop = barrier.stops(job);
                        if !pos.exhausted {
                            snapshot = Some(
                                snapshot_from(&store, &upstream, barrier.epoch.prev, &pos.last)
                                    .await?,
                            );
                        }
                        yield Message::Barrier(barrier);
                        if stop {
                            return;
                        }
                    }
                }
            }
            let Some(iter) = snapshot.as_mut() else { continue };
            let mut rows = Vec::new();
            while rows.len() < BATCH_ROWS {
                match iter.next().await? {
                    Some((key, value)) => {
                        rows.push(decode_value(&value, &types)?);
                        pos.last = Some(key);
                    }
                    None => {
                        pos.exhausted = true;
                        break;
                    }
                }
            }
            if pos.exhausted {
                snapshot = None;
            }
            if !rows.is_empty() {
                pos.rows += rows.len() as i64;
                progress.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
                let data = batch_of(schema_of(&types), columns_from_rows(&rows, &types), rows.len())?;
                yield output(&columns, StreamChunk::inserts(data))?;
            }
            if pos.exhausted {
                // Every row is read: the buffered changes all apply, in order.
                for chunk in std::mem::take(&mut buffer) {
                    yield output(&columns, chunk)?;
                }
            }
            tokio::task::yield_now().await;
        }
    })
}
