//! The 18 wards (phường) and communes (xã) of Phan Thiết, and deriving a ward from text.

use serde::Deserialize;

static WARDS_JSON: &str = include_str!("../fixtures/wards.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Ward {
    pub slug: String,
    pub name: String,
    /// `phuong` (urban ward) or `xa` (rural commune).
    pub kind: String,
}

#[derive(Debug, Deserialize)]
struct WardsFile {
    units: Vec<Ward>,
}

/// The wards, with their names folded for matching.
#[derive(Debug, Clone)]
pub struct Wards {
    wards: Vec<Ward>,
    /// (folded bare name, e.g. `phu thuy`; index), longest first.
    names: Vec<(String, usize)>,
}

/// Lower-case ASCII words separated by single spaces: `Phường Phú Thủy,` → `phuong phu thuy`.
pub fn fold(text: &str) -> String {
    let ascii = deunicode::deunicode(text).to_ascii_lowercase();
    ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Ward {
    /// The name as it appears after "UBND" or in an address: `phường Phú Thủy`, `xã Tiến Thành`.
    pub fn in_sentence(&self) -> String {
        match self.name.split_once(' ') {
            Some((kind, rest)) => format!("{} {rest}", kind.to_lowercase()),
            None => self.name.clone(),
        }
    }
}

impl Wards {
    /// The wards of Phan Thiết, as in the fixtures.
    pub fn phan_thiet() -> Self {
        let file: WardsFile = serde_json::from_str(WARDS_JSON).expect("wards.json is valid");
        Self::new(file.units)
    }

    pub fn new(wards: Vec<Ward>) -> Self {
        let mut names: Vec<(String, usize)> = wards
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let folded = fold(&w.name);
                let bare = folded
                    .strip_prefix("phuong ")
                    .or_else(|| folded.strip_prefix("xa "))
                    .unwrap_or(&folded)
                    .to_string();
                (bare, i)
            })
            .collect();
        names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        Self { wards, names }
    }

    pub fn all(&self) -> &[Ward] {
        &self.wards
    }

    pub fn by_slug(&self, slug: &str) -> Option<&Ward> {
        self.wards.iter().find(|w| w.slug == slug)
    }

    /// The ward named in the texts, most specific evidence first: an explicit
    /// "phường X"/"xã X"/"P. X" in any text (in the order given), then a bare ward name.
    pub fn derive(&self, texts: &[Option<&str>]) -> Option<&Ward> {
        let folded: Vec<String> = texts
            .iter()
            .flatten()
            .map(|t| format!(" {} ", fold(t)))
            .collect();
        for text in &folded {
            for (name, i) in &self.names {
                let kind = if self.wards[*i].kind == "xa" {
                    "xa"
                } else {
                    "phuong"
                };
                for prefix in [kind, "p", "ubnd", "ubnd phuong", "ubnd xa"] {
                    if text.contains(&format!(" {prefix} {name} ")) {
                        return Some(&self.wards[*i]);
                    }
                }
            }
        }
        for text in &folded {
            for (name, i) in &self.names {
                if text.contains(&format!(" {name} ")) {
                    return Some(&self.wards[*i]);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighteen_wards() {
        let w = Wards::phan_thiet();
        assert_eq!(w.all().len(), 18);
        assert_eq!(w.all().iter().filter(|w| w.kind == "xa").count(), 4);
    }

    #[test]
    fn derives_from_addresses_and_agencies() {
        let w = Wards::phan_thiet();
        let d = |t: &[Option<&str>]| w.derive(t).map(|w| w.slug.as_str());
        assert_eq!(
            d(&[Some("Nguyễn Đình Chiểu, phường Phú Thủy")]),
            Some("phu-thuy")
        );
        assert_eq!(
            d(&[Some("Nguyễn Đình Chiểu"), Some("UBND phường Phú Thủy")]),
            Some("phu-thuy")
        );
        assert_eq!(
            d(&[Some("Chợ Đức Long, phường Đức Long")]),
            Some("duc-long")
        );
        assert_eq!(d(&[Some("Xã Tiến Thành")]), Some("tien-thanh"));
        assert_eq!(d(&[Some("Huỳnh Thúc Kháng, P. Mũi Né")]), Some("mui-ne"));
        // An explicit ward in a later text beats a bare name in an earlier one.
        assert_eq!(
            d(&[Some("gần chợ Phú Thủy"), Some("phường Đức Thắng")]),
            Some("duc-thang")
        );
        assert_eq!(
            d(&[Some("Võ Văn Kiệt"), Some("Phòng Quản lý đô thị")]),
            None
        );
        assert_eq!(d(&[None, Some("phuong phu tai")]), Some("phu-tai"));
    }
}
