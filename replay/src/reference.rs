//! The city's reference data the read models and the dashboard name things with: its wards
//! and communes (names, residents, place on the dashboard's tile map) and the applications
//! behind the central sign-on. Events carry codes; people read these names.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// One ward (phường) or commune (xã).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ward {
    pub slug: String,
    pub name: String,
    /// `phuong` or `xa`.
    pub kind: String,
    /// Residents (approximate; see the file's `population_note`).
    pub population: u64,
    /// Its tile on the schematic map.
    pub map: MapTile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapTile {
    pub row: u32,
    pub col: u32,
}

#[derive(Debug, Deserialize)]
struct WardsFile {
    units: Vec<Ward>,
}

/// An application that signs users on through the city's Keycloak (by client id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub client_id: String,
    pub name_vi: String,
    pub name_en: String,
}

static WARDS: LazyLock<Vec<Ward>> = LazyLock::new(|| {
    let file: WardsFile = serde_json::from_str(include_str!("../../adapters/fixtures/wards.json"))
        .expect("adapters/fixtures/wards.json describes the wards");
    file.units
});

static APPLICATIONS: LazyLock<Vec<Application>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("reference/applications.json"))
        .expect("reference/applications.json lists the applications")
});

/// The 18 wards and communes of Phan Thiết.
pub fn wards() -> &'static [Ward] {
    &WARDS
}

/// The ward `slug`.
pub fn ward(slug: &str) -> Option<&'static Ward> {
    WARDS.iter().find(|w| w.slug == slug)
}

/// The applications behind the central sign-on.
pub fn applications() -> &'static [Application] {
    &APPLICATIONS
}

/// The application with client id `id`.
pub fn application(id: &str) -> Option<&'static Application> {
    APPLICATIONS.iter().find(|a| a.client_id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighteen_wards_each_on_its_own_tile_with_residents() {
        assert_eq!(wards().len(), 18);
        let mut tiles: Vec<_> = wards().iter().map(|w| (w.map.row, w.map.col)).collect();
        tiles.sort();
        tiles.dedup();
        assert_eq!(tiles.len(), 18, "two wards share a tile");
        assert!(wards().iter().all(|w| w.population > 0));
        assert_eq!(ward("phu-thuy").unwrap().name, "Phường Phú Thủy");
    }

    #[test]
    fn every_demo_application_has_a_name() {
        for id in ["phananh-app", "qlvb", "dichvucong", "hop-truc-tuyen"] {
            assert!(application(id).is_some(), "{id}");
        }
    }
}
