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
//! An interval join's condition bounds a side's rows by the other side's time column instead
//! (see [`InequalityBound`]): such a side's rows are also kept in a second table ordered by
//! the bounded value, where the rows below the other side's watermark are found and removed.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::{self, OrderType};
use futures::StreamExt;

use super::align::{Aligned, align};
use super::plan::InequalityBound;
use super::simple::eval_lenient;
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

/// The layout of a side's rows ordered by a bounded value (see [`InequalityBound`]): the
/// value, then the side's primary key; distributed by the join key, as the side's rows are.
fn value_index_desc(table_id: u32, value_type: DataType, side: &TableDesc) -> TableDesc {
    let mut types = vec![value_type];
    types.extend(side.pk.iter().map(|c| side.types[*c]));
    TableDesc {
        table_id,
        pk: (0..types.len()).collect(),
        pk_orders: vec![OrderType::ASC; types.len()],
        dist_key_in_pk: side.dist_key_in_pk.iter().map(|k| k + 1).collect(),
        types,
    }
}

/// The rows of one join key, by their encoded primary key.
type KeyRows = HashMap<Vec<u8>, Vec<Datum>>;

/// A side's rows by the value an [`InequalityBound`] bounds, and the newest bound.
struct ValueIndex<S: StateStore> {
    /// The bounded value, over the side's columns.
    upper: Expr,
    /// The other side's column whose watermark gives the bound.
    watermark_column: usize,
    /// The bound at a watermark, over the other side's columns.
    lower: Expr,
    /// Rows of (value, the side's primary key).
    table: StateTable<S>,
    /// The greatest bound so far, and whether the rows below it are still to go.
    bound: Option<Datum>,
    pending: bool,
    /// When `upper` is a column of the side: the side's newest watermark of it, and the
    /// output watermark last emitted for it (see [`Side::bounded_watermark`]).
    own_watermark: Option<Datum>,
    emitted: Option<Datum>,
}

/// The smaller of watermarks `a` and `b` when it is above `last`, which it then becomes: a
/// combined watermark that advanced.
fn advance_to_least(a: &Datum, b: &Datum, last: &mut Option<Datum>) -> Option<Datum> {
    let least = if crate::batch::agg::cmp_datums(a, b).is_le() {
        a
    } else {
        b
    };
    let advanced = last
        .as_ref()
        .is_none_or(|old| crate::batch::agg::cmp_datums(least, old).is_gt());
    if !advanced {
        return None;
    }
    *last = Some(least.clone());
    Some(least.clone())
}

/// The column `e` is, if it is one.
fn column_of(e: &Expr) -> Option<usize> {
    match e {
        Expr::Column { index, .. } => Some(*index),
        _ => None,
    }
}

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
    /// Set when the condition bounds this side's rows by the other side's watermark.
    index: Option<ValueIndex<S>>,
}

/// Memory a cached join key takes besides its encoded bytes: its map slot (the key's and
/// the rows' map headers, hash control bytes) and allocation rounding. A probe of a key
/// with no rows caches it too, so this is most of what such keys cost.
const KEY_OVERHEAD: usize = std::mem::size_of::<(Vec<u8>, KeyRows)>() + 40;

/// Memory a cached row takes besides its id's bytes and its datums: its slot in the key's
/// map and the row's allocation rounding.
const ROW_OVERHEAD: usize = std::mem::size_of::<(Vec<u8>, Vec<Datum>)>() + 24;

