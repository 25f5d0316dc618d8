//! Hash join (and, without keys, nested-loop join) of two materialized inputs; semi and anti
//! joins return the left rows with (without) a match.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{concat_batches, take};
use epoch_mvcc::memcomparable::OrderType;

use super::plan::JoinKind;
use crate::Result;
use crate::chunk::{batch_of, schema_of};
use crate::expr::Expr;
use crate::row_codec::encode_keys;
use crate::types::DataType;

fn one_batch(batches: &[RecordBatch], types: &[DataType]) -> Result<RecordBatch> {
    let schema = schema_of(types);
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let rebased: Vec<RecordBatch> = batches
        .iter()
        .map(|b| batch_of(Arc::clone(&schema), b.columns().to_vec(), b.num_rows()))
        .collect::<Result<_>>()?;
    Ok(concat_batches(&schema, &rebased)?)
}

/// Whether row `row`'s key columns hold no NULL (NULL never equals anything in a join).
pub(crate) fn key_has_no_null(batch: &RecordBatch, keys: &[usize], row: usize) -> bool {
    keys.iter().all(|k| batch.column(*k).is_valid(row))
}

pub(crate) fn take_all(batch: &RecordBatch, indices: &UInt32Array) -> Result<Vec<ArrayRef>> {
    batch
        .columns()
        .iter()
        .map(|c| Ok(take(c.as_ref(), indices, None)?))
        .collect()
}

fn nulls(types: &[DataType], len: usize) -> Vec<ArrayRef> {
    types
        .iter()
        .map(|t| new_null_array(&t.to_arrow(), len))
        .collect()
}

/// Joins `left` and `right`; output columns are left's then right's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hash_join(
    left: &[RecordBatch],
    right: &[RecordBatch],
    left_types: &[DataType],
    right_types: &[DataType],
    kind: JoinKind,
    left_keys: &[usize],
    right_keys: &[usize],
    condition: Option<&Expr>,
) -> Result<RecordBatch> {
    let l = one_batch(left, left_types)?;
    let r = one_batch(right, right_types)?;
    let orders = vec![OrderType::ASC; left_keys.len()];
    // Candidate pairs: equal keys, or every pair for a join without keys.
    let (mut li, mut ri) = (Vec::<u32>::new(), Vec::<u32>::new());
    if left_keys.is_empty() {
        for i in 0..l.num_rows() as u32 {
            for j in 0..r.num_rows() as u32 {
                li.push(i);
                ri.push(j);
            }
        }
    } else {
        let mut table: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
        for (j, key) in encode_keys(&r, right_keys, &orders).into_iter().enumerate() {
            if key_has_no_null(&r, right_keys, j) {
                table.entry(key).or_default().push(j as u32);
            }
        }
        for (i, key) in encode_keys(&l, left_keys, &orders).into_iter().enumerate() {
            if !key_has_no_null(&l, left_keys, i) {
                continue;
            }
            if let Some(matches) = table.get(&key) {
                for j in matches {
                    li.push(i as u32);
                    ri.push(*j);
                }
            }
        }
    }
    let (li, ri) = (UInt32Array::from(li), UInt32Array::from(ri));
    let mut types = left_types.to_vec();
    types.extend_from_slice(right_types);
    let schema = schema_of(&types);
    let mut columns = take_all(&l, &li)?;
    columns.extend(take_all(&r, &ri)?);
    let mut joined = batch_of(Arc::clone(&schema), columns, li.len())?;
    let (mut li, mut ri) = (li, ri);
    if let Some(cond) = condition {
        let mask = cond.eval_mask(&joined)?;
        joined = arrow::compute::filter_record_batch(&joined, &mask)?;
        li = arrow::compute::filter(&li, &mask)?
            .as_any()
            .downcast_ref::<UInt32Array>()
            .expect("u32")
            .clone();
        ri = arrow::compute::filter(&ri, &mask)?
            .as_any()
            .downcast_ref::<UInt32Array>()
            .expect("u32")
            .clone();
    }
    if !kind.outputs_right() {
        let mut matched = vec![false; l.num_rows()];
        li.values().iter().for_each(|i| matched[*i as usize] = true);
        let keep = kind == JoinKind::LeftSemi;
        let rows = UInt32Array::from(
            (0..l.num_rows() as u32)
                .filter(|i| matched[*i as usize] == keep)
                .collect::<Vec<_>>(),
        );
        return batch_of(schema_of(left_types), take_all(&l, &rows)?, rows.len());
    }
    let mut parts = vec![joined];
    if matches!(kind, JoinKind::LeftOuter | JoinKind::FullOuter) {
        let mut matched = vec![false; l.num_rows()];
        li.values().iter().for_each(|i| matched[*i as usize] = true);
        let unmatched = UInt32Array::from(
            (0..l.num_rows() as u32)
                .filter(|i| !matched[*i as usize])
                .collect::<Vec<_>>(),
        );
        let mut columns = take_all(&l, &unmatched)?;
        columns.extend(nulls(right_types, unmatched.len()));
        parts.push(batch_of(Arc::clone(&schema), columns, unmatched.len())?);
    }
    if matches!(kind, JoinKind::RightOuter | JoinKind::FullOuter) {
        let mut matched = vec![false; r.num_rows()];
        ri.values().iter().for_each(|j| matched[*j as usize] = true);
        let unmatched = UInt32Array::from(
            (0..r.num_rows() as u32)
                .filter(|j| !matched[*j as usize])
                .collect::<Vec<_>>(),
        );
        let mut columns = nulls(left_types, unmatched.len());
        columns.extend(take_all(&r, &unmatched)?);
        parts.push(batch_of(Arc::clone(&schema), columns, unmatched.len())?);
    }
    Ok(concat_batches(&schema, &parts)?)
}
