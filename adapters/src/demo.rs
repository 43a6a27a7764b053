//! A synthetic city year across the four subsystems, in each subsystem's own format, with
//! its totals counted from the raw records (independently of the adapters), so that the
//! KPIs can be checked against them.
//!
//! Shaped on what Phan Thiết reported for 2023: about 12,000 registered sign-on users;
//! over 1,000 field reports, urban issues the most frequent; over 90% of non-secret
//! documents exchanged electronically; 18 wards and communes; a few dozen open datasets.
//! `scale` shrinks everything but the field reports proportionally (tests use small scales).

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::field_reports::Open311Data;
use crate::sso;
use crate::wards::Wards;

/// What the year holds, counted from the raw records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DemoTotals {
    /// Distinct field reports (requests and reports known from updates).
    pub field_reports: usize,
    /// Register entries of normal secrecy (published).
    pub documents_registered: usize,
    /// Register entries classified secret (never published).
    pub documents_withheld: usize,
    /// Outgoing documents of normal secrecy, and how many of them went electronically.
    pub documents_outgoing: usize,
    pub documents_outgoing_electronic: usize,
    /// edXML packages (new documents) exchanged.
    pub edxml_sent: usize,
    /// Accounts registered minus accounts deleted.
    pub registered_users: usize,
    pub logins: usize,
    pub login_failures: usize,
    pub lockouts: usize,
    /// Distinct users who signed in during the year.
    pub active_users: usize,
    /// Datasets public at the end, and withdrawn ones.
    pub datasets_active: usize,
    pub datasets_withdrawn: usize,
}

/// Everything the simulators serve, and the totals.
#[derive(Debug, Clone)]
pub struct CityYear {
    pub field_reports: Open311Data,
    /// Register export lines (raw, secret ones and `registered_by` included).
    pub register: Vec<Value>,
    /// edXML packages: (file name, XML).
    pub edxml: Vec<(String, String)>,
    /// Keycloak user events (raw: usernames, e-mails, IPs included).
    pub sso_user_events: Vec<Value>,
    pub sso_admin_events: Vec<Value>,
    /// CKAN packages.
    pub ckan_packages: Vec<Value>,
    pub totals: DemoTotals,
}

/// QCVN 102 codes of the city's agencies: the city, departments, and the 18 wards.
pub fn agencies() -> Vec<(String, String)> {
    let mut out = vec![
        (
            "000.31.08.H08".to_string(),
            "UBND thành phố Phan Thiết".to_string(),
        ),
        (
            "021.31.08.H08".into(),
            "Phòng Tài nguyên và Môi trường".into(),
        ),
        ("022.31.08.H08".into(), "Phòng Quản lý đô thị".into()),
        ("023.31.08.H08".into(), "Phòng Văn hóa và Thông tin".into()),
        ("024.31.08.H08".into(), "Phòng Tài chính - Kế hoạch".into()),
    ];
    for (i, w) in Wards::phan_thiet().all().iter().enumerate() {
        // Codes as in the fixtures (Mũi Né 008, Phú Thủy 011, Tiến Thành 015).
        let n = match w.slug.as_str() {
            "tien-thanh" => 15,
            "phong-nam" => 18,
            _ => i + 1,
        };
        out.push((
            format!("{n:03}.31.08.H08"),
            format!("UBND {}", w.in_sentence()),
        ));
    }
    out
}

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7")
}

/// Midnight on 1 January of `year` in Phan Thiết (UTC+7).
pub(crate) fn year_start(year: i32) -> DateTime<FixedOffset> {
    tz().from_local_datetime(
        &NaiveDate::from_ymd_opt(year, 1, 1)
            .expect("date")
            .and_hms_opt(0, 0, 0)
            .expect("time"),
    )
    .single()
    .expect("unambiguous")
}

