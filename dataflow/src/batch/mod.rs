//! Batch query execution: a plan becomes a stream of Arrow record batches.
//!
//! Scans, filters, projections, limits and unions stream batch by batch; aggregation, joins
//! and sorts consume their whole input first.

pub(crate) mod agg;
pub(crate) mod join;
pub mod plan;
pub(crate) mod window;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{SortColumn, SortOptions, concat_batches, lexsort_to_indices, take};
use epoch_mvcc::memcomparable::OrderType;
use epoch_mvcc::{Epoch, StateStore};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::chunk::{batch_of, schema_of};
use crate::state_table::TableScan;
use crate::types::DataType;
use crate::{Error, Result};
use plan::BatchPlan;

/// Rows per batch a scan produces.
pub const BATCH_ROWS: usize = 1024;

/// What a query runs against: the store and the epoch it reads.
pub struct BatchContext<S> {
    /// The state store.
    pub store: S,
    /// Every scan reads this (committed, or own in-flight) epoch.
    pub epoch: Epoch,
}

/// A stream of result batches.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// The rows of constant expressions, each evaluated by `eval` (without input columns).
pub(crate) fn literal_rows(
    rows: &[Vec<crate::expr::Expr>],
    types: &[DataType],
    eval: impl Fn(&crate::expr::Expr, &RecordBatch) -> Result<arrow::array::ArrayRef>,
) -> Result<RecordBatch> {
    let empty = batch_of(schema_of(&[]), vec![], 1)?;
    let mut columns: Vec<Vec<_>> = (0..types.len())
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (c, expr) in row.iter().enumerate() {
            let v = eval(expr, &empty)?;
            columns[c].push(crate::types::Datum::from_array(v.as_ref(), 0));
        }
    }
    let arrays = types
        .iter()
        .zip(&columns)
        .map(|(t, vals)| crate::types::array_from_datums(*t, vals.iter()))
        .collect();
    batch_of(schema_of(types), arrays, rows.len())
}

