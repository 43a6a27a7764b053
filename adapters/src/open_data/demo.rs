//! The demo city's open data: ~35 datasets of the city and the province (a few withdrawn),
//! fixtures included, served by the CKAN simulator and polled by the adapter.

use chrono::{TimeZone, Utc};
use lienthong_bus::Shutdown;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{CkanSimulator, OpenDataConfig};
use crate::demo::{listener, task, DemoPart, DemoSettings};
use crate::error::AdapterError;
use crate::AdapterConfig;

/// The catalogue at the end of the year.
pub fn year(settings: &DemoSettings) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(2));
    catalogue(&mut rng, settings.year)
}

pub async fn start(settings: DemoSettings, shutdown: Shutdown) -> Result<DemoPart, AdapterError> {
    let packages = year(&settings);
    let totals = totals(&packages);
    // The portal's API token, for `lienthong datasets publish` (`up --demo` publishes once).
    let token_file = settings.credentials.join("ckan-api.token");
    let token = lienthong_bus::credentials::secret_file(&token_file)?;
    let ckan = CkanSimulator::new(packages).with_token(token);
    let (l, url) = listener().await?;
    lienthong_bus::credentials::write_private(
        &settings.credentials.join("ckan-demo.env"),
        &format!(
            "# The demo's CKAN portal (simulated). Generated.\nCKAN_URL={url}\nCKAN_API_TOKEN_FILE={}\n",
            token_file.display()
        ),
    )?;
    let serve = ckan.serve(l, shutdown.signalled());
    Ok(DemoPart {
        subsystem: "open_data",
        config: AdapterConfig::OpenData(OpenDataConfig {
            endpoint: url
                .parse()
                .map_err(|e| AdapterError::Config(format!("{url}: {e}")))?,
            source: "urn:lienthong:phanthiet:open_data".into(),
            instance: None,
            poll_interval_secs: 10,
            rows: 100,
        }),
        totals,
        tasks: vec![task("simulator ckan", serve)],
        feed: None,
        lines: vec![format!(
            "  CKAN simulator     {url}api/3/action/package_search  (API token: {})",
            token_file.display()
        )],
    })
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

fn catalogue(rng: &mut StdRng, year: i32) -> Vec<Value> {
    let mut packages = super::simulator::fixture_packages();
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
    packages
}

/// Datasets public at the end of the year, and withdrawn (deleted or private) ones.
pub fn totals(packages: &[Value]) -> Value {
    let active = packages
        .iter()
        .filter(|p| p["state"] == "active" && !p["private"].as_bool().unwrap_or(false))
        .count();
    json!({ "datasets_active": active, "datasets_withdrawn": packages.len() - active })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_dozen_datasets_some_withdrawn() {
        let s = DemoSettings::in_data_dir(std::path::Path::new("/nonexistent"), 1.0);
        let t = totals(&year(&s));
        let (a, w) = (
            t["datasets_active"].as_u64().unwrap(),
            t["datasets_withdrawn"].as_u64().unwrap(),
        );
        assert!((30..=50).contains(&(a + w)) && w > 0, "{t}");
    }
}
