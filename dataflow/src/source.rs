//! Sources: rows that come from a connector rather than DML.
//!
//! - `nexmark` generates the Nexmark benchmark's persons, auctions or bids with the `nexmark`
//!   crate (the generator RisingWave and others use, so results are comparable).
//! - `datagen` generates rows of the declared columns: sequences, or seeded random values.
//!
//! Both generate row `n` as a pure function of the source's settings and `n`. A source of
//! `splits` splits (`nexmark.split.num`, `datagen.split.num`) has that many generators,
//! split `s` making rows `s`, `s + splits`, `s + 2 * splits`, ...; a view's job reads them
//! in parallel, its source actors sharing the splits out. A view over a source reads it from
//! its first row; each split's offset is kept in a state table committed with each epoch, so
//! after a restart the view resumes exactly after the last committed row of every split:
//! nothing is lost or generated twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use epoch_mvcc::memcomparable::OrderType;
use futures::StreamExt;
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use serde::{Deserialize, Serialize};

use crate::batch::agg::cmp_datums;
use crate::chunk::{StreamChunk, batch_of, schema_of};
use crate::state_table::{StateTable, TableDesc};
use crate::stream::{JobProgress, Message, MessageStream, Watermark};
use crate::types::{DataType, Datum, array_from_datums};
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
    /// `nexmark.min.event.gap.in.ns`: the least time between events of the stream (of all
    /// kinds: a table's rows come at its share of the rate; 0: as fast as the view takes
    /// them).
    pub min_event_gap_ns: u64,
    /// `nexmark.max.chunk.size`: rows per chunk.
    pub max_chunk_size: usize,
    /// The time of the first event, fixed when the source is created so that every reader
    /// and every restart generates the same events.
    pub base_time_ms: u64,
}

/// A `datagen` source's settings (its `WITH` options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatagenSource {
    /// How each declared column is generated.
    pub fields: Vec<DatagenField>,
    /// `datagen.rows.per.second`: the pace (0: as fast as the view takes them).
    pub rows_per_second: u64,
    /// When the source was created: random times fall in the `max_past` before it.
    pub base_time_ms: u64,
}

/// One generated column of a `datagen` source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatagenField {
    /// Its type.
    pub ty: DataType,
    /// How its values are made.
    pub kind: DatagenKind,
}

/// How a `datagen` column's values are made (`fields.<column>.kind` and its options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DatagenKind {
    /// `sequence`: `start`, `start + 1`, ... up to `end` (a number column); NULL after it.
    Sequence {
        /// The first value.
        start: i64,
        /// The last value.
        end: i64,
    },
    /// `random` numbers between `min` and `max`.
    Random {
        /// The least value.
        min: f64,
        /// The greatest value.
        max: f64,
        /// `seed`: the same seed gives the same values.
        seed: u64,
    },
    /// `random` strings of `length` letters and digits.
    RandomString {
        /// The length.
        length: usize,
        /// The seed.
        seed: u64,
    },
    /// `random` booleans.
    RandomBool {
        /// The seed.
        seed: u64,
    },
    /// `random` dates and times within `max_past_ms` before the source's creation.
    RandomTime {
        /// `max_past`, in milliseconds.
        max_past_ms: u64,
        /// The seed.
        seed: u64,
    },
}

/// A source's connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connector {
    /// `connector = 'nexmark'`.
    Nexmark(NexmarkSource),
    /// `connector = 'datagen'`.
    Datagen(DatagenSource),
}

/// A source's connector and the columns it was declared with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// The connector.
    #[serde(flatten)]
    pub connector: Connector,
    /// For each declared column, the position of the generated field it takes (in
    /// [`NexmarkTable::columns`], or [`DatagenSource::fields`]); the hidden row id (the
    /// row's offset) follows them.
    pub fields: Vec<usize>,
    /// `WATERMARK FOR column AS expr` over the declared columns: late rows are dropped and
    /// the source's stream carries the watermark.
    #[serde(default)]
    pub watermark: Option<crate::watermark::WatermarkDesc>,
    /// Generators that together make the source's rows, each every `splits`-th row; more
    /// than one are read by parallel actors.
    #[serde(default = "one_split")]
    pub splits: u32,
}

fn one_split() -> u32 {
    1
}

