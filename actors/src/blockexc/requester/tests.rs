//! Tests of the requester state machine.
use super::*;
use codex_protocol::cid::{ROOT_CODEC, cid_from_sha256};

fn config(window: usize, peer_in_flight: usize) -> RequesterConfig {
    RequesterConfig {
        window,
        peer_in_flight,
        request_timeout: Duration::from_secs(15),
        peer_idle_timeout: Duration::from_secs(60),
        stall_timeout: Duration::from_secs(100),
    }
}

fn tree(n: u8) -> Cid {
    cid_from_sha256(ROOT_CODEC, &[n; 32])
}

fn indexes(batches: &[(PeerId, Vec<BlockAddress>)], peer: &PeerId) -> Vec<u64> {
    let mut out: Vec<u64> = batches
        .iter()
        .filter(|(p, _)| p == peer)
        .flat_map(|(_, b)| b.iter())
        .filter_map(|a| match a {
            BlockAddress::Leaf { index, .. } => Some(*index),
            BlockAddress::Cid(_) => None,
        })
        .collect();
    out.sort_unstable();
    out
}

/// Two peers connected, a download of `leaves` of `t` started, and both peers saying they have every leaf.
fn two_holders(requester: &mut Requester, t: Cid, leaves: std::ops::Range<u64>, now: Instant) -> (PeerId, PeerId) {
    let (a, b) = (PeerId::random(), PeerId::random());
    requester.peer_connected(a, now);
    requester.peer_connected(b, now);
    requester.start(t, tree(10), Box::new(leaves.clone()), now);
    for index in leaves {
        requester.on_presence(&a, t, index, true);
        requester.on_presence(&b, t, index, true);
    }
    (a, b)
}

/// Two groups of a 2 + 1 code: data 0, 1 and parity 4 (group 0); data 2, 3 and parity 5 (group 1).
fn two_groups() -> Fallback {
    Fallback {
        group_data: Box::new(|index| match index {
            4 => Some(vec![0, 1]),
            5 => Some(vec![2, 3]),
            _ => None,
        }),
        on_loss: None,
    }
}

#[test]
fn fallback_leaves_are_asked_for_only_when_a_data_leaf_of_their_group_looks_lost() {
    let mut requester = Requester::new(config(16, 16));
    let (t, start, peer) = (tree(1), Instant::now(), PeerId::random());
    requester.peer_connected(peer, start);
    let leaves = vec![0u64, 1, 4, 2, 3, 5];
    requester.start_with_fallback(t, tree(9), Box::new(leaves.into_iter()), Some(two_groups()), start);
    // The peer has every leaf but 3 (lost with its slot).
    for index in [0, 1, 2, 4, 5] {
        requester.on_presence(&peer, t, index, true);
    }
    let first = requester.schedule(start);
    assert_eq!(indexes(&first, &peer), vec![0, 1, 2], "data only while every data leaf may still come");
    // The peer says it does not have leaf 3: group 1's parity is asked for at once; group 0's is not.
    requester.on_presence(&peer, t, 3, false);
    let second = requester.schedule(start);
    assert_eq!(indexes(&second, &peer), vec![5]);
    assert!(requester.has_fallbacks(&t));
    // Past FALLBACK_MAX a held-back fallback leaf is asked for anyway.
    let much_later = start + FALLBACK_MAX;
    requester.tick(much_later);
    assert_eq!(indexes(&requester.schedule(much_later), &peer), vec![4]);
}

#[test]
fn without_dont_have_a_data_leaf_is_taken_as_lost_after_a_while() {
    let mut requester = Requester::new(config(16, 16));
    let (t, start, peer) = (tree(1), Instant::now(), PeerId::random());
    requester.peer_connected(peer, start);
    let leaves = vec![2u64, 3, 5];
    requester.start_with_fallback(t, tree(9), Box::new(leaves.into_iter()), Some(two_groups()), start);
    for index in [2, 5] {
        requester.on_presence(&peer, t, index, true);
    }
    assert_eq!(indexes(&requester.schedule(start), &peer), vec![2]);
    let later = start + FALLBACK_AFTER;
    requester.tick(later);
    assert_eq!(indexes(&requester.schedule(later), &peer), vec![5], "no Have for leaf 3 in time");
}

