//! edXML packages: parse and map whatever arrives; never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = lienthong_adapters::documents::edxml::parse(text) {
            let _ = lienthong_adapters::documents::edxml::to_event(
                &p,
                "2024-01-01T00:00:00+07:00".parse().unwrap(),
                data,
            );
        }
    }
});
