//! Stateless operators: filter, project and unnest.
//!
//! A streaming job must not stop because one row's expression fails (a division by zero in
//! some row of a table): like PostgreSQL's views would fail only the query that reads it, a
//! failing row's value becomes NULL (a failing predicate: false), and a warning is logged.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use futures::{StreamExt, TryStreamExt};

use super::{Message, MessageStream, Watermark};
use crate::Result;
use crate::chunk::{Op, StreamChunk, schema_of};
use crate::expr::Expr;
use crate::types::{DataType, Datum, array_from_datums};

/// Evaluates `expr`; rows whose evaluation fails get NULL.
pub(crate) fn eval_lenient(expr: &Expr, batch: &RecordBatch) -> ArrayRef {
    match expr.eval(batch) {
        Ok(array) => array,
        Err(e) => {
            tracing::warn!(error = %e, "expression failed in a streaming job; its value is NULL");
            let values: Vec<Datum> = (0..batch.num_rows())
                .map(|r| {
                    expr.eval(&batch.slice(r, 1))
                        .map_or(Datum::Null, |a| Datum::from_array(a.as_ref(), 0))
                })
                .collect();
            array_from_datums(expr.data_type(), values.iter())
        }
    }
}

/// Evaluates a predicate; NULL and failing rows count as false.
pub(crate) fn mask_lenient(predicate: &Expr, batch: &RecordBatch) -> BooleanArray {
    let array = eval_lenient(predicate, batch);
    let mask = array.as_boolean();
    match mask.nulls() {
        Some(nulls) => BooleanArray::new(mask.values() & nulls.inner(), None),
        None => mask.clone(),
    }
}

/// Keeps the changes of rows where `predicate` holds.
pub(crate) fn filter(input: MessageStream, predicate: Expr) -> MessageStream {
    Box::pin(input.try_filter_map(move |m| {
        let out = match m {
            Message::Chunk(chunk) => {
                let mask = mask_lenient(&predicate, chunk.data());
                match mask.true_count() {
                    0 => Ok(None),
                    n if n == chunk.cardinality() => Ok(Some(Message::Chunk(chunk))),
                    _ => chunk.filter(&mask).map(|c| Some(Message::Chunk(c))),
                }
            }
            // Barriers and watermarks: the kept rows are a subset.
            other => Ok(Some(other)),
        };
        futures::future::ready(out)
    }))
}

/// Computes `exprs` over every changed row; the ops stay. A watermark holds for each output
/// monotone in its column (the column itself, a window start, the column minus an interval),
/// at that output's value for the watermark.
pub(crate) fn project(input: MessageStream, exprs: Vec<Expr>) -> MessageStream {
    let types: Vec<_> = exprs.iter().map(Expr::data_type).collect();
    let schema = schema_of(&types);
    Box::pin(
        input
            .map(move |m| -> Result<Vec<Message>> {
                Ok(match m? {
                    Message::Chunk(chunk) => {
                        let columns = exprs
                            .iter()
                            .map(|e| eval_lenient(e, chunk.data()))
                            .collect();
                        vec![Message::Chunk(
                            chunk.with_columns(Arc::clone(&schema), columns)?,
                        )]
                    }
                    Message::Watermark(w) => exprs
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| {
                            e.monotone_bound(w.column, &w.value)
                                .map(|value| Message::Watermark(Watermark { column: i, value }))
                        })
                        .collect(),
                    barrier @ Message::Barrier(_) => vec![barrier],
                })
            })
            .map_ok(|messages| futures::stream::iter(messages.into_iter().map(Ok)))
            .try_flatten(),
    )
}

