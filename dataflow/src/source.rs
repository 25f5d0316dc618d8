//! Sources: rows that come from a connector rather than DML. The `nexmark` connector generates
//! the Nexmark benchmark's persons, auctions or bids with the `nexmark` crate (the generator
//! RisingWave and others use, so results are comparable).
//!
//! A view over a source reads it from its first event; the source operator of the view's job
//! keeps its offset in a state table committed with each epoch, so after a restart it resumes
//! exactly after the last committed event: nothing is lost or generated twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use epoch_mvcc::memcomparable::OrderType;
use futures::StreamExt;
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use serde::{Deserialize, Serialize};

use crate::chunk::{StreamChunk, batch_of, schema_of};
use crate::row_codec::columns_from_rows;
use crate::state_table::{StateTable, TableDesc};
use crate::stream::{JobProgress, Message, MessageStream};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

/// Which Nexmark events a source yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NexmarkTable {
    /// New persons.
    Person,
    /// New auctions.
    Auction,
    /// Bids.
    Bid,
}

impl NexmarkTable {
    /// The columns a source of this table may declare, with their types.
    pub fn columns(self) -> &'static [(&'static str, DataType)] {
        use DataType::{Int64, Timestamp, Varchar};
        match self {
            NexmarkTable::Person => &[
                ("id", Int64),
                ("name", Varchar),
                ("email_address", Varchar),
                ("credit_card", Varchar),
                ("city", Varchar),
                ("state", Varchar),
                ("date_time", Timestamp),
                ("extra", Varchar),
            ],
            NexmarkTable::Auction => &[
                ("id", Int64),
                ("item_name", Varchar),
                ("description", Varchar),
                ("initial_bid", Int64),
                ("reserve", Int64),
                ("date_time", Timestamp),
                ("expires", Timestamp),
                ("seller", Int64),
                ("category", Int64),
                ("extra", Varchar),
            ],
            NexmarkTable::Bid => &[
                ("auction", Int64),
                ("bidder", Int64),
                ("price", Int64),
                ("channel", Varchar),
                ("url", Varchar),
                ("date_time", Timestamp),
                ("extra", Varchar),
            ],
        }
    }

    fn event_type(self) -> EventType {
        match self {
            NexmarkTable::Person => EventType::Person,
            NexmarkTable::Auction => EventType::Auction,
            NexmarkTable::Bid => EventType::Bid,
        }
    }
}

/// A `nexmark` source's settings (its `WITH` options).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NexmarkSource {
    /// `nexmark.table.type`: which events.
    pub table: NexmarkTable,
    /// `nexmark.event.num`: events of all kinds to generate (this table gets its share);
    /// unbounded when `None`.
    pub event_num: Option<u64>,
    /// `nexmark.min.event.gap.in.ns`: the least time between events (0: as fast as the view
    /// takes them).
    pub min_event_gap_ns: u64,
    /// `nexmark.max.chunk.size`: rows per chunk.
    pub max_chunk_size: usize,
    /// The time of the first event, fixed when the source is created so that every reader
    /// and every restart generates the same events.
    pub base_time_ms: u64,
}

/// A source's connector and the columns it was declared with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// The connector.
    pub nexmark: NexmarkSource,
    /// For each declared column, the position of the generated field it takes (in
    /// [`NexmarkTable::columns`]); the hidden row id (the event's offset) follows them.
    pub fields: Vec<usize>,
}

impl SourceSpec {
    /// The types of the source's rows: its declared columns, then the row id.
    pub fn types(&self) -> Vec<DataType> {
        let all = self.nexmark.table.columns();
        self.fields
            .iter()
            .map(|f| all[*f].1)
            .chain([DataType::Int64])
            .collect()
    }
}

/// The layout of a source's offset: one row, the number of events it has emitted.
pub(crate) fn offset_desc(table_id: u32) -> TableDesc {
    TableDesc {
        table_id,
        types: vec![DataType::Int32, DataType::Int64],
        pk: vec![0],
        pk_orders: vec![OrderType::ASC],
        dist_key_in_pk: vec![],
    }
}

