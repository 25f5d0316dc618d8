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
//! A chunk is applied a column at a time: its rows are grouped once (each group looked up or
//! loaded once per chunk), each call folds its argument column into the chunk's groups with
//! one type dispatch (integer sums and extremes per group in native values, then once into
//! the group's state), sorted values go to their tables as a chunk, and a distinct value's
//! counts are read and written once per chunk.
//!
//! A watermark of the first group key (a window start, say) drops, at the next barrier, the
//! state of every group below it in this actor's vnodes: no row of theirs will come.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, new_null_array};
use arrow::datatypes::{Float64Type, Int16Type, Int32Type, Int64Type};
use bytes::Bytes;
use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::OrderType;
use foldhash::{HashMap, HashMapExt};
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

    /// Adds `sum`, the sum of `n` integer values (negative: of values removed), to a sum or
    /// an average.
    fn add_sum(&mut self, call: &AggCall, sum: i128, n: i64) {
        let (AggState::Sum { sum: acc, n: count } | AggState::Avg { sum: acc, n: count }) = self
        else {
            return;
        };
        *count += n;
        let ty = accumulator_type(call.ret);
        let value = match (i64::try_from(sum), ty) {
            (Ok(v), _) => Datum::Int64(v),
            (Err(_), DataType::Decimal) => {
                Datum::Decimal(sum.to_string().parse().expect("an integer is a numeric"))
            }
            (Err(_), DataType::Float64) => Datum::Float64(sum as f64),
            (Err(_), _) => {
                tracing::warn!(
                    "{:?} in a streaming aggregation skips values: bigint out of range",
                    call.kind
                );
                return;
            }
        };
        match accumulate(acc, &value, false, ty) {
            Ok(s) => *acc = s,
            // A view cannot refuse its input: the values are left out, and said so.
            Err(e) => tracing::warn!(
                "{:?} in a streaming aggregation skips values: {e}",
                call.kind
            ),
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
    /// A group no row has reached yet.
    fn new(key: Vec<Datum>, aggs: &[AggCall], append_only: bool) -> Group {
        Group {
            key,
            rows: 0,
            states: aggs.iter().map(|c| AggState::new(c, append_only)).collect(),
            emitted: None,
            dirty: false,
        }
    }

    /// About how many bytes the group takes in the cache (with its slot, index entry and
    /// encoded key of `key_len` bytes).
    fn memory_size(&self, key_len: usize) -> usize {
        std::mem::size_of::<(Vec<u8>, usize, Group)>()
            + key_len
            + datums_size(&self.key)
            + self.states.iter().map(AggState::memory_size).sum::<usize>()
            + self.emitted.as_deref().map_or(0, datums_size)
    }
}

/// Groups held in memory: a slab, which a chunk's folds reach by index, and its index by
/// encoded group key.
#[derive(Default)]
struct GroupCache {
    slots: HashMap<Vec<u8>, usize>,
    groups: Vec<Group>,
}

impl GroupCache {
    /// Adds a group under its encoded key; returns its slot.
    fn add(&mut self, encoded: Vec<u8>, group: Group) -> usize {
        let slot = self.groups.len();
        self.groups.push(group);
        self.slots.insert(encoded, slot);
        slot
    }

    /// About how many bytes the groups take.
    fn memory_size(&self) -> usize {
        self.slots
            .iter()
            .map(|(k, slot)| self.groups[*slot].memory_size(k.len()))
            .sum()
    }

    /// Keeps only the groups `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&Group) -> bool) {
        let mut groups: Vec<Option<Group>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        let slots = std::mem::take(&mut self.slots);
        for (encoded, slot) in slots {
            if let Some(group) = groups[slot].take().filter(|g| keep(g)) {
                self.add(encoded, group);
            }
        }
    }

    /// The groups in slot order, emptying the cache (a new map: a cleared one keeps the
    /// capacity of its most groups).
    fn take(&mut self) -> Vec<Group> {
        self.slots = HashMap::new();
        std::mem::take(&mut self.groups)
    }
}

