//! Arbitrary bytes as a spooled row change: decoding never panics, and whatever decodes
//! encodes to bytes that decode to the same change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nflogd::store::codec;

fuzz_target!(|data: &[u8]| {
    if let Some(c) = codec::decode(data) {
        let mut again = Vec::new();
        codec::encode(&c, &mut again);
        assert_eq!(codec::decode(&again), Some(c), "encode/decode not stable");
    }
});
