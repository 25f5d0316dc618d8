//! Incremental hash aggregation.
//!
//! Each group's intermediate results (row count, counts, sums, current min/max) live in a
//! result table keyed by the group key. min and max keep every non-NULL value of the group in
//! a sorted state table, so a deleted minimum is replaced by the next one; `array_agg` and
//! `first_value` keep every row's value in their `ORDER BY` order the same way and are
//! recomputed from it for each changed group. Distinct aggregates count each value's
//! occurrences in a state table and see only a value's first insert and last delete. Changes
//! of a group are emitted once per epoch, at the barrier.
//!
//! A watermark of the first group key (a window start, say) drops, at the next barrier, the
//! state of every group below it in this actor's vnodes: no row of theirs will come.

use std::collections::HashMap;

use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::OrderType;
use futures::StreamExt;

use super::{Message, MessageStream, Watermark};
use crate::batch::agg::{accumulate, accumulator_type, as_i64, avg_result, sum_result};
use crate::batch::plan::{AggCall, AggKind};
use crate::chunk::{Op, StreamChunk, batch_of, schema_of};
use crate::row_codec::{columns_from_rows, encode_keys};
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

fn is_extreme(kind: AggKind) -> bool {
    matches!(kind, AggKind::Min | AggKind::Max)
}

/// Whether min or max keeps every value (in order, so that a deleted extreme is replaced):
/// unless the input only inserts.
fn keeps_values(call: &AggCall, append_only: bool) -> bool {
    is_extreme(call.kind) && !append_only
}

/// Whether the call's result is read from its state table at the barrier.
fn is_recomputed(call: &AggCall, append_only: bool) -> bool {
    keeps_values(call, append_only) || call.kind.is_ordered()
}

/// Types of an aggregate's intermediate state columns.
fn state_types(call: &AggCall) -> Vec<DataType> {
    match call.kind {
        AggKind::CountStar | AggKind::Count => vec![DataType::Int64],
        AggKind::Sum | AggKind::Avg => vec![accumulator_type(call.ret), DataType::Int64],
        AggKind::Min
        | AggKind::Max
        | AggKind::FirstValue
        | AggKind::ArrayAgg
        | AggKind::SingleValue => vec![call.ret],
    }
}

/// Adds (`sign` 1) or deletes (-1) a row of a state table.
fn put<S: StateStore>(table: &mut StateTable<S>, row: Vec<Datum>, sign: i64) {
    if sign > 0 {
        table.insert(row);
    } else {
        table.delete(row);
    }
}

/// Whether call `c` counts each of its values' occurrences (min and max of distinct values
/// are those of all values, so they do not).
fn counts_distinct(c: &AggCall) -> bool {
    c.distinct && !is_extreme(c.kind)
}

/// The distinct aggregates in sets that share a table, each set's calls in order (the first
/// one's table holds the set's rows): one set per argument column when `shared`, else one
/// per call.
fn distinct_sets(aggs: &[AggCall], shared: bool) -> Vec<Vec<usize>> {
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for (i, call) in aggs.iter().enumerate() {
        if !counts_distinct(call) {
            continue;
        }
        match sets
            .iter_mut()
            .find(|s| shared && aggs[s[0]].arg == call.arg)
        {
            Some(set) => set.push(i),
            None => sets.push(vec![i]),
        }
    }
    sets
}

/// The layouts of an aggregation's state tables: the result table, then one per call (a
/// distinct aggregate sharing its set's table has one it does not use).
pub(crate) fn agg_table_descs(
    tables: &[u32],
    input_types: &[DataType],
    group_keys: &[usize],
    aggs: &[AggCall],
    input_key: &[usize],
    distinct_shared: bool,
) -> Vec<TableDesc> {
    let sets = distinct_sets(aggs, distinct_shared);
    let g = group_keys.len();
    let group_types: Vec<DataType> = group_keys.iter().map(|k| input_types[*k]).collect();
    let mut result_types = group_types.clone();
    result_types.push(DataType::Int64);
    for call in aggs {
        result_types.extend(state_types(call));
    }
    let mut descs = vec![TableDesc {
        table_id: tables[0],
        types: result_types,
        pk: (0..g).collect(),
        pk_orders: vec![OrderType::ASC; g],
        dist_key_in_pk: (0..g).collect(),
    }];
    for (i, (call, id)) in aggs.iter().zip(&tables[1..]).enumerate() {
        let arg_ty = call.arg.map_or(DataType::Int64, |a| input_types[a]);
        let mut types = group_types.clone();
        types.push(arg_ty);
        let desc = if call.kind.is_ordered() {
            // (group, order keys, input key, value): the group's rows in the call's order.
            types.pop();
            types.extend(call.order_by.iter().map(|k| input_types[k.column]));
            types.extend(input_key.iter().map(|k| input_types[*k]));
            let pk: Vec<usize> = (0..types.len()).collect();
            types.push(arg_ty);
            let mut pk_orders = vec![OrderType::ASC; pk.len()];
            for (i, k) in call.order_by.iter().enumerate() {
                pk_orders[g + i] = k.order;
            }
            TableDesc {
                table_id: *id,
                types,
                pk,
                pk_orders,
                dist_key_in_pk: (0..g).collect(),
            }
        } else if is_extreme(call.kind) {
            // (group, value, input key): the group's values in order.
            types.extend(input_key.iter().map(|k| input_types[*k]));
            let mut orders = vec![OrderType::ASC; types.len()];
            if call.kind == AggKind::Max {
                orders[g] = OrderType::DESC;
            }
            TableDesc {
                table_id: *id,
                pk: (0..types.len()).collect(),
                pk_orders: orders,
                types,
                dist_key_in_pk: (0..g).collect(),
            }
        } else {
            // (group, value, occurrences for each call of its distinct set).
            let calls = sets.iter().find(|s| s[0] == i).map_or(1, Vec::len);
            types.extend(std::iter::repeat_n(DataType::Int64, calls));
            TableDesc {
                table_id: *id,
                pk: (0..=g).collect(),
                pk_orders: vec![OrderType::ASC; g + 1],
                types,
                dist_key_in_pk: (0..g).collect(),
            }
        };
        descs.push(desc);
    }
    descs
}

