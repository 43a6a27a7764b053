//! Pulled records: Open311 requests and updates, Keycloak events, CKAN datasets, register
//! lines; never panic, secret register lines never publish.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lienthong_adapters::documents::register;
use lienthong_adapters::field_reports::open311::{ServiceRequest, ServiceRequestUpdate};
use lienthong_adapters::field_reports::{fixtures, Mapper};
use lienthong_adapters::open_data::ckan;
use lienthong_adapters::sso::keycloak::{map_admin, map_user, AdminEvent, UserEvent};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = register::secrecy_of(text);
        }
        return;
    };
    let mapper = Mapper::new(
        fixtures::services(),
        lienthong_adapters::Wards::phan_thiet(),
    );
    let requests: Vec<ServiceRequest> = serde_json::from_value(v.clone()).into_iter().collect();
    let updates: Vec<ServiceRequestUpdate> =
        serde_json::from_value(v.clone()).into_iter().collect();
    let _ = mapper.plan(&requests, &updates, &mut Default::default());
    let p = lienthong_adapters::pseudonym::Pseudonymizer::new(b"fuzzing-key-0123456789").unwrap();
    if let Ok(e) = serde_json::from_value::<UserEvent>(v.clone()) {
        let _ = map_user(&e, &p);
    }
    if let Ok(e) = serde_json::from_value::<AdminEvent>(v.clone()) {
        let _ = map_admin(&e, &p);
    }
    if let Ok(pkg) = serde_json::from_value::<ckan::Package>(v.clone()) {
        let _ = ckan::map(&pkg, &Default::default());
    }
    if let Ok(entry) = serde_json::from_value::<register::RegisterEntry>(v.clone()) {
        let secret =
            register::secrecy_of(&v.to_string()).is_some_and(|s| !register::is_public_level(&s));
        if let register::RegisterOutcome::Publish(_) = register::map(&entry) {
            assert!(!secret, "a secret register entry was published");
        }
    }
});
