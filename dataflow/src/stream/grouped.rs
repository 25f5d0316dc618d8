//! The driver of the operators whose output for a group is a function of the group's rows
//! in order: top-N (by group) and window functions (by partition).
//!
//! Every input row is kept in a state table keyed by (group key, order columns, stream key)
//! and distributed by the group key, so a group's rows in order are one prefix scan
//! ([`ordered_rows_desc`]). The first change of a group in an epoch reads the group's output
//! rows; at the barrier they are computed again and the difference is emitted.
//!
//! A group's output changes only while rows of it arrive, so a watermark of the first group
//! key column holds for the output as well: it is passed on, and at the next barrier the
//! state of every group below it goes, in the vnodes this actor owns.

use foldhash::{HashMap, HashMapExt, HashSet};

use arrow::array::BooleanArray;
use bytes::Bytes;
use epoch_mvcc::StateStore;
use epoch_mvcc::memcomparable::{self, OrderType};
use futures::StreamExt;

use super::over_window::{OverWindowSpec, outputs};
use super::top_n::{TopNSpec, kept_rows, top, top_trimmed};
use super::{Message, MessageStream, Watermark};
use crate::batch::plan::{SortKey, WindowFunc};
use crate::chunk::{Op, StreamChunk, batch_of, schema_of};
use crate::row_codec::{columns_from_rows, encode_keys};
use crate::state_table::{StateTable, TableDesc};
use crate::types::{DataType, Datum};
use crate::{Error, Result};

/// What is computed for each group.
pub(crate) enum GroupFunction {
    /// The group's top rows.
    TopN(TopNSpec),
    /// The partition's rows with their window values.
    OverWindow(OverWindowSpec),
}

impl GroupFunction {
    fn group_key(&self) -> &[usize] {
        match self {
            GroupFunction::TopN(s) => &s.group_key,
            GroupFunction::OverWindow(s) => &s.partition_by,
        }
    }

    fn desc(&self) -> TableDesc {
        match self {
            GroupFunction::TopN(s) => ordered_rows_desc(
                s.state_table,
                &s.types,
                &s.group_key,
                &s.order,
                &s.input_key,
            ),
            GroupFunction::OverWindow(s) => ordered_rows_desc(
                s.state_table,
                &s.types,
                &s.partition_by,
                &s.order_by,
                &s.input_key,
            ),
        }
    }

    fn output_types(&self) -> Vec<DataType> {
        match self {
            GroupFunction::TopN(s) => {
                let mut types = s.types.clone();
                if s.output_rank {
                    types.push(DataType::Int64);
                }
                types
            }
            GroupFunction::OverWindow(s) => {
                let mut types = s.types.clone();
                types.extend(s.calls.iter().map(|c| c.output_type(&s.types)));
                types
            }
        }
    }

    /// How many rows a group keeps when a row ranked past them can never be kept: a top-N by
    /// row number from the first row (no offset) over an input that only inserts.
    fn keeps_at_most(&self) -> Option<usize> {
        match self {
            GroupFunction::TopN(s)
                if s.append_only && s.offset == 0 && s.rank == WindowFunc::RowNumber =>
            {
                s.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX))
            }
            _ => None,
        }
    }

    /// The output rows of a changed group at a barrier, dropping the rows of it that no
    /// output can need again (a top-N over an input that only inserts keeps only its kept
    /// rows). With [`GroupFunction::keeps_at_most`] the group's best rows are at hand and
    /// nothing is read: the rows they pushed out are deleted.
    async fn settle<S: StateStore>(
        &self,
        table: &mut StateTable<S>,
        group: &mut Changed,
    ) -> Result<Vec<Vec<Datum>>> {
        match self {
            GroupFunction::TopN(s) if self.keeps_at_most().is_some() => {
                for key in group.dropped.drain(..) {
                    table.delete_at(key);
                }
                let rows: Vec<Vec<Datum>> = group.best.drain(..).map(|(_, row)| row).collect();
                Ok(kept_rows(s, rows))
            }
            GroupFunction::TopN(s) if s.append_only => {
                // The group's rows: those before (the skipped ones and the output ones; no
                // more are kept) and the new ones.
                let most = (s.offset as usize)
                    .saturating_add(group.before.len())
                    .saturating_add(group.inserted);
                top_trimmed(table, s, &group.key, most).await
            }
            _ => self.outputs(table, &group.key).await,
        }
    }

    /// The output rows of `group`, from its rows in `table`.
    async fn outputs<S: StateStore>(
        &self,
        table: &StateTable<S>,
        group: &[Datum],
    ) -> Result<Vec<Vec<Datum>>> {
        match self {
            GroupFunction::TopN(s) => top(table, s, group).await,
            GroupFunction::OverWindow(s) => outputs(table, s, group).await,
        }
    }
}

