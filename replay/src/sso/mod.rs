//! `SignOnProjection`: registered users, daily/monthly/yearly active users, sign-ins per
//! client application, failures and lockouts — from pseudonymous references only.
//!
//! Keys: `u/<user_ref>` → [`UserState`]; markers `a/<period>/<user_ref>` with counters
//! `c/active/<period>` (period `YYYY-MM-DD`, `YYYY-MM` or `YYYY`, local time); counters
//! `c/<name>` and `c/logins_by_client/<client>`.

pub mod dataset;
pub mod http;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::projection::{Data, ProjectedEvent, Projection};
use crate::store::{decode_u64, Changes};
use sonic_rs::JsonValueTrait;

pub const NAME: &str = "sso";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub registered: bool,
    pub deleted: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SignOnProjection;

fn counter(name: &str) -> Vec<u8> {
    format!("c/{name}").into_bytes()
}

/// A counter of one month (local time) and application.
fn monthly(month: &str, client: &str, what: &str) -> Vec<u8> {
    format!("m/{month}/{client}/{what}").into_bytes()
}

/// Sign-on activity of one month through one application.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MonthlyActivity {
    pub month: String,
    pub client: String,
    pub logins: u64,
    pub failures: u64,
    /// Distinct users who signed in that month through that application.
    pub active_users: u64,
}

impl Projection for SignOnProjection {
    fn name(&self) -> &'static str {
        NAME
    }
    /// 2: sign-ins, failures and active users per month and application.
    fn version(&self) -> u32 {
        2
    }
    fn stream(&self) -> &'static str {
        "SSO"
    }

    fn apply(&self, changes: &mut Changes<'_>, ev: &ProjectedEvent) -> Result<()> {
        let Some(kind) = ev.ty.strip_prefix("vn.egov.sso.") else {
            return Ok(());
        };
        let d = &ev.data;
        let user = d.get("user_ref").and_then(Data::as_str).map(str::to_string);
        let client = d
            .get("client_id")
            .and_then(Data::as_str)
            .unwrap_or("unknown")
            .to_string();
        let at = d
            .get("at")
            .and_then(Data::as_str)
            .and_then(crate::projection::local_time);
        let user_key = |u: &str| format!("u/{u}").into_bytes();
        match kind {
            "user.registered" => {
                let Some(u) = user else { return Ok(()) };
                let mut st: UserState = changes.get_json(&user_key(&u))?.unwrap_or_default();
                if !st.registered {
                    st.registered = true;
                    changes.add(counter("registrations"), 1)?;
                    if !st.deleted {
                        changes.add(counter("registered_users"), 1)?;
                    }
                }
                changes.put_json(user_key(&u), st)?;
            }
            "account.deleted" => {
                let Some(u) = user else { return Ok(()) };
                let mut st: UserState = changes.get_json(&user_key(&u))?.unwrap_or_default();
                if !st.deleted {
                    st.deleted = true;
                    changes.add(counter("deleted"), 1)?;
                    if st.registered {
                        changes.add(counter("registered_users"), -1)?;
                    }
                }
                changes.put_json(user_key(&u), st)?;
            }
            "session.started" => {
                changes.add(counter("logins"), 1)?;
                changes.add(format!("c/logins_by_client/{client}").into_bytes(), 1)?;
                if let Some(at) = at {
                    let month = at.format("%Y-%m").to_string();
                    changes.add(monthly(&month, &client, "logins"), 1)?;
                    if let Some(u) = &user {
                        let marker = format!("am/{month}/{client}/{u}").into_bytes();
                        if changes.get(&marker)?.is_none() {
                            changes.put(marker, Vec::new());
                            changes.add(monthly(&month, &client, "active_users"), 1)?;
                        }
                    }
                }
                if let (Some(u), Some(at)) = (user, at) {
                    for period in [
                        at.format("%Y-%m-%d").to_string(),
                        at.format("%Y-%m").to_string(),
                        at.format("%Y").to_string(),
                    ] {
                        let marker = format!("a/{period}/{u}").into_bytes();
                        if changes.get(&marker)?.is_none() {
                            changes.put(marker, Vec::new());
                            changes.add(format!("c/active/{period}").into_bytes(), 1)?;
                        }
                    }
                }
            }
            "session.ended" => changes.add(counter("logouts"), 1)?,
            "login.failed" => {
                changes.add(counter("failures"), 1)?;
                changes.add(format!("c/failures_by_client/{client}").into_bytes(), 1)?;
                if let Some(at) = at {
                    let month = at.format("%Y-%m").to_string();
                    changes.add(monthly(&month, &client, "failures"), 1)?;
                }
            }
            "account.locked" => changes.add(counter("lockouts"), 1)?,
            "profile.updated" => changes.add(counter("profile_updates"), 1)?,
            _ => {}
        }
        Ok(())
    }
}

/// `/api/v1/sso/activity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Activity {
    /// Accounts registered and not deleted.
    pub registered_users: u64,
    pub registrations: u64,
    pub deleted: u64,
    pub logins: u64,
    pub logouts: u64,
    pub failures: u64,
    pub lockouts: u64,
    pub profile_updates: u64,
    pub logins_by_client: BTreeMap<String, u64>,
    pub failures_by_client: BTreeMap<String, u64>,
    /// Distinct users who signed in, per day, month and year (local time).
    pub daily_active: BTreeMap<String, u64>,
    pub monthly_active: BTreeMap<String, u64>,
    pub yearly_active: BTreeMap<String, u64>,
}