/// Runs `plan`, streaming its output.
pub fn execute<S: StateStore>(plan: BatchPlan, ctx: Arc<BatchContext<S>>) -> BatchStream {
    match plan {
        BatchPlan::Values { rows, types } => Box::pin(stream::once(async move {
            literal_rows(&rows, &types, |e, b| e.eval(b))
        })),
        BatchPlan::Source { .. } => Box::pin(stream::once(async {
            Err(Error::NotSupported(
                "querying a source: create a materialized view over it".into(),
            ))
        })),
        BatchPlan::Scan { table, columns } => {
            let start = async move {
                let mut scan = TableScan::new(&ctx.store, &table, ctx.epoch, BATCH_ROWS).await?;
                if columns.contains(&table.commit_time_column()) {
                    scan = scan.with_commit_time();
                }
                Ok::<_, Error>((scan, columns))
            };
            Box::pin(
                stream::once(start)
                    .map_ok(|(scan, columns)| {
                        stream::try_unfold(scan, |mut scan| async move {
                            Ok(scan.next_batch().await?.map(|b| (b, scan)))
                        })
                        .and_then(move |batch| {
                            let columns = columns.clone();
                            async move { Ok(batch.project(&columns)?) }
                        })
                    })
                    .try_flatten(),
            )
        }
        BatchPlan::Filter { input, predicate } => {
            Box::pin(execute(*input, ctx).and_then(move |batch| {
                let mask = predicate.eval_mask(&batch);
                async move { Ok(arrow::compute::filter_record_batch(&batch, &mask?)?) }
            }))
        }
        BatchPlan::Unnest { input, list } => {
            let mut types = input.output_types();
            types.extend(list.data_type().element());
            let schema = schema_of(&types);
            Box::pin(execute(*input, ctx).and_then(move |batch| {
                let out = unnest(&batch, &list)
                    .and_then(|(columns, rows)| batch_of(Arc::clone(&schema), columns, rows.len()));
                async move { out }
            }))
        }
        BatchPlan::Project { input, exprs } => {
            let types: Vec<DataType> = exprs.iter().map(|e| e.data_type()).collect();
            let schema = schema_of(&types);
            Box::pin(execute(*input, ctx).and_then(move |batch| {
                let out = exprs
                    .iter()
                    .map(|e| e.eval(&batch))
                    .collect::<Result<Vec<_>>>()
                    .and_then(|columns| batch_of(Arc::clone(&schema), columns, batch.num_rows()));
                async move { out }
            }))
        }
        BatchPlan::HashAgg {
            input,
            group_keys,
            aggs,
        } => {
            let input_types = input.output_types();
            Box::pin(stream::once(async move {
                let batches: Vec<RecordBatch> = execute(*input, ctx).try_collect().await?;
                agg::hash_agg(&batches, &input_types, &group_keys, &aggs)
            }))
        }
        BatchPlan::HashJoin {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            condition,
        } => {
            let (lt, rt) = (left.output_types(), right.output_types());
            Box::pin(stream::once(async move {
                let l: Vec<RecordBatch> = execute(*left, Arc::clone(&ctx)).try_collect().await?;
                let r: Vec<RecordBatch> = execute(*right, ctx).try_collect().await?;
                join::hash_join(
                    &l,
                    &r,
                    &lt,
                    &rt,
                    kind,
                    &left_keys,
                    &right_keys,
                    condition.as_ref(),
                )
            }))
        }
        BatchPlan::Sort { input, keys } => {
            let types = input.output_types();
            Box::pin(stream::once(async move {
                let batches: Vec<RecordBatch> = execute(*input, ctx).try_collect().await?;
                let schema = schema_of(&types);
                let rebased = batches
                    .iter()
                    .map(|b| batch_of(Arc::clone(&schema), b.columns().to_vec(), b.num_rows()))
                    .collect::<Result<Vec<_>>>()?;
                let all = concat_batches(&schema, &rebased)?;
                if all.num_rows() == 0 {
                    return Ok(all);
                }
                let sort_columns: Vec<SortColumn> = keys
                    .iter()
                    .map(|k| SortColumn {
                        values: sortable(all.column(k.column)),
                        options: Some(SortOptions {
                            descending: k.order.descending,
                            nulls_first: k.order.nulls_first,
                        }),
                    })
                    .collect();
                let indices = lexsort_to_indices(&sort_columns, None)?;
                let columns = all
                    .columns()
                    .iter()
                    .map(|c| Ok(take(c.as_ref(), &indices, None)?))
                    .collect::<Result<Vec<_>>>()?;
                batch_of(schema, columns, all.num_rows())
            }))
        }
        BatchPlan::Limit {
            input,
            limit,
            offset,
        } => {
            let state = (execute(*input, ctx), offset, limit.unwrap_or(u64::MAX));
            Box::pin(stream::try_unfold(
                state,
                |(mut input, mut skip, mut left)| async move {
                    while left > 0 {
                        let Some(batch) = input.try_next().await? else {
                            return Ok(None);
                        };
                        let rows = batch.num_rows() as u64;
                        if skip >= rows {
                            skip -= rows;
                            continue;
                        }
                        let take_rows = (rows - skip).min(left);
                        let out = batch.slice(skip as usize, take_rows as usize);
                        skip = 0;
                        left -= take_rows;
                        return Ok(Some((out, (input, skip, left))));
                    }
                    Ok(None)
                },
            ))
        }
        BatchPlan::MaxOneRow { input } => Box::pin(stream::once(async move {
            let types = input.output_types();
            let batches: Vec<RecordBatch> = execute(*input, Arc::clone(&ctx)).try_collect().await?;
            if batches.iter().map(RecordBatch::num_rows).sum::<usize>() > 1 {
                return Err(Error::CardinalityViolation(
                    "Scalar subquery produced more than one row".into(),
                ));
            }
            let schema = schema_of(&types);
            let rebased = batches
                .iter()
                .map(|b| batch_of(Arc::clone(&schema), b.columns().to_vec(), b.num_rows()))
                .collect::<Result<Vec<_>>>()?;
            Ok(concat_batches(&schema, &rebased)?)
        })),
        BatchPlan::OverWindow {
            input,
            partition_by,
            order_by,
            calls,
        } => Box::pin(stream::once(async move {
            let types = input.output_types();
            let batches: Vec<RecordBatch> = execute(*input, Arc::clone(&ctx)).try_collect().await?;
            window::rank(&batches, &types, &partition_by, &order_by, &calls)
        })),
        BatchPlan::UnionAll { inputs } => {
            Box::pin(stream::iter(inputs).flat_map(move |p| execute(p, Arc::clone(&ctx))))
        }
    }
}

