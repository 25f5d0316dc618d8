//! Ranking window functions (`row_number`, `rank`, `dense_rank`) over whole partitions.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, concat_batches, lexsort_to_indices, take};
use epoch_mvcc::memcomparable::OrderType;

use super::plan::{RankKind, SortKey};
use super::sortable;
use crate::Result;
use crate::chunk::{batch_of, schema_of};
use crate::row_codec::encode_keys;
use crate::types::DataType;

/// The rows of `batches` with one rank column per call appended, in partition order.
pub(crate) fn rank(
    batches: &[RecordBatch],
    types: &[DataType],
    partition_by: &[usize],
    order_by: &[SortKey],
    calls: &[RankKind],
) -> Result<RecordBatch> {
    let mut out_types = types.to_vec();
    out_types.extend(calls.iter().map(|_| DataType::Int64));
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
    let indices: UInt32Array = if sort_columns.is_empty() {
        (0..n as u32).collect()
    } else {
        lexsort_to_indices(&sort_columns, None)?
    };
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
    let mut ranks: Vec<Vec<i64>> = vec![Vec::with_capacity(n); calls.len()];
    let (mut row_number, mut rank, mut dense) = (0i64, 0i64, 0i64);
    let mut previous: Option<usize> = None;
    for &i in indices.values() {
        let i = i as usize;
        let same_partition = previous.is_some_and(|p| partitions[p] == partitions[i]);
        if !same_partition {
            (row_number, rank, dense) = (0, 0, 0);
        }
        row_number += 1;
        if !same_partition || previous.is_some_and(|p| peers[p] != peers[i]) {
            rank = row_number;
            dense += 1;
        }
        for (call, out) in calls.iter().zip(&mut ranks) {
            out.push(match call {
                RankKind::RowNumber => row_number,
                RankKind::Rank => rank,
                RankKind::DenseRank => dense,
            });
        }
        previous = Some(i);
    }
    let mut columns: Vec<ArrayRef> = all
        .columns()
        .iter()
        .map(|c| Ok(take(c.as_ref(), &indices, None)?))
        .collect::<Result<_>>()?;
    columns.extend(
        ranks
            .into_iter()
            .map(|r| Arc::new(Int64Array::from(r)) as ArrayRef),
    );
    batch_of(schema_of(&out_types), columns, n)
}