/// One aggregate's running state.
#[derive(Clone, Debug, PartialEq)]
enum AggState {
    Count(i64),
    /// The sum in the accumulator type (NULL: zero) and the number of values.
    Sum {
        sum: Datum,
        n: i64,
    },
    Avg {
        sum: Datum,
        n: i64,
    },
    /// A result read from the call's state table at the barrier (min, max, array_agg, ...).
    Recomputed(Datum),
    /// min or max over input that only inserts: the extreme so far.
    Extreme(Datum),
}

impl AggState {
    fn new(call: &AggCall, append_only: bool) -> AggState {
        match call.kind {
            AggKind::Min | AggKind::Max if append_only => AggState::Extreme(Datum::Null),
            AggKind::CountStar | AggKind::Count => AggState::Count(0),
            AggKind::Sum => AggState::Sum {
                sum: Datum::Null,
                n: 0,
            },
            AggKind::Avg => AggState::Avg {
                sum: Datum::Null,
                n: 0,
            },
            AggKind::Min
            | AggKind::Max
            | AggKind::FirstValue
            | AggKind::ArrayAgg
            | AggKind::SingleValue => AggState::Recomputed(Datum::Null),
        }
    }

    fn decode(call: &AggCall, append_only: bool, values: &[Datum]) -> AggState {
        let int = |d: &Datum| as_i64(d);
        match AggState::new(call, append_only) {
            AggState::Count(_) => AggState::Count(int(&values[0])),
            AggState::Sum { .. } => AggState::Sum {
                sum: values[0].clone(),
                n: int(&values[1]),
            },
            AggState::Avg { .. } => AggState::Avg {
                sum: values[0].clone(),
                n: int(&values[1]),
            },
            AggState::Recomputed(_) => AggState::Recomputed(values[0].clone()),
            AggState::Extreme(_) => AggState::Extreme(values[0].clone()),
        }
    }

    fn encode(&self) -> Vec<Datum> {
        match self {
            AggState::Count(n) => vec![Datum::Int64(*n)],
            AggState::Sum { sum, n } | AggState::Avg { sum, n } => {
                vec![sum.clone(), Datum::Int64(*n)]
            }
            AggState::Recomputed(d) | AggState::Extreme(d) => vec![d.clone()],
        }
    }

    /// Adds (`sign` 1) or removes (-1) one input value.
    fn apply(&mut self, call: &AggCall, value: &Datum, sign: i64) {
        if value.is_null() && call.kind != AggKind::CountStar {
            return;
        }
        match self {
            AggState::Count(n) => *n += sign,
            AggState::Sum { sum, n } | AggState::Avg { sum, n } => {
                match accumulate(sum, value, sign < 0, accumulator_type(call.ret)) {
                    Ok(s) => *sum = s,
                    // A view cannot refuse its input: the value is left out, and said so.
                    Err(e) => tracing::warn!(
                        "{:?} in a streaming aggregation skips a value: {e}",
                        call.kind
                    ),
                }
                *n += sign;
            }
            AggState::Recomputed(_) => {}
            AggState::Extreme(current) => {
                let order = crate::batch::agg::cmp_datums(value, current);
                let better = match call.kind {
                    AggKind::Min => order.is_lt(),
                    _ => order.is_gt(),
                };
                if current.is_null() || better {
                    *current = value.clone();
                }
            }
        }
    }

    /// About how many bytes the state takes besides its own size.
    fn memory_size(&self) -> usize {
        match self {
            AggState::Count(_) => 8,
            AggState::Sum { sum, .. } | AggState::Avg { sum, .. } => sum.memory_size() + 8,
            AggState::Recomputed(d) | AggState::Extreme(d) => d.memory_size(),
        }
    }