/// A chunk's rows as the folds see them.
struct ChunkRows<'a> {
    /// 1 for an insert, -1 for a delete.
    signs: &'a [i64],
    /// Each row's group among the chunk's (see [`chunk_groups`]).
    of_row: &'a [u32],
    /// Each of the chunk's groups' slot in the [`GroupCache`].
    slots: &'a [usize],
}

impl ChunkRows<'_> {
    fn slot(&self, row: usize) -> usize {
        self.slots[self.of_row[row] as usize]
    }
}

/// The chunk's groups: each row's group among them (numbered by first appearance), and each
/// one's first row.
fn chunk_groups(encoded: &[Vec<u8>]) -> (Vec<u32>, Vec<usize>) {
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let mut first_rows = Vec::new();
    let mut of_row = Vec::with_capacity(encoded.len());
    for (r, key) in encoded.iter().enumerate() {
        let id = *ids.entry(key).or_insert_with(|| {
            first_rows.push(r);
            (first_rows.len() - 1) as u32
        });
        of_row.push(id);
    }
    (of_row, first_rows)
}

/// Which rows call `call` counts: those its FILTER column lets through, or all.
fn counted_rows(call: &AggCall, columns: &[ArrayRef], rows: usize) -> Vec<bool> {
    match call.filter {
        None => vec![true; rows],
        Some(f) => {
            let filter = columns[f].as_boolean();
            (0..rows)
                .map(|r| filter.is_valid(r) && filter.value(r))
                .collect()
        }
    }
}

/// For each of a chunk's `chunk_groups` groups, its counted row that `better` than every
/// other (`better(a, b)`: row `a`'s value beats row `b`'s).
fn best_rows(
    counted: impl Iterator<Item = usize>,
    rows: &ChunkRows,
    chunk_groups: usize,
    better: impl Fn(usize, usize) -> bool,
) -> Vec<Option<usize>> {
    let mut best: Vec<Option<usize>> = vec![None; chunk_groups];
    for r in counted {
        let b = &mut best[rows.of_row[r] as usize];
        if b.is_none_or(|b| better(r, b)) {
            *b = Some(r);
        }
    }
    best
}

