//! Rust `log` records reach Python's `logging`, under `fastio.*` loggers.
//!
//! pyo3-log does the forwarding and caches loggers and their levels, so a
//! disabled record costs a cache lookup, not a GIL acquisition. Records from
//! our dependencies (sqlx, reqwest, hyper, ...) are renamed under `fastio.`
//! too, e.g. `sqlx::query` -> `fastio.sqlx.query`, so one logger configures all.
//!
//! In front of pyo3-log sits a per-target cache of the most verbose level
//! enabled: hyper and reqwest check several trace/debug records per request,
//! and renaming the target plus pyo3-log's lookup cost about 2,500
//! instructions each (over 10% of a small HTTP request); a cache hit is one
//! hash of the target. `refresh_logging()` clears both caches.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{OnceLock, RwLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;

static RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

/// A word-at-a-time multiplicative hash (FxHash's): targets are module paths
/// such as `hyper_util::client::legacy::pool`, hashed on every record.
#[derive(Default)]
struct TargetHasher(u64);

impl Hasher for TargetHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut h = self.0;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in words.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

type LevelMap = HashMap<Box<str>, LevelFilter, BuildHasherDefault<TargetHasher>>;

/// Targets beyond this many are not cached (they still work, uncached).
const MAX_CACHED_TARGETS: usize = 4096;

fn levels() -> &'static RwLock<LevelMap> {
    static LEVELS: OnceLock<RwLock<LevelMap>> = OnceLock::new();
    LEVELS.get_or_init(Default::default)
}

struct Renamed(pyo3_log::Logger);

impl Renamed {
    /// The most verbose level enabled for records of `target` (Python's
    /// logger levels are thresholds, so one level describes the target).
    fn max_level(&self, target: &str) -> LevelFilter {
        if let Some(l) = levels()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
        {
            return *l;
        }
        let renamed = under_fastio(target);
        let name = renamed.as_deref().unwrap_or(target);
        // pyo3-log answers "enabled" for a target it has not logged yet, so
        // ask Python, as pyo3-log does on its first record.
        let Some(max) = python_max_level(name) else {
            return LevelFilter::Trace; // not cached: pyo3-log decides per record
        };
        let mut map = levels().write().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_CACHED_TARGETS {
            map.insert(target.into(), max);
        }
        max
    }
}

fn under_fastio(target: &str) -> Option<String> {
    if target == "fastio" || target.starts_with("fastio::") {
        None
    } else {
        Some(format!("fastio::{target}"))
    }
}

/// The most verbose level `logging.getLogger(name)` (`::` as `.`) is enabled
/// for, with pyo3-log's mapping of levels (Trace = 5). None when Python is
/// unavailable or raised.
fn python_max_level(name: &str) -> Option<LevelFilter> {
    const LEVELS: [(Level, u8); 5] = [
        (Level::Trace, 5),
        (Level::Debug, 10),
        (Level::Info, 20),
        (Level::Warn, 30),
        (Level::Error, 40),
    ];
    Python::try_attach(|py| {
        // Keep an exception the caller may be handling (as pyo3-log does).
        let pending = PyErr::take(py);
        let found = (|| -> PyResult<LevelFilter> {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", (name.replace("::", "."),))?;
            for (level, number) in LEVELS {
                if logger
                    .call_method1("isEnabledFor", (number,))?
                    .is_truthy()?
                {
                    return Ok(level.to_level_filter());
                }
            }
            Ok(LevelFilter::Off)
        })();
        if let Some(e) = pending {
            e.restore(py);
        }
        found.ok()
    })
    .flatten()
}

impl Log for Renamed {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.max_level(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() > self.max_level(record.target()) {
            return;
        }
        match under_fastio(record.target()) {
            None => self.0.log(record),
            Some(target) => self.0.log(
                &Record::builder()
                    .args(*record.args())
                    .level(record.level())
                    .target(&target)
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
        }
    }

    fn flush(&self) {
        self.0.flush()
    }
}

fn install(py: Python<'_>) -> PyResult<()> {
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)?
        .filter(log::LevelFilter::Trace);
    let reset = logger.reset_handle();
    // Another extension in the process may own the global logger; then our
    // records go wherever it sends them, which is not an error.
    if log::set_boxed_logger(Box::new(Renamed(logger))).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
        let _ = RESET.set(reset);
    }
    Ok(())
}

/// Re-reads the levels of the `fastio.*` loggers. Call it after changing them
/// (fastio caches them so that disabled records cost nothing).
#[pyfunction]
fn refresh_logging() {
    if let Some(reset) = RESET.get() {
        reset.reset();
    }
    levels().write().unwrap_or_else(|p| p.into_inner()).clear();
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install(m.py())?;
    m.add_function(wrap_pyfunction!(refresh_logging, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::under_fastio;

    #[test]
    fn our_targets_keep_their_name() {
        assert_eq!(under_fastio("fastio"), None);
        assert_eq!(under_fastio("fastio::runtime"), None);
    }

    #[test]
    fn dependency_targets_move_under_fastio() {
        assert_eq!(
            under_fastio("sqlx::query").as_deref(),
            Some("fastio::sqlx::query")
        );
        // A crate whose name merely starts with "fastio" is not ours.
        assert_eq!(under_fastio("fastiox").as_deref(), Some("fastio::fastiox"));
    }
}
