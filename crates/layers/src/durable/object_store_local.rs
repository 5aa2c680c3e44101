//! [`DurableLocalStore`]: object_store's `LocalFileSystem`, with every completed put, copy and
//! rename made durable (file, directory, created directories) before it returns.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use super::{blocking, create_dirs, sync_new_file};

/// A local object store whose writes survive a power loss once they return.
#[derive(Debug)]
pub struct DurableLocalStore {
    inner: LocalFileSystem,
}

impl DurableLocalStore {
    /// The store rooted at `dir` (which must exist).
    pub fn new_with_prefix(dir: impl AsRef<std::path::Path>) -> object_store::Result<Self> {
        Ok(DurableLocalStore {
            inner: LocalFileSystem::new_with_prefix(dir)?,
        })
    }

    /// Creates the directories of `location` (remembering which were new).
    async fn prepare(&self, location: &Path) -> object_store::Result<(PathBuf, Vec<PathBuf>)> {
        let file = self.inner.path_to_filesystem(location)?;
        let parent = file.parent().map(|p| p.to_path_buf());
        let created = match parent {
            Some(dir) => blocking(move || create_dirs(&dir))
                .await
                .map_err(|e| io_err(location, e))?,
            None => Vec::new(),
        };
        Ok((file, created))
    }
}

fn io_err(location: &Path, source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "DurableLocalStore",
        source: format!("making {location} durable: {source}").into(),
    }
}

async fn make_durable(
    location: &Path,
    file: PathBuf,
    created: Vec<PathBuf>,
) -> object_store::Result<()> {
    blocking(move || sync_new_file(&file, &created))
        .await
        .map_err(|e| io_err(location, e))
}

impl fmt::Display for DurableLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Durable({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for DurableLocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let (file, created) = self.prepare(location).await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        make_durable(location, file, created).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let (file, created) = self.prepare(location).await?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload {
            inner,
            location: location.clone(),
            file,
            created,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let (file, created) = self.prepare(to).await?;
        self.inner.copy_opts(from, to, options).await?;
        make_durable(to, file, created).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let (file, created) = self.prepare(to).await?;
        self.inner.rename_opts(from, to, options).await?;
        make_durable(to, file, created).await
    }
}

/// A multipart upload that is made durable when it completes.
#[derive(Debug)]
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    location: Path,
    file: PathBuf,
    created: Vec<PathBuf>,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await?;
        make_durable(&self.location, self.file.clone(), self.created.clone()).await?;
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
