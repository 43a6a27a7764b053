//! A synthetic year of citizen field reports for Phan Thiết, in raw Open311 form.
//!
//! Shaped on what the city reported for 2023: about a thousand reports from ~12,000
//! registered users, urban issues (lighting, encroachment, flooding — the `Đô thị` group)
//! the most frequent, every one of the 18 wards and communes represented, central wards
//! more than outlying communes. Each report has a lifecycle of updates (received, in
//! progress, fixed, closed; some duplicates, some unfixable, a few reopened; the latest
//! still open). Records carry fake reporter details, as the real feed does, so that tests
//! show the adapter drops them. Deterministic for a given seed.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::wards::Wards;

/// (service code, name, weight) — weights give urban issues the largest share.
const CATEGORIES: &[(&str, &str, u32)] = &[
    ("VSMT", "Vệ sinh môi trường", 24),
    ("CSDT", "Chiếu sáng đô thị", 21),
    ("LCVH", "Lấn chiếm vỉa hè, lòng đường", 19),
    ("HTGT", "Hạ tầng giao thông", 15),
    ("NGAP", "Ngập nước", 13),
    ("ANTT", "An ninh trật tự", 8),
];

const STREETS: &[&str] = &[
    "Trần Hưng Đạo",
    "Nguyễn Tất Thành",
    "Tôn Đức Thắng",
    "Thủ Khoa Huân",
    "Võ Văn Kiệt",
    "Nguyễn Đình Chiểu",
    "Huỳnh Thúc Kháng",
    "Lê Lợi",
    "Trần Phú",
    "Hải Thượng Lãn Ông",
    "Nguyễn Hội",
    "Phạm Văn Đồng",
    "Lê Duẩn",
    "Hùng Vương",
    "Ngư Ông",
];

const DESCRIPTIONS: &[(&str, &[&str])] = &[
    (
        "VSMT",
        &[
            "Rác thải tồn đọng nhiều ngày, bốc mùi",
            "Điểm tập kết rác tự phát",
            "Nước thải chảy ra đường",
        ],
    ),
    (
        "CSDT",
        &[
            "Đèn đường không sáng",
            "Cột đèn nghiêng, nguy hiểm",
            "Đèn chiếu sáng chập chờn",
        ],
    ),
    (
        "LCVH",
        &[
            "Buôn bán lấn chiếm vỉa hè",
            "Quán ăn để bàn ghế dưới lòng đường",
            "Xe đậu chiếm vỉa hè",
        ],
    ),
    (
        "HTGT",
        &["Ổ gà lớn giữa đường", "Nắp cống bị vỡ", "Mặt đường sụt lún"],
    ),
    (
        "NGAP",
        &[
            "Ngập sâu sau mưa",
            "Cống thoát nước bị tắc",
            "Nước không thoát, ngập kéo dài",
        ],
    ),
    (
        "ANTT",
        &[
            "Tụ tập gây ồn ào ban đêm",
            "Đua xe trái phép",
            "Karaoke gây ồn quá giờ",
        ],
    ),
];

