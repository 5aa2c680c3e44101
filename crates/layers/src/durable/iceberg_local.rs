//! [`DurableLocalStorage`]: iceberg-rust's local storage, with every written file (metadata
//! JSON, manifest lists, manifests, data files) made durable before the write returns — so
//! everything a new metadata version references is on disk before the catalog's pointer swap.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use super::{blocking, create_dirs, sync_new_file};

/// The file-system path of a `file://` (or bare) location, as iceberg-rust's local storage
/// reads it.
fn fs_path(path: &str) -> PathBuf {
    let bare = path
        .strip_prefix("file://")
        .or_else(|| path.strip_prefix("file:"))
        .unwrap_or(path);
    if bare.starts_with('/') {
        PathBuf::from(bare)
    } else {
        PathBuf::from(format!("/{bare}"))
    }
}

fn io_err(path: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unexpected, format!("making {path} durable: {e}"))
}

async fn prepare(path: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
    let file = fs_path(path);
    let created = match file.parent().map(|p| p.to_path_buf()) {
        Some(dir) => blocking(move || create_dirs(&dir))
            .await
            .map_err(|e| io_err(path, e))?,
        None => Vec::new(),
    };
    Ok((file, created))
}

async fn make_durable(path: &str, file: PathBuf, created: Vec<PathBuf>) -> Result<()> {
    blocking(move || sync_new_file(&file, &created))
        .await
        .map_err(|e| io_err(path, e))
}

/// Builds [`DurableLocalStorage`] (the storage of local warehouses).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DurableLocalStorageFactory;

#[typetag::serde]
impl StorageFactory for DurableLocalStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(DurableLocalStorage::default()))
    }
}

/// Local Iceberg storage whose writes survive a power loss once they return.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DurableLocalStorage {
    #[serde(skip)]
    inner: LocalFsStorage,
}

#[async_trait]
#[typetag::serde]
impl Storage for DurableLocalStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        self.inner.exists(path).await
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        self.inner.metadata(path).await
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        self.inner.read(path).await
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        self.inner.reader(path).await
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (file, created) = prepare(path).await?;
        self.inner.write(path, bs).await?;
        make_durable(path, file, created).await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (file, created) = prepare(path).await?;
        let inner = self.inner.writer(path).await?;
        Ok(Box::new(DurableWrite {
            inner,
            path: path.to_string(),
            file,
            created,
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        self.inner.delete_prefix(path).await
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> Result<()> {
        self.inner.delete_stream(paths).await
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// A streaming write made durable (directory chain included) when it is closed.
struct DurableWrite {
    inner: Box<dyn FileWrite>,
    path: String,
    file: PathBuf,
    created: Vec<PathBuf>,
}

#[async_trait]
impl FileWrite for DurableWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.inner.write(bs).await
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await?;
        make_durable(&self.path, self.file.clone(), self.created.clone()).await
    }
}
