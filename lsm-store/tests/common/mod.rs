//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use bytes::Bytes;
use epoch_mvcc::{Direction, Epoch, table_key};
use lsm_store::compaction::CompactionOptions;
use lsm_store::{CacheOptions, GcOptions, LsmStore, LsmStoreOptions, SstOptions};

/// The table every test key belongs to, and its bloom prefix length (header + one byte).
pub const TABLE: u32 = 7;
pub const PREFIX_LEN: usize = 7;

/// Tiny blocks, files and levels, so a small test exercises many blocks, SSTs and levels.
pub fn small_options() -> LsmStoreOptions {
    LsmStoreOptions {
        sst: SstOptions {
            block_size: 96,
            target_file_size: 256,
            ..SstOptions::default()
        },
        cache: CacheOptions {
            block_cache_bytes: 16 << 10,
            meta_cache_bytes: 16 << 10,
            ..CacheOptions::default()
        },
        write_buffer_bytes: 1 << 20,
        compaction: CompactionOptions {
            l0_sub_level_trigger: 2,
            max_bytes_for_base_level: 300,
            level_multiplier: 3,
            background: false,
            ..CompactionOptions::default()
        },
        gc: GcOptions {
            grace_period: Duration::ZERO,
            background: false,
            ..GcOptions::default()
        },
        table_prefix_lens: BTreeMap::from([(TABLE, PREFIX_LEN)]),
    }
}

/// A user key of the test table: `[group, member]` after the table header.
pub fn key(k: u8) -> Bytes {
    table_key(TABLE, 0, &[k / 4, k % 4])
}

/// Every version of every key, as written.
#[derive(Clone, Debug, Default)]
pub struct Model {
    versions: BTreeMap<Bytes, BTreeMap<Epoch, Option<Bytes>>>,
}

impl Model {
    pub fn write(&mut self, epoch: Epoch, key: Bytes, value: Option<Bytes>) {
        self.versions.entry(key).or_default().insert(epoch, value);
    }

    /// Forgets versions newer than `epoch` (lost with a restart before their sync).
    pub fn truncate_after(&mut self, epoch: Epoch) {
        for v in self.versions.values_mut() {
            v.retain(|e, _| *e <= epoch);
        }
    }

    pub fn get(&self, key: &[u8], epoch: Epoch) -> Option<Bytes> {
        self.versions
            .get(key)?
            .range(..=epoch)
            .next_back()?
            .1
            .clone()
    }

    pub fn scan(
        &self,
        range: &(Bound<Bytes>, Bound<Bytes>),
        epoch: Epoch,
        dir: Direction,
    ) -> Vec<(Bytes, Bytes)> {
        let mut out: Vec<_> = self
            .versions
            .range::<Bytes, _>((range.0.as_ref(), range.1.as_ref()))
            .filter_map(|(k, _)| self.get(k, epoch).map(|v| (k.clone(), v)))
            .collect();
        if dir == Direction::Backward {
            out.reverse();
        }
        out
    }
}

/// Drains a store iterator.
pub async fn collect(
    store: &LsmStore,
    range: (Bound<Bytes>, Bound<Bytes>),
    epoch: Epoch,
    dir: Direction,
) -> lsm_store::Result<Vec<(Bytes, Bytes)>> {
    let mut it = store.scan(range, epoch, dir).await?;
    let mut out = Vec::new();
    while let Some(kv) = it.next_kv().await? {
        out.push(kv);
    }
    Ok(out)
}

