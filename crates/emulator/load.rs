//! Turns a [`Seed`] into registry state: validates it, resolves ages and references,
//! synthesizes bodies and computes digests.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Duration, Timelike, Utc};

use super::body::{self, BodySpec, Descriptor};
use super::seed::{MEDIA_TYPES, ManifestSeed, RepoSeed, Seed, TagSeed, TimeSpec};
use super::state::{Attributes, Manifest, Registry, Repo, Tag, Text};

/// Default layer size of synthesized images.
const DEFAULT_LAYER_SIZE: u64 = 2_621_440;

/// Builds the registry from a seed.
pub(crate) fn load(seed: &Seed, now: DateTime<Utc>) -> anyhow::Result<Registry> {
    let mut registry = Registry::default();
    for repo_seed in &seed.repositories {
        if registry.repos.contains_key(&repo_seed.name) {
            bail!("repository {:?} appears twice in the seed", repo_seed.name);
        }
        let mut repo = Repo::default();
        for (manifest, tags) in resolve_repo(repo_seed, now)? {
            repo.insert_manifest(manifest);
            tags.into_iter().for_each(|t| repo.insert_tag(t));
        }
        if !repo.manifests.is_empty() {
            registry.repos.insert(repo_seed.name.clone(), repo);
        }
    }
    Ok(registry)
}

/// Formats a time like ACR: RFC 3339, UTC, 7 fractional digits.
pub fn format_time(time: DateTime<Utc>) -> String {
    let ticks = time.nanosecond().min(999_999_999) / 100;
    format!("{}.{ticks:07}Z", time.format("%Y-%m-%dT%H:%M:%S"))
}

/// Parses an age such as `40d`, `3h`, `15m`, `30s` or `1d12h`.
pub fn parse_age(text: &str) -> anyhow::Result<Duration> {
    let mut total = Duration::zero();
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: i64 = number
            .parse()
            .map_err(|_| anyhow!("invalid age {text:?}: expected e.g. 40d, 3h, 15m, 30s"))?;
        number.clear();
        total += match c {
            'd' => Duration::days(value),
            'h' => Duration::hours(value),
            'm' => Duration::minutes(value),
            's' => Duration::seconds(value),
            _ => bail!("invalid age {text:?}: unknown unit {c:?} (use d, h, m, s)"),
        };
    }
    match number.as_str() {
        "" if !text.trim().is_empty() => Ok(total),
        "0" => Ok(total),
        _ => bail!("invalid age {text:?}: expected e.g. 40d, 3h, 15m, 30s"),
    }
}

fn resolve_time(
    spec: &TimeSpec,
    age: Option<&str>,
    inherited: &Option<Text>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Text>> {
    Ok(match spec {
        TimeSpec::Null => None,
        TimeSpec::At(text) => Some(text.as_str().into()),
        TimeSpec::Age(a) => Some(format_time(now - parse_age(a)?).into()),
        TimeSpec::Inherit => match age {
            Some(a) => Some(format_time(now - parse_age(a)?).into()),
            None => inherited.clone(),
        },
    })
}

/// Reference state while resolving.
enum Lookup<'a> {
    Ready(&'a Manifest),
    Pending,
}

struct Resolver<'a> {
    seed: &'a RepoSeed,
    now: DateTime<Utc>,
    aliases: HashMap<&'a str, usize>,
    done: Vec<Option<(Manifest, Vec<Tag>)>>,
    by_digest: HashMap<String, usize>,
}

/// Resolves one repository: returns each manifest with its tags, in seed order.
pub(crate) fn resolve_repo(
    seed: &RepoSeed,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(Manifest, Vec<Tag>)>> {
    validate_repo_name(&seed.name)?;
    let mut aliases = HashMap::new();
    for (i, m) in seed.manifests.iter().enumerate() {
        if let Some(alias) = &m.alias
            && aliases.insert(alias.as_str(), i).is_some()
        {
            bail!(
                "repository {:?}: manifest alias {alias:?} is used twice",
                seed.name
            );
        }
    }
    let mut resolver = Resolver {
        seed,
        now,
        aliases,
        done: vec![None; seed.manifests.len()],
        by_digest: HashMap::new(),
    };
    resolver.run()?;
    let out: Vec<(Manifest, Vec<Tag>)> = resolver.done.into_iter().flatten().collect();
    check_unique_tags(&seed.name, &out)?;
    Ok(out)
}

fn validate_repo_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if !ok {
        bail!(
            "invalid repository name {name:?}: use lowercase path components [a-z0-9._-] separated by '/'"
        );
    }
    Ok(())
}

fn label(seed: &RepoSeed, i: usize) -> String {
    match &seed.manifests[i].alias {
        Some(a) => format!("repository {:?}, manifest {a:?}", seed.name),
        None => format!("repository {:?}, manifest #{i}", seed.name),
    }
}

