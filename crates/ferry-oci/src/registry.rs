//! A client for OCI distribution registries: pull (manifests, indexes, Docker
//! schema 2), push (HEAD to skip blobs the registry has; monolithic or chunked
//! uploads), basic and bearer-token auth.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::{Challenge, Credentials};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::reference::{DOCKER_HUB, Reference};
use crate::spec::{self, Descriptor, Index, MANIFEST_ACCEPT, Manifest, Platform};
use crate::store::{ImageInfo, MAX_JSON_BLOB, Store, select_platform};

/// Blobs larger than this are uploaded in chunks of this size (`FERRY_CHUNK_SIZE`).
pub const DEFAULT_CHUNK_SIZE: u64 = 8 << 20;

/// Something worth telling a person while blobs move.
#[derive(Clone, Debug)]
pub enum ProgressEvent {
    /// The destination already has this blob; it is not sent.
    BlobExists {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A blob upload starts.
    Uploading {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A blob download starts.
    Downloading {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// The local store already has this blob; it is not fetched.
    BlobPresent {
        /// The blob.
        digest: Digest,
    },
}

/// A callback receiving [`ProgressEvent`]s.
pub type Progress = Arc<dyn Fn(&ProgressEvent) + Send + Sync>;

/// How to talk to registries.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Hosts (`host` or `host:port`) spoken to over plain http. `localhost`, `127.*`
    /// and `[::1]` always are.
    pub insecure: Vec<String>,
    /// Blobs above this size are uploaded in chunks of this size.
    pub chunk_size: u64,
    /// Credentials by registry host.
    pub credentials: Credentials,
    /// The platform picked from multi-platform images.
    pub platform: Platform,
    /// Progress callback.
    pub progress: Option<Progress>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            credentials: Credentials::none(),
            platform: Platform {
                os: "linux".to_string(),
                ..Platform::host()
            },
            progress: None,
        }
    }
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("insecure", &self.insecure)
            .field("chunk_size", &self.chunk_size)
            .field("credentials", &self.credentials)
            .field("platform", &self.platform)
            .finish()
    }
}

impl RegistryOptions {
    /// Defaults, overridden by `FERRY_INSECURE_REGISTRIES` (comma- or space-separated
    /// hosts), `FERRY_CHUNK_SIZE` (bytes), `FERRY_PLATFORM` (`os/arch[/variant]`) and
    /// credentials ([`Credentials::from_env`]).
    pub fn from_env() -> Result<Self> {
        let mut o = RegistryOptions::default();
        if let Ok(v) = std::env::var("FERRY_INSECURE_REGISTRIES") {
            o.insecure = v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Ok(v) = std::env::var("FERRY_CHUNK_SIZE") {
            o.chunk_size = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::Build(format!(
                        "FERRY_CHUNK_SIZE={v:?} must be a positive number of bytes"
                    ))
                })?;
        }
        if let Ok(v) = std::env::var("FERRY_PLATFORM") {
            o.platform = Platform::parse(&v).ok_or_else(|| {
                Error::Build(format!("FERRY_PLATFORM={v:?} must be os/arch[/variant]"))
            })?;
        }
        o.credentials = Credentials::from_env()?;
        Ok(o)
    }
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PushStats {
    /// The reference pushed to.
    pub reference: String,
    /// The manifest digest pushed.
    pub digest: String,
    /// Blobs sent.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had (HEAD said so).
    pub blobs_skipped: usize,
    /// Bytes sent in blobs.
    pub bytes_uploaded: u64,
    /// Blobs sent in chunks (PATCH) rather than in one PUT.
    pub chunked_blobs: usize,
    /// PATCH requests sent.
    pub chunks: usize,
    /// Whether the tag pointed elsewhere before and was moved (`--force`).
    pub tag_overwritten: bool,
}

