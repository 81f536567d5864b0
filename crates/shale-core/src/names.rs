//! Rules for volume and snapshot names, and `VOLUME[@SNAPSHOT]` specs.

use crate::error::{Error, Result};

/// Longest allowed name.
pub const MAX_NAME: usize = 128;

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: name.escape_debug().to_string(),
        reason,
    }
}

/// Checks a volume or snapshot name: 1–128 characters of letters, digits,
/// `_`, `-`, `.`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(name, "a name may not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(invalid(name, "a name may be at most 128 characters long"));
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err(invalid(name, "a name must start with a letter or a digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(invalid(
            name,
            match c {
                '@' => "'@' is reserved to separate a volume from a snapshot",
                '/' => "'/' is reserved for paths",
                c if c.is_control() => "control characters are not allowed",
                _ => "only letters, digits, '_', '-' and '.' are allowed",
            },
        ));
    }
    Ok(())
}

/// A parsed `VOLUME` or `VOLUME@SNAPSHOT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Volume name.
    pub volume: String,
    /// Snapshot name, if given.
    pub snapshot: Option<String>,
}

impl Spec {
    /// Parses and checks a spec.
    pub fn parse(s: &str) -> Result<Spec> {
        let (volume, snapshot) = match s.split_once('@') {
            Some((v, snap)) => (v, Some(snap)),
            None => (s, None),
        };
        check_name(volume)?;
        if let Some(snap) = snapshot {
            check_name(snap)?;
        }
        Ok(Spec {
            volume: volume.to_string(),
            snapshot: snapshot.map(str::to_string),
        })
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.snapshot {
            Some(s) => write!(f, "{}@{s}", self.volume),
            None => f.write_str(&self.volume),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "imagenet", "exp-1.v2_final", "0day", &"x".repeat(128)] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a/b",
            "a@b",
            "a b",
            "a\u{7}",
            "..",
            &"x".repeat(129),
            "é",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn specs() {
        assert_eq!(Spec::parse("v@s").unwrap().snapshot.as_deref(), Some("s"));
        assert_eq!(Spec::parse("v").unwrap().snapshot, None);
        assert!(Spec::parse("v@").is_err());
        assert!(Spec::parse("v@s@t").is_err());
        assert_eq!(Spec::parse("v@s").unwrap().to_string(), "v@s");
    }
}
