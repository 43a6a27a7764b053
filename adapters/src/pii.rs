//! Masking personal data in free text before it reaches the bus.
//!
//! Adapters never copy personal fields (names, phones, e-mails, account ids); this catches
//! what citizens and staff type into free text: phone numbers, e-mail addresses, national
//! ID numbers (CMND 9 digits, CCCD 12 digits) and IP addresses.

use std::sync::LazyLock;

use regex::Regex;

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}").expect("regex"));
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:\d{1,3}\.){3}\d{1,3}\b").expect("regex"));
/// Vietnamese phone numbers: 0 or +84/84, then 9–10 digits, with optional separators.
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+?84|\b0)(?:[\s.\-]?\d){8,10}\b").expect("regex"));
/// National ID numbers: 9 (CMND) or 12 (CCCD) digits standing alone.
static NATIONAL_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:\d{12}|\d{9})\b").expect("regex"));

/// Replaces personal data in `text` with `[email]`, `[ip]`, `[phone]`, `[id]`.
pub fn mask(text: &str) -> String {
    let t = EMAIL.replace_all(text, "[email]");
    let t = IPV4.replace_all(&t, "[ip]");
    let t = PHONE.replace_all(&t, "[phone]");
    NATIONAL_ID.replace_all(&t, "[id]").into_owned()
}

/// [`mask`] for optional text.
pub fn mask_opt(text: Option<&str>) -> Option<String> {
    text.map(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_what_people_type() {
        assert_eq!(mask("gọi 0905123456 nhé"), "gọi [phone] nhé");
        assert_eq!(mask("gọi 0905 123 456"), "gọi [phone]");
        assert_eq!(mask("+84 905.123.456"), "[phone]");
        assert_eq!(mask("mail binh.nv@example.com"), "mail [email]");
        assert_eq!(mask("CCCD 079123456789"), "CCCD [id]");
        assert_eq!(mask("từ 203.113.10.5"), "từ [ip]");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for t in [
            "Ngập sâu 30cm sau mưa tại đường Võ Văn Kiệt",
            "Trùng với phản ánh PT-2023-000981",
            "Xử lý trong 48 giờ",
            "Số 1245/UBND-VP ngày 12/11/2023",
        ] {
            assert_eq!(mask(t), t);
        }
    }
}
