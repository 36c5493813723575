//! The data directory at startup: created 0700 (an existing one is used only if it is empty or holds a Codex
//! repository or node key, and is then tightened to 0700), the node key (secp256k1, libp2p protobuf encoding, 0600),
//! and the free-space check of the storage quota (seed 003: free space is verified on startup).

use crate::units::ByteSize;
use libp2p_identity::Keypair;
use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the node cannot use its data directory or key.
#[derive(Debug, Error)]
pub enum DataDirError {
    #[error("cannot prepare data directory {}: {source}", .path.display())]
    Dir { path: PathBuf, source: std::io::Error },
    #[error(
        "data directory {} already holds other files ({sample}) and is not a Codex data directory (no repo/ and no \
         node key): refusing to use it and to change its permissions. Choose an empty or new directory with \
         --data-dir",
        .path.display()
    )]
    NotADataDir { path: PathBuf, sample: String },
    #[error("cannot read node key {}: {source}", .path.display())]
    KeyIo { path: PathBuf, source: std::io::Error },
    #[error(
        "node key {} is readable by other users (mode {mode:o}); run `chmod 600 {}` and start again",
        .path.display(), .path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("node key {} is not a libp2p protobuf-encoded private key: {reason}", .path.display())]
    KeyFormat { path: PathBuf, reason: String },
    #[error("node key {} is {kind:?}; Codex node keys are secp256k1", .path.display())]
    KeyType { path: PathBuf, kind: libp2p_identity::KeyType },
    #[error(
        "the storage quota of {quota} does not fit on the disk holding {}: {free} free, {used} already used by the \
         repository. Lower it (e.g. --storage-quota={suggest}, CODEX_STORAGE_QUOTA, or storage-quota in the config \
         file), free disk space, or choose another --data-dir",
        .dir.display()
    )]
    QuotaDoesNotFit { dir: PathBuf, quota: ByteSize, free: ByteSize, used: ByteSize, suggest: String },
    #[error("cannot check free space of {}: {source}", .dir.display())]
    Statvfs { dir: PathBuf, source: nix::Error },
}

/// Entries a fresh directory may hold without being ours: a filesystem's `lost+found`.
const IGNORED_ENTRIES: &[&str] = &["lost+found"];

/// Creates the data directory (0700) or tightens its permissions to 0700. An existing directory must be empty
/// or look like a Codex data directory (a `repo/` or the node key `key_path` in it): the node never takes over
/// (and chmods) a directory of other files because of a mistyped `--data-dir`.
pub fn prepare(dir: &Path, key_path: &Path) -> Result<(), DataDirError> {
    let err = |source| DataDirError::Dir { path: dir.to_owned(), source };
    if dir.is_dir() {
        let ours = dir.join("repo").is_dir() || (key_path.starts_with(dir) && key_path.exists());
        if !ours {
            let mut others: Vec<String> = fs::read_dir(dir)
                .map_err(err)?
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !IGNORED_ENTRIES.contains(&name.as_str()))
                .collect();
            if !others.is_empty() {
                others.sort();
                let more = others.len().saturating_sub(3);
                others.truncate(3);
                let mut sample = others.join(", ");
                if more > 0 {
                    sample.push_str(&format!(" and {more} more"));
                }
                return Err(DataDirError::NotADataDir { path: dir.to_owned(), sample });
            }
        }
    }
    fs::create_dir_all(dir).map_err(err)?;
    let mode = fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(err)?;
        tracing::info!(dir = %dir.display(), old_mode = format!("{mode:o}"), "data directory permissions set to 0700");
    }
    Ok(())
}

/// Loads the node key, or creates a new secp256k1 key (0600) if the file does not exist.
pub fn load_or_create_key(path: &Path) -> Result<Keypair, DataDirError> {
    let io = |source| DataDirError::KeyIo { path: path.to_owned(), source };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(DataDirError::KeyPermissions { path: path.to_owned(), mode });
            }
            let bytes = fs::read(path).map_err(io)?;
            let key = Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| DataDirError::KeyFormat { path: path.to_owned(), reason: e.to_string() })?;
            if key.key_type() != libp2p_identity::KeyType::Secp256k1 {
                return Err(DataDirError::KeyType { path: path.to_owned(), kind: key.key_type() });
            }
            Ok(key)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_secp256k1();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| DataDirError::KeyFormat { path: path.to_owned(), reason: e.to_string() })?;
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io)?;
            }
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
            file.write_all(&bytes).and_then(|_| file.sync_all()).map_err(io)?;
            tracing::info!(path = %path.display(), peer_id = %key.public().to_peer_id(), "created a new node key");
            Ok(key)
        }
        Err(err) => Err(io(err)),
    }
}

