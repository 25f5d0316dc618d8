//! Window functions (`row_number`, `rank`, `dense_rank`, `lag`, `lead`, and aggregates over
//! frames) over whole partitions.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, concat_batches, lexsort_to_indices, take};
use epoch_mvcc::memcomparable::OrderType;

use super::agg::Accumulator;
use super::plan::{Frame, FrameBound, SortKey, WindowFunc};
use super::sortable;
use crate::Result;
use crate::chunk::{batch_of, schema_of};
use crate::row_codec::encode_keys;
use crate::types::{DataType, Datum, array_from_datums};

/// The positions `[lo, hi)` of the frame of position `p` in a partition `[first, end)`
/// whose peers of `p` are `peers`.
fn frame_bounds(
    frame: Frame,
    p: usize,
    (first, end): (usize, usize),
    peers: (usize, usize),
) -> (usize, usize) {
    let back = |k: u64| p.saturating_sub(usize::try_from(k).unwrap_or(usize::MAX));
    let ahead = |k: u64| p.saturating_add(usize::try_from(k).unwrap_or(usize::MAX));
    let lo = match frame.start {
        FrameBound::UnboundedPreceding => first,
        FrameBound::Preceding(k) => back(k).max(first),
        FrameBound::CurrentRow if frame.rows => p,
        FrameBound::CurrentRow => peers.0,
        FrameBound::Following(k) => ahead(k).min(end),
        FrameBound::UnboundedFollowing => end,
    };
    let hi = match frame.end {
        FrameBound::UnboundedPreceding => first,
        FrameBound::Preceding(k) => (back(k) + 1).max(first).min(p + 1),
        FrameBound::CurrentRow if frame.rows => p + 1,
        FrameBound::CurrentRow => peers.1,
        FrameBound::Following(k) => ahead(k).saturating_add(1).min(end),
        FrameBound::UnboundedFollowing => end,
    };
    (lo, hi.max(lo))
}