impl SourceSpec {
    /// The types of the source's rows: its declared columns, then the row id.
    pub fn types(&self) -> Vec<DataType> {
        self.fields
            .iter()
            .map(|f| match &self.connector {
                Connector::Nexmark(n) => n.table.columns()[*f].1,
                Connector::Datagen(d) => d.fields[*f].ty,
            })
            .chain([DataType::Int64])
            .collect()
    }

    /// The connector's name and what it generates, for plans.
    pub fn describe(&self) -> String {
        match &self.connector {
            Connector::Nexmark(n) => format!("nexmark, table: {:?}", n.table),
            Connector::Datagen(_) => "datagen".into(),
        }
    }

    /// The splits actor `actor` of `actors` reads.
    pub fn splits_of(&self, actor: usize, actors: usize) -> Vec<u32> {
        (0..self.splits)
            .filter(|s| *s as usize % actors.max(1) == actor)
            .collect()
    }

    /// The least time between rows of the whole source in nanoseconds (0: no pacing).
    fn gap_ns(&self) -> u64 {
        match &self.connector {
            Connector::Nexmark(n) => n.min_event_gap_ns,
            Connector::Datagen(d) => 1_000_000_000u64.checked_div(d.rows_per_second).unwrap_or(0),
        }
    }

    fn max_chunk_size(&self) -> usize {
        match &self.connector {
            Connector::Nexmark(n) => n.max_chunk_size.max(1),
            Connector::Datagen(_) => 1024,
        }
    }
}

/// A stored watermark (microseconds) as a value of the watermark column's type.
fn micros_as(ty: DataType, stored: &Datum) -> Option<Datum> {
    match (ty, stored) {
        (DataType::Timestamptz, Datum::Int64(us)) => Some(Datum::Timestamptz(*us)),
        (_, Datum::Int64(us)) => Some(Datum::Timestamp(*us)),
        _ => None,
    }
}

/// The layout of a source's offsets: row `2 * s` holds the offset of split `s`'s next row,
/// row `2 * s + 1` the watermark of the actor that read it (microseconds of the timestamp),
/// if the source has one.
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

/// Field `f` of an event, in [`NexmarkTable::columns`] order; a string field moves out of
/// the event (each field is taken once).
fn take_field(event: &mut Event, f: usize) -> Datum {
    let text = |s: &mut String| Datum::Varchar(std::mem::take(s));
    match event {
        Event::Person(p) => match f {
            0 => int(p.id),
            1 => text(&mut p.name),
            2 => text(&mut p.email_address),
            3 => text(&mut p.credit_card),
            4 => text(&mut p.city),
            5 => text(&mut p.state),
            6 => timestamp(p.date_time),
            _ => text(&mut p.extra),
        },
        Event::Auction(a) => match f {
            0 => int(a.id),
            1 => text(&mut a.item_name),
            2 => text(&mut a.description),
            3 => int(a.initial_bid),
            4 => int(a.reserve),
            5 => timestamp(a.date_time),
            6 => timestamp(a.expires),
            7 => int(a.seller),
            8 => int(a.category),
            _ => text(&mut a.extra),
        },
        Event::Bid(b) => match f {
            0 => int(b.auction),
            1 => int(b.bidder),
            2 => int(b.price),
            3 => text(&mut b.channel),
            4 => text(&mut b.url),
            5 => timestamp(b.date_time),
            _ => text(&mut b.extra),
        },
    }
}

/// A seeded random number for row `offset`.
fn random(seed: u64, offset: u64, salt: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&offset.to_le_bytes());
    bytes[8..].copy_from_slice(&salt.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed)
}

/// A number as a value of a numeric type.
fn number(ty: DataType, integer: i64, float: f64) -> Result<Datum> {
    let out_of_range =
        || Error::OutOfRange(format!("datagen value {integer} out of range for {ty}"));
    Ok(match ty {
        DataType::Int16 => Datum::Int16(i16::try_from(integer).map_err(|_| out_of_range())?),
        DataType::Int32 => Datum::Int32(i32::try_from(integer).map_err(|_| out_of_range())?),
        DataType::Int64 => Datum::Int64(integer),
        DataType::Float32 => Datum::Float32(float as f32),
        DataType::Float64 => Datum::Float64(float),
        DataType::Decimal => Datum::Decimal(crate::types::Decimal::from_f64(float)?),
        other => Err(Error::Internal(format!(
            "datagen makes no numbers of type {other}"
        )))?,
    })
}