pub struct SignOnView<'a> {
    pub tree: &'a sled::Tree,
}

impl SignOnView<'_> {
    /// Per month and application, in order.
    pub fn monthly(&self) -> Result<Vec<MonthlyActivity>> {
        let mut rows: BTreeMap<(String, String), MonthlyActivity> = BTreeMap::new();
        for item in self.tree.scan_prefix(b"m/") {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k[2..]).into_owned();
            // `<month>/<client>/<what>`: the client id may itself hold `/`.
            let Some((month, rest)) = key.split_once('/') else {
                continue;
            };
            let Some((client, what)) = rest.rsplit_once('/') else {
                continue;
            };
            let row = rows
                .entry((month.to_string(), client.to_string()))
                .or_insert_with(|| MonthlyActivity {
                    month: month.to_string(),
                    client: client.to_string(),
                    ..Default::default()
                });
            let n = decode_u64(&v);
            match what {
                "logins" => row.logins = n,
                "failures" => row.failures = n,
                "active_users" => row.active_users = n,
                _ => {}
            }
        }
        Ok(rows.into_values().collect())
    }

    pub fn activity(&self) -> Result<Activity> {
        let mut a = Activity::default();
        for item in self.tree.scan_prefix(b"c/") {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k[2..]).into_owned();
            let n = decode_u64(&v);
            if let Some(client) = key.strip_prefix("logins_by_client/") {
                a.logins_by_client.insert(client.to_string(), n);
            } else if let Some(client) = key.strip_prefix("failures_by_client/") {
                a.failures_by_client.insert(client.to_string(), n);
            } else if let Some(period) = key.strip_prefix("active/") {
                match period.len() {
                    10 => a.daily_active.insert(period.to_string(), n),
                    7 => a.monthly_active.insert(period.to_string(), n),
                    _ => a.yearly_active.insert(period.to_string(), n),
                };
            } else {
                let slot = match key.as_str() {
                    "registered_users" => &mut a.registered_users,
                    "registrations" => &mut a.registrations,
                    "deleted" => &mut a.deleted,
                    "logins" => &mut a.logins,
                    "logouts" => &mut a.logouts,
                    "failures" => &mut a.failures,
                    "lockouts" => &mut a.lockouts,
                    "profile_updates" => &mut a.profile_updates,
                    _ => continue,
                };
                *slot = n;
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReadStore;
    use serde_json::json;

    #[test]
    fn registered_and_active_users() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current(NAME).unwrap();
        let mut c = Changes::new(&tree);
        let events = [
            (
                "user.registered",
                json!({"user_ref": "u-a", "client_id": "phananh-app", "at": "2023-01-01T00:00:00Z"}),
            ),
            (
                "user.registered",
                json!({"user_ref": "u-b", "client_id": "phananh-app", "at": "2023-01-01T00:00:00Z"}),
            ),
            (
                "user.registered",
                json!({"user_ref": "u-b", "client_id": "admin-cli", "at": "2023-01-02T00:00:00Z"}),
            ),
            (
                "session.started",
                json!({"user_ref": "u-a", "client_id": "qlvb", "at": "2023-03-01T01:00:00Z"}),
            ),
            (
                "session.started",
                json!({"user_ref": "u-a", "client_id": "qlvb", "at": "2023-03-01T02:00:00Z"}),
            ),
            (
                "session.started",
                json!({"user_ref": "u-b", "client_id": "phananh-app", "at": "2023-03-01T18:00:00Z"}),
            ),
            (
                "login.failed",
                json!({"user_ref": null, "client_id": "qlvb", "at": "2023-03-01T18:00:00Z"}),
            ),
            (
                "account.locked",
                json!({"user_ref": "u-b", "client_id": "qlvb", "at": "2023-03-02T18:00:00Z"}),
            ),
            (
                "account.deleted",
                json!({"user_ref": "u-b", "client_id": "admin-cli", "at": "2023-04-01T00:00:00Z"}),
            ),
        ];
        for (i, (kind, data)) in events.iter().enumerate() {
            let ev = ProjectedEvent {
                ty: format!("vn.egov.sso.{kind}"),
                id: format!("{i}"),
                source: "s".into(),
                key: None,
                time: None,
                data: crate::projection::data_of(data),
                version: 1,
                sequence: i as u64 + 1,
            };
            SignOnProjection.apply(&mut c, &ev).unwrap();
        }
        c.commit(9).unwrap();
        let a = SignOnView { tree: &tree }.activity().unwrap();
        assert_eq!(a.registered_users, 1);
        assert_eq!(
            a.registrations, 2,
            "the admin view of the same account counts once"
        );
        assert_eq!(a.logins, 3);
        assert_eq!(a.logins_by_client["qlvb"], 2);
        assert_eq!(
            a.daily_active["2023-03-01"], 1,
            "u-b's 18:00 UTC is the 2nd in Phan Thiết"
        );
        assert_eq!(a.daily_active["2023-03-02"], 1);
        assert_eq!(a.monthly_active["2023-03"], 2);
        assert_eq!(a.yearly_active["2023"], 2);
        assert_eq!((a.failures, a.lockouts, a.deleted), (1, 1, 1));
    }
}
