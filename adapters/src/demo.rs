//! The demo city: a synthetic year (2023) of every subsystem, in each subsystem's own format,
//! served by its simulator (or fed to its adapter's push endpoint, or dropped into its inbox),
//! with the adapter configured against it. Each subsystem's part lives in its own module
//! (`<subsystem>/demo.rs`); [`parts`] lists them. Each part counts its totals from the raw
//! records, independently of the adapters, so that the KPIs can be checked against them;
//! [`start`] writes them to `data/demo/totals.json`, one section per subsystem.
//!
//! Shaped on what Phan Thiết reported for 2023: about 12,000 registered sign-on users; over
//! 1,000 field reports, urban issues the most frequent; over 90% of non-secret documents
//! exchanged electronically; 18 wards and communes, all connected to the city's online
//! meetings; a few dozen open datasets. `scale` shrinks the volumes (tests use small scales).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone};
use lienthong_bus::Shutdown;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::error::AdapterError;
use crate::wards::Wards;
use crate::AdapterConfig;

/// Where and how big the demo city is.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// The year of the city (UTC+7).
    pub year: i32,
    /// 1.0: the full city.
    pub scale: f64,
    pub seed: u64,
    /// Where secrets of the run are kept (`data/credentials`).
    pub credentials: PathBuf,
    /// Where the demo keeps its marks and totals (`data/demo`).
    pub marks: PathBuf,
    /// Where inbox folders go (`data/inbox`).
    pub inbox: PathBuf,
}

impl DemoSettings {
    /// The settings for `lienthong up --demo` with its data folder.
    pub fn in_data_dir(data: &Path, scale: f64) -> Self {
        Self {
            year: 2023,
            scale,
            seed: 2023,
            credentials: data.join("credentials"),
            marks: data.join("demo"),
            inbox: data.join("inbox"),
        }
    }

    /// Whether something fed once (files, webhook pushes) was fed already.
    pub fn done(&self, what: &str) -> bool {
        self.marks.join(what).exists()
    }

    /// Marks `what` as fed.
    pub fn mark_done(&self, what: &str) -> Result<(), AdapterError> {
        std::fs::write(self.marks.join(what), "")
            .map_err(|e| AdapterError::Config(format!("demo mark {what}: {e}")))
    }

    /// A secret of the run, generated on first use.
    pub fn secret(&self, name: &str) -> Result<(PathBuf, String), AdapterError> {
        let path = self.credentials.join(name);
        let s = lienthong_bus::credentials::secret_file(&path)?;
        Ok((path, s))
    }
}

/// A background task of the demo (a simulator), named for the logs.
pub type DemoTask = (String, tokio::task::JoinHandle<Result<(), AdapterError>>);
/// Work done once the adapter runs (e.g. pushing webhooks to it).
pub type Feed = Pin<Box<dyn Future<Output = Result<(), AdapterError>> + Send>>;

/// One subsystem's part of the demo.
pub struct DemoPart {
    pub subsystem: &'static str,
    /// The adapter, configured against the simulator.
    pub config: AdapterConfig,
    /// What the year holds, counted from the raw records.
    pub totals: Value,
    /// Simulators, running until the shutdown.
    pub tasks: Vec<DemoTask>,
    /// Fed once the adapter runs.
    pub feed: Option<Feed>,
    /// Where to look, for `lienthong up`'s banner.
    pub lines: Vec<String>,
}

/// Starts one subsystem's part.
pub type StartPart = fn(
    DemoSettings,
    Shutdown,
) -> Pin<Box<dyn Future<Output = Result<DemoPart, AdapterError>> + Send>>;

/// Every subsystem's part, one line each.
pub fn parts() -> Vec<StartPart> {
    vec![
        |s, d| Box::pin(crate::field_reports::demo::start(s, d)),
        |s, d| Box::pin(crate::documents::demo::start(s, d)),
        |s, d| Box::pin(crate::sso::demo::start(s, d)),
        |s, d| Box::pin(crate::open_data::demo::start(s, d)),
        |s, d| Box::pin(crate::meetings::demo::start(s, d)),
    ]
}

/// Starts every part and writes `totals.json` (one section per subsystem).
pub async fn start(
    settings: &DemoSettings,
    shutdown: &Shutdown,
) -> Result<Vec<DemoPart>, AdapterError> {
    std::fs::create_dir_all(&settings.marks)
        .map_err(|e| AdapterError::Config(format!("{}: {e}", settings.marks.display())))?;
    let mut out = Vec::new();
    let mut totals = Map::new();
    for start in parts() {
        let part = start(settings.clone(), shutdown.clone()).await?;
        totals.insert(part.subsystem.to_string(), part.totals.clone());
        out.push(part);
    }
    let path = settings.marks.join("totals.json");
    let text = serde_json::to_vec_pretty(&Value::Object(totals))
        .map_err(|e| AdapterError::Config(e.to_string()))?;
    std::fs::write(&path, text)
        .map_err(|e| AdapterError::Config(format!("{}: {e}", path.display())))?;
    Ok(out)
}

/// A loopback listener on a free port, and its base URL (`http://127.0.0.1:P/`).
pub async fn listener() -> Result<(TcpListener, String), AdapterError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| AdapterError::Config(format!("demo listener: {e}")))?;
    let addr = l
        .local_addr()
        .map_err(|e| AdapterError::Config(format!("demo listener: {e}")))?;
    Ok((l, format!("http://{addr}/")))
}

/// A free loopback address for an adapter's push endpoint (bound by the adapter right after).
pub fn free_addr() -> Result<std::net::SocketAddr, AdapterError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| AdapterError::Config(format!("demo port: {e}")))
}

/// Waits until `url` answers 2xx (an adapter's `/healthz` after it starts).
pub async fn wait_until_up(url: &str) -> Result<(), AdapterError> {
    for _ in 0..200 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(AdapterError::Source {
        url: url.to_string(),
        reason: "did not come up within 20 s".into(),
    })
}

/// A simulator's serve future, as a demo task.
pub fn task<F>(name: &str, serve: F) -> DemoTask
where
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let name_owned = name.to_string();
    (
        name.to_string(),
        tokio::spawn(async move {
            serve
                .await
                .map_err(|e| AdapterError::Config(format!("{name_owned}: {e}")))
        }),
    )
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

/// Phan Thiết's clock (UTC+7).
pub fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7")
}

/// Midnight on 1 January of `year` in Phan Thiết (UTC+7).
pub fn year_start(year: i32) -> DateTime<FixedOffset> {
    tz().from_local_datetime(
        &NaiveDate::from_ymd_opt(year, 1, 1)
            .expect("date")
            .and_hms_opt(0, 0, 0)
            .expect("time"),
    )
    .single()
    .expect("unambiguous")
}

/// A random working-hours moment of the year.
pub fn moment(rng: &mut StdRng, year: i32) -> DateTime<FixedOffset> {
    year_start(year)
        + Duration::days(rng.random_range(0..365))
        + Duration::minutes(rng.random_range(7 * 60..18 * 60))
        + Duration::seconds(rng.random_range(0..60))
}

/// `n` scaled, at least 1.
pub fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_codes_are_unique() {
        assert_eq!(agencies().len(), 23);
        let codes: std::collections::BTreeSet<_> = agencies().into_iter().map(|a| a.0).collect();
        assert_eq!(codes.len(), 23, "agency codes are unique");
    }
}