/// What a pull did.
#[derive(Clone, Debug, Serialize)]
pub struct PullResult {
    /// The image as now stored.
    pub info: ImageInfo,
    /// The digest the reference resolved to in the registry (an index's, for
    /// multi-platform images).
    pub source_digest: Digest,
    /// Blobs fetched.
    pub blobs_downloaded: usize,
    /// Blobs already in the store.
    pub blobs_present: usize,
    /// Bytes fetched in blobs.
    pub bytes_downloaded: u64,
}

/// A manifest or index as a registry served it.
#[derive(Clone, Debug)]
pub struct RemoteManifest {
    /// The bytes, exactly as served (the digest is over these).
    pub raw: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest (verified).
    pub digest: Digest,
}

/// One HTTP request, resendable after an auth challenge.
struct Req<'a> {
    method: Method,
    url: Url,
    headers: &'a [(reqwest::header::HeaderName, String)],
    body: Option<&'a [u8]>,
}

/// One registry host, as the client talks to it.
struct Endpoint {
    /// As written in references, e.g. `127.0.0.1:5000` or `docker.io`.
    host: String,
    /// `http://127.0.0.1:5000/v2/`.
    base: Url,
}

/// Talks to OCI distribution registries.
pub struct RegistryClient {
    http: reqwest::Client,
    opts: RegistryOptions,
    /// `Authorization` values by `host` (basic) or `host scope` (bearer).
    auth: Mutex<HashMap<String, String>>,
}

