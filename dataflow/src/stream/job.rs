//! A streaming job (one materialized view) as actors: each fragment of its plan (the part
//! between exchanges) runs as one or more actors joined by bounded channels.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use epoch_mvcc::{Epoch, StateStore};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc::UnboundedSender;

use super::agg::{hash_agg, local_agg};
use super::align::{merge, receiver_stream};
use super::backfill::{backfill, progress_desc};
use super::dispatch::HashDispatcher;
use super::grouped::{GroupFunction, recompute_groups};
use super::join::{JoinSpec, hash_join};
use super::materialize::Materialize;
use super::over_window::OverWindowSpec;
use super::plan::StreamPlan;
use super::simple::{filter, project};
use super::top_n::TopNSpec;
use super::values::{values, values_desc};
use super::{Collected, JobProgress, Message, MessageStream, Receiver, Sender, channel};
use crate::state_table::{StateTable, TableDesc};

/// How a job's actors are laid out.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// Actors per hash-distributed fragment.
    pub parallelism: usize,
    /// Cache budget of each state table, in bytes.
    pub cache_bytes: usize,
}

/// Where a new job reads a table or view: the owner of the upstream sends its changes (and
/// barriers) into these, one sender per upstream actor.
#[derive(Debug)]
pub struct UpstreamInput {
    /// Id of the table or view.
    pub upstream_id: u32,
    /// One per upstream actor.
    pub senders: Vec<Sender>,
}

/// A job whose actors run and wait for their first barrier.
#[derive(Debug)]
pub struct BuiltJob {
    /// Inputs to connect to the upstream tables and views.
    pub upstreams: Vec<UpstreamInput>,
    /// Sources without an upstream (literal rows): the coordinator sends them barriers.
    pub barrier_inputs: Vec<Sender>,
    /// Actors that report barriers collected.
    pub materialize_actors: usize,
    /// Backfill progress.
    pub progress: Arc<JobProgress>,
    /// The actors' tasks, to stop them at once (a recovery aborts every job's actors and
    /// waits for them before it discards their unsealed writes).
    pub actors: Vec<tokio::task::JoinHandle<()>>,
}

/// The vnodes whose rows a hash exchange sends to actor `actor` of `parallelism`.
fn owned_vnodes(actor: usize, parallelism: usize) -> Vec<u16> {
    (0..epoch_mvcc::VNODE_COUNT)
        .filter(|v| v % parallelism == actor)
        .map(|v| u16::try_from(v).expect("vnodes fit in u16"))
        .collect()
}

/// The actors of the fragment `plan` heads, of `n` per distributed fragment: one where a
/// single actor reads an upstream (a table's changes, literal rows, a source of one split),
/// and no more than a source has splits (an actor without one would hold back the
/// watermark its fragment passes on).
fn fragment_parallelism(plan: &StreamPlan, n: usize) -> usize {
    match plan {
        StreamPlan::Source { source, .. } if source.splits > 1 => n.min(source.splits as usize),
        StreamPlan::Scan { .. } | StreamPlan::Values { .. } | StreamPlan::Source { .. } => 1,
        StreamPlan::Exchange { dist, .. } if dist.is_empty() => 1,
        StreamPlan::Exchange { .. } => n,
        other => other
            .children()
            .into_iter()
            .map(|c| fragment_parallelism(c, n))
            .min()
            .unwrap_or(1),
    }
}

/// Records each exchange's (upstream, downstream) parallelism.
fn plan_exchanges(
    plan: &StreamPlan,
    parallelism: usize,
    n: usize,
    out: &mut HashMap<u32, (usize, usize)>,
) {
    if let StreamPlan::Exchange { input, id, .. } = plan {
        let up = fragment_parallelism(input, n);
        out.insert(*id, (up, parallelism));
        plan_exchanges(input, up, n, out);
        return;
    }
    for c in plan.children() {
        plan_exchanges(c, parallelism, n, out);
    }
}