/// The memcomparable encoding of a row's values: equal rows, equal bytes.
pub(crate) fn row_bytes(row: &[Datum]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in row {
        memcomparable::encode_datum(&mut out, &d.to_key(), OrderType::ASC);
    }
    out
}

/// Appends the changes that turn a group's output rows `old` into `new`: deletes of the rows
/// that went, inserts of those that came.
pub(crate) fn push_difference(
    old: Vec<Vec<Datum>>,
    new: Vec<Vec<Datum>>,
    ops: &mut Vec<Op>,
    rows: &mut Vec<Vec<Datum>>,
) {
    let old_bytes: Vec<Vec<u8>> = old.iter().map(|r| row_bytes(r)).collect();
    let new_bytes: Vec<Vec<u8>> = new.iter().map(|r| row_bytes(r)).collect();
    let old_set: HashSet<&[u8]> = old_bytes.iter().map(Vec::as_slice).collect();
    let new_set: HashSet<&[u8]> = new_bytes.iter().map(Vec::as_slice).collect();
    for (gone, bytes) in old.into_iter().zip(&old_bytes) {
        if !new_set.contains(bytes.as_slice()) {
            ops.push(Op::Delete);
            rows.push(gone);
        }
    }
    for (came, bytes) in new.into_iter().zip(&new_bytes) {
        if !old_set.contains(bytes.as_slice()) {
            ops.push(Op::Insert);
            rows.push(came);
        }
    }
}

/// The layout of every input row of an operator that reads its rows by group in order (top-N
/// by group, window functions by partition): keyed by the group key, the order columns, then
/// the rest of the stream key, and distributed by the group key.
pub(crate) fn ordered_rows_desc(
    table_id: u32,
    types: &[DataType],
    group: &[usize],
    order: &[SortKey],
    input_key: &[usize],
) -> TableDesc {
    let mut pk: Vec<usize> = group.to_vec();
    let mut pk_orders = vec![OrderType::ASC; pk.len()];
    for k in order {
        pk.push(k.column);
        pk_orders.push(k.order);
    }
    for k in input_key {
        if !pk.contains(k) {
            pk.push(*k);
            pk_orders.push(OrderType::ASC);
        }
    }
    TableDesc {
        table_id,
        types: types.to_vec(),
        pk,
        pk_orders,
        dist_key_in_pk: (0..group.len()).collect(),
    }
}

/// A group changed in the current epoch.
struct Changed {
    /// Its key values.
    key: Vec<Datum>,
    /// Its output rows before its first change.
    before: Vec<Vec<Datum>>,
    /// How many rows it got (and were written).
    inserted: usize,
    /// With [`GroupFunction::keeps_at_most`]: the group's best rows so far (state key and
    /// input row), in rank order (state keys sort as rows rank), at most that many. The
    /// state holds these and `dropped`.
    best: Vec<(Bytes, Vec<Datum>)>,
    /// With [`GroupFunction::keeps_at_most`]: the state keys of the rows `best` pushed out,
    /// deleted at the barrier.
    dropped: Vec<Bytes>,
}

