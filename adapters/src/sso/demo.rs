//! The demo city's sign-on: ~12,000 registered users and a year of sign-ins (Keycloak user
//! events, pushed once to the adapter's webhook) and account administration (admin events,
//! served by the Keycloak simulator and polled), fixtures included.

use chrono::{DateTime, Duration, TimeZone, Utc};
use lienthong_bus::Shutdown;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::adapter::AdminApiConfig;
use super::simulator::{fixture_admin_events, fixture_user_events, push_user_events};
use super::{KeycloakSimulator, SsoConfig};
use crate::demo::{free_addr, listener, scaled, task, tz, wait_until_up, DemoPart, DemoSettings};
use crate::error::AdapterError;
use crate::AdapterConfig;

/// The year's user events and admin events, fixtures first.
pub fn year(settings: &DemoSettings) -> (Vec<Value>, Vec<Value>) {
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(1));
    let (mut users, mut admins) = (fixture_user_events(), fixture_admin_events());
    let (u, a) = sign_on(&mut rng, settings.year, settings.scale);
    users.extend(u);
    admins.extend(a);
    (users, admins)
}

pub async fn start(settings: DemoSettings, shutdown: Shutdown) -> Result<DemoPart, AdapterError> {
    let (users, admins) = year(&settings);
    let totals = totals(&users, &admins, settings.year);
    let (key_file, _) = settings.secret("sso-pseudonymization.key")?;
    let (token_file, token) = settings.secret("sso-webhook.token")?;
    let (client_secret_file, client_secret) = settings.secret("keycloak-client.secret")?;
    let kc = KeycloakSimulator::new(admins, "lienthong", &client_secret);
    let (l, kc_url) = listener().await?;
    let serve = kc.serve(l, shutdown.signalled());
    let webhook = free_addr()?;
    let feed = (!settings.done("sso-pushed")).then(|| {
        let url = format!("http://{webhook}/keycloak/events");
        let health = format!("http://{webhook}/healthz");
        let settings = settings.clone();
        Box::pin(async move {
            wait_until_up(&health).await?;
            push_user_events(&url, Some(&token), &users, 500).await?;
            settings.mark_done("sso-pushed")?;
            tracing::info!(
                events = users.len(),
                "pushed the demo's sign-on events to the webhook"
            );
            Ok(())
        }) as crate::demo::Feed
    });
    Ok(DemoPart {
        subsystem: "sso",
        config: AdapterConfig::Sso(SsoConfig {
            source: "urn:lienthong:phanthiet:sso".into(),
            instance: None,
            realm: "binhthuan".into(),
            pseudonymization_key_file: key_file,
            listen: Some(webhook),
            push_token_file: Some(token_file),
            admin_api: Some(AdminApiConfig {
                base_url: kc_url
                    .parse()
                    .map_err(|e| AdapterError::Config(format!("{kc_url}: {e}")))?,
                client_id: "lienthong".into(),
                client_secret_file,
                poll_interval_secs: 10,
                page_size: 100,
            }),
        }),
        totals,
        tasks: vec![task("simulator keycloak", serve)],
        feed,
        lines: vec![format!("  Keycloak simulator {kc_url}admin/realms/binhthuan/admin-events  (webhook: http://{webhook}/keycloak/events)")],
    })
}

/// The sign-on totals, counted from the raw Keycloak events: accounts registered minus
/// deleted, sign-ins, failures, lockouts, distinct users who signed in during the year.
pub fn totals(users: &[Value], admins: &[Value], year: i32) -> Value {
    let (mut logins, mut login_failures, mut lockouts) = (0usize, 0usize, 0usize);
    let mut registered = std::collections::BTreeSet::new();
    let mut deleted = std::collections::BTreeSet::new();
    let mut active = std::collections::BTreeSet::new();
    let local_year = |ms: i64| {
        DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz()).format("%Y").to_string())
    };
    for e in users {
        let user = e["userId"].as_str().map(str::to_string);
        match e["type"].as_str() {
            Some("REGISTER") => registered.extend(user),
            Some("DELETE_ACCOUNT") => deleted.extend(user),
            Some("LOGIN") => {
                logins += 1;
                if local_year(e["time"].as_i64().unwrap_or(0)) == Some(year.to_string()) {
                    active.extend(user);
                }
            }
            Some("LOGIN_ERROR") => login_failures += 1,
            Some("USER_DISABLED_BY_TEMPORARY_LOCKOUT" | "USER_DISABLED_BY_PERMANENT_LOCKOUT") => {
                lockouts += 1
            }
            _ => {}
        }
    }
    for e in admins {
        let user = e["resourcePath"]
            .as_str()
            .and_then(|p| p.strip_prefix("users/"))
            .map(|p| p.split('/').next().unwrap_or(p).to_string());
        match (e["resourceType"].as_str(), e["operationType"].as_str()) {
            (Some("USER"), Some("CREATE")) => registered.extend(user),
            (Some("USER"), Some("DELETE")) => deleted.extend(user),
            _ => {}
        }
    }
    json!({
        "registered_users": registered.iter().filter(|u| !deleted.contains(*u)).count(),
        "logins": logins,
        "login_failures": login_failures,
        "lockouts": lockouts,
        "active_users": active.len(),
    })
}

const CLIENTS: &[(&str, u32)] = &[
    ("phananh-app", 45),
    ("qlvb", 35),
    ("dichvucong", 15),
    ("hop-truc-tuyen", 5),
];