/// Each input row once per element of the array `list` computes from it, followed by the
/// element and its position in the array (with the input's key, the position keys the
/// output row). An update's halves become a delete and an insert.
pub(crate) fn unnest(
    input: MessageStream,
    list: Expr,
    input_types: Vec<DataType>,
) -> MessageStream {
    let element_column = input_types.len();
    let mut types = input_types;
    types.extend(list.data_type().element());
    types.push(DataType::Int64);
    let schema = schema_of(&types);
    Box::pin(
        input
            .map(move |m| -> Result<Vec<Message>> {
                Ok(match m? {
                    Message::Chunk(chunk) => {
                        let (mut columns, origins) = crate::batch::unnest(chunk.data(), &list)?;
                        let positions: arrow::array::Int64Array =
                            origins.iter().map(|(_, p)| Some(i64::from(*p))).collect();
                        columns.push(Arc::new(positions));
                        let ops: Vec<Op> = origins
                            .iter()
                            .map(|(row, _)| chunk.ops()[*row as usize].normalize())
                            .collect();
                        let data = crate::chunk::batch_of(Arc::clone(&schema), columns, ops.len())?;
                        vec![Message::Chunk(StreamChunk::new(ops, data))]
                    }
                    // Input columns keep their places; the elements of a list of expressions
                    // monotone in the column (a hopping window's starts) are at least the least
                    // of their bounds.
                    Message::Watermark(w) => {
                        let element = element_bound(&list, &w).map(|value| {
                            Message::Watermark(Watermark {
                                column: element_column,
                                value,
                            })
                        });
                        std::iter::once(Message::Watermark(w))
                            .chain(element)
                            .collect()
                    }
                    barrier @ Message::Barrier(_) => vec![barrier],
                })
            })
            .map_ok(|messages| futures::stream::iter(messages.into_iter().map(Ok)))
            .try_flatten(),
    )
}

/// The least value `list`'s elements can have after watermark `w`, when `list` is an array
/// of expressions each monotone in the watermark's column.
fn element_bound(list: &Expr, w: &Watermark) -> Option<Datum> {
    array_elements(list)?
        .iter()
        .map(|e| e.monotone_bound(w.column, &w.value))
        .collect::<Option<Vec<Datum>>>()?
        .into_iter()
        .min_by(crate::batch::agg::cmp_datums)
}

/// Whether the elements of `list` get watermarks from column `column`'s (see
/// [`element_bound`]).
pub(crate) fn elements_monotone_in(list: &Expr, column: usize) -> bool {
    array_elements(list)
        .is_some_and(|args| !args.is_empty() && args.iter().all(|e| e.is_monotone_in(column)))
}

/// The element expressions of an `ARRAY[...]` constructor.
fn array_elements(list: &Expr) -> Option<&[Expr]> {
    match list {
        Expr::Func {
            func: crate::func::Func::ArrayConstruct,
            args,
            ..
        } => Some(args),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::StreamChunk;
    use crate::expr::BinaryOp;
    use crate::types::DataType;

    #[test]
    fn hopping_window_starts_are_bounded_by_the_earliest() {
        // ARRAY[c0 - 10, c0 - 5, c0]: a row's windows start at most 10 before it.
        let minus = |d: i64| {
            Expr::binary(
                BinaryOp::Sub,
                Expr::column(0, DataType::Int64),
                Expr::literal(Datum::Int64(d), DataType::Int64),
            )
        };
        let list = Expr::Func {
            func: crate::func::Func::ArrayConstruct,
            args: vec![minus(10), minus(5), minus(0)],
            ty: DataType::list(DataType::Int64),
        };
        let w = Watermark {
            column: 0,
            value: Datum::Int64(100),
        };
        assert_eq!(element_bound(&list, &w), Some(Datum::Int64(90)));
        let other = Watermark { column: 1, ..w };
        assert_eq!(element_bound(&list, &other), None);
    }

    #[test]
    fn a_failing_row_becomes_null_not_an_error() {
        let chunk = StreamChunk::from_pretty(
            " I I
             + 6 2
             + 1 0
             + 9 3",
        );
        let div = Expr::binary(
            BinaryOp::Div,
            Expr::column(0, DataType::Int64),
            Expr::column(1, DataType::Int64),
        );
        let out = eval_lenient(&div, chunk.data());
        let values: Vec<Datum> = (0..3).map(|r| Datum::from_array(out.as_ref(), r)).collect();
        assert_eq!(values, vec![Datum::Int64(3), Datum::Null, Datum::Int64(3)]);
    }
}
