//! The manifest: numbered, immutable version objects on the object store.
//!
//! Version `n` is written create-only at `manifest/<n>`. Two writers that both try to commit
//! version `n` cannot both succeed, so a writer that loses is fenced: it learns that another
//! writer owns the tree and stops writing. Recovery loads the newest version.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Reader, checksum, verify_checksum};
use crate::object_store::{ObjectError, ObjectMeta, ObjectStore};
use crate::version::Version;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"LSMMANIF";
const FORMAT_VERSION: u32 = 1;
/// Object prefix of manifest versions.
pub const MANIFEST_PREFIX: &str = "manifest/";

/// Object path of manifest version `id`.
pub fn manifest_path(id: u64) -> String {
    format!("{MANIFEST_PREFIX}{id:020}")
}

fn manifest_id(path: &str) -> Option<u64> {
    path.strip_prefix(MANIFEST_PREFIX)?.parse().ok()
}

/// Encodes a version: magic, format version, JSON body, xxh3 checksum.
pub(crate) fn encode_version(v: &Version) -> Bytes {
    let body = serde_json::to_vec(v).expect("versions serialize");
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&body);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Bytes::from(out)
}

pub(crate) fn decode_version(data: &[u8], path: &str) -> Result<Version> {
    let body = verify_checksum(data, path, "manifest")?;
    let mut r = Reader::new(body, path, "manifest");
    if r.bytes(MAGIC.len())? != MAGIC {
        return Err(Error::corruption(path, "not a manifest (bad magic)"));
    }
    let format = r.u32_le()?;
    if format != FORMAT_VERSION {
        return Err(Error::corruption(
            path,
            format!("unsupported manifest format {format}"),
        ));
    }
    let json = &body[MAGIC.len() + 4..];
    let version: Version = serde_json::from_slice(json)
        .map_err(|e| Error::corruption(path, format!("manifest body: {e}")))?;
    version.validate().map_err(|e| Error::corruption(path, e))?;
    if manifest_id(path) != Some(version.id) {
        return Err(Error::corruption(
            path,
            format!("holds version {}", version.id),
        ));
    }
    Ok(version)
}

/// Reads and writes manifest versions.
#[derive(Clone, Debug)]
pub(crate) struct ManifestStore {
    object_store: Arc<dyn ObjectStore>,
}

impl ManifestStore {
    pub(crate) fn new(object_store: Arc<dyn ObjectStore>) -> Self {
        ManifestStore { object_store }
    }

    /// Every manifest object, oldest first.
    pub(crate) async fn list(&self) -> Result<Vec<(u64, ObjectMeta)>> {
        let mut out: Vec<_> = self
            .object_store
            .list(MANIFEST_PREFIX)
            .await?
            .into_iter()
            .filter_map(|m| manifest_id(&m.path).map(|id| (id, m)))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// The newest version, or `None` for an empty bucket. A corrupt newest version is an
    /// error, never silently replaced by an older one (that would lose committed data).
    pub(crate) async fn load_latest(&self) -> Result<Option<Version>> {
        let Some((id, _)) = self.list().await?.pop() else {
            return Ok(None);
        };
        let path = manifest_path(id);
        let data = self.object_store.get(&path).await?;
        decode_version(&data, &path).map(Some)
    }

    /// Version `id`, or `None` when it does not exist (yet, or any more).
    pub(crate) async fn load(&self, id: u64) -> Result<Option<Version>> {
        let path = manifest_path(id);
        match self.object_store.get(&path).await {
            Ok(data) => decode_version(&data, &path).map(Some),
            Err(ObjectError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `version` create-only; [`Error::Fenced`] if that number is taken.
    pub(crate) async fn commit(&self, version: &Version) -> Result<()> {
        let path = manifest_path(version.id);
        match self
            .object_store
            .put_if_absent(&path, encode_version(version))
            .await
        {
            Ok(()) => Ok(()),
            Err(ObjectError::AlreadyExists { .. }) => Err(Error::Fenced(format!(
                "manifest version {} was committed by another writer",
                version.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn delete(&self, id: u64) -> Result<()> {
        Ok(self.object_store.delete(&manifest_path(id)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_store::MemoryObjectStore;

    #[tokio::test]
    async fn commit_load_fence_and_corruption() {
        let mem = MemoryObjectStore::new();
        let store = ManifestStore::new(Arc::new(mem.clone()));
        assert!(store.load_latest().await.unwrap().is_none());
        let v1 = Version {
            id: 1,
            ..Version::empty()
        };
        store.commit(&v1).await.unwrap();
        let v2 = Version {
            id: 2,
            committed_epoch: 5,
            ..Version::empty()
        };
        store.commit(&v2).await.unwrap();
        assert_eq!(store.load_latest().await.unwrap(), Some(v2.clone()));
        assert!(matches!(store.commit(&v2).await, Err(Error::Fenced(_))));

        let mut raw = encode_version(&v2).to_vec();
        raw[12] ^= 1;
        mem.overwrite_raw(&manifest_path(2), Bytes::from(raw));
        assert!(matches!(
            store.load_latest().await,
            Err(Error::Corruption { .. })
        ));
        mem.overwrite_raw(&manifest_path(2), encode_version(&v1));
        assert!(matches!(
            store.load_latest().await,
            Err(Error::Corruption { .. })
        ));
    }
}
