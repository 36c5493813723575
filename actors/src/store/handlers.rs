//! One short `Handler` per StoreActor message, each calling a plain method of `actor.rs` or `downloads.rs`.

use super::StoreError;
use super::actor::StoreActor;
use super::messages::*;
use super::repo::DeleteOutcome;
use actix::prelude::*;
use bytes::Bytes;
use codex_protocol::blockexc::BlockAddress;
use codex_protocol::{Cid, CodexProof, Manifest};
use std::collections::HashMap;

impl Handler<BeginUpload> for StoreActor {
    type Result = Result<UploadTarget, StoreError>;
    fn handle(&mut self, _: BeginUpload, _: &mut Self::Context) -> Self::Result {
        let quota = self.quota.clone();
        let repo = self.repo()?;
        let segment = repo.allocate_segment();
        Ok(UploadTarget {
            segment,
            data_path: repo.data_path(segment),
            tree_path: repo.tree_path(segment),
            slots_path: repo.slots_path(segment),
            quota,
        })
    }
}

impl Handler<LocateDataset> for StoreActor {
    type Result = Result<Option<DatasetFiles>, StoreError>;
    fn handle(&mut self, msg: LocateDataset, _: &mut Self::Context) -> Self::Result {
        self.repo()?.dataset_files(&msg.cid)
    }
}

impl Handler<CommitUpload> for StoreActor {
    type Result = Result<StoredDataset, StoreError>;
    fn handle(&mut self, msg: CommitUpload, _: &mut Self::Context) -> Self::Result {
        self.commit_upload(msg)
    }
}

impl Handler<PutBlock> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: PutBlock, _: &mut Self::Context) -> Self::Result {
        self.put_block(msg)
    }
}

impl Handler<PutManifest> for StoreActor {
    type Result = Result<Manifest, StoreError>;
    fn handle(&mut self, msg: PutManifest, _: &mut Self::Context) -> Self::Result {
        self.put_manifest(msg)
    }
}

impl Handler<GetManifest> for StoreActor {
    type Result = Result<Option<Manifest>, StoreError>;
    fn handle(&mut self, msg: GetManifest, _: &mut Self::Context) -> Self::Result {
        self.repo()?.manifest(&msg.cid)
    }
}

impl Handler<ListDatasets> for StoreActor {
    type Result = Result<Vec<StoredDataset>, StoreError>;
    fn handle(&mut self, _: ListDatasets, _: &mut Self::Context) -> Self::Result {
        self.list_datasets()
    }
}

impl Handler<HasBlock> for StoreActor {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, msg: HasBlock, _: &mut Self::Context) -> Self::Result {
        self.repo()?.has_block(&msg.cid)
    }
}

impl Handler<GetBlock> for StoreActor {
    type Result = Result<Option<Bytes>, StoreError>;
    fn handle(&mut self, msg: GetBlock, _: &mut Self::Context) -> Self::Result {
        Ok(self.repo()?.block(&msg.cid)?.map(Bytes::from))
    }
}

impl Handler<GetLeaf> for StoreActor {
    type Result = Result<Option<(Cid, CodexProof)>, StoreError>;
    fn handle(&mut self, msg: GetLeaf, _: &mut Self::Context) -> Self::Result {
        self.repo()?.leaf(&msg.tree, msg.index)
    }
}

impl Handler<OpenDataset> for StoreActor {
    type Result = Result<Option<OpenedDataset>, StoreError>;
    fn handle(&mut self, msg: OpenDataset, _: &mut Self::Context) -> Self::Result {
        self.open_dataset(&msg.cid)
    }
}

impl Handler<DeleteData> for StoreActor {
    type Result = Result<DeleteOutcome, StoreError>;
    fn handle(&mut self, msg: DeleteData, _: &mut Self::Context) -> Self::Result {
        self.delete(&msg.cid)
    }
}

impl Handler<GetSpace> for StoreActor {
    type Result = MessageResult<GetSpace>;
    fn handle(&mut self, _: GetSpace, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.quota.space())
    }
}

impl Handler<CloseStore> for StoreActor {
    type Result = ();
    fn handle(&mut self, _: CloseStore, _: &mut Self::Context) {
        // Not `ctx.stop()`: a SyncArbiter restarts stopped actors. The thread ends when the last Addr goes.
        self.close();
    }
}

impl Handler<SweepExpired> for StoreActor {
    type Result = Result<DeleteOutcome, StoreError>;
    fn handle(&mut self, msg: SweepExpired, _: &mut Self::Context) -> Self::Result {
        self.sweep(msg.now)
    }
}

