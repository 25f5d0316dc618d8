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

use foldhash::{HashMap, HashMapExt};

use arrow::array::{RecordBatch, UInt32Array};
use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::{self, OrderType};
use futures::StreamExt;

use super::align::{Aligned, align};
use super::plan::InequalityBound;
use super::simple::eval_lenient;
use super::simple::mask_lenient;
use super::{Message, MessageStream, Watermark};
use crate::Result;
use crate::batch::join::{key_has_no_null, take_all};
use crate::batch::plan::JoinKind;
use crate::chunk::{Op, StreamChunk, batch_of, schema_of};
use crate::expr::Expr;
use crate::row_codec::{columns_from_rows, encode_keys};
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum, array_from_datums};

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
    /// Caches the rows of the join key encoded as `key` (whose values `values` makes), unless
    /// they are cached.
    async fn load(&mut self, key: &[u8], values: impl FnOnce() -> Vec<Datum>) -> Result<()> {
        if self.cache.contains_key(key) {
            return Ok(());
        }
        let rows = self.table.rows_with_prefix(&values(), usize::MAX).await?;
        let rows: KeyRows = rows
            .into_iter()
            .map(|r| (encode(&r, &self.pk), r))
            .collect();
        self.cached_bytes +=
            KEY_OVERHEAD + key.len() + rows.iter().map(|(k, r)| cached_size(k, r)).sum::<usize>();
        self.cache.insert(key.to_vec(), rows);
        Ok(())
    }

    /// Applies an insert or delete of a row (`row` makes its values; join key encoded as
    /// `key`, bounded value `value` if the side has a [`ValueIndex`]) to the state, and to
    /// the cached rows of its key if they are cached (else a later read of the key sees it in
    /// the state table's pending writes). Without `to_table` the caller writes the row into
    /// the state table itself, and the row's values are made only when something keeps them.
    fn store(
        &mut self,
        key: &[u8],
        (insert, to_table): (bool, bool),
        row: impl FnOnce() -> Vec<Datum>,
        value: Option<Datum>,
    ) {
        if !to_table && value.is_none() && !self.cache.contains_key(key) {
            return;
        }
        let row = row();
        if let (Some(index), Some(value)) = (&mut self.index, value) {
            let mut entry = vec![value];
            entry.extend(self.pk.iter().map(|c| row[*c].clone()));
            if insert {
                index.table.insert(entry);
            } else {
                index.table.delete(entry);
            }
        }
        if let Some(rows) = self.cache.get_mut(key) {
            let id = encode(&row, &self.pk);
            let size = cached_size(&id, &row);
            if insert {
                self.cached_bytes += size;
                if to_table {
                    self.table.insert(row.clone());
                }
                rows.insert(id, row);
            } else {
                rows.remove(&id);
                self.cached_bytes = self.cached_bytes.saturating_sub(size);
                if to_table {
                    self.table.delete(row);
                }
            }
        } else if to_table {
            if insert {
                self.table.insert(row);
            } else {
                self.table.delete(row);
            }
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

/// A row of a join's output, of a chunk of one side: a row of the chunk (by index) or NULLs,
/// and a row of the other side or NULLs.
type Joined<'a> = (Option<u32>, Option<&'a [Datum]>);

/// The batch of `rows` of a chunk (`data`) of side `s`, joined with rows of the other side
/// (of `other_types`): the left side's columns, then the right side's when `types` (the
/// output's) has them. The chunk's columns are taken with an Arrow kernel; the other side's
/// cached rows are built into arrays a column at a time.
fn joined_batch(
    s: usize,
    data: &RecordBatch,
    other_types: &[DataType],
    rows: &[Joined],
    types: &[DataType],
) -> Result<RecordBatch> {
    static NULL: Datum = Datum::Null;
    let left_width = if s == 0 {
        data.num_columns()
    } else {
        other_types.len()
    };
    let right_too = types.len() > left_width;
    let this = if s == 0 || right_too {
        let indices: UInt32Array = rows.iter().map(|(r, _)| *r).collect();
        take_all(data, &indices)?
    } else {
        Vec::new()
    };
    let other = if s == 1 || right_too {
        other_types
            .iter()
            .enumerate()
            .map(|(c, ty)| {
                array_from_datums(*ty, rows.iter().map(|(_, o)| o.map_or(&NULL, |o| &o[c])))
            })
            .collect()
    } else {
        Vec::new()
    };
    let (left, right) = if s == 0 { (this, other) } else { (other, this) };
    let mut columns = left;
    if right_too {
        columns.extend(right);
    }
    batch_of(schema_of(types), columns, rows.len())
}

/// Whether `row` (of side `s`) joined with any of `others` (rows of the other side)
/// satisfies the condition.
fn any_matching(
    condition: Option<&Expr>,
    joined_types: &[DataType],
    s: usize,
    row: &[Datum],
    others: &[&[Datum]],
) -> Result<bool> {
    let Some(condition) = condition else {
        return Ok(!others.is_empty());
    };
    if others.is_empty() {
        return Ok(false);
    }
    let rows: Vec<Vec<Datum>> = others
        .iter()
        .map(|o| {
            let (l, r) = if s == 0 { (row, *o) } else { (*o, row) };
            l.iter().chain(r).cloned().collect()
        })
        .collect();
    let batch = batch_of(
        schema_of(joined_types),
        columns_from_rows(&rows, joined_types),
        rows.len(),
    )?;
    let mask = mask_lenient(condition, &batch);
    Ok((0..rows.len()).any(|i| mask.value(i)))
}

/// Candidate pairs of a chunk of side `s` (`data`) and rows of the other side, checked
/// against the join condition.
struct PairsOf<'a> {
    condition: Option<&'a Expr>,
    /// Left then right columns: what the condition sees.
    joined_types: &'a [DataType],
    s: usize,
    data: &'a RecordBatch,
    other_types: &'a [DataType],
}