impl RegistryClient {
    /// A client with `opts`.
    pub fn new(opts: RegistryOptions) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::Build(format!("cannot create the HTTP client: {}", chain(&e))))?;
        Ok(RegistryClient {
            http,
            opts,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// The options in use.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    fn progress(&self, ev: ProgressEvent) {
        if let Some(p) = &self.opts.progress {
            p(&ev);
        }
    }

    fn endpoint(&self, reference: &Reference) -> Result<Endpoint> {
        let host = reference.registry().ok_or_else(|| Error::NoRegistry {
            reference: reference.to_string(),
        })?;
        let api_host = if host == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            host
        };
        let scheme = if self.is_insecure(host) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{api_host}/v2/")).map_err(|e| {
            Error::InvalidReference {
                reference: reference.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Endpoint {
            host: host.to_string(),
            base,
        })
    }

    fn is_insecure(&self, host: &str) -> bool {
        let bare = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
        };
        bare == "localhost"
            || bare == "::1"
            || bare.starts_with("127.")
            || self.opts.insecure.iter().any(|i| i == host || i == bare)
    }

    fn url(ep: &Endpoint, path: &str) -> Result<Url> {
        ep.base.join(path).map_err(|e| Error::InvalidReference {
            reference: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// Sends a request, answering one auth challenge (basic or bearer) if the
    /// registry poses it. The body is resent on the retry.
    async fn send(
        &self,
        ep: &Endpoint,
        repo: &str,
        actions: &str,
        req: Req<'_>,
    ) -> Result<Response> {
        let Req {
            method,
            url,
            headers,
            body,
        } = req;
        let scope = format!("repository:{repo}:{actions}");
        let scope_key = format!("{} {scope}", ep.host);
        for attempt in 0..2 {
            let mut rb = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                rb = rb.header(k, v);
            }
            // Credentials and tokens belong to the registry's origin: an upload
            // `Location` on another host or port (or a redirect, which reqwest strips
            // `Authorization` from) gets none, as Docker authorises by host.
            let cached = if same_origin(&url, &ep.base) {
                let auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
                auth.get(&scope_key).or_else(|| auth.get(&ep.host)).cloned()
            } else {
                None
            };
            if let Some(a) = cached {
                rb = rb.header(AUTHORIZATION, a);
            }
            if let Some(b) = body {
                rb = rb.header(CONTENT_LENGTH, b.len()).body(b.to_vec());
            }
            let resp = rb.send().await.map_err(|e| unreachable(ep, &url, &e))?;
            // A challenge from another origin (the request was redirected there, or
            // sent to an upload location there) must not draw the registry's
            // credentials out, whether as basic auth or to a token realm it names.
            if resp.status() == StatusCode::UNAUTHORIZED && !same_origin(resp.url(), &ep.base) {
                return Err(Error::Unauthorized {
                    registry: ep.host.clone(),
                    repository: repo.to_string(),
                    reason: format!(
                        "{url} led to {}, another origin, which asks for credentials; the credentials for {} are sent only to {}, never to another origin",
                        resp.url(),
                        ep.host,
                        origin(&ep.base)
                    ),
                });
            }
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(resp);
            }
            let header = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            let challenge = Challenge::parse(&header);
            match challenge.as_ref().map(|c| c.scheme.as_str()) {
                Some("bearer") => {
                    let token = self
                        .fetch_token(
                            ep,
                            repo,
                            challenge.as_ref().expect("bearer challenge"),
                            &scope,
                        )
                        .await?;
                    self.auth
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(scope_key.clone(), format!("Bearer {token}"));
                }
                Some("basic") => {
                    match self.opts.credentials.get(&ep.host) {
                        Some(c) => {
                            self.auth
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(ep.host.clone(), c.basic_header());
                        }
                        None => {
                            return Err(Error::Unauthorized {
                            registry: ep.host.clone(),
                            repository: repo.to_string(),
                            reason: "basic authentication required and no credentials are configured".to_string(),
                        });
                        }
                    }
                }
                _ => {
                    return Err(Error::Unauthorized {
                        registry: ep.host.clone(),
                        repository: repo.to_string(),
                        reason: format!("unsupported authentication challenge {header:?}"),
                    });
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Asks the challenge's token endpoint for a bearer token for `scope`.
    async fn fetch_token(
        &self,
        ep: &Endpoint,
        repo: &str,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String> {
        let unauthorized = |reason: String| Error::Unauthorized {
            registry: ep.host.clone(),
            repository: repo.to_string(),
            reason,
        };
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| unauthorized("bearer challenge without a realm".to_string()))?;
        let mut url =
            Url::parse(realm).map_err(|e| unauthorized(format!("token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = challenge.params.get("service") {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
            if let Some(s) = challenge
                .params
                .get("scope")
                .filter(|s| s.as_str() != scope)
            {
                q.append_pair("scope", s);
            }
        }
        // The realm comes from the registry's own challenge (checked in `send`), so,
        // as Docker does, the registry's credentials go to it even on another host
        // (auth.docker.io for registry-1.docker.io): that is the token flow. But not
        // in clear text when the registry itself is spoken to over https.
        if url.scheme() == "http" && ep.base.scheme() == "https" {
            return Err(unauthorized(format!(
                "the token realm {realm} is plain http while the registry is https; refusing to send credentials there"
            )));
        }
        let mut rb = self.http.get(url.clone());
        if let Some(c) = self.opts.credentials.get(&ep.host) {
            rb = rb.header(AUTHORIZATION, c.basic_header());
        }
        let resp = rb.send().await.map_err(|e| unreachable(ep, &url, &e))?;
        let status = resp.status();
        let body = read_limited(resp, MAX_JSON_BLOB)
            .await
            .map_err(|e| unreachable(ep, &url, &e))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let why = if self.opts.credentials.get(&ep.host).is_some() {
                "the token service rejected the credentials"
            } else {
                "the token service wants credentials and none are configured"
            };
            return Err(unauthorized(format!("{why} ({status})")));
        }
        if !status.is_success() {
            return Err(unauthorized(format!(
                "token service {} returned {status}",
                url.as_str()
            )));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::json(format!("token from {realm}"), e))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the token service returned no token".to_string()))
    }

    /// Turns a non-success response into the error a user should see.
    async fn fail(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: &Method,
        url: &Url,
        resp: Response,
    ) -> Error {
        let status = resp.status();
        let message = match read_limited(resp, 64 << 10).await {
            Ok(b) => registry_message(&b),
            Err(e) => chain(&e),
        };
        match status {
            StatusCode::UNAUTHORIZED => Error::Unauthorized {
                registry: ep.host.clone(),
                repository: repo.to_string(),
                reason: if self.opts.credentials.get(&ep.host).is_some() {
                    format!("credentials rejected: {message}")
                } else {
                    format!("no credentials configured: {message}")
                },
            },
            StatusCode::FORBIDDEN => Error::Denied {
                registry: ep.host.clone(),
                repository: repo.to_string(),
                reason: message,
            },
            _ => Error::Registry {
                registry: ep.host.clone(),
                method: method.to_string(),
                url: url.to_string(),
                status: status.as_u16(),
                message,
            },
        }
    }

    /// Fetches a manifest or index by tag or digest, verifying its digest. `None` if
    /// the registry does not have it.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<Option<RemoteManifest>> {
        self.fetch_manifest_for(reference, "pull").await
    }

    async fn fetch_manifest_for(
        &self,
        reference: &Reference,
        actions: &str,
    ) -> Result<Option<RemoteManifest>> {
        let ep = self.endpoint(reference)?;
        let repo = reference.repository();
        let key = reference.manifest_key();
        let url = Self::url(&ep, &format!("{repo}/manifests/{key}"))?;
        let headers = [(ACCEPT, MANIFEST_ACCEPT.to_string())];
        let resp = self
            .send(
                &ep,
                repo,
                actions,
                Req {
                    method: Method::GET,
                    url: url.clone(),
                    headers: &headers,
                    body: None,
                },
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.fail(&ep, repo, &Method::GET, &url, resp).await);
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str());
        let header_digest = header_str(resp.headers(), "docker-content-digest");
        let raw = read_limited(resp, MAX_JSON_BLOB)
            .await
            .map_err(|e| unreachable(&ep, &url, &e))?;
        let digest = Digest::of(&raw);
        let expected = match reference.digest() {
            Some(d) => Some(d.clone()),
            None => header_digest.as_deref().and_then(|h| Digest::parse(h).ok()),
        };
        if let Some(exp) = expected.filter(|e| e != &digest) {
            return Err(Error::DigestMismatch {
                what: format!("manifest {reference}"),
                expected: exp.to_string(),
                actual: digest.to_string(),
            });
        }
        let media_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| spec::is_manifest(c) || spec::is_index(c))
            .or_else(|| {
                let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
                match v.get("mediaType").and_then(|m| m.as_str()) {
                    Some(m) => Some(m.to_string()),
                    None if v.get("manifests").is_some() => Some(spec::OCI_INDEX.to_string()),
                    None if v.get("layers").is_some() => Some(spec::OCI_MANIFEST.to_string()),
                    None => None,
                }
            })
            .ok_or_else(|| Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: header_str_or(&raw),
            })?;
        Ok(Some(RemoteManifest {
            raw,
            media_type,
            digest,
        }))
    }

    /// Resolves a reference to a single-platform manifest, descending an index to
    /// the configured platform. Returns it and the digest the reference itself had.
    async fn resolve_manifest(
        &self,
        reference: &Reference,
        actions: &str,
    ) -> Result<(RemoteManifest, Digest)> {
        let top = self
            .fetch_manifest_for(reference, actions)
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: reference.to_string(),
            })?;
        let source = top.digest.clone();
        if spec::is_manifest(&top.media_type) {
            return Ok((top, source));
        }
        if !spec::is_index(&top.media_type) {
            return Err(Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: top.media_type,
            });
        }
        let index: Index = serde_json::from_slice(&top.raw)
            .map_err(|e| Error::json(format!("index {reference}"), e))?;
        let chosen = select_platform(&index, &self.opts.platform).ok_or_else(|| {
            Error::NoMatchingPlatform {
                reference: reference.to_string(),
                wanted: self.opts.platform.to_string(),
                available: index
                    .manifests
                    .iter()
                    .map(|m| {
                        m.platform
                            .as_ref()
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "unknown".to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        let child_ref = reference.with_digest(chosen.digest.clone());
        let child = self
            .fetch_manifest_for(&child_ref, actions)
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: child_ref.to_string(),
            })?;
        if !spec::is_manifest(&child.media_type) {
            return Err(Error::UnsupportedMediaType {
                reference: child_ref.to_string(),
                media_type: child.media_type,
            });
        }
        Ok((child, source))
    }

    /// Fetches a small blob (a config) into memory, verifying it.
    pub async fn fetch_blob_bytes(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Vec<u8>> {
        let (ep, url, resp) = self.get_blob(reference, digest).await?;
        let raw = read_limited(resp, MAX_JSON_BLOB)
            .await
            .map_err(|e| unreachable(&ep, &url, &e))?;
        let actual = Digest::of(&raw);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob of {reference}"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(raw)
    }

    /// `GET` a blob: the endpoint, URL and a successful response, or `BlobUnknown` on
    /// 404 and the registry's error otherwise.
    async fn get_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<(Endpoint, Url, reqwest::Response)> {
        let ep = self.endpoint(reference)?;
        let repo = reference.repository();
        let url = Self::url(&ep, &format!("{repo}/blobs/{digest}"))?;
        let resp = self
            .send(
                &ep,
                repo,
                "pull",
                Req {
                    method: Method::GET,
                    url: url.clone(),
                    headers: &[],
                    body: None,
                },
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::BlobUnknown {
                reference: reference.to_string(),
                digest: digest.to_string(),
            });
        }
        if !resp.status().is_success() {
            return Err(self.fail(&ep, repo, &Method::GET, &url, resp).await);
        }
        Ok((ep, url, resp))
    }

    /// The manifest and config of a remote image, as JSON (for `ferry image inspect`).
    pub async fn inspect(
        &self,
        reference: &Reference,
    ) -> Result<(RemoteManifest, serde_json::Value)> {
        let (m, _) = self.resolve_manifest(reference, "pull").await?;
        let manifest: Manifest = serde_json::from_slice(&m.raw)
            .map_err(|e| Error::json(format!("manifest {reference}"), e))?;
        let raw = self
            .fetch_blob_bytes(reference, &manifest.config.digest)
            .await?;
        let config = serde_json::from_slice(&raw)
            .map_err(|e| Error::json(format!("config of {reference}"), e))?;
        Ok((m, config))
    }

    /// Downloads a blob into the store, streaming and verifying digest and size.
    async fn download_blob(
        &self,
        store: &Store,
        reference: &Reference,
        desc: &Descriptor,
    ) -> Result<u64> {
        self.progress(ProgressEvent::Downloading {
            digest: desc.digest.clone(),
            size: desc.size,
        });
        let (ep, url, mut resp) = self.get_blob(reference, &desc.digest).await?;
        let tmp = store.temp_path("pull");
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.at(&tmp)?;
            let mut hasher = Hasher::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(&ep, &url, &e))? {
                hasher.update(&chunk);
                if hasher.len() > desc.size {
                    return Err(Error::DigestMismatch {
                        what: format!(
                            "blob {} of {reference} (larger than its declared {} bytes)",
                            desc.digest, desc.size
                        ),
                        expected: desc.digest.to_string(),
                        actual: "(truncated)".to_string(),
                    });
                }
                file.write_all(&chunk).await.at(&tmp)?;
            }
            file.sync_all().await.at(&tmp)?;
            let len = hasher.len();
            let actual = hasher.finish();
            if actual != desc.digest || len != desc.size {
                return Err(Error::DigestMismatch {
                    what: format!("blob of {reference} ({len} bytes, {} declared)", desc.size),
                    expected: desc.digest.to_string(),
                    actual: actual.to_string(),
                });
            }
            store.commit_blob(&tmp, &desc.digest)?;
            Ok(len)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Pulls an image into the store under the reference's name and tag (or its
    /// digest). An index is resolved to the configured platform, whose manifest is
    /// what the store keeps. Blobs already present are not fetched.
    pub async fn pull(&self, store: &Store, reference: &Reference) -> Result<PullResult> {
        self.endpoint(reference)?;
        let _guard = store.ingest_guard()?;
        let (m, source) = self.resolve_manifest(reference, "pull").await?;
        let manifest: Manifest = serde_json::from_slice(&m.raw)
            .map_err(|e| Error::json(format!("manifest {reference}"), e))?;
        let mut out_downloaded = 0;
        let mut out_present = 0;
        let mut bytes = 0;
        for desc in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            if store.has_blob(&desc.digest) {
                out_present += 1;
                self.progress(ProgressEvent::BlobPresent {
                    digest: desc.digest.clone(),
                });
                continue;
            }
            bytes += self.download_blob(store, reference, desc).await?;
            out_downloaded += 1;
        }
        store.write_blob(&m.raw)?;
        let desc = Descriptor {
            media_type: m.media_type.clone(),
            digest: m.digest.clone(),
            size: m.raw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        // The store keys tags by name:tag; a digest-only reference gets an untagged entry.
        let key = match reference.tag() {
            Some(t) => reference.with_tag(t),
            None => reference.clone(),
        };
        store.set_tag(&key, &desc, Some(&source))?;
        let info = match key.tagged_name() {
            Some(n) => store.get(&n)?,
            None => store.get(&format!("{}@{}", key.name(), m.digest))?,
        };
        Ok(PullResult {
            info,
            source_digest: source,
            blobs_downloaded: out_downloaded,
            blobs_present: out_present,
            bytes_downloaded: bytes,
        })
    }

    /// Returns the stored image for `reference`, pulling it first if it is a registry
    /// reference not yet in the store.
    pub async fn ensure(&self, store: &Store, reference: &str) -> Result<ImageInfo> {
        if let Some(info) = store.resolve(reference)? {
            return Ok(info);
        }
        let r = Reference::parse(reference)?;
        if r.is_local() {
            return Err(Error::NotFound {
                reference: r.to_string(),
            });
        }
        Ok(self.pull(store, &r).await?.info)
    }

    /// Whether the registry has a blob (HEAD).
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        self.blob_exists_for(reference, digest, "pull").await
    }

    async fn blob_exists_for(
        &self,
        reference: &Reference,
        digest: &Digest,
        actions: &str,
    ) -> Result<bool> {
        let ep = self.endpoint(reference)?;
        let repo = reference.repository();
        let url = Self::url(&ep, &format!("{repo}/blobs/{digest}"))?;
        let resp = self
            .send(
                &ep,
                repo,
                actions,
                Req {
                    method: Method::HEAD,
                    url: url.clone(),
                    headers: &[],
                    body: None,
                },
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(&ep, repo, &Method::HEAD, &url, resp).await),
        }
    }

    /// Pushes the stored image `source` to `dest` (a registry reference). Blobs the
    /// registry has are skipped; a tag that points to another digest is refused
    /// unless `force`.
    pub async fn push(
        &self,
        store: &Store,
        source: &str,
        dest: &Reference,
        force: bool,
    ) -> Result<PushStats> {
        let info = store.get(source)?;
        let ep = self.endpoint(dest)?;
        let repo = dest.repository().to_string();
        if let Some(d) = dest.digest().filter(|d| **d != info.digest) {
            return Err(Error::DigestMismatch {
                what: format!("push of {source} to {dest}"),
                expected: d.to_string(),
                actual: info.digest.to_string(),
            });
        }
        let manifest_raw = store.read_blob(&info.digest)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_raw)
            .map_err(|e| Error::json(format!("manifest {}", info.digest), e))?;
        let mut stats = PushStats {
            reference: dest.to_string(),
            digest: info.digest.to_string(),
            ..PushStats::default()
        };

        // Refuse to move a tag before sending anything.
        if let Some(tag) = dest.tag() {
            let at_tag = dest.with_tag(tag);
            let existing = self.fetch_manifest_for(&at_tag, "pull,push").await?;
            if let Some(existing) = existing.filter(|e| e.digest != info.digest) {
                if !force {
                    return Err(Error::TagExists {
                        reference: at_tag.to_string(),
                        existing: existing.digest.to_string(),
                        pushing: info.digest.to_string(),
                    });
                }
                stats.tag_overwritten = true;
            }
        }

        for desc in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
        {
            if self
                .blob_exists_for(dest, &desc.digest, "pull,push")
                .await?
            {
                stats.blobs_skipped += 1;
                self.progress(ProgressEvent::BlobExists {
                    digest: desc.digest.clone(),
                    size: desc.size,
                });
                continue;
            }
            let path = store.blob_path(&desc.digest);
            if !path.is_file() {
                return Err(Error::BlobMissing {
                    reference: info.reference(),
                    digest: desc.digest.to_string(),
                });
            }
            self.progress(ProgressEvent::Uploading {
                digest: desc.digest.clone(),
                size: desc.size,
            });
            self.upload_blob(&ep, &repo, &path, desc, &mut stats)
                .await?;
            stats.blobs_uploaded += 1;
            stats.bytes_uploaded += desc.size;
        }

        let key = dest
            .tag()
            .map(str::to_string)
            .unwrap_or_else(|| info.digest.to_string());
        let url = Self::url(&ep, &format!("{repo}/manifests/{key}"))?;
        let headers = [(CONTENT_TYPE, info.media_type.clone())];
        let resp = self
            .send(
                &ep,
                &repo,
                "pull,push",
                Req {
                    method: Method::PUT,
                    url: url.clone(),
                    headers: &headers,
                    body: Some(&manifest_raw),
                },
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail(&ep, &repo, &Method::PUT, &url, resp).await);
        }
        let pushed = header_str(resp.headers(), "docker-content-digest")
            .and_then(|h| Digest::parse(&h).ok());
        if let Some(d) = pushed.filter(|d| *d != info.digest) {
            return Err(Error::DigestMismatch {
                what: format!("manifest pushed to {dest}"),
                expected: info.digest.to_string(),
                actual: d.to_string(),
            });
        }
        Ok(stats)
    }

    /// Uploads one blob: POST to open an upload, then one PUT with the body, or for
    /// blobs above the chunk size PATCHes with `Content-Range` and a closing PUT.
    async fn upload_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        path: &Path,
        desc: &Descriptor,
        stats: &mut PushStats,
    ) -> Result<()> {
        let start = Self::url(ep, &format!("{repo}/blobs/uploads/"))?;
        let resp = self
            .send(
                ep,
                repo,
                "pull,push",
                Req {
                    method: Method::POST,
                    url: start.clone(),
                    headers: &[],
                    body: Some(&[]),
                },
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(ep, repo, &Method::POST, &start, resp).await);
        }
        let mut location = next_location(ep, &start, &resp)?;
        let octet = [(CONTENT_TYPE, "application/octet-stream".to_string())];

        let body_for_put: Vec<u8> = if desc.size <= self.opts.chunk_size {
            tokio::fs::read(path).await.at(path)?
        } else {
            stats.chunked_blobs += 1;
            let mut file = tokio::fs::File::open(path).await.at(path)?;
            let chunk = usize::try_from(self.opts.chunk_size).unwrap_or(usize::MAX);
            let mut buf = vec![0u8; chunk];
            let mut offset: u64 = 0;
            loop {
                let mut filled = 0;
                while filled < buf.len() {
                    let n = file.read(&mut buf[filled..]).await.at(path)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                let headers = [
                    (CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        reqwest::header::CONTENT_RANGE,
                        format!("{offset}-{}", offset + filled as u64 - 1),
                    ),
                ];
                let resp = self
                    .send(
                        ep,
                        repo,
                        "pull,push",
                        Req {
                            method: Method::PATCH,
                            url: location.clone(),
                            headers: &headers,
                            body: Some(&buf[..filled]),
                        },
                    )
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.fail(ep, repo, &Method::PATCH, &location, resp).await);
                }
                location = next_location(ep, &location, &resp)?;
                offset += filled as u64;
                stats.chunks += 1;
                if filled < buf.len() {
                    break;
                }
            }
            Vec::new()
        };
        let mut put = location.clone();
        put.query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());
        let resp = self
            .send(
                ep,
                repo,
                "pull,push",
                Req {
                    method: Method::PUT,
                    url: put.clone(),
                    headers: &octet,
                    body: Some(&body_for_put),
                },
            )
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(self.fail(ep, repo, &Method::PUT, &put, resp).await);
        }
        Ok(())
    }
}