impl Changed {
    /// Whether a row with state key `key` may be kept by a group that keeps at most `limit`
    /// rows, taking it (made by `row`) among the best if so. A row ranked after `limit`
    /// better ones never will be (the input only inserts), so it is not written at all: the
    /// state gets the rows that improve a group, not every row (which the barrier would
    /// delete again).
    fn admit(&mut self, key: &Bytes, limit: usize, row: impl FnOnce() -> Vec<Datum>) -> bool {
        let at = self.best.partition_point(|(b, _)| b < key);
        if at >= limit {
            return false;
        }
        self.best.insert(at, (key.clone(), row()));
        if self.best.len() > limit {
            let (gone, _) = self.best.pop().expect("past the limit");
            self.dropped.push(gone);
        }
        true
    }
}

/// An input row held to be output, with room for its rank.
fn input_row(values: impl ExactSizeIterator<Item = Datum>) -> Vec<Datum> {
    let mut row = Vec::with_capacity(values.len() + 1);
    row.extend(values);
    row
}

/// The state key of an input row (a group's output row may carry its rank after the input
/// columns).
fn state_key<S: StateStore>(table: &StateTable<S>, row: &[Datum]) -> Bytes {
    let desc = table.desc();
    let pk: Vec<Datum> = desc.pk.iter().map(|c| row[*c].clone()).collect();
    desc.key_of_pk(&pk)
}