    /// The partial result a local aggregation sends (see [`local_agg`]).
    fn partial(&self) -> Datum {
        match self {
            AggState::Count(n) => Datum::Int64(*n),
            AggState::Sum { n: 0, .. } => Datum::Null,
            AggState::Sum { sum, .. } | AggState::Avg { sum, .. } => sum.clone(),
            AggState::Recomputed(d) | AggState::Extreme(d) => d.clone(),
        }
    }

    fn result(&self, ret: DataType) -> Datum {
        match self {
            AggState::Count(n) => Datum::Int64(*n),
            AggState::Sum { n: 0, .. } => Datum::Null,
            AggState::Sum { sum, .. } => sum_result(sum, ret),
            AggState::Avg { sum, n } => avg_result(sum, *n, ret).unwrap_or_else(|e| {
                tracing::warn!("avg in a streaming aggregation: {e}");
                Datum::Null
            }),
            AggState::Recomputed(d) | AggState::Extreme(d) => d.clone(),
        }
    }
}

/// About how many bytes `row`'s values take.
fn datums_size(row: &[Datum]) -> usize {
    row.iter().map(Datum::memory_size).sum()
}

struct Group {
    key: Vec<Datum>,
    rows: i64,
    states: Vec<AggState>,
    /// The output row downstream holds for this group.
    emitted: Option<Vec<Datum>>,
    dirty: bool,
}

impl Group {
    /// About how many bytes the group takes in the cache (with its map entry and encoded
    /// key of `key_len` bytes).
    fn memory_size(&self, key_len: usize) -> usize {
        std::mem::size_of::<(Vec<u8>, Group)>()
            + key_len
            + datums_size(&self.key)
            + self.states.iter().map(AggState::memory_size).sum::<usize>()
            + self.emitted.as_deref().map_or(0, datums_size)
    }
}

struct HashAgg<S: StateStore> {
    group_keys: Vec<usize>,
    aggs: Vec<AggCall>,
    input_key: Vec<usize>,
    result: StateTable<S>,
    per_call: Vec<StateTable<S>>,
    groups: HashMap<Vec<u8>, Group>,
    /// The vnodes whose groups this actor computes.
    vnodes: Vec<u16>,
    /// A watermark of the first group key: at the barrier, state of smaller groups goes.
    clean_below: Option<Datum>,
    /// Watermarks of group keys, forwarded (as output columns) after the barrier's changes.
    watermarks: Vec<Watermark>,
    /// The input only inserts (see `StreamPlan::HashAgg::append_only`).
    append_only: bool,
    /// The distinct aggregates by shared table (see [`distinct_sets`]).
    distinct_sets: Vec<Vec<usize>>,
    /// Memory budget of the cached groups, in bytes.
    cache_bytes: usize,
}

impl<S: StateStore> HashAgg<S> {
    fn output_row(&self, group: &Group) -> Option<Vec<Datum>> {
        if group.rows == 0 && !self.group_keys.is_empty() {
            return None;
        }
        let mut row = group.key.clone();
        row.extend(
            group
                .states
                .iter()
                .zip(&self.aggs)
                .map(|(s, c)| s.result(c.ret)),
        );
        Some(row)
    }

    async fn load(&mut self, encoded: &[u8], key: Vec<Datum>) -> Result<()> {
        if self.groups.contains_key(encoded) {
            return Ok(());
        }
        let g = key.len();
        let group = match self.result.get_row(&key).await? {
            Some(row) => {
                let mut at = g + 1;
                let states = self
                    .aggs
                    .iter()
                    .map(|c| {
                        let width = state_types(c).len();
                        let s = AggState::decode(c, self.append_only, &row[at..at + width]);
                        at += width;
                        s
                    })
                    .collect();
                let mut group = Group {
                    key,
                    rows: as_i64(&row[g]),
                    states,
                    emitted: None,
                    dirty: false,
                };
                group.emitted = self.output_row(&group);
                group
            }
            None => Group {
                key,
                rows: 0,
                states: self
                    .aggs
                    .iter()
                    .map(|c| AggState::new(c, self.append_only))
                    .collect(),
                emitted: None,
                // A group-less aggregation has its one row from the start.
                dirty: self.group_keys.is_empty(),
            },
        };
        self.groups.insert(encoded.to_vec(), group);
        Ok(())
    }

