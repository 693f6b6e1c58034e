//! Images for containers: resolved in the local store, else pulled from their registry
//! (one pull at a time, as the kubelet's serialized pulls), then unpacked once per
//! digest.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_oci::{ImageConfig, Reference, RegistryClient, RegistryOptions, Store};

/// `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy, defaulted as Kubernetes does (`Always` for `:latest` or
    /// no tag, else `IfNotPresent`).
    pub(crate) fn of(container: &serde_json::Value, image: &str) -> Self {
        match container.get("imagePullPolicy").and_then(|v| v.as_str()) {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => match Reference::parse(image) {
                Ok(r) if r.digest().is_none() && r.tag() == Some("latest") => PullPolicy::Always,
                _ => PullPolicy::IfNotPresent,
            },
        }
    }
}

/// An image ready to run.
#[derive(Clone, Debug)]
pub(crate) struct Ready {
    /// `imageID` as the status shows it: `name@sha256:…`.
    pub image_id: String,
    pub config: ImageConfig,
    pub rootfs: PathBuf,
    /// Whether it was pulled now (for the `Pulled` event's wording).
    pub pulled: Option<(std::time::Duration, u64)>,
}

/// Why an image is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `InvalidImageName`: retrying will not help.
    InvalidName(String),
    /// `ErrImageNeverPull`.
    NeverPull(String),
    /// `ErrImagePull`, retried with back-off.
    Pull(String),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ferry_oci::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("image store task failed: {e}")),
    }
}

/// Makes a registry client from the environment and the runtime's insecure list.
pub(crate) fn registry_client(insecure: &[String]) -> Result<Arc<RegistryClient>, String> {
    let mut opts = RegistryOptions::from_env().unwrap_or_default();
    for h in insecure {
        if !opts.insecure.contains(h) {
            opts.insecure.push(h.clone());
        }
    }
    RegistryClient::new(opts)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Resolves, pulls if needed, and unpacks `image`. `on_pull` is called before a pull.
pub(crate) async fn acquire(
    store: &Store,
    registry: impl FnOnce() -> Result<Arc<RegistryClient>, String>,
    pull_lock: &tokio::sync::Mutex<()>,
    rootfs_dir: PathBuf,
    image: &str,
    policy: PullPolicy,
    on_pull: impl FnOnce(),
) -> Result<Ready, Failure> {
    let reference = Reference::parse(image).map_err(|_| {
        Failure::InvalidName(format!(
            "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format"
        ))
    })?;
    let lookup = {
        let (store, image) = (store.clone(), image.to_string());
        move || store.resolve(&image)
    };
    let present = blocking(lookup).await.map_err(Failure::Pull)?;
    let want_pull = match policy {
        PullPolicy::Never => {
            if present.is_none() {
                return Err(Failure::NeverPull(format!(
                    "Container image {image:?} is not present with pull policy of Never"
                )));
            }
            false
        }
        PullPolicy::IfNotPresent => present.is_none(),
        PullPolicy::Always => !reference.is_local() || present.is_none(),
    };
    let mut pulled = None;
    let info = if want_pull {
        if reference.is_local() {
            return Err(Failure::Pull(format!(
                "failed to pull and unpack image {image:?}: {}",
                ferry_oci::Error::NotFound {
                    reference: image.to_string()
                }
            )));
        }
        let _one_at_a_time = pull_lock.lock().await;
        on_pull();
        let started = std::time::Instant::now();
        let client = registry().map_err(Failure::Pull)?;
        let result = client.pull(store, &reference).await.map_err(|e| {
            Failure::Pull(format!("failed to pull and unpack image {image:?}: {e}"))
        })?;
        pulled = Some((started.elapsed(), result.info.size));
        result.info
    } else {
        match present {
            Some(i) => i,
            None => {
                return Err(Failure::Pull(format!(
                    "failed to pull and unpack image {image:?}: image not found"
                )));
            }
        }
    };
    let digest = info.digest.to_string();
    let config = {
        let (store, d) = (store.clone(), info.digest.clone());
        blocking(move || store.config(&d))
            .await
            .map_err(Failure::Pull)?
    };
    let rootfs = {
        let store = store.clone();
        let _one_at_a_time = pull_lock.lock().await;
        blocking(move || store.unpack(&digest, &rootfs_dir))
            .await
            .map_err(|e| Failure::Pull(format!("failed to unpack image {image:?}: {e}")))?
    };
    Ok(Ready {
        image_id: format!("{}@{}", info.name, info.digest),
        config,
        rootfs,
        pulled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pull_policy_defaults_like_kubernetes() {
        let none = json!({});
        assert_eq!(PullPolicy::of(&none, "web"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(&none, "web:latest"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(&none, "web:1"), PullPolicy::IfNotPresent);
        assert_eq!(
            PullPolicy::of(&json!({"imagePullPolicy": "Never"}), "web"),
            PullPolicy::Never
        );
    }
}