/// The rows of `batch`, each once per element of its `list` array, followed by the element.
/// The output columns of an unnest, and for each output row its input row and its element's
/// position in the array.
pub(crate) type Unnested = (Vec<ArrayRef>, Vec<(u32, u32)>);

/// Each row of `batch` once per element of the array `list` computes from it, followed by
/// that element (rows whose array is NULL or empty are dropped): the output columns, and for
/// each output row the input row it came from and its element's position in the array.
pub(crate) fn unnest(batch: &RecordBatch, list: &crate::expr::Expr) -> Result<Unnested> {
    let lists = list.eval(batch)?;
    let lists = arrow::array::AsArray::as_list::<i32>(&lists);
    let (mut rows, mut elements, mut origins) = (Vec::new(), Vec::new(), Vec::new());
    for (i, w) in lists.offsets().windows(2).enumerate() {
        if arrow::array::Array::is_valid(lists, i) {
            for e in w[0]..w[1] {
                rows.push(i as u32);
                elements.push(e as u32);
                origins.push((i as u32, (e - w[0]) as u32));
            }
        }
    }
    let rows = arrow::array::UInt32Array::from(rows);
    let elements = arrow::array::UInt32Array::from(elements);
    let mut columns = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c.as_ref(), &rows, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    columns.push(arrow::compute::take(
        lists.values().as_ref(),
        &elements,
        None,
    )?);
    Ok((columns, origins))
}

/// `array`, or for types whose Arrow order is not SQL's ([`DataType::compares_by_key`]) their
/// ascending key bytes, which sort as the values do.
pub(crate) fn sortable(array: &ArrayRef) -> ArrayRef {
    match DataType::from_arrow(array.data_type()) {
        Some(ty) if ty.compares_by_key() => {
            let mut keys = vec![Vec::new(); array.len()];
            crate::row_codec::encode_key_column(array, OrderType::ASC, &mut keys);
            let nulls = array.logical_nulls();
            Arc::new(arrow::array::BinaryArray::new(
                arrow::buffer::OffsetBuffer::from_lengths(keys.iter().map(Vec::len)),
                keys.concat().into(),
                nulls,
            ))
        }
        _ => Arc::clone(array),
    }
}

#[cfg(test)]
mod tests {
    use super::plan::*;
    use super::*;
    use crate::chunk::StreamChunk;
    use crate::expr::{BinaryOp, Expr};
    use crate::state_table::{StateTable, TableDesc};
    use crate::types::Datum;
    use epoch_mvcc::memcomparable::OrderType;
    use lsm_store::object_store::MemoryObjectStore;
    use lsm_store::{LsmStore, LsmStoreOptions};

    async fn table(store: &LsmStore, id: u32, pretty: &str) -> TableDesc {
        let chunk = StreamChunk::from_pretty(pretty);
        let types: Vec<DataType> = chunk
            .data()
            .columns()
            .iter()
            .map(|c| DataType::from_arrow(c.data_type()).unwrap())
            .collect();
        let desc = TableDesc {
            table_id: id,
            types,
            pk: vec![0],
            pk_orders: vec![OrderType::ASC],
            dist_key_in_pk: vec![0],
        };
        let mut t = StateTable::new(desc.clone(), store.clone(), Epoch(1), 1 << 20);
        t.write_chunk(&chunk);
        t.commit(Epoch(2)).await.unwrap();
        desc
    }

    async fn run(store: &LsmStore, plan: BatchPlan) -> Vec<Vec<Datum>> {
        let ctx = Arc::new(BatchContext {
            store: store.clone(),
            epoch: Epoch(1),
        });
        let batches: Vec<RecordBatch> = execute(plan, ctx).try_collect().await.unwrap();
        crate::chunk::rows_of(&batches)
    }

    fn scan(desc: &TableDesc) -> Box<BatchPlan> {
        Box::new(BatchPlan::Scan {
            table: desc.clone(),
            columns: (0..desc.types.len()).collect(),
        })
    }

