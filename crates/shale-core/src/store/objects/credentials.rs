//! The AWS shared credentials file (`~/.aws/credentials`, or
//! `AWS_SHARED_CREDENTIALS_FILE`), which the S3 client does not read
//! itself: a profile's keys (`AWS_PROFILE`, else `default`) are used when
//! the environment gives none. Like `ssh` with its keys, a file that other
//! users may read is refused.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::StoreOptions;
use crate::error::{Error, Result};

/// The keys of a profile, by the variable names the client knows.
const KEYS: [(&str, &str); 3] = [
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("aws_session_token", "AWS_SESSION_TOKEN"),
];

/// The settings the credentials file gives for the profile `options`
/// names, as (variable, value) pairs; none if the environment has keys
/// already or there is no file. An error if the file is open to others,
/// cannot be read, or lacks a profile named explicitly.
pub fn from_file(options: &StoreOptions) -> Result<Vec<(&'static str, String)>> {
    if options.get("AWS_ACCESS_KEY_ID").is_some() {
        return Ok(Vec::new());
    }
    let Some(path) = &options.credentials_file else {
        return Ok(Vec::new());
    };
    let text = match read_private(path)? {
        Some(text) => text,
        None => return Ok(Vec::new()),
    };
    let named = options.get("AWS_PROFILE");
    let profile = named.unwrap_or("default");
    let found = section(&text, profile);
    if found.is_empty() && named.is_some() {
        return Err(Error::InvalidArgument(format!(
            "AWS_PROFILE={profile}: {} has no [{profile}] profile with keys",
            path.display()
        )));
    }
    Ok(found)
}

/// The file's text, `None` if it does not exist; an error if others may
/// read it.
fn read_private(path: &Path) -> Result<Option<String>> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mode = md.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::InvalidArgument(format!(
            "{}: a credentials file others can read (mode {mode:04o}) is not used: \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| Error::io(path, e))
}

/// The keys in the `[profile]` section of an INI text.
fn section(text: &str, profile: &str) -> Vec<(&'static str, String)> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
        } else if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            let k = k.trim().to_ascii_lowercase();
            if let Some((_, var)) = KEYS.iter().find(|(key, _)| *key == k) {
                found.push((*var, v.trim().to_string()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const FILE: &str = "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key=s1\n\n\
                        [ci]\n# a comment\nAWS_ACCESS_KEY_ID = AKICI\naws_secret_access_key = s2\n";

    fn options(path: &Path, profile: Option<&str>) -> StoreOptions {
        let mut o = StoreOptions {
            credentials_file: Some(path.to_path_buf()),
            ..StoreOptions::default()
        };
        if let Some(p) = profile {
            o.config.insert("AWS_PROFILE".into(), p.into());
        }
        o
    }

    #[test]
    fn a_profile_gives_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        crate::private::write(&path, FILE).unwrap();
        let keys = from_file(&options(&path, None)).unwrap();
        assert_eq!(
            keys,
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDEFAULT".to_string()),
                ("AWS_SECRET_ACCESS_KEY", "s1".to_string())
            ]
        );
        let keys = from_file(&options(&path, Some("ci"))).unwrap();
        assert_eq!(keys[0], ("AWS_ACCESS_KEY_ID", "AKICI".to_string()));
        let e = from_file(&options(&path, Some("nope"))).unwrap_err();
        assert!(e.to_string().contains("[nope]"), "{e}");
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        crate::private::write(&path, FILE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = from_file(&options(&path, None)).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("0644"), "{e}");
    }

    #[test]
    fn keys_in_the_environment_win_and_no_file_is_no_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = options(&dir.path().join("absent"), None);
        assert!(from_file(&o).unwrap().is_empty());
        o.config.insert("AWS_ACCESS_KEY_ID".into(), "AKIENV".into());
        o.credentials_file = Some(dir.path().join("loose"));
        std::fs::write(dir.path().join("loose"), FILE).unwrap();
        std::fs::set_permissions(
            dir.path().join("loose"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(from_file(&o).unwrap().is_empty());
    }
}