/// Folds a chunk's rows that call `i` counts into its state in their groups: counts and
/// integer sums add up per group in native integers, min and max pick each group's extreme
/// row by comparing native values, and each group's state takes the result once. Other
/// types go a value at a time.
fn fold(
    call: &AggCall,
    append_only: bool,
    i: usize,
    column: Option<&ArrayRef>,
    counted: &[bool],
    rows: &ChunkRows,
    groups: &mut [Group],
) {
    let counted_rows = || (0..counted.len()).filter(|r| counted[*r]);
    let Some(column) = column else {
        // count(*)
        for r in counted_rows() {
            if let AggState::Count(n) = &mut groups[rows.slot(r)].states[i] {
                *n += rows.signs[r];
            }
        }
        return;
    };
    let valid_rows = || counted_rows().filter(|r| column.is_valid(*r));
    let ty = DataType::from_arrow(column.data_type()).expect("arrays hold SQL types");
    match (AggState::new(call, append_only), ty) {
        (AggState::Count(_), _) => {
            for r in valid_rows() {
                if let AggState::Count(n) = &mut groups[rows.slot(r)].states[i] {
                    *n += rows.signs[r];
                }
            }
        }
        (
            AggState::Sum { .. } | AggState::Avg { .. },
            DataType::Int16 | DataType::Int32 | DataType::Int64,
        ) => {
            let values = arrow::compute::cast(column, &arrow::datatypes::DataType::Int64)
                .expect("integers widen to bigint");
            let values = values.as_primitive::<Int64Type>();
            let mut sums = vec![(0i128, 0i64); rows.slots.len()];
            for r in valid_rows() {
                let (sum, n) = &mut sums[rows.of_row[r] as usize];
                *sum += i128::from(values.value(r)) * i128::from(rows.signs[r]);
                *n += rows.signs[r];
            }
            for (g, (sum, n)) in sums.into_iter().enumerate() {
                if n != 0 || sum != 0 {
                    groups[rows.slots[g]].states[i].add_sum(call, sum, n);
                }
            }
        }
        (AggState::Extreme(_), _) => {
            let min = call.kind == AggKind::Min;
            let beats = |o: Ordering| if min { o.is_lt() } else { o.is_gt() };
            macro_rules! best_by {
                ($array:expr, $cmp:expr) => {{
                    let a = $array;
                    best_rows(valid_rows(), rows, rows.slots.len(), |x, y| {
                        beats($cmp(&a.value(x), &a.value(y)))
                    })
                }};
            }
            let best = match ty {
                DataType::Int16 => best_by!(column.as_primitive::<Int16Type>(), i16::cmp),
                DataType::Int32 | DataType::Date => {
                    let a = arrow::compute::cast(column, &arrow::datatypes::DataType::Int32)
                        .expect("dates are days");
                    best_by!(a.as_primitive::<Int32Type>(), i32::cmp)
                }
                DataType::Int64 | DataType::Time | DataType::Timestamp | DataType::Timestamptz => {
                    let a = arrow::compute::cast(column, &arrow::datatypes::DataType::Int64)
                        .expect("times are microseconds");
                    best_by!(a.as_primitive::<Int64Type>(), i64::cmp)
                }
                DataType::Float64 => best_by!(column.as_primitive::<Float64Type>(), f64::total_cmp),
                DataType::Varchar => {
                    best_by!(column.as_string::<i32>(), |a: &&str, b: &&str| a.cmp(b))
                }
                _ => best_rows(valid_rows(), rows, rows.slots.len(), |x, y| {
                    beats(crate::batch::agg::cmp_datums(
                        &Datum::from_array(column.as_ref(), x),
                        &Datum::from_array(column.as_ref(), y),
                    ))
                }),
            };
            for (g, row) in best.into_iter().enumerate() {
                if let Some(r) = row {
                    let value = Datum::from_array(column.as_ref(), r);
                    groups[rows.slots[g]].states[i].apply(call, &value, 1);
                }
            }
        }
        (AggState::Recomputed(_), _) => {}
        _ => {
            for r in valid_rows() {
                let value = Datum::from_array(column.as_ref(), r);
                groups[rows.slot(r)].states[i].apply(call, &value, rows.signs[r]);
            }
        }
    }
}

struct HashAgg<S: StateStore> {
    group_keys: Vec<usize>,
    aggs: Vec<AggCall>,
    input_key: Vec<usize>,
    result: StateTable<S>,
    per_call: Vec<StateTable<S>>,
    groups: GroupCache,
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

    /// Group `key`'s state from the result table (a new group if it has none).
    async fn load(&self, key: Vec<Datum>) -> Result<Group> {
        let g = key.len();
        Ok(match self.result.get_row(&key).await? {
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
            None => {
                let mut group = Group::new(key, &self.aggs, self.append_only);
                // A group-less aggregation has its one row from the start.
                group.dirty = self.group_keys.is_empty();
                group
            }
        })
    }

    /// The slot of each of a chunk's groups (first rows `first_rows`, encoded keys
    /// `encoded`), loading those not cached.
    async fn slots(
        &mut self,
        columns: &[ArrayRef],
        encoded: &[Vec<u8>],
        first_rows: &[usize],
    ) -> Result<Vec<usize>> {
        let mut slots = Vec::with_capacity(first_rows.len());
        for r in first_rows {
            let slot = match self.groups.slots.get(&encoded[*r]) {
                Some(slot) => *slot,
                None => {
                    let key = self
                        .group_keys
                        .iter()
                        .map(|k| Datum::from_array(columns[*k].as_ref(), *r).into_group_key())
                        .collect();
                    let group = self.load(key).await?;
                    self.groups.add(encoded[*r].clone(), group)
                }
            };
            slots.push(slot);
        }
        Ok(slots)
    }

