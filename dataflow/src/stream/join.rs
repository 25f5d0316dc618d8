//! Incremental hash join of every kind: inner, left, right and full outer.
//!
//! Each side's rows are kept in a state table keyed by (join key, stream key), so the rows
//! of one join key are a prefix scan, with a cache of recently used keys in front. A change
//! on one side is joined with the other side's rows of its key. For an outer side, a row
//! that gains its first match retracts its NULL-padded row, and one that loses its last match
//! gets it back; whether a row has matches is counted against the other side's rows of the
//! key, the extra join condition included.
//!
//! A semi (anti) join outputs only left rows: a left row while it has (has no) match; a
//! right-side change flips the left rows for which it is the first or last match.
//!
//! Once both sides have a watermark of their first join key (a window start, in a windowed
//! join), rows below the smaller can match nothing more: they leave the state at the barrier.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::{self, OrderType};
use futures::StreamExt;

use super::align::{Aligned, align};
use super::simple::mask_lenient;
use super::{Message, MessageStream, Watermark};
use crate::Result;
use crate::batch::plan::JoinKind;
use crate::chunk::{Op, StreamChunk, batch_of, schema_of};
use crate::expr::Expr;
use crate::row_codec::columns_from_rows;
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};

/// The layout of one side's state: its rows keyed by (join key, stream key).
pub(crate) fn join_side_desc(
    table_id: u32,
    types: &[DataType],
    keys: &[usize],
    stream_key: &[usize],
) -> TableDesc {
    let mut pk = keys.to_vec();
    pk.extend(stream_key.iter().filter(|k| !keys.contains(k)));
    TableDesc {
        table_id,
        types: types.to_vec(),
        pk_orders: vec![OrderType::ASC; pk.len()],
        pk,
        dist_key_in_pk: (0..keys.len()).collect(),
    }
}

/// The rows of one join key, by their encoded primary key.
type KeyRows = HashMap<Vec<u8>, Vec<Datum>>;

struct Side<S: StateStore> {
    keys: Vec<usize>,
    types: Vec<DataType>,
    /// Its state table's primary key: the join key, then the stream key.
    pk: Vec<usize>,
    /// Whether its unmatched rows are in the output, padded with NULLs.
    outer: bool,
    table: StateTable<S>,
    /// Rows by memcomparable join key.
    cache: HashMap<Vec<u8>, KeyRows>,
    /// About how much memory the cached rows take, and how much they may.
    cached_bytes: usize,
    cache_budget: usize,
}

/// About how much memory a cached row takes, with its key.
fn cached_size(id: &[u8], row: &[Datum]) -> usize {
    id.len() + row.iter().map(Datum::memory_size).sum::<usize>()
}

/// The memcomparable encoding of `row`'s `columns`.
fn encode(row: &[Datum], columns: &[usize]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for c in columns {
        memcomparable::encode_datum(&mut encoded, &row[*c].to_key(), OrderType::ASC);
    }
    encoded
}

impl<S: StateStore> Side<S> {
    /// The rows of join key `key` (cached).
    async fn rows(&mut self, key: &[Datum]) -> Result<&mut KeyRows> {
        let encoded = encode(key, &(0..key.len()).collect::<Vec<_>>());
        if !self.cache.contains_key(&encoded) {
            let rows = self.table.rows_with_prefix(key, usize::MAX).await?;
            let rows: KeyRows = rows
                .into_iter()
                .map(|r| (encode(&r, &self.pk), r))
                .collect();
            self.cached_bytes +=
                encoded.len() + rows.iter().map(|(k, r)| cached_size(k, r)).sum::<usize>();
            self.cache.insert(encoded.clone(), rows);
        }
        Ok(self.cache.get_mut(&encoded).expect("loaded"))
    }

    /// Applies an insert or delete of `row` (join key `key`) to the state, and to the cached
    /// rows of its key if they are cached (else a later read of the key sees it in the state
    /// table's pending writes).
    fn store(&mut self, key: &[Datum], insert: bool, row: Vec<Datum>) {
        let encoded = encode(key, &(0..key.len()).collect::<Vec<_>>());
        if let Some(rows) = self.cache.get_mut(&encoded) {
            let id = encode(&row, &self.pk);
            let size = cached_size(&id, &row);
            if insert {
                rows.insert(id, row.clone());
                self.cached_bytes += size;
            } else {
                rows.remove(&id);
                self.cached_bytes = self.cached_bytes.saturating_sub(size);
            }
        }
        if insert {
            self.table.insert(row);
        } else {
            self.table.delete(row);
        }
    }