impl DatagenField {
    /// The value of this field, the `column`-th, in row `offset`.
    fn value(&self, offset: u64, column: usize, base_time_ms: u64) -> Result<Datum> {
        let salt = column as u64;
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        match &self.kind {
            DatagenKind::Sequence { start, end } => {
                let v = start.saturating_add(signed(offset));
                if v > *end {
                    return Ok(Datum::Null);
                }
                number(self.ty, v, v as f64)
            }
            DatagenKind::Random { min, max, seed } => {
                let r = random(*seed, offset, salt);
                if matches!(
                    self.ty,
                    DataType::Float32 | DataType::Float64 | DataType::Decimal
                ) {
                    let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
                    let v = min + unit * (max - min);
                    number(self.ty, v as i64, v)
                } else {
                    let (lo, hi) = (min.ceil() as i64, max.floor() as i64);
                    let span = hi.saturating_sub(lo).unsigned_abs().saturating_add(1);
                    let v = lo.saturating_add(signed(r % span.max(1)));
                    number(self.ty, v, v as f64)
                }
            }
            DatagenKind::RandomString { length, seed } => {
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                let text = (0..*length)
                    .map(|i| {
                        let r = random(*seed, offset, salt ^ ((i as u64 + 1) << 32));
                        char::from(ALPHABET[(r % ALPHABET.len() as u64) as usize])
                    })
                    .collect();
                Ok(Datum::Varchar(text))
            }
            DatagenKind::RandomBool { seed } => {
                Ok(Datum::Bool(random(*seed, offset, salt) & 1 == 1))
            }
            DatagenKind::RandomTime { max_past_ms, seed } => {
                let past = random(*seed, offset, salt) % max_past_ms.saturating_add(1);
                let micros = signed(base_time_ms.saturating_sub(past)).saturating_mul(1000);
                Ok(match self.ty {
                    DataType::Timestamp => Datum::Timestamp(micros),
                    DataType::Timestamptz => Datum::Timestamptz(micros),
                    DataType::Date => Datum::Date(
                        i32::try_from(micros.div_euclid(86_400_000_000)).unwrap_or(i32::MAX),
                    ),
                    other => Err(Error::Internal(format!(
                        "datagen makes no times of type {other}"
                    )))?,
                })
            }
        }
    }
}

/// Where a generator's rows come from.
enum Rows {
    Nexmark(Box<EventGenerator>),
    Datagen(DatagenSource),
}

/// Generates one split's rows from offset `offset` on.
struct Generator {
    spec: SourceSpec,
    rows: Rows,
    /// The next row's offset (its row id); each row advances it by the number of splits.
    offset: u64,
    started: Instant,
    /// The stream position (see [`Generator::position`]) at `started`, for pacing.
    start_position: u64,
}

impl Generator {
    fn new(spec: SourceSpec, offset: u64) -> Self {
        let step = u64::from(spec.splits.max(1));
        let rows = match &spec.connector {
            Connector::Nexmark(n) => {
                let config = NexmarkConfig {
                    base_time: n.base_time_ms,
                    ..NexmarkConfig::default()
                };
                Rows::Nexmark(Box::new(
                    EventGenerator::new(config)
                        .with_type_filter(n.table.event_type())
                        .with_offset(offset)
                        .with_step(step),
                ))
            }
            Connector::Datagen(d) => Rows::Datagen(d.clone()),
        };
        let mut generator = Generator {
            spec,
            rows,
            offset,
            started: Instant::now(),
            start_position: 0,
        };
        generator.start_position = generator.position();
        generator
    }

    /// The next row's place in the source's stream, in units of the source's gap: a nexmark
    /// event's offset among events of every kind (the gap is between events of the stream,
    /// so each table's rows come at its share of the rate), a datagen row's id (all splits
    /// together make the source's rows per second).
    fn position(&self) -> u64 {
        match &self.rows {
            Rows::Nexmark(events) => events.global_offset(),
            Rows::Datagen(_) => self.offset,
        }
    }

    /// Nanoseconds after `started` at which the next row is due.
    fn due_ns(&self) -> u128 {
        u128::from(self.spec.gap_ns()) * u128::from(self.position() - self.start_position)
    }

