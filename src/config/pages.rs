//! `[pages]`: the Persoon's pages in the DVA's own name.

use std::path::{Path, PathBuf};

use super::check::Check;

/// `[pages]`: the Persoon's pages in the DVA's own name. Without it they stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Pages {
    /// Shown on every page, in the title and where the text says "uw zorgaanbieder".
    pub organisation: Option<String>,
    /// The helpdesk's phone number, as it is written (digits, spaces, `+`, `-`, `(`, `)`).
    pub contact_phone: Option<String>,
    /// The helpdesk's web page (`https` only).
    pub contact_url: Option<String>,
    /// A PNG or SVG logo, read at start and on SIGHUP (`resources`).
    pub logo_file: Option<PathBuf>,
    /// The button colour, `#rrggbb`, with a contrast of at least 4.5:1 against white.
    pub accent_color: Option<String>,
}

impl Check {
    /// `[pages]`, its files relative to `base_dir`.
    pub(super) fn pages(&mut self, root: &toml::Table, base_dir: &Path) -> Pages {
        let s = self.section(root, "pages");
        let pages = Pages {
            organisation: self.string(&s, "organisation").map(str::to_owned),
            contact_phone: self.string(&s, "contact_phone").map(str::to_owned),
            contact_url: self.string(&s, "contact_url").map(str::to_owned),
            logo_file: self.string(&s, "logo_file").map(|p| base_dir.join(p)),
            accent_color: self.string(&s, "accent_color").map(str::to_owned),
        };
        if let Some(name) = &pages.organisation
            && (name.trim().is_empty()
                || name.chars().count() > 80
                || name.chars().any(char::is_control))
        {
            self.error("pages.organisation", "must be a name of 1 to 80 characters");
        }
        if let Some(phone) = &pages.contact_phone
            && !is_phone(phone)
        {
            self.error(
                "pages.contact_phone",
                "must be a phone number: digits, spaces, + - ( ) (at least 6 digits)",
            );
        }
        if let Some(url) = &pages.contact_url
            && !(url.starts_with("https://")
                && url.len() > "https://".len()
                && !url.contains(['"', '<', '>', ' '])
                && crate::vert::clients::is_uri_text(url))
        {
            self.error("pages.contact_url", "must be an https URL");
        }
        if let Some(color) = &pages.accent_color {
            match contrast_with_white(color) {
                None => self.error("pages.accent_color", "must be a colour like #01689b"),
                Some(ratio) if ratio < 4.5 => self.error(
                    "pages.accent_color",
                    format!(
                        "{color} has a contrast of {ratio:.2}:1 with the button's white text; at least 4.5:1 is needed (WCAG 2.1 AA)"
                    ),
                ),
                Some(_) => {}
            }
        }
        pages
    }
}

/// A phone number as people write it: `020 123 45 67`, `+31 (0)20-1234567`.
fn is_phone(phone: &str) -> bool {
    phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-()".contains(c))
        && phone.chars().filter(char::is_ascii_digit).count() >= 6
        && phone.len() <= 32
}

/// The contrast ratio of `#rrggbb` with white (WCAG 2.1: relative luminance).
pub fn contrast_with_white(color: &str) -> Option<f64> {
    let hex = color
        .strip_prefix('#')
        .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
    Some(1.05 / (luminance + 0.05))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accent_contrast_with_white_is_measured_as_wcag_does() {
        let ratio = |c: &str| (contrast_with_white(c).unwrap() * 100.0).round() / 100.0;
        assert_eq!(ratio("#ffffff"), 1.0);
        assert_eq!(ratio("#000000"), 21.0);
        assert_eq!(ratio("#01689b"), 6.08);
        assert_eq!(ratio("#767676"), 4.54); // the lightest grey that passes AA
        assert_eq!(ratio("#777777"), 4.48);
        for bad in ["01689b", "#01689", "#01689bb", "#gggggg", ""] {
            assert_eq!(contrast_with_white(bad), None, "{bad}");
        }
    }
}
