//! The data directory at startup: created 0700, the node key (secp256k1, libp2p protobuf encoding, 0600),
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

/// Creates the data directory (0700) or tightens its permissions to 0700.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let err = |source| DataDirError::Dir { path: dir.to_owned(), source };
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
        prepare(&data).expect("prepared");
        assert_eq!(fs::metadata(&data).expect("meta").permissions().mode() & 0o777, 0o700);
        check_free_space(&data, &data.join("repo"), ByteSize(1 << 20)).expect("1 MiB fits");
        let err = check_free_space(&data, &data.join("repo"), ByteSize(1 << 60)).expect_err("1 EiB does not fit");
        assert!(err.to_string().contains("--storage-quota="), "{err}");
    }
}
