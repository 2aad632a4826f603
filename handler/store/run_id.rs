//! Run ids, checked in one place. The handler issues every run id itself, as a random UUID
//! in its lowercase hyphenated form (`durable::begin` for a new run, the Functions handler
//! for a webhook's run): the store accepts nothing else as a run id (or a run's alias), so
//! an id from a URL or the command line can never name `.`, `..`, a path or another object.

/// At most this many characters of a refused id are shown in a message or a log line.
pub const SHOWN: usize = 40;

/// A run id that is not one the handler issues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a run id: {shown} (a run id is a UUID such as 0e9a3c1e-5b7d-4f3c-9a41-2f7c1d9e8b60, as `handler runs list` shows)"
)]
pub struct InvalidRunId {
    /// The id as shown: quoted, cut to [`SHOWN`] characters.
    pub shown: String,
}

/// Checks that `id` is a run id of the form the handler issues.
pub fn check(id: &str) -> Result<(), InvalidRunId> {
    let issued =
        id.len() == 36 && uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id);
    match issued {
        true => Ok(()),
        false => Err(InvalidRunId { shown: shown(id) }),
    }
}

/// `id` quoted for a message, cut to [`SHOWN`] characters (with its full length) when longer.
pub fn shown(id: &str) -> String {
    let count = id.chars().count();
    if count <= SHOWN {
        return format!("{id:?}");
    }
    let cut: String = id.chars().take(SHOWN).collect();
    format!("{cut:?}… ({count} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_issued_ids_pass() {
        let issued = uuid::Uuid::new_v4().to_string();
        assert_eq!(check(&issued), Ok(()));
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "runs/x",
            "%2e%2e",
            "run-1",
            &issued.to_uppercase(),
            &issued.replace('-', ""),
            &format!("{{{issued}}}"),
            &format!("urn:uuid:{issued}"),
            &format!("{issued}/.."),
            &format!(" {issued}"),
        ] {
            assert!(check(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn a_long_id_is_never_shown_whole() {
        let long = "a".repeat(5000);
        let message = check(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(5000 characters)"), "{message}");
        assert!(!message.contains(&"a".repeat(SHOWN + 1)), "{message}");
        let short = check("..").unwrap_err().to_string();
        assert!(short.starts_with("not a run id: \"..\" ("), "{short}");
    }
}
