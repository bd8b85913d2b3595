//! AWS Signature Version 4 (`AWS4-HMAC-SHA256` in the `Authorization` header): checking the
//! signatures that boto3, botocore and the AWS CLI put on their requests, and signing our own CLI's
//! requests the same way.
//!
//! The canonical request is built as botocore builds it for every service other than S3:
//!
//! - the path as sent (still percent-encoded) has its `.`/`..` segments and repeated slashes removed
//!   and is then URI-encoded again, so `%3A` becomes `%253A`; an empty path is `/`;
//! - the query is split on `&` and each pair on its first `=`; keys and values are percent-decoded,
//!   re-encoded with only `A-Z a-z 0-9 - _ . ~` left bare, and sorted by key, then value (`+` is a
//!   literal plus, not a space);
//! - each signed header is `name:value`, the value trimmed with inner runs of whitespace collapsed
//!   to one space, repeated headers joined with `,`, the names lowercase and sorted.
//!
//! This module is pure computation: it takes the pieces of a request as strings and never reads a
//! body, a clock or a key store. It does not handle presigned URLs (`X-Amz-Signature` in the query),
//! S3's unnormalised paths, chunked `STREAMING-*` payloads or SigV4A.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only signing algorithm accepted and produced.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last element of every credential scope.
pub const TERMINATOR: &str = "aws4_request";
/// Largest difference allowed between the request's X-Amz-Date and the server clock (AWS: 15 min).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// The `X-Amz-Content-SHA256` value of a client that did not hash its body; refused here.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty body, in lowercase hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

/// The signing key a request with an unknown access key id is checked with, so that it costs what
/// a known key with a wrong secret costs; a match with it is still refused.
const UNKNOWN_KEY_SIGNING_KEY: [u8; 32] = [0; 32];

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// the request has no `Authorization` header
    #[error("the request has no Authorization header; sign it with AWS Signature Version 4")]
    Missing,
    /// the `Authorization` header names another algorithm
    #[error(
        "the Authorization header uses {0:?}; lambent accepts only {ALGORITHM} (AWS Signature Version 4)"
    )]
    UnsupportedAlgorithm(String),
    /// `Credential=`, `SignedHeaders=` or `Signature=` is absent
    #[error(
        "the Authorization header has no {0}= part; expected `{ALGORITHM} Credential=KEY_ID/yyyymmdd/REGION/SERVICE/{TERMINATOR}, SignedHeaders=host;x-amz-date, Signature=HEX`"
    )]
    MissingAuthPart(&'static str),
    /// a part that is not `Name=value`, is not one of the three, or is repeated
    #[error(
        "{0:?} in the Authorization header is not one of Credential=, SignedHeaders= or Signature= (each given once)"
    )]
    MalformedAuthPart(String),
    /// the credential is not `KEY_ID/yyyymmdd/REGION/SERVICE/aws4_request`
    #[error("the credential {0:?} is not of the form KEY_ID/yyyymmdd/REGION/SERVICE/{TERMINATOR}")]
    BadCredential(String),
    /// the credential scope does not end in `aws4_request`
    #[error("the credential scope ends in {0:?}; it must end in {TERMINATOR}")]
    BadTerminator(String),
    /// `SignedHeaders` is empty or has an empty name
    #[error("SignedHeaders={0:?} is not a ';'-separated list of header names")]
    BadSignedHeaders(String),
    /// the signature is not 64 hex digits
    #[error("the signature {0:?} is not 64 hex digits (a hex-encoded HMAC-SHA256)")]
    BadSignature(String),
    /// no `X-Amz-Date` header
    #[error("the request has no X-Amz-Date header; a SigV4 signer sets it to the signing time")]
    MissingDate,
    /// `X-Amz-Date` is not `yyyymmddThhmmssZ`
    #[error(
        "X-Amz-Date {0:?} is not a UTC time of the form yyyymmddThhmmssZ, e.g. 20150830T123600Z"
    )]
    BadDate(String),
    /// `X-Amz-Date` is not among the signed headers
    #[error("X-Amz-Date is not listed in SignedHeaders; the signing time must be signed")]
    DateNotSigned,
    /// `Host` is not among the signed headers
    #[error("the Host header is not listed in SignedHeaders; it must be signed")]
    HostNotSigned,
    /// the credential scope's day is not the day of `X-Amz-Date`
    #[error(
        "the credential scope date {scope} is not the day of X-Amz-Date {amz_date}; sign with the scope of the signing day"
    )]
    ScopeDateMismatch {
        /// `yyyymmdd` from the credential
        scope: String,
        /// the `X-Amz-Date` header
        amz_date: String,
    },
    /// signed for another region
    #[error(
        "the request is signed for region {signed} but this server's region is {expected}; set the client's region to {expected}"
    )]
    WrongRegion {
        /// the region in the credential scope
        signed: String,
        /// this server's region
        expected: String,
    },
    /// signed for another service
    #[error(
        "the request is signed for service {signed} but this endpoint is service {expected}; sign it for {expected}"
    )]
    WrongService {
        /// the service in the credential scope
        signed: String,
        /// the service this endpoint is
        expected: String,
    },
    /// `X-Amz-Date` is too far from the server clock
    #[error(
        "the request was signed at {signed_at} but this server's clock says {server_time}, {skew_secs} s apart (at most {MAX_CLOCK_SKEW_SECS} s allowed); check the client's clock, or sign the request again"
    )]
    ClockSkew {
        /// the `X-Amz-Date` header
        signed_at: String,
        /// the server's time, in the same format
        server_time: String,
        /// how far apart the two are
        skew_secs: u64,
    },
    /// a header listed in `SignedHeaders` is not in the request
    #[error(
        "header {0} is listed in SignedHeaders but the request does not carry it; was it removed on the way?"
    )]
    MissingSignedHeader(String),
    /// `X-Amz-Content-SHA256` is not the hash of the body
    #[error("{}", body_hash_message(declared, actual))]
    BodyHashMismatch {
        /// the `X-Amz-Content-SHA256` header
        declared: String,
        /// the SHA-256 of the body received, in hex
        actual: String,
    },
    /// `X-Amz-Content-SHA256` is `UNSIGNED-PAYLOAD`
    #[error(
        "X-Amz-Content-SHA256 is {UNSIGNED_PAYLOAD} but lambent requires signed payloads; send the SHA-256 of the body in hex"
    )]
    UnsignedPayload,
    /// `X-Amz-Content-SHA256` is neither a SHA-256 in hex nor `UNSIGNED-PAYLOAD`
    #[error(
        "X-Amz-Content-SHA256 is {0:?}, not the SHA-256 of the body in hex (chunked STREAMING-* payloads are not supported)"
    )]
    BadContentSha256(String),
    /// the signature is not the one computed with the key's secret, or the access key id is not
    /// known: the two get this one answer, so that nobody can probe which key ids exist
    #[error(
        "the signature does not match: the access key id is not known here or the secret access key is not its secret, or something changed the path, query, body or signed headers after signing; check the client's credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile)"
    )]
    SignatureMismatch,
}

