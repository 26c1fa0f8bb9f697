//! The request target the AS gets: the configured path, whatever spelling of it came (a
//! router that folds case or decodes escapes sent it here; the AS may not), and a query the
//! guard built or checked. One place, for the three points.

use http::Uri;
use http::uri::PathAndQuery;

/// `path` with `query`, as an origin-form target.
pub(super) fn on_path(path: &str, query: Option<&str>) -> Option<Uri> {
    match query {
        Some(query) => {
            let mut target = String::with_capacity(path.len() + 1 + query.len());
            target.push_str(path);
            target.push('?');
            target.push_str(query);
            parse(target)
        }
        None => parse(path.to_owned()),
    }
}

/// A whole target the guard built: validated here, once. `None` only if a check before let
/// something through that no target may hold; the callers fail closed on it.
pub(super) fn parse(target: String) -> Option<Uri> {
    PathAndQuery::try_from(target).ok().map(Uri::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_path_with_the_query_as_it_came() {
        assert_eq!(on_path("/o/token/", Some("a=b")).unwrap(), "/o/token/?a=b");
        assert_eq!(on_path("/oauth2/token", None).unwrap(), "/oauth2/token");
        assert!(on_path("/x", Some("a b")).is_none());
        assert!(parse("/a?\u{7f}".into()).is_none());
    }
}
