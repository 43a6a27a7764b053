//! Agencies: who may read which stream, as data.
//!
//! An agency is granted streams (and, within them, subject filters). The grant is an event
//! on the `AGENCIES` stream ([`events`]); the agency's password hashes are in the
//! operator-only KV bucket `AGENCY_ACCESS`. From those two, each server's configuration agent
//! ([`agent`]) renders the server's accounts ([`accounts`]) and reloads it: no restart, no
//! hand edit, and on a cluster every server's agent does the same from the same registry.
//!
//! Each agency has **an account of its own**, `agency-<name>`, and in it a copy of each
//! granted stream, under the same name, that the server keeps filled from the bus's stream
//! (a JetStream source across accounts, only the granted subjects). The bus account exports
//! to that account the creation of consumers with exactly the granted filters and nothing
//! else, so the grant is enforced by the server. Inside its account an agency may create,
//! use and delete consumers freely: no other role can see, read, acknowledge, change or delete
//! them, because no other role is in that account. Revoking removes the account: the server
//! closes the agency's connections at the reload. See `docs/agencies.md`.

pub mod accounts;
pub mod admin;
pub mod agent;
pub mod events;

use serde::{Deserialize, Serialize};

use crate::error::{BusError, Result};
use crate::registry;

pub use events::{AgencyRecord, AgencyRegistry, Subscription};

/// The prefix of agencies' accounts and users.
pub const PREFIX: &str = "agency-";
/// The bus account's JetStream API, as agencies' accounts import it.
pub const BUS_API_PREFIX: &str = "$JS.EGOV.API";

/// The account (and the user) of agency `name`: `agency-<name>`.
pub fn account(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The administrator of agency `name`'s account: creates its copies of the granted streams
/// and runs its webhook subscriptions. Held by the operator, never by the agency.
pub fn admin_user(name: &str) -> String {
    format!("admin-{PREFIX}{name}")
}

/// Where the bus account delivers the copies' messages for agency `name`.
pub fn deliver_prefix(name: &str) -> String {
    format!("lienthong.deliver.{}", account(name))
}

/// Checks an agency name: 1 to 32 of `a–z 0–9 -`, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BusError::Config(format!(
            "agency name {name:?}: use 1 to 32 lower-case letters, digits and `-`, starting with a letter (e.g. `health`)"
        )))
    }
}

/// One stream granted to an agency: all of it, or only the subjects matching `subjects`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub stream: String,
    /// Subject filters within the stream; empty: the whole stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
}