/// The message of [`SigError::BodyHashMismatch`].
fn body_hash_message(declared: &str, actual: &str) -> String {
    format!(
        "X-Amz-Content-SHA256 is {declared} but the body received hashes to {actual}; \
         the body changed after signing, or the hash was taken over other bytes"
    )
}

/// The body hash a request declares in `X-Amz-Content-SHA256`, lowercase: `None` when it sends
/// none (then only its body tells the hash the signature covers). `UNSIGNED-PAYLOAD`, chunked
/// payloads and anything that is not 64 hex digits are refused.
pub fn declared_payload_hash(headers: &[(&str, &str)]) -> Result<Option<String>, SigError> {
    let Some(declared) = canonical_header_value(headers, "x-amz-content-sha256") else {
        return Ok(None);
    };
    if declared == UNSIGNED_PAYLOAD {
        return Err(SigError::UnsignedPayload);
    }
    if declared.len() != 64 || !declared.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = declared.chars().take(80).collect();
        return Err(SigError::BadContentSha256(shown));
    }
    Ok(Some(declared.to_ascii_lowercase()))
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id, the first element of the credential.
    pub access_key_id: String,
    /// The scope's day, `yyyymmdd`.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service.
    pub service: String,
    /// The signed header names, lowercased, in the order given.
    pub signed_headers: Vec<String>,
    /// The signature, lowercase hex.
    pub signature: String,
}

impl Authorization {
    /// The credential scope, `yyyymmdd/REGION/SERVICE/aws4_request`.
    pub fn scope(&self) -> String {
        credential_scope(&self.date, &self.region, &self.service)
    }

    /// Whether the header `name` (any case) is signed.
    pub fn signs(&self, name: &str) -> bool {
        self.signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Renders the header value, `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
impl fmt::Display for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.access_key_id,
            self.scope(),
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// The credential scope `yyyymmdd/REGION/SERVICE/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{TERMINATOR}")
}

/// Parses an `Authorization` header value such as `AWS4-HMAC-SHA256
/// Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date,
/// Signature=5d67...`. The spaces after the commas are optional.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let value = value.trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let malformed = || SigError::MalformedAuthPart(part.to_owned());
        let (name, value) = part.split_once('=').ok_or_else(malformed)?;
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed()),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed());
        }
    }
    let credential = credential.ok_or(SigError::MissingAuthPart("Credential"))?;
    let signed_headers = signed_headers.ok_or(SigError::MissingAuthPart("SignedHeaders"))?;
    let signature = signature.ok_or(SigError::MissingAuthPart("Signature"))?;

    let bad_credential = || SigError::BadCredential(credential.to_owned());
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(bad_credential());
    };
    if [access_key_id, region, service]
        .iter()
        .any(|s| s.is_empty())
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad_credential());
    }
    if terminator != TERMINATOR {
        return Err(SigError::BadTerminator(terminator.to_owned()));
    }

    let names: Vec<String> = signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    if names
        .iter()
        .any(|n| n.is_empty() || n.contains(char::is_whitespace))
    {
        return Err(SigError::BadSignedHeaders(signed_headers.to_owned()));
    }

    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::BadSignature(signature.to_owned()));
    }

    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: names,
        signature: signature.to_ascii_lowercase(),
    })
}

/// A request as seen on the wire. Header names are matched case-insensitively; values are raw
/// bytes-as-str.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as sent, without the `?`.
    pub raw_query: Option<&'a str>,
    /// Every header, in the order received; a name may occur more than once.
    pub headers: &'a [(&'a str, &'a str)],
    /// SHA-256 of the body, lowercase hex ([`EMPTY_SHA256`] for no body).
    pub payload_sha256_hex: &'a str,
}