fn moment(rng: &mut StdRng, year: i32) -> DateTime<FixedOffset> {
    year_start(year)
        + Duration::days(rng.random_range(0..365))
        + Duration::minutes(rng.random_range(7 * 60..18 * 60))
        + Duration::seconds(rng.random_range(0..60))
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

/// The year `year` of the city. `scale` 1.0 is the full city.
pub fn generate(year: i32, scale: f64, seed: u64) -> CityYear {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut totals = DemoTotals::default();

    // Field reports: always the full synthetic year plus the fixtures.
    let field_reports = Open311Data::demo(year, 1100, seed);
    let mut ids: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for r in field_reports
        .requests
        .iter()
        .chain(field_reports.updates.iter())
    {
        if let Some(id) = r["service_request_id"].as_str() {
            ids.insert(id.to_string());
        }
    }
    totals.field_reports = ids.len();

    // Documents.
    let agencies = agencies();
    let (mut register, mut edxml) = documents(&mut rng, year, scale, &agencies);
    for line in include_str!("../fixtures/documents/register.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        register.push(serde_json::from_str(line).expect("fixture"));
    }
    for (name, text) in [
        (
            "2023-1245-UBND-VP.edxml",
            include_str!("../fixtures/documents/edxml/2023-1245-UBND-VP.edxml"),
        ),
        (
            "2023-1245-UBND-VP.revoke.edxml",
            include_str!("../fixtures/documents/edxml/2023-1245-UBND-VP.revoke.edxml"),
        ),
        (
            "status-03-phu-thuy.edxml",
            include_str!("../fixtures/documents/edxml/status-03-phu-thuy.edxml"),
        ),
    ] {
        edxml.push((name.to_string(), text.to_string()));
    }
    count_documents(&register, &edxml, &mut totals);

    // Sign-on: the fixtures' events, then the year's.
    let (mut sso_user_events, mut sso_admin_events) = (
        sso::simulator::fixture_user_events(),
        sso::simulator::fixture_admin_events(),
    );
    let (users, admins) = sign_on(&mut rng, year, scale);
    sso_user_events.extend(users);
    sso_admin_events.extend(admins);
    count_sign_on(&sso_user_events, &sso_admin_events, year, &mut totals);

    // Open data.
    let ckan_packages = catalogue(&mut rng, year, &mut totals);

    CityYear {
        field_reports,
        register,
        edxml,
        sso_user_events,
        sso_admin_events,
        ckan_packages,
        totals,
    }
}

const DOC_TYPES: &[(&str, &str, &str)] = &[
    ("1", "Công văn", "UBND"),
    ("2", "Quyết định", "QĐ-UBND"),
    ("3", "Báo cáo", "BC-UBND"),
    ("4", "Tờ trình", "TTr-UBND"),
    ("5", "Thông báo", "TB-UBND"),
    ("6", "Kế hoạch", "KH-UBND"),
];
const SUBJECTS: &[&str] = &[
    "V/v xử lý phản ánh hiện trường trên địa bàn",
    "V/v triển khai kế hoạch chuyển đổi số năm {y}",
    "Báo cáo tình hình kinh tế - xã hội tháng",
    "V/v tăng cường công tác vệ sinh môi trường",
    "V/v kiểm tra trật tự đô thị, lấn chiếm vỉa hè",
    "Thông báo lịch họp trực tuyến với các phường, xã",
    "V/v cập nhật danh mục dữ liệu mở",
    "Kế hoạch phòng, chống thiên tai mùa mưa bão",
];

fn documents(
    rng: &mut StdRng,
    year: i32,
    scale: f64,
    agencies: &[(String, String)],
) -> (Vec<Value>, Vec<(String, String)>) {
    let mut register = Vec::new();
    let mut edxml = Vec::new();
    for (ai, (organ_id, organ_name)) in agencies.iter().enumerate() {
        let yearly = match ai {
            0 => 1500,
            1..=4 => 300,
            _ => 150,
        };
        for n in 1..=scaled(yearly, scale) {
            let at = moment(rng, year);
            let (type_code, type_name, notation) = DOC_TYPES[rng.random_range(0..DOC_TYPES.len())];
            let code = format!("{n}/{notation}");
            let roll: f64 = rng.random();
            let secrecy = if roll < 0.015 {
                "mat"
            } else if roll < 0.02 {
                "toi_mat"
            } else {
                "thuong"
            };
            let electronic = secrecy == "thuong" && rng.random_bool(0.935);
            let recipient =
                &agencies[(ai + 1 + rng.random_range(0..agencies.len() - 1)) % agencies.len()];
            let subject =
                SUBJECTS[rng.random_range(0..SUBJECTS.len())].replace("{y}", &year.to_string());
            let staff = rng.random_range(1..400u32);
            let urgency = ["thuong", "khan", "thuong_khan", "hoa_toc"][rng.random_range(0..4)];
            let register_id = format!("VBDI-{year}-{:02}{n:05}", ai);
            register.push(json!({
                "register_id": register_id, "direction": "outgoing", "organ_id": organ_id, "organ_name": organ_name,
                "code": code, "document_type": type_name,
                "subject": if secrecy == "thuong" { subject.clone() } else { "Nội dung mật".to_string() },
                "promulgation_date": at.date_naive().to_string(),
                "recipients": [{"organ_id": recipient.0, "organ_name": recipient.1}],
                "channel": if electronic { "electronic" } else { "paper" },
                "secrecy": secrecy, "urgency": urgency,
                "registered_at": at.to_rfc3339(),
                "registered_by": {"name": format!("Cán bộ văn thư {staff}"), "email": format!("vanthu{staff}@example.gov.vn"), "phone": format!("09{:08}", staff * 104_729)},
            }));
            if secrecy != "thuong" {
                continue;
            }
            if electronic {
                // The recipient registers it as incoming.
                let received = at + Duration::minutes(rng.random_range(5..240));
                register.push(json!({
                    "register_id": format!("VBDE-{year}-{:02}{n:05}", ai), "direction": "incoming",
                    "organ_id": recipient.0, "organ_name": recipient.1, "code": code, "document_type": type_name,
                    "subject": subject, "promulgation_date": at.date_naive().to_string(),
                    "recipients": [{"organ_id": recipient.0, "organ_name": recipient.1}],
                    "channel": "electronic", "secrecy": "thuong", "urgency": "thuong",
                    "registered_at": received.to_rfc3339(),
                    "registered_by": {"name": format!("Văn thư {staff}"), "email": "vt@example.gov.vn", "phone": "0900000000"},
                }));
                // The package itself, for one in ten.
                if n % 10 == 0 {
                    let document_id = format!("{organ_id},{},{code}", at.format("%Y/%m/%d"));
                    edxml.push((
                        format!("{}-{:02}-{n:05}.edxml", at.format("%Y%m%d"), ai),
                        package(
                            &document_id,
                            organ_id,
                            organ_name,
                            recipient,
                            &code,
                            type_code,
                            type_name,
                            &subject,
                            at,
                            staff,
                        ),
                    ));
                }
            }
        }
    }
    register.sort_by(|a, b| {
        a["registered_at"]
            .as_str()
            .cmp(&b["registered_at"].as_str())
    });
    (register, edxml)
}

#[allow(clippy::too_many_arguments)]
fn package(
    document_id: &str,
    organ_id: &str,
    organ_name: &str,
    to: &(String, String),
    code: &str,
    type_code: &str,
    type_name: &str,
    subject: &str,
    at: DateTime<FixedOffset>,
    staff: u32,
) -> String {
    let (number, notation) = code.split_once('/').unwrap_or((code, ""));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>{organ_id}</edXML:OrganId><edXML:OrganName>{organ_name}</edXML:OrganName><edXML:Email>vanthu@example.gov.vn</edXML:Email></edXML:From>
        <edXML:To><edXML:OrganId>{to_id}</edXML:OrganId><edXML:OrganName>{to_name}</edXML:OrganName></edXML:To>
        <edXML:DocumentId>{document_id}</edXML:DocumentId>
        <edXML:Code><edXML:CodeNumber>{number}</edXML:CodeNumber><edXML:CodeNotation>{notation}</edXML:CodeNotation></edXML:Code>
        <edXML:PromulgationInfo><edXML:Place>Phan Thiết</edXML:Place><edXML:PromulgationDate>{date}</edXML:PromulgationDate></edXML:PromulgationInfo>
        <edXML:DocumentType><edXML:Type>{type_code}</edXML:Type><edXML:TypeName>{type_name}</edXML:TypeName></edXML:DocumentType>
        <edXML:Subject>{subject}</edXML:Subject>
        <edXML:SignerInfo><edXML:Position>Chủ tịch</edXML:Position><edXML:FullName>Người ký {staff}</edXML:FullName></edXML:SignerInfo>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader><edXML:OrganId>{organ_id}</edXML:OrganId><edXML:Timestamp>{ts}</edXML:Timestamp></edXML:TraceHeader>
        <edXML:Bussiness><edXML:DocumentId>{document_id}</edXML:DocumentId><edXML:BussinessDocType>0</edXML:BussinessDocType><edXML:Paper>0</edXML:Paper>
          <edXML:StaffInfo><edXML:Staff>Văn thư {staff}</edXML:Staff><edXML:Email>vt{staff}@example.gov.vn</edXML:Email><edXML:Mobile>0912{staff:06}</edXML:Mobile></edXML:StaffInfo>
        </edXML:Bussiness>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody><edXML:edXMLManifest version="1.0"><edXML:Reference><edXML:ContentId>cid:1</edXML:ContentId><edXML:ContentType>application/pdf</edXML:ContentType><edXML:AttachmentName>{number}.pdf</edXML:AttachmentName></edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded><Attachment><ContentId>cid:1</ContentId><edXML:ContentTransferEncoded xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">JVBERi0xLjQKJcOkw7zDtsOfCg==</edXML:ContentTransferEncoded></Attachment></AttachmentEncoded>
</edXML>
"#,
        to_id = to.0,
        to_name = to.1,
        date = at.format("%Y/%m/%d"),
        ts = at.format("%Y/%m/%d %H:%M:%S"),
    )
}