impl PairsOf<'_> {
    /// Moves the pairs of `candidates` (a row of the chunk, a row of the other side) that
    /// satisfy the condition to `matches`.
    fn keep_matching<'r>(
        &self,
        candidates: &mut Vec<(u32, &'r [Datum])>,
        matches: &mut Vec<(u32, &'r [Datum])>,
    ) -> Result<()> {
        let Some(condition) = self.condition else {
            matches.append(candidates);
            return Ok(());
        };
        let pairs: Vec<Joined> = candidates
            .iter()
            .map(|(r, o)| (Some(*r), Some(*o)))
            .collect();
        let batch = joined_batch(
            self.s,
            self.data,
            self.other_types,
            &pairs,
            self.joined_types,
        )?;
        let mask = mask_lenient(condition, &batch);
        matches.extend(
            candidates
                .drain(..)
                .enumerate()
                .filter_map(|(i, pair)| mask.value(i).then_some(pair)),
        );
        Ok(())
    }
}

impl<S: StateStore> HashJoin<S> {
    /// Whether side `s`'s own rows are read while one of its chunks is applied: the rows of
    /// a key besides the changed one decide an outer other side's padding, or a semi or anti
    /// join's left rows. Otherwise a chunk's rows go into the state table at once.
    fn reads_own_rows(&self, s: usize) -> bool {
        self.sides[1 - s].outer || (!self.kind.outputs_right() && s == 1)
    }