fn check_unique_tags(repo: &str, resolved: &[(Manifest, Vec<Tag>)]) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    for (_, tags) in resolved {
        for t in tags {
            if !seen.insert(&*t.name) {
                bail!("repository {repo:?}: tag {:?} is given twice", t.name);
            }
            if !valid_tag(&t.name) {
                bail!("repository {repo:?}: invalid tag name {:?}", t.name);
            }
        }
    }
    Ok(())
}

fn valid_tag(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok && name.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl<'a> Resolver<'a> {
    /// Resolves manifests in passes until all are done or no progress is made.
    fn run(&mut self) -> anyhow::Result<()> {
        loop {
            let mut progress = false;
            let mut stuck = None;
            for i in 0..self.seed.manifests.len() {
                if self.done[i].is_some() {
                    continue;
                }
                match self.try_resolve(i)? {
                    Some(item) => {
                        self.record(i, item)?;
                        progress = true;
                    }
                    None => stuck = Some(i),
                }
            }
            let Some(i) = stuck else { return Ok(()) };
            if !progress {
                let missing = self.first_pending_ref(i);
                bail!(
                    "{}: {missing:?} is not a manifest in this repository (or the references form a cycle)",
                    label(self.seed, i)
                );
            }
        }
    }

    fn record(&mut self, i: usize, item: (Manifest, Vec<Tag>)) -> anyhow::Result<()> {
        let digest = item.0.digest.to_string();
        if let Some(other) = self.by_digest.insert(digest.clone(), i) {
            bail!(
                "{} has the same digest {digest} as {}; give it a distinct alias or body",
                label(self.seed, i),
                label(self.seed, other)
            );
        }
        self.done[i] = Some(item);
        Ok(())
    }

    fn lookup(&self, i: usize, reference: &str) -> anyhow::Result<Lookup<'_>> {
        let index = if reference.starts_with("sha256:") {
            self.by_digest.get(reference).copied()
        } else {
            let found = self.aliases.get(reference).copied();
            Some(found.ok_or_else(|| {
                anyhow!(
                    "{}: no manifest with alias {reference:?}",
                    label(self.seed, i)
                )
            })?)
        };
        Ok(match index.and_then(|j| self.done[j].as_ref()) {
            Some((m, _)) => Lookup::Ready(m),
            None => Lookup::Pending,
        })
    }

    fn first_pending_ref(&self, i: usize) -> String {
        let m = &self.seed.manifests[i];
        let mut refs = m
            .subject
            .iter()
            .chain(m.children.iter().map(|c| &c.manifest));
        refs.find(|r| matches!(self.lookup(i, r), Ok(Lookup::Pending)))
            .cloned()
            .unwrap_or_default()
    }

    fn descriptor(&self, i: usize, reference: &str) -> anyhow::Result<Option<Descriptor>> {
        Ok(match self.lookup(i, reference)? {
            Lookup::Pending => None,
            Lookup::Ready(m) => Some(Descriptor {
                media_type: body::content_type(m.media_type.as_deref(), !m.children.is_empty())
                    .to_string(),
                digest: m.digest.to_string(),
                size: m.body.len(),
                platform: None,
            }),
        })
    }

    /// Builds manifest `i`, or `None` if a reference is not resolved yet.
    fn try_resolve(&self, i: usize) -> anyhow::Result<Option<(Manifest, Vec<Tag>)>> {
        let seed = &self.seed.manifests[i];
        let ctx = || label(self.seed, i);
        check_media_type(seed).with_context(ctx)?;
        let (subject, children) = if seed.body.is_some() {
            (None, Vec::new())
        } else {
            let subject = match &seed.subject {
                Some(r) => match self.descriptor(i, r)? {
                    Some(d) => Some(d),
                    None => return Ok(None),
                },
                None => None,
            };
            let Some(children) = self.child_descriptors(i)? else {
                return Ok(None);
            };
            (subject, children)
        };
        let manifest = self
            .build_manifest(i, subject, children)
            .with_context(ctx)?;
        let tags = seed
            .tags
            .iter()
            .map(|t| build_tag(t, &manifest, self.now))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(ctx)?;
        Ok(Some((manifest, tags)))
    }

    fn child_descriptors(&self, i: usize) -> anyhow::Result<Option<Vec<Descriptor>>> {
        let seed = &self.seed.manifests[i];
        let mut out = Vec::with_capacity(seed.children.len());
        for child in &seed.children {
            let Some(mut d) = self.descriptor(i, &child.manifest)? else {
                return Ok(None);
            };
            d.platform = child
                .platform
                .clone()
                .or_else(|| self.platform_of(&d.digest));
            out.push(d);
        }
        Ok(Some(out))
    }

    fn platform_of(&self, digest: &str) -> Option<super::seed::Platform> {
        let (m, _) = self.done[*self.by_digest.get(digest)?].as_ref()?;
        Some(super::seed::Platform {
            architecture: m.architecture.as_deref()?.to_string(),
            os: m.os.as_deref()?.to_string(),
            variant: None,
        })
    }

    fn build_manifest(
        &self,
        i: usize,
        subject: Option<Descriptor>,
        children: Vec<Descriptor>,
    ) -> anyhow::Result<Manifest> {
        let seed = &self.seed.manifests[i];
        let id = match &seed.alias {
            Some(a) => format!("{}/{a}", self.seed.name),
            None => format!("{}/#{i}", self.seed.name),
        };
        let layer_size = seed.image_size.unwrap_or(DEFAULT_LAYER_SIZE);
        let layers: Vec<(String, u64)> = seed
            .layers
            .iter()
            .map(|l| (l.name.clone(), l.size))
            .collect();
        let bytes = match &seed.body {
            Some(serde_json::Value::String(text)) => text.clone().into_bytes(),
            Some(value) => serde_json::to_vec(value)?,
            None => body::synthesize(&BodySpec {
                id: &id,
                media_type: seed.media_type.as_deref(),
                config_media_type: seed.config_media_type.as_deref(),
                artifact_type: seed.artifact_type.as_deref(),
                layer_size,
                layers: &layers,
                subject: subject.clone(),
                children: children.clone(),
            }),
        };
        let (subject, children) = if seed.body.is_some() {
            body::references_in(&bytes)
        } else {
            (
                subject.map(|d| d.digest),
                children.into_iter().map(|d| d.digest).collect(),
            )
        };
        let last_update_time = resolve_time(
            &seed.last_update_time,
            seed.age.as_deref(),
            &Some(format_time(self.now).into()),
            self.now,
        )?;
        let created_time = resolve_time(
            &seed.created_time,
            seed.age.as_deref(),
            &last_update_time,
            self.now,
        )?;
        Ok(Manifest {
            alias: seed.alias.clone(),
            digest: body::sha256_digest(&bytes).into(),
            media_type: seed.media_type.as_deref().map(Text::from),
            image_size: seed.image_size.unwrap_or(match layers.is_empty() {
                true => bytes.len() as u64 + 512 + layer_size,
                false => bytes.len() as u64 + 512 + layers.iter().map(|l| l.1).sum::<u64>(),
            }),
            body: bytes.into(),
            created_time,
            last_update_time,
            attrs: Attributes {
                delete_enabled: seed.delete_enabled,
                write_enabled: seed.write_enabled,
                read_enabled: seed.read_enabled,
                list_enabled: seed.list_enabled,
            },
            subject: subject.map(Text::from),
            children,
            artifact_type: seed.artifact_type.clone(),
            config_media_type: seed.config_media_type.clone(),
            architecture: seed.architecture.as_deref().map(Text::from),
            os: seed.os.as_deref().map(Text::from),
            tags: Vec::new(),
        })
    }
}