    /// Drops the cached rows when they take more than their budget (the state table has
    /// them all, this epoch's writes included).
    fn trim_cache(&mut self) {
        if self.cached_bytes > self.cache_budget {
            self.cache.clear();
            self.cached_bytes = 0;
        }
    }

    fn padding(&self) -> Vec<Datum> {
        vec![Datum::Null; self.types.len()]
    }
}

/// Pairs of rows whose join condition is evaluated at once, at most this many.
const PAIR_BATCH: usize = 4096;

/// Pairs of a change's row and a row of the other side with its key, to be checked against
/// the join condition.
#[derive(Default)]
struct Pairs {
    /// Each pair's joined row (left columns, then right).
    joined: Vec<Vec<Datum>>,
    /// The index of the change each pair is for.
    owners: Vec<usize>,
}

struct HashJoin<S: StateStore> {
    kind: JoinKind,
    sides: [Side<S>; 2],
    condition: Option<Expr>,
    /// Left then right columns: what the condition sees.
    joined_types: Vec<DataType>,
    output_types: Vec<DataType>,
    /// The vnodes whose join keys this actor joins.
    vnodes: Vec<u16>,
    /// Each side's newest watermark of its first join key.
    key_watermarks: [Option<Datum>; 2],
    /// The least of the two, last acted on.
    joined_watermark: Option<Datum>,
    /// Rows with a first join key below this go from the state at the barrier.
    clean_below: Option<Datum>,
}

impl<S: StateStore> HashJoin<S> {
    /// Takes side `s`'s watermark. Once both sides have one of their first join key, neither
    /// side has rows below the smaller to come, so no row below it will match again: such
    /// state can go, and the output's key columns get that watermark.
    fn watermark(&mut self, s: usize, w: Watermark) -> Vec<Watermark> {
        if self.sides[s].keys.first() != Some(&w.column) {
            return vec![];
        }
        let newer = self.key_watermarks[s]
            .as_ref()
            .is_none_or(|old| crate::batch::agg::cmp_datums(&w.value, old).is_gt());
        if newer {
            self.key_watermarks[s] = Some(w.value);
        }
        let [Some(l), Some(r)] = &self.key_watermarks else {
            return vec![];
        };
        let least = if crate::batch::agg::cmp_datums(l, r).is_le() {
            l
        } else {
            r
        }
        .clone();
        let advanced = self
            .joined_watermark
            .as_ref()
            .is_none_or(|old| crate::batch::agg::cmp_datums(&least, old).is_gt());
        if !advanced {
            return vec![];
        }
        self.joined_watermark = Some(least.clone());
        self.clean_below = Some(least.clone());
        let mut out = vec![Watermark {
            column: self.sides[0].keys[0],
            value: least.clone(),
        }];
        if self.kind.outputs_right() {
            out.push(Watermark {
                column: self.sides[0].types.len() + self.sides[1].keys[0],
                value: least,
            });
        }
        out
    }

    /// Drops both sides' rows below the joined watermark, in this actor's vnodes.
    async fn clean(&mut self) -> Result<()> {
        let Some(bound) = self.clean_below.take() else {
            return Ok(());
        };
        for side in &mut self.sides {
            for vnode in &self.vnodes {
                side.table.delete_below(*vnode, &bound).await?;
            }
            side.cache.clear();
            side.cached_bytes = 0;
        }
        Ok(())
    }
}

impl<S: StateStore> HashJoin<S> {
    /// The joined row of `this` (a row of side `s`) and `other` (of the other side).
    fn joined(s: usize, this: &[Datum], other: &[Datum]) -> Vec<Datum> {
        let (l, r) = if s == 0 { (this, other) } else { (other, this) };
        l.iter().chain(r).cloned().collect()
    }