    async fn apply_chunk(&mut self, chunk: &StreamChunk) -> Result<()> {
        let orders = vec![OrderType::ASC; self.group_keys.len()];
        let encoded = encode_keys(chunk.data(), &self.group_keys, &orders);
        let columns = chunk.data().columns();
        // Only the columns the aggregation reads, a value at a time.
        let value = |c: usize, r: usize| Datum::from_array(columns[c].as_ref(), r);
        // Which calls count the current row (reused from row to row).
        let mut counted: Vec<bool> = Vec::with_capacity(self.aggs.len());
        for (r, op) in chunk.ops().iter().enumerate() {
            let sign = if op.is_insert() { 1 } else { -1 };
            if self.append_only && sign < 0 {
                return Err(Error::Internal(
                    "an append-only aggregation's input deleted a row".into(),
                ));
            }
            // The group key's values, made once a state row or an uncached group needs them.
            let mut key: Option<Vec<Datum>> = None;
            let mut key = || -> Vec<Datum> {
                key.get_or_insert_with(|| {
                    self.group_keys
                        .iter()
                        .map(|k| value(*k, r).into_group_key())
                        .collect()
                })
                .clone()
            };
            // A call with a FILTER sees only the rows it lets through.
            counted.clear();
            counted.extend(
                self.aggs
                    .iter()
                    .map(|c| c.filter.is_none_or(|f| value(f, r) == Datum::Bool(true))),
            );
            // Sorted values (min, max, array_agg, ...) live in the per-call tables, distinct
            // counts in their sets' tables.
            for (i, call) in self.aggs.iter().enumerate() {
                if !counted[i] {
                    continue;
                }
                if call.kind.is_ordered() {
                    let mut entry = key();
                    entry.extend(call.order_by.iter().map(|k| value(k.column, r)));
                    entry.extend(self.input_key.iter().map(|k| value(*k, r)));
                    entry.push(call.arg.map_or(Datum::Null, |a| value(a, r)));
                    put(&mut self.per_call[i], entry, sign);
                    continue;
                }
                if !keeps_values(call, self.append_only) {
                    continue;
                }
                let v = call.arg.map_or(Datum::Null, |a| value(a, r));
                if v.is_null() {
                    continue;
                }
                let mut entry = key();
                entry.push(v);
                entry.extend(self.input_key.iter().map(|k| value(*k, r)));
                put(&mut self.per_call[i], entry, sign);
            }
            for set in &self.distinct_sets {
                if !set.iter().any(|c| counted[*c]) {
                    continue;
                }
                let v = self.aggs[set[0]].arg.map_or(Datum::Null, |a| value(a, r));
                if v.is_null() {
                    continue;
                }
                let mut entry = key();
                entry.push(v);
                let table = &mut self.per_call[set[0]];
                let mut counts: Vec<i64> = match table.get_row(&entry).await? {
                    Some(existing) => existing[entry.len()..].iter().map(as_i64).collect(),
                    None => vec![0; set.len()],
                };
                let mut changed = false;
                for (p, call) in set.iter().enumerate() {
                    if !counted[*call] {
                        continue;
                    }
                    let seen = counts[p];
                    // Over inserts only, a value's presence is all that counts: it is
                    // written once.
                    if self.append_only && seen > 0 {
                        counted[*call] = false;
                        continue;
                    }
                    counts[p] += sign;
                    changed = true;
                    // Only a value's first occurrence and its last removal count.
                    counted[*call] = (sign > 0 && seen == 0) || (sign < 0 && counts[p] == 0);
                }
                if !changed {
                    continue;
                }
                let gone = counts.iter().all(|c| *c <= 0);
                entry.extend(counts.into_iter().map(Datum::Int64));
                put(table, entry, if gone { -1 } else { 1 });
            }
            if !self.groups.contains_key(&encoded[r]) {
                let key = key();
                self.load(&encoded[r], key).await?;
            }
            let group = self.groups.get_mut(&encoded[r]).expect("loaded");
            for (i, call) in self.aggs.iter().enumerate() {
                if counted[i] && !is_recomputed(call, self.append_only) {
                    let v = call.arg.map_or(Datum::Null, |a| value(a, r));
                    group.states[i].apply(call, &v, sign);
                }
            }
            group.rows += sign;
            group.dirty = true;
        }
        Ok(())
    }

