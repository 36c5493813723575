//! A blockexc message body as a peer sends it: decoding returns an error or a message, never panics; every
//! delivery it holds can be verified; and what decodes can be sent on again (its encoding decodes).
#![no_main]

use codex_protocol::blockexc::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data) else { return };
    for delivery in &message.payload {
        let _ = delivery.verify();
    }
    let encoded = message.encode();
    assert!(Message::decode(&encoded).is_ok(), "a decoded message re-encodes into bytes that do not decode");
});
