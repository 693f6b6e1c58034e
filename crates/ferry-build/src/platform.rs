//! Platforms (`linux/amd64`, `linux/arm/v7`) as OCI and buildkit spell them, and the
//! host's: ferry builds for the machine it runs on.

use std::fmt;

/// An OCI platform.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, …
    pub arch: String,
    /// `v7` for `arm/v7`; `None` when there is none.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine ferry runs on.
    pub fn host() -> Self {
        let (arch, variant) = normalize_arch(std::env::consts::ARCH, None);
        Platform {
            os: std::env::consts::OS.to_string(),
            arch,
            variant,
        }
    }

    /// Parses `os[/arch[/variant]]`, normalising the spellings containerd accepts
    /// (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` → `arm/v7`). A bare
    /// architecture (`arm64`) means Linux on it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(format!(
                "invalid platform {s:?}; expected os/arch[/variant] such as linux/amd64"
            ));
        }
        let (os, arch, variant) = match parts.as_slice() {
            [one] if is_os(one) => (one.to_string(), std::env::consts::ARCH.to_string(), None),
            [one] => ("linux".to_string(), one.to_string(), None),
            [os, arch] => (os.to_string(), arch.to_string(), None),
            [os, arch, variant] => (os.to_string(), arch.to_string(), Some(variant.to_string())),
            _ => return Err(format!("invalid platform {s:?}")),
        };
        let os = if os == "macos" {
            "darwin".to_string()
        } else {
            os
        };
        let (arch, variant) = normalize_arch(&arch, variant.as_deref());
        Ok(Platform { os, arch, variant })
    }

    /// `TARGETOS` / `BUILDOS` and friends for this platform, in the order buildkit
    /// documents them: (`…PLATFORM`, `…OS`, `…ARCH`, `…VARIANT`).
    pub fn arg_values(&self) -> [String; 4] {
        [
            self.to_string(),
            self.os.clone(),
            self.arch.clone(),
            self.variant.clone().unwrap_or_default(),
        ]
    }
}

fn is_os(s: &str) -> bool {
    matches!(
        s,
        "linux"
            | "windows"
            | "darwin"
            | "macos"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "illumos"
            | "solaris"
    )
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.map(str::to_string);
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => ("arm64".into(), variant.filter(|v| v != "v8")),
        "i386" | "i686" | "x86" | "386" => ("386".into(), variant),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), Some(variant.unwrap_or_else(|| "v7".into()))),
        "powerpc64" => ("ppc64".into(), variant),
        "powerpc64le" => ("ppc64le".into(), variant),
        "loongarch64" => ("loong64".into(), variant),
        other => (other.to_string(), variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("linux//amd64").is_err());
        let host = Platform::host();
        assert_eq!(Platform::parse(&host.to_string()).unwrap(), host);
    }
}
