//! Access keys and request authentication: SigV4 signatures (what boto3 and the AWS CLI send) and
//! bearer tokens (`Authorization: Bearer KEY_ID:SECRET`, for curl and the native API).
//!
//! Keys live in the metadata database and in memory; checking a request touches neither SQLite nor
//! the disk, and the SigV4 signing key of each access key is derived once per day.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lambent_core::KeyRole;
use lambent_core::sigv4::{self, Authorization, RequestParts, SigError};
use lambent_store::metadata::now_rfc3339;
use lambent_store::{AccessKeyRow, MetadataError, MetadataStore};
use parking_lot::{Mutex, RwLock};
use subtle::ConstantTimeEq;

/// The service name requests must be signed for.
pub const SERVICE: &str = "lambda";
/// Where a generated admin key is written, in the data directory.
pub const ADMIN_KEY_FILE: &str = "admin-credentials";
/// Access key ids lambent makes start with this.
const KEY_ID_PREFIX: &str = "LK";
/// Default of `lambent serve --preauth-buffer-mb`: bytes of request bodies that may be held, all
/// requests together, before their signature is checked (SigV4 requests without
/// `X-Amz-Content-SHA256`, whose signature covers the body's hash). Past it such requests get a
/// quick 503 with `Retry-After` instead of their body being read.
pub const DEFAULT_PREAUTH_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// [`DEFAULT_PREAUTH_BUFFER_BYTES`] in MB, the unit of the flag.
pub const DEFAULT_PREAUTH_BUFFER_MB: u64 = (DEFAULT_PREAUTH_BUFFER_BYTES >> 20) as u64;

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// neither a signature nor a bearer token
    #[error(
        "the request carries no credentials; sign it with AWS Signature Version 4 (service lambda) or send Authorization: Bearer ACCESS_KEY_ID:SECRET"
    )]
    Missing,
    /// an `Authorization` scheme lambent does not take
    #[error(
        "the Authorization scheme {0:?} is not supported; use AWS4-HMAC-SHA256 (SigV4) or Bearer ACCESS_KEY_ID:SECRET"
    )]
    UnsupportedScheme(String),
    /// the SigV4 check failed
    #[error(transparent)]
    Signature(#[from] SigError),
    /// a bearer token that is not `ID:SECRET`
    #[error("the bearer token must be ACCESS_KEY_ID:SECRET_ACCESS_KEY")]
    BadBearer,
    /// an unknown key or a wrong secret in a bearer token (one answer for both, so that nobody
    /// can probe which key ids exist)
    #[error("the access key id or secret in the bearer token is not valid")]
    BearerRejected,
}

/// A request's key, once its signature or token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The access key id.
    pub key_id: String,
    /// What the key may do.
    pub role: KeyRole,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// storage failed
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// the system's random source failed
    #[error("cannot generate a key: {0}")]
    Random(String),
    /// writing the admin key file failed
    #[error("cannot write {path}: {source}")]
    Io {
        /// the file
        path: PathBuf,
        /// why
        source: std::io::Error,
    },
    /// no such key
    #[error("access key {0} does not exist")]
    NoSuchKey(String),
    /// the last key cannot be revoked
    #[error("access key {0} is the last one; create another before revoking it")]
    LastKey(String),
    /// operator-given credentials that cannot be keys
    #[error(
        "LAMBENT_ACCESS_KEY_ID must be 16 to 128 letters or digits and LAMBENT_SECRET_ACCESS_KEY at least 8 characters without whitespace"
    )]
    BadInitialKey,
}

#[derive(Debug)]
struct Key {
    secret: String,
    role: KeyRole,
    /// The day and the SigV4 signing key derived for it (region and service are fixed).
    signing: Mutex<Option<(String, [u8; 32])>>,
}

/// What the first start did about the admin key.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    /// The operator gave the key in the environment.
    FromEnvironment(String),
    /// A key was generated now and written to this file.
    Generated(PathBuf),
    /// Keys existed already; the generated admin key, if any, is in this file.
    Existing(Option<PathBuf>),
}