#[test]
fn fetches_any_set_of_leaves_through_a_sliding_window() {
    let mut requester = Requester::new(config(2, 8));
    let (t, now, peer) = (tree(1), Instant::now(), PeerId::random());
    requester.peer_connected(peer, now);
    let set = vec![3u64, 7, 11, 40];
    let added = requester.start(t, tree(9), Box::new(set.clone().into_iter()), now).expect("starts");
    assert_eq!(added, vec![3, 7]);
    assert!(requester.start(t, tree(9), Box::new(0..1), now).is_none(), "one download per tree");
    let mut fetched = Vec::new();
    while !requester.is_done(&t) {
        for (index, _) in requester.window(&t) {
            requester.on_presence(&peer, t, index, true);
        }
        let batches = requester.schedule(now);
        let asked = indexes(&batches, &peer);
        assert!(!asked.is_empty(), "a peer that has the leaves is asked");
        for index in &asked {
            assert_eq!(requester.on_delivery(&peer, t, *index, Instant::now()), Delivery::Store);
        }
        let outcomes: Vec<(u64, Stored)> = asked.iter().map(|i| (*i, Stored::Kept)).collect();
        requester.on_stored(&peer, t, &outcomes, now);
        fetched.extend(asked);
    }
    assert_eq!(fetched, set, "exactly the given leaves, in order");
    assert!(requester.end(&t, now).is_some());
}

#[test]
fn requests_spread_over_peers_within_their_limit() {
    let mut requester = Requester::new(config(10, 3));
    let (t, now) = (tree(2), Instant::now());
    let (a, b) = two_holders(&mut requester, t, 0..10, now);
    let batches = requester.schedule(now);
    assert_eq!(indexes(&batches, &a).len(), 3);
    assert_eq!(indexes(&batches, &b).len(), 3);
    assert!(requester.schedule(now).is_empty(), "nothing changed: no new requests");
    // A delivery frees a slot: the next schedule asks again.
    let first = indexes(&batches, &a)[0];
    assert_eq!(requester.on_delivery(&a, t, first, Instant::now()), Delivery::Store);
    assert_eq!(
        requester.on_delivery(&b, t, first, Instant::now()),
        Delivery::Ignored,
        "being stored: a duplicate, no blame"
    );
    assert_eq!(requester.on_delivery(&b, tree(8), 0, now), Delivery::Unsolicited, "no download of that tree");
    assert_eq!(indexes(&requester.schedule(now), &a).len(), 1);
    // A late answer from b to a leaf asked of a is still data, and frees a's request slot.
    let second = indexes(&batches, &a)[1];
    assert_eq!(requester.on_delivery(&b, t, second, Instant::now()), Delivery::Store);
    assert_eq!(requester.in_flight(&a), 2);
}

#[test]
fn a_peers_limit_holds_across_downloads_and_peers_without_haves_are_skipped() {
    let mut requester = Requester::new(config(8, 5));
    let now = Instant::now();
    let (a, b) = (PeerId::random(), PeerId::random());
    requester.peer_connected(a, now);
    requester.peer_connected(b, now);
    let (t1, t2) = (tree(4), tree(5));
    requester.start(t1, tree(9), Box::new(0..4), now);
    requester.start(t2, tree(8), Box::new(0..4), now);
    for index in 0..4 {
        requester.on_presence(&a, t1, index, true);
        requester.on_presence(&a, t2, index, true);
    }
    let batches = requester.schedule(now);
    assert_eq!(indexes(&batches, &a).len(), 5, "five requests across both downloads");
    assert!(indexes(&batches, &b).is_empty(), "b said Have for nothing");
    assert_eq!(requester.in_flight(&a), 5);
    // b now has one leaf that is still wanted: only it goes to b. Which download's leaves went to a first
    // depends on the order the downloads are walked in, so the leaf is looked for in both.
    let wanted: Vec<(Cid, u64)> = [t1, t2]
        .into_iter()
        .flat_map(|t| {
            requester.window(&t).into_iter().filter(|(_, s)| *s == LeafState::Wanted).map(move |(i, _)| (t, i))
        })
        .collect();
    assert_eq!(wanted.len(), 3, "eight leaves in the windows, five asked of a");
    let (tree_b, leaf_b) = wanted[0];
    requester.on_presence(&b, tree_b, leaf_b, true);
    assert_eq!(indexes(&requester.schedule(now), &b), vec![leaf_b]);
    assert_eq!(requester.in_flight(&a), 5);
}