fn check_media_type(seed: &ManifestSeed) -> anyhow::Result<()> {
    if let Some(mt) = &seed.media_type
        && !MEDIA_TYPES.contains(&mt.as_str())
    {
        bail!("unsupported media type {mt:?}; expected one of {MEDIA_TYPES:?} or null");
    }
    if !seed.children.is_empty()
        && seed.media_type.is_some()
        && !body::is_index(seed.media_type.as_deref())
    {
        bail!("only an index or manifest list can have children");
    }
    Ok(())
}

fn build_tag(seed: &TagSeed, manifest: &Manifest, now: DateTime<Utc>) -> anyhow::Result<Tag> {
    let ctx = || format!("tag {:?}", seed.name);
    Ok(Tag {
        name: seed.name.as_str().into(),
        digest: manifest.digest.clone(),
        created_time: resolve_time(
            &seed.created_time,
            seed.age.as_deref(),
            &manifest.created_time,
            now,
        )
        .with_context(ctx)?,
        last_update_time: resolve_time(
            &seed.last_update_time,
            seed.age.as_deref(),
            &manifest.last_update_time,
            now,
        )
        .with_context(ctx)?,
        attrs: Attributes {
            delete_enabled: seed.delete_enabled,
            write_enabled: seed.write_enabled,
            read_enabled: seed.read_enabled,
            list_enabled: seed.list_enabled,
        },
    })
}

