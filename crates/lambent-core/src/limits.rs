//! Limits and defaults, each named once. The numbers follow AWS Lambda where Lambda has one, so a
//! function that fits Lambda fits lambent.

/// Smallest memory setting a function may have, in MB (Lambda's minimum).
pub const MIN_MEMORY_MB: u32 = 128;
/// Largest memory setting a function may have, in MB (Lambda's maximum).
pub const MAX_MEMORY_MB: u32 = 10_240;
/// Largest memory setting for a WebAssembly function: a 32-bit linear memory cannot exceed 4 GiB.
pub const MAX_WASM_MEMORY_MB: u32 = 4_096;
/// Memory given to a function that does not ask for a size, in MB (Lambda's default).
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// Shortest timeout, in seconds.
pub const MIN_TIMEOUT_S: u32 = 1;
/// Longest timeout, in seconds (Lambda's 15 minutes).
pub const MAX_TIMEOUT_S: u32 = 900;
/// Timeout of a function that does not set one, in seconds (Lambda's default).
pub const DEFAULT_TIMEOUT_S: u32 = 3;

/// Largest request or event body of a synchronous invocation, in bytes (Lambda's 6 MB).
pub const MAX_SYNC_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest response a buffered (CGI-style) function may write, in bytes (Lambda's 6 MB).
pub const MAX_SYNC_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Largest code upload (a zip or a `.wasm` file), in bytes: Lambda's 50 MB for a direct upload.
/// A Python component built with componentize-py is about 18 MB.
pub const MAX_CODE_BYTES: usize = 50 * 1024 * 1024;
/// Largest request body of a code upload (create, deploy, code update; native and Lambda API):
/// the code base64-encoded (JSON requests carry it so; Lambda's limit is on the request, 50 MB of
/// zip), plus 1 MB for the configuration and multipart framing.
pub const MAX_CODE_UPLOAD_REQUEST_BYTES: usize = MAX_CODE_BYTES.div_ceil(3) * 4 + 1024 * 1024;

/// Largest total size of a function's environment variables, keys and values, in bytes (Lambda's 4 KB).
pub const MAX_ENVIRONMENT_BYTES: usize = 4 * 1024;
/// Longest description, in characters (Lambda's 256).
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Longest function name, in characters (Lambda's 64).
pub const MAX_NAME_CHARS: usize = 64;

/// Most log bytes kept per invocation (stdout and stderr together); the rest is cut with a marker.
pub const MAX_LOG_BYTES_PER_INVOCATION: usize = 256 * 1024;

/// Smallest ephemeral storage (`/tmp`) of a process-tier function, in MB (Lambda's minimum).
pub const MIN_EPHEMERAL_STORAGE_MB: u32 = 512;
/// Largest ephemeral storage, in MB (Lambda's maximum).
pub const MAX_EPHEMERAL_STORAGE_MB: u32 = 10_240;
/// Ephemeral storage of a function that does not set it, in MB (Lambda's default).
pub const DEFAULT_EPHEMERAL_STORAGE_MB: u32 = 512;
/// Longest handler setting, in characters (Lambda's 128).
pub const MAX_HANDLER_CHARS: usize = 128;
/// Largest unzipped size of a function's code, in bytes (Lambda's 250 MB).
pub const MAX_UNZIPPED_CODE_BYTES: u64 = 250 * 1024 * 1024;
/// Most entries in a code zip; a real function has far fewer, a zip bomb far more.
pub const MAX_ZIP_ENTRIES: usize = 50_000;
/// Size of the log tail an invoke can ask for, in bytes (Lambda's `X-Amz-Log-Type: Tail`).
pub const LOG_TAIL_BYTES: usize = 4 * 1024;

/// Region name in ARNs and `AWS_REGION` when the operator sets none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Account id in ARNs: one install is one account.
pub const ACCOUNT_ID: &str = "000000000000";

/// Default page size of list operations.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of list operations.
pub const MAX_PAGE_SIZE: u32 = 1_000;

/// Longest alias name, in characters (Lambda's 128).
pub const MAX_ALIAS_CHARS: usize = 128;
/// Longest execution role ARN, in characters (Lambda's 2048).
pub const MAX_ROLE_CHARS: usize = 2_048;
/// Versions an alias may route to besides its main one (Lambda allows one).
pub const MAX_ADDITIONAL_VERSIONS: usize = 1;

/// Concurrent executions the account may have at once (Lambda's default quota).
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1_000;
/// Concurrency that reservations must leave to functions without one (Lambda keeps 100).
pub const MIN_UNRESERVED_CONCURRENCY: u32 = 100;
/// Largest asynchronous (`Event`) payload, in bytes (Lambda's 1 MB).
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Seconds a throttled caller is told to wait before trying again (`Retry-After`).
pub const THROTTLE_RETRY_AFTER_S: u32 = 1;
