//! Hash aggregation.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use arrow::array::{ArrayRef, RecordBatch};
use epoch_mvcc::memcomparable::OrderType;

use super::plan::{AggCall, AggKind};
use crate::chunk::{batch_of, schema_of};
use crate::row_codec::{encode_key_column, encode_keys};
use crate::types::{DataType, Datum, array_from_datums};
use crate::{Error, Result};

/// The running state of one aggregate for one group.
#[derive(Clone, Debug)]
enum Acc {
    Count(i64),
    SumInt(Option<i64>),
    SumFloat(Option<f64>),
    Avg { sum: f64, count: i64 },
    Extreme(Datum),
    First(Option<Datum>),
}

fn new_acc(call: &AggCall) -> Acc {
    match call.kind {
        AggKind::CountStar | AggKind::Count => Acc::Count(0),
        AggKind::Sum if matches!(call.ret, DataType::Float32 | DataType::Float64) => {
            Acc::SumFloat(None)
        }
        AggKind::Sum => Acc::SumInt(None),
        AggKind::Avg => Acc::Avg { sum: 0.0, count: 0 },
        AggKind::Min | AggKind::Max => Acc::Extreme(Datum::Null),
        AggKind::FirstValue => Acc::First(None),
    }
}

/// Orders two non-NULL values of the same type (floats: NaN greatest, as PostgreSQL).
pub(crate) fn cmp_datums(a: &Datum, b: &Datum) -> Ordering {
    use Datum::*;
    match (a, b) {
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int16(x), Int16(y)) => x.cmp(y),
        (Int32(x), Int32(y)) | (Date(x), Date(y)) => x.cmp(y),
        (Int64(x), Int64(y))
        | (Time(x), Time(y))
        | (Timestamp(x), Timestamp(y))
        | (Timestamptz(x), Timestamptz(y)) => x.cmp(y),
        (Float32(x), Float32(y)) => x.total_cmp(y),
        (Float64(x), Float64(y)) => x.total_cmp(y),
        (Varchar(x), Varchar(y)) => x.cmp(y),
        // PostgreSQL compares intervals by length, a month counting 30 days.
        (
            Interval {
                months: m1,
                days: d1,
                nanos: n1,
            },
            Interval {
                months: m2,
                days: d2,
                nanos: n2,
            },
        ) => {
            let len = |m: i32, d: i32, n: i64| {
                (i128::from(m) * 30 + i128::from(d)) * 86_400_000_000_000 + i128::from(n)
            };
            len(*m1, *d1, *n1).cmp(&len(*m2, *d2, *n2))
        }
        _ => Ordering::Equal,
    }
}

pub(crate) fn as_f64(d: &Datum) -> f64 {
    match d {
        Datum::Int16(v) => f64::from(*v),
        Datum::Int32(v) => f64::from(*v),
        Datum::Int64(v) => *v as f64,
        Datum::Float32(v) => f64::from(*v),
        Datum::Float64(v) => *v,
        _ => 0.0,
    }
}

pub(crate) fn as_i64(d: &Datum) -> i64 {
    match d {
        Datum::Int16(v) => i64::from(*v),
        Datum::Int32(v) => i64::from(*v),
        Datum::Int64(v) => *v,
        _ => 0,
    }
}

impl Acc {
    fn update(&mut self, kind: AggKind, value: &Datum) -> Result<()> {
        match self {
            // The first row's value, NULL or not; count(*) counts NULLs too.
            Acc::First(first) => {
                first.get_or_insert_with(|| value.clone());
            }
            Acc::Count(n) if kind == AggKind::CountStar => *n += 1,
            // Every other aggregate ignores NULLs.
            _ if value.is_null() => {}
            Acc::Count(n) => *n += 1,
            Acc::SumInt(s) => {
                let v = as_i64(value);
                *s = Some(
                    s.unwrap_or(0)
                        .checked_add(v)
                        .ok_or_else(|| Error::OutOfRange("bigint".into()))?,
                );
            }
            Acc::SumFloat(s) => *s = Some(s.unwrap_or(0.0) + as_f64(value)),
            Acc::Avg { sum, count } => {
                *sum += as_f64(value);
                *count += 1;
            }
            Acc::Extreme(cur) => {
                let better = cur.is_null() || {
                    let ord = cmp_datums(value, cur);
                    if kind == AggKind::Min {
                        ord == Ordering::Less
                    } else {
                        ord == Ordering::Greater
                    }
                };
                if better {
                    *cur = value.clone();
                }
            }
        }
        Ok(())
    }

