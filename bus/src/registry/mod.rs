//! The subsystem registry: each subsystem of the city described once.
//!
//! A subsystem's name, stream, subjects, adapter role, audit coverage, whether agencies may be
//! granted it, its read models and its KPI section are written here and nowhere else. Streams
//! ([`crate::topology`]), roles and the server's permissions ([`crate::roles`]), the audited
//! streams, the ingress's allow list, the command-line help and the AsyncAPI catalogue
//! ([`crate::catalog`]) are derived from it. Its event types are the schemas under
//! `schemas/<name>/` ([`crate::schema`]). `tests/registry.rs` cross-checks this description
//! against the server configuration actually used, the provisioned streams, the schemas
//! folder and the replay service's read models.
//!
//! Subsystems are compiled in ([`SUBSYSTEMS`]) or **registered on the running bus**
//! (`lienthong subsystem register`, [`live`]); [`subsystems`] and every function here answer
//! for both, and everything above is derived from them.
//!
//! Adding a subsystem: see `docs/adding-a-subsystem.md` (compiled) and
//! `docs/registering-a-subsystem.md` (at run time).

pub mod admin;
pub mod live;
pub mod spec;

/// One subsystem of the city.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsystem {
    /// The `<subsystem>` of event types `vn.egov.<name>.…` and subjects `egov.<name>.…`; also
    /// the folder of its schemas (`schemas/<name>/`) and its adapter (`adapter-<name>`).
    pub name: &'static str,
    /// The JetStream stream holding its events (subjects `egov.<name>.>`).
    pub stream: &'static str,
    /// What it is, in English (help texts, stream description, catalogue).
    pub title: &'static str,
    /// What it is, in Vietnamese (catalogue, dashboard).
    pub title_vi: &'static str,
    /// The formats its adapter reads.
    pub formats: &'static str,
    /// The CloudEvents `source` its adapter uses unless configured otherwise.
    pub default_source: &'static str,
    /// Its stream is hash-chained and covered by signed checkpoints.
    pub audited: bool,
    /// Agencies may be granted its stream.
    pub grantable: bool,
    /// The read models folded from its stream (names of the replay service's projections).
    pub projections: &'static [&'static str],
    /// Its section of `GET /api/v1/kpi`, if it has one.
    pub kpi_section: Option<&'static str>,
    /// Its page under `docs/`.
    pub docs: &'static str,
}

impl Subsystem {
    /// Every subject of its stream: `egov.<name>.>`.
    pub fn subjects(&self) -> String {
        format!("egov.{}.>", self.name)
    }

    /// The role its adapter connects as.
    pub fn adapter_role(&self) -> String {
        format!("adapter-{}", self.name)
    }

    /// Subjects of its dead letters: `egov.dlq.<name>.>`.
    pub fn dead_letter_subjects(&self) -> String {
        format!("egov.dlq.{}.>", self.name)
    }
}

/// The subsystems on the bus.
pub const SUBSYSTEMS: &[Subsystem] = &[
    Subsystem {
        name: "documents",
        stream: "DOCUMENTS",
        title: "Document management and exchange",
        title_vi: "Quản lý văn bản và điều hành",
        formats:
            "edXML (QCVN 102:2016) packages and status messages; the document register (JSON lines)",
        default_source: "urn:lienthong:phanthiet:documents",
        audited: true,
        grantable: true,
        projections: &["documents"],
        kpi_section: Some("documents"),
        docs: "docs/documents.md",
    },
    Subsystem {
        name: "sso",
        stream: "SSO",
        title: "Central sign-on (pseudonymised)",
        title_vi: "Hệ thống xác thực tập trung",
        formats: "Keycloak user and admin events",
        default_source: "urn:lienthong:phanthiet:sso",
        audited: true,
        grantable: true,
        projections: &["sso"],
        kpi_section: Some("sso"),
        docs: "docs/sign-on.md",
    },
    Subsystem {
        name: "field_reports",
        stream: "FIELD_REPORTS",
        title: "Citizen field reports",
        title_vi: "Phản ánh hiện trường",
        formats: "Open311 GeoReport v2 with servicerequestupdates",
        default_source: "urn:lienthong:phanthiet:field_reports",
        audited: true,
        grantable: true,
        projections: &["field_reports"],
        kpi_section: Some("field_reports"),
        docs: "docs/field-reports.md",
    },
    Subsystem {
        name: "open_data",
        stream: "OPEN_DATA",
        title: "Open data catalogue",
        title_vi: "Cổng dữ liệu mở",
        formats: "CKAN Action API (package_search)",
        default_source: "urn:lienthong:phanthiet:open_data",
        audited: true,
        grantable: true,
        projections: &["open_data"],
        kpi_section: Some("open_data"),
        docs: "docs/open-data.md",
    },
    Subsystem {
        name: "meetings",
        stream: "MEETINGS",
        title: "Online meetings with the wards and communes",
        title_vi: "Họp trực tuyến",
        formats: "BigBlueButton webhooks (bbb-webhooks 3.x); Jitsi prosody event_sync",
        default_source: "urn:lienthong:phanthiet:meetings",
        audited: true,
        grantable: true,
        projections: &["meetings"],
        kpi_section: Some("meetings"),
        docs: "docs/meetings.md",
    },
];