fn sign_on(rng: &mut StdRng, year: i32, scale: f64) -> (Vec<Value>, Vec<Value>) {
    let realm = "binhthuan";
    let registered = scaled(12_150, scale);
    let deleted = scaled(150, scale);
    let mut users: Vec<(String, DateTime<Utc>)> = Vec::with_capacity(registered);
    let mut events = Vec::new();
    let first = Utc
        .with_ymd_and_hms(year - 3, 1, 1, 0, 0, 0)
        .single()
        .expect("date");
    let span = (Utc
        .with_ymd_and_hms(year, 12, 1, 0, 0, 0)
        .single()
        .expect("date")
        - first)
        .num_seconds();
    let mut seq = 0u64;
    let mut next_id = |rng: &mut StdRng, kind: &str| {
        seq += 1;
        format!("{:x}-{kind}-{:x}", seq, rng.random::<u32>())
    };
    for i in 0..registered {
        let user = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            rng.random::<u32>(),
            i,
            i % 4096,
            rng.random_range(0..4096),
            rng.random::<u64>() & 0xffff_ffff_ffff
        );
        let at = first + Duration::seconds(rng.random_range(0..span));
        let ip = format!("203.0.113.{}", rng.random_range(1..255));
        events.push(json!({"id": next_id(rng, "register"), "time": at.timestamp_millis(), "type": "REGISTER", "realmId": realm,
            "clientId": "phananh-app", "userId": user, "sessionId": null, "ipAddress": ip,
            "details": {"auth_method": "openid-connect", "register_method": "form", "username": format!("nguoidung{i}"),
                        "email": format!("nguoidung{i}@example.com"), "first_name": "Người", "last_name": format!("Dùng {i}")}}));
        users.push((user, at));
    }
    let mut admin = Vec::new();
    for (n, (user, at)) in users.iter().take(deleted).enumerate() {
        let when = *at + Duration::days(rng.random_range(30..300));
        admin.push(json!({"id": format!("adm-demo-{n}"), "time": when.timestamp_millis(), "realmId": realm,
            "authDetails": {"realmId": "master", "clientId": "admin-cli", "userId": "admin-0001", "ipAddress": "198.51.100.2"},
            "operationType": "DELETE", "resourceType": "USER", "resourcePath": format!("users/{user}")}));
    }

    // Activity in the year, by users registered before the moment and not deleted.
    let living = &users[deleted..];
    // The local (UTC+7) year, so that every sign-in falls within it in Phan Thiết.
    let start = Utc
        .with_ymd_and_hms(year - 1, 12, 31, 17, 0, 0)
        .single()
        .expect("date");
    let year_seconds = 365 * 86_400 - 3_600;
    let logins = scaled(25_000, scale);
    for _ in 0..logins {
        let at = start + Duration::seconds(rng.random_range(0..year_seconds));
        let (user, since) = &living[rng.random_range(0..living.len())];
        if *since > at {
            continue;
        }
        let client = {
            let total: u32 = CLIENTS.iter().map(|c| c.1).sum();
            let mut x = rng.random_range(0..total);
            CLIENTS
                .iter()
                .find(|c| {
                    if x < c.1 {
                        true
                    } else {
                        x -= c.1;
                        false
                    }
                })
                .map(|c| c.0)
                .unwrap_or("qlvb")
        };
        let session = format!("sess-{:016x}", rng.random::<u64>());
        let ip = format!("198.51.100.{}", rng.random_range(1..255));
        if rng.random_bool(0.05) {
            events.push(json!({"id": next_id(rng, "login_error"), "time": (at - Duration::seconds(20)).timestamp_millis(), "type": "LOGIN_ERROR",
                "realmId": realm, "clientId": client, "userId": user, "sessionId": null, "ipAddress": ip,
                "details": {"auth_method": "openid-connect", "username": "someone"}, "error": "invalid_user_credentials"}));
        }
        events.push(json!({"id": next_id(rng, "login"), "time": at.timestamp_millis(), "type": "LOGIN", "realmId": realm, "clientId": client,
            "userId": user, "sessionId": session, "ipAddress": ip, "details": {"auth_method": "openid-connect", "username": "someone"}}));
        events.push(json!({"id": next_id(rng, "code_to_token"), "time": (at + Duration::seconds(1)).timestamp_millis(), "type": "CODE_TO_TOKEN",
            "realmId": realm, "clientId": client, "userId": user, "sessionId": session, "ipAddress": ip,
            "details": {"token_id": format!("tok-{:x}", rng.random::<u64>())}}));
        if rng.random_bool(0.7) {
            events.push(json!({"id": next_id(rng, "logout"), "time": (at + Duration::minutes(rng.random_range(2..120))).timestamp_millis(), "type": "LOGOUT",
                "realmId": realm, "clientId": client, "userId": user, "sessionId": session, "ipAddress": ip, "details": {}}));
        }
    }
    for _ in 0..scaled(40, scale) {
        let (user, _) = &living[rng.random_range(0..living.len())];
        let at = start + Duration::seconds(rng.random_range(0..year_seconds));
        events.push(json!({"id": next_id(rng, "lockout"), "time": at.timestamp_millis(), "type": "USER_DISABLED_BY_TEMPORARY_LOCKOUT",
            "realmId": realm, "clientId": "qlvb", "userId": user, "sessionId": null, "ipAddress": "198.51.100.90", "details": {"username": "x"}}));
    }
    events.sort_by_key(|e| e["time"].as_i64());
    admin.sort_by_key(|e| e["time"].as_i64());
    (events, admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_year_has_about_twelve_thousand_users() {
        let s = DemoSettings::in_data_dir(std::path::Path::new("/nonexistent"), 1.0);
        let (users, admins) = year(&s);
        let t = totals(&users, &admins, 2023);
        let n = t["registered_users"].as_u64().unwrap();
        assert!((11_500..=12_500).contains(&n), "{t}");
    }
}
