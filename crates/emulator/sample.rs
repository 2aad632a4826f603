//! The demo registry used by `handler demo` and the README.

use super::seed::{ManifestSeed, RepoSeed, Seed, TagSeed};

/// A realistic registry with relative ages:
///
/// * `web/frontend`: semver releases (`1.0.0` 95 d, `1.1.0` 62 d, `1.2.0` + `latest` +
///   a locked `prod` tag, 10 d), build tags `build-1201`..`build-1205` (45 d .. 1 d), two
///   old dangling manifests (120 d, 70 d) and a young dangling one (2 h).
/// * `api`: a tagged multi-arch OCI index (`2.3.0`, `latest`; amd64 + arm64 children,
///   untagged), an untagged 80 d index with its untagged children, a signed image
///   `2.2.0` (cosign tag-schema signature `sha256-<hex>.sig` plus an untagged OCI 1.1
///   SBOM referrer), a locked image `1.0.0-lts` (200 d, deleteEnabled false) and an
///   untagged 150 d manifest whose media type is not reported.
/// * `tools/builder`: Docker v2 images `build-1234` (30 d), `build-1235` (20 d),
///   `build-1240` + `stable` (2 d) and an old dangling manifest (50 d).
pub fn sample_registry() -> Seed {
    Seed::new().repo(frontend()).repo(api()).repo(builder())
}

fn frontend() -> RepoSeed {
    let mut repo = RepoSeed::new("web/frontend")
        .manifest(ManifestSeed::docker("r100").age("95d").tag("1.0.0"))
        .manifest(ManifestSeed::image("r110").age("62d").tag("1.1.0"))
        .manifest(
            ManifestSeed::image("r120")
                .age("10d")
                .tags(&["1.2.0", "latest"])
                .tag(TagSeed::new("prod").age("9d").locked()),
        );
    let builds = [
        ("1201", "45d"),
        ("1202", "40d"),
        ("1203", "35d"),
        ("1204", "5d"),
        ("1205", "1d"),
    ];
    for (number, age) in builds {
        let tag = format!("build-{number}");
        repo.push(
            ManifestSeed::image(&format!("b{number}"))
                .age(age)
                .tag(tag.as_str()),
        );
    }
    repo.manifest(ManifestSeed::docker("dangling-120d").age("120d"))
        .manifest(ManifestSeed::image("dangling-70d").age("70d"))
        .manifest(ManifestSeed::image("dangling-2h").age("2h"))
}

fn api() -> RepoSeed {
    let signed = ManifestSeed::image("signed").age("12d").tag("2.2.0");
    // The digest depends only on the manifest's own spec, so resolve it alone.
    let signed_digest = Seed::new()
        .repo(RepoSeed::new("api").manifest(signed.clone()))
        .try_digest("api", "signed")
        .unwrap_or_default();
    let sig_tag = format!("{}.sig", signed_digest.replace(':', "-"));
    RepoSeed::new("api")
        .manifest(
            ManifestSeed::image("multi-amd64")
                .age("3d")
                .platform("linux", "amd64"),
        )
        .manifest(
            ManifestSeed::image("multi-arm64")
                .age("3d")
                .platform("linux", "arm64"),
        )
        .manifest(
            ManifestSeed::index("multi")
                .age("3d")
                .child("multi-amd64")
                .child("multi-arm64")
                .tags(&["2.3.0", "latest"]),
        )
        .manifest(
            ManifestSeed::image("old-amd64")
                .age("80d")
                .platform("linux", "amd64"),
        )
        .manifest(
            ManifestSeed::image("old-arm64")
                .age("80d")
                .platform("linux", "arm64"),
        )
        .manifest(
            ManifestSeed::index("old-multi")
                .age("80d")
                .child("old-amd64")
                .child("old-arm64"),
        )
        .manifest(signed)
        .manifest(
            ManifestSeed::image("signature")
                .age("12d")
                .tag(sig_tag.as_str()),
        )
        .manifest(
            ManifestSeed::artifact("sbom", "application/spdx+json")
                .age("12d")
                .subject("signed"),
        )
        .manifest(
            ManifestSeed::image("lts")
                .age("200d")
                .locked()
                .tag(TagSeed::new("1.0.0-lts").locked()),
        )
        .manifest(ManifestSeed::untyped("no-media-type").age("150d"))
}

fn builder() -> RepoSeed {
    RepoSeed::new("tools/builder")
        .manifest(ManifestSeed::docker("b1234").age("30d").tag("build-1234"))
        .manifest(ManifestSeed::docker("b1235").age("20d").tag("build-1235"))
        .manifest(
            ManifestSeed::docker("b1240")
                .age("2d")
                .tags(&["build-1240", "stable"]),
        )
        .manifest(ManifestSeed::docker("dangling").age("50d"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Emulator;

    #[test]
    fn sample_loads_with_expected_shape() {
        let seed = sample_registry();
        let emulator = Emulator::new(seed.clone()).unwrap();
        let snap = emulator.snapshot();
        assert_eq!(
            snap.repository_names(),
            vec!["api", "tools/builder", "web/frontend"]
        );
        let signed = seed.digest("api", "signed");
        let sig_tag = format!("sha256-{}.sig", signed.trim_start_matches("sha256:"));
        assert!(snap.has_tag("api", &sig_tag));
        let sbom = snap.manifest_by_alias("api", "sbom").unwrap();
        assert_eq!(sbom.subject.as_deref(), Some(signed.as_str()));
        let multi = snap.manifest_by_alias("api", "multi").unwrap();
        assert_eq!(multi.children.len(), 2);
        assert_eq!(
            snap.manifest_by_alias("api", "no-media-type")
                .unwrap()
                .media_type,
            None
        );
        assert!(
            !snap
                .manifest_by_alias("api", "lts")
                .unwrap()
                .attributes
                .delete_enabled
        );
    }
}
