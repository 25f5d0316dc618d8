//! The streaming side of the database: the running jobs (one per materialized view), where
//! each table's changes go, and the barriers that cut every job's work into epochs.
//!
//! The barrier loop in [`crate::database`] calls [`Streams::prepare_barrier`] while it holds
//! the writable epoch exclusively (no statement is writing), sends the barrier to every
//! source, waits in [`Streams::collect`] until every materialize actor has reported it, and
//! then seals the epoch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use dataflow::chunk::StreamChunk;
use dataflow::stream::{
    Barrier, BuiltJob, Collected, EpochPair, JobProgress, Message, Mutation, NewOutputs, Sender,
    UpstreamInput, Watermark,
};
use epoch_mvcc::{Epoch, Value};
use tokio::sync::{mpsc, watch};

struct Job {
    name: String,
    materialize_actors: usize,
    barrier_inputs: Vec<Sender>,
    progress: Arc<JobProgress>,
    /// Set once a barrier has connected the job; barriers collected before that say nothing
    /// about it.
    connected: bool,
    /// Set at the first collected barrier after which the backfill was done.
    backfilled: bool,
    /// The epoch as of which the view is complete, once it is.
    created: watch::Sender<Option<Epoch>>,
    /// Once the job has stopped: the epoch holding the stop's catalog changes.
    stopped: watch::Sender<Option<Epoch>>,
    /// The actors' tasks.
    actors: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<u32, Job>,
    /// The inputs of the jobs reading each table, by table id.
    table_outputs: HashMap<u32, Vec<(u32, Sender)>>,
    /// Jobs to connect at the next barrier, with their inputs.
    to_connect: Vec<(u32, Vec<UpstreamInput>)>,
    to_stop: HashSet<u32>,
    /// Catalog changes to write in the epoch the next barrier opens.
    catalog_writes: Vec<(Bytes, Value)>,
}

/// A barrier ready to send.
pub(crate) struct PreparedBarrier {
    pub(crate) barrier: Barrier,
    /// Every source: the inputs of jobs reading tables, and literal-row sources.
    pub(crate) targets: Vec<Sender>,
    /// Materialize actors that will report it.
    pub(crate) expected: usize,
    /// Catalog changes for the epoch it opens.
    pub(crate) catalog_writes: Vec<(Bytes, Value)>,
}

/// A job's progress, for `SHOW JOBS`.
pub(crate) struct JobStatus {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) rows_read: u64,
}

/// The running jobs.
pub(crate) struct Streams {
    state: parking_lot::Mutex<State>,
    collector: mpsc::UnboundedSender<Collected>,
    collected: tokio::sync::Mutex<mpsc::UnboundedReceiver<Collected>>,
}

impl Streams {
    pub(crate) fn new() -> Streams {
        let (collector, collected) = mpsc::unbounded_channel();
        Streams {
            state: parking_lot::Mutex::new(State::default()),
            collector,
            collected: tokio::sync::Mutex::new(collected),
        }
    }

    /// Drops every job's inputs, so their actors end.
    pub(crate) fn shutdown(&self) {
        *self.state.lock() = State::default();
    }

    /// Stops every job at once, for a recovery: aborts their actors, waits until none runs
    /// (none writes to the store any more), and drops what they reported. Statements waiting
    /// for a job to be created or stopped see it gone.
    pub(crate) async fn abort_all(&self) {
        let jobs = std::mem::take(&mut *self.state.lock()).jobs;
        let actors: Vec<_> = jobs.into_values().flat_map(|j| j.actors).collect();
        for actor in &actors {
            actor.abort();
        }
        for actor in actors {
            // Cancelled, or finished (failed) before the abort: either way it is gone.
            let _ = actor.await;
        }
        let mut collected = self.collected.lock().await;
        while collected.try_recv().is_ok() {}
    }

    /// Where actors report barriers.
    pub(crate) fn collector(&self) -> mpsc::UnboundedSender<Collected> {
        self.collector.clone()
    }

    /// How many actors feed the readers of table or view `id`.
    pub(crate) fn upstream_actors(&self, id: u32) -> usize {
        self.state
            .lock()
            .jobs
            .get(&id)
            .map_or(1, |j| j.materialize_actors)
    }

    /// Registers a job whose actors run; the next barrier connects it and writes
    /// `catalog_writes`. The returned receiver sees the epoch as of which the view is
    /// complete.
    pub(crate) fn add_job(
        &self,
        id: u32,
        name: String,
        built: BuiltJob,
        catalog_writes: Vec<(Bytes, Value)>,
    ) -> watch::Receiver<Option<Epoch>> {
        let (created, created_rx) = watch::channel(None);
        let mut state = self.state.lock();
        state.jobs.insert(
            id,
            Job {
                name,
                materialize_actors: built.materialize_actors,
                barrier_inputs: built.barrier_inputs,
                progress: built.progress,
                connected: false,
                backfilled: false,
                created,
                stopped: watch::channel(None).0,
                actors: built.actors,
            },
        );
        state.to_connect.push((id, built.upstreams));
        state.catalog_writes.extend(catalog_writes);
        created_rx
    }

    /// Stops job `id` at the next barrier, which also writes `catalog_writes`. The returned
    /// receiver gets the epoch of those writes once the job has stopped.
    pub(crate) fn stop_job(
        &self,
        id: u32,
        catalog_writes: Vec<(Bytes, Value)>,
    ) -> Option<watch::Receiver<Option<Epoch>>> {
        let mut state = self.state.lock();
        let stopped = state.jobs.get(&id)?.stopped.subscribe();
        state.to_stop.insert(id);
        state.catalog_writes.extend(catalog_writes);
        Some(stopped)
    }

