//! Keycloak events as the sign-on system emits them, and their mapping.
//!
//! User ids (and session ids) are pseudonymised with a keyed HMAC-SHA256, so agencies can
//! count distinct users without learning who they are; without the key the references
//! cannot be reversed or recomputed. Never mapped: usernames, e-mails, names, phone numbers,
//! ID numbers, IP addresses, token ids, redirect URIs, and the admin `representation`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lienthong_bus::{Classification, EventDraft, EventType};
use serde::Deserialize;
use serde_json::{json, Value};

pub use crate::pseudonym::Pseudonymizer;

pub const SUBSYSTEM: &str = "sso";

/// A user event (`org.keycloak.events.Event` as JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEvent {
    pub id: Option<String>,
    /// Milliseconds since the epoch.
    pub time: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub realm_id: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, Value>,
    #[serde(default)]
    pub error: Option<String>,
}

/// An admin event (`org.keycloak.events.admin.AdminEvent` as JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminEvent {
    pub id: Option<String>,
    pub time: i64,
    pub realm_id: String,
    #[serde(default)]
    pub auth_details: Option<AuthDetails>,
    pub operation_type: String,
    pub resource_type: String,
    #[serde(default)]
    pub resource_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthDetails {
    #[serde(default)]
    pub client_id: Option<String>,
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn draft(
    entity: &str,
    action: &str,
    id: String,
    key: &str,
    at: DateTime<Utc>,
    data: Value,
) -> EventDraft {
    EventDraft::new(
        EventType::new(SUBSYSTEM, entity, action),
        id,
        key.to_string(),
        at,
        data,
        Classification::Internal,
    )
}

/// Key of events about no known user (a failed login for an unknown username).
pub const ANONYMOUS: &str = "anonymous";

/// The event for a user event; `None` for event types the bus does not carry
/// (token exchanges, refreshes, …).
pub fn map_user(e: &UserEvent, p: &Pseudonymizer) -> Option<EventDraft> {
    let at = time(e.time);
    let user_ref = e
        .user_id
        .as_deref()
        .map(|u| p.reference("user", &e.realm_id, u));
    let session_ref = e
        .session_id
        .as_deref()
        .map(|s| p.reference("session", &e.realm_id, s));
    let id = format!(
        "kc/{}/{}",
        e.realm_id,
        e.id.clone().unwrap_or_else(|| format!(
            "{}-{}-{}",
            e.time,
            e.kind,
            user_ref.clone().unwrap_or_default()
        ))
    );
    let detail = |k: &str| e.details.get(k).and_then(Value::as_str).map(str::to_string);
    let key = user_ref.clone().unwrap_or_else(|| ANONYMOUS.to_string());
    let base = json!({
        "user_ref": user_ref,
        "realm": e.realm_id,
        "client_id": e.client_id,
        "at": at.to_rfc3339(),
    });
    let with = |mut v: Value, extra: Value| {
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v
    };
    let (entity, action, data) = match e.kind.as_str() {
        "REGISTER" => (
            "user",
            "registered",
            with(
                base,
                json!({"origin": "self", "method": detail("register_method")}),
            ),
        ),
        "LOGIN" => (
            "session",
            "started",
            with(
                base,
                json!({"session_ref": session_ref, "auth_method": detail("auth_method")}),
            ),
        ),
        "LOGOUT" => (
            "session",
            "ended",
            with(base, json!({"session_ref": session_ref})),
        ),
        "LOGIN_ERROR" => (
            "login",
            "failed",
            with(
                base,
                json!({"error": e.error.clone().unwrap_or_else(|| "unknown".into())}),
            ),
        ),
        "USER_DISABLED_BY_TEMPORARY_LOCKOUT" => {
            ("account", "locked", with(base, json!({"permanent": false})))
        }
        "USER_DISABLED_BY_PERMANENT_LOCKOUT" => {
            ("account", "locked", with(base, json!({"permanent": true})))
        }
        "UPDATE_PROFILE" | "UPDATE_EMAIL" | "VERIFY_EMAIL" | "UPDATE_PASSWORD"
        | "UPDATE_CREDENTIAL" => {
            // Which fields changed (`updated_phone` → `phone`), never their values.
            let mut fields: Vec<String> = e
                .details
                .keys()
                .filter_map(|k| k.strip_prefix("updated_").map(str::to_string))
                .collect();
            match e.kind.as_str() {
                "UPDATE_EMAIL" | "VERIFY_EMAIL" => fields.push("email".into()),
                "UPDATE_PASSWORD" | "UPDATE_CREDENTIAL" => fields.push("credential".into()),
                _ => {}
            }
            fields.sort();
            fields.dedup();
            (
                "profile",
                "updated",
                with(base, json!({"origin": "self", "fields": fields})),
            )
        }
        "DELETE_ACCOUNT" => ("account", "deleted", with(base, json!({"origin": "self"}))),
        _ => return None,
    };
    if user_ref.is_none() && !matches!((entity, action), ("login", "failed")) {
        return None; // Nothing to attach it to.
    }
    Some(draft(entity, action, id, &key, at, data))
}

/// The event for an admin event on a user account; `None` for other resources.
pub fn map_admin(e: &AdminEvent, p: &Pseudonymizer) -> Option<EventDraft> {
    let path = e.resource_path.as_deref()?;
    let mut parts = path.split('/');
    if parts.next()? != "users" {
        return None;
    }
    let user = parts.next()?;
    let user_ref = p.reference("user", &e.realm_id, user);
    let at = time(e.time);
    let id = format!(
        "kc-admin/{}/{}",
        e.realm_id,
        e.id.clone().unwrap_or_else(|| format!("{}-{path}", e.time))
    );
    let client_id = e.auth_details.as_ref().and_then(|a| a.client_id.clone());
    let base = |extra: Value| {
        let mut v = json!({"user_ref": user_ref, "realm": e.realm_id, "client_id": client_id, "at": at.to_rfc3339(), "origin": "admin"});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v
    };
    let (entity, action, data) = match (e.resource_type.as_str(), e.operation_type.as_str()) {
        ("USER", "CREATE") => ("user", "registered", base(json!({"method": "admin"}))),
        ("USER", "DELETE") => ("account", "deleted", base(json!({}))),
        ("USER", "UPDATE") => ("profile", "updated", base(json!({"fields": []}))),
        ("REALM_ROLE_MAPPING" | "CLIENT_ROLE_MAPPING", _) => (
            "account",
            "roles_changed",
            base(json!({"operation": e.operation_type.to_lowercase()})),
        ),
        ("GROUP_MEMBERSHIP", _) => (
            "account",
            "groups_changed",
            base(json!({"operation": e.operation_type.to_lowercase()})),
        ),
        _ => return None,
    };
    Some(draft(entity, action, id, &user_ref, at, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Pseudonymizer {
        Pseudonymizer::new(b"test-key-0123456789abcdef").unwrap()
    }

    fn user_events() -> Vec<UserEvent> {
        include_str!("../../fixtures/sso/keycloak-events.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    fn admin_events() -> Vec<AdminEvent> {
        include_str!("../../fixtures/sso/admin-events.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every user and admin event of the fixtures that maps to an event.
    fn mapped_fixtures(p: &Pseudonymizer) -> Vec<EventDraft> {
        let mut events: Vec<EventDraft> = user_events()
            .iter()
            .filter_map(|e| map_user(e, p))
            .collect();
        events.extend(admin_events().iter().filter_map(|e| map_admin(e, p)));
        events
    }

    #[test]
    fn fixtures_map_without_any_personal_value() {
        let p = p();
        let events = mapped_fixtures(&p);
        let types: Vec<String> = events
            .iter()
            .map(|e| format!("{}.{}", e.event_type.entity, e.event_type.action))
            .collect();
        assert!(types.contains(&"user.registered".into()));
        assert!(types.contains(&"session.started".into()));
        assert!(types.contains(&"session.ended".into()));
        assert!(types.contains(&"login.failed".into()));
        assert!(types.contains(&"account.locked".into()));
        assert!(types.contains(&"profile.updated".into()));
        assert!(types.contains(&"account.deleted".into()));
        assert!(
            !types.iter().any(|t| t.contains("token")),
            "CODE_TO_TOKEN is not carried"
        );
        let text = serde_json::to_string(
            &events
                .iter()
                .map(|e| (&e.data, &e.key, &e.id))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for personal in [
            "5f1c2a9e-0b7d-4c55-9a0e-3d2b1e7c9a10",
            "nguyenvanbinh",
            "binh.nv@example.com",
            "Nguyễn Văn",
            "Bình",
            "203.0.113.14",
            "198.51.100",
            "hong.nt",
            "tran.van.an",
            "SECRET-TOKEN-ID-MUST-NOT-LEAK",
            "0905123456",
            "0905000000",
            "pham.thi.lan",
            "048190001234",
            "lan.pt@",
            "c0a80101-6f1e",
            "redirect_uri",
            "representation",
        ] {
            assert!(!text.contains(personal), "{personal} leaked");
        }
        let updated = events
            .iter()
            .find(|e| e.event_type.entity == "profile" && e.data["origin"] == "self")
            .unwrap();
        assert_eq!(updated.data["fields"], json!(["phone"]));
    }

    #[test]
    fn the_same_user_gets_the_same_reference_and_another_key_another() {
        let a = p().reference("user", "binhthuan", "5f1c2a9e");
        assert_eq!(a, p().reference("user", "binhthuan", "5f1c2a9e"));
        assert_ne!(a, p().reference("user", "other-realm", "5f1c2a9e"));
        let other = Pseudonymizer::new(b"another-key-0123456789").unwrap();
        assert_ne!(a, other.reference("user", "binhthuan", "5f1c2a9e"));
        assert!(a.starts_with("u-") && a.len() == 34);
        assert!(Pseudonymizer::new(b"short").is_err());
        // Register (user event) and admin create refer to the same person the same way.
        let reg = map_admin(&admin_events()[0], &p()).unwrap();
        assert_eq!(
            reg.key,
            p().reference("user", "binhthuan", "9c9c9c9c-3333-4ddd-8eee-ffffffffff03")
        );
    }

    #[test]
    fn mapped_fixtures_validate() {
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let p = p();
        let events = mapped_fixtures(&p);
        for e in events {
            let id = registry.schema_id(&e.event_type.to_string(), None).unwrap();
            registry
                .validate(id, &e.data)
                .unwrap_or_else(|f| panic!("{} invalid: {f:?}", e.id));
        }
    }
}