impl Grant {
    /// The filters the copy is made with (the whole stream's subjects when none given).
    pub fn filters(&self) -> Vec<String> {
        if self.subjects.is_empty() {
            registry::subsystem_of_stream(&self.stream)
                .map(|s| vec![s.subjects()])
                .unwrap_or_default()
        } else {
            self.subjects.clone()
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.subjects.is_empty() {
            write!(f, "{}", self.stream)
        } else {
            write!(f, "{} ({})", self.stream, self.subjects.join(", "))
        }
    }
}

/// Builds grants from `--streams A,B` and `--subjects FILTER`s: each filter goes to the
/// stream whose subjects contain it.
pub fn grants(streams: &[String], subjects: &[String]) -> Result<Vec<Grant>> {
    let mut out: Vec<Grant> = Vec::new();
    for s in streams {
        let s = s.trim().to_ascii_uppercase();
        if s.is_empty() || out.iter().any(|g| g.stream == s) {
            continue;
        }
        out.push(Grant {
            stream: s,
            subjects: Vec::new(),
        });
    }
    for filter in subjects {
        let owner = out.iter_mut().find(|g| {
            registry::subsystem_of_stream(&g.stream)
                .is_some_and(|s| filter.starts_with(&format!("egov.{}.", s.name)))
        });
        match owner {
            Some(g) => g.subjects.push(filter.clone()),
            None => {
                return Err(BusError::Config(format!(
                    "subject filter {filter:?} is in none of the streams granted ({}); a filter starts with egov.<subsystem>. of a granted stream",
                    out.iter().map(|g| g.stream.as_str()).collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }
    check_grants(&out)?;
    Ok(out)
}

/// Checks grants: streams agencies may be granted, well-formed filters inside the stream's
/// subjects, no two filters of a stream overlapping (a message would be copied twice).
pub fn check_grants(grants: &[Grant]) -> Result<()> {
    if grants.is_empty() {
        return Err(BusError::Config(format!(
            "grant at least one stream: {}",
            registry::grantable_streams().join(", ")
        )));
    }
    for g in grants {
        let Some(sub) = registry::subsystem_of_stream(&g.stream).filter(|s| s.grantable) else {
            return Err(BusError::Config(format!(
                "stream {} may not be granted to agencies; these may: {}",
                g.stream,
                registry::grantable_streams().join(", ")
            )));
        };
        for f in &g.subjects {
            check_filter(f, sub.name)?;
        }
        for (i, a) in g.subjects.iter().enumerate() {
            for b in &g.subjects[i + 1..] {
                if overlap(a, b) {
                    return Err(BusError::Config(format!(
                        "subject filters {a:?} and {b:?} of {} overlap; give filters that do not",
                        g.stream
                    )));
                }
            }
        }
    }
    Ok(())
}

fn check_filter(filter: &str, subsystem: &str) -> Result<()> {
    let tokens: Vec<&str> = filter.split('.').collect();
    let bad = |why: &str| {
        Err(BusError::Config(format!(
            "subject filter {filter:?}: {why} (e.g. egov.{subsystem}.report.*.resolved or egov.{subsystem}.>)"
        )))
    };
    if tokens.len() < 3 || tokens[0] != "egov" || tokens[1] != subsystem {
        return bad(&format!("it must start with egov.{subsystem}."));
    }
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() || t.chars().any(|c| c.is_whitespace()) {
            return bad("empty token or white space");
        }
        if *t == ">" && i + 1 != tokens.len() {
            return bad("`>` may only be the last token");
        }
        if t.len() > 1 && (t.contains('*') || t.contains('>')) {
            return bad("`*` and `>` stand alone as tokens");
        }
    }
    Ok(())
}

/// Whether every subject `inner` matches, `outer` matches too.
pub fn covers(outer: &str, inner: &str) -> bool {
    let (o, i): (Vec<&str>, Vec<&str>) = (outer.split('.').collect(), inner.split('.').collect());
    for k in 0.. {
        match (o.get(k), i.get(k)) {
            (Some(&">"), Some(_)) => return true,
            (None, None) => return true,
            (None, _) | (_, None) => return false,
            (Some(_), Some(&">")) => return false,
            (Some(&"*"), Some(_)) => continue,
            (Some(_), Some(&"*")) => return false,
            (Some(x), Some(y)) if x == y => continue,
            _ => return false,
        }
    }
    unreachable!()
}

/// Whether some subject matches both filters.
pub fn overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0.. {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (None, None) => return true,
            (None, _) | (_, None) => return false,
            (Some(x), Some(y)) if x == y || *x == "*" || *y == "*" => continue,
            _ => return false,
        }
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["health", "agency2", "so-y-te"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Health", "2health", "a.b", "a b", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(account("health"), "agency-health");
        assert_eq!(admin_user("health"), "admin-agency-health");
    }

    #[test]
    fn grants_are_read_from_the_command_line_and_checked() {
        let g = grants(
            &["field_reports".into(), "OPEN_DATA".into()],
            &["egov.field_reports.report.*.resolved".into()],
        )
        .unwrap();
        assert_eq!(g[0].stream, "FIELD_REPORTS");
        assert_eq!(g[0].filters(), vec!["egov.field_reports.report.*.resolved"]);
        assert_eq!(g[1].filters(), vec!["egov.open_data.>"]);
        // Not grantable, not a stream, a filter outside, overlapping filters.
        assert!(grants(&["DLQ".into()], &[]).is_err());
        assert!(grants(&["NOPE".into()], &[]).is_err());
        assert!(grants(&["SSO".into()], &["egov.documents.>".into()]).is_err());
        assert!(grants(
            &["SSO".into()],
            &["egov.sso.>".into(), "egov.sso.session.*.started".into()]
        )
        .is_err());
        assert!(grants(&["SSO".into()], &["egov.sso.a>.b".into()]).is_err());
        assert!(grants(&[], &[]).is_err());
    }

    #[test]
    fn a_filter_covers_another_when_it_matches_everything_the_other_does() {
        assert!(covers("egov.a.>", "egov.a.b.*.c"));
        assert!(covers("egov.a.*.*.c", "egov.a.b.k.c"));
        assert!(!covers("egov.a.b.*.c", "egov.a.*.*.c"));
        assert!(!covers("egov.a.b", "egov.a.>"));
        assert!(covers("egov.a.b", "egov.a.b"));
        assert!(!covers("egov.a.b.*.reopened", "egov.a.b.*.submitted"));
    }

    #[test]
    fn filters_overlap_when_a_subject_matches_both() {
        assert!(overlap("egov.a.>", "egov.a.b.c"));
        assert!(overlap("egov.a.*.c", "egov.a.b.*"));
        assert!(!overlap("egov.a.*.c", "egov.a.b.d"));
        assert!(!overlap("egov.a.b", "egov.a.b.c"));
        assert!(overlap("egov.a.b", "egov.a.b"));
    }
}
