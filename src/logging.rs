//! Rust `log` records reach Python's `logging`, under `fastio.*` loggers.
//!
//! pyo3-log does the forwarding and caches loggers and their levels, so a
//! disabled record costs a cache lookup, not a GIL acquisition. Records from
//! our dependencies (sqlx, reqwest, hyper, ...) are renamed under `fastio.`
//! too, e.g. `sqlx::query` -> `fastio.sqlx.query`, so one logger configures all.

use std::sync::OnceLock;

use log::{Log, Metadata, Record};
use pyo3::prelude::*;

static RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

struct Renamed(pyo3_log::Logger);

fn under_fastio(target: &str) -> Option<String> {
    if target == "fastio" || target.starts_with("fastio::") {
        None
    } else {
        Some(format!("fastio::{target}"))
    }
}

impl Log for Renamed {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match under_fastio(metadata.target()) {
            None => self.0.enabled(metadata),
            Some(target) => self.0.enabled(
                &Metadata::builder()
                    .level(metadata.level())
                    .target(&target)
                    .build(),
            ),
        }
    }

    fn log(&self, record: &Record<'_>) {
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
