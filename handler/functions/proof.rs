//! How a webhook caller proves it knows the secret, read strictly and checked in constant
//! time.
//!
//! - `X-Hub-Signature-256: sha256=<hex>` (GitHub style): exactly `sha256=` followed by 64
//!   lowercase hex digits, the HMAC-SHA256 of the raw body; checked with `hmac`'s
//!   constant-time `verify_slice`.
//! - `Authorization: Bearer <secret>` (ACR webhooks can only send static headers): the token is
//!   compared with the secret through HMAC-SHA256 tags of both under a fixed key, so the
//!   comparison is constant time and does not depend on, nor reveal, the secret's length.
//!
//! A request carrying either header more than once is refused (400): which copy a proxy or a
//! framework would pick is not something to guess. A header that is present but malformed is
//! a proof that does not verify (401). When both headers are present the signature is the
//! proof (the stronger one: it covers the body).

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header (GitHub style).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The key of the HMAC tags a bearer token and the secret are compared through. It is not a
/// secret: it only turns both values into fixed-length tags before the constant-time check.
const BEARER_COMPARISON_KEY: &[u8] = b"acr-purge bearer comparison";

/// How the caller proved it knows the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof<'a> {
    /// `X-Hub-Signature-256: sha256=<64 lowercase hex>`, the 32 bytes decoded; `None` when the
    /// header is present but malformed (it then verifies against nothing).
    Signature(Option<[u8; 32]>),
    /// `Authorization: Bearer <secret>`.
    Bearer(&'a str),
}

/// Why the headers carry no usable proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Neither header is present (or `Authorization` is not a bearer token).
    #[error("missing X-Hub-Signature-256 or Authorization: Bearer")]
    Missing,
    /// A proof header is given more than once.
    #[error("the {0} header is given more than once")]
    Duplicate(&'static str),
}

/// Finds the caller's proof in the headers.
pub fn proof(headers: &HeaderMap) -> Result<Proof<'_>, ProofError> {
    let mut signatures = headers.get_all(SIGNATURE_HEADER).iter();
    if let Some(signature) = signatures.next() {
        if signatures.next().is_some() {
            return Err(ProofError::Duplicate("X-Hub-Signature-256"));
        }
        return Ok(Proof::Signature(
            signature.to_str().ok().and_then(parse_signature),
        ));
    }
    let mut authorizations = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let Some(authorization) = authorizations.next() else {
        return Err(ProofError::Missing);
    };
    if authorizations.next().is_some() {
        return Err(ProofError::Duplicate("Authorization"));
    }
    let authorization = authorization.to_str().map_err(|_| ProofError::Missing)?;
    let (scheme, token) = authorization.split_once(' ').ok_or(ProofError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ProofError::Missing);
    }
    Ok(Proof::Bearer(token))
}

/// Reads `sha256=` + exactly 64 lowercase hex digits.
fn parse_signature(header: &str) -> Option<[u8; 32]> {
    let hex = header.strip_prefix("sha256=")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
    }
    Some(bytes)
}

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Whether `proof` shows knowledge of `secret` for this `body`, in constant time.
pub fn verify(proof: Proof<'_>, secret: &str, body: &[u8]) -> bool {
    match proof {
        Proof::Signature(None) => false,
        Proof::Signature(Some(expected)) => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                return false;
            };
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }
        Proof::Bearer(token) => {
            let Ok(mut secret_tag) = Hmac::<Sha256>::new_from_slice(BEARER_COMPARISON_KEY) else {
                return false;
            };
            secret_tag.update(secret.as_bytes());
            let expected = secret_tag.finalize().into_bytes();
            let Ok(mut token_tag) = Hmac::<Sha256>::new_from_slice(BEARER_COMPARISON_KEY) else {
                return false;
            };
            token_tag.update(token.as_bytes());
            token_tag.verify_slice(&expected).is_ok()
        }
    }
}

/// Whether the proof needs the body to be checked (a signature does, a bearer token does not).
pub fn covers_body(proof: Proof<'_>) -> bool {
    matches!(proof, Proof::Signature(_))
}

/// `sha256=<hex>` for `body` (what a sender computes).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn signatures_and_bearer_tokens() {
        let body = br#"{"repositories":["app"]}"#;
        let good = sign("s3cret", body);
        let h = headers(&[("x-hub-signature-256", &good)]);
        assert!(verify(proof(&h).unwrap(), "s3cret", body));
        assert!(!verify(proof(&h).unwrap(), "other", body));
        assert!(!verify(proof(&h).unwrap(), "s3cret", b"{}"));
        let h = headers(&[("authorization", "Bearer s3cret")]);
        assert!(verify(proof(&h).unwrap(), "s3cret", body));
        assert!(!verify(proof(&h).unwrap(), "s3cret2", body));
        assert!(!verify(proof(&h).unwrap(), "s3cre", body));
        assert!(!verify(proof(&h).unwrap(), "", body));
        let h = headers(&[("authorization", "bearer s3cret")]);
        assert!(verify(proof(&h).unwrap(), "s3cret", body));
        assert_eq!(
            proof(&headers(&[("authorization", "Basic abc")])),
            Err(ProofError::Missing)
        );
        assert_eq!(proof(&HeaderMap::new()), Err(ProofError::Missing));
    }

    #[test]
    fn only_sha256_and_64_lowercase_hex_digits_are_a_signature() {
        let body = b"{}";
        let good = sign("k", body);
        let hex = good.strip_prefix("sha256=").unwrap();
        let check = |header: &str| {
            let h = headers(&[("x-hub-signature-256", header)]);
            verify(proof(&h).unwrap(), "k", body)
        };
        assert!(check(&good));
        // The lenient parser read `+f` as `0f` and accepted uppercase hex.
        assert!(!check(&format!("sha256={}", hex.to_uppercase())));
        assert!(!check(&format!("SHA256={hex}")));
        assert!(!check(&format!("sha256={hex}0")));
        assert!(!check(&format!("sha256={}", &hex[..62])));
        assert!(!check(&format!("sha256= {hex}")));
        assert!(!check("sha256="));
        assert!(!check("md5=00"));
        let mut with_plus = String::from("sha256=+f");
        with_plus.push_str(&"0".repeat(62));
        assert_eq!(parse_signature(&with_plus), None);
    }

    #[test]
    fn duplicate_proof_headers_are_refused() {
        let good = sign("k", b"{}");
        let h = headers(&[
            ("x-hub-signature-256", &good),
            ("x-hub-signature-256", &good),
        ]);
        assert_eq!(proof(&h), Err(ProofError::Duplicate("X-Hub-Signature-256")));
        let h = headers(&[("authorization", "Bearer k"), ("authorization", "Bearer x")]);
        assert_eq!(proof(&h), Err(ProofError::Duplicate("Authorization")));
    }

    #[test]
    fn a_signature_is_preferred_over_a_bearer_token() {
        let h = headers(&[
            ("authorization", "Bearer k"),
            ("x-hub-signature-256", "sha256=00"),
        ]);
        assert_eq!(proof(&h), Ok(Proof::Signature(None)));
        assert!(!verify(proof(&h).unwrap(), "k", b"{}"));
    }
}