/// The rows of `batches` with one column per call appended, in partition order.
pub(crate) fn rank(
    batches: &[RecordBatch],
    types: &[DataType],
    partition_by: &[usize],
    order_by: &[SortKey],
    calls: &[WindowFunc],
) -> Result<RecordBatch> {
    let mut out_types = types.to_vec();
    out_types.extend(calls.iter().map(|c| c.output_type(types)));
    let schema = schema_of(types);
    let rebased = batches
        .iter()
        .map(|b| batch_of(Arc::clone(&schema), b.columns().to_vec(), b.num_rows()))
        .collect::<Result<Vec<_>>>()?;
    let all = concat_batches(&schema, &rebased)?;
    let n = all.num_rows();
    if n == 0 {
        return Ok(RecordBatch::new_empty(schema_of(&out_types)));
    }
    let sort_columns: Vec<SortColumn> = partition_by
        .iter()
        .map(|c| SortColumn {
            values: sortable(all.column(*c)),
            options: Some(SortOptions::default()),
        })
        .chain(order_by.iter().map(|k| SortColumn {
            values: sortable(all.column(k.column)),
            options: Some(SortOptions {
                descending: k.order.descending,
                nulls_first: k.order.nulls_first,
            }),
        }))
        .collect();
    // Ties keep their input order (the sort is not stable by itself), so that lag and lead
    // over an unordered window follow the rows as they came.
    let mut sort_columns = sort_columns;
    let arrival: ArrayRef = Arc::new((0..n as u32).collect::<UInt32Array>());
    sort_columns.push(SortColumn {
        values: arrival,
        options: None,
    });
    let indices = lexsort_to_indices(&sort_columns, None)?;
    // Rows compare by their encoded keys: partition, and peers (equal order values).
    let partitions = encode_keys(
        &all,
        partition_by,
        &vec![OrderType::ASC; partition_by.len()],
    );
    let order_columns: Vec<usize> = order_by.iter().map(|k| k.column).collect();
    let peers = encode_keys(
        &all,
        &order_columns,
        &vec![OrderType::ASC; order_columns.len()],
    );
    let sorted: Vec<usize> = indices.values().iter().map(|i| *i as usize).collect();
    // Where each sorted position's partition starts and ends (exclusive).
    let mut bounds = vec![(0, n); n];
    let mut start = 0;
    for p in 1..=n {
        if p == n || partitions[sorted[p]] != partitions[sorted[p - 1]] {
            for b in &mut bounds[start..p] {
                *b = (start, p);
            }
            start = p;
        }
    }
    // Where each sorted position's peer group (same partition and order values) starts and
    // ends.
    let mut peer_bounds = vec![(0, n); n];
    let mut start = 0;
    for p in 1..=n {
        let new_group = p == n || bounds[p].0 == p || peers[sorted[p]] != peers[sorted[p - 1]];
        if new_group {
            for b in &mut peer_bounds[start..p] {
                *b = (start, p);
            }
            start = p;
        }
    }
    // Aggregates: each sorted position's value over its frame. A frame from the partition's
    // start only grows, so it is accumulated once; others are aggregated row by row.
    let mut aggregated: Vec<Vec<Datum>> = vec![Vec::new(); calls.len()];
    for (c, call) in calls.iter().enumerate() {
        let WindowFunc::Aggregate {
            kind,
            column,
            ret,
            frame,
        } = *call
        else {
            continue;
        };
        let value = |p: usize| match column {
            Some(col) => Datum::from_array(all.column(col).as_ref(), sorted[p]),
            None => Datum::Null,
        };
        let out = &mut aggregated[c];
        let mut running = Accumulator::new(kind, ret);
        let mut fed = 0;
        for p in 0..n {
            let (lo, hi) = frame_bounds(frame, p, bounds[p], peer_bounds[p]);
            if frame.start == FrameBound::UnboundedPreceding {
                if p == bounds[p].0 {
                    running = Accumulator::new(kind, ret);
                    fed = p;
                }
                while fed < hi {
                    running.update(&value(fed))?;
                    fed += 1;
                }
                out.push(running.finish()?);
            } else {
                let mut acc = Accumulator::new(kind, ret);
                for q in lo..hi {
                    acc.update(&value(q))?;
                }
                out.push(acc.finish()?);
            }
        }
    }
    let mut ranks: Vec<Vec<i64>> = (0..calls.len()).map(|_| Vec::with_capacity(n)).collect();
    // For lag and lead: the input row whose value each output row takes (None: NULL).
    let mut sources: Vec<Vec<Option<u32>>> =
        (0..calls.len()).map(|_| Vec::with_capacity(n)).collect();
    let (mut row_number, mut rank, mut dense) = (0i64, 0i64, 0i64);
    for (p, &i) in sorted.iter().enumerate() {
        let (first, end) = bounds[p];
        if p == first {
            (row_number, rank, dense) = (0, 0, 0);
        }
        row_number += 1;
        if p == first || peers[sorted[p - 1]] != peers[i] {
            rank = row_number;
            dense += 1;
        }
        for (c, call) in calls.iter().enumerate() {
            match call {
                WindowFunc::RowNumber => ranks[c].push(row_number),
                WindowFunc::Rank => ranks[c].push(rank),
                WindowFunc::DenseRank => ranks[c].push(dense),
                WindowFunc::Lag { offset, .. } => sources[c].push(
                    p.checked_sub(*offset)
                        .filter(|q| *q >= first)
                        .map(|q| sorted[q] as u32),
                ),
                WindowFunc::Lead { offset, .. } => sources[c].push(
                    Some(p + offset)
                        .filter(|q| *q < end)
                        .map(|q| sorted[q] as u32),
                ),
                WindowFunc::Aggregate { .. } => {}
            }
        }
    }
    let mut columns: Vec<ArrayRef> = all
        .columns()
        .iter()
        .map(|c| Ok(take(c.as_ref(), &indices, None)?))
        .collect::<Result<_>>()?;
    for (c, call) in calls.iter().enumerate() {
        columns.push(match call {
            WindowFunc::Lag { column, .. } | WindowFunc::Lead { column, .. } => {
                let from = UInt32Array::from(std::mem::take(&mut sources[c]));
                take(all.column(*column).as_ref(), &from, None)?
            }
            WindowFunc::Aggregate { ret, .. } => array_from_datums(*ret, aggregated[c].iter()),
            _ => Arc::new(Int64Array::from(std::mem::take(&mut ranks[c]))),
        });
    }
    batch_of(schema_of(&out_types), columns, n)
}