/// A stream of the bus itself, not of a subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemStream {
    pub name: &'static str,
    /// The `<name>` of its subjects `egov.<name>.>`.
    pub subject_root: &'static str,
    pub title: &'static str,
    pub title_vi: &'static str,
    pub audited: bool,
}

/// The dead-letter stream.
pub const DLQ: SystemStream = SystemStream {
    name: "DLQ",
    subject_root: "dlq",
    title: "Input that failed validation, with the reasons; never dropped",
    title_vi: "Dữ liệu không hợp lệ và lý do",
    audited: true,
};

/// The signed hash-chain checkpoints.
pub const AUDIT: SystemStream = SystemStream {
    name: "AUDIT",
    subject_root: "audit",
    title: "Signed hash-chain checkpoints",
    title_vi: "Điểm kiểm tra chuỗi băm có chữ ký",
    audited: false,
};

/// The agency registry: who was granted what, when, by whom; webhook subscriptions and
/// their state. Its events are the only record of agencies (`lienthong agency …`).
pub const AGENCIES: SystemStream = SystemStream {
    name: "AGENCIES",
    subject_root: "agencies",
    title: "Agencies: grants, revocations, credential rotations and webhook subscriptions",
    title_vi: "Cơ quan: cấp quyền, thu hồi, đổi mật khẩu và đăng ký nhận sự kiện",
    audited: true,
};

/// The subsystems registered on the running bus and their schema versions: who registered
/// what, when ([`live`]).
pub const REGISTRY: SystemStream = SystemStream {
    name: "REGISTRY",
    subject_root: "registry",
    title: "Subsystems registered on the running bus and their schema versions",
    title_vi: "Phân hệ đăng ký trên trục và các phiên bản lược đồ",
    audited: true,
};

/// The bus's own streams.
pub const SYSTEM_STREAMS: &[SystemStream] = &[DLQ, AUDIT, AGENCIES, REGISTRY];

/// Every subsystem: the compiled ones, then those registered on the running bus (as far as
/// this process has read `REGISTRY`).
pub fn subsystems() -> Vec<&'static Subsystem> {
    SUBSYSTEMS.iter().chain(live::subsystems()).collect()
}

/// The subsystem named `name` (on the publish path: nothing is allocated).
pub fn subsystem(name: &str) -> Option<&'static Subsystem> {
    SUBSYSTEMS
        .iter()
        .find(|s| s.name == name)
        .or_else(|| live::find(|s| s.name == name))
}

/// The subsystem whose stream is `stream`.
pub fn subsystem_of_stream(stream: &str) -> Option<&'static Subsystem> {
    SUBSYSTEMS
        .iter()
        .find(|s| s.stream == stream)
        .or_else(|| live::find(|s| s.stream == stream))
}

/// Every stream, subsystems' first.
pub fn stream_names() -> Vec<&'static str> {
    subsystems()
        .into_iter()
        .map(|s| s.stream)
        .chain(SYSTEM_STREAMS.iter().map(|s| s.name))
        .collect()
}

/// The streams whose history is chained and checkpointed, in a fixed order (registered
/// subsystems' after the compiled ones and the bus's own, in the order of registration).
pub fn audited_streams() -> Vec<&'static str> {
    SUBSYSTEMS
        .iter()
        .filter(|s| s.audited)
        .map(|s| s.stream)
        .chain(SYSTEM_STREAMS.iter().filter(|s| s.audited).map(|s| s.name))
        .chain(
            live::subsystems()
                .into_iter()
                .filter(|s| s.audited)
                .map(|s| s.stream),
        )
        .collect()
}

/// The streams agencies may be granted.
pub fn grantable_streams() -> Vec<&'static str> {
    subsystems()
        .into_iter()
        .filter(|s| s.grantable)
        .map(|s| s.stream)
        .collect()
}

/// `a, b and c` lists for help texts (the compiled subsystems: help is written before the
/// bus is reached).
pub fn names_for_help() -> String {
    SUBSYSTEMS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_streams_and_roles_are_unique_and_well_formed() {
        let mut names = std::collections::BTreeSet::new();
        let mut streams = std::collections::BTreeSet::new();
        for s in SUBSYSTEMS {
            assert!(names.insert(s.name), "{} twice", s.name);
            assert!(streams.insert(s.stream), "{} twice", s.stream);
            assert!(
                s.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}: lower-case letters and `_` only (it is a subject token and a type part)",
                s.name
            );
            assert!(s
                .stream
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'));
            assert!(s.default_source.parse::<url::Url>().is_ok());
        }
        for s in SYSTEM_STREAMS {
            assert!(streams.insert(s.name), "{} twice", s.name);
            assert!(subsystem(s.subject_root).is_none());
        }
        assert_eq!(subsystem_of_stream("MEETINGS").unwrap().name, "meetings");
        assert!(audited_streams().contains(&"DLQ"));
        assert!(!audited_streams().contains(&"AUDIT"));
    }
}
