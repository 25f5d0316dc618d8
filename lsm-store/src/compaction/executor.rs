//! Runs a compaction task: reads the inputs, merges them, keeps what the safe epoch requires,
//! and writes the outputs. Needs only the object store, so the same code can run in the node
//! or in a remote compactor.

use std::collections::BTreeMap;
use std::sync::Arc;

use epoch_mvcc::{CompactionFilter, Direction, Epoch};

use crate::Result;
use crate::compaction::{CompactionResult, CompactionTask};
use crate::iterator::{ConcatCursor, MergeCursor, SourceCursor, SstSource, StreamedSsts};
use crate::sst_writer::{SplitPolicy, write_ssts};
use crate::sstable::SstOptions;
use crate::sstable_store::SstStore;
use crate::version::SstInfo;

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
    let source = SstSource::Streamed(Arc::new(StreamedSsts::new(Arc::clone(
        store.object_store(),
    ))));
    let bytes_read = task.input_ssts().map(|s| s.file_size).sum();
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
    let (safe_epoch, drop_tombstones) = (Epoch(task.safe_epoch), task.drop_tombstones);
    let mut filter = CompactionFilter::new(safe_epoch, drop_tombstones);
    // Each output is uploaded while it is built.
    let outputs = write_ssts(
        store,
        merge,
        sst_options.clone(),
        prefix_lens.clone(),
        split,
        move |k, v| filter.keep(k, v.is_delete()),
        || {
            let id = new_id();
            on_upload(id);
            id
        },
    )
    .await?;
    let bytes_written = outputs.iter().map(|o| o.file_size).sum();
    Ok(CompactionResult {
        task_id: task.id,
        outputs,
        bytes_read,
        bytes_written,
    })
}