    /// The epoch's changes of every touched group; their state goes to the result table.
    async fn flush(&mut self) -> Result<Option<StreamChunk>> {
        let mut ops = Vec::new();
        let mut rows = Vec::new();
        let dirty: Vec<Vec<u8>> = self
            .groups
            .iter()
            .filter(|(_, g)| g.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for encoded in dirty {
            let mut group = self.groups.remove(&encoded).expect("listed");
            for (i, call) in self.aggs.iter().enumerate() {
                if is_recomputed(call, self.append_only) {
                    let value = self.recompute(i, &group.key).await?;
                    group.states[i] = AggState::Recomputed(value);
                }
            }
            let output = self.output_row(&group);
            match (&group.emitted, &output) {
                (None, Some(new)) => {
                    ops.push(Op::Insert);
                    rows.push(new.clone());
                }
                (Some(old), None) => {
                    ops.push(Op::Delete);
                    rows.push(old.clone());
                }
                (Some(old), Some(new)) if old != new => {
                    ops.extend([Op::UpdateDelete, Op::UpdateInsert]);
                    rows.extend([old.clone(), new.clone()]);
                }
                _ => {}
            }
            let mut state = group.key.clone();
            state.push(Datum::Int64(group.rows));
            for s in &group.states {
                state.extend(s.encode());
            }
            if output.is_none() {
                self.result.delete(state);
            } else {
                self.result.insert(state);
            }
            group.emitted = output;
            group.dirty = false;
            self.groups.insert(encoded, group);
        }
        // The groups stay cached between barriers while they fit the operator's budget.
        let cached: usize = self
            .groups
            .iter()
            .map(|(k, g)| g.memory_size(k.len()))
            .sum();
        if cached > self.cache_bytes {
            // A new map: a cleared one keeps the capacity of the epoch's most groups.
            self.groups = HashMap::new();
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let types = self.output_types();
        let data = batch_of(
            schema_of(&types),
            columns_from_rows(&rows, &types),
            rows.len(),
        )?;
        Ok(Some(StreamChunk::new(ops, data)))
    }

    /// The result of call `i` for group `key`, from the call's state table.
    async fn recompute(&self, i: usize, key: &[Datum]) -> Result<Datum> {
        let table = &self.per_call[i];
        Ok(match self.aggs[i].kind {
            AggKind::ArrayAgg => {
                let rows = table.rows_with_prefix(key, usize::MAX).await?;
                if rows.is_empty() {
                    Datum::Null
                } else {
                    Datum::List(rows.into_iter().filter_map(|mut r| r.pop()).collect())
                }
            }
            AggKind::FirstValue => table
                .rows_with_prefix(key, 1)
                .await?
                .pop()
                .and_then(|mut r| r.pop())
                .unwrap_or(Datum::Null),
            // min and max: the first value in the sorted order.
            _ => table
                .rows_with_prefix(key, 1)
                .await?
                .into_iter()
                .next()
                .map_or(Datum::Null, |row| row[key.len()].clone()),
        })
    }

    fn output_types(&self) -> Vec<DataType> {
        let result = &self.result.desc().types;
        self.group_keys
            .iter()
            .enumerate()
            .map(|(i, _)| result[i])
            .chain(self.aggs.iter().map(|a| a.ret))
            .collect()
    }

    /// Takes a watermark of the input: a group key's becomes one of the output.
    fn watermark(&mut self, w: Watermark) {
        let Some(position) = self.group_keys.iter().position(|k| *k == w.column) else {
            return;
        };
        if position == 0 {
            self.clean_below = Some(w.value.clone());
        }
        self.watermarks.push(w.at(position));
    }

    /// Drops the state of the groups below the first group key's watermark: no row of
    /// theirs will come, and their output rows stay where they were sent.
    async fn clean(&mut self) -> Result<()> {
        let Some(bound) = self.clean_below.take() else {
            return Ok(());
        };
        self.groups.retain(|_, g| {
            g.key[0].is_null() || crate::batch::agg::cmp_datums(&g.key[0], &bound).is_ge()
        });
        let vnodes = self.vnodes.clone();
        for table in std::iter::once(&mut self.result).chain(self.per_call.iter_mut()) {
            for vnode in &vnodes {
                table.delete_below(*vnode, &bound).await?;
            }
        }
        Ok(())
    }

    fn tables(&mut self) -> impl Iterator<Item = &mut StateTable<S>> {
        std::iter::once(&mut self.result).chain(self.per_call.iter_mut())
    }
}

/// Whether an aggregation of `aggs` over an input that only inserts can run in two phases
/// (a local aggregation per actor, then a combining one): counts, sums, min and max, none
/// distinct or filtered.
pub fn splits_in_two(aggs: &[AggCall]) -> bool {
    aggs.iter().all(|c| {
        matches!(
            c.kind,
            AggKind::CountStar | AggKind::Count | AggKind::Sum | AggKind::Min | AggKind::Max
        ) && !c.distinct
            && c.filter.is_none()
            && c.order_by.is_empty()
    })
}

/// The type of `call`'s partial result (see [`local_agg`]): a count, a sum in its
/// accumulator type, or the extreme value.
pub(crate) fn partial_type(call: &AggCall) -> DataType {
    match call.kind {
        AggKind::CountStar | AggKind::Count => DataType::Int64,
        AggKind::Sum => accumulator_type(call.ret),
        _ => call.ret,
    }
}

/// The call of the global phase that combines `call`'s partial results from input column
/// `column`: counts and sums add up, min and max take the extreme. (Without groups, a sum of
/// counts is NULL before any partial result; the planner makes it 0.)
pub fn combining_call(call: &AggCall, column: usize) -> AggCall {
    let kind = match call.kind {
        AggKind::CountStar | AggKind::Count | AggKind::Sum => AggKind::Sum,
        other => other,
    };
    AggCall::new(kind, Some(column), call.ret)
}

/// The local phase of a two-phase aggregation over an input that only inserts: the actor
/// aggregates its rows of an epoch by group in memory and, at the barrier (or when its groups
/// take `budget_bytes`), sends one row per group of the group key and the partial
/// results (one column per call, of [`partial_type`]), so the global phase, which combines
/// them, sees a row per group and actor instead of every row. Watermarks of group key columns
/// go out at the barrier after the partial results, which may be below them. It keeps no
/// state: an epoch's partial results are complete once sent.
pub(crate) fn local_agg(
    mut input: MessageStream,
    input_types: &[DataType],
    group_keys: Vec<usize>,
    aggs: Vec<AggCall>,
    budget_bytes: usize,
) -> MessageStream {
    let types: Vec<DataType> = group_keys
        .iter()
        .map(|k| input_types[*k])
        .chain(aggs.iter().map(partial_type))
        .collect();
    let orders = vec![OrderType::ASC; group_keys.len()];
    Box::pin(async_stream::try_stream! {
        let mut groups: HashMap<Vec<u8>, (Vec<Datum>, Vec<AggState>)> = HashMap::new();
        let mut held_bytes = 0;
        let mut watermarks: Vec<Watermark> = Vec::new();
        let partials = |groups: &mut HashMap<Vec<u8>, (Vec<Datum>, Vec<AggState>)>| {
            let rows: Vec<Vec<Datum>> = groups
                .drain()
                .map(|(_, (mut row, states))| {
                    row.extend(states.iter().map(AggState::partial));
                    row
                })
                .collect();
            let batch = batch_of(schema_of(&types), columns_from_rows(&rows, &types), rows.len())?;
            Ok::<_, Error>(Message::Chunk(StreamChunk::inserts(batch)))
        };
        while let Some(message) = input.next().await {
            match message? {
                Message::Chunk(chunk) => {
                    if chunk.ops().iter().any(|op| !op.is_insert()) {
                        Err(Error::Internal(
                            "a local aggregation's input deleted a row".into(),
                        ))?;
                    }
                    let columns = chunk.data().columns();
                    let value = |c: usize, r: usize| Datum::from_array(columns[c].as_ref(), r);
                    let keys = encode_keys(chunk.data(), &group_keys, &orders);
                    for (r, key) in keys.into_iter().enumerate() {
                        let key_len = key.len();
                        let (_, states) = groups.entry(key).or_insert_with(|| {
                            let row: Vec<Datum> =
                                group_keys.iter().map(|k| value(*k, r).into_group_key()).collect();
                            let states: Vec<AggState> =
                                aggs.iter().map(|c| AggState::new(c, true)).collect();
                            held_bytes += std::mem::size_of::<(Vec<u8>, Vec<Datum>, Vec<AggState>)>()
                                + key_len
                                + datums_size(&row)
                                + states.iter().map(AggState::memory_size).sum::<usize>();
                            (row, states)
                        });
                        for (state, call) in states.iter_mut().zip(&aggs) {
                            let v = call.arg.map_or(Datum::Null, |a| value(a, r));
                            state.apply(call, &v, 1);
                        }
                    }
                    if held_bytes >= budget_bytes {
                        yield partials(&mut groups)?;
                        held_bytes = 0;
                    }
                }
                Message::Watermark(w) => {
                    if let Some(p) = group_keys.iter().position(|k| *k == w.column) {
                        watermarks.retain(|held| held.column != p);
                        watermarks.push(w.at(p));
                    }
                }
                Message::Barrier(barrier) => {
                    if !groups.is_empty() {
                        yield partials(&mut groups)?;
                        held_bytes = 0;
                    }
                    for w in watermarks.drain(..) {
                        yield Message::Watermark(w);
                    }
                    yield Message::Barrier(barrier);
                }
            }
        }
    })
}

/// Aggregates `input` by `group_keys`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hash_agg<S: StateStore>(
    job: u32,
    store: S,
    input: MessageStream,
    input_types: Vec<DataType>,
    group_keys: Vec<usize>,
    aggs: Vec<AggCall>,
    input_key: Vec<usize>,
    tables: Vec<u32>,
    append_only: bool,
    distinct_shared: bool,
    cache_bytes: usize,
    vnodes: Vec<u16>,
) -> MessageStream {
    let descs = agg_table_descs(
        &tables,
        &input_types,
        &group_keys,
        &aggs,
        &input_key,
        distinct_shared,
    );
    let distinct_sets = distinct_sets(&aggs, distinct_shared);
    let mut descs = descs.into_iter();
    let mut table =
        |d: TableDesc| StateTable::new(d, store.clone(), epoch_mvcc::Epoch(0), cache_bytes);
    let result = table(descs.next().expect("a result table"));
    let per_call: Vec<StateTable<S>> = descs.map(&mut table).collect();
    // min and max read a group's sorted values.
    if !group_keys.is_empty() {
        for t in &per_call {
            t.index_prefix(group_keys.len());
        }
    }
    let mut agg = HashAgg {
        group_keys,
        aggs,
        input_key,
        result,
        per_call,
        groups: HashMap::new(),
        vnodes,
        clean_below: None,
        watermarks: Vec::new(),
        append_only,
        distinct_sets,
        cache_bytes,
    };
    let mut input = input;
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        while let Some(message) = input.next().await {
            match message? {
                Message::Chunk(chunk) => {
                    if first {
                        Err(Error::Internal("a job's first message must be a barrier".into()))?;
                    }
                    agg.apply_chunk(&chunk).await?;
                    for t in agg.tables() {
                        t.spill_if_full().await?;
                    }
                }
                Message::Watermark(w) => agg.watermark(w),
                Message::Barrier(barrier) => {
                    if first {
                        first = false;
                        for t in agg.tables() {
                            t.init_epoch(barrier.epoch.curr);
                        }
                        if agg.group_keys.is_empty() {
                            agg.load(&[], vec![]).await?;
                        }
                    } else {
                        if let Some(chunk) = agg.flush().await? {
                            yield Message::Chunk(chunk);
                        }
                        agg.clean().await?;
                        for w in std::mem::take(&mut agg.watermarks) {
                            yield Message::Watermark(w);
                        }
                        for t in agg.tables() {
                            t.commit(barrier.epoch.curr).await?;
                        }
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

#[cfg(test)]
mod tests {
    use epoch_mvcc::Epoch;
    use lsm_store::LsmStore;

    use super::*;
    use crate::stream::align::receiver_stream;
    use crate::stream::channel;
    use crate::stream::testing::{barrier, memory_store};

    /// The rows of table `desc` as of `epoch`.
    async fn stored(store: &LsmStore, desc: &TableDesc, epoch: u64) -> Vec<Vec<Datum>> {
        let table = StateTable::new(desc.clone(), store.clone(), Epoch(epoch), 1 << 20);
        let mut rows = table.rows().await.unwrap();
        rows.sort_by_key(|r| format!("{r:?}"));
        rows
    }

    #[tokio::test]
    async fn a_watermark_of_the_first_group_key_drops_the_state_of_smaller_groups() {
        let store = memory_store().await;
        let (tx, rx) = channel();
        let types = vec![DataType::Int64, DataType::Int64, DataType::Int64];
        // GROUP BY c0, c1: count(*), min(c2).
        let aggs = vec![
            AggCall::new(AggKind::CountStar, None, DataType::Int64),
            AggCall::new(AggKind::Min, Some(2), DataType::Int64),
        ];
        let tables = vec![1, 2, 3];
        let descs = agg_table_descs(&tables, &types, &[0, 1], &aggs, &[2], true);
        let all_vnodes = (0..epoch_mvcc::VNODE_COUNT as u16).collect();
        let mut out = hash_agg(
            7,
            store.clone(),
            receiver_stream(rx),
            types,
            vec![0, 1],
            aggs,
            vec![2],
            tables,
            false,
            true,
            1 << 20,
            all_vnodes,
        );
        tx.send(barrier(1)).await.unwrap();
        tx.send(Message::Chunk(StreamChunk::from_pretty(
            " I I I
             + 10 1 5
             + 20 1 6
             + 30 2 7
             + 30 2 8",
        )))
        .await
        .unwrap();
        tx.send(barrier(2)).await.unwrap();
        let watermark = |v: i64, column: usize| {
            Message::Watermark(Watermark {
                column,
                value: Datum::Int64(v),
            })
        };
        // A watermark of the second group key changes nothing here.
        tx.send(watermark(99, 1)).await.unwrap();
        tx.send(watermark(25, 0)).await.unwrap();
        tx.send(barrier(3)).await.unwrap();
        drop(tx);
        let mut messages = Vec::new();
        while let Some(m) = out.next().await {
            messages.push(m.unwrap());
        }
        // Barrier, barrier, the groups, barrier, then the output watermarks and the barrier.
        let watermarks: Vec<Watermark> = messages
            .iter()
            .filter_map(|m| match m {
                Message::Watermark(w) => Some(w.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            watermarks,
            [
                Watermark {
                    column: 1,
                    value: Datum::Int64(99)
                },
                Watermark {
                    column: 0,
                    value: Datum::Int64(25)
                }
            ]
        );
        // Only group 30 keeps its state: its result row and both of its values.
        let result = stored(&store, &descs[0], 4).await;
        assert_eq!(result.len(), 1, "{result:?}");
        assert_eq!(
            result[0][..3],
            [Datum::Int64(30), Datum::Int64(2), Datum::Int64(2)]
        );
        let values = stored(&store, &descs[2], 4).await;
        assert_eq!(values.len(), 2, "{values:?}");
        assert!(values.iter().all(|r| r[0] == Datum::Int64(30)));
        // Before the watermark's barrier, all three groups were there.
        assert_eq!(stored(&store, &descs[0], 2).await.len(), 3);
    }

    #[tokio::test]
    async fn a_local_aggregation_sends_each_epochs_partial_results_before_its_barrier() {
        let (tx, rx) = channel();
        let aggs = vec![
            AggCall::new(AggKind::CountStar, None, DataType::Int64),
            AggCall::new(AggKind::Count, Some(1), DataType::Int64),
            AggCall::new(AggKind::Sum, Some(1), DataType::Decimal),
            AggCall::new(AggKind::Max, Some(0), DataType::Int64),
        ];
        assert!(splits_in_two(&aggs));
        let mut out = local_agg(
            receiver_stream(rx),
            &[DataType::Int64, DataType::Int64],
            vec![],
            aggs,
            1 << 20,
        );
        tx.send(barrier(1)).await.unwrap();
        for rows in [
            " I I\n + 3 .\n + 9 .",
            " I I\n + 4 .",
            " I I\n + 1 5\n + 2 6",
        ] {
            tx.send(Message::Chunk(StreamChunk::from_pretty(rows)))
                .await
                .unwrap();
            tx.send(barrier(2)).await.unwrap();
        }
        tx.send(barrier(5)).await.unwrap();
        drop(tx);
        let mut partials = Vec::new();
        let mut barriers = 0;
        while let Some(m) = out.next().await {
            match m.unwrap() {
                Message::Chunk(c) => {
                    assert_eq!(c.cardinality(), 1);
                    partials.push((barriers, c.row(0)));
                }
                Message::Barrier(_) => barriers += 1,
                Message::Watermark(_) => unreachable!("no watermarks were sent"),
            }
        }
        // No values of a sum: NULL, and a count of 0; an epoch without rows sends nothing.
        let null_sum = |n: i64, max: i64| {
            vec![
                Datum::Int64(n),
                Datum::Int64(0),
                Datum::Null,
                Datum::Int64(max),
            ]
        };
        assert_eq!(
            partials,
            [
                (1, null_sum(2, 9)),
                (2, null_sum(1, 4)),
                (
                    3,
                    vec![
                        Datum::Int64(2),
                        Datum::Int64(2),
                        Datum::Decimal(11.into()),
                        Datum::Int64(2)
                    ]
                ),
            ]
        );
        assert_eq!(barriers, 5);
    }

    #[tokio::test]
    async fn a_grouped_local_aggregation_sends_a_row_per_group_then_the_watermarks() {
        let (tx, rx) = channel();
        // GROUP BY c1: count(*), min(c0).
        let aggs = vec![
            AggCall::new(AggKind::CountStar, None, DataType::Int64),
            AggCall::new(AggKind::Min, Some(0), DataType::Int64),
        ];
        let mut out = local_agg(
            receiver_stream(rx),
            &[DataType::Int64, DataType::Int64],
            vec![1],
            aggs,
            1 << 20,
        );
        tx.send(barrier(1)).await.unwrap();
        let watermark = |column: usize, v: i64| {
            Message::Watermark(Watermark {
                column,
                value: Datum::Int64(v),
            })
        };
        tx.send(Message::Chunk(StreamChunk::from_pretty(
            " I I\n + 5 10\n + 3 10\n + 8 20",
        )))
        .await
        .unwrap();
        // The group key's watermark waits for the partial results; another column's goes.
        tx.send(watermark(1, 15)).await.unwrap();
        tx.send(watermark(0, 99)).await.unwrap();
        tx.send(Message::Chunk(StreamChunk::from_pretty(" I I\n + 1 10")))
            .await
            .unwrap();
        tx.send(barrier(2)).await.unwrap();
        drop(tx);
        let mut messages = Vec::new();
        while let Some(m) = out.next().await {
            messages.push(m.unwrap());
        }
        assert!(matches!(messages[0], Message::Barrier(_)));
        let Message::Chunk(chunk) = &messages[1] else {
            panic!("partial results first: {messages:?}");
        };
        let mut rows: Vec<Vec<Datum>> = (0..chunk.cardinality()).map(|r| chunk.row(r)).collect();
        rows.sort_by_key(|r| format!("{r:?}"));
        let int = |v: &[i64]| v.iter().map(|v| Datum::Int64(*v)).collect::<Vec<_>>();
        assert_eq!(rows, [int(&[10, 3, 1]), int(&[20, 1, 8])]);
        let Message::Watermark(w) = &messages[2] else {
            panic!("then the watermark: {messages:?}");
        };
        assert_eq!(
            *w,
            Watermark {
                column: 0,
                value: Datum::Int64(15)
            }
        );
        assert!(matches!(messages[3], Message::Barrier(_)));
        assert_eq!(messages.len(), 4);

        // Groups over the budget go out before the barrier: here after every chunk.
        let (tx, rx) = channel();
        let aggs = vec![AggCall::new(AggKind::CountStar, None, DataType::Int64)];
        let mut out = local_agg(
            receiver_stream(rx),
            &[DataType::Int64, DataType::Int64],
            vec![1],
            aggs,
            1,
        );
        tx.send(barrier(1)).await.unwrap();
        for rows in [" I I\n + 5 10\n + 3 10", " I I\n + 1 10"] {
            tx.send(Message::Chunk(StreamChunk::from_pretty(rows)))
                .await
                .unwrap();
        }
        tx.send(barrier(2)).await.unwrap();
        drop(tx);
        // Each chunk's partial count, None for a barrier.
        let mut counts = Vec::new();
        while let Some(m) = out.next().await {
            counts.push(match m.unwrap() {
                Message::Chunk(c) => Some(c.row(0)[1].clone()),
                _ => None,
            });
        }
        assert_eq!(
            counts,
            [None, Some(Datum::Int64(2)), Some(Datum::Int64(1)), None]
        );
    }
}
