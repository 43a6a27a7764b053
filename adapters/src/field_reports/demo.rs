//! The demo city's field reports: the fixtures and a synthetic year (~1,100 reports, urban
//! issues the most frequent, every ward), served by the Open311 simulator and polled by the
//! adapter.

use lienthong_bus::Shutdown;
use serde_json::{json, Value};

use super::{FieldReportsConfig, Open311Data, Open311Simulator};
use crate::demo::{listener, task, DemoPart, DemoSettings};
use crate::error::AdapterError;
use crate::AdapterConfig;

/// Reports in the year, whatever the scale (the city reported a little over 1,000).
pub const REPORTS: usize = 1100;

/// The year's Open311 data.
pub fn year(settings: &DemoSettings) -> Open311Data {
    Open311Data::demo(settings.year, REPORTS, settings.seed)
}

/// Distinct reports (requests, and reports known only from updates).
pub fn totals(data: &Open311Data) -> Value {
    let ids: std::collections::BTreeSet<&str> = data
        .requests
        .iter()
        .chain(data.updates.iter())
        .filter_map(|r| r["service_request_id"].as_str())
        .collect();
    json!({ "reports": ids.len() })
}

pub async fn start(settings: DemoSettings, shutdown: Shutdown) -> Result<DemoPart, AdapterError> {
    let data = year(&settings);
    let totals = totals(&data);
    let (l, url) = listener().await?;
    let sim = Open311Simulator::new(data);
    let serve = sim.serve(l, shutdown.signalled());
    let endpoint = url
        .parse()
        .map_err(|e| AdapterError::Config(format!("{url}: {e}")))?;
    let mut config = FieldReportsConfig::new(endpoint);
    config.poll_interval_secs = 5;
    config.start_date = crate::demo::year_start(settings.year);
    Ok(DemoPart {
        subsystem: "field_reports",
        config: AdapterConfig::FieldReports(config),
        totals,
        tasks: vec![task("simulator field_reports", serve)],
        feed: None,
        lines: vec![format!("  Open311 simulator  {url}requests.json")],
    })
}