/// Digests of a seed's manifests, resolved as loading resolves them (here, beside the
/// loader, so that the seed format depends on nothing).
impl Seed {
    /// Digest of the manifest `alias` in `repo`, or an error if it cannot be resolved.
    pub fn try_digest(&self, repo: &str, alias: &str) -> anyhow::Result<String> {
        let digests = self.digests(repo)?;
        digests
            .get(alias)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("repository {repo:?} has no manifest alias {alias:?}"))
    }

    /// Digest of the manifest `alias` in `repo`.
    ///
    /// # Panics
    /// If the seed is invalid or the alias is unknown (a test helper).
    pub fn digest(&self, repo: &str, alias: &str) -> String {
        match self.try_digest(repo, alias) {
            Ok(digest) => digest,
            Err(e) => panic!("Seed::digest: {e:#}"),
        }
    }

    /// All alias → digest pairs of one repository (efficient for large seeds).
    pub fn digests(&self, repo: &str) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let seed = self
            .repositories
            .iter()
            .find(|r| r.name == repo)
            .ok_or_else(|| anyhow::anyhow!("seed has no repository {repo:?}"))?;
        let resolved = resolve_repo(seed, chrono::Utc::now())?;
        Ok(resolved
            .into_iter()
            .filter_map(|(m, _)| m.alias.map(|a| (a, m.digest.to_string())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{ManifestSeed, OCI_INDEX};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn ages_and_format() {
        assert_eq!(parse_age("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse_age("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_age("0").unwrap(), Duration::zero());
        assert!(parse_age("12").is_err());
        assert!(parse_age("3y").is_err());
        assert!(parse_age("").is_err());
        assert_eq!(format_time(now()), "2024-05-01T12:00:00.1234567Z");
    }

    #[test]
    fn digest_is_sha256_of_body_and_times_resolve() {
        let repo = RepoSeed::new("app")
            .manifest(
                ManifestSeed::image("a")
                    .age("2d")
                    .tag(TagSeed::new("v1").age("1h")),
            )
            .manifest(
                ManifestSeed::index("i")
                    .child("a")
                    .updated(TimeSpec::at("date"))
                    .created(TimeSpec::Null),
            );
        let out = resolve_repo(&repo, now()).unwrap();
        for (m, _) in &out {
            assert_eq!(&*m.digest, body::sha256_digest(&m.body));
        }
        let (a, tags) = &out[0];
        assert_eq!(
            a.last_update_time.as_deref(),
            Some("2024-04-29T12:00:00.1234567Z")
        );
        assert_eq!(
            tags[0].last_update_time.as_deref(),
            Some("2024-05-01T11:00:00.1234567Z")
        );
        let (i, _) = &out[1];
        assert_eq!(i.media_type.as_deref(), Some(OCI_INDEX));
        assert_eq!(i.children, vec![a.digest.to_string()]);
        assert_eq!(i.last_update_time.as_deref(), Some("date"));
        assert_eq!(i.created_time, None);
        let body: serde_json::Value = serde_json::from_slice(&i.body).unwrap();
        assert_eq!(body["manifests"][0]["platform"]["architecture"], "amd64");
    }

    #[test]
    fn forward_references_resolve() {
        let repo = RepoSeed::new("app")
            .manifest(ManifestSeed::artifact("sig", "application/example").subject("a"))
            .manifest(ManifestSeed::image("a"));
        let out = resolve_repo(&repo, now()).unwrap();
        assert_eq!(out[0].0.subject.as_deref(), Some(&*out[1].0.digest));
    }

    fn error_of(repo: RepoSeed) -> String {
        format!("{:#}", resolve_repo(&repo, now()).unwrap_err())
    }

    #[test]
    fn invalid_seeds_are_explained() {
        let e = error_of(RepoSeed::new("app").manifest(ManifestSeed::index("i").child("ghost")));
        assert!(
            e.contains("\"app\"") && e.contains("\"i\"") && e.contains("ghost"),
            "{e}"
        );
        let e =
            error_of(RepoSeed::new("app").manifest(ManifestSeed::image("s").subject("sha256:00")));
        assert!(e.contains("\"s\"") && e.contains("sha256:00"), "{e}");
        let e = error_of(
            RepoSeed::new("app")
                .manifest(ManifestSeed::image("a").tag("v1"))
                .manifest(ManifestSeed::image("b").tag("v1")),
        );
        assert!(e.contains("\"v1\"") && e.contains("twice"), "{e}");
        let e = error_of(RepoSeed::new("app").manifest(ManifestSeed::new("x", Some("text/plain"))));
        assert!(e.contains("\"x\"") && e.contains("text/plain"), "{e}");
        let e = error_of(RepoSeed::new("app").manifest(ManifestSeed::image("x").age("3y")));
        assert!(e.contains("\"x\"") && e.contains("3y"), "{e}");
        let e = error_of(RepoSeed::new("App"));
        assert!(e.contains("App"), "{e}");
        let e = error_of(
            RepoSeed::new("app")
                .manifest(ManifestSeed::index("p").child("q"))
                .manifest(ManifestSeed::index("q").child("p")),
        );
        assert!(e.contains("cycle"), "{e}");
    }
}