fn timestamp(ms: u64) -> Datum {
    Datum::Timestamp(i64::try_from(ms).unwrap_or(i64::MAX).saturating_mul(1000))
}

fn int(v: usize) -> Datum {
    Datum::Int64(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The fields of one event, in [`NexmarkTable::columns`] order.
fn fields_of(event: Event) -> Vec<Datum> {
    match event {
        Event::Person(p) => vec![
            int(p.id),
            Datum::Varchar(p.name),
            Datum::Varchar(p.email_address),
            Datum::Varchar(p.credit_card),
            Datum::Varchar(p.city),
            Datum::Varchar(p.state),
            timestamp(p.date_time),
            Datum::Varchar(p.extra),
        ],
        Event::Auction(a) => vec![
            int(a.id),
            Datum::Varchar(a.item_name),
            Datum::Varchar(a.description),
            int(a.initial_bid),
            int(a.reserve),
            timestamp(a.date_time),
            timestamp(a.expires),
            int(a.seller),
            int(a.category),
            Datum::Varchar(a.extra),
        ],
        Event::Bid(b) => vec![
            int(b.auction),
            int(b.bidder),
            int(b.price),
            Datum::Varchar(b.channel),
            Datum::Varchar(b.url),
            timestamp(b.date_time),
            Datum::Varchar(b.extra),
        ],
    }
}

/// Generates the source's rows from offset `offset` on.
struct Generator {
    spec: SourceSpec,
    events: EventGenerator,
    /// Events emitted so far (the next one's offset).
    offset: u64,
    started: Instant,
    /// The offset at `started`, for pacing.
    started_offset: u64,
}

impl Generator {
    fn new(spec: SourceSpec, offset: u64) -> Self {
        let config = NexmarkConfig {
            base_time: spec.nexmark.base_time_ms,
            ..NexmarkConfig::default()
        };
        let events = EventGenerator::new(config)
            .with_type_filter(spec.nexmark.table.event_type())
            .with_offset(offset);
        Generator {
            spec,
            events,
            offset,
            started: Instant::now(),
            started_offset: offset,
        }
    }

    /// Whether every event the source has is out.
    fn exhausted(&self) -> bool {
        self.spec
            .nexmark
            .event_num
            .is_some_and(|n| self.events.global_offset() >= n)
    }

    /// How long to wait before the next event is due (zero when it is).
    fn wait(&self) -> Duration {
        let gap = self.spec.nexmark.min_event_gap_ns;
        if gap == 0 {
            return Duration::ZERO;
        }
        let due = Duration::from_nanos(gap.saturating_mul(self.offset - self.started_offset));
        due.saturating_sub(self.started.elapsed())
    }

    /// The next chunk: due events up to the chunk size.
    fn chunk(&mut self) -> Result<StreamChunk> {
        let gap = self.spec.nexmark.min_event_gap_ns;
        let due = if gap == 0 {
            u64::MAX
        } else {
            let elapsed = self.started.elapsed().as_nanos() / u128::from(gap);
            self.started_offset + u64::try_from(elapsed).unwrap_or(u64::MAX) + 1
        };
        let mut rows = Vec::new();
        while rows.len() < self.spec.nexmark.max_chunk_size.max(1)
            && self.offset < due
            && !self.exhausted()
        {
            let Some(event) = self.events.next() else {
                break;
            };
            let fields = fields_of(event);
            let mut row: Vec<Datum> = self
                .spec
                .fields
                .iter()
                .map(|f| fields[*f].clone())
                .collect();
            row.push(Datum::Int64(i64::try_from(self.offset).unwrap_or(i64::MAX)));
            rows.push(row);
            self.offset += 1;
        }
        let types = self.spec.types();
        let data = batch_of(
            schema_of(&types),
            columns_from_rows(&rows, &types),
            rows.len(),
        )?;
        Ok(StreamChunk::inserts(data))
    }
}

/// A source's rows between the barriers of `barriers`, resuming at the offset committed in
/// `state`.
pub(crate) fn source<S: epoch_mvcc::StateStore>(
    job: u32,
    spec: SourceSpec,
    mut state: StateTable<S>,
    mut barriers: MessageStream,
    progress: Arc<JobProgress>,
) -> MessageStream {
    Box::pin(async_stream::try_stream! {
        let mut generator: Option<Generator> = None;
        let mut counted_done = false;
        loop {
            let ready = generator.as_ref().filter(|g| !g.exhausted()).map(Generator::wait);
            // Between barriers, emit due rows; a barrier waiting goes first.
            let next = match ready {
                Some(wait) => tokio::select! {
                    biased;
                    m = barriers.next() => Some(m),
                    _ = tokio::time::sleep(wait) => None,
                },
                None => Some(barriers.next().await),
            };
            let Some(message) = next else {
                let g = generator.as_mut().expect("ready");
                let chunk = g.chunk()?;
                progress
                    .source_events
                    .fetch_add(chunk.cardinality() as u64, Ordering::Relaxed);
                if g.exhausted() && !counted_done {
                    counted_done = true;
                    progress.sources_running.fetch_sub(1, Ordering::AcqRel);
                }
                if !chunk.is_empty() {
                    yield Message::Chunk(chunk);
                }
                tokio::task::yield_now().await;
                continue;
            };
            let Some(message) = message else {
                return;
            };
            let Message::Barrier(barrier) = message? else {
                Err(Error::Internal("a source receives barriers only".into()))?;
                return;
            };
            match &generator {
                None => {
                    state.init_epoch(barrier.epoch.curr);
                    let offset = match state.get_row(&[Datum::Int32(0)]).await? {
                        Some(row) => match row[1] {
                            Datum::Int64(o) => u64::try_from(o).unwrap_or(0),
                            _ => 0,
                        },
                        None => 0,
                    };
                    let g = Generator::new(spec.clone(), offset);
                    // Resumed after its last event: nothing left.
                    if g.exhausted() {
                        counted_done = true;
                        progress.sources_running.fetch_sub(1, Ordering::AcqRel);
                    }
                    generator = Some(g);
                }
                Some(g) => {
                    let offset = i64::try_from(g.offset).unwrap_or(i64::MAX);
                    state.insert(vec![Datum::Int32(0), Datum::Int64(offset)]);
                    state.commit(barrier.epoch.curr).await?;
                }
            }
            let stop = barrier.stops(job);
            yield Message::Barrier(barrier);
            if stop {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bids(event_num: Option<u64>) -> SourceSpec {
        SourceSpec {
            nexmark: NexmarkSource {
                table: NexmarkTable::Bid,
                event_num,
                min_event_gap_ns: 0,
                max_chunk_size: 7,
                base_time_ms: 1_436_918_400_000,
            },
            fields: vec![0, 2, 5],
        }
    }

    #[test]
    fn generation_resumes_exactly_at_an_offset() {
        let mut whole = Generator::new(bids(None), 0);
        let first = whole.chunk().unwrap();
        let second = whole.chunk().unwrap();
        assert_eq!((first.cardinality(), second.cardinality()), (7, 7));
        // Starting at offset 7 yields exactly the second chunk.
        let mut resumed = Generator::new(bids(None), 7);
        assert_eq!(
            crate::chunk::rows_of(&[resumed.chunk().unwrap().data().clone()]),
            crate::chunk::rows_of(&[second.data().clone()])
        );
    }

    #[test]
    fn a_bounded_source_stops_at_its_share_of_events() {
        let mut g = Generator::new(bids(Some(100)), 0);
        let mut total = 0;
        while !g.exhausted() {
            total += g.chunk().unwrap().cardinality();
        }
        // 46 of every 50 events are bids.
        assert_eq!(total, 92);
    }
}
