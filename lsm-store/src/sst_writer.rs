//! Turns a merged stream of versions into SSTs, for flushes and compactions alike.

use std::collections::BTreeMap;

use bytes::Bytes;
use epoch_mvcc::{FullKeyRef, Value, VersionCursor, table_id_of};

use crate::Result;
use crate::iterator::MergeCursor;
use crate::sstable::{BuiltSst, SstBuilder, SstOptions};

/// An SST's bytes go out in parts of about this size (S3's multipart uploads take parts of
/// at least 5 MiB), so a build holds a part or two, not a whole SST.
const PART_SIZE: usize = 8 << 20;

/// What a build sends: each SST's bytes in order, then its end.
#[derive(Debug)]
pub(crate) enum SstPart {
    /// The next bytes of the SST being built.
    Data(Bytes),
    /// The SST's last bytes and properties: it is complete.
    End(BuiltSst),
}

/// How outputs are cut.
#[derive(Clone, Debug)]
pub(crate) struct SplitPolicy {
    pub(crate) target_file_size: usize,
    /// Start a new SST when the table changes, so one table's SSTs never hold another's keys.
    pub(crate) split_by_table: bool,
}

/// Drains `cursor` into SSTs, keeping the versions `keep` accepts, and sends each SST's
/// bytes on `out` as they are written (so a consumer uploads it while it is built). Outputs
/// are split only between user keys, so every version of a key lands in one SST and the
/// outputs never overlap. CPU-bound: run it off the async runtime ([`build_on_rayon`]).
pub(crate) async fn build_ssts(
    mut cursor: MergeCursor,
    options: &SstOptions,
    prefix_lens: &BTreeMap<u32, usize>,
    split: &SplitPolicy,
    mut keep: impl FnMut(FullKeyRef<'_>, &Value) -> bool,
    out: &tokio::sync::mpsc::Sender<SstPart>,
) -> Result<()> {
    let gone = || crate::Error::Internal("the SST consumer stopped".into());
    let new_builder = || SstBuilder::new(options, prefix_lens.clone(), PART_SIZE);
    let mut builder = new_builder();
    while cursor.is_valid() {
        let key = cursor.key();
        let value = cursor.value();
        if keep(key, &value) {
            let new_user_key = builder.last_user_key() != Some(key.user_key);
            let table_changed = split.split_by_table
                && builder.last_user_key().and_then(table_id_of) != table_id_of(key.user_key);
            let full = builder.estimated_size() >= split.target_file_size;
            if !builder.is_empty() && new_user_key && (full || table_changed) {
                let done = std::mem::replace(&mut builder, new_builder());
                out.send(SstPart::End(done.finish()))
                    .await
                    .map_err(|_| gone())?;
            }
            builder.add(key, &value);
            if let Some(part) = builder.take_ready() {
                out.send(SstPart::Data(part)).await.map_err(|_| gone())?;
            }
        }
        cursor.next().await?;
    }
    if !builder.is_empty() {
        out.send(SstPart::End(builder.finish()))
            .await
            .map_err(|_| gone())?;
    }
    Ok(())
}

/// Starts building SSTs from `cursor` on the rayon pool (reads it needs still go through
/// this runtime): the returned future finishes with the build, and the receiver yields the
/// SSTs' parts as they are written, at most one waiting, for the caller to upload (see
/// [`write_ssts`]). Dropping the receiver stops the build.
fn build_on_rayon(
    cursor: MergeCursor,
    options: SstOptions,
    prefix_lens: BTreeMap<u32, usize>,
    split: SplitPolicy,
    keep: impl FnMut(FullKeyRef<'_>, &Value) -> bool + Send + 'static,
) -> (
    impl std::future::Future<Output = Result<()>>,
    tokio::sync::mpsc::Receiver<SstPart>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let runtime = tokio::runtime::Handle::current();
    let build = on_rayon(move || {
        runtime.block_on(build_ssts(
            cursor,
            &options,
            &prefix_lens,
            &split,
            keep,
            &tx,
        ))
    });
    (build, rx)
}

/// Builds SSTs from `cursor` (see [`build_ssts`]) on the rayon pool and streams each to
/// `store` while it is built, under ids from `new_id` (see
/// [`crate::sstable_store::SstStore::upload_parts`]); returns them in key order.
pub(crate) async fn write_ssts(
    store: &crate::sstable_store::SstStore,
    cursor: MergeCursor,
    options: SstOptions,
    prefix_lens: BTreeMap<u32, usize>,
    split: SplitPolicy,
    keep: impl FnMut(FullKeyRef<'_>, &Value) -> bool + Send + 'static,
    new_id: impl FnMut() -> u64,
) -> Result<Vec<crate::version::SstInfo>> {
    let (build, mut parts) = build_on_rayon(cursor, options, prefix_lens, split, keep);
    let upload = async {
        let uploaded = store.upload_parts(&mut parts, new_id).await;
        // A failed upload stops the build.
        drop(parts);
        uploaded
    };
    let (built, uploaded) = tokio::join!(build, upload);
    // The upload's error first: the build's would only say that it was stopped.
    let ssts = uploaded?;
    built?;
    Ok(ssts)
}

/// Runs `f` on the rayon pool and waits for it without blocking the async runtime.
pub(crate) async fn on_rayon<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("rayon task panicked")
}