/// The canonical request for the headers `signed_headers` (any case, any order). Fails when a
/// signed header is not in the request.
pub fn canonical_request(
    req: &RequestParts<'_>,
    signed_headers: &[String],
) -> Result<String, SigError> {
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let headers = names
        .into_iter()
        .map(|name| match canonical_header_value(req.headers, &name) {
            Some(value) => Ok((name, value)),
            None => Err(SigError::MissingSignedHeader(name)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(assemble_canonical_request(req, &headers))
}

/// Joins the parts of a canonical request; `headers` are lowercase, sorted and canonical.
fn assemble_canonical_request(req: &RequestParts<'_>, headers: &[(String, String)]) -> String {
    let mut out = String::new();
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&canonical_uri(req.raw_path));
    out.push('\n');
    out.push_str(&canonical_query(req.raw_query.unwrap_or("")));
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(req.payload_sha256_hex);
    out
}

/// The canonical URI of a path as sent: dot segments and repeated slashes removed, then every byte
/// outside `A-Z a-z 0-9 - _ . ~ /` percent-encoded (again).
pub fn canonical_uri(raw_path: &str) -> String {
    let mut out = String::with_capacity(raw_path.len() + 8);
    uri_encode(normalize_path(raw_path).as_bytes(), true, &mut out);
    out
}

/// Removes `.` and `..` segments (RFC 3986, 5.2.4) and empty segments, as botocore does; an empty
/// path becomes `/`.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query of a query string as sent: pairs percent-decoded, re-encoded with the
/// unreserved set, sorted by key then value, joined with `&`; a key without `=` gets an empty value.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut k = String::with_capacity(key.len());
            let mut v = String::with_capacity(value.len());
            uri_encode(&percent_decode(key), false, &mut k);
            uri_encode(&percent_decode(value), false, &mut v);
            (k, v)
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// Appends `bytes` to `out`, percent-encoding (uppercase hex) all but `A-Z a-z 0-9 - _ . ~`, and
/// `/` when `keep_slash`.
fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is, and so does `+`.
fn percent_decode(s: &str) -> Vec<u8> {
    fn hex_digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_digit);
            let lo = bytes.get(i + 2).copied().and_then(hex_digit);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The canonical value of header `name`: each occurrence trimmed with inner whitespace runs
/// collapsed to one space, occurrences joined with `,`; `None` when the header is absent.
fn canonical_header_value(headers: &[(&str, &str)], name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The string to sign: the algorithm, the time, the scope and the hash of the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of a secret for one day, region and service; it changes daily, so a server can
/// cache it per access key and day.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// The signature of a string to sign, lowercase hex.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SHA-256 of a body that arrives in pieces, for checking it against `X-Amz-Content-SHA256`.
#[derive(Debug, Clone, Default)]
pub struct PayloadHasher(Sha256);

impl PayloadHasher {
    /// Adds the next piece.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of all pieces, lowercase hex.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days in a month of the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses X-Amz-Date (`yyyymmddThhmmssZ`, UTC) to Unix seconds; refuses anything else, including
/// impossible dates such as February 29th of a common year.
pub fn parse_amz_date(s: &str) -> Result<i64, SigError> {
    let bad = || SigError::BadDate(s.to_owned());
    let bytes = s.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return Err(bad());
    }
    let number = |from: usize, to: usize| -> Result<i64, SigError> {
        bytes[from..to].iter().try_fold(0_i64, |acc, &b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err(bad())
            }
        })
    };
    let (year, month, day) = (number(0, 4)?, number(4, 6)?, number(6, 8)?);
    let (hour, minute, second) = (number(9, 11)?, number(11, 13)?, number(13, 15)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Formats Unix seconds as X-Amz-Date, `yyyymmddThhmmssZ` (exact for the years 0 to 9999).
pub fn format_amz_date(unix_secs: i64) -> String {
    let (year, month, day) = civil_from_days(unix_secs.div_euclid(86_400));
    let secs = unix_secs.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Server side: checks everything except looking up the secret. `key_for` is given the
/// Authorization (so the caller can look up the secret by access key id) and returns the cached
/// signing key (or `None` when the key id is unknown, giving [`SigError::SignatureMismatch`] as a
/// wrong secret does). It is called only once every other check has passed.
///
/// The path the signature covers is the normalised one (see [`canonical_uri`]), so `/a/../b` and
/// `//b` verify like `/b`; route on the same path or refuse such paths.
pub fn verify(
    req: &RequestParts<'_>,
    expected_region: &str,
    expected_service: &str,
    now_unix: i64,
    key_for: impl FnOnce(&Authorization) -> Option<[u8; 32]>,
) -> Result<Authorization, SigError> {
    let (auth, amz_date) = check_headers(req, expected_region, expected_service, now_unix)?;
    if let Some(declared) = declared_payload_hash(req.headers)?
        && !declared.eq_ignore_ascii_case(req.payload_sha256_hex)
    {
        return Err(SigError::BodyHashMismatch {
            declared,
            actual: req.payload_sha256_hex.to_owned(),
        });
    }

    let canonical = canonical_request(req, &auth.signed_headers)?;
    let to_sign = string_to_sign(&amz_date, &auth.scope(), &canonical);
    // An unknown key id takes the same path as a wrong secret, down to the comparison, and gets
    // the same error.
    let key = key_for(&auth);
    let known = key.is_some();
    let expected = signature(&key.unwrap_or(UNKNOWN_KEY_SIGNING_KEY), &to_sign);
    let matches = bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes()));
    if matches && known {
        Ok(auth)
    } else {
        Err(SigError::SignatureMismatch)
    }
}

/// Every check of [`verify`] that needs neither the key nor the body: the `Authorization` header
/// parses, the date is signed, matches the scope and is within the clock skew, region and service
/// are this server's, `host` and every signed header are there, and `X-Amz-Content-SHA256` (if
/// any) is a hash. Returns the header and `X-Amz-Date`.
///
/// A server that must read the body before it can [`verify`] runs this first and looks the key id
/// up after it: a request with an unknown key then fails only where a wrong secret would, with
/// the same error, and no other check tells the two apart.
pub fn check_headers(
    req: &RequestParts<'_>,
    expected_region: &str,
    expected_service: &str,
    now_unix: i64,
) -> Result<(Authorization, String), SigError> {
    let header = req
        .headers
        .iter()
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| *value)
        .ok_or(SigError::Missing)?;
    let auth = parse_authorization(header)?;

    let amz_date =
        canonical_header_value(req.headers, "x-amz-date").ok_or(SigError::MissingDate)?;
    if !auth.signs("x-amz-date") {
        return Err(SigError::DateNotSigned);
    }
    let signed_at = parse_amz_date(&amz_date)?;
    if amz_date.get(..8) != Some(auth.date.as_str()) {
        return Err(SigError::ScopeDateMismatch {
            scope: auth.date,
            amz_date,
        });
    }
    if auth.region != expected_region {
        return Err(SigError::WrongRegion {
            signed: auth.region,
            expected: expected_region.to_owned(),
        });
    }
    if auth.service != expected_service {
        return Err(SigError::WrongService {
            signed: auth.service,
            expected: expected_service.to_owned(),
        });
    }
    let skew_secs = now_unix.abs_diff(signed_at);
    if skew_secs > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(SigError::ClockSkew {
            signed_at: amz_date,
            server_time: format_amz_date(now_unix),
            skew_secs,
        });
    }
    if !auth.signs("host") {
        return Err(SigError::HostNotSigned);
    }
    if let Some(missing) = auth
        .signed_headers
        .iter()
        .find(|name| canonical_header_value(req.headers, name).is_none())
    {
        return Err(SigError::MissingSignedHeader(missing.clone()));
    }
    declared_payload_hash(req.headers)?;
    Ok((auth, amz_date))
}