    /// Whether every row of the split is out: its share of a nexmark source's events, a
    /// datagen source's sequences all past their ends (never, without sequences).
    fn exhausted(&self) -> bool {
        match (&self.rows, &self.spec.connector) {
            (Rows::Nexmark(events), Connector::Nexmark(n)) => {
                n.event_num.is_some_and(|n| events.global_offset() >= n)
            }
            (Rows::Datagen(d), _) => {
                let mut ends = d.fields.iter().filter_map(|f| match f.kind {
                    DatagenKind::Sequence { start, end } => Some((start, end)),
                    _ => None,
                });
                let offset = i64::try_from(self.offset).unwrap_or(i64::MAX);
                let first = ends.next();
                first.is_some()
                    && first
                        .into_iter()
                        .chain(ends)
                        .all(|(start, end)| start.saturating_add(offset) > end)
            }
            (Rows::Nexmark(_), Connector::Datagen(_)) => unreachable!("rows follow the spec"),
        }
    }

    /// How long to wait before the next row is due (zero when it is).
    fn wait(&self) -> Duration {
        let wait = self
            .due_ns()
            .saturating_sub(self.started.elapsed().as_nanos());
        Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
    }

    /// Appends the declared columns of the next row to `columns` (one list of values per
    /// column); false when there is no next row.
    fn push_row(&mut self, columns: &mut [Vec<Datum>]) -> Result<bool> {
        match &mut self.rows {
            // Each declared column names its own field (columns have distinct names), so the
            // event's values move into the columns.
            Rows::Nexmark(events) => {
                let Some(mut event) = events.next() else {
                    return Ok(false);
                };
                for (column, f) in columns.iter_mut().zip(&self.spec.fields) {
                    column.push(take_field(&mut event, *f));
                }
            }
            Rows::Datagen(d) => {
                for (column, f) in columns.iter_mut().zip(&self.spec.fields) {
                    column.push(d.fields[*f].value(self.offset, *f, d.base_time_ms)?);
                }
            }
        }
        Ok(true)
    }

    /// The next chunk: due rows up to the chunk size.
    fn chunk(&mut self) -> Result<StreamChunk> {
        let elapsed = self.started.elapsed().as_nanos();
        let types = self.spec.types();
        let max = self.spec.max_chunk_size();
        let step = u64::from(self.spec.splits.max(1));
        // The declared columns, then the row id (the offset).
        let mut columns: Vec<Vec<Datum>> = vec![Vec::new(); types.len()];
        let (declared, row_ids) = columns.split_at_mut(types.len() - 1);
        let mut rows = 0;
        while rows < max && !self.exhausted() && self.due_ns() <= elapsed {
            if !self.push_row(declared)? {
                break;
            }
            row_ids[0].push(Datum::Int64(i64::try_from(self.offset).unwrap_or(i64::MAX)));
            rows += 1;
            self.offset += step;
        }
        let arrays = columns
            .iter()
            .zip(&types)
            .map(|(values, ty)| array_from_datums(*ty, values.iter()))
            .collect();
        Ok(StreamChunk::inserts(batch_of(
            schema_of(&types),
            arrays,
            rows,
        )?))
    }
}

/// The generators of an actor's splits, taking turns.
struct Splits {
    /// Each split's index and generator.
    generators: Vec<(u32, Generator)>,
    /// The generator whose turn it is when several have rows due.
    turn: usize,
}

impl Splits {
    /// The split to read next and how long until its next row is due; `None` when every
    /// split is exhausted.
    fn next_due(&self) -> Option<(usize, Duration)> {
        let n = self.generators.len();
        (0..n)
            .map(|i| (self.turn + i) % n)
            .filter(|i| !self.generators[*i].1.exhausted())
            .map(|i| (i, self.generators[i].1.wait()))
            .min_by_key(|(_, wait)| *wait)
    }

    fn exhausted(&self) -> bool {
        self.generators.iter().all(|(_, g)| g.exhausted())
    }
}

/// The state table key of split `split`'s offset (`watermark`: of its watermark).
fn offset_key(split: u32, watermark: bool) -> Datum {
    let key = i64::from(split) * 2 + i64::from(watermark);
    Datum::Int32(i32::try_from(key).unwrap_or(i32::MAX))
}

