//! The wasmtime engine lambent runs all WebAssembly with, and deploy-time preparation of code.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use lambent_core::Runtime;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cgi::CgiState;
use crate::http::HttpState;

/// How often the epoch advances. Guests yield to the async executor at this interval, and timeouts
/// are precise to about this much.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default number of instances that may exist at once (the pooling allocator's slots).
pub const DEFAULT_MAX_INSTANCES: u32 = 1_000;

/// Largest linear memory a slot holds: all of wasm32's 4 GiB, so the memory setting, not the pool,
/// is what limits a function.
const MAX_MEMORY_SLOT_BYTES: usize = 4 << 30;
/// Core instances per component: componentize-py components link a dozen modules.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Memories per component.
const MAX_MEMORIES_PER_COMPONENT: u32 = 8;
/// Tables per component.
const MAX_TABLES_PER_COMPONENT: u32 = 64;
/// Table elements per table: CPython's function table is tens of thousands long.
const MAX_TABLE_ELEMENTS: usize = 200_000;
/// Size of one instance's runtime state (vmctx); large for modules with many functions.
const MAX_INSTANCE_STATE_BYTES: usize = 8 << 20;
/// Bytes of each linear memory, table and async stack kept resident when a slot is freed, and
/// zeroed with `memset` instead of returned with `madvise`. A hello-world component dirties well
/// under this; without it every instance teardown costs a TLB shootdown across cores, which
/// profiling showed to be the largest single cost of a request.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;
/// Compiled artifacts kept before wasmtime's cache starts evicting the least used.
const CACHE_SOFT_LIMIT_BYTES: u64 = 16 << 30;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct WasmEngineConfig {
    /// Where compiled artifacts are cached.
    pub cache_dir: PathBuf,
    /// How many instances may exist at once.
    pub max_instances: u32,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// the artifact cache could not be set up
    #[error("cannot set up the compiled-artifact cache in {dir}: {message}")]
    Cache {
        /// the cache directory
        dir: PathBuf,
        /// what failed
        message: String,
    },
    /// wasmtime refused the configuration
    #[error("cannot configure wasmtime: {0}")]
    Config(String),
}

/// Why code was refused at deploy. Each message says what to fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CodeError {
    /// no bytes
    #[error("the code is empty; upload a .wasm file")]
    Empty,
    /// a runtime the wasm executor does not run
    #[error("runtime {0} is not a WebAssembly runtime")]
    NotWasmRuntime(Runtime),
    /// not wasm at all
    #[error(
        "the code is not a WebAssembly binary (it does not start with \\0asm); upload a .wasm file"
    )]
    NotWasm,
    /// the runtime asks for one kind of binary and the code is the other
    #[error("runtime {runtime} needs {needs}, but the code is {got}")]
    WrongKind {
        /// the requested runtime
        runtime: Runtime,
        /// what that runtime runs
        needs: &'static str,
        /// what the code is
        got: &'static str,
    },
    /// wasmtime could not validate or compile it
    #[error("the code is not valid WebAssembly: {0}")]
    Invalid(String),
    /// imports something the runtime does not provide
    #[error("the code imports something lambent does not provide: {0}")]
    UnsupportedImport(String),
    /// a component of another world
    #[error(
        "the component does not export wasi:http/incoming-handler; runtime wasi-http runs components of the wasi:http/proxy world ({0})"
    )]
    WrongWorld(String),
    /// a module without `_start`
    #[error(
        "the module has no _start export; runtime wasi-cgi runs WASI command modules (a program with main)"
    )]
    NotCommand,
}

/// Code validated, compiled and linked, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub enum PreparedCode {
    /// A `wasi:http/proxy` component.
    Http(ProxyPre<HttpState>),
    /// A preview1 command module run as CGI.
    Cgi(InstancePre<CgiState>),
}

impl std::fmt::Debug for PreparedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PreparedCode::Http(_) => f.write_str("PreparedCode::Http"),
            PreparedCode::Cgi(_) => f.write_str("PreparedCode::Cgi"),
        }
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Compilations (artifact cache misses) since start.
    pub compilations: u64,
    /// Artifacts loaded from the cache since start.
    pub cache_hits: u64,
    /// Whether the pooling allocator is in use.
    pub pooling: bool,
}