#[test]
fn timeouts_rejections_and_departures_put_leaves_back() {
    let mut requester = Requester::new(config(4, 8));
    let (t, now) = (tree(3), Instant::now());
    let (a, b) = (PeerId::random(), PeerId::random());
    requester.peer_connected(a, now);
    requester.peer_connected(b, now);
    requester.start(t, tree(9), Box::new(0..4), now);
    for index in 0..4 {
        requester.on_presence(&a, t, index, true);
    }
    let asked = indexes(&requester.schedule(now), &a);
    assert_eq!(asked, vec![0, 1, 2, 3]);
    // Leaf 0 is delivered but rejected by the store: wanted again, and a no longer counts as having it.
    assert_eq!(requester.on_delivery(&a, t, 0, Instant::now()), Delivery::Store);
    let (rejected, _) = requester.on_stored(&a, t, &[(0, Stored::Rejected)], now);
    assert_eq!(rejected, 1);
    assert!(requester.window(&t).contains(&(0, LeafState::Wanted)));
    // a leaves: its requests go back to wanted, and b, which has them, gets them.
    requester.peer_left(&a);
    for index in 0..4 {
        requester.on_presence(&b, t, index, true);
    }
    assert_eq!(indexes(&requester.schedule(now), &b), vec![0, 1, 2, 3]);
    // b never answers: after the timeout every request is wanted again and b is named once per request.
    let later = now + Duration::from_secs(16);
    let tick = requester.tick(later);
    assert_eq!(tick.timed_out, vec![b; 4]);
    assert_eq!(requester.in_flight(&b), 0);
    assert!(requester.window(&t).iter().all(|(_, s)| *s == LeafState::Wanted));
}

#[test]
fn unheld_leaves_are_reasked_and_stalled_downloads_end() {
    let mut requester = Requester::new(config(4, 8));
    let (t, now) = (tree(4), Instant::now());
    requester.start(t, tree(9), Box::new(0..4), now);
    let tick = requester.tick(now + REASK_INTERVAL);
    assert_eq!(tick.reask, vec![(t, vec![0, 1, 2, 3])]);
    assert_eq!(tick.locate, vec![t, tree(9)]);
    let tick = requester.tick(now + Duration::from_secs(101));
    assert_eq!(tick.stalled, vec![(t, tree(9))]);
    assert!(!requester.is_running(&t));
}

#[test]
fn rarest_leaves_go_first_and_a_leaf_a_member_holds_is_fetched_from_it() {
    let mut requester = Requester::new(config(8, 4));
    let (t, now) = (tree(6), Instant::now());
    let (seeder, member) = (PeerId::random(), PeerId::random());
    requester.peer_connected(seeder, now);
    requester.peer_connected(member, now);
    requester.start(t, tree(9), Box::new(0..8), now);
    for index in 0..8 {
        requester.on_presence(&seeder, t, index, true);
    }
    for index in 0..4 {
        requester.on_presence(&member, t, index, true);
    }
    let batches = requester.schedule(now);
    assert_eq!(indexes(&batches, &seeder), vec![4, 5, 6, 7], "the seeder's room goes to what only it has");
    assert_eq!(indexes(&batches, &member), vec![0, 1, 2, 3]);
}

#[test]
fn downloads_of_the_same_leaves_ask_for_them_in_different_orders() {
    let (t, now, peer) = (tree(7), Instant::now(), PeerId::random());
    let first_asked = || {
        let mut requester = Requester::new(config(64, 4));
        requester.peer_connected(peer, now);
        requester.start(t, tree(9), Box::new(0..64), now);
        requester.mark_shared(&t, now);
        for index in 0..64 {
            requester.on_presence(&peer, t, index, true);
        }
        indexes(&requester.schedule(now), &peer)
    };
    // Two members with one seeder: each asks it for 4 of 64 equally rare leaves, so they have something to
    // trade. (The same 4 in both by chance: 1 in 635,376.)
    assert_ne!(first_asked(), first_asked());
}