/// Client side: the headers to add (`authorization`, `x-amz-date`, `x-amz-content-sha256`) for a
/// request; signs host, x-amz-date, x-amz-content-sha256 and content-type if present.
///
/// `req.headers` must carry `host` (as the server will see it, with the port unless it is the
/// scheme's default); any `x-amz-date` or `x-amz-content-sha256` in it is ignored and replaced by
/// the returned ones, and `x-amz-content-sha256` is `req.payload_sha256_hex`.
pub fn sign(
    req: &RequestParts<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    now_unix: i64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now_unix);
    let date: String = amz_date.chars().take_while(|c| *c != 'T').collect();
    // Sorted by name, as the canonical request needs them.
    let mut headers: Vec<(String, String)> = ["content-type", "host"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), canonical_header_value(req.headers, name)?)))
        .collect();
    headers.push((
        "x-amz-content-sha256".to_owned(),
        req.payload_sha256_hex.to_owned(),
    ));
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));

    let canonical = assemble_canonical_request(req, &headers);
    let scope = credential_scope(&date, region, service);
    let key = signing_key(secret, &date, region, service);
    let auth = Authorization {
        access_key_id: access_key_id.to_owned(),
        date,
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: headers.iter().map(|(n, _)| n.clone()).collect(),
        signature: signature(&key, &string_to_sign(&amz_date, &scope, &canonical)),
    };
    vec![
        ("authorization".to_owned(), auth.to_string()),
        ("x-amz-date".to_owned(), amz_date),
        (
            "x-amz-content-sha256".to_owned(),
            req.payload_sha256_hex.to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// The time of every case in AWS's published test suite.
    const SUITE_DATE: &str = "20150830T123600Z";

    fn suite_now() -> i64 {
        parse_amz_date(SUITE_DATE).expect("suite date")
    }

    /// A case of AWS's SigV4 test suite (service `service`, region us-east-1).
    struct SuiteCase {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        query: Option<&'static str>,
        /// Headers besides host and x-amz-date.
        headers: &'static [(&'static str, &'static str)],
        body: &'static [u8],
        signed: &'static str,
        signature: &'static str,
    }

    const SUITE: &[SuiteCase] = &[
        SuiteCase {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        SuiteCase {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: Some("Param2=value2&Param1=value1"),
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        SuiteCase {
            name: "get-vanilla-query-order-key",
            method: "GET",
            path: "/",
            query: Some("Param1=value2&Param1=Value1"),
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
        },
        SuiteCase {
            name: "get-vanilla-query-order-value",
            method: "GET",
            path: "/",
            query: Some("Param1=value2&Param1=value1"),
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
        },
        SuiteCase {
            name: "get-vanilla-query-unreserved",
            method: "GET",
            path: "/",
            query: Some(
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            ),
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        },
        SuiteCase {
            name: "get-vanilla-utf8-query",
            method: "GET",
            path: "/",
            query: Some("\u{1234}=bar"),
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        },
        SuiteCase {
            name: "get-utf8",
            method: "GET",
            path: "/\u{1234}",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        },
        SuiteCase {
            name: "get-unreserved",
            method: "GET",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        },
        SuiteCase {
            name: "normalize-path/get-relative-relative",
            method: "GET",
            path: "/example1/example2/../..",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        SuiteCase {
            name: "normalize-path/get-slashes",
            method: "GET",
            path: "//example//",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        },
        SuiteCase {
            name: "normalize-path/get-slash-pointless-dot",
            method: "GET",
            path: "/./example",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        },
        SuiteCase {
            name: "normalize-path/get-space",
            method: "GET",
            path: "/example space/",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        SuiteCase {
            name: "get-header-value-trim",
            method: "GET",
            path: "/",
            query: None,
            headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            body: b"",
            signed: "host;my-header1;my-header2;x-amz-date",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        },
        SuiteCase {
            name: "get-header-key-duplicate",
            method: "GET",
            path: "/",
            query: None,
            headers: &[
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            body: b"",
            signed: "host;my-header1;x-amz-date",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        },
        SuiteCase {
            name: "post-vanilla",
            method: "POST",
            path: "/",
            query: None,
            headers: &[],
            body: b"",
            signed: "host;x-amz-date",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        SuiteCase {
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: None,
            headers: &[("Content-Type", "application/x-www-form-urlencoded")],
            body: b"Param1=value1",
            signed: "content-type;host;x-amz-date",
            signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        },
        SuiteCase {
            name: "post-sts-header-before",
            method: "POST",
            path: "/",
            query: None,
            headers: &[(
                "X-Amz-Security-Token",
                "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
            )],
            body: b"",
            signed: "host;x-amz-date;x-amz-security-token",
            signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        },
    ];

    #[test]
    fn aws_test_suite_signs_and_verifies() {
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        for case in SUITE {
            let mut headers = vec![
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", SUITE_DATE),
            ];
            headers.extend_from_slice(case.headers);
            let hash = sha256_hex(case.body);
            let req = RequestParts {
                method: case.method,
                raw_path: case.path,
                raw_query: case.query,
                headers: &headers,
                payload_sha256_hex: &hash,
            };
            let signed: Vec<String> = case.signed.split(';').map(str::to_owned).collect();
            let canonical = canonical_request(&req, &signed).expect(case.name);
            let to_sign = string_to_sign(
                SUITE_DATE,
                "20150830/us-east-1/service/aws4_request",
                &canonical,
            );
            assert_eq!(signature(&key, &to_sign), case.signature, "{}", case.name);

            // The server side accepts the suite's Authorization header.
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={}, Signature={}",
                case.signed, case.signature
            );
            headers.push(("Authorization", &auth));
            let req = RequestParts {
                method: case.method,
                raw_path: case.path,
                raw_query: case.query,
                headers: &headers,
                payload_sha256_hex: &hash,
            };
            let verified = verify(&req, "us-east-1", "service", suite_now(), |a| {
                (a.access_key_id == KEY_ID).then_some(key)
            });
            assert_eq!(
                verified.map(|a| a.signature).as_deref(),
                Ok(case.signature),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn iam_list_users_example_from_the_docs() {
        let headers = [
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ];
        let req = RequestParts {
            method: "GET",
            raw_path: "/",
            raw_query: Some("Action=ListUsers&Version=2010-05-08"),
            headers: &headers,
            payload_sha256_hex: EMPTY_SHA256,
        };
        let signed = ["content-type", "host", "x-amz-date"].map(String::from);
        let canonical = canonical_request(&req, &signed).expect("canonical request");
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let to_sign = string_to_sign(
            SUITE_DATE,
            "20150830/us-east-1/iam/aws4_request",
            &canonical,
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
             f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            signature(&key, &to_sign),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// Requests captured on the wire from the AWS CLI 1.45.11 and boto3 1.43.11 (botocore
    /// 1.43.11), with access key `LKTESTKEY` and secret `test-secret/with+chars`.
    #[test]
    fn botocore_requests_from_the_wire_verify() {
        let key_for = |a: &Authorization| {
            (a.access_key_id == "LKTESTKEY")
                .then(|| signing_key("test-secret/with+chars", &a.date, &a.region, &a.service))
        };
        let body = br#"{"a": 1}"#;
        // (method, path, query, headers, body)
        type WireRequest<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Vec<(&'a str, &'a str)>,
            &'a [u8],
        );
        let cases: [WireRequest<'_>; 3] = [
            (
                "POST",
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello/invocations",
                Some("Qualifier=live"),
                vec![
                    ("Host", "127.0.0.1:18977"),
                    ("Accept-Encoding", "identity"),
                    ("User-Agent", "aws-cli/1.45.11 md/Botocore#1.43.11"),
                    ("X-Amz-Date", "20261128T173915Z"),
                    (
                        "Authorization",
                        "AWS4-HMAC-SHA256 Credential=LKTESTKEY/20261128/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=cba4fac28998fb9bf39a3bdc76b194b7f7d5720d57639cd8bdcc123aa5c60d1a",
                    ),
                    (
                        "amz-sdk-invocation-id",
                        "95dc3ebb-a90f-4bfe-8f55-bacb42b00554",
                    ),
                    ("amz-sdk-request", "attempt=1"),
                    ("Content-Length", "8"),
                ],
                body,
            ),
            (
                "POST",
                "/2015-03-31/functions/hello/invocations",
                Some("Qualifier=live"),
                vec![
                    ("Host", "127.0.0.1:18978"),
                    ("Accept-Encoding", "identity"),
                    ("X-Amz-Invocation-Type", "Event"),
                    ("X-Amz-Log-Type", "None"),
                    ("X-Amz-Date", "20261128T173922Z"),
                    (
                        "Authorization",
                        "AWS4-HMAC-SHA256 Credential=LKTESTKEY/20261128/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date;x-amz-invocation-type;x-amz-log-type, Signature=fcb5f350cc2577b81a27cd29d09716cdf2a5985addb17092f0f3db3247cf8170",
                    ),
                    ("Content-Length", "8"),
                ],
                body,
            ),
            (
                "GET",
                "/2015-03-31/functions",
                Some("MaxItems=5&Marker=a%2Fb%3Dc%20d"),
                vec![
                    ("Host", "127.0.0.1:18978"),
                    ("X-Amz-Date", "20261128T173922Z"),
                    (
                        "Authorization",
                        "AWS4-HMAC-SHA256 Credential=LKTESTKEY/20261128/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=4e93b34dcf38391adeec266f5cbf4cddc3d31877bd86394a22989c11a4bdc964",
                    ),
                ],
                b"",
            ),
        ];
        for (method, raw_path, raw_query, headers, body) in cases {
            let hash = sha256_hex(body);
            let req = RequestParts {
                method,
                raw_path,
                raw_query,
                headers: &headers,
                payload_sha256_hex: &hash,
            };
            let now = parse_amz_date("20261128T173930Z").expect("date");
            let auth = verify(&req, "us-east-1", "lambda", now, key_for).expect(raw_path);
            assert_eq!(auth.access_key_id, "LKTESTKEY");
        }
    }

    const INVOKE_PATH: &str = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello/invocations";
    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    /// The headers of a request before signing.
    fn base_headers() -> Vec<(String, String)> {
        vec![
            ("Host".into(), "localhost:9000".into()),
            ("Content-Type".into(), "application/json".into()),
            ("X-Amz-Invocation-Type".into(), "RequestResponse".into()),
        ]
    }

    /// Signs a POST to `INVOKE_PATH` with `body` with our signer; returns all the headers sent.
    fn signed_invoke(body: &[u8], now: i64) -> Vec<(String, String)> {
        let mut headers = base_headers();
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let hash = sha256_hex(body);
        let req = RequestParts {
            method: "POST",
            raw_path: INVOKE_PATH,
            raw_query: Some("Qualifier=live"),
            headers: &refs,
            payload_sha256_hex: &hash,
        };
        let added = sign(&req, "LKTEST", "the-secret", "us-east-1", "lambda", now);
        headers.extend(added);
        headers
    }

    /// Verifies a POST to `path` with `body` and `headers` against the key of `secret`.
    fn check(
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        region: &str,
        service: &str,
        now: i64,
        secret: &str,
    ) -> Result<Authorization, SigError> {
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let hash = sha256_hex(body);
        let req = RequestParts {
            method: "POST",
            raw_path: path,
            raw_query: Some("Qualifier=live"),
            headers: &refs,
            payload_sha256_hex: &hash,
        };
        verify(&req, region, service, now, |a| {
            (a.access_key_id == "LKTEST")
                .then(|| signing_key(secret, &a.date, &a.region, &a.service))
        })
    }

    fn set(headers: &mut [(String, String)], name: &str, value: &str) {
        for (n, v) in headers.iter_mut() {
            if n.eq_ignore_ascii_case(name) {
                *v = value.to_owned();
            }
        }
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let body = br#"{"hello":"world"}"#;
        let headers = signed_invoke(body, NOW);
        let names: Vec<&str> = headers[3..].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["authorization", "x-amz-date", "x-amz-content-sha256"]
        );
        assert_eq!(headers[4].1, "20260101T000000Z");
        assert_eq!(headers[5].1, sha256_hex(body));
        let auth = parse_authorization(&headers[3].1).expect("our own header");
        assert_eq!(
            auth.signed_headers,
            ["content-type", "host", "x-amz-content-sha256", "x-amz-date"]
        );
        assert_eq!(auth.scope(), "20260101/us-east-1/lambda/aws4_request");

        let ok = check(
            INVOKE_PATH,
            &headers,
            body,
            "us-east-1",
            "lambda",
            NOW,
            "the-secret",
        );
        assert_eq!(ok, Ok(auth));
        // Within the allowed skew, on either side.
        for now in [NOW - MAX_CLOCK_SKEW_SECS, NOW + 14 * 60] {
            assert!(
                check(
                    INVOKE_PATH,
                    &headers,
                    body,
                    "us-east-1",
                    "lambda",
                    now,
                    "the-secret"
                )
                .is_ok()
            );
        }
    }

    #[test]
    fn verify_refuses_tampering_and_wrong_scope() {
        let body = br#"{"hello":"world"}"#;
        let headers = signed_invoke(body, NOW);
        let run = |path: &str, headers: &[(String, String)], body: &[u8]| {
            check(
                path,
                headers,
                body,
                "us-east-1",
                "lambda",
                NOW,
                "the-secret",
            )
        };

        let other_secret = check(
            INVOKE_PATH,
            &headers,
            body,
            "us-east-1",
            "lambda",
            NOW,
            "other",
        );
        assert_eq!(other_secret, Err(SigError::SignatureMismatch));

        let changed_body = run(INVOKE_PATH, &headers, b"{}");
        assert!(
            matches!(changed_body, Err(SigError::BodyHashMismatch { .. })),
            "{changed_body:?}"
        );

        let changed_path = run(&INVOKE_PATH.replace("hello", "other"), &headers, body);
        assert_eq!(changed_path, Err(SigError::SignatureMismatch));

        let mut changed_header = headers.clone();
        set(&mut changed_header, "content-type", "text/plain");
        assert_eq!(
            run(INVOKE_PATH, &changed_header, body),
            Err(SigError::SignatureMismatch)
        );

        // An unsigned header may change.
        let mut unsigned = headers.clone();
        set(&mut unsigned, "x-amz-invocation-type", "Event");
        assert!(run(INVOKE_PATH, &unsigned, body).is_ok());

        let mut dropped = headers.clone();
        dropped.retain(|(n, _)| n != "Content-Type");
        assert_eq!(
            run(INVOKE_PATH, &dropped, body),
            Err(SigError::MissingSignedHeader("content-type".into()))
        );

        for skew in [16 * 60, -16 * 60] {
            let late = check(
                INVOKE_PATH,
                &headers,
                body,
                "us-east-1",
                "lambda",
                NOW + skew,
                "the-secret",
            );
            let Err(SigError::ClockSkew {
                signed_at,
                skew_secs,
                ..
            }) = &late
            else {
                panic!("{late:?}");
            };
            assert_eq!((signed_at.as_str(), *skew_secs), ("20260101T000000Z", 960));
        }

        let region = check(
            INVOKE_PATH,
            &headers,
            body,
            "eu-west-1",
            "lambda",
            NOW,
            "the-secret",
        );
        assert_eq!(
            region,
            Err(SigError::WrongRegion {
                signed: "us-east-1".into(),
                expected: "eu-west-1".into()
            })
        );
        assert_eq!(
            region.expect_err("wrong region").to_string(),
            "the request is signed for region us-east-1 but this server's region is eu-west-1; \
             set the client's region to eu-west-1"
        );

        let service = check(
            INVOKE_PATH,
            &headers,
            body,
            "us-east-1",
            "s3",
            NOW,
            "the-secret",
        );
        assert!(
            matches!(service, Err(SigError::WrongService { .. })),
            "{service:?}"
        );

        let mut unknown = headers.clone();
        let auth = unknown[3].1.replace("LKTEST/", "LKOTHER/");
        unknown[3].1 = auth;
        assert_eq!(
            run(INVOKE_PATH, &unknown, body),
            Err(SigError::SignatureMismatch),
            "an unknown key id is answered as a wrong secret"
        );

        let mut unsigned_payload = headers.clone();
        set(
            &mut unsigned_payload,
            "x-amz-content-sha256",
            UNSIGNED_PAYLOAD,
        );
        let err = run(INVOKE_PATH, &unsigned_payload, body).expect_err("unsigned payload");
        assert_eq!(err, SigError::UnsignedPayload);
        assert!(
            err.to_string().contains("requires signed payloads"),
            "{err}"
        );

        let mut no_auth = headers.clone();
        no_auth.retain(|(n, _)| n != "authorization");
        assert_eq!(run(INVOKE_PATH, &no_auth, body), Err(SigError::Missing));

        let mut no_date = headers.clone();
        no_date.retain(|(n, _)| n != "x-amz-date");
        assert_eq!(run(INVOKE_PATH, &no_date, body), Err(SigError::MissingDate));

        let mut other_day = headers.clone();
        set(&mut other_day, "x-amz-date", "20251231T235959Z");
        assert!(matches!(
            run(INVOKE_PATH, &other_day, body),
            Err(SigError::ScopeDateMismatch { .. })
        ));

        let mut bad_date = headers.clone();
        set(&mut bad_date, "x-amz-date", "2026-01-01T00:00:00Z");
        assert!(matches!(
            run(INVOKE_PATH, &bad_date, body),
            Err(SigError::BadDate(_))
        ));
    }

    fn invoke_parts<'a>(headers: &'a [(&'a str, &'a str)], hash: &'a str) -> RequestParts<'a> {
        RequestParts {
            method: "POST",
            raw_path: INVOKE_PATH,
            raw_query: None,
            headers,
            payload_sha256_hex: hash,
        }
    }

    /// Without `X-Amz-Content-SHA256` (what botocore sends for Lambda) the body is covered only
    /// through the payload hash inside the signature.
    #[test]
    fn botocore_style_request_covers_the_body_through_the_signature() {
        let key = signing_key("s", "20260101", "us-east-1", "lambda");
        let body = b"{\"n\":1}";
        let hash = sha256_hex(body);
        let unsigned = [
            ("host", "localhost:9000"),
            ("x-amz-date", "20260101T000000Z"),
        ];
        let signed = ["host", "x-amz-date"].map(String::from);
        let canonical =
            canonical_request(&invoke_parts(&unsigned, &hash), &signed).expect("canonical");
        let to_sign = string_to_sign(
            "20260101T000000Z",
            "20260101/us-east-1/lambda/aws4_request",
            &canonical,
        );
        let auth = format!(
            "{ALGORITHM} Credential=K/20260101/us-east-1/lambda/aws4_request,SignedHeaders=host;x-amz-date,Signature={}",
            signature(&key, &to_sign)
        );
        let headers = [unsigned[0], unsigned[1], ("authorization", auth.as_str())];
        let req = invoke_parts(&headers, &hash);
        assert!(verify(&req, "us-east-1", "lambda", NOW, |_| Some(key)).is_ok());

        let other = sha256_hex(b"{\"n\":2}");
        let tampered = RequestParts {
            payload_sha256_hex: &other,
            ..req
        };
        assert_eq!(
            verify(&tampered, "us-east-1", "lambda", NOW, |_| Some(key)),
            Err(SigError::SignatureMismatch)
        );

        // Host must be signed, and so must X-Amz-Date.
        for (signed, err) in [
            ("x-amz-date", SigError::HostNotSigned),
            ("host", SigError::DateNotSigned),
        ] {
            let auth = format!(
                "{ALGORITHM} Credential=K/20260101/us-east-1/lambda/aws4_request, SignedHeaders={signed}, Signature={}",
                "0".repeat(64)
            );
            let headers = [unsigned[0], unsigned[1], ("authorization", auth.as_str())];
            let req = invoke_parts(&headers, &hash);
            assert_eq!(
                verify(&req, "us-east-1", "lambda", NOW, |_| Some(key)),
                Err(err)
            );
        }
    }

    #[test]
    fn canonical_uri_encodes_the_sent_path_again() {
        assert_eq!(
            canonical_uri(INVOKE_PATH),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A000000000000%253Afunction%253Ahello/invocations"
        );
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a b/c~d*e"), "/a%20b/c~d%2Ae");
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
    }

    #[test]
    fn canonical_query_decodes_reencodes_and_sorts() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=%7e&a=x+y&c&a=%41"), "a=A&a=x%2By&b=~&c=");
        assert_eq!(
            canonical_query("Marker=a%2Fb%3Dc%20d"),
            "Marker=a%2Fb%3Dc%20d"
        );
        assert_eq!(canonical_query("k=100%&x=%zz"), "k=100%25&x=%25zz");
    }

    #[test]
    fn amz_dates_round_trip() {
        let cases = [
            ("19700101T000000Z", 0),
            ("20150830T123600Z", 1_440_938_160),
            ("20000229T235959Z", 951_868_799),
            ("20240229T120000Z", 1_709_208_000),
            ("21000301T000000Z", 4_107_542_400),
            ("19691231T235959Z", -1),
            ("99991231T235959Z", 253_402_300_799),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_amz_date(text), Ok(secs), "{text}");
            assert_eq!(format_amz_date(secs), text);
        }
        // Every day boundary over four centuries survives the round trip.
        let mut t = parse_amz_date("19000101T000000Z").expect("1900");
        while t < parse_amz_date("23000101T000000Z").expect("2300") {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Ok(t));
            t += 86_400 - 1;
        }
    }

    #[test]
    fn amz_date_garbage_is_refused() {
        for bad in [
            "",
            "20150830",
            "20150830T123600",
            "20150830 123600Z",
            "2015-08-30T12:36:00Z",
            "20150830T123600z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "20151330T123600Z",
            "20150001T123600Z",
            "20150229T000000Z",
            "21000229T000000Z",
            "20150431T000000Z",
            "20150830T240000Z",
            "20150830T126000Z",
            "20150830T123660Z",
            "20150830T123600Z ",
        ] {
            assert_eq!(
                parse_amz_date(bad),
                Err(SigError::BadDate(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_the_docs_authorization_header() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                      SignedHeaders=content-type;host;x-amz-date, \
                      Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let auth = parse_authorization(header).expect("docs header");
        assert_eq!(
            auth,
            Authorization {
                access_key_id: KEY_ID.into(),
                date: "20150830".into(),
                region: "us-east-1".into(),
                service: "iam".into(),
                signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
                signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                    .into(),
            }
        );
        assert_eq!(
            auth.to_string(),
            header.replace("                      ", "")
        );
        let compact = header.replace(", ", ",");
        assert_eq!(parse_authorization(&compact), Ok(auth.clone()));
        let upper = header.replace("5d672d79c15b", "5D672D79C15B");
        assert_eq!(parse_authorization(&upper), Ok(auth));
    }

    #[test]
    fn authorization_errors() {
        let sig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let cred = "AKID/20150830/us-east-1/iam/aws4_request";
        let cases = [
            (
                format!("AWS4-HMAC-SHA1 Credential={cred}, SignedHeaders=host, Signature={sig}"),
                SigError::UnsupportedAlgorithm("AWS4-HMAC-SHA1".into()),
            ),
            (
                "Bearer abc:def".into(),
                SigError::UnsupportedAlgorithm("Bearer".into()),
            ),
            (
                "AWS4-HMAC-SHA256".into(),
                SigError::MissingAuthPart("Credential"),
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential={cred}, Signature={sig}"),
                SigError::MissingAuthPart("SignedHeaders"),
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host"),
                SigError::MissingAuthPart("Signature"),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={sig}, Extra=1"
                ),
                SigError::MalformedAuthPart("Extra=1".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={cred}, Credential={cred}, SignedHeaders=host, Signature={sig}"
                ),
                SigError::MalformedAuthPart(format!("Credential={cred}")),
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders host, Signature={sig}"),
                SigError::MalformedAuthPart("SignedHeaders host".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/aws4_request, SignedHeaders=host, Signature={sig}"
                ),
                SigError::BadCredential("AKID/20150830/us-east-1/aws4_request".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKID/2015-08-30/us-east-1/iam/aws4_request, SignedHeaders=host, Signature={sig}"
                ),
                SigError::BadCredential("AKID/2015-08-30/us-east-1/iam/aws4_request".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, Signature={sig}"
                ),
                SigError::BadCredential("/20150830/us-east-1/iam/aws4_request".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws3_request, SignedHeaders=host, Signature={sig}"
                ),
                SigError::BadTerminator("aws3_request".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;;x-amz-date, Signature={sig}"
                ),
                SigError::BadSignedHeaders("host;;x-amz-date".into()),
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=, Signature={sig}"),
                SigError::BadSignedHeaders(String::new()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={}",
                    &sig[1..]
                ),
                SigError::BadSignature(sig[1..].into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={}g",
                    &sig[1..]
                ),
                SigError::BadSignature(format!("{}g", &sig[1..])),
            ),
        ];
        for (header, err) in cases {
            assert_eq!(parse_authorization(&header), Err(err), "{header}");
        }
    }

    #[test]
    fn messages_say_what_to_fix() {
        let skew = SigError::ClockSkew {
            signed_at: "20260101T000000Z".into(),
            server_time: "20260101T001600Z".into(),
            skew_secs: 960,
        };
        assert_eq!(
            skew.to_string(),
            "the request was signed at 20260101T000000Z but this server's clock says 20260101T001600Z, \
             960 s apart (at most 900 s allowed); check the client's clock, or sign the request again"
        );
        assert!(
            SigError::SignatureMismatch
                .to_string()
                .contains("secret access key")
        );
    }
}

/// Property tests: every string here comes from an unauthenticated caller, so no input may panic,
/// and what the signer produces must verify.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Header values near the grammar: the right words with arbitrary pieces between them.
    fn near_authorization() -> impl Strategy<Value = String> {
        let piece = "[A-Za-z0-9/=,; _.-]{0,24}";
        (
            prop_oneof![Just(ALGORITHM.to_owned()), ".{0,20}".prop_map(String::from)],
            piece,
            piece,
            piece,
            proptest::collection::vec(prop_oneof![Just(","), Just(", "), Just(" "), Just("")], 3),
        )
            .prop_map(|(alg, cred, signed, sig, seps)| {
                format!(
                    "{alg} Credential={cred}{}SignedHeaders={signed}{}Signature={sig}{}",
                    seps[0], seps[1], seps[2]
                )
            })
    }

    fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("authorization".to_owned()),
                    Just("x-amz-date".to_owned()),
                    Just("x-amz-content-sha256".to_owned()),
                    Just("host".to_owned()),
                    "[a-zA-Z-]{1,12}".prop_map(String::from),
                ],
                ".{0,80}".prop_map(String::from),
            ),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn parse_authorization_never_panics(value in ".{0,200}") {
            let _ = parse_authorization(&value);
        }

        #[test]
        fn near_misses_of_authorization_never_panic(value in near_authorization()) {
            if let Ok(auth) = parse_authorization(&value) {
                // What parses renders back to something that parses the same.
                prop_assert_eq!(parse_authorization(&auth.to_string()), Ok(auth));
            }
        }

        #[test]
        fn canonical_parts_never_panic(path in ".{0,80}", query in ".{0,80}", date in ".{0,20}") {
            let _ = canonical_uri(&path);
            let _ = canonical_query(&query);
            let _ = parse_amz_date(&date);
        }

        #[test]
        fn verify_never_panics_and_refuses_garbage(
            method in "[A-Z]{0,7}",
            path in ".{0,40}",
            query in proptest::option::of(".{0,40}"),
            headers in headers(),
            now in any::<i64>(),
        ) {
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let req = RequestParts {
                method: &method,
                raw_path: &path,
                raw_query: query.as_deref(),
                headers: &pairs,
                payload_sha256_hex: EMPTY_SHA256,
            };
            let _ = canonical_request(&req, &["host".to_owned(), "x-amz-date".to_owned()]);
            let _ = declared_payload_hash(&pairs);
            // Random signatures never verify, with the key known or not.
            prop_assert!(verify(&req, "us-east-1", "lambda", now, |_| Some([7; 32])).is_err());
            prop_assert!(verify(&req, "us-east-1", "lambda", now, |_| None).is_err());
        }

        #[test]
        fn what_the_signer_signs_verifies(
            path in "/[A-Za-z0-9/%._~-]{0,40}",
            query in proptest::option::of("[A-Za-z0-9=&%+._~-]{0,40}"),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            now in 0i64..4_102_444_800,
        ) {
            let hash = sha256_hex(&body);
            let base = [("host", "lambent.test:8080")];
            let req = RequestParts {
                method: "POST",
                raw_path: &path,
                raw_query: query.as_deref(),
                headers: &base,
                payload_sha256_hex: &hash,
            };
            let signed = sign(&req, "LKPROP", "secret", "us-east-1", "lambda", now);
            let mut all: Vec<(&str, &str)> = base.to_vec();
            all.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let req = RequestParts { headers: &all, ..req };
            let key = signing_key("secret", &format_amz_date(now)[..8], "us-east-1", "lambda");
            let verified = verify(&req, "us-east-1", "lambda", now, |_| Some(key));
            prop_assert!(verified.is_ok(), "{:?}", verified);
            // The same request with an unknown key id fails exactly as a wrong secret does.
            prop_assert_eq!(verify(&req, "us-east-1", "lambda", now, |_| None), Err(SigError::SignatureMismatch));
            prop_assert_eq!(verify(&req, "us-east-1", "lambda", now, |_| Some([1; 32])), Err(SigError::SignatureMismatch));
        }
    }
}
