//! asyncpg's pool callbacks, `init` (once per new connection) and `setup`
//! (on every acquire), and the connect-time options that shape a session:
//! `server_settings`, `ssl`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::Postgres;

use super::connection::{Conn, ConnInner, ConnKind, Connection, Settings};
use crate::errors::{Error, Result};

/// `init` and `setup`, called with a Connection and awaited on the event loop
/// the pool was created on.
pub(crate) struct Hooks {
    init: Option<Py<PyAny>>,
    setup: Option<Py<PyAny>>,
    locals: TaskLocals,
}

impl Hooks {
    /// `None` when neither callback is given.
    pub(crate) fn new(
        py: Python<'_>,
        init: Option<Bound<'_, PyAny>>,
        setup: Option<Bound<'_, PyAny>>,
    ) -> Result<Option<Arc<Hooks>>> {
        let init = init.filter(|f| !f.is_none());
        let setup = setup.filter(|f| !f.is_none());
        if init.is_none() && setup.is_none() {
            return Ok(None);
        }
        for (name, f) in [("init", &init), ("setup", &setup)] {
            if let Some(f) = f {
                if !f.is_callable() {
                    return Err(Error::InvalidArgument(format!(
                        "create_pool(): {name} must be an async callable taking a connection"
                    )));
                }
            }
        }
        let locals = TaskLocals::with_running_loop(py)
            .map_err(|_| {
                Error::InvalidArgument(
                    "create_pool(): init and setup need a running event loop".into(),
                )
            })?
            .copy_context(py)?;
        Ok(Some(Arc::new(Hooks {
            init: init.map(Bound::unbind),
            setup: setup.map(Bound::unbind),
            locals,
        })))
    }

    /// Runs `init` if the pool has not handed `conn` out before, then
    /// `setup`, each given a Connection that is valid only during the call.
    /// A connection whose callback failed is closed, not reused.
    pub(crate) async fn run(
        &self,
        mut conn: PoolConnection<Postgres>,
        settings: &Arc<Settings>,
    ) -> Result<PoolConnection<Postgres>> {
        let fresh = conn.take_fresh();
        let init = self.init.as_ref().filter(|_| fresh);
        if init.is_none() && self.setup.is_none() {
            return Ok(conn);
        }
        let lent = Arc::new(ConnInner::new(
            Conn::Pooled(conn),
            Arc::clone(settings),
            None,
        ));
        let mut out = Ok(());
        for f in [init, self.setup.as_ref()].into_iter().flatten() {
            out = self.call(f, &lent).await;
            if out.is_err() {
                break;
            }
        }
        let back = {
            let mut state = lent.state.lock().await;
            state.gone = "this connection was lent to the pool's init/setup callback only";
            state.conn.take()
        };
        lent.closed
            .store(true, std::sync::atomic::Ordering::Release);
        lent.listener.lock().await.take();
        let Some(Conn::Pooled(mut conn)) = back else {
            out?;
            return Err(Error::Interface(
                "the pool's init/setup callback closed the connection".into(),
            ));
        };
        match out {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.close_on_drop();
                Err(e)
            }
        }
    }

    async fn call(&self, f: &Py<PyAny>, lent: &Arc<ConnInner>) -> Result<()> {
        let done = Python::attach(|py| -> PyResult<_> {
            let conn = Bound::new(
                py,
                Connection {
                    kind: ConnKind::Pg(Arc::clone(lent)),
                },
            )?;
            let coro = f.bind(py).call1((conn,))?;
            pyo3_async_runtimes::into_future_with_locals(&self.locals, coro)
        })?;
        done.await?;
        Ok(())
    }
}

/// asyncpg's `ssl` argument as sqlx options: `False`/`'disable'`, `'allow'`,
/// `'prefer'`, `'require'`, `'verify-ca'`, `'verify-full'`, `True` (verify-full,
/// as asyncpg), or an `ssl.SSLContext` (best effort: its verification mode
/// and the CA certificates loaded into it).
fn apply_ssl(
    func: &str,
    mut opts: PgConnectOptions,
    ssl: &Bound<'_, PyAny>,
) -> Result<PgConnectOptions> {
    if ssl.is_none() {
        return Ok(opts);
    }
    let mode = if let Ok(b) = ssl.cast::<pyo3::types::PyBool>() {
        if b.is_true() {
            PgSslMode::VerifyFull
        } else {
            PgSslMode::Disable
        }
    } else if let Ok(s) = ssl.extract::<String>() {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" => PgSslMode::Disable,
            "allow" => PgSslMode::Allow,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{func}(): ssl must be one of disable, allow, prefer, require, \
                     verify-ca, verify-full, a bool or an ssl.SSLContext, got {s:?}"
                )))
            }
        }
    } else if ssl.hasattr("verify_mode")? && ssl.hasattr("get_ca_certs")? {
        let py = ssl.py();
        let ssl_mod = py.import("ssl")?;
        let none = ssl_mod.getattr("CERT_NONE")?;
        let mode = if ssl.getattr("verify_mode")?.eq(none)? {
            PgSslMode::Require
        } else if ssl.getattr("check_hostname")?.is_truthy()? {
            PgSslMode::VerifyFull
        } else {
            PgSslMode::VerifyCa
        };
        let kw = PyDict::new(py);
        kw.set_item("binary_form", true)?;
        let mut pem = String::new();
        for der in ssl.call_method("get_ca_certs", (), Some(&kw))?.try_iter()? {
            let text = ssl_mod.call_method1("DER_cert_to_PEM_cert", (der?,))?;
            pem.push_str(text.extract::<&str>()?);
        }
        if !pem.is_empty() {
            opts = opts.ssl_root_cert_from_pem(pem.into_bytes());
        }
        mode
    } else {
        return Err(Error::InvalidArgument(format!(
            "{func}(): ssl must be a bool, an sslmode string or an ssl.SSLContext, not {}",
            ssl.get_type().name()?
        )));
    };
    Ok(opts.ssl_mode(mode))
}

/// `server_settings` as startup parameters (session defaults: `RESET ALL`
/// returns to them), and `ssl`.
pub(crate) fn session_options(
    func: &str,
    mut opts: PgConnectOptions,
    server_settings: Option<&Bound<'_, PyDict>>,
    ssl: Option<&Bound<'_, PyAny>>,
) -> Result<PgConnectOptions> {
    if let Some(settings) = server_settings {
        let mut rest = Vec::new();
        for (k, v) in settings.iter() {
            let k: String = k.extract().map_err(|_| {
                Error::InvalidArgument(format!("{func}(): server_settings keys must be str"))
            })?;
            let v: String = v.str()?.extract()?;
            if k == "application_name" {
                opts = opts.application_name(&v);
            } else {
                rest.push((k, v));
            }
        }
        if !rest.is_empty() {
            opts = opts.options(rest);
        }
    }
    match ssl {
        Some(ssl) => apply_ssl(func, opts, ssl),
        None => Ok(opts),
    }
}
