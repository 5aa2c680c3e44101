//! The lake root: where bronze, silver and gold live, given as a URL.
//!
//! * a local path or `file:///abs/path` — the embedded default (the folder is created); every
//!   put is fsynced with its directories before it returns ([`crate::durable`]);
//! * `s3://bucket/prefix` — credentials, region and endpoint from the standard AWS environment
//!   variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
//!   `AWS_ALLOW_HTTP=true` for local servers); requests are path-style.
//!
//! Everything below the root is addressed with relative object paths, so the same code runs on
//! both; nothing can address an object outside the root (paths are built from validated parts).

use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;

use crate::error::{LayersError, Result};

/// An opened lake root.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl Lake {
    /// Opens a lake root URL (see the module docs).
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with_options(url, std::iter::empty::<(String, String)>())
    }

    /// Opens a lake root URL with explicit store options that override the environment, e.g.
    /// `("aws_endpoint", "http://127.0.0.1:9000")`, `("aws_allow_http", "true")` (the keys of
    /// `object_store::aws::AmazonS3ConfigKey`). Options are refused for local lakes.
    pub fn open_with_options<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let bad = |problem: String| LayersError::LakeUrl {
            url: url.to_string(),
            problem,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name".into()));
            }
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(false);
            for (k, v) in options {
                let key =
                    AmazonS3ConfigKey::from_str(k.as_ref()).map_err(|e| bad(e.to_string()))?;
                builder = builder.with_config(key, v);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            let prefix =
                Path::parse(prefix.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
            return Ok(Lake {
                store: Arc::new(store),
                prefix,
                url: url.to_string(),
            });
        }
        if options.into_iter().next().is_some() {
            return Err(bad("store options apply to s3:// lakes only".into()));
        }
        let local = url.strip_prefix("file://").unwrap_or(url);
        if local.contains("://") {
            return Err(bad(
                "unsupported scheme (use a local path, file:// or s3://)".into(),
            ));
        }
        crate::durable::ensure_dir(std::path::Path::new(local)).map_err(|source| {
            LayersError::Io {
                path: local.to_string(),
                source,
            }
        })?;
        // Durable: a put returns only once the object and its directory entries are synced.
        let store = crate::durable::DurableLocalStore::new_with_prefix(local)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Lake {
            store: Arc::new(store),
            prefix: Path::default(),
            url: url.to_string(),
        })
    }

    /// Wraps an existing store (tests use `InMemory`).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str) -> Self {
        Lake {
            store,
            prefix: Path::default(),
            url: url.to_string(),
        }
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL the lake was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The absolute object path of validated relative parts.
    pub(crate) fn path<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> Path {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.clone().join(part);
        }
        p
    }

    /// The part of `path` below the lake root (for display and lineage).
    pub fn relative(&self, path: &Path) -> String {
        match path.prefix_match(&self.prefix) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_string(),
        }
    }

    /// Object path of a `/`-separated path below the root whose parts are plain names (no `..`,
    /// no empty or hidden-traversal parts): lake metadata such as pipeline state files.
    fn checked(&self, relative: &str) -> Result<Path> {
        let bad = relative.split('/').any(|p| {
            p.is_empty() || p == "." || p == ".." || p.chars().any(|c| c.is_control() || c == '\\')
        });
        if bad {
            return Err(LayersError::LakeUrl {
                url: format!("{}/{relative}", self.url),
                problem: "not a plain path below the lake root".into(),
            });
        }
        Ok(self.path(relative.split('/')))
    }

    /// Writes a new object below the root; an existing object is never overwritten.
    pub async fn put_new(&self, relative: &str, bytes: bytes::Bytes) -> Result<()> {
        use object_store::{PutMode, PutOptions};
        let path = self.checked(relative)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store.put_opts(&path, bytes.into(), opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(LayersError::AlreadyExists {
                path: relative.to_string(),
            }),
            Err(source) => Err(LayersError::Store {
                path: relative.to_string(),
                source,
            }),
        }
    }

    /// Reads a whole (small) object below the root.
    pub async fn get(&self, relative: &str) -> Result<bytes::Bytes> {
        use object_store::ObjectStoreExt;
        let path = self.checked(relative)?;
        let store_err = |source| LayersError::Store {
            path: relative.to_string(),
            source,
        };
        self.store
            .get(&path)
            .await
            .map_err(store_err)?
            .bytes()
            .await
            .map_err(store_err)
    }
}