#[test]
fn a_peers_cap_follows_what_it_delivers() {
    let mut requester = Requester::new(config(512, 256));
    let (t, start, peer) = (tree(8), Instant::now(), PeerId::random());
    requester.peer_connected(peer, start);
    requester.start(t, tree(9), Box::new(0..100_000), start);
    let mut now = start;
    let round = |requester: &mut Requester, now: Instant| {
        for (index, _) in requester.window(&t) {
            requester.on_presence(&peer, t, index, true);
        }
        let asked = indexes(&requester.schedule(now), &peer);
        for index in &asked {
            requester.on_delivery(&peer, t, *index, Instant::now());
        }
        let outcomes: Vec<(u64, Stored)> = asked.iter().map(|i| (*i, Stored::Kept)).collect();
        requester.on_stored(&peer, t, &outcomes, now);
        asked.len()
    };
    assert_eq!(round(&mut requester, now), INITIAL_IN_FLIGHT, "an unmeasured peer gets the initial cap");
    // A fast peer: 25 full rounds in a second (400 leaves/s) lets it have 4× as many requests.
    for _ in 1..25 {
        round(&mut requester, now);
    }
    now += Duration::from_secs(1);
    requester.tick(now);
    for (index, _) in requester.window(&t) {
        requester.on_presence(&peer, t, index, true);
    }
    let asked = indexes(&requester.schedule(now), &peer);
    assert_eq!(asked.len(), INITIAL_IN_FLIGHT * 4);
    requester.on_presence(&peer, t, 100_000 - 1, true);
    assert!(requester.schedule(now).is_empty(), "at its cap");
    // Then slow: 8 leaves in a second while it owes more. Its cap falls (at most by half per sample) to
    // the floor.
    for index in asked.iter().take(8) {
        requester.on_delivery(&peer, t, *index, Instant::now());
    }
    now += Duration::from_secs(1);
    requester.tick(now);
    assert!(requester.peers[&peer].cap < INITIAL_IN_FLIGHT * 4);
    for _ in 0..4 {
        now += Duration::from_secs(1);
        requester.tick(now);
    }
    assert_eq!(requester.peers[&peer].cap, MIN_IN_FLIGHT, "a peer that delivers nothing keeps the floor");
}

#[test]
fn the_end_game_asks_a_second_peer_for_a_late_leaf_and_cancels_the_loser() {
    let mut requester = Requester::new(config(8, 4));
    let (t, now) = (tree(9), Instant::now());
    let (a, b) = two_holders(&mut requester, t, 0..2, now);
    let first = requester.schedule(now);
    assert_eq!(indexes(&first, &a).len() + indexes(&first, &b).len(), 2, "each leaf asked once");
    assert!(requester.schedule(now + Duration::from_secs(1)).is_empty(), "not late yet");
    let later = now + ENDGAME_AFTER;
    requester.tick(later);
    let second = requester.schedule(later);
    assert_eq!(indexes(&second, &a), indexes(&first, &b), "a is asked for what b is late with");
    assert_eq!(indexes(&second, &b), indexes(&first, &a));
    assert_eq!((requester.in_flight(&a), requester.in_flight(&b)), (2, 2));
    // a delivers both: b's copies are cancelled, and nobody owes anything.
    for index in 0..2 {
        assert_eq!(requester.on_delivery(&a, t, index, Instant::now()), Delivery::Store);
    }
    let cancels = requester.take_cancels();
    assert_eq!(cancels.len(), 2);
    assert!(cancels.iter().all(|(peer, _)| *peer == b), "b's copy of each leaf is cancelled");
    assert_eq!((requester.in_flight(&a), requester.in_flight(&b)), (0, 0));
    assert_eq!(requester.on_delivery(&b, t, 0, Instant::now()), Delivery::Ignored, "b's late copy is no fault");
}

#[test]
fn the_leaves_a_stream_reader_waits_for_go_first() {
    let mut requester = Requester::new(config(1024, 4));
    let (t, now, peer) = (tree(11), Instant::now(), PeerId::random());
    requester.peer_connected(peer, now);
    requester.start(t, tree(9), Box::new(0..1024), now);
    for index in 0..1024 {
        requester.on_presence(&peer, t, index, true);
    }
    requester.set_urgent(&t, Some(500));
    let first = requester.schedule(now);
    assert_eq!(indexes(&first, &peer), vec![500, 501, 502, 503]);
    // Once others fetch the same tree, rarity decides alone.
    requester.mark_shared(&t, now);
    requester.set_urgent(&t, Some(504));
    for index in indexes(&first, &peer) {
        requester.on_delivery(&peer, t, index, Instant::now());
    }
    let second = indexes(&requester.schedule(now), &peer);
    assert_eq!(second.len(), 4);
    assert_ne!(second, vec![504, 505, 506, 507], "1 in 1.1e12 by chance");
}