/// Advances the engine's epoch until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lambent-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The engine: one per process.
pub struct WasmEngine {
    pub(crate) engine: Engine,
    cache: Cache,
    pooling: bool,
    http_linker: ComponentLinker<HttpState>,
    cgi_linker: Linker<CgiState>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

fn pooling_config(max_instances: u32) -> PoolingAllocationConfig {
    let n = max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memories_per_module(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_module(MAX_TABLES_PER_COMPONENT)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_core_instance_size(MAX_INSTANCE_STATE_BYTES)
        .max_component_instance_size(MAX_INSTANCE_STATE_BYTES)
        .max_memory_size(MAX_MEMORY_SLOT_BYTES)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .async_stack_keep_resident(KEEP_RESIDENT_BYTES)
        .max_unused_warm_slots(0);
    pool
}

impl WasmEngine {
    /// Starts the engine: the artifact cache, the pooling allocator (falling back to on-demand
    /// allocation, with a warning, where the host refuses the pool's address-space reservation),
    /// the linkers and the epoch ticker.
    pub fn new(config: &WasmEngineConfig) -> Result<Self, EngineError> {
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| EngineError::Cache {
            dir: config.cache_dir.clone(),
            message: e.to_string(),
        })?;
        let mut cache_config = CacheConfig::new();
        cache_config
            .with_directory(&config.cache_dir)
            .with_files_total_size_soft_limit(CACHE_SOFT_LIMIT_BYTES);
        let cache = Cache::new(cache_config).map_err(|e| EngineError::Cache {
            dir: config.cache_dir.clone(),
            message: format!("{e:#}"),
        })?;

        let base = |strategy| {
            let mut c = Config::new();
            c.epoch_interruption(true)
                .cache(Some(cache.clone()))
                .allocation_strategy(strategy);
            c
        };
        let pooled = base(InstanceAllocationStrategy::Pooling(pooling_config(
            config.max_instances,
        )));
        let (engine, pooling) = match Engine::new(&pooled) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    "the pooling allocator is unavailable on this host; instances will be allocated on demand (slower starts)"
                );
                let engine = Engine::new(&base(InstanceAllocationStrategy::OnDemand))
                    .map_err(|e| EngineError::Config(format!("{e:#}")))?;
                (engine, false)
            }
        };

        let mut http_linker = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut http_linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut http_linker))
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut cgi_linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut cgi_linker, |s: &mut CgiState| &mut s.wasi)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;

        Ok(Self {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            cache,
            pooling,
            http_linker,
            cgi_linker,
        })
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            compilations: self.cache.cache_misses() as u64,
            cache_hits: self.cache.cache_hits() as u64,
            pooling: self.pooling,
        }
    }

    /// Which runtime `bytes` is for: a component is `wasi-http`, a core module `wasi-cgi`.
    pub fn detect_runtime(bytes: &[u8]) -> Result<Runtime, CodeError> {
        if bytes.is_empty() {
            Err(CodeError::Empty)
        } else if wasmparser::Parser::is_component(bytes) {
            Ok(Runtime::WasiHttp)
        } else if wasmparser::Parser::is_core_wasm(bytes) {
            Ok(Runtime::WasiCgi)
        } else {
            Err(CodeError::NotWasm)
        }
    }

    /// Validates, compiles (or loads from the artifact cache) and links `bytes` for `runtime`.
    /// CPU-heavy on a cache miss: call it from a blocking thread.
    pub fn prepare(&self, runtime: Runtime, bytes: &[u8]) -> Result<PreparedCode, CodeError> {
        if !runtime.is_wasm() {
            return Err(CodeError::NotWasmRuntime(runtime));
        }
        let detected = Self::detect_runtime(bytes)?;
        let kind = |r: Runtime| match r {
            Runtime::WasiHttp => "a WebAssembly component",
            _ => "a WebAssembly core module",
        };
        if detected != runtime {
            return Err(CodeError::WrongKind {
                runtime,
                needs: kind(runtime),
                got: kind(detected),
            });
        }
        match runtime {
            Runtime::WasiHttp => {
                let component = Component::new(&self.engine, bytes)
                    .map_err(|e| CodeError::Invalid(format!("{e:#}")))?;
                let pre = self
                    .http_linker
                    .instantiate_pre(&component)
                    .map_err(|e| CodeError::UnsupportedImport(format!("{e:#}")))?;
                let proxy =
                    ProxyPre::new(pre).map_err(|e| CodeError::WrongWorld(format!("{e:#}")))?;
                Ok(PreparedCode::Http(proxy))
            }
            Runtime::WasiCgi => {
                let module = Module::new(&self.engine, bytes)
                    .map_err(|e| CodeError::Invalid(format!("{e:#}")))?;
                if module.get_export("_start").is_none() {
                    return Err(CodeError::NotCommand);
                }
                let pre = self
                    .cgi_linker
                    .instantiate_pre(&module)
                    .map_err(|e| CodeError::UnsupportedImport(format!("{e:#}")))?;
                Ok(PreparedCode::Cgi(pre))
            }
            other => Err(CodeError::NotWasmRuntime(other)),
        }
    }
}