/// Keeps every row of `input` by group and emits the changes of each changed group's output
/// rows at each barrier. `vnodes` are the vnodes this actor owns.
pub(crate) fn recompute_groups<S: StateStore>(
    job: u32,
    store: S,
    mut input: MessageStream,
    function: GroupFunction,
    cache_bytes: usize,
    vnodes: Vec<u16>,
) -> MessageStream {
    // A group's rows are read in order.
    let mut table =
        StateTable::new(function.desc(), store, epoch_mvcc::Epoch(0), cache_bytes).read_by_ranges();
    let group_width = function.group_key().len();
    if group_width > 0 {
        table.index_prefix(group_width);
    }
    let output_types = function.output_types();
    let group_orders = vec![OrderType::ASC; group_width];
    let keeps_at_most = function.keeps_at_most();
    Box::pin(async_stream::try_stream! {
        let mut first = true;
        let mut changed: HashMap<Vec<u8>, Changed> = HashMap::new();
        // A watermark of the first group key column, and the watermarks to pass on.
        let mut clean_below: Option<Datum> = None;
        let mut watermarks: Vec<Watermark> = Vec::new();
        while let Some(message) = input.next().await {
            match message? {
                // Other columns' rows move between groups' outputs: no promise about them
                // holds.
                Message::Watermark(w) => {
                    if function.group_key().first() == Some(&w.column) {
                        clean_below = Some(w.value.clone());
                        watermarks.push(w);
                    }
                }
                Message::Chunk(chunk) => {
                    if first {
                        Err(Error::Internal("a job's first message must be a barrier".into()))?;
                    }
                    let columns = chunk.data().columns();
                    let encoded = encode_keys(chunk.data(), function.group_key(), &group_orders);
                    // With a bound on the rows a group keeps, each row's state key tells whether
                    // it can be kept (see `Changed::admit`).
                    let state_keys = keeps_at_most.map(|_| table.desc().keys(chunk.data()));
                    let mut admitted = Vec::with_capacity(chunk.cardinality());
                    for (r, (encoded, op)) in encoded.into_iter().zip(chunk.ops()).enumerate() {
                        let slot = match changed.entry(encoded) {
                            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
                            std::collections::hash_map::Entry::Vacant(slot) => {
                                // The group's output before its first change: none of its
                                // rows of this epoch is in the table yet.
                                let group: Vec<Datum> = function
                                    .group_key()
                                    .iter()
                                    .map(|k| Datum::from_array(columns[*k].as_ref(), r))
                                    .collect();
                                let before = function.outputs(&table, &group).await?;
                                // Output rows are input rows, then (maybe) their rank.
                                let best = match keeps_at_most {
                                    Some(_) => before
                                        .iter()
                                        .map(|row| {
                                            let input = input_row(row[..columns.len()].iter().cloned());
                                            (state_key(&table, row), input)
                                        })
                                        .collect(),
                                    None => Vec::new(),
                                };
                                slot.insert(Changed {
                                    key: group,
                                    before,
                                    inserted: 0,
                                    best,
                                    dropped: Vec::new(),
                                })
                            }
                        };
                        let admit = match (keeps_at_most, &state_keys) {
                            (Some(limit), Some(keys)) => slot.admit(&keys[r], limit, || {
                                input_row(columns.iter().map(|c| Datum::from_array(c.as_ref(), r)))
                            }),
                            _ => true,
                        };
                        slot.inserted += usize::from(op.is_insert() && admit);
                        admitted.push(admit);
                    }
                    // Every admitted row at once, after the first changes' reads.
                    if admitted.iter().all(|a| *a) {
                        table.write_chunk(&chunk);
                    } else {
                        table.write_chunk(&chunk.filter(&BooleanArray::from(admitted))?);
                    }
                    table.spill_if_full().await?;
                }
                Message::Barrier(barrier) => {
                    if first {
                        first = false;
                        table.init_epoch(barrier.epoch.curr);
                    } else {
                        let mut ops = Vec::new();
                        let mut rows = Vec::new();
                        for (_, mut group) in changed.drain() {
                            // A group that keeps at most some rows and admitted none is
                            // as it was.
                            if keeps_at_most.is_some() && group.inserted == 0 {
                                continue;
                            }
                            let new = function.settle(&mut table, &mut group).await?;
                            push_difference(group.before, new, &mut ops, &mut rows);
                        }
                        if !rows.is_empty() {
                            let data = batch_of(
                                schema_of(&output_types),
                                columns_from_rows(&rows, &output_types),
                                rows.len(),
                            )?;
                            yield Message::Chunk(StreamChunk::new(ops, data));
                        }
                        if let Some(bound) = clean_below.take() {
                            for vnode in &vnodes {
                                table.delete_below(*vnode, &bound).await?;
                            }
                        }
                        for w in watermarks.drain(..) {
                            yield Message::Watermark(w);
                        }
                        table.commit(barrier.epoch.curr).await?;
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

    use super::*;
    use crate::batch::plan::WindowFunc;
    use crate::stream::align::receiver_stream;
    use crate::stream::channel;
    use crate::stream::testing::{barrier, memory_store};

    /// A top-N of the `limit` rows of each group (column 0) by column 1, descending, over
    /// rows of three BIGINTs keyed by column 2: its store, state layout, input and output.
    async fn top_rows_by_group(
        limit: u64,
        append_only: bool,
    ) -> (
        lsm_store::LsmStore,
        TableDesc,
        crate::stream::Sender,
        MessageStream,
    ) {
        let store = memory_store().await;
        let (tx, rx) = channel();
        let spec = TopNSpec {
            types: vec![DataType::Int64, DataType::Int64, DataType::Int64],
            group_key: vec![0],
            order: vec![SortKey {
                column: 1,
                order: OrderType::DESC,
            }],
            rank: WindowFunc::RowNumber,
            offset: 0,
            limit: Some(limit),
            output_rank: false,
            input_key: vec![2],
            state_table: 5,
            append_only,
        };
        let function = GroupFunction::TopN(spec);
        let desc = function.desc();
        let all_vnodes = (0..epoch_mvcc::VNODE_COUNT as u16).collect();
        let out = recompute_groups(
            7,
            store.clone(),
            receiver_stream(rx),
            function,
            1 << 20,
            all_vnodes,
        );
        (store, desc, tx, out)
    }

    #[tokio::test]
    async fn an_append_only_top_n_keeps_only_the_kept_rows_of_each_group() {
        // The top two rows of each group.
        let (store, desc, tx, mut out) = top_rows_by_group(2, true).await;
        tx.send(barrier(1)).await.unwrap();
        let chunks = [
            " I I I
             + 10 1 1
             + 10 5 2
             + 10 3 3
             + 20 3 4",
            " I I I
             + 10 4 5
             + 20 1 6
             + 20 9 7",
            " I I I
             + 10 9 8
             + 10 0 9",
        ];
        for (i, chunk) in chunks.iter().enumerate() {
            tx.send(Message::Chunk(StreamChunk::from_pretty(chunk)))
                .await
                .unwrap();
            tx.send(barrier(i as u64 + 2)).await.unwrap();
        }
        drop(tx);
        let mut view = apply_output(&mut out).await;
        let as_i64 = |d: &Datum| match d {
            Datum::Int64(v) => *v,
            other => panic!("{other:?}"),
        };
        view.sort_by_key(|r| (as_i64(&r[0]), as_i64(&r[2])));
        let row = |g: i64, x: i64, k: i64| vec![Datum::Int64(g), Datum::Int64(x), Datum::Int64(k)];
        assert_eq!(
            view,
            [row(10, 5, 2), row(10, 9, 8), row(20, 3, 4), row(20, 9, 7)]
        );
        // The state holds the kept rows and nothing else.
        let table = StateTable::new(desc, store, Epoch(5), 1 << 20);
        let mut stored = table.rows().await.unwrap();
        stored.sort_by_key(|r| (as_i64(&r[0]), as_i64(&r[2])));
        assert_eq!(stored, view);
    }

    /// Rows that cannot be kept are never written: a top-1 getting a group's rows best first
    /// writes one row, and the same rows worst first write (and delete) every one.
    #[tokio::test]
    async fn an_append_only_top_n_writes_only_rows_that_can_be_kept() {
        async fn ingested(prices: impl Iterator<Item = i64>) -> (u64, Vec<Vec<Datum>>) {
            let (store, _, tx, mut out) = top_rows_by_group(1, true).await;
            let rows: Vec<String> = prices.map(|p| format!("+ 10 {p} {p}")).collect();
            tx.send(barrier(1)).await.unwrap();
            let before = store.stats().ingested_bytes;
            tx.send(Message::Chunk(StreamChunk::from_pretty(&format!(
                " I I I\n{}",
                rows.join("\n")
            ))))
            .await
            .unwrap();
            tx.send(barrier(2)).await.unwrap();
            drop(tx);
            let mut output = Vec::new();
            while let Some(m) = out.next().await {
                if let Message::Chunk(c) = m.unwrap() {
                    output.extend((0..c.cardinality()).map(|r| c.row(r)));
                }
            }
            (store.stats().ingested_bytes - before, output)
        }
        let (best_first, output) = ingested((1..=100).rev()).await;
        let (worst_first, same) = ingested(1..=100).await;
        let top = vec![Datum::Int64(10), Datum::Int64(100), Datum::Int64(100)];
        assert_eq!(output, same);
        assert_eq!(same, [top]);
        assert!(
            best_first * 20 < worst_first,
            "{best_first} bytes written best first, {worst_first} worst first"
        );
    }

    #[tokio::test]
    async fn a_watermark_of_the_group_key_passes_on_and_drops_the_state_of_smaller_groups() {
        // The top row of each group.
        let (store, desc, tx, mut out) = top_rows_by_group(1, false).await;
        tx.send(barrier(1)).await.unwrap();
        tx.send(Message::Chunk(StreamChunk::from_pretty(
            " I I I
             + 10 1 1
             + 10 5 2
             + 20 3 3
             + 30 4 4",
        )))
        .await
        .unwrap();
        tx.send(barrier(2)).await.unwrap();
        let watermark = |column: usize, v: i64| Watermark {
            column,
            value: Datum::Int64(v),
        };
        // Only the group key's watermark means anything to the output.
        tx.send(Message::Watermark(watermark(1, 99))).await.unwrap();
        tx.send(Message::Watermark(watermark(0, 25))).await.unwrap();
        tx.send(barrier(3)).await.unwrap();
        drop(tx);
        let mut watermarks = Vec::new();
        let mut inserted = 0;
        while let Some(m) = out.next().await {
            match m.unwrap() {
                Message::Watermark(w) => watermarks.push(w),
                Message::Chunk(c) => inserted += c.cardinality(),
                Message::Barrier(_) => {}
            }
        }
        assert_eq!(inserted, 3, "the top row of each of the three groups");
        assert_eq!(watermarks, [watermark(0, 25)]);
        let stored = |epoch: u64| {
            let table = StateTable::new(desc.clone(), store.clone(), Epoch(epoch), 1 << 20);
            async move { table.rows().await.unwrap() }
        };
        assert_eq!(stored(2).await.len(), 4);
        let left = stored(4).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0][0], Datum::Int64(30));
    }

    /// Applies a top-N's output: inserts add a row, deletes remove it.
    async fn apply_output(out: &mut MessageStream) -> Vec<Vec<Datum>> {
        let mut view: Vec<Vec<Datum>> = Vec::new();
        while let Some(m) = out.next().await {
            if let Message::Chunk(c) = m.unwrap() {
                for (r, op) in c.ops().iter().enumerate() {
                    let row = c.row(r);
                    if op.is_insert() {
                        view.push(row);
                    } else {
                        let at = view.iter().position(|v| *v == row).expect("output before");
                        view.remove(at);
                    }
                }
            }
        }
        view
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, failure_persistence: None, ..Default::default() })]

        /// An append-only top-N by group against a model: after epochs of chunks of rows
        /// `(group, x, unique key)`, the view is each group's `limit` rows of the largest x
        /// (ties by key), and the state holds exactly those.
        #[test]
        fn an_append_only_top_n_equals_a_model(
            limit in 1u64..4,
            epochs in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec((0i64..4, 0i64..6), 1..8), 0..3),
                1..5,
            ),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (store, desc, tx, mut out) = top_rows_by_group(limit, true).await;
                let mut all = Vec::new();
                let mut next_key = 0i64;
                let mut epoch = 1;
                tx.send(barrier(epoch)).await.unwrap();
                for chunks in &epochs {
                    for rows in chunks {
                        let lines: Vec<String> = rows
                            .iter()
                            .map(|(g, x)| {
                                next_key += 1;
                                all.push([*g, *x, next_key]);
                                format!("+ {g} {x} {next_key}")
                            })
                            .collect();
                        let chunk = StreamChunk::from_pretty(&format!(" I I I\n{}", lines.join("\n")));
                        tx.send(Message::Chunk(chunk)).await.unwrap();
                    }
                    epoch += 1;
                    tx.send(barrier(epoch)).await.unwrap();
                }
                drop(tx);
                let key = |r: &[i64; 3]| (r[0], std::cmp::Reverse(r[1]), r[2]);
                all.sort_by_key(key);
                let mut expected: Vec<Vec<Datum>> = Vec::new();
                for (i, r) in all.iter().enumerate() {
                    let rank = all[..i].iter().filter(|o| o[0] == r[0]).count() as u64;
                    if rank < limit {
                        expected.push(r.iter().map(|v| Datum::Int64(*v)).collect());
                    }
                }
                let as_key = |r: &Vec<Datum>| format!("{r:?}");
                let mut view = apply_output(&mut out).await;
                view.sort_by_key(as_key);
                expected.sort_by_key(as_key);
                assert_eq!(view, expected);
                let table = StateTable::new(desc, store, Epoch(epoch + 1), 1 << 20);
                let mut stored = table.rows().await.unwrap();
                stored.sort_by_key(as_key);
                assert_eq!(stored, expected);
            });
        }
    }
}