/// Fragment roots below `plan`'s fragment: each exchange's input.
fn exchanges_below<'a>(plan: &'a StreamPlan, out: &mut Vec<&'a StreamPlan>) {
    for c in plan.children() {
        if let StreamPlan::Exchange { .. } = c {
            out.push(c);
        }
        exchanges_below(c, out);
    }
}

struct Builder<'a, S: StateStore> {
    job: u32,
    store: S,
    options: &'a JobOptions,
    upstream_actors: &'a dyn Fn(u32) -> usize,
    /// Per exchange, per downstream actor, one receiver per upstream actor.
    receivers: HashMap<u32, Vec<Option<Vec<Receiver>>>>,
    upstreams: Vec<UpstreamInput>,
    barrier_inputs: Vec<Sender>,
    progress: Arc<JobProgress>,
    /// The actors of the fragment being built.
    fragment_actors: usize,
}

impl<S: StateStore> Builder<'_, S> {
    fn table(&self, desc: TableDesc) -> StateTable<S> {
        StateTable::new(desc, self.store.clone(), Epoch(0), self.options.cache_bytes)
    }

    /// The operators of actor `actor` of the fragment `plan` heads.
    fn stream(&mut self, plan: &StreamPlan, actor: usize) -> MessageStream {
        let job = self.job;
        let cache = self.options.cache_bytes;
        match plan {
            StreamPlan::Scan {
                upstream_id,
                table,
                columns,
                progress_table,
            } => {
                let (senders, receivers): (Vec<_>, Vec<_>) =
                    (0..(self.upstream_actors)(*upstream_id))
                        .map(|_| channel())
                        .unzip();
                self.upstreams.push(UpstreamInput {
                    upstream_id: *upstream_id,
                    senders,
                });
                self.progress.scans_pending.fetch_add(1, Ordering::AcqRel);
                let progress = self.table(progress_desc(*progress_table));
                backfill(
                    job,
                    self.store.clone(),
                    table.clone(),
                    columns.clone(),
                    progress,
                    Arc::clone(&self.progress),
                    merge(receivers),
                )
            }
            StreamPlan::Values {
                rows,
                types,
                state_table,
            } => {
                let (tx, rx) = channel();
                self.barrier_inputs.push(tx);
                let state = self.table(values_desc(*state_table));
                values(job, rows.clone(), types.clone(), state, receiver_stream(rx))
            }
            StreamPlan::Source {
                source,
                state_table,
                ..
            } => {
                let (tx, rx) = channel();
                self.barrier_inputs.push(tx);
                let state = self.table(crate::source::offset_desc(*state_table));
                let splits = source.splits_of(actor, self.fragment_actors);
                if !splits.is_empty() {
                    self.progress.sources_running.fetch_add(1, Ordering::AcqRel);
                }
                crate::source::source(
                    job,
                    source.clone(),
                    splits,
                    state,
                    receiver_stream(rx),
                    Arc::clone(&self.progress),
                )
            }
            StreamPlan::Filter { input, predicate } => {
                filter(self.stream(input, actor), predicate.clone())
            }
            StreamPlan::Unnest { input, list } => super::simple::unnest(
                self.stream(input, actor),
                list.clone(),
                input.output_types(),
            ),
            StreamPlan::Project { input, exprs } => {
                project(self.stream(input, actor), exprs.clone())
            }
            StreamPlan::LocalAgg {
                input,
                group_keys,
                aggs,
            } => local_agg(
                self.stream(input, actor),
                &input.output_types(),
                group_keys.clone(),
                aggs.clone(),
                cache,
            ),
            StreamPlan::HashAgg {
                input,
                group_keys,
                aggs,
                input_key,
                tables,
                append_only,
                distinct_shared,
            } => hash_agg(
                job,
                self.store.clone(),
                self.stream(input, actor),
                input.output_types(),
                group_keys.clone(),
                aggs.clone(),
                input_key.clone(),
                tables.clone(),
                *append_only,
                *distinct_shared,
                cache,
                owned_vnodes(
                    actor,
                    fragment_parallelism(input, self.options.parallelism.max(1)),
                ),
            ),
            StreamPlan::HashJoin {
                left,
                right,
                kind,
                left_keys,
                right_keys,
                condition,
                left_stream_key,
                right_stream_key,
                tables,
                inequalities,
            } => {
                let spec = JoinSpec {
                    kind: *kind,
                    keys: [left_keys.clone(), right_keys.clone()],
                    stream_keys: [left_stream_key.clone(), right_stream_key.clone()],
                    types: [left.output_types(), right.output_types()],
                    condition: condition.clone(),
                    tables: *tables,
                    inequalities: inequalities.clone(),
                };
                let l = self.stream(left, actor);
                let r = self.stream(right, actor);
                let vnodes = owned_vnodes(
                    actor,
                    fragment_parallelism(plan, self.options.parallelism.max(1)),
                );
                hash_join(job, self.store.clone(), spec, l, r, cache, vnodes)
            }
            StreamPlan::TopN {
                input,
                group_key,
                order,
                rank,
                limit,
                offset,
                output_rank,
                input_key,
                state_table,
                append_only,
            } => recompute_groups(
                job,
                self.store.clone(),
                self.stream(input, actor),
                GroupFunction::TopN(TopNSpec {
                    types: input.output_types(),
                    group_key: group_key.clone(),
                    order: order.clone(),
                    rank: *rank,
                    offset: *offset,
                    limit: *limit,
                    output_rank: *output_rank,
                    input_key: input_key.clone(),
                    state_table: *state_table,
                    append_only: *append_only,
                }),
                cache,
                owned_vnodes(
                    actor,
                    fragment_parallelism(input, self.options.parallelism.max(1)),
                ),
            ),
            StreamPlan::OverWindow {
                input,
                partition_by,
                order_by,
                calls,
                input_key,
                state_table,
            } => recompute_groups(
                job,
                self.store.clone(),
                self.stream(input, actor),
                GroupFunction::OverWindow(OverWindowSpec {
                    types: input.output_types(),
                    partition_by: partition_by.clone(),
                    order_by: order_by.clone(),
                    calls: calls.clone(),
                    input_key: input_key.clone(),
                    state_table: *state_table,
                }),
                cache,
                owned_vnodes(
                    actor,
                    fragment_parallelism(input, self.options.parallelism.max(1)),
                ),
            ),
            StreamPlan::Union { inputs } => {
                let inputs = inputs.iter().map(|i| self.stream(i, actor)).collect();
                super::align::union(inputs)
            }
            StreamPlan::EmitOnWindowClose {
                input,
                watermark_column,
                input_key,
                dist_key,
                state_table,
            } => {
                let desc = super::eowc::held_rows_desc(
                    *state_table,
                    &input.output_types(),
                    *watermark_column,
                    input_key,
                    dist_key,
                );
                super::eowc::emit_on_window_close(
                    job,
                    self.stream(input, actor),
                    self.table(desc),
                    *watermark_column,
                    owned_vnodes(
                        actor,
                        fragment_parallelism(input, self.options.parallelism.max(1)),
                    ),
                )
            }
            StreamPlan::Exchange { id, .. } => {
                let receivers = self
                    .receivers
                    .get_mut(id)
                    .and_then(|r| r[actor].take())
                    .expect("one receiver set per exchange and actor");
                merge(receivers)
            }
        }
    }
}