/// Bytes the repository occupies on disk now (they count toward the quota, not against free space).
fn repository_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => repository_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Checks that the quota fits in free space plus what the repository already uses.
pub fn check_free_space(data_dir: &Path, repo_dir: &Path, quota: ByteSize) -> Result<(), DataDirError> {
    let stat = nix::sys::statvfs::statvfs(data_dir)
        .map_err(|source| DataDirError::Statvfs { dir: data_dir.to_owned(), source })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let used = repository_bytes(repo_dir);
    if free.saturating_add(used) < quota.0 {
        // Leave 5% of the space for metadata and the filesystem.
        let fits = (free + used) / 100 * 95;
        let suggest = format!("{}MiB", fits >> 20);
        return Err(DataDirError::QuotaDoesNotFit {
            dir: data_dir.to_owned(),
            quota,
            free: ByteSize(free),
            used: ByteSize(used),
            suggest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        let key = load_or_create_key(&path).expect("created");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let again = load_or_create_key(&path).expect("loaded");
        assert_eq!(key.public().to_peer_id(), again.public().to_peer_id());
        assert!(key.public().to_peer_id().to_string().starts_with("16Uiu2HA"));
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(load_or_create_key(&path), Err(DataDirError::KeyPermissions { .. })));
        fs::write(dir.path().join("bad"), b"garbage").expect("write");
        fs::set_permissions(dir.path().join("bad"), Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(load_or_create_key(&dir.path().join("bad")), Err(DataDirError::KeyFormat { .. })));
    }

    #[test]
    fn data_dir_is_0700_and_quota_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("mkdir");
        fs::set_permissions(&data, Permissions::from_mode(0o755)).expect("chmod");
        prepare(&data, &data.join("key")).expect("prepared");
        assert_eq!(fs::metadata(&data).expect("meta").permissions().mode() & 0o777, 0o700);
        check_free_space(&data, &data.join("repo"), ByteSize(1 << 20)).expect("1 MiB fits");
        let err = check_free_space(&data, &data.join("repo"), ByteSize(1 << 60)).expect_err("1 EiB does not fit");
        assert!(err.to_string().contains("--storage-quota="), "{err}");
    }

    #[test]
    fn a_directory_of_other_files_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        fs::create_dir(&home).expect("mkdir");
        fs::write(home.join("notes.txt"), b"mine").expect("write");
        fs::create_dir(home.join("projects")).expect("mkdir");
        fs::set_permissions(&home, Permissions::from_mode(0o755)).expect("chmod");
        let err = prepare(&home, &home.join("key")).expect_err("not a data dir");
        assert!(matches!(err, DataDirError::NotADataDir { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("notes.txt") && text.contains("--data-dir"), "{text}");
        assert_eq!(fs::metadata(&home).expect("meta").permissions().mode() & 0o777, 0o755, "permissions untouched");

        // An empty directory (or one with only lost+found), a data dir with a key, or one with a repository: fine.
        let empty = dir.path().join("empty");
        fs::create_dir_all(empty.join("lost+found")).expect("mkdir");
        prepare(&empty, &empty.join("key")).expect("empty is fine");
        assert_eq!(fs::metadata(&empty).expect("meta").permissions().mode() & 0o777, 0o700);
        let keyed = dir.path().join("keyed");
        fs::create_dir(&keyed).expect("mkdir");
        load_or_create_key(&keyed.join("key")).expect("key");
        fs::write(keyed.join("input.bin"), b"x").expect("write");
        prepare(&keyed, &keyed.join("key")).expect("has a key");
        let repo = dir.path().join("repo-only");
        fs::create_dir_all(repo.join("repo")).expect("mkdir");
        prepare(&repo, &repo.join("key")).expect("has a repository");
        // A fresh path is created.
        prepare(&dir.path().join("new/dir"), &dir.path().join("new/dir/key")).expect("created");
    }
}