    /// Which of `others` satisfy the condition joined with `this` (a row of side `s`).
    fn matching<'a>(
        condition: Option<&Expr>,
        joined_types: &[DataType],
        s: usize,
        this: &[Datum],
        others: impl ExactSizeIterator<Item = &'a Vec<Datum>>,
    ) -> Result<Vec<bool>> {
        let Some(condition) = condition else {
            return Ok(vec![true; others.len()]);
        };
        if others.len() == 0 {
            return Ok(vec![]);
        }
        let rows: Vec<Vec<Datum>> = others.map(|o| Self::joined(s, this, o)).collect();
        let batch = batch_of(
            schema_of(joined_types),
            columns_from_rows(&rows, joined_types),
            rows.len(),
        )?;
        let mask = mask_lenient(condition, &batch);
        Ok((0..rows.len()).map(|i| mask.value(i)).collect())
    }

    fn batch(&self, rows: &[Vec<Datum>]) -> Result<RecordBatch> {
        batch_of(
            schema_of(&self.output_types),
            columns_from_rows(rows, &self.output_types),
            rows.len(),
        )
    }

    /// The join key of `row`, a row of side `s`.
    fn key_of(&self, s: usize, row: &[Datum]) -> Vec<Datum> {
        self.sides[s].keys.iter().map(|k| row[*k].clone()).collect()
    }

    /// For each of `rows` (of side `s`), the other side's rows of its key that match it. The
    /// other side does not change while a chunk of this side is applied, so the condition is
    /// evaluated over batches of up to [`PAIR_BATCH`] pairs of the chunk, not once per row.
    async fn matches_of(&mut self, s: usize, rows: &[Vec<Datum>]) -> Result<Vec<Vec<Vec<Datum>>>> {
        let o = 1 - s;
        let mut matches: Vec<Vec<Vec<Datum>>> = Vec::with_capacity(rows.len());
        // With a condition: the pairs not evaluated yet (joined rows, and the row each is for).
        let mut pairs = Pairs::default();
        for (i, row) in rows.iter().enumerate() {
            matches.push(Vec::new());
            let key = self.key_of(s, row);
            if key.iter().any(Datum::is_null) {
                continue;
            }
            let others = self.sides[o].rows(&key).await?;
            if self.condition.is_none() {
                matches[i] = others.values().cloned().collect();
                continue;
            }
            for other in others.values() {
                pairs.joined.push(Self::joined(s, row, other));
                pairs.owners.push(i);
            }
            if pairs.joined.len() >= PAIR_BATCH {
                self.keep_matching(s, &mut pairs, &mut matches)?;
            }
        }
        self.keep_matching(s, &mut pairs, &mut matches)?;
        Ok(matches)
    }

    /// Evaluates the condition over `pairs` (of side `s`'s rows and the other side's), moving
    /// the other side's part of each pair that satisfies it to its row's matches.
    fn keep_matching(
        &self,
        s: usize,
        pairs: &mut Pairs,
        matches: &mut [Vec<Vec<Datum>>],
    ) -> Result<()> {
        let Some(condition) = &self.condition else {
            return Ok(());
        };
        if pairs.joined.is_empty() {
            return Ok(());
        }
        let batch = batch_of(
            schema_of(&self.joined_types),
            columns_from_rows(&pairs.joined, &self.joined_types),
            pairs.joined.len(),
        )?;
        let mask = mask_lenient(condition, &batch);
        // The other side's columns of a joined row.
        let other_columns = if s == 0 {
            self.sides[0].types.len()..self.joined_types.len()
        } else {
            0..self.sides[0].types.len()
        };
        let owners = std::mem::take(&mut pairs.owners);
        for (i, (mut pair, owner)) in pairs.joined.drain(..).zip(owners).enumerate() {
            if mask.value(i) {
                matches[owner].push(pair.drain(other_columns.clone()).collect());
            }
        }
        Ok(())
    }

    /// Applies one change of side `s` whose matches on the other side are `matches`,
    /// appending the output changes.
    async fn apply(
        &mut self,
        s: usize,
        op: Op,
        row: Vec<Datum>,
        matches: Vec<Vec<Datum>>,
        out: &mut (Vec<Op>, Vec<Vec<Datum>>),
    ) -> Result<()> {
        let o = 1 - s;
        let key = self.key_of(s, &row);
        let insert = op.is_insert();
        let semi_or_anti = !self.kind.outputs_right();
        if semi_or_anti && key.iter().any(Datum::is_null) {
            // Never matched: in an anti join's output, in no semi join's.
            if s == 0 && self.kind == JoinKind::LeftAnti {
                out.0.push(if insert { Op::Insert } else { Op::Delete });
                out.1.push(row);
            }
            return Ok(());
        }
        if key.iter().any(Datum::is_null) {
            // NULL equals nothing: only an outer side's padded row changes.
            if self.sides[s].outer {
                let padded = Self::joined(s, &row, &self.sides[o].padding());
                out.0.push(if insert { Op::Insert } else { Op::Delete });
                out.1.push(padded);
            }
            return Ok(());
        }
        // Rows of this side with the key, without `row`: the matches the other side's rows
        // have besides `row` (needed where a row's having matches or not shows: an outer
        // other side, or the right side of a semi or anti join).
        let mine: Vec<Vec<Datum>> = if self.sides[o].outer || (semi_or_anti && s == 1) {
            let id = encode(&row, &self.sides[s].pk);
            self.sides[s]
                .rows(&key)
                .await?
                .iter()
                .filter(|(k, _)| **k != id)
                .map(|(_, r)| r.clone())
                .collect()
        } else {
            Vec::new()
        };
        let has_match = |join: &Self, other: &[Datum]| -> Result<bool> {
            Ok(Self::matching(
                join.condition.as_ref(),
                &join.joined_types,
                o,
                other,
                mine.iter(),
            )?
            .contains(&true))
        };
        if semi_or_anti {
            let semi = self.kind == JoinKind::LeftSemi;
            if s == 0 {
                if matches.is_empty() != semi {
                    out.0.push(if insert { Op::Insert } else { Op::Delete });
                    out.1.push(row.clone());
                }
            } else {
                // Left rows whose only match is `row` appear or disappear with it.
                for other in &matches {
                    if !has_match(self, other)? {
                        out.0.push(if insert == semi {
                            Op::Insert
                        } else {
                            Op::Delete
                        });
                        out.1.push((*other).clone());
                    }
                }
            }
            self.sides[s].store(&key, insert, row);
            return Ok(());
        }
        for other in &matches {
            let lonely = self.sides[o].outer && !has_match(self, other)?;
            let padded = Self::joined(s, &self.sides[s].padding(), other);
            if insert {
                if lonely {
                    out.0.push(Op::Delete);
                    out.1.push(padded);
                }
                out.0.push(Op::Insert);
                out.1.push(Self::joined(s, &row, other));
            } else {
                out.0.push(Op::Delete);
                out.1.push(Self::joined(s, &row, other));
                if lonely {
                    out.0.push(Op::Insert);
                    out.1.push(padded);
                }
            }
        }
        if matches.is_empty() && self.sides[s].outer {
            out.0.push(if insert { Op::Insert } else { Op::Delete });
            out.1.push(Self::joined(s, &row, &self.sides[o].padding()));
        }
        self.sides[s].store(&key, insert, row);
        Ok(())
    }

    async fn apply_chunk(&mut self, s: usize, chunk: &StreamChunk) -> Result<Option<StreamChunk>> {
        let mut out = (Vec::new(), Vec::new());
        let rows: Vec<Vec<Datum>> = (0..chunk.cardinality()).map(|r| chunk.row(r)).collect();
        let matches = self.matches_of(s, &rows).await?;
        for ((row, op), matches) in rows.into_iter().zip(chunk.ops()).zip(matches) {
            self.apply(s, *op, row, matches, &mut out).await?;
        }
        if out.0.is_empty() {
            return Ok(None);
        }
        let data = self.batch(&out.1)?;
        Ok(Some(StreamChunk::new(out.0, data)))
    }
}

