//! How the command line reports an error: one line, each cause once, with
//! what the user can do about it when the command line knows.

/// What the command line can do about an engine error, if anything (the
/// engine's messages name no flags).
fn advice(err: &anyhow::Error) -> Option<&'static str> {
    match err
        .chain()
        .find_map(|c| c.downcast_ref::<shale_core::Error>())?
    {
        shale_core::Error::NotEmpty(_) => Some("use --force to write into it anyway"),
        shale_core::Error::NoPool(_) => Some("create one with `shale pool init`"),
        shale_core::Error::Io { path, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied
                && path.file_name().is_some_and(|n| n == "pool.json") =>
        {
            Some(
                "a pool's files are its owner's alone, or its group's for a pool made with \
                 `pool init --group`: ask its owner",
            )
        }
        _ => None,
    }
}

/// An error and its causes on one line, each cause once (errors that
/// already quote their source are not followed by it again), with the
/// command line's advice.
pub fn message(err: &anyhow::Error) -> String {
    let text = causes(err);
    match advice(err) {
        Some(advice) => format!("{text} ({advice})"),
        None => text,
    }
}

fn causes(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