/// Relative population weight: central wards report more than outlying communes.
fn ward_weight(slug: &str, kind: &str) -> u32 {
    match slug {
        "phu-thuy" | "phu-trinh" | "duc-long" | "duc-thang" | "thanh-hai" | "mui-ne" => 8,
        _ if kind == "xa" => 2,
        _ => 5,
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut x = rng.random_range(0..total);
    for item in items {
        let w = weight(item);
        if x < w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1]
}

/// A generated year: raw requests and updates.
#[derive(Debug, Clone)]
pub struct SyntheticYear {
    pub requests: Vec<Value>,
    pub updates: Vec<Value>,
}

/// Generates `count` reports in `year`, skipping ids in `taken`.
pub fn generate_year(year: i32, count: usize, seed: u64, taken: &[String]) -> SyntheticYear {
    let mut rng = StdRng::seed_from_u64(seed);
    let wards = Wards::phan_thiet();
    let start = crate::demo::year_start(year);
    let days = if NaiveDate::from_ymd_opt(year, 12, 31)
        .expect("date")
        .leap_year()
    {
        366
    } else {
        365
    };
    let mut requests = Vec::with_capacity(count);
    let mut updates = Vec::new();
    let mut n = 0u32;
    let mut times: Vec<DateTime<FixedOffset>> = (0..count)
        .map(|_| {
            start
                + Duration::days(rng.random_range(0..days))
                + Duration::minutes(rng.random_range(6 * 60..22 * 60))
                + Duration::seconds(rng.random_range(0..60))
        })
        .collect();
    times.sort();
    let mut update_no = 0u32;
    for requested in times {
        let id = loop {
            n += 1;
            let id = format!("PT-{year}-{n:06}");
            if !taken.contains(&id) {
                break id;
            }
        };
        let (code, name, _) = *pick(&mut rng, CATEGORIES, |c| c.2);
        let ward = pick(&mut rng, wards.all(), |w| ward_weight(&w.slug, &w.kind)).clone();
        let street = STREETS[rng.random_range(0..STREETS.len())];
        let texts = DESCRIPTIONS
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, t)| *t)
            .unwrap_or(&["Phản ánh"]);
        let description = format!(
            "{} tại đường {street}",
            texts[rng.random_range(0..texts.len())]
        );
        let ward_name = ward.in_sentence();
        let agency = if code == "VSMT" || code == "NGAP" {
            "Phòng Quản lý đô thị".to_string()
        } else {
            format!("UBND {ward_name}")
        };

        // Lifecycle.
        let mut t = requested;
        let mut steps: Vec<(&str, DateTime<FixedOffset>, &str, &str)> = Vec::new();
        let mut step = |rng: &mut StdRng,
                        t: &mut DateTime<FixedOffset>,
                        lo: i64,
                        hi: i64,
                        status: &'static str,
                        note: &'static str,
                        code: &'static str| {
            *t += Duration::minutes(rng.random_range(lo..hi));
            steps.push((status, *t, note, code));
        };
        step(
            &mut rng,
            &mut t,
            10,
            180,
            "open",
            "Đã tiếp nhận, chuyển đơn vị xử lý",
            "tiep_nhan",
        );
        let roll: f64 = rng.random();
        if roll < 0.05 {
            step(
                &mut rng,
                &mut t,
                30,
                600,
                "duplicate",
                "Trùng với phản ánh đã tiếp nhận",
                "trung_lap",
            );
        } else {
            step(
                &mut rng,
                &mut t,
                60,
                1440,
                "in_progress",
                "Đơn vị đang xử lý",
                "dang_xu_ly",
            );
            if roll < 0.08 {
                step(
                    &mut rng,
                    &mut t,
                    600,
                    4320,
                    "unable_to_fix",
                    "Không thuộc khả năng xử lý, đã báo cáo cấp trên",
                    "khong_xu_ly_duoc",
                );
            } else if roll < 0.95 {
                step(
                    &mut rng,
                    &mut t,
                    240,
                    4320,
                    "fixed",
                    "Đã xử lý xong",
                    "da_xu_ly",
                );
                if roll < 0.11 {
                    step(
                        &mut rng,
                        &mut t,
                        1440,
                        7200,
                        "open",
                        "Người dân phản ánh lại: chưa khắc phục triệt để",
                        "phan_anh_lai",
                    );
                    step(
                        &mut rng,
                        &mut t,
                        240,
                        2880,
                        "fixed",
                        "Đã xử lý lại",
                        "da_xu_ly",
                    );
                }
                if rng.random_bool(0.7) {
                    step(
                        &mut rng,
                        &mut t,
                        60,
                        2880,
                        "closed",
                        "Đã kiểm tra, đóng phản ánh",
                        "dong",
                    );
                }
            }
        }
        // Nothing beyond the year's end has happened yet.
        let year_end = start + Duration::days(days);
        steps.retain(|s| s.1 < year_end);
        let last = steps.last().map(|s| (s.0, s.1));
        let (status, updated) = match last {
            Some((s, at)) if super::mapping::is_terminal(s) => ("closed", at),
            Some((_, at)) => ("open", at),
            None => ("open", requested),
        };
        for (status, at, note, ext) in &steps {
            update_no += 1;
            updates.push(json!({
                "update_id": format!("S-{year}-{update_no:07}"),
                "service_request_id": id,
                "status": status,
                "updated_datetime": at.to_rfc3339(),
                "description": note,
                "media_url": null,
                "external_status_code": ext,
            }));
        }
        let reporter = rng.random_range(1..12_000u32);
        requests.push(json!({
            "service_request_id": id,
            "status": status,
            "status_notes": steps.last().map(|s| s.2),
            "service_name": name,
            "service_code": code,
            "description": description,
            "agency_responsible": agency,
            "requested_datetime": requested.to_rfc3339(),
            "updated_datetime": updated.to_rfc3339(),
            "expected_datetime": (requested + Duration::hours(48)).to_rfc3339(),
            "address": format!("{street}, {ward_name}"),
            "lat": 10.93 + rng.random_range(-0.05..0.05),
            "long": 108.10 + rng.random_range(-0.08..0.16),
            "media_url": null,
            "first_name": "Công dân",
            "last_name": format!("Số {reporter}"),
            "phone": format!("09{:08}", reporter * 7919 % 100_000_000),
            "email": format!("nguoidan{reporter}@example.com"),
            "account_id": format!("acc-{reporter:05}"),
        }));
    }
    SyntheticYear { requests, updates }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_year_looks_like_phan_thiet_2023() {
        let y = generate_year(2023, 1100, 7, &["PT-2023-000981".to_string()]);
        assert_eq!(y.requests.len(), 1100);
        assert!(!y
            .requests
            .iter()
            .any(|r| r["service_request_id"] == "PT-2023-000981"));
        let mut by_code: HashMap<String, usize> = HashMap::new();
        for r in &y.requests {
            *by_code
                .entry(r["service_code"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let urban = by_code["CSDT"] + by_code["LCVH"] + by_code["NGAP"];
        assert!(
            urban > y.requests.len() / 3,
            "urban issues the most frequent: {by_code:?}"
        );
        assert!(by_code["ANTT"] < by_code["CSDT"]);
        assert!(y.updates.len() > 2 * y.requests.len());
        // Deterministic.
        let again = generate_year(2023, 1100, 7, &["PT-2023-000981".to_string()]);
        assert_eq!(again.requests, y.requests);
        // Every ward appears, and the whole thing parses as Open311.
        let reqs: Vec<super::super::open311::ServiceRequest> =
            serde_json::from_value(Value::Array(y.requests.clone())).unwrap();
        let wards = Wards::phan_thiet();
        let seen: std::collections::HashSet<_> = reqs
            .iter()
            .filter_map(|r| {
                wards
                    .derive(&[r.address.as_deref()])
                    .map(|w| w.slug.clone())
            })
            .collect();
        assert_eq!(seen.len(), 18);
    }
}
