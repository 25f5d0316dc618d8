//! Watermarks of tables and sources (`WATERMARK FOR col AS expr`): the greatest `expr` of the
//! rows so far is the watermark of `col`; rows whose `col` is below it arrive late and are
//! dropped, so every row after a watermark has `col` at or above it. Operators downstream use
//! that promise to drop state (see [`crate::stream::Watermark`]).

use arrow::array::{BooleanArray, RecordBatch};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::batch::agg::cmp_datums;
use crate::expr::Expr;
use crate::types::Datum;

/// A table's or source's `WATERMARK FOR column AS expr`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatermarkDesc {
    /// The column's position in the rows.
    pub column: usize,
    /// The watermark a row makes (of the column's type), over the row's columns.
    pub expr: Expr,
}

impl WatermarkDesc {
    /// `batch` without its late rows (their column below `current`; NULL is never late), and
    /// the watermark after it, when the kept rows raise it above `current`.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        current: Option<&Datum>,
    ) -> Result<(RecordBatch, Option<Datum>)> {
        let column = batch.column(self.column);
        let kept = match current {
            None => batch.clone(),
            Some(w) => {
                let on_time: BooleanArray = (0..batch.num_rows())
                    .map(|r| {
                        let v = Datum::from_array(column.as_ref(), r);
                        Some(v.is_null() || cmp_datums(&v, w).is_ge())
                    })
                    .collect();
                if on_time.true_count() == batch.num_rows() {
                    batch.clone()
                } else {
                    arrow::compute::filter_record_batch(batch, &on_time)?
                }
            }
        };
        let marks = self.expr.eval(&kept)?;
        let greatest = (0..kept.num_rows())
            .map(|r| Datum::from_array(marks.as_ref(), r))
            .filter(|d| !d.is_null())
            .max_by(cmp_datums);
        let raised = greatest.filter(|g| current.is_none_or(|w| cmp_datums(g, w).is_gt()));
        Ok((kept, raised))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::StreamChunk;
    use crate::expr::BinaryOp;
    use crate::types::DataType;

    #[test]
    fn late_rows_go_and_the_greatest_mark_raises_the_watermark() {
        // WATERMARK FOR c0 AS c0 - 5
        let desc = WatermarkDesc {
            column: 0,
            expr: Expr::binary(
                BinaryOp::Sub,
                Expr::column(0, DataType::Int64),
                Expr::literal(Datum::Int64(5), DataType::Int64),
            ),
        };
        let chunk = StreamChunk::from_pretty(
            " I I
             + 10 1
             + 3 2
             + . 3
             + 20 4",
        );
        let (kept, raised) = desc.apply(chunk.data(), Some(&Datum::Int64(8))).unwrap();
        let rows = crate::chunk::rows_of(&[kept]);
        let ids: Vec<&Datum> = rows.iter().map(|r| &r[1]).collect();
        assert_eq!(ids, [&Datum::Int64(1), &Datum::Int64(3), &Datum::Int64(4)]);
        assert_eq!(raised, Some(Datum::Int64(15)));
        let (_, unchanged) = desc.apply(chunk.data(), Some(&Datum::Int64(30))).unwrap();
        assert_eq!(unchanged, None);
    }
}
