//! Chunks of rows: an Arrow `RecordBatch`, plus (for streams) one change operation per row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::types::{DataType, Datum};
use crate::{Error, Result};

/// What a row of a stream chunk does to the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// A new row.
    Insert,
    /// A row goes away.
    Delete,
    /// The old half of an update; the next row is the new half.
    UpdateDelete,
    /// The new half of an update; the previous row is the old half.
    UpdateInsert,
}

impl Op {
    /// Whether the row is added (`Insert`, `UpdateInsert`).
    pub fn is_insert(self) -> bool {
        matches!(self, Op::Insert | Op::UpdateInsert)
    }

    /// The op without its update pairing.
    pub fn normalize(self) -> Op {
        match self {
            Op::UpdateDelete => Op::Delete,
            Op::UpdateInsert => Op::Insert,
            op => op,
        }
    }
}

/// A schema of nullable columns `c0, c1, ...` of the given types.
pub fn schema_of(types: &[DataType]) -> SchemaRef {
    Arc::new(Schema::new(
        types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("c{i}"), t.to_arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A batch of columns with an empty-or-not row count, even without columns.
pub fn batch_of(schema: SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(Error::from)
}

/// Row `row` of `batch` as datums.
pub fn row_of(batch: &RecordBatch, row: usize) -> Vec<Datum> {
    batch
        .columns()
        .iter()
        .map(|c| Datum::from_array(c.as_ref(), row))
        .collect()
}

/// Every row of `batches` as datums (for tests and small results; a per-row conversion).
pub fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<Datum>> {
    batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |r| row_of(b, r)))
        .collect()
}

/// Rows with their change operations: the unit that flows between streaming operators.
#[derive(Clone, Debug)]
pub struct StreamChunk {
    ops: Arc<[Op]>,
    data: RecordBatch,
}

impl StreamChunk {
    /// A chunk of `data` with one op per row.
    pub fn new(ops: impl Into<Arc<[Op]>>, data: RecordBatch) -> Self {
        let ops = ops.into();
        assert_eq!(ops.len(), data.num_rows(), "one op per row");
        StreamChunk { ops, data }
    }

    /// Inserts of every row of `data`.
    pub fn inserts(data: RecordBatch) -> Self {
        StreamChunk::new(vec![Op::Insert; data.num_rows()], data)
    }

    /// The ops, one per row.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The rows.
    pub fn data(&self) -> &RecordBatch {
        &self.data
    }

    /// Number of rows.
    pub fn cardinality(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The same ops over other columns (a projection of this chunk).
    pub fn with_columns(&self, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<Self> {
        Ok(StreamChunk {
            ops: Arc::clone(&self.ops),
            data: batch_of(schema, columns, self.cardinality())?,
        })
    }

    /// Keeps the rows where `mask` is true. An update pair split by the mask becomes a plain
    /// delete or insert, so downstream never sees half an update.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Self> {
        let data = filter_record_batch(&self.data, mask)?;
        let keep = |i: usize| mask.is_valid(i) && mask.value(i);
        // A per-row loop over the ops: pairing depends on neighbours, which no kernel expresses.
        let mut ops = Vec::with_capacity(data.num_rows());
        for (i, op) in self.ops.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            let op = match op {
                Op::UpdateDelete if !(i + 1 < self.ops.len() && keep(i + 1)) => Op::Delete,
                Op::UpdateInsert if !(i > 0 && keep(i - 1)) => Op::Insert,
                op => *op,
            };
            ops.push(op);
        }
        Ok(StreamChunk::new(ops, data))
    }

    /// Row `row` as datums.
    pub fn row(&self, row: usize) -> Vec<Datum> {
        self.data
            .columns()
            .iter()
            .map(|c| Datum::from_array(c.as_ref(), row))
            .collect()
    }

    /// Parses a chunk from a small text table, for tests:
    ///
    /// ```text
    ///  I  T      (column types: B bool, i int, I bigint, F double, T varchar)
    ///  +  1 a    (ops: + insert, - delete, U- / U+ update halves; . is NULL)
    /// ```
    pub fn from_pretty(text: &str) -> Self {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let types: Vec<DataType> = lines
            .next()
            .expect("a header line of column types")
            .split_whitespace()
            .map(|t| match t {
                "B" => DataType::Boolean,
                "i" => DataType::Int32,
                "I" => DataType::Int64,
                "F" => DataType::Float64,
                "T" => DataType::Varchar,
                other => panic!("unknown column type {other}"),
            })
            .collect();
        let mut ops = Vec::new();
        let mut rows: Vec<Vec<Datum>> = Vec::new();
        for line in lines {
            let mut fields = line.split_whitespace();
            ops.push(match fields.next().expect("an op") {
                "+" => Op::Insert,
                "-" => Op::Delete,
                "U-" => Op::UpdateDelete,
                "U+" => Op::UpdateInsert,
                other => panic!("unknown op {other}"),
            });
            let row = types
                .iter()
                .zip(fields)
                .map(|(ty, f)| match (f, ty) {
                    (".", _) => Datum::Null,
                    (f, DataType::Boolean) => Datum::Bool(f == "t"),
                    (f, DataType::Int32) => Datum::Int32(f.parse().expect("int")),
                    (f, DataType::Int64) => Datum::Int64(f.parse().expect("bigint")),
                    (f, DataType::Float64) => Datum::Float64(f.parse().expect("double")),
                    (f, _) => Datum::Varchar(f.to_string()),
                })
                .collect();
            rows.push(row);
        }
        let columns = (0..types.len())
            .map(|c| crate::types::array_from_datums(types[c], rows.iter().map(|r| &r[c])))
            .collect();
        StreamChunk::new(
            ops,
            batch_of(schema_of(&types), columns, rows.len()).expect("valid chunk"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_repairs_split_updates() {
        let chunk = StreamChunk::from_pretty(
            " I T
             + 1 a
             U- 2 b
             U+ 2 c
             U- 3 d
             U+ 3 e",
        );
        let mask = BooleanArray::from(vec![true, true, false, false, true]);
        let out = chunk.filter(&mask).unwrap();
        assert_eq!(out.ops(), &[Op::Insert, Op::Delete, Op::Insert]);
        assert_eq!(
            out.row(2),
            vec![Datum::Int64(3), Datum::Varchar("e".into())]
        );
    }
}