/// An S3-compatible server for tests: the one the test script started (its endpoint in
/// `LSM_TEST_S3_ENDPOINT`), or a moto server this process starts on a free loopback port and
/// stops when dropped.
pub struct S3Server {
    pub endpoint: String,
    child: Option<std::process::Child>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn s3_server() -> S3Server {
    if let Ok(endpoint) = std::env::var("LSM_TEST_S3_ENDPOINT") {
        return S3Server {
            endpoint,
            child: None,
        };
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(
            "python3 with moto[server] is needed for the S3 tests (pip install 'moto[server]')",
        );
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "moto server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// A fresh bucket on `server`, as an object store under `prefix`.
pub async fn s3_bucket(
    server: &S3Server,
    bucket: &str,
    prefix: &str,
) -> lsm_store::object_store::S3ObjectStore {
    use lsm_store::object_store::{S3ObjectStore, S3Options};
    let options = S3Options {
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        credentials: Some(("testing".into(), "testing".into())),
    };
    let store = S3ObjectStore::new(bucket, prefix, options).await;
    store
        .client()
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    store
}

/// Behaviour every object store backend must share.
pub async fn check_object_store(store: &dyn lsm_store::object_store::ObjectStore) {
    use lsm_store::object_store::ObjectError;
    assert!(matches!(
        store.get("a/missing").await,
        Err(ObjectError::NotFound { .. })
    ));
    store
        .put("a/one", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(
        store.get("a/one").await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert_eq!(
        store.get_range("a/one", 6..11).await.unwrap(),
        Bytes::from_static(b"world")
    );
    assert_eq!(
        store.get_range("a/one", 6..100).await.unwrap(),
        Bytes::from_static(b"world")
    );
    assert_eq!(
        store.get_range("a/one", 50..100).await.unwrap(),
        Bytes::new()
    );
    store
        .put("a/one", Bytes::from_static(b"replaced"))
        .await
        .unwrap();
    assert_eq!(
        store.get("a/one").await.unwrap(),
        Bytes::from_static(b"replaced")
    );
    assert_eq!(store.head("a/one").await.unwrap().size, 8);

    store
        .put_if_absent("a/two", Bytes::from_static(b"first"))
        .await
        .unwrap();
    let second = store
        .put_if_absent("a/two", Bytes::from_static(b"second"))
        .await;
    assert!(
        matches!(second, Err(ObjectError::AlreadyExists { .. })),
        "{second:?}"
    );
    assert_eq!(
        store.get("a/two").await.unwrap(),
        Bytes::from_static(b"first")
    );

    let mut up = store.upload("b/big").await.unwrap();
    up.write(Bytes::from(vec![1u8; 1000])).await.unwrap();
    up.write(Bytes::from(vec![2u8; 1000])).await.unwrap();
    assert!(matches!(
        store.get("b/big").await,
        Err(ObjectError::NotFound { .. })
    ));
    up.finish().await.unwrap();
    let big = store.get("b/big").await.unwrap();
    assert_eq!(big.len(), 2000);
    assert_eq!(big[999..1001], [1, 2]);
    // Streaming writes are create-only too: the existing object stays.
    let mut again = store.upload("b/big").await.unwrap();
    again.write(Bytes::from_static(b"other")).await.unwrap();
    let again = again.finish().await;
    assert!(
        matches!(again, Err(ObjectError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(store.get("b/big").await.unwrap().len(), 2000);
    let mut aborted = store.upload("b/aborted").await.unwrap();
    aborted.write(Bytes::from_static(b"x")).await.unwrap();
    aborted.abort().await.unwrap();
    assert!(matches!(
        store.get("b/aborted").await,
        Err(ObjectError::NotFound { .. })
    ));

    let listed: Vec<_> = store
        .list("a/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.path)
        .collect();
    assert_eq!(listed, vec!["a/one".to_string(), "a/two".to_string()]);
    assert_eq!(store.list("").await.unwrap().len(), 3);
    store.delete("a/one").await.unwrap();
    store.delete("a/one").await.unwrap();
    assert!(matches!(
        store.get("a/one").await,
        Err(ObjectError::NotFound { .. })
    ));
    assert!(store.get("../escape").await.is_err());
}

/// A deterministic write-heavy workload with compaction and collection; `acknowledged` and
/// `synced` follow every successful sync, so after a failure they hold what was promised.
pub async fn workload(
    store: &LsmStore,
    acknowledged: &mut Model,
    synced: &mut Epoch,
) -> lsm_store::Result<()> {
    use epoch_mvcc::Value;
    let mut model = acknowledged.clone();
    for round in 0u64..8 {
        let epoch = Epoch(synced.0 + 1);
        let batch: Vec<_> = (0..12u8)
            .map(|i| {
                let k = ((round as u8).wrapping_mul(7).wrapping_add(i * 5)) % 40;
                let v = if (k + round as u8).is_multiple_of(5) {
                    Value::Delete
                } else {
                    Value::Put(Bytes::from(vec![k ^ round as u8; 20]))
                };
                (key(k), v)
            })
            .collect();
        for (k, v) in &batch {
            model.write(epoch, k.clone(), v.as_put().cloned());
        }
        store.ingest(epoch, batch).await?;
        store.seal(epoch)?;
        store.sync_epoch(epoch).await?;
        *acknowledged = model.clone();
        *synced = epoch;
        store.compact_until_settled().await?;
        if round % 3 == 2 {
            store.collect_garbage().await?;
        }
    }
    Ok(())
}