/// About how much memory a cached row takes, with its id.
fn cached_size(id: &[u8], row: &[Datum]) -> usize {
    ROW_OVERHEAD + id.len() + row.iter().map(Datum::memory_size).sum::<usize>()
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
            self.cached_bytes += KEY_OVERHEAD
                + encoded.len()
                + rows.iter().map(|(k, r)| cached_size(k, r)).sum::<usize>();
            self.cache.insert(encoded.clone(), rows);
        }
        Ok(self.cache.get_mut(&encoded).expect("loaded"))
    }

    /// Applies an insert or delete of `row` (join key `key`, bounded value `value` if the side
    /// has a [`ValueIndex`]) to the state, and to the cached rows of its key if they are
    /// cached (else a later read of the key sees it in the state table's pending writes).
    /// Without `to_table` the caller writes the row into the state table itself.
    fn store(
        &mut self,
        key: &[Datum],
        (insert, to_table): (bool, bool),
        row: Vec<Datum>,
        value: Option<Datum>,
    ) {
        if let (Some(index), Some(value)) = (&mut self.index, value) {
            let mut entry = vec![value];
            entry.extend(self.pk.iter().map(|c| row[*c].clone()));
            if insert {
                index.table.insert(entry);
            } else {
                index.table.delete(entry);
            }
        }
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
        if !to_table {
            return;
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
            self.clear_cache();
        }
    }

    /// Drops every cached row, and the map's memory with them (a cleared map keeps its
    /// capacity).
    fn clear_cache(&mut self) {
        self.cache = HashMap::new();
        self.cached_bytes = 0;
    }

    fn padding(&self) -> Vec<Datum> {
        vec![Datum::Null; self.types.len()]
    }

    /// Takes a watermark of the other side: the bound on this side's rows rises with it.
    fn other_watermark(&mut self, w: &Watermark) {
        let Some(index) = &mut self.index else { return };
        if index.watermark_column != w.column {
            return;
        }
        let Some(bound) = index.lower.monotone_bound(w.column, &w.value) else {
            return;
        };
        let higher = index
            .bound
            .as_ref()
            .is_none_or(|old| crate::batch::agg::cmp_datums(&bound, old).is_gt());
        if higher {
            index.bound = Some(bound);
            index.pending = true;
        }
    }

    /// Takes a watermark of this side, of the bounded column if that is what it is.
    fn own_watermark(&mut self, w: &Watermark) {
        if let Some(index) = &mut self.index
            && column_of(&index.upper) == Some(w.column)
        {
            index.own_watermark = Some(w.value.clone());
        }
    }

    /// A watermark of this side's bounded column in the output, when it advanced: rows to
    /// come on this side are at or above the side's own watermark, and rows kept that can
    /// still match are at or above the bound, so every output row to come is at or above the
    /// smaller of the two.
    fn bounded_watermark(&mut self) -> Option<Watermark> {
        let index = self.index.as_mut()?;
        let column = column_of(&index.upper)?;
        let (Some(own), Some(bound)) = (&index.own_watermark, &index.bound) else {
            return None;
        };
        let least = advance_to_least(own, bound, &mut index.emitted)?;
        Some(Watermark {
            column,
            value: least,
        })
    }

    /// Removes the rows in `vnodes` whose bounded value is below the newest bound, from the
    /// state and the cache.
    async fn clean_below_bound(&mut self, vnodes: &[u16]) -> Result<()> {
        let Some(index) = self.index.as_mut().filter(|i| i.pending) else {
            return Ok(());
        };
        index.pending = false;
        let bound = index.bound.clone().expect("pending bounds are set");
        // An index row is (value, the side's primary key: the join key, then the rest).
        let all: Vec<usize> = (0..self.pk.len()).collect();
        let keys = &all[..self.keys.len()];
        for vnode in vnodes {
            for entry in index.table.delete_rows_below(*vnode, &bound).await? {
                let pk = &entry[1..];
                self.table.delete_pk(pk);
                let id = encode(pk, &all);
                if let Some(rows) = self.cache.get_mut(&encode(pk, keys))
                    && let Some(row) = rows.remove(&id)
                {
                    self.cached_bytes = self.cached_bytes.saturating_sub(cached_size(&id, &row));
                }
            }
        }
        Ok(())
    }

    /// The state tables: the rows', and the bounded values' if any.
    fn tables(&mut self) -> impl Iterator<Item = &mut StateTable<S>> {
        std::iter::once(&mut self.table).chain(self.index.as_mut().map(|i| &mut i.table))
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
    /// Takes side `s`'s watermark: it raises the bound on the other side's rows (an interval
    /// join's), and the watermarks of the join key and the bounded columns in the output.
    fn watermark(&mut self, s: usize, w: Watermark) -> Vec<Watermark> {
        self.sides[1 - s].other_watermark(&w);
        self.sides[s].own_watermark(&w);
        let mut out = self.key_watermark(s, w);
        // The bounded columns' (an interval join's time columns), as output columns.
        let left_width = self.sides[0].types.len();
        if let Some(w) = self.sides[0].bounded_watermark() {
            out.push(w);
        }
        if let Some(w) = self.sides[1].bounded_watermark()
            && self.kind.outputs_right()
        {
            out.push(w.at(left_width + w.column));
        }
        out
    }

    /// Takes side `s`'s watermark of its first join key. Once both sides have one, neither
    /// side has rows below the smaller to come, so no row below it will match again: such
    /// state can go, and the output's key columns get that watermark.
    fn key_watermark(&mut self, s: usize, w: Watermark) -> Vec<Watermark> {
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
        let Some(least) = advance_to_least(l, r, &mut self.joined_watermark) else {
            return vec![];
        };
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

    /// Drops both sides' rows below the joined watermark, and those below their bounds, in
    /// this actor's vnodes.
    async fn clean(&mut self) -> Result<()> {
        for side in &mut self.sides {
            side.clean_below_bound(&self.vnodes).await?;
        }
        let Some(bound) = self.clean_below.take() else {
            return Ok(());
        };
        for side in &mut self.sides {
            for vnode in &self.vnodes {
                side.table.delete_below(*vnode, &bound).await?;
            }
            side.clear_cache();
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

    /// Whether side `s`'s own rows are read while one of its chunks is applied: the rows of
    /// a key besides the changed one decide an outer other side's padding, or a semi or anti
    /// join's left rows. Otherwise a chunk's rows go into the state table at once.
    fn reads_own_rows(&self, s: usize) -> bool {
        self.sides[1 - s].outer || (!self.kind.outputs_right() && s == 1)
    }

    /// Applies one change of side `s` whose matches on the other side are `matches`,
    /// appending the output changes; `to_table`: writes the row into the state table (else
    /// the caller writes the chunk's rows at once).
    async fn apply(
        &mut self,
        s: usize,
        (op, row, value): (Op, Vec<Datum>, Option<Datum>),
        matches: Vec<Vec<Datum>>,
        out: &mut (Vec<Op>, Vec<Vec<Datum>>),
        to_table: bool,
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
        let mine: Vec<Vec<Datum>> = if self.reads_own_rows(s) {
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
            self.sides[s].store(&key, (insert, to_table), row, value);
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
        self.sides[s].store(&key, (insert, to_table), row, value);
        Ok(())
    }

    async fn apply_chunk(&mut self, s: usize, chunk: &StreamChunk) -> Result<Option<StreamChunk>> {
        let mut out = (Vec::new(), Vec::new());
        let rows: Vec<Vec<Datum>> = (0..chunk.cardinality()).map(|r| chunk.row(r)).collect();
        let matches = self.matches_of(s, &rows).await?;
        // The bounded values of the rows, if this side has them indexed.
        let values = self.sides[s]
            .index
            .as_ref()
            .map(|i| eval_lenient(&i.upper, chunk.data()));
        // Rows with a NULL key are never stored, so such chunks go a row at a time.
        let at_once = !self.reads_own_rows(s)
            && self.sides[s]
                .keys
                .iter()
                .all(|k| chunk.data().column(*k).null_count() == 0);
        for (r, ((row, op), matches)) in rows.into_iter().zip(chunk.ops()).zip(matches).enumerate()
        {
            let value = values.as_ref().map(|v| Datum::from_array(v.as_ref(), r));
            self.apply(s, (*op, row, value), matches, &mut out, !at_once)
                .await?;
        }
        if at_once {
            self.sides[s].table.write_chunk(chunk);
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
    pub(crate) inequalities: Vec<InequalityBound>,
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
        let index = spec.inequalities.iter().find(|b| b.side == i).map(|b| {
            let index_desc = value_index_desc(b.table, b.upper.data_type(), &desc);
            ValueIndex {
                upper: b.upper.clone(),
                watermark_column: b.watermark_column,
                lower: b.lower.clone(),
                table: StateTable::new(index_desc, store.clone(), epoch_mvcc::Epoch(0), 0),
                bound: None,
                pending: false,
                own_watermark: None,
                emitted: None,
            }
        });
        Side {
            keys: spec.keys[i].clone(),
            types: spec.types[i].clone(),
            pk: desc.pk.clone(),
            outer: outer[i],
            table,
            cache: HashMap::new(),
            cached_bytes: 0,
            cache_budget: cache_bytes,
            index,
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
                        for table in side.tables() {
                            if first {
                                table.init_epoch(barrier.epoch.curr);
                            } else {
                                table.commit(barrier.epoch.curr).await?;
                            }
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
    use crate::batch::agg::as_i64;
    use crate::stream::align::receiver_stream;
    use crate::stream::channel;
    use crate::stream::testing::{barrier, memory_store};

    fn watermark(v: i64) -> Message {
        watermark_of(0, v)
    }

    fn watermark_of(column: usize, v: i64) -> Message {
        Message::Watermark(Watermark {
            column,
            value: Datum::Int64(v),
        })
    }

    /// Starts job 7's join of `spec` in every vnode: the left and right inputs' senders and
    /// the output.
    fn start(
        store: &lsm_store::LsmStore,
        spec: JoinSpec,
    ) -> (crate::stream::Sender, crate::stream::Sender, MessageStream) {
        let (ltx, lrx) = channel();
        let (rtx, rrx) = channel();
        let all_vnodes = (0..epoch_mvcc::VNODE_COUNT as u16).collect();
        let out = hash_join(
            7,
            store.clone(),
            spec,
            receiver_stream(lrx),
            receiver_stream(rrx),
            1 << 20,
            all_vnodes,
        );
        (ltx, rtx, out)
    }

    /// The rows of a table as of `epoch`.
    async fn stored<S: StateStore>(store: &S, desc: &TableDesc, epoch: u64) -> Vec<Vec<Datum>> {
        StateTable::new(desc.clone(), store.clone(), Epoch(epoch), 1 << 20)
            .rows()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_interval_join_drops_the_rows_the_other_sides_watermark_leaves_behind() {
        let store = memory_store().await;
        // (k, t, id) JOIN (k, t, id) ON k = k AND l.t BETWEEN r.t - 5 AND r.t + 5.
        let types = vec![DataType::Int64; 3];
        let column = |i: usize| Expr::column(i, DataType::Int64);
        let plus = |e: Expr, c: i64| {
            Expr::binary(
                crate::expr::BinaryOp::Add,
                e,
                Expr::literal(Datum::Int64(c), DataType::Int64),
            )
        };
        let condition = Expr::binary(
            crate::expr::BinaryOp::And,
            Expr::binary(crate::expr::BinaryOp::GtEq, column(1), plus(column(4), -5)),
            Expr::binary(crate::expr::BinaryOp::LtEq, column(1), plus(column(4), 5)),
        );
        // Left rows below the right side's watermark - 5 go, right rows whose t + 5 is below
        // the left side's watermark go (each bound over the side's own columns).
        let inequalities = vec![
            InequalityBound {
                side: 0,
                upper: column(1),
                watermark_column: 1,
                lower: plus(column(1), -5),
                table: 3,
            },
            InequalityBound {
                side: 1,
                upper: plus(column(1), 5),
                watermark_column: 1,
                lower: column(1),
                table: 4,
            },
        ];
        let spec = JoinSpec {
            kind: JoinKind::Inner,
            keys: [vec![0], vec![0]],
            stream_keys: [vec![2], vec![2]],
            types: [types.clone(), types.clone()],
            condition: Some(condition),
            tables: [1, 2],
            inequalities,
        };
        let sides = [
            join_side_desc(1, &types, &[0], &[2]),
            join_side_desc(2, &types, &[0], &[2]),
        ];
        let indexes = [
            value_index_desc(3, DataType::Int64, &sides[0]),
            value_index_desc(4, DataType::Int64, &sides[1]),
        ];
        let (ltx, rtx, mut out) = start(&store, spec);
        let chunk = |rows: &str| Message::Chunk(StreamChunk::from_pretty(rows));
        for tx in [&ltx, &rtx] {
            tx.send(barrier(1)).await.unwrap();
        }
        ltx.send(chunk(
            " I I I
             + 1 10 1
             + 1 20 2
             + 1 30 3",
        ))
        .await
        .unwrap();
        rtx.send(chunk(
            " I I I
             + 1 12 1
             + 1 50 2",
        ))
        .await
        .unwrap();
        for tx in [&ltx, &rtx] {
            tx.send(barrier(2)).await.unwrap();
        }
        // Right rows to come have t >= 27: left rows below 22 can match none of them. Left
        // rows to come have t >= 40: right rows with t + 5 below that can match none.
        rtx.send(watermark_of(1, 27)).await.unwrap();
        ltx.send(watermark_of(1, 40)).await.unwrap();
        for tx in [&ltx, &rtx] {
            tx.send(barrier(3)).await.unwrap();
        }
        rtx.send(chunk(
            " I I I
             + 1 33 3",
        ))
        .await
        .unwrap();
        // A deleted left row takes its index entry along.
        ltx.send(chunk(
            " I I I
             + 1 46 4
             - 1 46 4",
        ))
        .await
        .unwrap();
        for tx in [&ltx, &rtx] {
            tx.send(barrier(4)).await.unwrap();
        }
        drop((ltx, rtx));
        let mut joined = Vec::new();
        let mut watermarks = Vec::new();
        while let Some(m) = out.next().await {
            match m.unwrap() {
                Message::Chunk(c) => {
                    joined.extend((0..c.cardinality()).map(|r| (c.ops()[r], c.row(r))));
                }
                Message::Watermark(w) => watermarks.push((w.column, w.value)),
                Message::Barrier(_) => {}
            }
        }
        // Left rows to come have t >= 40, kept ones that can still match t >= 22: the
        // output's left t gets the smaller. (The right side's bounded value is t + 5, not a
        // column: nothing for its t.)
        assert_eq!(watermarks, [(1, Datum::Int64(22))]);
        let ids = |rows: &[(Op, Vec<Datum>)]| -> Vec<(i64, i64)> {
            let mut ids: Vec<(i64, i64)> = rows
                .iter()
                .filter(|(op, _)| op.is_insert())
                .map(|(_, r)| (as_i64(&r[2]), as_i64(&r[5])))
                .collect();
            ids.sort_unstable();
            ids
        };
        // (10, 12) at first; (30, 33) after the cleaning; 46 matched 50 and went again.
        assert_eq!(ids(&joined), [(1, 1), (3, 3), (4, 2)]);
        let ids_of = |rows: Vec<Vec<Datum>>, at: usize| -> Vec<i64> {
            let mut ids: Vec<i64> = rows.iter().map(|r| as_i64(&r[at])).collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(ids_of(stored(&store, &sides[0], 5).await, 2), [3]);
        assert_eq!(ids_of(stored(&store, &sides[1], 5).await, 2), [2, 3]);
        // Index rows: (value, k, id).
        assert_eq!(ids_of(stored(&store, &indexes[0], 5).await, 2), [3]);
        assert_eq!(ids_of(stored(&store, &indexes[1], 5).await, 2), [2, 3]);
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
            inequalities: Vec::new(),
        };
        let descs = [
            join_side_desc(1, &types, &[0], &[1]),
            join_side_desc(2, &types, &[0], &[1]),
        ];
        let (ltx, rtx, mut out) = start(&store, spec);
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
            let keys: Vec<Datum> = stored(&store, desc, 4)
                .await
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
            assert_eq!(keys.len(), 2, "{keys:?}");
            assert!(!keys.contains(&Datum::Int64(10)), "{keys:?}");
        }
    }
}
