//! Access keys and request authentication: SigV4 signatures (what boto3 and the AWS CLI send) and
//! bearer tokens (`Authorization: Bearer KEY_ID:SECRET`, for curl and the native API).
//!
//! Keys live in the metadata database and in memory; checking a request touches neither SQLite nor
//! the disk, and the SigV4 signing key of each access key is derived once per day.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// an unknown key or a wrong secret in a bearer token
    #[error("the access key id or secret in the bearer token is not valid")]
    BearerRejected,
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
    metadata: Arc<MetadataStore>,
    region: String,
    keys: RwLock<HashMap<String, Arc<Key>>>,
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

fn new_key(description: &str, admin: bool) -> Result<AccessKeyRow, KeyError> {
    Ok(AccessKeyRow {
        id: format!("{KEY_ID_PREFIX}{}", random_chars(18, ID_ALPHABET)?),
        secret: random_chars(40, SECRET_ALPHABET)?,
        description: description.to_owned(),
        created: now_rfc3339(),
        admin,
    })
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
        metadata: Arc<MetadataStore>,
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
                admin: true,
            })?;
            Bootstrap::FromEnvironment(id)
        } else if metadata.access_keys()?.is_empty() {
            let key = new_key("admin (generated at first start)", true)?;
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
                        signing: Mutex::new(None),
                    }),
                )
            })
            .collect();
        *self.keys.write() = keys;
        Ok(())
    }

    /// Checks a SigV4-signed request; returns the access key id.
    pub fn verify_signature(
        &self,
        req: &RequestParts<'_>,
        now_unix: i64,
    ) -> Result<String, AuthError> {
        let keys = &self.keys;
        let auth: Authorization = sigv4::verify(req, &self.region, SERVICE, now_unix, |a| {
            let key = keys.read().get(&a.access_key_id).cloned()?;
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
        Ok(auth.access_key_id)
    }

    /// The checks of a SigV4 request that need no body: the `Authorization` header parses, its
    /// key exists, and `X-Amz-Date` is within the allowed clock skew. Run before the body is read,
    /// so that a caller without a valid key cannot make lambent buffer a large upload.
    pub fn precheck_signature(
        &self,
        authorization: &str,
        amz_date: Option<&str>,
        now_unix: i64,
    ) -> Result<(), AuthError> {
        let auth = sigv4::parse_authorization(authorization)?;
        if !self.keys.read().contains_key(&auth.access_key_id) {
            return Err(SigError::UnknownAccessKey(auth.access_key_id).into());
        }
        let amz_date = amz_date.ok_or(SigError::MissingDate)?;
        let signed_at = sigv4::parse_amz_date(amz_date.trim())?;
        let skew_secs = now_unix.abs_diff(signed_at);
        if skew_secs > sigv4::MAX_CLOCK_SKEW_SECS.unsigned_abs() {
            return Err(SigError::ClockSkew {
                signed_at: amz_date.trim().to_owned(),
                server_time: sigv4::format_amz_date(now_unix),
                skew_secs,
            }
            .into());
        }
        Ok(())
    }

    /// Checks a bearer token `ID:SECRET`; returns the access key id.
    pub fn verify_bearer(&self, token: &str) -> Result<String, AuthError> {
        let (id, secret) = token.split_once(':').ok_or(AuthError::BadBearer)?;
        let key = self
            .keys
            .read()
            .get(id)
            .cloned()
            .ok_or(AuthError::BearerRejected)?;
        if bool::from(key.secret.as_bytes().ct_eq(secret.as_bytes())) {
            Ok(id.to_owned())
        } else {
            Err(AuthError::BearerRejected)
        }
    }

    /// Creates a key.
    pub fn create(&self, description: &str) -> Result<AccessKeyRow, KeyError> {
        let key = new_key(description, false)?;
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
        let store = Arc::new(MetadataStore::open(&dir.path().join("m.db")).expect("db"));
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
            id
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
        let store = Arc::new(MetadataStore::open(&dir.path().join("m.db")).expect("db"));
        let initial = Some(("ADMINKEY12345678".to_owned(), "s3cret-value".to_owned()));
        let (ring, boot) = KeyRing::open(store, dir.path(), "us-east-1", initial).expect("open");
        assert!(matches!(boot, Bootstrap::FromEnvironment(_)));
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists());
        let k = ring.create("ci").expect("create");
        assert!(
            ring.verify_bearer(&format!("{}:{}", k.id, k.secret))
                .is_ok()
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
        let store = Arc::new(MetadataStore::open(&dir.path().join("m.db")).expect("db"));
        let initial = Some(("ADMINKEY12345678".to_owned(), "s3cret-value".to_owned()));
        let (ring, _) = KeyRing::open(store, dir.path(), "us-east-1", initial).expect("open");
        let now = 1_795_889_553;
        let date = sigv4::format_amz_date(now);
        let header = |id: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={id}/{}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
                &date[..8],
                "0".repeat(64)
            )
        };
        assert!(
            ring.precheck_signature(&header("ADMINKEY12345678"), Some(&date), now)
                .is_ok()
        );
        assert!(matches!(
            ring.precheck_signature(&header("NOSUCHKEY0000000"), Some(&date), now),
            Err(AuthError::Signature(SigError::UnknownAccessKey(_)))
        ));
        assert!(matches!(
            ring.precheck_signature(&header("ADMINKEY12345678"), None, now),
            Err(AuthError::Signature(SigError::MissingDate))
        ));
        assert!(matches!(
            ring.precheck_signature(&header("ADMINKEY12345678"), Some(&date), now + 3600),
            Err(AuthError::Signature(SigError::ClockSkew { .. }))
        ));
        assert!(
            ring.precheck_signature("AWS4-HMAC-SHA256 junk", Some(&date), now)
                .is_err()
        );
    }

    #[test]
    fn bad_operator_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetadataStore::open(&dir.path().join("m.db")).expect("db"));
        let initial = Some(("short".to_owned(), "s3cret-value".to_owned()));
        assert!(matches!(
            KeyRing::open(store, dir.path(), "us-east-1", initial),
            Err(KeyError::BadInitialKey)
        ));
    }
}