fn spawn_actor(
    job: u32,
    collector: UnboundedSender<Collected>,
    run: impl Future<Output = crate::Result<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A panic is a bug, but it must stop the job visibly rather than hang its barriers.
        let error = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        tracing::error!(job, %error, "streaming actor failed");
        let _ = collector.send(Collected::Failed { job, error });
    })
}

/// Spawns the actors of job `job`, which maintains `view` from `plan`. `upstream_actors`
/// gives the number of actors feeding each upstream table or view. Every actor waits for
/// its first barrier, which the coordinator sends once the returned inputs are connected.
pub fn build_job<S: StateStore>(
    job: u32,
    plan: &StreamPlan,
    view: TableDesc,
    store: S,
    options: &JobOptions,
    upstream_actors: &dyn Fn(u32) -> usize,
    collector: UnboundedSender<Collected>,
) -> BuiltJob {
    let n = options.parallelism.max(1);
    let root_parallelism = fragment_parallelism(plan, n);
    let mut exchanges = HashMap::new();
    plan_exchanges(plan, root_parallelism, n, &mut exchanges);
    let mut senders: HashMap<u32, Vec<Vec<Sender>>> = HashMap::new();
    let mut receivers = HashMap::new();
    for (id, (up, down)) in &exchanges {
        let mut by_up: Vec<Vec<Sender>> = (0..*up).map(|_| Vec::with_capacity(*down)).collect();
        let mut by_down: Vec<Vec<Receiver>> = (0..*down).map(|_| Vec::with_capacity(*up)).collect();
        for from in by_up.iter_mut() {
            for to in by_down.iter_mut() {
                let (tx, rx) = channel();
                from.push(tx);
                to.push(rx);
            }
        }
        senders.insert(*id, by_up);
        receivers.insert(*id, by_down.into_iter().map(Some).collect());
    }
    let mut builder = Builder {
        job,
        store: store.clone(),
        options,
        upstream_actors,
        receivers,
        upstreams: Vec::new(),
        barrier_inputs: Vec::new(),
        progress: Arc::new(JobProgress::default()),
        fragment_actors: root_parallelism,
    };
    let mut actors = Vec::new();
    for actor in 0..root_parallelism {
        let input = builder.stream(plan, actor);
        let materialize = Materialize {
            job,
            actor_index: actor,
            table: builder.table(view.clone()),
            collector: collector.clone(),
            progress: Arc::clone(&builder.progress),
        };
        actors.push(spawn_actor(job, collector.clone(), materialize.run(input)));
    }
    let mut fragments = Vec::new();
    exchanges_below(plan, &mut fragments);
    for exchange in fragments {
        let StreamPlan::Exchange { input, dist, id } = exchange else {
            unreachable!("only exchanges are listed")
        };
        let outputs = senders.remove(id).expect("channels for every exchange");
        builder.fragment_actors = outputs.len();
        for (actor, outputs) in outputs.into_iter().enumerate() {
            let mut stream = builder.stream(input, actor);
            let mut dispatcher = HashDispatcher::new(dist.clone(), outputs);
            actors.push(spawn_actor(job, collector.clone(), async move {
                while let Some(message) = stream.next().await {
                    let message = message?;
                    let stop = matches!(&message, Message::Barrier(b) if b.stops(job));
                    dispatcher.dispatch(message).await?;
                    if stop {
                        break;
                    }
                }
                Ok(())
            }));
        }
    }
    BuiltJob {
        upstreams: builder.upstreams,
        barrier_inputs: builder.barrier_inputs,
        materialize_actors: root_parallelism,
        progress: builder.progress,
        actors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Connector, DatagenSource, SourceSpec};

    fn source(splits: u32) -> StreamPlan {
        StreamPlan::Source {
            source_id: 1,
            source: SourceSpec {
                connector: Connector::Datagen(DatagenSource {
                    fields: vec![],
                    rows_per_second: 0,
                    base_time_ms: 0,
                }),
                fields: vec![],
                watermark: None,
                splits,
            },
            state_table: 2,
        }
    }

    #[test]
    fn a_split_source_gets_an_actor_per_split_up_to_the_parallelism() {
        assert_eq!(fragment_parallelism(&source(1), 4), 1);
        // No actor without a split: it would never pass a watermark on.
        assert_eq!(fragment_parallelism(&source(2), 4), 2);
        assert_eq!(fragment_parallelism(&source(8), 4), 4);
    }
}