/// The inputs and state of a hash join.
pub(crate) struct JoinSpec {
    pub(crate) kind: JoinKind,
    pub(crate) keys: [Vec<usize>; 2],
    pub(crate) stream_keys: [Vec<usize>; 2],
    pub(crate) types: [Vec<DataType>; 2],
    pub(crate) condition: Option<Expr>,
    pub(crate) tables: [u32; 2],
}

/// Joins `left` and `right`.
pub(crate) fn hash_join<S: StateStore>(
    job: u32,
    store: S,
    spec: JoinSpec,
    left: MessageStream,
    right: MessageStream,
    cache_bytes: usize,
    vnodes: Vec<u16>,
) -> MessageStream {
    let outer = [
        matches!(spec.kind, JoinKind::LeftOuter | JoinKind::FullOuter),
        matches!(spec.kind, JoinKind::RightOuter | JoinKind::FullOuter),
    ];
    let side = |i: usize| {
        let desc = join_side_desc(
            spec.tables[i],
            &spec.types[i],
            &spec.keys[i],
            &spec.stream_keys[i],
        );
        let table = StateTable::new(
            desc.clone(),
            store.clone(),
            epoch_mvcc::Epoch(0),
            cache_bytes,
        );
        // Probes read a join key's rows.
        table.index_prefix(spec.keys[i].len());
        Side {
            keys: spec.keys[i].clone(),
            types: spec.types[i].clone(),
            pk: desc.pk.clone(),
            outer: outer[i],
            table,
            cache: HashMap::new(),
            cached_bytes: 0,
            cache_budget: cache_bytes,
        }
    };
    let mut joined_types = spec.types[0].clone();
    joined_types.extend(&spec.types[1]);
    let output_types = if spec.kind.outputs_right() {
        joined_types.clone()
    } else {
        spec.types[0].clone()
    };
    let mut join = HashJoin {
        kind: spec.kind,
        sides: [side(0), side(1)],
        condition: spec.condition.clone(),
        joined_types,
        output_types,
        vnodes,
        key_watermarks: [None, None],
        joined_watermark: None,
        clean_below: None,
    };
    let mut input = align(vec![left, right]);
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        while let Some(message) = input.next().await {
            match message? {
                Aligned::Chunk(s, chunk) => {
                    let out = join.apply_chunk(s, &chunk).await?;
                    for side in &mut join.sides {
                        side.trim_cache();
                    }
                    if let Some(out) = out {
                        yield Message::Chunk(out);
                    }
                }
                Aligned::Watermark(s, w) => {
                    for w in join.watermark(s, w) {
                        yield Message::Watermark(w);
                    }
                }
                Aligned::Barrier(barrier) => {
                    join.clean().await?;
                    for side in &mut join.sides {
                        if first {
                            side.table.init_epoch(barrier.epoch.curr);
                        } else {
                            side.table.commit(barrier.epoch.curr).await?;
                        }
                        side.trim_cache();
                    }
                    first = false;
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

#[cfg(test)]
mod tests {
    use epoch_mvcc::Epoch;

    use super::*;
    use crate::stream::align::receiver_stream;
    use crate::stream::channel;
    use crate::stream::testing::{barrier, memory_store};

    fn watermark(v: i64) -> Message {
        Message::Watermark(Watermark {
            column: 0,
            value: Datum::Int64(v),
        })
    }

    #[tokio::test]
    async fn both_sides_watermarks_drop_the_rows_that_can_match_no_more() {
        let store = memory_store().await;
        let types = vec![DataType::Int64, DataType::Int64];
        // (window, id) JOIN (window, id) ON window.
        let spec = JoinSpec {
            kind: JoinKind::Inner,
            keys: [vec![0], vec![0]],
            stream_keys: [vec![1], vec![1]],
            types: [types.clone(), types.clone()],
            condition: None,
            tables: [1, 2],
        };
        let descs = [
            join_side_desc(1, &types, &[0], &[1]),
            join_side_desc(2, &types, &[0], &[1]),
        ];
        let (ltx, lrx) = channel();
        let (rtx, rrx) = channel();
        let all_vnodes = (0..epoch_mvcc::VNODE_COUNT as u16).collect();
        let mut out = hash_join(
            7,
            store.clone(),
            spec,
            receiver_stream(lrx),
            receiver_stream(rrx),
            1 << 20,
            all_vnodes,
        );
        for tx in [&ltx, &rtx] {
            tx.send(barrier(1)).await.unwrap();
            tx.send(Message::Chunk(StreamChunk::from_pretty(
                " I I
                 + 10 1
                 + 20 2
                 + 30 3",
            )))
            .await
            .unwrap();
            tx.send(barrier(2)).await.unwrap();
        }
        ltx.send(watermark(25)).await.unwrap();
        rtx.send(watermark(15)).await.unwrap();
        for tx in [&ltx, &rtx] {
            tx.send(barrier(3)).await.unwrap();
        }
        drop((ltx, rtx));
        let mut joined = 0;
        let mut watermarks = Vec::new();
        while let Some(m) = out.next().await {
            match m.unwrap() {
                Message::Chunk(c) => joined += c.cardinality(),
                Message::Watermark(w) => watermarks.push((w.column, w.value)),
                Message::Barrier(_) => {}
            }
        }
        assert_eq!(joined, 3);
        // The smaller of the two, on both sides' key columns of the output.
        assert_eq!(watermarks, [(0, Datum::Int64(15)), (2, Datum::Int64(15))]);
        for desc in &descs {
            let table = StateTable::new(desc.clone(), store.clone(), Epoch(4), 1 << 20);
            let keys: Vec<Datum> = table
                .rows()
                .await
                .unwrap()
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
            assert_eq!(keys.len(), 2, "{keys:?}");
            assert!(!keys.contains(&Datum::Int64(10)), "{keys:?}");
        }
    }
}