    #[tokio::test]
    async fn scan_filter_agg_join_sort_limit() {
        let store = LsmStore::open(
            Arc::new(MemoryObjectStore::new()),
            LsmStoreOptions::default(),
        )
        .await
        .unwrap();
        let t = table(
            &store,
            1,
            " I T I
            + 1 a 10
            + 2 b 20
            + 3 a .
            + 4 c 40",
        )
        .await;
        let u = table(
            &store,
            2,
            " I T
            + 1 x
            + 3 y
            + 9 z",
        )
        .await;
        let i = |v| Datum::Int64(v);
        let s = |v: &str| Datum::Varchar(v.into());

        // SELECT c1, count(*), sum(c2), max(c2) FROM t WHERE c0 > 1 GROUP BY c1 ORDER BY c1
        let filter = BatchPlan::Filter {
            input: scan(&t),
            predicate: Expr::binary(
                BinaryOp::Gt,
                Expr::column(0, DataType::Int64),
                Expr::literal(i(1), DataType::Int64),
            ),
        };
        let agg = BatchPlan::HashAgg {
            input: Box::new(filter),
            group_keys: vec![1],
            aggs: vec![
                AggCall::new(AggKind::CountStar, None, DataType::Int64),
                AggCall::new(AggKind::Sum, Some(2), DataType::Int64),
                AggCall::new(AggKind::Max, Some(2), DataType::Int64),
            ],
        };
        let sorted = BatchPlan::Sort {
            input: Box::new(agg),
            keys: vec![SortKey {
                column: 0,
                order: OrderType::ASC,
            }],
        };
        assert_eq!(
            run(&store, sorted).await,
            vec![
                vec![s("a"), i(1), Datum::Null, Datum::Null],
                vec![s("b"), i(1), i(20), i(20)],
                vec![s("c"), i(1), i(40), i(40)],
            ]
        );

        // Aggregation without groups over no rows: one row.
        let empty = BatchPlan::HashAgg {
            input: Box::new(BatchPlan::Filter {
                input: scan(&t),
                predicate: Expr::literal(Datum::Bool(false), DataType::Boolean),
            }),
            group_keys: vec![],
            aggs: vec![
                AggCall::new(AggKind::CountStar, None, DataType::Int64),
                AggCall::new(AggKind::Sum, Some(0), DataType::Int64),
            ],
        };
        assert_eq!(run(&store, empty).await, vec![vec![i(0), Datum::Null]]);

        // Full outer join on t.c0 = u.c0, sorted by both keys with NULLs last.
        let join = BatchPlan::HashJoin {
            left: scan(&t),
            right: scan(&u),
            kind: JoinKind::FullOuter,
            left_keys: vec![0],
            right_keys: vec![0],
            condition: None,
        };
        let project = BatchPlan::Project {
            input: Box::new(join),
            exprs: vec![
                Expr::column(0, DataType::Int64),
                Expr::column(3, DataType::Int64),
            ],
        };
        let sorted = BatchPlan::Sort {
            input: Box::new(project),
            keys: vec![
                SortKey {
                    column: 0,
                    order: OrderType::ASC,
                },
                SortKey {
                    column: 1,
                    order: OrderType::ASC,
                },
            ],
        };
        assert_eq!(
            run(&store, sorted).await,
            vec![
                vec![i(1), i(1)],
                vec![i(2), Datum::Null],
                vec![i(3), i(3)],
                vec![i(4), Datum::Null],
                vec![Datum::Null, i(9)],
            ]
        );

        // LIMIT 2 OFFSET 1 over a descending sort; UNION ALL of two scans.
        let desc = BatchPlan::Sort {
            input: scan(&t),
            keys: vec![SortKey {
                column: 0,
                order: OrderType::DESC,
            }],
        };
        let limited = BatchPlan::Limit {
            input: Box::new(desc),
            limit: Some(2),
            offset: 1,
        };
        let firsts: Vec<Datum> = run(&store, limited)
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(firsts, vec![i(3), i(2)]);
        let union = BatchPlan::UnionAll {
            inputs: vec![
                BatchPlan::Project {
                    input: scan(&t),
                    exprs: vec![Expr::column(0, DataType::Int64)],
                },
                *scan(&u),
            ]
            .into_iter()
            .map(|p| match p {
                BatchPlan::Scan { table, .. } => BatchPlan::Scan {
                    table,
                    columns: vec![0],
                },
                other => other,
            })
            .collect(),
        };
        assert_eq!(run(&store, union).await.len(), 7);
    }
}