    async fn apply_chunk(&mut self, chunk: &StreamChunk) -> Result<()> {
        if self.append_only && chunk.ops().iter().any(|op| !op.is_insert()) {
            return Err(Error::Internal(
                "an append-only aggregation's input deleted a row".into(),
            ));
        }
        let columns = chunk.data().columns();
        let orders = vec![OrderType::ASC; self.group_keys.len()];
        let encoded = encode_keys(chunk.data(), &self.group_keys, &orders);
        let (of_row, first_rows) = chunk_groups(&encoded);
        let slots = self.slots(columns, &encoded, &first_rows).await?;
        let signs: Vec<i64> = chunk
            .ops()
            .iter()
            .map(|op| if op.is_insert() { 1 } else { -1 })
            .collect();
        let rows = ChunkRows {
            signs: &signs,
            of_row: &of_row,
            slots: &slots,
        };
        let mut counted: Vec<Vec<bool>> = self
            .aggs
            .iter()
            .map(|c| counted_rows(c, columns, chunk.cardinality()))
            .collect();
        self.write_sorted_values(chunk, &counted)?;
        self.count_distinct(chunk, &rows, &mut counted).await?;
        for (i, call) in self.aggs.iter().enumerate() {
            let column = call.arg.map(|a| &columns[a]);
            let groups = &mut self.groups.groups;
            fold(
                call,
                self.append_only,
                i,
                column,
                &counted[i],
                &rows,
                groups,
            );
        }
        for (r, sign) in signs.iter().enumerate() {
            let group = &mut self.groups.groups[rows.slot(r)];
            group.rows += sign;
            group.dirty = true;
        }
        Ok(())
    }

    /// Writes the counted rows of the chunk into the sorted tables of min and max (their
    /// non-NULL values) and of the ordered aggregates (every row), a chunk per table.
    fn write_sorted_values(&mut self, chunk: &StreamChunk, counted: &[Vec<bool>]) -> Result<()> {
        let columns = chunk.data().columns();
        let n = chunk.cardinality();
        let column = |c: &usize| Arc::clone(&columns[*c]);
        for (i, call) in self.aggs.iter().enumerate() {
            let ordered = call.kind.is_ordered();
            if !ordered && !keeps_values(call, self.append_only) {
                continue;
            }
            let mut values: Vec<ArrayRef> = self.group_keys.iter().map(column).collect();
            let arg = call.arg.map(|a| column(&a));
            let keep: BooleanArray = if ordered {
                // (group, order keys, input key, value)
                values.extend(call.order_by.iter().map(|k| column(&k.column)));
                values.extend(self.input_key.iter().map(column));
                values.push(arg.unwrap_or_else(|| new_null_array(&DataType::Int64.to_arrow(), n)));
                counted[i].iter().map(|c| Some(*c)).collect()
            } else {
                // (group, value, input key), NULLs left out.
                let Some(arg) = arg else { continue };
                let keep = (0..n)
                    .map(|r| Some(counted[i][r] && arg.is_valid(r)))
                    .collect();
                values.push(arg);
                values.extend(self.input_key.iter().map(column));
                keep
            };
            let table = &mut self.per_call[i];
            let rows = chunk
                .with_columns(schema_of(&table.desc().types), values)?
                .filter(&keep)?;
            table.write_chunk(&rows);
        }
        Ok(())
    }