impl Handler<BeginDownload> for StoreActor {
    type Result = Result<DownloadState, StoreError>;
    fn handle(&mut self, msg: BeginDownload, _: &mut Self::Context) -> Self::Result {
        self.begin_download(msg)
    }
}

impl Handler<StoreLeaves> for StoreActor {
    type Result = Result<StoredLeaves, StoreError>;
    fn handle(&mut self, msg: StoreLeaves, _: &mut Self::Context) -> Self::Result {
        self.store_leaves(msg)
    }
}

impl Handler<ReadLeaves> for StoreActor {
    type Result = Result<Vec<LeafBlock>, StoreError>;
    fn handle(&mut self, msg: ReadLeaves, _: &mut Self::Context) -> Self::Result {
        self.read_leaves(msg)
    }
}

impl Handler<HasLeaves> for StoreActor {
    type Result = Result<Vec<bool>, StoreError>;
    fn handle(&mut self, msg: HasLeaves, _: &mut Self::Context) -> Self::Result {
        self.has_leaves(&msg.tree, &msg.indexes)
    }
}

impl Handler<HasAddresses> for StoreActor {
    type Result = Result<Vec<bool>, StoreError>;
    fn handle(&mut self, msg: HasAddresses, _: &mut Self::Context) -> Self::Result {
        let mut held = vec![false; msg.addresses.len()];
        let mut by_tree: HashMap<Cid, (Vec<usize>, Vec<u64>)> = HashMap::new();
        for (position, address) in msg.addresses.iter().enumerate() {
            match address {
                BlockAddress::Leaf { tree, index } => {
                    let (positions, indexes) = by_tree.entry(*tree).or_default();
                    positions.push(position);
                    indexes.push(*index);
                }
                BlockAddress::Cid(cid) => held[position] = self.repo()?.has_block(cid)?,
            }
        }
        for (tree, (positions, indexes)) in by_tree {
            for (position, answer) in positions.into_iter().zip(self.has_leaves(&tree, &indexes)?) {
                held[position] = answer;
            }
        }
        Ok(held)
    }
}

impl Handler<ListDownloads> for StoreActor {
    type Result = Result<Vec<(Cid, Manifest)>, StoreError>;
    fn handle(&mut self, _: ListDownloads, _: &mut Self::Context) -> Self::Result {
        Ok(self.list_downloads())
    }
}

impl Handler<OpenDownload> for StoreActor {
    type Result = Result<Option<OpenedDownload>, StoreError>;
    fn handle(&mut self, msg: OpenDownload, _: &mut Self::Context) -> Self::Result {
        self.open_download(&msg.cid)
    }
}

impl Handler<FailDownload> for StoreActor {
    type Result = ();
    fn handle(&mut self, msg: FailDownload, _: &mut Self::Context) {
        self.fail_download(&msg.tree, msg.reason);
    }
}

impl Handler<BeginSlotDownload> for StoreActor {
    type Result = Result<SlotDownload, StoreError>;
    fn handle(&mut self, msg: BeginSlotDownload, _: &mut Self::Context) -> Self::Result {
        self.begin_slot_download(msg)
    }
}

impl Handler<CommitSlot> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: CommitSlot, _: &mut Self::Context) -> Self::Result {
        self.commit_slot(&msg.tree)
    }
}

impl Handler<DropSlot> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: DropSlot, _: &mut Self::Context) -> Self::Result {
        match self.partials.remove(&msg.tree) {
            Some(partial) => self.abort_download(partial, &msg.reason),
            None => Ok(()),
        }
    }
}

impl Handler<BeginDecodeDownload> for StoreActor {
    type Result = Result<DecodeDownload, StoreError>;
    fn handle(&mut self, msg: BeginDecodeDownload, _: &mut Self::Context) -> Self::Result {
        self.begin_decode_download(msg)
    }
}

impl Handler<FinishDecode> for StoreActor {
    type Result = Result<StoredDataset, StoreError>;
    fn handle(&mut self, msg: FinishDecode, _: &mut Self::Context) -> Self::Result {
        self.finish_decode(msg)
    }
}

impl Handler<FinishRepair> for StoreActor {
    type Result = Result<SlotDownload, StoreError>;
    fn handle(&mut self, msg: FinishRepair, _: &mut Self::Context) -> Self::Result {
        self.finish_repair(msg)
    }
}
