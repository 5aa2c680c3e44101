//! Iceberg file I/O over `object_store`, so silver tables can live on S3 (or any S3-compatible
//! server) with the same store configuration bronze uses.
//!
//! iceberg-rust 0.10.1 ships local and in-memory storage only; S3 would need the
//! `iceberg-storage-opendal` crate and a second HTTP/S3 stack. Its `Storage` trait is public, and
//! `object_store` (already our bronze store) does the S3 work: this file is only the adapter.
//! Paths arrive as full URLs (`s3://bucket/key`); one store per bucket is built lazily from the
//! standard AWS environment plus the options the catalog was opened with.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// Prefix of catalog properties that are passed to the S3 store (`strata.s3.aws_endpoint`, …,
/// the keys of `object_store::aws::AmazonS3ConfigKey`).
pub const S3_OPTION_PREFIX: &str = "strata.s3.";

/// Builds [`ObjectStorage`] from the catalog's properties.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory;

#[typetag::serde]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        let options = config
            .props()
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(S3_OPTION_PREFIX)
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        Ok(Arc::new(ObjectStorage {
            options,
            stores: Arc::default(),
        }))
    }
}

/// Iceberg `Storage` on `object_store` for `s3://` paths.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStorage {
    options: BTreeMap<String, String>,
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

fn io_error(what: &str, path: &str, e: impl std::fmt::Display) -> Error {
    let hint = crate::error::cold_hint(path, &e);
    Error::new(ErrorKind::Unexpected, format!("{what} {path}: {e}{hint}"))
}

impl ObjectStorage {
    /// The store of the bucket `path` names, and the key inside it.
    fn locate(&self, path: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let rest = path
            .strip_prefix("s3://")
            .or_else(|| path.strip_prefix("s3a://"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::FeatureUnsupported,
                    format!("{path}: this warehouse stores s3:// paths only"),
                )
            })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let key = Path::parse(key).map_err(|e| io_error("bad object path", path, e))?;
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "object store cache poisoned"))?;
        if let Some(store) = stores.get(bucket) {
            return Ok((store.clone(), key));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false);
        for (k, v) in &self.options {
            let key =
                AmazonS3ConfigKey::from_str(k).map_err(|e| io_error("unknown S3 option", k, e))?;
            builder = builder.with_config(key, v.clone());
        }
        let store: Arc<dyn ObjectStore> = Arc::new(
            builder
                .build()
                .map_err(|e| io_error("configuring S3 for", path, e))?,
        );
        stores.insert(bucket.to_string(), store.clone());
        Ok((store, key))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (store, key) = self.locate(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error("checking", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (store, key) = self.locate(path)?;
        let meta = store
            .head(&key)
            .await
            .map_err(|e| io_error("reading metadata of", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (store, key) = self.locate(path)?;
        let got = store
            .get(&key)
            .await
            .map_err(|e| io_error("reading", path, e))?;
        got.bytes().await.map_err(|e| io_error("reading", path, e))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(ObjectRead {
            store,
            key,
            path: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, key) = self.locate(path)?;
        store
            .put(&key, bs.into())
            .await
            .map_err(|e| io_error("writing", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(ObjectWrite {
            writer: Some(BufWriter::new(store, key)),
            path: path.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (store, key) = self.locate(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error("deleting", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (store, key) = self.locate(path)?;
        let mut listing = store.list(Some(&key));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| io_error("listing", path, e))?;
            store
                .delete(&meta.location)
                .await
                .map_err(|e| io_error("deleting below", path, e))?;
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object.
struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    key: Path,
    path: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| io_error("reading", &self.path, e))
    }
}

/// Streaming write of one object: a single PUT when small, a multipart upload when large
/// (`object_store`'s `BufWriter`); nothing is visible until `close`.
struct ObjectWrite {
    writer: Option<BufWriter>,
    path: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io_error("writing", &self.path, "already closed"))?;
        writer
            .write_all(&bs)
            .await
            .map_err(|e| io_error("writing", &self.path, e))
    }

    async fn close(&mut self) -> Result<()> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| io_error("closing", &self.path, "already closed"))?;
        writer
            .shutdown()
            .await
            .map_err(|e| io_error("finishing", &self.path, e))
    }
}
