//! Meeting webhooks: BigBlueButton posts and Jitsi event_sync bodies; never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lienthong_adapters::meetings::mapping::{MapContext, Mapped};
use lienthong_adapters::meetings::{bbb, jitsi};

fuzz_target!(|data: &[u8]| {
    let ctx = MapContext {
        pseudonymizer: lienthong_adapters::pseudonym::Pseudonymizer::new(b"fuzzing-key-0123456789")
            .unwrap(),
        wards: lienthong_adapters::Wards::phan_thiet(),
        host_organ: "UBND thành phố Phan Thiết".into(),
        city_unit: "ubnd-phanthiet".into(),
    };
    if let Ok(events) = bbb::parse_post(data) {
        for e in &events {
            let _ = bbb::map_event(e, &ctx);
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut rooms = jitsi::Rooms::default();
        for path in jitsi::PATHS {
            if let Mapped::Events(_) = jitsi::map_post(path, &v, &mut rooms, &ctx) {}
        }
        let _ = bbb::map_event(&v, &ctx);
    }
});