    /// Applies a chunk of side `s`: joins each change with the other side's rows of its key,
    /// and stores it into side `s`'s state. The chunk's join keys are encoded a column at a
    /// time, the other side's rows of its keys are loaded first, and the join condition is
    /// evaluated over batches of up to [`PAIR_BATCH`] candidate pairs of the chunk (the other
    /// side does not change while a chunk of this side is applied). A row's values are made
    /// only where they are kept: in a cached key's rows, an interval join's index, or a state
    /// table written a row at a time.
    async fn apply_chunk(&mut self, s: usize, chunk: &StreamChunk) -> Result<Option<StreamChunk>> {
        let o = 1 - s;
        let data = chunk.data();
        let reads_own = self.reads_own_rows(s);
        let key_columns = self.sides[s].keys.clone();
        // Each row's memcomparable join key; None when the key has a NULL (it equals nothing).
        let orders = vec![OrderType::ASC; key_columns.len()];
        let keys: Vec<Option<Vec<u8>>> = encode_keys(data, &key_columns, &orders)
            .into_iter()
            .enumerate()
            .map(|(r, key)| key_has_no_null(data, &key_columns, r).then_some(key))
            .collect();
        let key_values = |r: usize| -> Vec<Datum> {
            key_columns
                .iter()
                .map(|k| Datum::from_array(data.column(*k).as_ref(), r))
                .collect()
        };
        for (r, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            self.sides[o].load(key, || key_values(r)).await?;
            if reads_own {
                self.sides[s].load(key, || key_values(r)).await?;
            }
        }
        let [left, right] = &mut self.sides;
        let (this, other) = if s == 0 {
            (left, &*right)
        } else {
            (right, &*left)
        };
        // Each row's matches on the other side, in row order.
        let mut matches: Vec<(u32, &[Datum])> = Vec::new();
        let mut candidates: Vec<(u32, &[Datum])> = Vec::new();
        let condition = self.condition.as_ref();
        let pairs_of = PairsOf {
            condition,
            joined_types: &self.joined_types,
            s,
            data,
            other_types: &other.types,
        };
        for (r, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let rows = other.cache.get(key).expect("loaded above");
            candidates.extend(rows.values().map(|row| (r as u32, row.as_slice())));
            if candidates.len() >= PAIR_BATCH {
                pairs_of.keep_matching(&mut candidates, &mut matches)?;
            }
        }
        pairs_of.keep_matching(&mut candidates, &mut matches)?;
        // The bounded values of the rows, if this side has them indexed.
        let values = this.index.as_ref().map(|i| eval_lenient(&i.upper, data));
        // Rows with a NULL key are never stored, so such chunks go a row at a time.
        let at_once = !reads_own && keys.iter().all(Option::is_some);
        let semi_or_anti = !self.kind.outputs_right();
        let semi = self.kind == JoinKind::LeftSemi;
        let mut ops = Vec::new();
        let mut out: Vec<Joined> = Vec::new();
        let mut next = 0;
        for (r, (op, key)) in chunk.ops().iter().zip(&keys).enumerate() {
            let insert = op.is_insert();
            let this_op = if insert { Op::Insert } else { Op::Delete };
            let this_row = Some(r as u32);
            let Some(key) = key else {
                // NULL equals nothing: in a left anti join's output, and in an outer side's
                // as a padded row.
                if (s == 0 && self.kind == JoinKind::LeftAnti) || (!semi_or_anti && this.outer) {
                    ops.push(this_op);
                    out.push((this_row, None));
                }
                continue;
            };
            let count = matches[next..]
                .iter()
                .take_while(|(m, _)| *m as usize == r)
                .count();
            let row_matches = &matches[next..next + count];
            next += count;
            // Rows of this side with the key, without this one: the matches the other side's
            // rows have besides it (where a row's having matches or not shows: an outer
            // other side, or the right side of a semi or anti join).
            let mut row = None;
            let mine: Vec<&[Datum]> = if reads_own {
                let id = encode(row.insert(chunk.row(r)), &this.pk);
                this.cache
                    .get(key)
                    .expect("loaded above")
                    .iter()
                    .filter(|(k, _)| **k != id)
                    .map(|(_, r)| r.as_slice())
                    .collect()
            } else {
                Vec::new()
            };
            let has_match = |other_row: &[Datum]| {
                any_matching(condition, &self.joined_types, o, other_row, &mine)
            };
            if semi_or_anti {
                if s == 0 {
                    if row_matches.is_empty() != semi {
                        ops.push(this_op);
                        out.push((this_row, None));
                    }
                } else {
                    // Left rows whose only match is this row appear or disappear with it.
                    for (_, other_row) in row_matches {
                        if !has_match(other_row)? {
                            ops.push(if insert == semi {
                                Op::Insert
                            } else {
                                Op::Delete
                            });
                            out.push((None, Some(*other_row)));
                        }
                    }
                }
            } else {
                for (_, other_row) in row_matches {
                    let lonely = other.outer && !has_match(other_row)?;
                    let padded = (None, Some(*other_row));
                    if insert {
                        if lonely {
                            ops.push(Op::Delete);
                            out.push(padded);
                        }
                        ops.push(Op::Insert);
                        out.push((this_row, Some(*other_row)));
                    } else {
                        ops.push(Op::Delete);
                        out.push((this_row, Some(*other_row)));
                        if lonely {
                            ops.push(Op::Insert);
                            out.push(padded);
                        }
                    }
                }
                if row_matches.is_empty() && this.outer {
                    ops.push(this_op);
                    out.push((this_row, None));
                }
            }
            let value = values.as_ref().map(|v| Datum::from_array(v.as_ref(), r));
            this.store(
                key,
                (insert, !at_once),
                || row.unwrap_or_else(|| chunk.row(r)),
                value,
            );
        }
        if at_once {
            this.table.write_chunk(chunk);
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let batch = joined_batch(s, data, &other.types, &out, &self.output_types)?;
        Ok(Some(StreamChunk::new(ops, batch)))
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
        // Probes read a join key's rows.
        let table = StateTable::new(
            desc.clone(),
            store.clone(),
            epoch_mvcc::Epoch(0),
            cache_bytes,
        )
        .read_by_ranges();
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
                        for table in side.tables() {
                            table.spill_if_full().await?;
                        }
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
