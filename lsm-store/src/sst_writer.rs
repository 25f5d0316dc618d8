//! Turns a merged stream of versions into SSTs, for flushes and compactions alike.

use std::collections::BTreeMap;

use epoch_mvcc::{FullKeyRef, Value, VersionCursor, table_id_of};

use crate::Result;
use crate::iterator::MergeCursor;
use crate::sstable::{BuiltSst, SstBuilder, SstOptions};

/// How outputs are cut.
#[derive(Clone, Debug)]
pub(crate) struct SplitPolicy {
    pub(crate) target_file_size: usize,
    /// Start a new SST when the table changes, so one table's SSTs never hold another's keys.
    pub(crate) split_by_table: bool,
}

/// Drains `cursor` into SSTs, keeping the versions `keep` accepts. Outputs are split only
/// between user keys, so every version of a key lands in one SST and the outputs never
/// overlap. CPU-bound: run it off the async runtime.
pub(crate) fn build_ssts(
    mut cursor: MergeCursor,
    options: &SstOptions,
    prefix_lens: &BTreeMap<u32, usize>,
    split: &SplitPolicy,
    mut keep: impl FnMut(FullKeyRef<'_>, &Value) -> bool,
) -> Result<Vec<BuiltSst>> {
    let mut outputs = Vec::new();
    let mut builder = SstBuilder::new(options, prefix_lens.clone());
    futures::executor::block_on(async {
        while cursor.is_valid() {
            let key = cursor.key();
            let value = cursor.value();
            if keep(key, &value) {
                let new_user_key = builder.last_user_key() != Some(key.user_key);
                let table_changed = split.split_by_table
                    && builder.last_user_key().and_then(table_id_of) != table_id_of(key.user_key);
                let full = builder.estimated_size() >= split.target_file_size;
                if !builder.is_empty() && new_user_key && (full || table_changed) {
                    let done = std::mem::replace(
                        &mut builder,
                        SstBuilder::new(options, prefix_lens.clone()),
                    );
                    outputs.push(done.finish());
                }
                builder.add(key, &value);
            }
            cursor.next().await?;
        }
        Ok::<_, crate::Error>(())
    })?;
    if !builder.is_empty() {
        outputs.push(builder.finish());
    }
    Ok(outputs)
}

/// Runs `f` on the rayon pool and waits for it without blocking the async runtime.
pub(crate) async fn on_rayon<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("rayon task panicked")
}