    /// Whether any job reads table `id`.
    pub(crate) fn has_readers(&self, id: u32) -> bool {
        self.state
            .lock()
            .table_outputs
            .get(&id)
            .is_some_and(|o| !o.is_empty())
    }

    /// Sends the changes a statement made to table `table` to every job reading it. The caller
    /// holds the writable epoch (shared), so no barrier passes in between.
    pub(crate) async fn dispatch(
        &self,
        table: u32,
        chunks: Vec<StreamChunk>,
        watermark: Option<Watermark>,
    ) {
        let outputs: Vec<Sender> = match self.state.lock().table_outputs.get(&table) {
            Some(outputs) => outputs.iter().map(|(_, s)| s.clone()).collect(),
            None => return,
        };
        let messages = chunks
            .into_iter()
            .map(Message::Chunk)
            .chain(watermark.map(Message::Watermark));
        for message in messages {
            for output in &outputs {
                // A closed input is a failed job; the coordinator hears of it from the job.
                let _ = output.send(message.clone()).await;
            }
        }
    }

    /// The barrier from `prev` to `curr`, with the graph changes requested since the last.
    pub(crate) fn prepare_barrier(&self, prev: Epoch, curr: Epoch) -> PreparedBarrier {
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut mutation = Mutation::default();
        for (job, inputs) in std::mem::take(&mut state.to_connect) {
            if let Some(connected) = state.jobs.get_mut(&job) {
                connected.connected = true;
            }
            for input in inputs {
                if state.jobs.contains_key(&input.upstream_id) {
                    mutation
                        .add
                        .entry(input.upstream_id)
                        .or_default()
                        .push(NewOutputs {
                            job,
                            senders: input.senders,
                        });
                } else {
                    let sender = input.senders.into_iter().next().expect("a table has one");
                    state
                        .table_outputs
                        .entry(input.upstream_id)
                        .or_default()
                        .push((job, sender));
                }
            }
        }
        mutation.stop = std::mem::take(&mut state.to_stop);
        let mut targets: Vec<Sender> = state
            .table_outputs
            .values()
            .flatten()
            .map(|(_, s)| s.clone())
            .collect();
        targets.extend(state.jobs.values().flat_map(|j| j.barrier_inputs.clone()));
        for outputs in state.table_outputs.values_mut() {
            outputs.retain(|(job, _)| !mutation.stop.contains(job));
        }
        state.table_outputs.retain(|_, o| !o.is_empty());
        let expected = state.jobs.values().map(|j| j.materialize_actors).sum();
        let mutation =
            (!mutation.add.is_empty() || !mutation.stop.is_empty()).then(|| Arc::new(mutation));
        PreparedBarrier {
            barrier: Barrier {
                epoch: EpochPair { prev, curr },
                mutation,
            },
            targets,
            expected,
            catalog_writes: std::mem::take(&mut state.catalog_writes),
        }
    }

    /// Waits until `expected` materialize actors have reported the barrier closing `epoch`.
    pub(crate) async fn collect(&self, epoch: Epoch, expected: usize) -> Result<(), String> {
        let mut collected = self.collected.lock().await;
        let mut count = 0;
        while count < expected {
            match collected.recv().await {
                Some(Collected::Barrier { epoch: e, .. }) if e == epoch => count += 1,
                Some(Collected::Barrier { job, epoch: e }) => {
                    return Err(format!(
                        "job {job} reported epoch {e:?} while {epoch:?} was collected"
                    ));
                }
                Some(Collected::Failed { job, error }) => {
                    let name = self.state.lock().jobs.get(&job).map(|j| j.name.clone());
                    return Err(format!(
                        "materialized view {} failed: {error}",
                        name.unwrap_or_else(|| job.to_string())
                    ));
                }
                None => return Err("the collector closed".into()),
            }
        }
        Ok(())
    }

    /// After `barrier` is collected: the jobs it stopped go away (their catalog changes are
    /// in the epoch it opened); views whose backfill finished before it are complete as of
    /// the epoch it closed.
    pub(crate) fn barrier_collected(&self, barrier: &Barrier) {
        let epoch = barrier.epoch.prev;
        let mut state = self.state.lock();
        for id in barrier.mutation.iter().flat_map(|m| &m.stop) {
            if let Some(job) = state.jobs.remove(id) {
                job.stopped.send_replace(Some(barrier.epoch.curr));
            }
        }
        for job in state.jobs.values_mut() {
            if !job.connected || job.created.borrow().is_some() || !job.progress.is_backfilled() {
                continue;
            }
            // Done in the barrier before this one: everything up to `epoch` is in the view.
            if job.backfilled {
                job.created.send_replace(Some(epoch));
            } else {
                job.backfilled = true;
            }
        }
    }

    /// The creation state of job `id` (see [`Streams::add_job`]), if it runs.
    pub(crate) fn created(&self, id: u32) -> Option<watch::Receiver<Option<Epoch>>> {
        self.state
            .lock()
            .jobs
            .get(&id)
            .map(|j| j.created.subscribe())
    }

    /// Every view's name with its job's progress.
    pub(crate) fn progress(&self) -> Vec<(String, Arc<JobProgress>)> {
        self.state
            .lock()
            .jobs
            .values()
            .map(|j| (j.name.clone(), Arc::clone(&j.progress)))
            .collect()
    }

    /// Jobs whose views are not complete yet.
    pub(crate) fn creating(&self) -> Vec<JobStatus> {
        self.state
            .lock()
            .jobs
            .iter()
            .filter(|(_, j)| j.created.borrow().is_none())
            .map(|(id, j)| JobStatus {
                id: *id,
                name: j.name.clone(),
                rows_read: j.progress.rows_read(),
            })
            .collect()
    }
}
