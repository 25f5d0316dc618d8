//! Compaction by other processes that share only the object store.
//!
//! The node publishes a task as an object; compactors claim it with a create-only claim
//! object, run the same executor the node runs in process, and write the result as a
//! create-only object (the first result wins). The node applies a result only if its inputs
//! are still live; otherwise its outputs are garbage for the collector. Objects:
//!
//! - `compaction/task/<task id>`: the task with what executing it needs ([`RemoteTask`]);
//! - `compaction/claim/<task id>/<generation>`: a claim ([`Claim`]) valid until it expires;
//!   a later compactor takes over an expired claim by creating the next generation;
//! - `compaction/result/<task id>`: the [`CompactionResult`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::compaction::{CompactionResult, CompactionTask};
use crate::object_store::{ObjectError, ObjectStore};
use crate::sstable::SstOptions;
use crate::sstable_store::{CacheOptions, SstStore};
use crate::{Error, Result};

const TASKS: &str = "compaction/task/";
const CLAIMS: &str = "compaction/claim/";
const RESULTS: &str = "compaction/result/";

fn task_path(id: u64) -> String {
    format!("{TASKS}{id:020}")
}

fn claims_prefix(id: u64) -> String {
    format!("{CLAIMS}{id:020}/")
}

fn result_path(id: u64) -> String {
    format!("{RESULTS}{id:020}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A published task: the task and how its outputs are to be written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteTask {
    /// The work.
    pub task: CompactionTask,
    /// Bloom filter prefix length of each table (by table id).
    pub prefix_lens: BTreeMap<u32, usize>,
    /// How outputs are laid out.
    pub sst: SstOptions,
}

/// A compactor's claim on a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claim {
    /// Who claimed it.
    pub compactor: String,
    /// Milliseconds since the Unix epoch after which another compactor may take the task.
    pub expires_at_ms: u64,
}

fn json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("plain data serializes"))
}

fn parse<T: for<'de> Deserialize<'de>>(path: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::corruption(path.to_string(), e.to_string()))
}

/// Publishes `task` for remote compactors.
pub(crate) async fn publish(store: &dyn ObjectStore, task: &RemoteTask) -> Result<()> {
    store.put(&task_path(task.task.id), json(task)).await?;
    Ok(())
}

/// The result of task `id`, if a compactor has written it.
pub(crate) async fn result(store: &dyn ObjectStore, id: u64) -> Result<Option<CompactionResult>> {
    let path = result_path(id);
    match store.get(&path).await {
        Ok(data) => parse(&path, &data).map(Some),
        Err(ObjectError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every object of task `id` (its outputs stay; they are live or garbage).
pub(crate) async fn retire(store: &dyn ObjectStore, id: u64) -> Result<()> {
    for claim in store.list(&claims_prefix(id)).await? {
        store.delete(&claim.path).await?;
    }
    for path in [result_path(id), task_path(id)] {
        match store.delete(&path).await {
            Ok(()) | Err(ObjectError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Deletes every task object (a node starting over: results of earlier tasks are not
/// applied, and their outputs become garbage).
pub(crate) async fn retire_all(store: &dyn ObjectStore) -> Result<()> {
    for prefix in [CLAIMS, RESULTS, TASKS] {
        for object in store.list(prefix).await? {
            match store.delete(&object.path).await {
                Ok(()) | Err(ObjectError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A compactor: claims published tasks and runs them. Needs only the object store.
pub struct RemoteCompactor {
    store: Arc<dyn ObjectStore>,
    sst_store: Arc<SstStore>,
    name: String,
    lease: Duration,
}

impl RemoteCompactor {
    /// A compactor called `name` over `store`, whose claims last `lease` (a task must finish
    /// well within the node's garbage collection grace period, or its result is discarded).
    pub async fn new(
        store: Arc<dyn ObjectStore>,
        cache: &CacheOptions,
        name: impl Into<String>,
        lease: Duration,
    ) -> Result<Self> {
        let sst_store = Arc::new(SstStore::new(Arc::clone(&store), cache).await?);
        Ok(RemoteCompactor {
            store,
            sst_store,
            name: name.into(),
            lease,
        })
    }

    /// Claims one unclaimed (or expired) task without a result and runs it; returns the
    /// task's id, or `None` when there was nothing to do.
    pub async fn run_once(&self) -> Result<Option<u64>> {
        let mut tasks = self.store.list(TASKS).await?;
        tasks.sort_by(|a, b| a.path.cmp(&b.path));
        for object in tasks {
            let Some(id) = object
                .path
                .strip_prefix(TASKS)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if result(self.store.as_ref(), id).await?.is_some() {
                continue;
            }
            let Some(mut generation) = self.claim(id).await? else {
                continue;
            };
            let data = match self.store.get(&object.path).await {
                Ok(data) => data,
                // Retired meanwhile (the node applied or gave up on it).
                Err(ObjectError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let remote: RemoteTask = parse(&object.path, &data)?;
            tracing::info!(task = id, compactor = %self.name, "running compaction task");
            let work = super::run(
                &remote.task,
                &self.sst_store,
                &remote.sst,
                &remote.prefix_lens,
                crate::store::new_sst_id,
                |_| {},
            );
            tokio::pin!(work);
            // The claim is renewed (its next generation created) every third of the lease
            // while the task runs, so a long task is not taken over by another compactor.
            let outcome = loop {
                tokio::select! {
                    outcome = &mut work => break outcome?,
                    _ = tokio::time::sleep(self.lease / 3) => {
                        generation += 1;
                        if !self.create_claim(id, generation).await? {
                            // Our claim lapsed and another compactor holds the task now;
                            // what we uploaded so far is garbage for the collector.
                            tracing::warn!(task = id, compactor = %self.name, "lost the claim; giving up the task");
                            return Ok(None);
                        }
                    }
                }
            };
            match self
                .store
                .put_if_absent(&result_path(id), json(&outcome))
                .await
            {
                // Another compactor finished first: ours are garbage.
                Ok(()) | Err(ObjectError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Some(id));
        }
        Ok(None)
    }

    /// Claims task `id`: creates the first claim, or the next generation after an expired
    /// one, and returns its generation. `None` when someone else holds it (or won the race to
    /// claim it).
    async fn claim(&self, id: u64) -> Result<Option<u64>> {
        let prefix = claims_prefix(id);
        let mut claims = self.store.list(&prefix).await?;
        claims.sort_by(|a, b| a.path.cmp(&b.path));
        let generation = match claims.last() {
            None => 0,
            Some(latest) => {
                let data = match self.store.get(&latest.path).await {
                    Ok(data) => data,
                    Err(ObjectError::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let claim: Claim = parse(&latest.path, &data)?;
                if claim.expires_at_ms > now_ms() {
                    return Ok(None);
                }
                let n: u64 = latest
                    .path
                    .strip_prefix(&prefix)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                n + 1
            }
        };
        Ok(self
            .create_claim(id, generation)
            .await?
            .then_some(generation))
    }

    /// Creates generation `generation` of this compactor's claim on task `id`, valid for a
    /// lease from now; false when that generation exists (another compactor made it).
    async fn create_claim(&self, id: u64, generation: u64) -> Result<bool> {
        let claim = Claim {
            compactor: self.name.clone(),
            expires_at_ms: now_ms() + self.lease.as_millis() as u64,
        };
        let path = format!("{}{generation:010}", claims_prefix(id));
        match self.store.put_if_absent(&path, json(&claim)).await {
            Ok(()) => Ok(true),
            Err(ObjectError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