/// Counts the documents' totals from the raw register lines and packages.
fn count_documents(register: &[Value], edxml: &[(String, String)], totals: &mut DemoTotals) {
    for r in register {
        if r["secrecy"] != "thuong" {
            totals.documents_withheld += 1;
            continue;
        }
        totals.documents_registered += 1;
        if r["direction"] == "outgoing" {
            totals.documents_outgoing += 1;
            if r["channel"] == "electronic" {
                totals.documents_outgoing_electronic += 1;
            }
        }
    }
    totals.edxml_sent = edxml
        .iter()
        .filter(|(_, x)| x.contains("<edXML:BussinessDocType>0</edXML:BussinessDocType>"))
        .count();
}

/// Counts the sign-on totals from the raw Keycloak events.
fn count_sign_on(users: &[Value], admins: &[Value], year: i32, totals: &mut DemoTotals) {
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
                totals.logins += 1;
                if local_year(e["time"].as_i64().unwrap_or(0)) == Some(year.to_string()) {
                    active.extend(user);
                }
            }
            Some("LOGIN_ERROR") => totals.login_failures += 1,
            Some("USER_DISABLED_BY_TEMPORARY_LOCKOUT" | "USER_DISABLED_BY_PERMANENT_LOCKOUT") => {
                totals.lockouts += 1
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
    totals.registered_users = registered.iter().filter(|u| !deleted.contains(*u)).count();
    totals.active_users = active.len();
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

const DATASETS: &[&str] = &[
    "Danh sách trường học",
    "Danh sách cơ sở y tế",
    "Điểm thu gom rác thải",
    "Tuyến xe buýt nội thành",
    "Danh sách chợ truyền thống",
    "Bãi đỗ xe công cộng",
    "Điểm du lịch",
    "Cơ sở lưu trú du lịch",
    "Hệ thống chiếu sáng công cộng",
    "Điểm ngập úng",
    "Dân số theo phường, xã",
    "Ngân sách công khai",
    "Thủ tục hành chính cấp xã",
    "Kết quả giải quyết hồ sơ",
    "Quy hoạch sử dụng đất",
    "Công viên, cây xanh",
];

fn catalogue(rng: &mut StdRng, year: i32, totals: &mut DemoTotals) -> Vec<Value> {
    let mut packages = crate::open_data::simulator::fixture_packages();
    let orgs = [
        (
            "7c2d4e6f-org-ubnd-pt",
            "ubnd-tp-phan-thiet",
            "UBND thành phố Phan Thiết",
        ),
        (
            "9b1e0c2a-org-stttt",
            "so-thong-tin-va-truyen-thong",
            "Sở Thông tin và Truyền thông Bình Thuận",
        ),
    ];
    for i in 0..34 {
        let title = format!(
            "{} {}",
            DATASETS[i % DATASETS.len()],
            if i >= DATASETS.len() {
                format!("({})", year - (i / DATASETS.len()) as i32)
            } else {
                String::new()
            }
        );
        let org = orgs[i % 2];
        let modified = Utc
            .with_ymd_and_hms(year, 1 + (i % 12) as u32, 1 + (i % 27) as u32, 8, 0, 0)
            .single()
            .expect("date");
        let withdrawn = i % 17 == 5;
        let resources: Vec<Value> = (0..rng.random_range(1..4))
            .map(|r| {
                let fmt = ["CSV", "JSON", "XLSX"][r % 3];
                json!({"id": format!("r-demo-{i}-{r}"), "package_id": format!("demo-{i:03}"), "name": format!("data.{}", fmt.to_lowercase()),
                       "format": fmt, "url": format!("https://opendata.example.gov.vn/dataset/demo-{i}/data.{}", fmt.to_lowercase()),
                       "size": rng.random_range(1_000..2_000_000u64), "last_modified": modified.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(), "state": "active"})
            })
            .collect();
        packages.push(json!({
            "id": format!("demo-{i:03}"), "name": format!("du-lieu-mo-{i:03}"), "title": title.trim(),
            "notes": "Dữ liệu mở của thành phố Phan Thiết", "state": if withdrawn { "deleted" } else { "active" }, "private": false,
            "organization": {"id": org.0, "name": org.1, "title": org.2}, "license_id": "cc-by",
            "license_title": "Creative Commons Attribution", "maintainer": "Trung tâm CNTT", "maintainer_email": "opendata@example.gov.vn",
            "author_email": "tacgia@example.gov.vn", "tags": [{"name": "dữ liệu mở"}],
            "metadata_created": Utc.with_ymd_and_hms(year - 1, 6, 1, 8, 0, 0).single().expect("date").format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            "metadata_modified": modified.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(), "resources": resources,
        }));
    }
    for p in &packages {
        if p["state"] == "active" && !p["private"].as_bool().unwrap_or(false) {
            totals.datasets_active += 1;
        } else {
            totals.datasets_withdrawn += 1;
        }
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_year_matches_what_the_city_reported() {
        let y = generate(2023, 1.0, 2023);
        let t = &y.totals;
        assert!((11_500..=12_500).contains(&t.registered_users), "{t:?}");
        assert!(t.field_reports > 1000);
        let ratio = t.documents_outgoing_electronic as f64 / t.documents_outgoing as f64;
        assert!(ratio > 0.9, "electronic share {ratio}");
        assert!(t.documents_withheld > 0);
        assert!((30..=50).contains(&(t.datasets_active + t.datasets_withdrawn)));
        assert_eq!(agencies().len(), 23);
        let codes: std::collections::BTreeSet<_> = agencies().into_iter().map(|a| a.0).collect();
        assert_eq!(codes.len(), 23, "agency codes are unique");
    }

    #[test]
    fn generated_packages_parse_and_keep_no_staff_details() {
        let y = generate(2023, 0.05, 1);
        assert!(!y.edxml.is_empty());
        for (_, xml) in &y.edxml {
            let p = crate::documents::edxml::parse(xml).unwrap();
            let e = crate::documents::edxml::to_event(&p, Utc::now().fixed_offset());
            assert!(!e.data.to_string().contains("@example.gov.vn"));
        }
    }
}
