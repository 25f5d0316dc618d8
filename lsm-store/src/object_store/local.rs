//! The embedded default: objects as files under a local directory.
//!
//! Writes go to a temporary file that is fsynced and then renamed (or, for create-only puts,
//! hard-linked, which fails atomically if the target exists) into place, and the directory is
//! fsynced, so a crash leaves either the old state or the whole new object.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectError, ObjectMeta, ObjectResult, ObjectStore, ObjectUpload, validate_path};

const TMP_DIR: &str = ".tmp";

/// Temporary files older than this are a crashed writer's leftovers. Younger ones may be
/// uploads in flight in another process sharing the directory (a node and its compactors).
const STALE_TMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Objects stored as files under a root directory.
#[derive(Clone, Debug)]
pub struct LocalObjectStore {
    root: Arc<PathBuf>,
}

impl LocalObjectStore {
    /// Opens (creating if needed) a store rooted at `dir`, and clears temporary files that a
    /// crashed writer left (those older than an hour).
    pub fn open(dir: impl AsRef<Path>) -> crate::Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let tmp = root.join(TMP_DIR);
        let io_err = |e: std::io::Error| {
            crate::Error::ObjectStore(ObjectError::from_io("open", &root.display().to_string(), e))
        };
        fs::create_dir_all(&tmp).map_err(io_err)?;
        for entry in fs::read_dir(&tmp).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_TMP_AGE);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(LocalObjectStore {
            root: Arc::new(root),
        })
    }

    fn file_path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(format!("{:016x}", rand::random::<u64>()))
    }

    async fn blocking<T: Send + 'static>(
        op: &'static str,
        path: &str,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> ObjectResult<T> {
        let p = path.to_string();
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r.map_err(|e| ObjectError::from_io(op, &p, e)),
            Err(e) => Err(ObjectError::Permanent {
                op,
                path: p,
                message: e.to_string(),
            }),
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_tmp(tmp: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(tmp)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Moves a finished temporary file into place, durably.
fn publish(tmp: &Path, dest: &Path, create_only: bool) -> std::io::Result<()> {
    let parent = dest.parent().expect("object paths have a parent");
    fs::create_dir_all(parent)?;
    let result = if create_only {
        fs::hard_link(tmp, dest).and_then(|()| fs::remove_file(tmp))
    } else {
        fs::rename(tmp, dest)
    };
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result?;
    sync_dir(parent)
}

fn list_dir(
    root: &Path,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<ObjectMeta>,
) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("under root");
        let rel = rel
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        if rel == TMP_DIR {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                list_dir(root, &path, prefix, out)?;
            }
        } else if rel.starts_with(prefix) {
            let meta = entry.metadata()?;
            out.push(ObjectMeta {
                path: rel,
                size: meta.len(),
                last_modified: meta.modified()?,
            });
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        validate_path("get", path)?;
        let file = self.file_path(path);
        Self::blocking("get", path, move || fs::read(file).map(Bytes::from)).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes> {
        validate_path("get", path)?;
        let file = self.file_path(path);
        Self::blocking("get", path, move || {
            let mut f = File::open(file)?;
            let len = f.metadata()?.len();
            let start = range.start.min(len);
            let end = range.end.min(len).max(start);
            f.seek(SeekFrom::Start(start))?;
            let mut buf = vec![0; (end - start) as usize];
            f.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        validate_path("put", path)?;
        let (tmp, dest) = (self.tmp_path(), self.file_path(path));
        Self::blocking("put", path, move || {
            write_tmp(&tmp, &data)?;
            publish(&tmp, &dest, false)
        })
        .await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        validate_path("put", path)?;
        let (tmp, dest) = (self.tmp_path(), self.file_path(path));
        Self::blocking("put", path, move || {
            write_tmp(&tmp, &data)?;
            publish(&tmp, &dest, true)
        })
        .await
    }

    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        validate_path("upload", path)?;
        let tmp = self.tmp_path();
        let t = tmp.clone();
        let file = Self::blocking("upload", path, move || {
            OpenOptions::new().create_new(true).write(true).open(t)
        })
        .await?;
        Ok(Box::new(LocalUpload {
            file: Some(file),
            tmp,
            dest: self.file_path(path),
            path: path.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> ObjectResult<()> {
        validate_path("delete", path)?;
        let file = self.file_path(path);
        Self::blocking("delete", path, move || match fs::remove_file(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
        .await
    }

    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        let root = Arc::clone(&self.root);
        let p = prefix.to_string();
        let mut out = Self::blocking("list", prefix, move || {
            let mut out = Vec::new();
            list_dir(&root, &root, &p, &mut out)?;
            Ok(out)
        })
        .await?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        validate_path("head", path)?;
        let file = self.file_path(path);
        let p = path.to_string();
        Self::blocking("head", path, move || {
            let meta = fs::metadata(file)?;
            Ok(ObjectMeta {
                path: p,
                size: meta.len(),
                last_modified: meta.modified()?,
            })
        })
        .await
    }
}

struct LocalUpload {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    path: String,
}

#[async_trait]
impl ObjectUpload for LocalUpload {
    async fn write(&mut self, data: Bytes) -> ObjectResult<()> {
        let mut file = self.file.take().expect("upload used after finish");
        let (file, result) = tokio::task::spawn_blocking(move || {
            let r = file.write_all(&data);
            (file, r)
        })
        .await
        .map_err(|e| ObjectError::Permanent {
            op: "upload",
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        self.file = Some(file);
        result.map_err(|e| ObjectError::from_io("upload", &self.path, e))
    }

    async fn finish(mut self: Box<Self>) -> ObjectResult<()> {
        let file = self.file.take().expect("upload used after finish");
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        LocalObjectStore::blocking("upload", &self.path, move || {
            file.sync_all()?;
            drop(file);
            publish(&tmp, &dest, true)
        })
        .await
    }

    async fn abort(mut self: Box<Self>) -> ObjectResult<()> {
        self.file.take();
        let tmp = self.tmp.clone();
        LocalObjectStore::blocking("upload", &self.path, move || fs::remove_file(tmp)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_temp_files_are_cleared_on_open_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        // A crashed writer's leftover, and an upload in flight in another process.
        fs::write(tmp.join("crashed"), b"x").unwrap();
        File::options()
            .write(true)
            .open(tmp.join("crashed"))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * STALE_TMP_AGE)
            .unwrap();
        fs::write(tmp.join("in-flight"), b"y").unwrap();
        let store = LocalObjectStore::open(dir.path()).unwrap();
        assert!(store.list("").await.unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("in-flight")]);
    }
}