    fn finish(&self, ret: DataType) -> Datum {
        match self {
            Acc::Count(n) => Datum::Int64(*n),
            Acc::SumInt(s) => s.map_or(Datum::Null, Datum::Int64),
            Acc::SumFloat(s) => match (s, ret) {
                (Some(v), DataType::Float32) => Datum::Float32(*v as f32),
                (Some(v), _) => Datum::Float64(*v),
                (None, _) => Datum::Null,
            },
            Acc::Avg { count: 0, .. } => Datum::Null,
            Acc::Avg { sum, count } => Datum::Float64(sum / *count as f64),
            Acc::Extreme(d) => d.clone(),
            Acc::First(d) => d.clone().unwrap_or(Datum::Null),
        }
    }
}

/// Groups every input row and computes the aggregates.
pub(crate) fn hash_agg(
    batches: &[RecordBatch],
    input_types: &[DataType],
    group_keys: &[usize],
    aggs: &[AggCall],
) -> Result<RecordBatch> {
    let mut groups: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut key_rows: Vec<Vec<Datum>> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    let mut seen: Vec<Vec<HashSet<Vec<u8>>>> = Vec::new();
    if group_keys.is_empty() {
        groups.insert(Vec::new(), 0);
        key_rows.push(Vec::new());
        accs.push(aggs.iter().map(new_acc).collect());
        seen.push(vec![HashSet::new(); aggs.len()]);
    }
    for batch in batches {
        let keys = encode_keys(batch, group_keys, &vec![OrderType::ASC; group_keys.len()]);
        // Distinct aggregates compare encoded values.
        let distinct_values: Vec<Option<Vec<Vec<u8>>>> = aggs
            .iter()
            .map(|a| {
                a.distinct.then(|| {
                    let mut v = vec![Vec::new(); batch.num_rows()];
                    encode_key_column(
                        batch.column(a.arg.expect("distinct has an argument")),
                        OrderType::ASC,
                        &mut v,
                    );
                    v
                })
            })
            .collect();
        // Accumulating is a per-row loop: each row updates the state of its own group.
        for (row, key) in keys.into_iter().enumerate() {
            let next = key_rows.len();
            let g = *groups.entry(key).or_insert_with(|| {
                key_rows.push(
                    group_keys
                        .iter()
                        .map(|k| Datum::from_array(batch.column(*k).as_ref(), row))
                        .collect(),
                );
                accs.push(aggs.iter().map(new_acc).collect());
                seen.push(vec![HashSet::new(); aggs.len()]);
                next
            });
            for (a, call) in aggs.iter().enumerate() {
                let value = call.arg.map_or(Datum::Null, |c| {
                    Datum::from_array(batch.column(c).as_ref(), row)
                });
                if let Some(values) = &distinct_values[a]
                    && (value.is_null() || !seen[g][a].insert(values[row].clone()))
                {
                    continue;
                }
                accs[g][a].update(call.kind, &value)?;
            }
        }
    }
    let mut columns: Vec<ArrayRef> = group_keys
        .iter()
        .enumerate()
        .map(|(i, k)| array_from_datums(input_types[*k], key_rows.iter().map(|r| &r[i])))
        .collect();
    for (a, call) in aggs.iter().enumerate() {
        let values: Vec<Datum> = accs.iter().map(|g| g[a].finish(call.ret)).collect();
        columns.push(array_from_datums(call.ret, values.iter()));
    }
    let types: Vec<DataType> = group_keys
        .iter()
        .map(|k| input_types[*k])
        .chain(aggs.iter().map(|a| a.ret))
        .collect();
    batch_of(schema_of(&types), columns, key_rows.len())
}