/// The access keys, in memory.
#[derive(Debug)]
pub struct KeyRing {
    metadata: Arc<dyn MetadataStore>,
    region: String,
    keys: RwLock<HashMap<String, Arc<Key>>>,
    preauth: PreauthBudget,
}

/// The bytes of request bodies held before their request is authenticated, all requests
/// together, against a limit ([`DEFAULT_PREAUTH_BUFFER_BYTES`] unless set).
#[derive(Debug)]
pub struct PreauthBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
}

/// Bytes taken from a [`PreauthBudget`]; given back when dropped.
#[derive(Debug)]
pub struct PreauthReservation<'a> {
    budget: &'a PreauthBudget,
    held: usize,
}

impl PreauthBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
        }
    }

    /// Changes the limit (reservations held keep their bytes).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation, to grow as a body arrives.
    pub fn reserve(&self) -> PreauthReservation<'_> {
        PreauthReservation {
            budget: self,
            held: 0,
        }
    }
}

impl PreauthReservation<'_> {
    /// Takes `n` more bytes; false (and nothing taken) when the budget has not that many left.
    pub fn grow(&mut self, n: usize) -> bool {
        let limit = self.budget.limit();
        let taken = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= limit)
            })
            .is_ok();
        if taken {
            self.held += n;
        }
        taken
    }

    /// Bytes held by this reservation.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for PreauthReservation<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

fn random_chars(n: usize, alphabet: &[u8]) -> Result<String, KeyError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    // 256 is a multiple of every alphabet size used here (32 and 64), so this is unbiased.
    Ok(bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect())
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn new_key(description: &str, role: KeyRole) -> Result<AccessKeyRow, KeyError> {
    Ok(AccessKeyRow {
        id: format!("{KEY_ID_PREFIX}{}", random_chars(18, ID_ALPHABET)?),
        secret: random_chars(40, SECRET_ALPHABET)?,
        description: description.to_owned(),
        created: now_rfc3339(),
        role,
    })
}

/// SHA-256 of a secret (hex), so that secrets of any length compare in constant time.
fn secret_digest(secret: &str) -> String {
    sigv4::sha256_hex(secret.as_bytes())
}

/// What a bearer secret is compared with when its key id is unknown: the digest of no secret
/// (keys have at least 8 characters, so nothing matches it and the caller is refused anyway).
fn unknown_key_digest() -> String {
    secret_digest("")
}