#[test]
fn a_download_others_fetch_too_gets_the_full_window() {
    let mut requester = Requester::new(config(2048, 8));
    let (t, now) = (tree(12), Instant::now());
    let added = requester.start(t, tree(9), Box::new(0..10_000), now).expect("starts");
    assert_eq!(added.len(), UNSHARED_WINDOW);
    let grown = requester.mark_shared(&t, now);
    assert_eq!(grown.len(), 2048 - UNSHARED_WINDOW);
    assert_eq!(requester.window(&t).len(), 2048);
    assert!(requester.mark_shared(&t, now).is_empty(), "once");
}

#[test]
fn have_sets_only_hold_window_leaves() {
    let mut requester = Requester::new(config(4, 8));
    let (t, now, peer) = (tree(5), Instant::now(), PeerId::random());
    requester.peer_connected(peer, now);
    requester.start(t, tree(9), Box::new(0..1_000_000), now);
    for index in 0..100_000 {
        requester.on_presence(&peer, t, index, true);
    }
    assert_eq!(requester.peers[&peer].have[&t].len(), 4);
}

#[test]
fn leaves_of_a_download_that_ended_lately_are_late_answers() {
    let mut requester = Requester::new(config(8, 8));
    let (t, now, peer) = (tree(1), Instant::now(), PeerId::random());
    requester.peer_connected(peer, now);
    requester.start(t, tree(9), Box::new(0..4), now);
    requester.end(&t, now);
    let soon = now + Duration::from_secs(1);
    assert_eq!(requester.on_delivery(&peer, t, 0, soon), Delivery::Ignored, "an end-game copy still on its way");
    let later = now + super::super::fetch::LATE_ANSWERS;
    requester.tick(later);
    assert_eq!(requester.on_delivery(&peer, t, 0, later), Delivery::Unsolicited);
}

#[test]
fn an_in_order_download_goes_group_by_group_once_a_data_leaf_looks_lost() {
    let mut requester = Requester::new(config(16, 16));
    let (t, start, peer) = (tree(1), Instant::now(), PeerId::random());
    requester.peer_connected(peer, start);
    // Data leaves in order; the groups with their parity once one is lost.
    let fallback = Fallback { on_loss: Some(Box::new(vec![0u64, 1, 4, 2, 3, 5].into_iter())), ..two_groups() };
    requester.start_with_fallback(t, tree(9), Box::new(0u64..4), Some(fallback), start);
    assert_eq!(requester.window(&t).iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2, 3], "data only");
    for index in [0, 1, 2] {
        requester.on_presence(&peer, t, index, true);
    }
    assert_eq!(indexes(&requester.schedule(start), &peer), vec![0, 1, 2]);
    requester.tick(start);
    assert_eq!(requester.window(&t).len(), 4, "nothing lost yet: still in order");
    // Leaf 3 is lost with its slot: the groups come in, the requests out keep their state, and only the parity
    // of leaf 3's group is asked for.
    requester.on_presence(&peer, t, 3, false);
    requester.tick(start);
    let window = requester.window(&t);
    assert_eq!(window.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    assert!(window.iter().filter(|(i, _)| *i < 3).all(|(_, s)| matches!(s, LeafState::Requested { .. })));
    for index in [4, 5] {
        requester.on_presence(&peer, t, index, true);
    }
    assert_eq!(indexes(&requester.schedule(start), &peer), vec![5]);
    assert_eq!(requester.in_flight(&peer), 4);
}

#[test]
fn a_peer_found_fetching_the_same_tree_is_told_the_wanted_leaves_once() {
    let mut requester = Requester::new(config(4, 8));
    let (t, now, peer) = (tree(1), Instant::now(), PeerId::random());
    requester.peer_connected(peer, now);
    assert!(requester.peer_fetches(&peer, &t).is_empty(), "no download of that tree");
    requester.start(t, tree(9), Box::new(0..10), now);
    assert_eq!(requester.peer_fetches(&peer, &t), vec![0, 1, 2, 3]);
    assert!(requester.peer_fetches(&peer, &t).is_empty(), "once per download");
    assert!(requester.peer_fetches(&PeerId::random(), &t).is_empty(), "not a connected peer");
    requester.end(&t, now);
    requester.start(t, tree(9), Box::new(5..10), now);
    assert_eq!(requester.peer_fetches(&peer, &t), vec![5, 6, 7, 8], "a new download tells it again");
}
