//! The request decoder of `POST /query` and `POST /batch`: any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postgate::http::{BatchRequest, QueryRequest, decode};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<QueryRequest>(data);
    let _ = decode::<BatchRequest>(data);
});
