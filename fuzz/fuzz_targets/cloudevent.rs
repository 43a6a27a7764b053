//! CloudEvents from outside: the conformance check and the structured and binary readers;
//! what passes the check must decode. Subject keys round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let ok = lienthong_bus::conformance::check_structured(&v, "").is_empty();
        let decoded = lienthong_bus::envelope::decode(None, data);
        if ok {
            assert!(decoded.is_ok(), "conformant but unreadable: {decoded:?}");
        }
    }
    let headers = binary_headers(data);
    let _ = lienthong_bus::envelope::decode(Some(&headers), data);
    let text = String::from_utf8_lossy(data);
    let _ = lienthong_bus::subject::read_token(&text);
    let token = lienthong_bus::subject::encode_key(&text);
    assert_eq!(lienthong_bus::subject::decode_key(&token).unwrap(), text);
});

/// Binary-mode headers made from the input's lines (`name: value`).
fn binary_headers(data: &[u8]) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert("ce-specversion", "1.0");
    for line in String::from_utf8_lossy(data).lines().take(16) {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            // Values as an HTTP server hands them on: no CR or LF (NATS headers cannot hold them).
            let carried = !v.contains(['\r', '\n']);
            if carried && !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                h.insert(k, v);
            }
        }
    }
    h
}