    /// Counts each distinct set's values in its table, and leaves counted for each of its
    /// calls only a value's first occurrence and last removal (over inserts only, only its
    /// first occurrence). A value's counts are read once per chunk and written once.
    async fn count_distinct(
        &mut self,
        chunk: &StreamChunk,
        rows: &ChunkRows<'_>,
        counted: &mut [Vec<bool>],
    ) -> Result<()> {
        let columns = chunk.data().columns();
        let n = chunk.cardinality();
        let g = self.group_keys.len();
        for set in &self.distinct_sets {
            let Some(arg) = self.aggs[set[0]].arg else {
                continue;
            };
            let values = &columns[arg];
            let table = &mut self.per_call[set[0]];
            let mut key_columns: Vec<ArrayRef> = self
                .group_keys
                .iter()
                .map(|k| Arc::clone(&columns[*k]))
                .collect();
            key_columns.push(Arc::clone(values));
            let keys = table.desc().keys(&batch_of(
                schema_of(&table.desc().types[..=g]),
                key_columns,
                n,
            )?);
            // Each value's counts, a row holding it, and whether they changed.
            let mut seen: HashMap<Bytes, (Vec<i64>, usize, bool)> = HashMap::new();
            for (r, key) in keys.iter().enumerate() {
                if values.is_null(r) || !set.iter().any(|c| counted[*c][r]) {
                    continue;
                }
                if !seen.contains_key(key) {
                    let counts = match table.get_at(key.clone()).await? {
                        Some(stored) => stored[g + 1..].iter().map(as_i64).collect(),
                        None => vec![0; set.len()],
                    };
                    seen.insert(key.clone(), (counts, r, false));
                }
                let (counts, _, changed) = seen.get_mut(key).expect("just read");
                let sign = rows.signs[r];
                for (p, call) in set.iter().enumerate() {
                    if !counted[*call][r] {
                        continue;
                    }
                    let before = counts[p];
                    if self.append_only && before > 0 {
                        counted[*call][r] = false;
                        continue;
                    }
                    counts[p] += sign;
                    *changed = true;
                    counted[*call][r] = (sign > 0 && before == 0) || (sign < 0 && counts[p] == 0);
                }
            }
            for (key, (counts, r, changed)) in seen {
                if !changed {
                    continue;
                }
                if counts.iter().all(|c| *c <= 0) {
                    table.delete_at(key);
                    continue;
                }
                let mut row = self.groups.groups[rows.slot(r)].key.clone();
                row.push(Datum::from_array(values.as_ref(), r));
                row.extend(counts.into_iter().map(Datum::Int64));
                table.insert_at(key, &row);
            }
        }
        Ok(())
    }

