//! Materialize: the last operator of a job. Writes the view's rows, passes its changes to the
//! jobs that read the view, and reports each barrier to the coordinator.

use epoch_mvcc::StateStore;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc::UnboundedSender;

use super::{Collected, JobProgress, Message, MessageStream, Sender};
use crate::Result;
use crate::state_table::StateTable;

/// One materialize actor of a view.
pub(crate) struct Materialize<S: StateStore> {
    pub(crate) job: u32,
    /// Which of the view's actors this is (it takes that sender of each new downstream job).
    pub(crate) actor_index: usize,
    pub(crate) table: StateTable<S>,
    pub(crate) collector: UnboundedSender<Collected>,
    /// Where the changes written are counted.
    pub(crate) progress: Arc<JobProgress>,
}

impl<S: StateStore> Materialize<S> {
    /// Runs until the job stops or the input ends.
    pub(crate) async fn run(mut self, mut input: MessageStream) -> Result<()> {
        let view = self.table.desc().table_id;
        let mut outputs: Vec<(u32, Sender)> = Vec::new();
        let mut first = true;
        while let Some(message) = input.next().await {
            match message? {
                Message::Chunk(chunk) => {
                    self.table.write_chunk(&chunk);
                    self.table.spill_if_full().await?;
                    self.progress
                        .changes
                        .fetch_add(chunk.cardinality() as u64, Ordering::Relaxed);
                    for (_, output) in &outputs {
                        let _ = output.send(Message::Chunk(chunk.clone())).await;
                    }
                }
                // The view's changes keep the promise; views reading it may use it.
                Message::Watermark(w) => {
                    for (_, output) in &outputs {
                        let _ = output.send(Message::Watermark(w.clone())).await;
                    }
                }
                Message::Barrier(barrier) => {
                    if first {
                        first = false;
                        self.table.init_epoch(barrier.epoch.curr);
                    } else {
                        self.table.commit(barrier.epoch.curr).await?;
                    }
                    if let Some(added) = barrier.mutation.as_ref().and_then(|m| m.add.get(&view)) {
                        for new in added {
                            outputs.push((new.job, new.senders[self.actor_index].clone()));
                        }
                    }
                    for (_, output) in &outputs {
                        let _ = output.send(Message::Barrier(barrier.clone())).await;
                    }
                    if let Some(m) = &barrier.mutation {
                        outputs.retain(|(job, _)| !m.stop.contains(job));
                    }
                    let _ = self.collector.send(Collected::Barrier {
                        job: self.job,
                        epoch: barrier.epoch.prev,
                    });
                    if barrier.stops(self.job) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}