/// Whether two URLs share scheme, host and port (the default port of the scheme
/// counts as given).
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `scheme://host[:port]` of a URL, for messages.
fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// The upload URL a registry returned in `Location`, absolute.
fn next_location(ep: &Endpoint, from: &Url, resp: &Response) -> Result<Url> {
    let loc = header_str(resp.headers(), LOCATION.as_str()).ok_or_else(|| Error::Registry {
        registry: ep.host.clone(),
        method: "POST".to_string(),
        url: from.to_string(),
        status: resp.status().as_u16(),
        message: "upload response has no Location header".to_string(),
    })?;
    from.join(&loc).map_err(|e| Error::Registry {
        registry: ep.host.clone(),
        method: "POST".to_string(),
        url: from.to_string(),
        status: resp.status().as_u16(),
        message: format!("bad Location {loc:?}: {e}"),
    })
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn header_str_or(raw: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "(none)".to_string())
}

/// Reads a response body, refusing more than `limit` bytes.
async fn read_limited(
    mut resp: Response,
    limit: u64,
) -> std::result::Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if (out.len() + chunk.len()) as u64 > limit {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The registry's error message (`{"errors":[{"code","message"}]}`) or the body.
fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .into_iter()
            .map(|i| match (i.code, i.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c,
                (None, Some(m)) => m,
                (None, None) => String::new(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text.chars().take(300).collect()
    }
}

fn unreachable(ep: &Endpoint, url: &Url, e: &reqwest::Error) -> Error {
    use std::error::Error as _;
    // reqwest's own top line repeats the URL; the causes say what happened.
    let reason = match e.source() {
        Some(s) if e.is_connect() || e.is_request() || e.is_timeout() => chain(s),
        _ => chain(e),
    };
    let hint = if url.scheme() == "https" {
        "is it running, and does it speak https? A plain-http registry must be listed in \
         FERRY_INSECURE_REGISTRIES or addressed with --insecure"
    } else {
        "is it running and listening there?"
    };
    Error::Unreachable {
        registry: ep.host.clone(),
        url: url.to_string(),
        reason,
        hint: hint.to_string(),
    }
}

/// An error and its causes, `: `-joined, without repeats.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed_hosts() {
        let c = RegistryClient::new(RegistryOptions {
            insecure: vec!["reg.lan:5000".into(), "other.lan".into()],
            ..RegistryOptions::default()
        })
        .unwrap();
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("localhost"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("reg.lan:5000"));
        assert!(c.is_insecure("other.lan:443"));
        assert!(!c.is_insecure("reg.lan:6000"));
        assert!(!c.is_insecure("ghcr.io"));
        let r = Reference::parse("docker.io/alpine").unwrap();
        assert_eq!(
            c.endpoint(&r).unwrap().base.as_str(),
            "https://registry-1.docker.io/v2/"
        );
    }

    #[test]
    fn registry_messages() {
        assert_eq!(
            registry_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(registry_message(b""), "(empty body)");
    }
}
