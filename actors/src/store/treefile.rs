//! Tree files (`segments/<id>.tree`): every layer of a dataset's CodexTree, leaf layer first, 32 bytes a node.
//! Node `(layer, position)` lives at byte `(start[layer] + position) × 32`, where `start[layer]` is the number
//! of nodes in the layers below. Proofs are read from the file node by node; a download in progress writes the
//! nodes its verified proofs reveal in place, so its memory does not grow with the dataset.

use super::StoreError;
use codex_protocol::tree::{layer_sizes, parent_layer, proof_from_nodes};
use codex_protocol::{CodexProof, Digest};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Nodes read at a time when rebuilding a tree file (even, so slices never split a pair): 2 MiB.
const REBUILD_NODES: u64 = 1 << 16;

/// Where each node of a tree of `leaves` leaves sits in its tree file.
#[derive(Debug, Clone)]
pub struct TreeLayout {
    sizes: Vec<u64>,
    starts: Vec<u64>,
    nodes: u64,
}

impl TreeLayout {
    pub fn new(leaves: u64) -> Self {
        let sizes = layer_sizes(leaves);
        let starts: Vec<u64> = sizes.iter().scan(0, |acc, size| Some(std::mem::replace(acc, *acc + size))).collect();
        let nodes = sizes.iter().sum();
        Self { sizes, starts, nodes }
    }

    pub fn leaves(&self) -> u64 {
        self.sizes[0]
    }

    /// The tree file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.nodes * 32
    }

    /// Byte offset of node `(layer, position)`, `None` outside the tree.
    pub fn offset(&self, layer: usize, position: u64) -> Option<u64> {
        let size = *self.sizes.get(layer)?;
        (position < size).then(|| (self.starts[layer] + position) * 32)
    }
}

/// An open tree file.
#[derive(Debug)]
pub struct TreeFile {
    file: File,
    layout: TreeLayout,
}

impl TreeFile {
    /// Creates a new tree file, zero-filled to its full length (an error if it exists).
    pub fn create(path: &Path, leaves: u64) -> Result<Self, StoreError> {
        let layout = TreeLayout::new(leaves);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(StoreError::io("creating a tree file"))?;
        file.set_len(layout.file_len()).map_err(StoreError::io("sizing a tree file"))?;
        Ok(Self { file, layout })
    }

    /// Opens an existing tree file for reading and writing; `None` when it is missing or not of the length a
    /// tree of `leaves` leaves needs (then none of its nodes can be trusted).
    pub fn open_existing(path: &Path, leaves: u64) -> Result<Option<Self>, StoreError> {
        let layout = TreeLayout::new(leaves);
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StoreError::Io { context: "opening a tree file", source: err }),
        };
        let len = file.metadata().map_err(StoreError::io("reading a tree file's length"))?.len();
        Ok((len == layout.file_len()).then_some(Self { file, layout }))
    }

    /// Opens the tree file of a stored dataset for reading.
    pub fn open_read(path: &Path, leaves: u64) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(StoreError::io("opening a tree file"))?;
        Ok(Self { file, layout: TreeLayout::new(leaves) })
    }

    pub fn leaves(&self) -> u64 {
        self.layout.leaves()
    }

    /// Node `(layer, position)`, `None` outside the tree. Nodes never written read as zeros.
    pub fn read_node(&self, layer: usize, position: u64) -> Result<Option<Digest>, StoreError> {
        let Some(offset) = self.layout.offset(layer, position) else { return Ok(None) };
        let mut node = [0u8; 32];
        self.file.read_exact_at(&mut node, offset).map_err(StoreError::io("reading a tree node"))?;
        Ok(Some(node))
    }

    /// Writes node `(layer, position)` in place (not synced). Out-of-tree positions are ignored.
    pub fn write_node(&self, layer: usize, position: u64, node: &Digest) -> Result<(), StoreError> {
        let Some(offset) = self.layout.offset(layer, position) else { return Ok(()) };
        self.file.write_all_at(node, offset).map_err(StoreError::io("writing a tree node"))
    }

    /// The inclusion proof of leaf `index`, read node by node.
    pub fn proof(&self, index: u64) -> Result<CodexProof, StoreError> {
        proof_from_nodes(self.leaves(), index, |layer, position| self.read_node(layer, position))
    }

    /// The whole leaf layer (32 bytes per leaf: used to finish a download or drop a tree's leaf index).
    pub fn read_leaves(&self) -> Result<Vec<Digest>, StoreError> {
        let leaves = usize::try_from(self.leaves())
            .map_err(|_| StoreError::Corrupt { what: "tree file", reason: "too many leaves".into() })?;
        let mut bytes = vec![0u8; leaves * 32];
        self.file.read_exact_at(&mut bytes, 0).map_err(StoreError::io("reading a tree's leaves"))?;
        Ok(bytes.as_chunks::<32>().0.to_vec())
    }

    /// Recomputes every layer above the leaves from the leaf layer, in place and slice by slice (memory
    /// bounded by [`REBUILD_NODES`]), and returns the root. Not synced.
    pub fn rebuild(&self) -> Result<Digest, StoreError> {
        let depth = self.layout.sizes.len() - 1;
        for layer in 0..depth {
            let size = self.layout.sizes[layer];
            let mut start = 0;
            while start < size {
                let count = REBUILD_NODES.min(size - start);
                let offset = self.layout.offset(layer, start).ok_or_else(|| outside(layer))?;
                let mut bytes = vec![0u8; count as usize * 32];
                self.file.read_exact_at(&mut bytes, offset).map_err(StoreError::io("reading a tree file"))?;
                let nodes: Vec<Digest> = bytes.as_chunks::<32>().0.to_vec();
                let parents = parent_layer(&nodes, layer == 0);
                let above = self.layout.offset(layer + 1, start / 2).ok_or_else(|| outside(layer + 1))?;
                self.file.write_all_at(parents.as_flattened(), above).map_err(StoreError::io("writing a tree file"))?;
                start += count;
            }
        }
        self.read_node(depth, 0)?.ok_or(StoreError::Corrupt { what: "tree file", reason: "no root".into() })
    }

    /// Makes written nodes durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(StoreError::io("syncing a tree file"))
    }
}