/// The admin key in the format of an AWS shared credentials file, so that
/// `AWS_SHARED_CREDENTIALS_FILE=<data>/admin-credentials aws lambda ...` works as it is.
pub fn credentials_file_text(id: &str, secret: &str, region: &str) -> String {
    format!(
        "# lambent's admin access key, written at first start. Keep it secret.\n\
         [default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\nregion = {region}\n"
    )
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl KeyRing {
    /// Loads the keys; stores the operator's key, or on a first start without one generates an
    /// admin key and writes it to `data_dir/admin-credentials` (mode 0600).
    pub fn open(
        metadata: Arc<dyn MetadataStore>,
        data_dir: &Path,
        region: &str,
        initial: Option<(String, String)>,
    ) -> Result<(Self, Bootstrap), KeyError> {
        let file = data_dir.join(ADMIN_KEY_FILE);
        let bootstrap = if let Some((id, secret)) = initial {
            let id_ok =
                (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !id_ok || secret.len() < 8 || secret.chars().any(char::is_whitespace) {
                return Err(KeyError::BadInitialKey);
            }
            metadata.put_access_key(&AccessKeyRow {
                id: id.clone(),
                secret,
                description: "admin (LAMBENT_ACCESS_KEY_ID)".into(),
                created: now_rfc3339(),
                role: KeyRole::Admin,
            })?;
            Bootstrap::FromEnvironment(id)
        } else if metadata.access_keys()?.is_empty() {
            let key = new_key("admin (generated at first start)", KeyRole::Admin)?;
            write_private(&file, &credentials_file_text(&key.id, &key.secret, region))?;
            metadata.put_access_key(&key)?;
            Bootstrap::Generated(file)
        } else {
            Bootstrap::Existing(file.exists().then_some(file))
        };
        let ring = Self {
            metadata,
            region: region.to_owned(),
            keys: RwLock::default(),
            preauth: PreauthBudget::new(DEFAULT_PREAUTH_BUFFER_BYTES),
        };
        ring.reload()?;
        Ok((ring, bootstrap))
    }

    fn reload(&self) -> Result<(), KeyError> {
        let keys = self
            .metadata
            .access_keys()?
            .into_iter()
            .map(|k| {
                (
                    k.id,
                    Arc::new(Key {
                        secret: k.secret,
                        role: k.role,
                        signing: Mutex::new(None),
                    }),
                )
            })
            .collect();
        *self.keys.write() = keys;
        Ok(())
    }

    /// The bytes of bodies held before their request is authenticated.
    pub fn preauth_budget(&self) -> &PreauthBudget {
        &self.preauth
    }

    /// Checks a SigV4-signed request; returns its key. `req.payload_sha256_hex` is the hash the
    /// signature is checked against: the body's, or the `X-Amz-Content-SHA256` it declares
    /// (whose body must then be checked against it as it is read).
    pub fn verify_signature(
        &self,
        req: &RequestParts<'_>,
        now_unix: i64,
    ) -> Result<Authenticated, AuthError> {
        let keys = &self.keys;
        let mut role = None;
        let auth: Authorization = sigv4::verify(req, &self.region, SERVICE, now_unix, |a| {
            let key = keys.read().get(&a.access_key_id).cloned()?;
            role = Some(key.role);
            let mut cached = key.signing.lock();
            match &*cached {
                Some((day, k)) if *day == a.date => Some(*k),
                _ => {
                    let k = sigv4::signing_key(&key.secret, &a.date, &a.region, &a.service);
                    *cached = Some((a.date.clone(), k));
                    Some(k)
                }
            }
        })?;
        // `verify` succeeds only with a key found, which set the role.
        let role = role.ok_or(SigError::SignatureMismatch)?;
        Ok(Authenticated {
            key_id: auth.access_key_id,
            role,
        })
    }

    /// The checks of a SigV4 request that need no body ([`sigv4::check_headers`]), then that its
    /// key exists. Run before the body is read, so that a caller without a valid key cannot make
    /// lambent buffer a large upload. An unknown key is looked up last and gets
    /// [`SigError::SignatureMismatch`], the answer a wrong signature gets, so no answer tells
    /// which key ids exist. `req.payload_sha256_hex` is not used.
    pub fn precheck_signature(
        &self,
        req: &RequestParts<'_>,
        now_unix: i64,
    ) -> Result<(), AuthError> {
        let (auth, _) = sigv4::check_headers(req, &self.region, SERVICE, now_unix)?;
        if !self.keys.read().contains_key(&auth.access_key_id) {
            return Err(SigError::SignatureMismatch.into());
        }
        Ok(())
    }

    /// Checks a bearer token `ID:SECRET`; returns its key. The secret is compared in constant
    /// time (as digests, so its length does not show either), against a stand-in when the key id
    /// is unknown, and both failures give the same error.
    pub fn verify_bearer(&self, token: &str) -> Result<Authenticated, AuthError> {
        let (id, secret) = token.split_once(':').ok_or(AuthError::BadBearer)?;
        let key = self.keys.read().get(id).cloned();
        let expected = key
            .as_ref()
            .map_or_else(unknown_key_digest, |k| secret_digest(&k.secret));
        let matches = bool::from(expected.as_bytes().ct_eq(secret_digest(secret).as_bytes()));
        match key {
            Some(key) if matches => Ok(Authenticated {
                key_id: id.to_owned(),
                role: key.role,
            }),
            _ => Err(AuthError::BearerRejected),
        }
    }

    /// Creates a key with `role`.
    pub fn create(&self, description: &str, role: KeyRole) -> Result<AccessKeyRow, KeyError> {
        let key = new_key(description, role)?;
        self.metadata.put_access_key(&key)?;
        self.reload()?;
        Ok(key)
    }

    /// Every key, secrets blanked.
    pub fn list(&self) -> Result<Vec<AccessKeyRow>, KeyError> {
        Ok(self
            .metadata
            .access_keys()?
            .into_iter()
            .map(|k| AccessKeyRow {
                secret: String::new(),
                ..k
            })
            .collect())
    }

    /// Revokes a key at once; the last key cannot be revoked.
    pub fn revoke(&self, id: &str) -> Result<(), KeyError> {
        let keys = self.metadata.access_keys()?;
        if !keys.iter().any(|k| k.id == id) {
            return Err(KeyError::NoSuchKey(id.to_owned()));
        }
        if keys.len() == 1 {
            return Err(KeyError::LastKey(id.to_owned()));
        }
        self.metadata.delete_access_key(id)?;
        self.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_generates_a_private_admin_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            lambent_store::SqliteMetadataStore::open(&dir.path().join("m.db")).expect("db"),
        );
        let (ring, boot) =
            KeyRing::open(store.clone(), dir.path(), "us-east-1", None).expect("open");
        let Bootstrap::Generated(file) = boot else {
            panic!("expected a generated key, got {boot:?}");
        };
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).expect("read");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("aws_access_key_id = "))
            .expect("id line");
        let secret = text
            .lines()
            .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
            .expect("secret line");
        assert_eq!(
            ring.verify_bearer(&format!("{id}:{secret}"))
                .expect("valid"),
            Authenticated {
                key_id: id.to_owned(),
                role: KeyRole::Admin
            }
        );
        assert!(ring.verify_bearer(&format!("{id}:wrong")).is_err());
        assert!(ring.verify_bearer("nocolon").is_err());
        // A second start keeps the key and generates nothing.
        let (_, boot) = KeyRing::open(store, dir.path(), "us-east-1", None).expect("reopen");
        assert!(matches!(boot, Bootstrap::Existing(Some(_))));
    }

    #[test]
    fn keys_are_created_and_revoked_but_not_the_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            lambent_store::SqliteMetadataStore::open(&dir.path().join("m.db")).expect("db"),
        );
        let initial = Some(("ADMINKEY12345678".to_owned(), "s3cret-value".to_owned()));
        let (ring, boot) = KeyRing::open(store, dir.path(), "us-east-1", initial).expect("open");
        assert!(matches!(boot, Bootstrap::FromEnvironment(_)));
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists());
        let k = ring.create("ci", KeyRole::Invoke).expect("create");
        assert_eq!(
            ring.verify_bearer(&format!("{}:{}", k.id, k.secret))
                .expect("valid")
                .role,
            KeyRole::Invoke
        );
        assert!(
            ring.list()
                .expect("list")
                .iter()
                .all(|k| k.secret.is_empty())
        );
        ring.revoke(&k.id).expect("revoke");
        assert!(
            ring.verify_bearer(&format!("{}:{}", k.id, k.secret))
                .is_err()
        );
        assert!(matches!(
            ring.revoke("ADMINKEY12345678"),
            Err(KeyError::LastKey(_))
        ));
        assert!(matches!(ring.revoke("nope"), Err(KeyError::NoSuchKey(_))));
    }

    #[test]
    fn signed_requests_are_prechecked_before_their_body_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            lambent_store::SqliteMetadataStore::open(&dir.path().join("m.db")).expect("db"),
        );
        let initial = Some(("ADMINKEY12345678".to_owned(), "s3cret-value".to_owned()));
        let (ring, _) = KeyRing::open(store, dir.path(), "us-east-1", initial).expect("open");
        let now = 1_795_889_553;
        let date = sigv4::format_amz_date(now);
        let header = |id: &str, region: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={id}/{}/{region}/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
                &date[..8],
                "0".repeat(64)
            )
        };
        let check = |authorization: &str, amz_date: Option<&str>, at: i64| {
            let mut headers = vec![("host", "lambent.test"), ("authorization", authorization)];
            if let Some(d) = amz_date {
                headers.push(("x-amz-date", d));
            }
            let req = RequestParts {
                method: "POST",
                raw_path: "/",
                raw_query: None,
                headers: &headers,
                payload_sha256_hex: sigv4::EMPTY_SHA256,
            };
            ring.precheck_signature(&req, at)
        };
        let known = header("ADMINKEY12345678", "us-east-1");
        let unknown = header("NOSUCHKEY0000000", "us-east-1");
        assert!(check(&known, Some(&date), now).is_ok());
        assert!(matches!(
            check(&unknown, Some(&date), now),
            Err(AuthError::Signature(SigError::SignatureMismatch))
        ));
        // Every other failure is found before the key is looked up, so it is the same for
        // known and unknown keys.
        for (at, amz_date, region) in [
            (now, None, "us-east-1"),
            (now + 3600, Some(date.as_str()), "us-east-1"),
            (now, Some(date.as_str()), "eu-west-1"),
        ] {
            let a = check(&header("ADMINKEY12345678", region), amz_date, at).expect_err("known");
            let b = check(&header("NOSUCHKEY0000000", region), amz_date, at).expect_err("unknown");
            assert_eq!(a.to_string(), b.to_string());
            assert!(!matches!(
                a,
                AuthError::Signature(SigError::SignatureMismatch)
            ));
        }
        assert!(check("AWS4-HMAC-SHA256 junk", Some(&date), now).is_err());
    }

    #[test]
    fn unknown_key_ids_and_wrong_secrets_get_one_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            lambent_store::SqliteMetadataStore::open(&dir.path().join("m.db")).expect("db"),
        );
        let initial = Some(("ADMINKEY12345678".to_owned(), "s3cret-value".to_owned()));
        let (ring, _) = KeyRing::open(store, dir.path(), "us-east-1", initial).expect("open");
        let unknown = ring
            .verify_bearer("NOSUCHKEY0000000:s3cret-value")
            .expect_err("unknown");
        let wrong = ring
            .verify_bearer("ADMINKEY12345678:s3cret-valuf")
            .expect_err("wrong");
        let short = ring.verify_bearer("ADMINKEY12345678:").expect_err("empty");
        assert_eq!(unknown.to_string(), wrong.to_string());
        assert_eq!(unknown.to_string(), short.to_string());
        let unknown = ring
            .verify_bearer("NOSUCHKEY0000000:")
            .expect_err("unknown, empty secret");
        assert_eq!(unknown.to_string(), wrong.to_string());
    }

    #[test]
    fn the_preauth_budget_is_shared_and_given_back() {
        let budget = PreauthBudget::new(100);
        let mut a = budget.reserve();
        assert!(a.grow(60));
        let mut b = budget.reserve();
        assert!(!b.grow(41), "over the limit together");
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.grow(60));
        assert!(!b.grow(usize::MAX), "no overflow");
        assert_eq!(b.held(), 100);
        drop(b);
        assert_eq!(budget.used(), 0);
        budget.set_limit(10);
        assert!(!budget.reserve().grow(11));
    }

    #[test]
    fn bad_operator_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            lambent_store::SqliteMetadataStore::open(&dir.path().join("m.db")).expect("db"),
        );
        let initial = Some(("short".to_owned(), "s3cret-value".to_owned()));
        assert!(matches!(
            KeyRing::open(store, dir.path(), "us-east-1", initial),
            Err(KeyError::BadInitialKey)
        ));
    }
}
