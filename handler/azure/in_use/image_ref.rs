//! Image references of this registry in the strings workloads hold: `host/repo:tag`,
//! `host/repo@sha256:…`, `host/repo:tag@sha256:…` (the digest wins), App Service's
//! `DOCKER|host/repo:tag`; no tag means `latest`. Another registry's image is not ours;
//! a string naming this registry that is not an image reference is an [`ImageRefError`].

/// How an image is referenced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageReference {
    /// By digest, `sha256:…` (also when a tag is given too: the digest is what runs).
    Digest(String),
    /// By tag (`latest` when none is given).
    Tag(String),
}

/// Why a string naming this registry is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// The repository part is not a repository name (lowercase, digits, `._-`, `/`).
    #[error("{0:?} is not a repository name")]
    Repository(String),
    /// The tag part is not a tag.
    #[error("{0:?} is not a tag")]
    Tag(String),
    /// The part after `@` is not a digest.
    #[error("{0:?} is not a digest")]
    Digest(String),
}

/// A login server as a bare lowercase host (and port): no scheme, no trailing `/`.
pub(super) fn normalize_login_server(login_server: &str) -> String {
    let text = login_server.trim();
    let text = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    text.trim_end_matches('/').to_ascii_lowercase()
}

/// The repository and reference of `image` when it is an image of `login_server`
/// (`host/repo:tag`, `host/repo@sha256:…`, `host/repo:tag@sha256:…` where the digest wins,
/// `DOCKER|host/repo:tag`, no tag meaning `latest`); `None` for another registry's image,
/// `Some(Err)` for a string naming this registry that is not an image reference.
pub fn parse_image(
    image: &str,
    login_server: &str,
) -> Option<Result<(String, ImageReference), ImageRefError>> {
    let login_server = normalize_login_server(login_server);
    let mut text = image.trim();
    if text.len() > 7 && text[..7].eq_ignore_ascii_case("DOCKER|") {
        text = text[7..].trim();
    }
    let (host, rest) = text.split_once('/')?;
    if !host.eq_ignore_ascii_case(&login_server) {
        return None;
    }
    Some(parse_path(rest))
}

fn parse_path(rest: &str) -> Result<(String, ImageReference), ImageRefError> {
    let (name_tag, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let (repository, tag) = match name_tag.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name_tag, None),
    };
    let repository_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if !repository_ok {
        return Err(ImageRefError::Repository(repository.to_string()));
    }
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err(ImageRefError::Tag(tag.to_string()));
        }
    }
    let reference = match digest {
        Some(digest) => {
            let ok = digest.split_once(':').is_some_and(|(algorithm, hex)| {
                !algorithm.is_empty()
                    && algorithm
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && hex.len() >= 32
                    && hex
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            });
            if !ok {
                return Err(ImageRefError::Digest(digest.to_string()));
            }
            ImageReference::Digest(digest.to_string())
        }
        None => ImageReference::Tag(tag.unwrap_or("latest").to_string()),
    };
    Ok((repository.to_string(), reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "myreg.azurecr.io";
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(image: &str) -> (String, ImageReference) {
        parse_image(image, LS).unwrap().unwrap()
    }

    #[test]
    fn tags_digests_and_defaults() {
        assert_eq!(
            ok("myreg.azurecr.io/app:v1"),
            ("app".into(), ImageReference::Tag("v1".into()))
        );
        assert_eq!(
            ok("MyReg.AzureCR.io/team/app"),
            ("team/app".into(), ImageReference::Tag("latest".into()))
        );
        assert_eq!(
            ok(&format!("myreg.azurecr.io/app@{D}")),
            ("app".into(), ImageReference::Digest(D.into()))
        );
        assert_eq!(
            ok(&format!("myreg.azurecr.io/team/app:v2@{D}")),
            ("team/app".into(), ImageReference::Digest(D.into())),
            "the digest wins over the tag"
        );
        assert_eq!(
            ok("DOCKER|myreg.azurecr.io/web:2024.1"),
            ("web".into(), ImageReference::Tag("2024.1".into()))
        );
        assert_eq!(
            ok("docker|myreg.azurecr.io/web"),
            ("web".into(), ImageReference::Tag("latest".into()))
        );
    }

    #[test]
    fn other_registries_are_not_ours() {
        for image in [
            "nginx:latest",
            "library/nginx",
            "docker.io/library/nginx:1",
            "other.azurecr.io/app:v1",
            "myreg.azurecr.io.evil.com/app:v1",
            "mcr.microsoft.com/azuredocs/aci-helloworld",
            "DOCKER|mcr.microsoft.com/appsvc/staticsite:latest",
        ] {
            assert!(parse_image(image, LS).is_none(), "{image}");
        }
        assert_eq!(
            parse_image("myreg.azurecr.io:5000/app:v1", "myreg.azurecr.io:5000")
                .map(Result::unwrap),
            Some(("app".into(), ImageReference::Tag("v1".into())))
        );
        assert!(parse_image("myreg.azurecr.io:5000/app:v1", LS).is_none());
        assert!(parse_image("myreg.azurecr.io/app:v1", "https://MYREG.azurecr.io/").is_some());
    }

    #[test]
    fn malformed_images_of_this_registry_are_errors() {
        for image in [
            "myreg.azurecr.io/",
            "myreg.azurecr.io/App:v1",
            "myreg.azurecr.io/app:",
            "myreg.azurecr.io/app:-x",
            "myreg.azurecr.io/app@sha256:short",
            "myreg.azurecr.io/app@nodigest",
            "myreg.azurecr.io//app",
        ] {
            assert!(matches!(parse_image(image, LS), Some(Err(_))), "{image}");
        }
    }
}
