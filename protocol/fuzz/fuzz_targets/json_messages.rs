//! The JSON decoders of status, event, command and acknowledgement messages on arbitrary
//! bytes. Whatever decodes must be valid and must read back equal after encoding.
#![no_main]

use fieldlink_protocol::{json, Ack, Command, Event, Message, Status};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn check<M>(data: &[u8])
where
    M: Message + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(m) = json::decode::<M>(data) {
        assert_eq!(m.validate(), Ok(()));
        let bytes = json::encode(&m).expect("a decoded message encodes");
        assert_eq!(json::decode::<M>(&bytes).expect("an encoded message decodes"), m);
    }
}

fuzz_target!(|data: &[u8]| {
    check::<Status>(data);
    check::<Event>(data);
    check::<Command>(data);
    check::<Ack>(data);
});
