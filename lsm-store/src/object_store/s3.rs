//! S3 and S3-compatible storage through aws-sdk-s3.
//!
//! Configuration comes from the standard `AWS_*` environment (credentials, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`). With an endpoint override the client uses path-style addressing, which
//! S3-compatible servers expect. Large objects go up as multipart uploads.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use super::{ObjectError, ObjectMeta, ObjectResult, ObjectStore, ObjectUpload, validate_path};

/// Objects above this size are written with a multipart upload.
const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of each part of a multipart upload (S3 requires at least 5 MiB, except the last).
const PART_SIZE: usize = 8 << 20;

/// A bucket (and key prefix) on S3 or an S3-compatible server.
#[derive(Clone, Debug)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    prefix: String,
}

/// Connection settings that override the standard AWS environment.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// Endpoint of an S3-compatible server; implies path-style addressing.
    pub endpoint: Option<String>,
    /// Region; defaults to the environment's, else `us-east-1`.
    pub region: Option<String>,
    /// Static access key id and secret; defaults to the environment's credential chain.
    pub credentials: Option<(String, String)>,
}

impl S3ObjectStore {
    /// Connects using the standard AWS environment; `prefix` is prepended to every path.
    pub async fn from_env(bucket: &str, prefix: &str) -> Self {
        Self::new(bucket, prefix, S3Options::default()).await
    }

    /// Connects with `options` taking precedence over the environment.
    pub async fn new(bucket: &str, prefix: &str, options: S3Options) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        match options.region {
            Some(region) => loader = loader.region(Region::new(region)),
            None if !env_region => loader = loader.region(Region::new("us-east-1")),
            None => {}
        }
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((key_id, secret)) = options.credentials {
            loader =
                loader.credentials_provider(Credentials::new(key_id, secret, None, None, "static"));
        }
        let shared = loader.load().await;
        let endpoint_override = options.endpoint.is_some()
            || ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(endpoint_override)
            // Every object carries its own xxh3 checksums; SDK checksums only where required
            // keep S3-compatible servers that lack them working.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let prefix = prefix.trim_matches('/');
        S3ObjectStore {
            client: Client::from_conf(conf),
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// The SDK client, for administrative calls such as creating the bucket.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn key(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    async fn put_inner(&self, path: &str, data: Bytes, create_only: bool) -> ObjectResult<()> {
        validate_path("put", path)?;
        if data.len() > MULTIPART_THRESHOLD {
            let mut upload = S3Upload::start(self.clone(), path, create_only).await?;
            upload.write(data).await?;
            return Box::new(upload).finish().await;
        }
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .body(ByteStream::from(data));
        if create_only {
            req = req.if_none_match("*");
        }
        req.send().await.map_err(|e| classify("put", path, e))?;
        Ok(())
    }
}

/// Maps an SDK error to the object store's error kinds.
fn classify<E>(op: &'static str, path: &str, err: SdkError<E, HttpResponse>) -> ObjectError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let path = path.to_string();
    let message = DisplayErrorContext(&err).to_string();
    match (status, code.as_deref()) {
        (Some(404), _) | (_, Some("NoSuchKey")) => ObjectError::NotFound { path },
        (Some(412), _) | (_, Some("PreconditionFailed")) => ObjectError::AlreadyExists { path },
        // 409 ConditionalRequestConflict: a concurrent conditional write; retry decides.
        (Some(409 | 429 | 500..=599), _) | (None, _) => {
            ObjectError::Transient { op, path, message }
        }
        _ => ObjectError::Permanent { op, path, message },
    }
}

