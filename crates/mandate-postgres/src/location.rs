//! Where a store lives: a local folder (sled or the file log, one machine) or a
//! PostgreSQL database shared by several replicas.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A store location as given on the command line or in a config file:
/// `postgres://…` (or `postgresql://…`) selects PostgreSQL, anything else is a folder.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A folder on this machine.
    Folder(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl StoreLocation {
    /// The folder, when the store is local.
    pub fn folder(&self) -> Option<&std::path::Path> {
        match self {
            StoreLocation::Folder(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }
}

impl FromStr for StoreLocation {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(if crate::is_postgres_url(text) {
            StoreLocation::Postgres(text.to_owned())
        } else {
            StoreLocation::Folder(PathBuf::from(text))
        })
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        StoreLocation::Folder(path)
    }
}

/// Shows a folder's path, or a URL with any password replaced by `***`.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Folder(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

/// `url` with its passwords replaced: the user-info's (`user:password@`)
/// and any `password=` query parameter's.
fn redact_password(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = redact_user_info(base);
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// `url` with the password of its user-info (`user:password@`) replaced.
fn redact_user_info(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::StoreLocation;

    #[test]
    fn a_url_selects_postgres_and_its_password_is_never_shown() {
        let location: StoreLocation = "postgres://ops:s3cret@db:5432/mandate".parse().unwrap();
        assert!(matches!(location, StoreLocation::Postgres(_)));
        assert_eq!(location.to_string(), "postgres://ops:***@db:5432/mandate");
        assert!(!format!("{location:?}").contains("s3cret"));
        let query: StoreLocation = "postgres://ops@db/mandate?sslmode=disable&password=s3cret"
            .parse()
            .unwrap();
        assert_eq!(
            query.to_string(),
            "postgres://ops@db/mandate?sslmode=disable&password=***"
        );
    }

    #[test]
    fn anything_else_is_a_folder() {
        let location: StoreLocation = "./data/registry".parse().unwrap();
        assert_eq!(location.folder().unwrap().to_str(), Some("./data/registry"));
        assert_eq!(location.to_string(), "./data/registry");
    }
}
