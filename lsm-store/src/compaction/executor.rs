//! Runs a compaction task: reads the inputs, merges them, keeps what the safe epoch requires,
//! and writes the outputs. Needs only the object store, so the same code can run in the node
//! or in a remote compactor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use epoch_mvcc::{CompactionFilter, Direction, Epoch};
use futures::future::try_join_all;

use crate::compaction::{CompactionResult, CompactionTask};
use crate::iterator::{ConcatCursor, MergeCursor, SourceCursor, SstSource};
use crate::sst_writer::{SplitPolicy, build_ssts, on_rayon};
use crate::sstable::SstOptions;
use crate::sstable_store::SstStore;
use crate::version::{SstInfo, sst_path};
use crate::{Error, Result};

/// Executes `task`: uploads outputs under ids from `new_id`, calling `on_upload` with each id
/// before its upload starts (so garbage collection leaves in-flight outputs alone).
pub(crate) async fn run(
    task: &CompactionTask,
    store: &Arc<SstStore>,
    sst_options: &SstOptions,
    prefix_lens: &BTreeMap<u32, usize>,
    mut new_id: impl FnMut() -> u64,
    on_upload: impl Fn(u64),
) -> Result<CompactionResult> {
    if task.trivial_move {
        return Ok(CompactionResult {
            task_id: task.id,
            outputs: vec![],
            bytes_read: 0,
            bytes_written: 0,
        });
    }
    let object_store = store.object_store();
    let loads = task.input_ssts().map(|s| async move {
        let data = object_store
            .get(&sst_path(s.id))
            .await
            .map_err(|e| match e {
                crate::object_store::ObjectError::NotFound { .. } => Error::corruption(
                    sst_path(s.id),
                    "compaction input referenced by the manifest is missing",
                ),
                other => other.into(),
            })?;
        Ok::<_, Error>((s.id, data))
    });
    let objects: HashMap<_, _> = try_join_all(loads).await?.into_iter().collect();
    let bytes_read = objects.values().map(|b| b.len() as u64).sum();
    let source = SstSource::Preloaded(Arc::new(objects));

    let mut cursors = Vec::new();
    for run in task.inputs.iter().flat_map(|l| &l.runs) {
        let ssts: Arc<[SstInfo]> = run.clone().into();
        let mut cursor = ConcatCursor::new(ssts, source.clone(), Direction::Forward);
        cursor.seek(None).await?;
        cursors.push(SourceCursor::Concat(cursor));
    }
    let merge = MergeCursor::new(cursors, Direction::Forward)?;
    let split = SplitPolicy {
        target_file_size: task.target_file_size,
        split_by_table: true,
    };
    let (options, prefix_lens) = (sst_options.clone(), prefix_lens.clone());
    let (safe_epoch, drop_tombstones) = (Epoch(task.safe_epoch), task.drop_tombstones);
    let built = on_rayon(move || {
        let mut filter = CompactionFilter::new(safe_epoch, drop_tombstones);
        build_ssts(merge, &options, &prefix_lens, &split, |k, v| {
            filter.keep(k, v.is_delete())
        })
    })
    .await?;

    let mut outputs = Vec::with_capacity(built.len());
    let mut bytes_written = 0;
    for sst in &built {
        loop {
            let id = new_id();
            on_upload(id);
            if let Some(info) = store.upload(id, sst).await? {
                bytes_written += info.file_size;
                outputs.push(info);
                break;
            }
        }
    }
    Ok(CompactionResult {
        task_id: task.id,
        outputs,
        bytes_read,
        bytes_written,
    })
}
