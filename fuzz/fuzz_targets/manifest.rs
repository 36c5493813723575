//! A manifest block fetched from a peer: decoding never panics, and whatever decodes survives a round trip
//! (`decode(encode(m)) == m`), so the CID we compute for a decoded manifest is the CID of what we re-serve.
//! A manifest that validates also lays out (erasure groups, slots, cells) without panicking, as the node does
//! when it hosts, decodes or repairs a slot of it.
#![no_main]

use codex_protocol::Manifest;
use codex_protocol::erasure::ErasureLayout;
use codex_protocol::slots::SlotLayout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::decode(data) else { return };
    let _ = (manifest.blocks_count(), manifest.content_size(), manifest.is_protected());
    let encoded = manifest.encode();
    assert_eq!(Manifest::decode(&encoded).as_ref(), Ok(&manifest));
    // Encoding is canonical: a decoded manifest's encoding encodes to itself.
    assert_eq!(Manifest::decode(&encoded).map(|m| m.encode()), Ok(encoded));
    if manifest.validate().is_err() {
        return;
    }
    let Some(erasure) = manifest.erasure.as_ref() else { return };
    if let Some(layout) = ErasureLayout::from_manifest(&manifest) {
        let last = layout.encoded_blocks().saturating_sub(1);
        for index in [0, layout.rounded(), last, last + 1] {
            if let Some((group, position)) = layout.group_of(index) {
                assert_eq!(layout.member(group, position), Some(index));
            }
            let _ = layout.is_padding(index);
        }
        let _ = layout.group_members(0).count();
    }
    let Some(verification) = erasure.verification.as_ref() else { return };
    let Ok(slots) = SlotLayout::from_manifest(&manifest, verification.cell_size) else { return };
    for slot in [0, slots.num_slots().saturating_sub(1), slots.num_slots()] {
        if let Some(range) = slots.slot_blocks(slot) {
            let _ = (slots.is_empty_block(range.start), slots.is_empty_block(range.end.saturating_sub(1)));
        }
    }
    let _ = (slots.cells_per_slot(), slots.cell_position(slots.cells_per_slot().saturating_sub(1)));
});