/// Reads a GET response body to the end; a broken stream is transient (the GET is retried).
async fn collect_body(body: ByteStream, path: &str) -> ObjectResult<Bytes> {
    let data = body.collect().await.map_err(|e| ObjectError::Transient {
        op: "get",
        path: path.to_string(),
        message: e.to_string(),
    })?;
    Ok(data.into_bytes())
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        validate_path("get", path)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .send()
            .await
            .map_err(|e| classify("get", path, e))?;
        collect_body(out.body, path).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes> {
        validate_path("get", path)?;
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // A range starting past the end is "unsatisfiable"; report it as empty like the
            // other backends do.
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(416) => {
                return Ok(Bytes::new());
            }
            Err(e) => return Err(classify("get", path, e)),
        };
        collect_body(out.body, path).await
    }

    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.put_inner(path, data, false).await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.put_inner(path, data, true).await
    }

    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        validate_path("upload", path)?;
        Ok(Box::new(S3Upload::start(self.clone(), path, true).await?))
    }

    async fn delete(&self, path: &str) -> ObjectResult<()> {
        validate_path("delete", path)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify("delete", path, e) {
                ObjectError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.key(prefix))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("list", prefix, e))?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                let Some(path) = key.strip_prefix(&self.prefix) else {
                    continue;
                };
                out.push(ObjectMeta {
                    path: path.to_string(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_system_time(obj.last_modified()),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        validate_path("head", path)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .send()
            .await
            .map_err(|e| classify("head", path, e))?;
        Ok(ObjectMeta {
            path: path.to_string(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            last_modified: to_system_time(out.last_modified()),
        })
    }
}

/// A multipart upload: parts of [`PART_SIZE`] go up as they fill; small objects that never
/// fill a part are written with one put at `finish`.
struct S3Upload {
    store: S3ObjectStore,
    path: String,
    create_only: bool,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    buf: BytesMut,
}

impl S3Upload {
    async fn start(store: S3ObjectStore, path: &str, create_only: bool) -> ObjectResult<Self> {
        Ok(S3Upload {
            store,
            path: path.to_string(),
            create_only,
            upload_id: None,
            parts: Vec::new(),
            buf: BytesMut::new(),
        })
    }

    async fn upload_id(&mut self) -> ObjectResult<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let out = self
            .store
            .client
            .create_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.store.key(&self.path))
            .send()
            .await
            .map_err(|e| classify("upload", &self.path, e))?;
        let id = out.upload_id().unwrap_or_default().to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn send_part(&mut self, data: Bytes) -> ObjectResult<()> {
        let upload_id = self.upload_id().await?;
        let part_number = self.parts.len() as i32 + 1;
        let mut attempt = 0;
        // Parts are retried here because a streaming upload cannot be replayed by a layer above.
        let out = loop {
            let result = self
                .store
                .client
                .upload_part()
                .bucket(&self.store.bucket)
                .key(self.store.key(&self.path))
                .upload_id(&upload_id)
                .part_number(part_number)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .map_err(|e| classify("upload", &self.path, e));
            match result {
                Err(e) if e.is_retryable() && attempt < 4 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => break other?,
            }
        };
        self.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl ObjectUpload for S3Upload {
    async fn write(&mut self, data: Bytes) -> ObjectResult<()> {
        self.buf.extend_from_slice(&data);
        while self.buf.len() >= PART_SIZE {
            let part = self.buf.split_to(PART_SIZE).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> ObjectResult<()> {
        if self.upload_id.is_none() {
            let data = std::mem::take(&mut self.buf).freeze();
            let mut req = self
                .store
                .client
                .put_object()
                .bucket(&self.store.bucket)
                .key(self.store.key(&self.path))
                .body(ByteStream::from(data));
            if self.create_only {
                req = req.if_none_match("*");
            }
            req.send()
                .await
                .map_err(|e| classify("put", &self.path, e))?;
            return Ok(());
        }
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf).freeze();
            self.send_part(last).await?;
        }
        let upload_id = self.upload_id().await?;
        let mut req = self
            .store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.store.key(&self.path))
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            );
        if self.create_only {
            req = req.if_none_match("*");
        }
        let result = req
            .send()
            .await
            .map_err(|e| classify("upload", &self.path, e));
        if result.is_err() {
            let _ = Box::new(S3Upload {
                upload_id: Some(upload_id),
                ..*self
            })
            .abort()
            .await;
        }
        result.map(|_| ())
    }

    async fn abort(self: Box<Self>) -> ObjectResult<()> {
        if let Some(upload_id) = &self.upload_id {
            self.store
                .client
                .abort_multipart_upload()
                .bucket(&self.store.bucket)
                .key(self.store.key(&self.path))
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| classify("upload", &self.path, e))?;
        }
        Ok(())
    }
}
