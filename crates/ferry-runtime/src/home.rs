//! `FERRY_HOME` is private: it holds the state database (Secrets), the API token,
//! the encryption keys, repository credentials and every pod's logs, so it is made
//! readable by its owner only (0700) and the files at its top level 0600. A home an
//! earlier ferry (or a umask) left open is repaired at start, with a warning naming
//! what changed.
//!
//! Only the top level is tightened: with the directory itself closed nobody else can
//! reach anything below it, and the modes inside images' root filesystems must stay
//! as the image has them (a container's non-root user reads its root-owned files).

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

/// Creates `home` (0700) or repairs its permissions and those of its top-level
/// entries; returns one line per repair, for the daemon to log.
pub fn secure(home: &Path) -> std::io::Result<Vec<String>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)?;
    let mut repaired = Vec::new();
    let mut tighten = |path: &Path, want: u32| -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & want))?;
            repaired.push(format!(
                "{} was mode {mode:04o}; made {:04o}",
                path.display(),
                mode & want
            ));
        }
        Ok(())
    };
    tighten(home, 0o700)?;
    for entry in std::fs::read_dir(home)? {
        let entry = entry?;
        let want = if entry.file_type()?.is_dir() {
            0o700
        } else {
            0o600
        };
        tighten(&entry.path(), want)?;
    }
    Ok(repaired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn regression_ferry_home_and_its_top_level_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("state/ferry");
        assert!(secure(&home).unwrap().is_empty());
        assert_eq!(mode(&home), 0o700);

        // What an older ferry left: a 0755 home, a 0644 database, a 0755 log dir.
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(home.join("ferry.db"), "x").unwrap();
        std::fs::set_permissions(
            home.join("ferry.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::create_dir(home.join("logs")).unwrap();
        std::fs::set_permissions(home.join("logs"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(home.join("logs/inner.log"), "x").unwrap();
        std::fs::set_permissions(
            home.join("logs/inner.log"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let repaired = secure(&home).unwrap();
        assert_eq!(repaired.len(), 3, "{repaired:?}");
        assert!(
            repaired[0].contains("was mode 0755; made 0700"),
            "{repaired:?}"
        );
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&home.join("ferry.db")), 0o600);
        assert_eq!(mode(&home.join("logs")), 0o700);
        // Below the top level, modes are left as they are (image files keep theirs).
        assert_eq!(mode(&home.join("logs/inner.log")), 0o644);
    }
}