/// The rows of the source's splits `splits` between the barriers of `barriers`, each split
/// resuming at the offset committed in `state`.
pub(crate) fn source<S: epoch_mvcc::StateStore>(
    job: u32,
    spec: SourceSpec,
    splits: Vec<u32>,
    mut state: StateTable<S>,
    mut barriers: MessageStream,
    progress: Arc<JobProgress>,
) -> MessageStream {
    Box::pin(async_stream::try_stream! {
        let mut generators: Option<Splits> = None;
        // An actor without splits never counted itself as running.
        let mut counted_done = splits.is_empty();
        // The actor's watermark (see `crate::watermark`), kept with each split's offset.
        let mut watermark: Option<Datum> = None;
        let watermark_type = spec.watermark.as_ref().map(|w| spec.types()[w.column]);
        loop {
            let ready = generators.as_ref().and_then(Splits::next_due);
            // Between barriers, emit due rows; a barrier waiting goes first.
            let next = match ready {
                Some((_, wait)) => tokio::select! {
                    biased;
                    m = barriers.next() => Some(m),
                    _ = tokio::time::sleep(wait) => None,
                },
                None => Some(barriers.next().await),
            };
            let Some(message) = next else {
                let (i, _) = ready.expect("a split is due");
                let splits = generators.as_mut().expect("ready");
                let mut chunk = splits.generators[i].1.chunk()?;
                splits.turn = i + 1;
                progress
                    .source_events
                    .fetch_add(chunk.cardinality() as u64, Ordering::Relaxed);
                if !counted_done && splits.exhausted() {
                    counted_done = true;
                    progress.sources_running.fetch_sub(1, Ordering::AcqRel);
                }
                let mut raised = None;
                if let Some(desc) = &spec.watermark {
                    let (kept, new) = desc.apply(chunk.data(), watermark.as_ref())?;
                    chunk = StreamChunk::inserts(kept);
                    raised = new.map(|value| Watermark { column: desc.column, value });
                }
                if !chunk.is_empty() {
                    yield Message::Chunk(chunk);
                }
                if let Some(w) = raised {
                    watermark = Some(w.value.clone());
                    yield Message::Watermark(w);
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
            match &generators {
                None => {
                    state.init_epoch(barrier.epoch.curr);
                    let mut resumed = Vec::with_capacity(splits.len());
                    let mut marks = Vec::with_capacity(splits.len());
                    for split in &splits {
                        let offset = match state.get_row(&[offset_key(*split, false)]).await? {
                            Some(row) => match row[1] {
                                Datum::Int64(o) => u64::try_from(o).unwrap_or(0),
                                _ => u64::from(*split),
                            },
                            None => u64::from(*split),
                        };
                        resumed.push((*split, Generator::new(spec.clone(), offset)));
                        if let Some(ty) = watermark_type {
                            let stored = state.get_row(&[offset_key(*split, true)]).await?;
                            marks.push(stored.and_then(|row| micros_as(ty, &row[1])));
                        }
                    }
                    // The least of the splits' watermarks (none if one has none): splits
                    // another actor read before may have had a lower one than this actor's.
                    watermark = marks
                        .into_iter()
                        .collect::<Option<Vec<Datum>>>()
                        .and_then(|marks| marks.into_iter().min_by(cmp_datums));
                    let g = Splits { generators: resumed, turn: 0 };
                    // Resumed after their last rows: nothing left.
                    if !counted_done && g.exhausted() {
                        counted_done = true;
                        progress.sources_running.fetch_sub(1, Ordering::AcqRel);
                    }
                    generators = Some(g);
                }
                Some(g) => {
                    for (split, generator) in &g.generators {
                        let offset = i64::try_from(generator.offset).unwrap_or(i64::MAX);
                        state.insert(vec![offset_key(*split, false), Datum::Int64(offset)]);
                        if let Some(Datum::Timestamp(us) | Datum::Timestamptz(us)) = &watermark {
                            state.insert(vec![offset_key(*split, true), Datum::Int64(*us)]);
                        }
                    }
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
            connector: Connector::Nexmark(NexmarkSource {
                table: NexmarkTable::Bid,
                event_num,
                min_event_gap_ns: 0,
                max_chunk_size: 7,
                base_time_ms: 1_436_918_400_000,
            }),
            fields: vec![0, 2, 5],
            watermark: None,
            splits: 1,
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
    fn a_table_gets_its_share_of_the_event_rate() {
        // Events 1 µs apart; split 0 of 2 of the bids (46 in every 50 events).
        let mut spec = bids(None);
        spec.splits = 2;
        if let Connector::Nexmark(n) = &mut spec.connector {
            n.min_event_gap_ns = 1_000;
        }
        let mut split = Generator::new(spec, 0);
        assert_eq!(split.due_ns(), 0, "the first row is due at once");
        let mut made = 0;
        while made < 460 {
            made += split.chunk().unwrap().cardinality() as u128;
        }
        // 460 bids of this split span about 2 * 500 events of the stream.
        let due_events = split.due_ns() / 1_000 * 460 / made;
        assert!((990..=1010).contains(&due_events), "{due_events}");
    }

    fn datagen() -> SourceSpec {
        let field = |ty, kind| DatagenField { ty, kind };
        SourceSpec {
            connector: Connector::Datagen(DatagenSource {
                fields: vec![
                    field(DataType::Int32, DatagenKind::Sequence { start: 1, end: 10 }),
                    field(
                        DataType::Int64,
                        DatagenKind::Random {
                            min: 5.0,
                            max: 7.0,
                            seed: 3,
                        },
                    ),
                    field(
                        DataType::Varchar,
                        DatagenKind::RandomString { length: 4, seed: 1 },
                    ),
                    field(
                        DataType::Timestamp,
                        DatagenKind::RandomTime {
                            max_past_ms: 60_000,
                            seed: 2,
                        },
                    ),
                ],
                rows_per_second: 0,
                base_time_ms: 1_000_000,
            }),
            fields: vec![0, 1, 2, 3],
            watermark: None,
            splits: 1,
        }
    }

    #[test]
    fn datagen_sequences_end_and_random_values_repeat_by_offset() {
        let mut g = Generator::new(datagen(), 0);
        let mut rows = Vec::new();
        while !g.exhausted() {
            rows.extend(crate::chunk::rows_of(&[g.chunk().unwrap().data().clone()]));
        }
        assert_eq!(rows.len(), 10);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row[0], Datum::Int32(i as i32 + 1));
            assert!(matches!(row[1], Datum::Int64(5..=7)), "{row:?}");
            assert!(
                matches!(&row[2], Datum::Varchar(s) if s.len() == 4),
                "{row:?}"
            );
            assert!(
                matches!(row[3], Datum::Timestamp(t) if (940_000_000..=1_000_000_000).contains(&t)),
                "{row:?}"
            );
            assert_eq!(row[4], Datum::Int64(i as i64));
        }
        // Resuming at an offset generates the same rows.
        let mut resumed = Generator::new(datagen(), 6);
        assert_eq!(
            crate::chunk::rows_of(&[resumed.chunk().unwrap().data().clone()]),
            rows[6..]
        );
    }

    /// Every row of `spec`'s split `split` (the spec must be bounded), resuming after each
    /// chunk at the offset it reached, as an actor does after a restart.
    fn rows_of_split(spec: &SourceSpec, split: u32) -> Vec<Vec<Datum>> {
        let mut rows = Vec::new();
        let mut offset = u64::from(split);
        loop {
            let mut g = Generator::new(spec.clone(), offset);
            if g.exhausted() {
                return rows;
            }
            rows.extend(crate::chunk::rows_of(&[g.chunk().unwrap().data().clone()]));
            offset = g.offset;
        }
    }

    #[test]
    fn splits_together_make_the_rows_of_one() {
        for spec in [bids(Some(300)), datagen()] {
            let whole = rows_of_split(&spec, 0);
            let split = SourceSpec { splits: 3, ..spec };
            let mut parts: Vec<Vec<Datum>> =
                (0..3).flat_map(|s| rows_of_split(&split, s)).collect();
            // Each split's row ids are its own offsets.
            assert!(
                rows_of_split(&split, 1)
                    .iter()
                    .all(|r| matches!(r.last(), Some(Datum::Int64(id)) if id % 3 == 1))
            );
            parts.sort_by_key(|r| match r.last() {
                Some(Datum::Int64(id)) => *id,
                other => panic!("row id {other:?}"),
            });
            assert_eq!(parts, whole);
        }
    }

    #[test]
    fn an_actor_reads_its_share_of_the_splits() {
        let spec = SourceSpec {
            splits: 5,
            ..bids(None)
        };
        assert_eq!(spec.splits_of(0, 2), vec![0, 2, 4]);
        assert_eq!(spec.splits_of(1, 2), vec![1, 3]);
        assert!(spec.splits_of(5, 6).is_empty());
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