    /// The epoch's changes of every touched group; their state goes to the result table.
    async fn flush(&mut self) -> Result<Option<StreamChunk>> {
        let mut ops = Vec::new();
        let mut rows = Vec::new();
        for slot in 0..self.groups.groups.len() {
            if !self.groups.groups[slot].dirty {
                continue;
            }
            for (i, call) in self.aggs.iter().enumerate() {
                if is_recomputed(call, self.append_only) {
                    let value = self.recompute(i, &self.groups.groups[slot].key).await?;
                    self.groups.groups[slot].states[i] = AggState::Recomputed(value);
                }
            }
            let group = &self.groups.groups[slot];
            let output = self.output_row(group);
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
            let group = &mut self.groups.groups[slot];
            group.emitted = output;
            group.dirty = false;
        }
        // The groups stay cached between barriers while they fit the operator's budget.
        if self.groups.memory_size() > self.cache_bytes {
            self.groups.take();
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
        self.groups.retain(|g| {
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
        let mut groups = GroupCache::default();
        let mut held_bytes = 0;
        let mut watermarks: Vec<Watermark> = Vec::new();
        let partials = |groups: &mut GroupCache| {
            let rows: Vec<Vec<Datum>> = groups
                .take()
                .into_iter()
                .map(|Group { mut key, states, .. }| {
                    key.extend(states.iter().map(AggState::partial));
                    key
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
                    let encoded = encode_keys(chunk.data(), &group_keys, &orders);
                    let (of_row, first_rows) = chunk_groups(&encoded);
                    let slots: Vec<usize> = first_rows
                        .iter()
                        .map(|r| match groups.slots.get(&encoded[*r]) {
                            Some(slot) => *slot,
                            None => {
                                let key: Vec<Datum> = group_keys
                                    .iter()
                                    .map(|k| Datum::from_array(columns[*k].as_ref(), *r).into_group_key())
                                    .collect();
                                let group = Group::new(key, &aggs, true);
                                held_bytes += group.memory_size(encoded[*r].len());
                                groups.add(encoded[*r].clone(), group)
                            }
                        })
                        .collect();
                    let signs = vec![1; chunk.cardinality()];
                    let rows = ChunkRows { signs: &signs, of_row: &of_row, slots: &slots };
                    let counted = vec![true; chunk.cardinality()];
                    for (i, call) in aggs.iter().enumerate() {
                        let column = call.arg.map(|a| &columns[a]);
                        fold(call, true, i, column, &counted, &rows, &mut groups.groups);
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
                    if !groups.groups.is_empty() {
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
    let table = |d: TableDesc| StateTable::new(d, store.clone(), epoch_mvcc::Epoch(0), cache_bytes);
    let result = table(descs.next().expect("a result table"));
    // Recomputed calls (min and max with deletes, ordered calls) read a group's sorted
    // values; distinct sets and unused tables are read by key.
    let per_call: Vec<StateTable<S>> = descs
        .zip(&aggs)
        .map(|(desc, call)| {
            let t = table(desc);
            if is_recomputed(call, append_only) {
                t.read_by_ranges()
            } else {
                t
            }
        })
        .collect();
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
        groups: GroupCache::default(),
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
                            let group = agg.load(vec![]).await?;
                            agg.groups.add(vec![], group);
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

    /// A row of the model tests: (id, group, value, name).
    type ModelRow = (i64, i64, Option<i64>, Option<String>);

    /// A generated change: (delete, group, value, name, which row to delete).
    type ChangeSeed = (bool, u8, u8, u8, u8);

    /// Runs `hash_agg` over `epochs` of changes (true: insert) of rows (id, g, v, s), grouped
    /// by g, with count(*), count(v), sum(v), min(v), max(s), count(DISTINCT v), and returns
    /// the view its output changes build, by group.
    async fn run_model_agg(
        epochs: &[Vec<(bool, ModelRow)>],
        append_only: bool,
    ) -> std::collections::BTreeMap<i64, Vec<Datum>> {
        let types = vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Varchar,
            DataType::Decimal,
        ];
        let mut distinct = AggCall::new(AggKind::Count, Some(2), DataType::Int64);
        distinct.distinct = true;
        let aggs = vec![
            AggCall::new(AggKind::CountStar, None, DataType::Int64),
            AggCall::new(AggKind::Count, Some(2), DataType::Int64),
            AggCall::new(AggKind::Sum, Some(2), DataType::Decimal),
            AggCall::new(AggKind::Min, Some(2), DataType::Int64),
            AggCall::new(AggKind::Max, Some(3), DataType::Varchar),
            distinct,
            AggCall::new(AggKind::Sum, Some(4), DataType::Decimal),
        ];
        let mut messages = vec![Ok(barrier(1))];
        for (e, changes) in epochs.iter().enumerate() {
            // Each epoch in chunks of up to 5 rows.
            for part in changes.chunks(5) {
                let ops: Vec<Op> = part
                    .iter()
                    .map(|(insert, _)| if *insert { Op::Insert } else { Op::Delete })
                    .collect();
                let rows: Vec<Vec<Datum>> = part
                    .iter()
                    .map(|(_, (id, g, v, s))| {
                        vec![
                            Datum::Int64(*id),
                            Datum::Int64(*g),
                            v.map_or(Datum::Null, Datum::Int64),
                            s.clone().map_or(Datum::Null, Datum::Varchar),
                            v.map_or(Datum::Null, |v| cents(i128::from(v))),
                        ]
                    })
                    .collect();
                let data = batch_of(
                    schema_of(&types),
                    columns_from_rows(&rows, &types),
                    rows.len(),
                )
                .unwrap();
                messages.push(Ok(Message::Chunk(StreamChunk::new(ops, data))));
            }
            messages.push(Ok(barrier(e as u64 + 2)));
        }
        let all_vnodes = (0..epoch_mvcc::VNODE_COUNT as u16).collect();
        let mut out = hash_agg(
            7,
            memory_store().await,
            Box::pin(futures::stream::iter(messages)),
            types,
            vec![1],
            aggs,
            vec![0],
            (1..=8).collect(),
            append_only,
            true,
            1 << 20,
            all_vnodes,
        );
        let mut view = std::collections::BTreeMap::new();
        while let Some(m) = out.next().await {
            let Message::Chunk(chunk) = m.unwrap() else {
                continue;
            };
            for (r, op) in chunk.ops().iter().enumerate() {
                let row = chunk.row(r);
                let Datum::Int64(g) = row[0] else {
                    panic!("a group key: {row:?}")
                };
                if op.is_insert() {
                    assert!(view.insert(g, row).is_none(), "one row per group");
                } else {
                    assert_eq!(view.remove(&g), Some(row), "deletes what was sent");
                }
            }
        }
        view
    }

    /// The numeric of `v` hundredths.
    fn cents(v: i128) -> Datum {
        Datum::Decimal(crate::types::Decimal::Finite(
            rust_decimal::Decimal::from_i128_with_scale(v, 2),
        ))
    }

    /// The rows `run_model_agg` must end with, from the rows left.
    fn model_agg(rows: &[ModelRow]) -> std::collections::BTreeMap<i64, Vec<Datum>> {
        let mut groups: std::collections::BTreeMap<i64, Vec<&ModelRow>> = Default::default();
        for row in rows {
            groups.entry(row.1).or_default().push(row);
        }
        groups
            .into_iter()
            .map(|(g, rows)| {
                let values: Vec<i64> = rows.iter().filter_map(|r| r.2).collect();
                let names = rows.iter().filter_map(|r| r.3.clone());
                let sum = values.iter().map(|v| i128::from(*v)).sum::<i128>();
                let distinct: std::collections::BTreeSet<i64> = values.iter().copied().collect();
                let or_null = |v: Option<Datum>| v.unwrap_or(Datum::Null);
                let row = vec![
                    Datum::Int64(g),
                    Datum::Int64(rows.len() as i64),
                    Datum::Int64(values.len() as i64),
                    or_null(
                        (!values.is_empty())
                            .then(|| Datum::Decimal(sum.to_string().parse().expect("a numeric"))),
                    ),
                    or_null(values.iter().min().map(|v| Datum::Int64(*v))),
                    or_null(names.max().map(Datum::Varchar)),
                    Datum::Int64(distinct.len() as i64),
                    or_null((!values.is_empty()).then(|| cents(sum))),
                ];
                (g, row)
            })
            .collect()
    }

    /// Changes of up to 4 epochs: inserts of rows with few groups and values (so that chunks
    /// repeat both; values near the bigint limits, so that sums leave it), and, unless
    /// `append_only`, deletes of rows inserted before. Returns them with the rows left.
    fn model_changes(
        seeds: Vec<Vec<ChangeSeed>>,
        append_only: bool,
    ) -> (Vec<Vec<(bool, ModelRow)>>, Vec<ModelRow>) {
        let mut live: Vec<ModelRow> = Vec::new();
        let mut next_id = 0;
        let epochs = seeds
            .into_iter()
            .map(|epoch| {
                let mut changes = Vec::new();
                for (delete, g, v, s, pick) in epoch {
                    if delete && !append_only && !live.is_empty() {
                        let row = live.remove(usize::from(pick) % live.len());
                        changes.push((false, row));
                        continue;
                    }
                    let value = match v % 6 {
                        0 => None,
                        1 => Some(i64::MAX - i64::from(v)),
                        2 => Some(i64::MIN + i64::from(v)),
                        _ => Some(i64::from(v % 4)),
                    };
                    let name = (s % 4 != 0).then(|| format!("s{}", s % 5));
                    let row = (next_id, i64::from(g % 3), value, name);
                    next_id += 1;
                    live.push(row.clone());
                    changes.push((true, row));
                }
                changes
            })
            .collect();
        (epochs, live)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, failure_persistence: None, ..Default::default() })]

        /// The aggregation's output, applied as changes, equals the aggregates of the rows
        /// left, with deletes (min and max from sorted tables, distinct counts per value) and
        /// over inserts only (extremes kept in memory, distinct values written once).
        #[test]
        fn hash_agg_equals_a_model(
            seeds in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<ChangeSeed>(), 0..24),
                1..5,
            ),
            append_only in proptest::prelude::any::<bool>(),
        ) {
            let (epochs, live) = model_changes(seeds, append_only);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let view = rt.block_on(run_model_agg(&epochs, append_only));
            proptest::prop_assert_eq!(view, model_agg(&live));
        }
    }
}