/// Syncs a directory, making the entries of files created (or removed) in it durable.
/// A layer position outside the tree file's layout (a corrupt or mis-sized record).
fn outside(layer: usize) -> StoreError {
    StoreError::Corrupt { what: "tree file", reason: format!("layer {layer} lies outside the tree's layout") }
}

pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("syncing the segments directory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::CodexTree;
    use codex_protocol::cid::sha256;

    #[test]
    fn nodes_written_in_place_give_the_same_proofs_as_the_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        for leaves in [1u64, 2, 3, 5, 8, 13] {
            let digests: Vec<Digest> = (0..leaves).map(|i| sha256(&i.to_le_bytes())).collect();
            let tree = CodexTree::new(digests.clone()).expect("tree");
            let path = dir.path().join(format!("{leaves}.tree"));
            let file = TreeFile::create(&path, leaves).expect("create");
            assert!(TreeFile::create(&path, leaves).is_err(), "create never overwrites");
            for index in 0..leaves {
                let proof = tree.proof(index).expect("proof");
                for (layer, position, node) in proof.revealed_nodes(&digests[index as usize]) {
                    file.write_node(layer, position, &node).expect("write");
                }
            }
            file.sync().expect("sync");
            let reopened = TreeFile::open_existing(&path, leaves).expect("open").expect("right length");
            for index in 0..leaves {
                assert_eq!(reopened.proof(index).expect("proof"), tree.proof(index).expect("proof"));
            }
            assert_eq!(reopened.read_leaves().expect("leaves"), digests);
            assert!(TreeFile::open_existing(&path, leaves + 1).expect("open").is_none(), "wrong length");
        }
        assert!(TreeFile::open_existing(&dir.path().join("missing"), 1).expect("open").is_none());
    }

    #[test]
    fn rebuilding_from_the_leaves_gives_the_whole_tree_across_slices() {
        let dir = tempfile::tempdir().expect("tempdir");
        for leaves in [1u64, 2, 7, REBUILD_NODES - 1, REBUILD_NODES, REBUILD_NODES + 1, 2 * REBUILD_NODES + 3] {
            let digests: Vec<Digest> = (0..leaves).map(|i| sha256(&i.to_le_bytes())).collect();
            let tree = CodexTree::new(digests.clone()).expect("tree");
            let path = dir.path().join(format!("{leaves}.tree"));
            let file = TreeFile::create(&path, leaves).expect("create");
            file.file.write_all_at(digests.as_flattened(), 0).expect("leaves only");
            assert_eq!(file.rebuild().expect("rebuild"), tree.root(), "{leaves} leaves");
            let expected: Vec<u8> = tree.layers().iter().flat_map(|l| l.iter().flatten().copied()).collect();
            assert_eq!(std::fs::read(&path).expect("read"), expected, "{leaves} leaves");
        }
    }
}
