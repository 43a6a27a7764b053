//! The demo city's documents: a year of register entries for the city's 23 agencies (93% of
//! non-secret documents sent electronically, ~2% secret ones that never reach the bus) and
//! the edXML packages of one in ten electronic ones, plus the fixtures — dropped once into
//! the adapter's inbox folder.

use chrono::{DateTime, Duration, FixedOffset};
use lienthong_bus::Shutdown;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::DocumentsConfig;
use crate::demo::{agencies, free_addr, moment, scaled, DemoPart, DemoSettings};
use crate::error::AdapterError;
use crate::AdapterConfig;

/// The year's register and packages (file name, XML), fixtures included.
pub fn year(settings: &DemoSettings) -> (Vec<Value>, Vec<(String, String)>) {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let (mut register, mut edxml) =
        register_and_packages(&mut rng, settings.year, settings.scale, &agencies());
    for line in include_str!("../../fixtures/documents/register.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        register.push(serde_json::from_str(line).expect("fixture"));
    }
    for (name, text) in [
        (
            "2023-1245-UBND-VP.edxml",
            include_str!("../../fixtures/documents/edxml/2023-1245-UBND-VP.edxml"),
        ),
        (
            "2023-1245-UBND-VP.revoke.edxml",
            include_str!("../../fixtures/documents/edxml/2023-1245-UBND-VP.revoke.edxml"),
        ),
        (
            "status-03-phu-thuy.edxml",
            include_str!("../../fixtures/documents/edxml/status-03-phu-thuy.edxml"),
        ),
    ] {
        edxml.push((name.to_string(), text.to_string()));
    }
    (register, edxml)
}

pub async fn start(settings: DemoSettings, _shutdown: Shutdown) -> Result<DemoPart, AdapterError> {
    let (register, edxml) = year(&settings);
    let totals = totals(&register, &edxml);
    let inbox = settings.inbox.join("documents");
    let io = |e: std::io::Error| AdapterError::Config(format!("{}: {e}", inbox.display()));
    std::fs::create_dir_all(&inbox).map_err(io)?;
    if !settings.done("documents-written") {
        for (name, xml) in &edxml {
            std::fs::write(inbox.join(name), xml).map_err(io)?;
        }
        let lines: Vec<String> = register.iter().map(|v| v.to_string()).collect();
        std::fs::write(
            inbox.join(format!("register-{}.jsonl", settings.year)),
            lines.join("\n"),
        )
        .map_err(io)?;
        settings.mark_done("documents-written")?;
    }
    let push = free_addr()?;
    let (token_file, _) = settings.secret("documents-push.token")?;
    Ok(DemoPart {
        subsystem: "documents",
        config: AdapterConfig::Documents(DocumentsConfig {
            source: "urn:lienthong:phanthiet:documents".into(),
            inbox: Some(inbox.clone()),
            listen: Some(push),
            push_token_file: Some(token_file),
            poll_interval_secs: 5,
        }),
        totals,
        tasks: Vec::new(),
        feed: None,
        lines: vec![format!(
            "  Documents inbox    {}  (push: http://{push}/edxml, /register)",
            inbox.display()
        )],
    })
}

#[derive(Default)]
struct DocTotals {
    registered: usize,
    withheld: usize,
    outgoing: usize,
    outgoing_electronic: usize,
    edxml_sent: usize,
}

/// The documents' totals, counted from the raw register lines and packages: entries of
/// normal secrecy (published) and secret ones (withheld), outgoing documents and how many went
/// electronically, edXML packages of new documents.
pub fn totals(register: &[Value], edxml: &[(String, String)]) -> Value {
    let mut t = DocTotals::default();
    for r in register {
        if r["secrecy"] != "thuong" {
            t.withheld += 1;
            continue;
        }
        t.registered += 1;
        if r["direction"] == "outgoing" {
            t.outgoing += 1;
            if r["channel"] == "electronic" {
                t.outgoing_electronic += 1;
            }
        }
    }
    t.edxml_sent = edxml
        .iter()
        .filter(|(_, x)| x.contains("<edXML:BussinessDocType>0</edXML:BussinessDocType>"))
        .count();
    json!({
        "registered": t.registered,
        "withheld": t.withheld,
        "outgoing": t.outgoing,
        "outgoing_electronic": t.outgoing_electronic,
        "edxml_sent": t.edxml_sent,
    })
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

fn register_and_packages(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(scale: f64) -> DemoSettings {
        let mut s = DemoSettings::in_data_dir(std::path::Path::new("/nonexistent"), scale);
        s.seed = 1;
        s
    }

    #[test]
    fn the_full_year_sends_over_90_percent_electronically_and_withholds_secrets() {
        let (register, edxml) = year(&settings(1.0));
        let t = totals(&register, &edxml);
        let ratio = t["outgoing_electronic"].as_f64().unwrap() / t["outgoing"].as_f64().unwrap();
        assert!(ratio > 0.9, "electronic share {ratio}");
        assert!(t["withheld"].as_u64().unwrap() > 0);
    }

    #[test]
    fn generated_packages_parse_and_keep_no_staff_details() {
        let (_, edxml) = year(&settings(0.05));
        assert!(!edxml.is_empty());
        for (_, xml) in &edxml {
            let p = crate::documents::edxml::parse(xml).unwrap();
            let e = crate::documents::edxml::to_event(
                &p,
                chrono::Utc::now().fixed_offset(),
                xml.as_bytes(),
            );
            assert!(!e.data.to_string().contains("@example.gov.vn"));
        }
    }
}
