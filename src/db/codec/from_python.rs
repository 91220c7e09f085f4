//! Python query arguments → owned [`Param`]s (event-loop thread) → binary
//! wire values of the type the server inferred (tokio).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDate, PyDateAccess, PyDateTime, PyDelta, PyDeltaAccess, PyDict,
    PyFloat, PyInt, PyList, PyString, PyTime, PyTimeAccess, PyTuple, PyType, PyTzInfoAccess,
};

use super::oid;
use super::{PG_EPOCH_ORDINAL, USECS_PER_DAY};

/// One query argument, owned and free of Python objects.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Null,
    Bool(bool),
    Int(i64),
    /// An int beyond i64, as decimal text (fits numeric only).
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// `decimal.Decimal`, as `str(d)`.
    Decimal(String),
    /// Days since 2000-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 2000-01-01 00:00: UTC for aware datetimes, the wall
    /// clock for naive ones (sent to timestamptz as UTC).
    DateTime {
        micros: i64,
    },
    Interval {
        days: i64,
        micros: i64,
    },
    Uuid([u8; 16]),
    List(Vec<Param>),
    /// A dict, already serialized with `json.dumps`.
    Json(String),
    /// A range (`fastio.pg.Range` or asyncpg's); `None` bounds are infinite.
    Range {
        lower: Option<Box<Param>>,
        upper: Option<Box<Param>>,
        lower_inc: bool,
        upper_inc: bool,
        empty: bool,
    },
    /// An argument kept with its Python object too, for a codec set with
    /// `set_type_codec` (only while the session has any).
    Custom {
        obj: std::sync::Arc<Py<PyAny>>,
        plain: Box<Param>,
    },
    /// Something we cannot send; kept for the error message.
    Unsupported {
        repr: String,
        type_name: String,
    },
}

fn import<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, module, name)
}

pub(crate) fn decimal_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static T: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    import(py, &T, "decimal", "Decimal")
}

pub(crate) fn uuid_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static T: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    import(py, &T, "uuid", "UUID")
}

fn range_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static T: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    import(py, &T, "fastio._types", "Range")
}

/// `fastio.pg.Range`, or a Range of asyncpg's (same attributes).
fn is_range(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    if obj.is_instance(range_type(obj.py())?)? {
        return Ok(true);
    }
    Ok(obj.get_type().name()?.to_str()? == "Range" && obj.hasattr("isempty")?)
}

fn json_dumps(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static F: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    F.import(py, "json", "dumps")
}

/// Days since 0001-01-01 = day 1 (Python's `date.toordinal()`).
pub(crate) fn ordinal(y: i64, m: i64, d: i64) -> i64 {
    // Howard Hinnant's days_from_civil, shifted to Python's ordinal.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 + 719_163
}

fn wall_micros(dt: &Bound<'_, PyDateTime>) -> i64 {
    let days = ordinal(
        dt.get_year() as i64,
        dt.get_month() as i64,
        dt.get_day() as i64,
    ) - PG_EPOCH_ORDINAL;
    days * USECS_PER_DAY
        + time_micros(
            dt.get_hour(),
            dt.get_minute(),
            dt.get_second(),
            dt.get_microsecond(),
        )
}

/// Microseconds since 2000-01-01 00:00: UTC for an aware datetime, the wall
/// clock for a naive one.
pub(crate) fn datetime_micros(dt: &Bound<'_, PyDateTime>) -> PyResult<i64> {
    Ok(match dt.get_tzinfo() {
        Some(_) => {
            let off = dt.call_method0("utcoffset")?;
            let (d, us) = match off.cast::<PyDelta>() {
                Ok(off) => delta_micros(off),
                Err(_) => (0, 0),
            };
            wall_micros(dt) - (d * USECS_PER_DAY + us)
        }
        None => wall_micros(dt),
    })
}

pub(crate) fn time_micros(h: u8, m: u8, s: u8, us: u32) -> i64 {
    ((h as i64 * 60 + m as i64) * 60 + s as i64) * 1_000_000 + us as i64
}

pub(crate) fn delta_micros(d: &Bound<'_, PyDelta>) -> (i64, i64) {
    (
        d.get_days() as i64,
        d.get_seconds() as i64 * 1_000_000 + d.get_microseconds() as i64,
    )
}

impl Param {
    /// Converts one argument; never fails for an unknown type (the encoder
    /// reports it against the parameter's SQL type, as asyncpg does).
    pub(crate) fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Param> {
        let py = obj.py();
        if obj.is_none() {
            return Ok(Param::Null);
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Param::Str(s.to_str()?.to_owned()));
        }
        if obj.is_instance_of::<PyBool>() {
            return Ok(Param::Bool(obj.is_truthy()?));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(match obj.extract::<i64>() {
                Ok(v) => Param::Int(v),
                Err(_) => Param::BigInt(obj.str()?.to_str()?.to_owned()),
            });
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(Param::Float(f.value()));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Param::Bytes(b.as_bytes().to_vec()));
        }
        if let Ok(dt) = obj.cast::<PyDateTime>() {
            return Ok(Param::DateTime {
                micros: datetime_micros(dt)?,
            });
        }
        if let Ok(d) = obj.cast::<PyDate>() {
            let days = ordinal(
                d.get_year() as i64,
                d.get_month() as i64,
                d.get_day() as i64,
            ) - PG_EPOCH_ORDINAL;
            return Ok(Param::Date(days as i32));
        }
        if let Ok(t) = obj.cast::<PyTime>() {
            return Ok(Param::Time(time_micros(
                t.get_hour(),
                t.get_minute(),
                t.get_second(),
                t.get_microsecond(),
            )));
        }
        if let Ok(d) = obj.cast::<PyDelta>() {
            let (days, micros) = delta_micros(d);
            return Ok(Param::Interval { days, micros });
        }
        if let Ok(list) = obj.cast::<PyList>() {
            return list
                .iter()
                .map(|v| Param::from_py(&v))
                .collect::<PyResult<_>>()
                .map(Param::List);
        }
        if let Ok(r) = obj.cast::<crate::db::record::Record>() {
            // A Record (a composite value read back, say) as its values.
            return r
                .get()
                .values
                .iter()
                .map(|v| Param::from_py(v.bind(py)))
                .collect::<PyResult<_>>()
                .map(Param::List);
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return t
                .iter()
                .map(|v| Param::from_py(&v))
                .collect::<PyResult<_>>()
                .map(Param::List);
        }
        if obj.is_instance(decimal_type(py)?)? {
            return Ok(Param::Decimal(obj.str()?.to_str()?.to_owned()));
        }
        if obj.is_instance(uuid_type(py)?)? {
            let v: u128 = obj.getattr("int")?.extract()?;
            return Ok(Param::Uuid(v.to_be_bytes()));
        }
        if obj.is_instance_of::<PyDict>() {
            let s = json_dumps(py)?.call1((obj,))?;
            return Ok(Param::Json(s.extract()?));
        }
        let ty = obj.get_type();
        if ty.module()?.to_str()? == "ipaddress" {
            return Ok(Param::Str(obj.str()?.to_str()?.to_owned()));
        }
        if let Ok(b) = obj.cast::<PyByteArray>() {
            return Ok(Param::Bytes(b.to_vec()));
        }
        if is_range(obj)? {
            let bound = |name: &str| -> PyResult<Option<Box<Param>>> {
                let v = obj.getattr(name)?;
                Ok(if v.is_none() {
                    None
                } else {
                    Some(Box::new(Param::from_py(&v)?))
                })
            };
            return Ok(Param::Range {
                lower: bound("lower")?,
                upper: bound("upper")?,
                lower_inc: obj.getattr("lower_inc")?.is_truthy()?,
                upper_inc: obj.getattr("upper_inc")?.is_truthy()?,
                empty: obj.getattr("isempty")?.is_truthy()?,
            });
        }
        if let Ok(b) = obj.extract::<Vec<u8>>() {
            if !obj.is_instance_of::<PyString>() {
                return Ok(Param::Bytes(b));
            }
        }
        Ok(Param::Unsupported {
            repr: obj.repr()?.to_str()?.to_owned(),
            type_name: obj.get_type().name()?.to_str()?.to_owned(),
        })
    }

    /// `from_py`, keeping the object as well (for `set_type_codec` encoders).
    pub(crate) fn kept(obj: &Bound<'_, PyAny>) -> PyResult<Param> {
        Ok(Param::Custom {
            obj: std::sync::Arc::new(obj.clone().unbind()),
            plain: Box::new(Param::from_py(obj)?),
        })
    }

    /// The argument itself, without a kept object.
    pub(crate) fn plain(&self) -> &Param {
        match self {
            Param::Custom { plain, .. } => plain,
            p => p,
        }
    }

    /// Python-style repr for error messages.
    pub(crate) fn repr(&self) -> String {
        match self {
            Param::Null => "None".into(),
            Param::Bool(b) => if *b { "True" } else { "False" }.into(),
            Param::Int(v) => v.to_string(),
            Param::BigInt(s) => s.clone(),
            Param::Float(f) => format!("{f:?}"),
            Param::Str(s) | Param::Json(s) => py_str_repr(s),
            Param::Bytes(b) => format!("b{}", py_str_repr(&String::from_utf8_lossy(b))),
            Param::Decimal(s) => format!("Decimal('{s}')"),
            Param::Date(_) | Param::Time(_) | Param::DateTime { .. } | Param::Interval { .. } => {
                self.type_name().to_owned()
            }
            Param::Uuid(u) => format!("UUID('{}')", uuid_text(u)),
            Param::List(v) => {
                let inner: Vec<String> = v.iter().map(Param::repr).collect();
                format!("[{}]", inner.join(", "))
            }
            Param::Range { .. } => "Range".into(),
            Param::Custom { plain, .. } => plain.repr(),
            Param::Unsupported { repr, .. } => repr.clone(),
        }
    }

    fn type_name(&self) -> &str {
        match self {
            Param::Null => "NoneType",
            Param::Bool(_) => "bool",
            Param::Int(_) | Param::BigInt(_) => "int",
            Param::Float(_) => "float",
            Param::Str(_) => "str",
            Param::Bytes(_) => "bytes",
            Param::Decimal(_) => "Decimal",
            Param::Date(_) => "date",
            Param::Time(_) => "time",
            Param::DateTime { .. } => "datetime",
            Param::Interval { .. } => "timedelta",
            Param::Uuid(_) => "UUID",
            Param::List(_) => "list",
            Param::Json(_) => "dict",
            Param::Range { .. } => "Range",
            Param::Custom { plain, .. } => plain.type_name(),
            Param::Unsupported { type_name, .. } => type_name,
        }
    }
}

fn py_str_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

pub(crate) fn uuid_text(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn expected(what: &str, got: &Param) -> String {
    format!("expected {what}, got '{}'", got.type_name())
}

fn int_range(v: i64, bits: u32) -> Result<i64, String> {
    let (lo, hi) = match bits {
        16 => (i16::MIN as i64, i16::MAX as i64),
        32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    if v < lo || v > hi {
        Err(format!("value out of int{bits} range"))
    } else {
        Ok(v)
    }
}

/// Encodes `p` (not NULL) as the binary value of type `ty` onto `buf`.
/// The error is the parenthesised reason of asyncpg's "invalid input for
/// query argument $N: <value> (<reason>)".
pub(crate) fn encode(p: &Param, ty: u32, buf: &mut Vec<u8>) -> Result<(), String> {
    use oid::*;
    match (ty, p) {
        (INT2, Param::Int(v)) => buf.extend_from_slice(&(int_range(*v, 16)? as i16).to_be_bytes()),
        (INT4, Param::Int(v)) => buf.extend_from_slice(&(int_range(*v, 32)? as i32).to_be_bytes()),
        (INT8, Param::Int(v)) => buf.extend_from_slice(&v.to_be_bytes()),
        (OID, Param::Int(v)) => {
            let v = u32::try_from(*v).map_err(|_| "value out of uint32 range".to_owned())?;
            buf.extend_from_slice(&v.to_be_bytes())
        }
        (INT2 | INT4 | INT8, Param::BigInt(_)) => {
            return Err(format!("value out of int{} range", int_bits(ty)))
        }
        (INT2 | INT4 | INT8 | OID, Param::Bool(_))
        | (INT2 | INT4 | INT8 | OID, Param::Float(_)) => {
            return Err(format!(
                "'{}' object cannot be interpreted as an integer",
                p.type_name()
            ))
        }
        (INT2 | INT4 | INT8 | OID, _) => {
            return Err(format!(
                "'{}' object cannot be interpreted as an integer",
                p.type_name()
            ))
        }
        (FLOAT4, Param::Float(f)) => buf.extend_from_slice(&(*f as f32).to_be_bytes()),
        (FLOAT4, Param::Int(i)) => buf.extend_from_slice(&(*i as f32).to_be_bytes()),
        (FLOAT8, Param::Float(f)) => buf.extend_from_slice(&f.to_be_bytes()),
        (FLOAT8, Param::Int(i)) => buf.extend_from_slice(&(*i as f64).to_be_bytes()),
        (FLOAT4 | FLOAT8, _) => return Err(expected("a float", p)),
        (NUMERIC, Param::Decimal(s) | Param::BigInt(s)) => encode_numeric(s, buf)?,
        (NUMERIC, Param::Int(i)) => encode_numeric(&i.to_string(), buf)?,
        (NUMERIC, Param::Float(f)) => {
            let s = if f.is_nan() {
                "NaN".to_owned()
            } else if f.is_infinite() {
                if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
            } else {
                f.to_string()
            };
            encode_numeric(&s, buf)?
        }
        (NUMERIC, _) => return Err(expected("a Decimal, int or float", p)),
        (BOOL, Param::Bool(b)) => buf.push(*b as u8),
        (BOOL, _) => return Err(expected("a bool", p)),
        (BYTEA, Param::Bytes(b)) => buf.extend_from_slice(b),
        (BYTEA, _) => return Err(expected("a bytes-like object", p)),
        (TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | XML | CHAR, Param::Str(s)) => {
            buf.extend_from_slice(s.as_bytes())
        }
        (JSON, Param::Str(s) | Param::Json(s)) => buf.extend_from_slice(s.as_bytes()),
        (JSONB, Param::Str(s) | Param::Json(s)) => {
            buf.push(1);
            buf.extend_from_slice(s.as_bytes())
        }
        (JSON | JSONB, Param::List(_) | Param::Int(_) | Param::Float(_) | Param::Bool(_)) => {
            if ty == JSONB {
                buf.push(1);
            }
            write_json(p, buf)?
        }
        (INET | CIDR, Param::Str(s)) => encode_inet(s, ty == CIDR, buf)?,
        (INET | CIDR, _) => return Err(expected("an ipaddress object or str", p)),
        (UUID, Param::Uuid(u)) => buf.extend_from_slice(u),
        (UUID, Param::Str(s)) => buf.extend_from_slice(&parse_uuid(s)?),
        (DATE, Param::Date(d)) => buf.extend_from_slice(&d.to_be_bytes()),
        (DATE, Param::DateTime { micros, .. }) => {
            buf.extend_from_slice(&(micros.div_euclid(USECS_PER_DAY) as i32).to_be_bytes())
        }
        (DATE, Param::Str(s)) => buf.extend_from_slice(&parse_date(s)?.to_be_bytes()),
        (TIMESTAMP | TIMESTAMPTZ, Param::DateTime { micros, .. }) => {
            buf.extend_from_slice(&micros.to_be_bytes())
        }
        (TIMESTAMP | TIMESTAMPTZ, Param::Date(d)) => {
            buf.extend_from_slice(&(*d as i64 * USECS_PER_DAY).to_be_bytes())
        }
        (TIME, Param::Time(t)) => buf.extend_from_slice(&t.to_be_bytes()),
        (INTERVAL, Param::Interval { days, micros }) => {
            buf.extend_from_slice(&micros.to_be_bytes());
            let days = i32::try_from(*days).map_err(|_| "interval out of range".to_owned())?;
            buf.extend_from_slice(&days.to_be_bytes());
            buf.extend_from_slice(&0i32.to_be_bytes());
        }
        (t, Param::List(items)) if oid::array_element(t).is_some() => {
            encode_array(items, oid::array_element(t).unwrap_or(TEXT), buf)?
        }
        (
            t,
            Param::Range {
                lower,
                upper,
                lower_inc,
                upper_inc,
                empty,
            },
        ) if oid::range_element(t).is_some() => encode_range(
            oid::range_element(t).unwrap_or(TEXT),
            lower.as_deref(),
            upper.as_deref(),
            *lower_inc,
            *upper_inc,
            *empty,
            buf,
        )?,
        // asyncpg also takes a (lower, upper) pair: '[lower, upper)'.
        (t, Param::List(items)) if oid::range_element(t).is_some() && items.len() == 2 => {
            let bound = |p: &Param| match p {
                Param::Null => None,
                p => Some(p.clone()),
            };
            let (lower, upper) = (bound(&items[0]), bound(&items[1]));
            encode_range(
                oid::range_element(t).unwrap_or(TEXT),
                lower.as_ref(),
                upper.as_ref(),
                true,
                false,
                false,
                buf,
            )?
        }
        (t, _) if oid::range_element(t).is_some() => {
            return Err(expected("a Range or a (lower, upper) pair", p))
        }
        (MONEY, Param::Str(s) | Param::Decimal(s) | Param::BigInt(s)) => {
            buf.extend_from_slice(&parse_money(s)?.to_be_bytes())
        }
        (MONEY, Param::Int(i)) => {
            let cents = i.checked_mul(100).ok_or("money out of range")?;
            buf.extend_from_slice(&cents.to_be_bytes())
        }
        (MONEY, Param::Float(f)) => {
            let cents = (f * 100.0).round();
            if !cents.is_finite() || cents.abs() > i64::MAX as f64 {
                return Err("money out of range".into());
            }
            buf.extend_from_slice(&(cents as i64).to_be_bytes())
        }
        (MONEY, _) => return Err(expected("a str, Decimal or int", p)),
        // Types without a native encoder (enums, domains over text, ...):
        // their binary input is their text form for enums; others fail on
        // the server with a clear error.
        (_, Param::Str(s)) if oid::array_element(ty).is_none() && !is_known(ty) => {
            buf.extend_from_slice(s.as_bytes())
        }
        (DATE | TIMESTAMP | TIMESTAMPTZ | TIME | INTERVAL | UUID, _) => {
            return Err(expected(type_label(ty), p))
        }
        (TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | XML | CHAR | JSON | JSONB, _) => {
            return Err(expected("str", p))
        }
        (t, _) if oid::array_element(t).is_some() => return Err(expected("a list or tuple", p)),
        _ => {
            return Err(format!(
                "no encoder for '{}' into type oid {ty}",
                p.type_name()
            ))
        }
    }
    Ok(())
}

/// Range binary format: flags, then each finite bound as length + value.
fn encode_range(
    elem: u32,
    lower: Option<&Param>,
    upper: Option<&Param>,
    lower_inc: bool,
    upper_inc: bool,
    empty: bool,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    use super::to_python::range_flags::*;
    if empty {
        buf.push(EMPTY);
        return Ok(());
    }
    let mut flags = 0;
    match lower {
        None => flags |= LB_INF,
        Some(_) if lower_inc => flags |= LB_INC,
        Some(_) => {}
    }
    match upper {
        None => flags |= UB_INF,
        Some(_) if upper_inc => flags |= UB_INC,
        Some(_) => {}
    }
    buf.push(flags);
    for b in [lower, upper].into_iter().flatten() {
        let at = buf.len();
        buf.extend_from_slice(&0i32.to_be_bytes());
        encode(b, elem, buf).map_err(|why| format!("range bound {}: {why}", b.repr()))?;
        let len = (buf.len() - at - 4) as i32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// Money text (`'$1,234.56'`, `'-12.5'`, `'(3.00)'`) or a Decimal string as cents.
fn parse_money(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid input for type money: {}", py_str_repr(s));
    let t = s.trim();
    let (neg, t) = if let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        (true, inner)
    } else if let Some(rest) = t.strip_prefix('-') {
        (true, rest)
    } else {
        (false, t)
    };
    let digits: String = t
        .chars()
        .filter(|c| !matches!(c, '$' | ',' | ' '))
        .collect();
    let (units, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    if units.is_empty() && frac.is_empty()
        || !units.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| bad())?
    };
    let mut frac_digits = frac.bytes().map(|b| (b - b'0') as i64);
    let tenths = frac_digits.next().unwrap_or(0);
    let hundredths = frac_digits.next().unwrap_or(0);
    // Rounded half up on the third decimal, as money_in does.
    let round = i64::from(frac_digits.next().unwrap_or(0) >= 5);
    let cents = units
        .checked_mul(100)
        .and_then(|c| c.checked_add(tenths * 10 + hundredths + round))
        .ok_or_else(|| "money out of range".to_owned())?;
    Ok(if neg { -cents } else { cents })
}

fn is_known(ty: u32) -> bool {
    use oid::*;
    matches!(
        ty,
        BOOL | BYTEA
            | CHAR
            | NAME
            | INT8
            | INT2
            | INT4
            | TEXT
            | OID
            | JSON
            | XML
            | FLOAT4
            | FLOAT8
            | UNKNOWN
            | BPCHAR
            | VARCHAR
            | DATE
            | TIME
            | TIMESTAMP
            | TIMESTAMPTZ
            | INTERVAL
            | NUMERIC
            | UUID
            | JSONB
    )
}

fn int_bits(ty: u32) -> u32 {
    match ty {
        oid::INT2 => 16,
        oid::INT4 => 32,
        _ => 64,
    }
}

fn type_label(ty: u32) -> &'static str {
    match ty {
        oid::DATE => "a datetime.date or datetime.datetime instance",
        oid::TIMESTAMP | oid::TIMESTAMPTZ => "a datetime.date or datetime.datetime instance",
        oid::TIME => "a datetime.time instance",
        oid::INTERVAL => "a datetime.timedelta instance",
        oid::UUID => "a uuid.UUID or str",
        _ => "a value of the parameter's type",
    }
}

/// inet/cidr binary: family, prefix bits, is_cidr, address length, address.
fn encode_inet(s: &str, cidr: bool, buf: &mut Vec<u8>) -> Result<(), String> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (
            a,
            Some(
                b.parse::<u8>()
                    .map_err(|_| format!("invalid network prefix in {s:?}"))?,
            ),
        ),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("invalid IP address {s:?}"))?;
    let (family, max, bytes) = match ip {
        std::net::IpAddr::V4(a) => (2u8, 32u8, a.octets().to_vec()),
        std::net::IpAddr::V6(a) => (3u8, 128u8, a.octets().to_vec()),
    };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return Err(format!("invalid network prefix in {s:?}"));
    }
    buf.extend_from_slice(&[family, bits, cidr as u8, bytes.len() as u8]);
    buf.extend_from_slice(&bytes);
    Ok(())
}

pub(crate) fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let hex: String = s
        .trim_start_matches("urn:uuid:")
        .chars()
        .filter(|c| !matches!(c, '-' | '{' | '}'))
        .collect();
    if hex.len() != 32 {
        return Err(format!("invalid UUID {s:?}: expected 32 hex digits"));
    }
    let v = u128::from_str_radix(&hex, 16).map_err(|_| format!("invalid UUID {s:?}"))?;
    Ok(v.to_be_bytes())
}

fn parse_date(s: &str) -> Result<i32, String> {
    let bad = || format!("invalid date {s:?}: expected YYYY-MM-DD");
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let m: i64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let d: i64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > mdays[(m - 1) as usize] {
        return Err(bad());
    }
    Ok((ordinal(y, m, d) - PG_EPOCH_ORDINAL) as i32)
}

/// PostgreSQL's binary numeric from decimal text (`str(Decimal)`).
pub(crate) fn encode_numeric(s: &str, buf: &mut Vec<u8>) -> Result<(), String> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let special = |sign: u16, buf: &mut Vec<u8>| {
        buf.extend_from_slice(&0i16.to_be_bytes());
        buf.extend_from_slice(&0i16.to_be_bytes());
        buf.extend_from_slice(&sign.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
    };
    match body.to_ascii_lowercase().as_str() {
        "nan" | "snan" => {
            special(0xC000, buf);
            return Ok(());
        }
        "infinity" | "inf" => {
            special(if neg { 0xF000 } else { 0xD000 }, buf);
            return Ok(());
        }
        _ => {}
    }
    let bad = || format!("invalid numeric {s:?}");
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (body, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    let mut digits: Vec<u8> = Vec::with_capacity(int_part.len() + frac_part.len() + 8);
    for c in int_part.bytes().chain(frac_part.bytes()) {
        if !c.is_ascii_digit() {
            return Err(bad());
        }
        digits.push(c - b'0');
    }
    let mut point = int_part.len() as i64 + exp;
    let dscale = (digits.len() as i64 - point).max(0);
    let lead = (4 - point.rem_euclid(4)) % 4;
    let mut padded = vec![0u8; lead as usize];
    padded.extend_from_slice(&digits);
    point += lead;
    while !padded.len().is_multiple_of(4) || (padded.len() as i64) < point {
        padded.push(0);
    }
    let mut groups: Vec<i16> = padded
        .chunks(4)
        .map(|c| (c[0] as i16) * 1000 + (c[1] as i16) * 100 + (c[2] as i16) * 10 + c[3] as i16)
        .collect();
    let mut weight = point / 4 - 1;
    let lead_zeros = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead_zeros);
    weight -= lead_zeros as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight).map_err(|_| format!("numeric {s:?} out of range"))?;
    let dscale = u16::try_from(dscale).map_err(|_| format!("numeric {s:?} out of range"))?;
    buf.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    buf.extend_from_slice(&weight.to_be_bytes());
    buf.extend_from_slice(
        &(if neg && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    buf.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        buf.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

fn array_dims(items: &[Param], dims: &mut Vec<i32>) {
    dims.push(items.len() as i32);
    if let Some(Param::List(inner)) = items.first() {
        array_dims(inner, dims);
    }
}

/// How a parameter of some type is sent.
#[derive(Clone, Debug)]
pub(crate) enum Wire {
    /// In the binary format of this built-in type (a domain's base type).
    As(u32),
    /// An array of a user-defined type (domain, enum): the element type's
    /// OID in the header, each element in the format of `elem`.
    ArrayOf { header: u32, elem: u32 },
    /// A composite type: each attribute's declared type OID and wire form.
    Composite(std::sync::Arc<[(u32, Wire)]>),
}

/// Encodes `p` (not NULL) as `wire` says.
pub(crate) fn encode_wire(p: &Param, wire: &Wire, buf: &mut Vec<u8>) -> Result<(), String> {
    match (wire, p.plain()) {
        (Wire::As(ty), p) => encode(p, *ty, buf),
        (Wire::ArrayOf { header, elem }, Param::List(items)) => {
            encode_array_as(items, *header, *elem, buf)
        }
        (Wire::ArrayOf { .. }, p) => Err(expected("a list or tuple", p)),
        (Wire::Composite(fields), Param::List(items)) => encode_composite(items, fields, buf),
        (Wire::Composite(_), p) => Err(expected("a tuple, list or Record", p)),
    }
}

/// A composite value (record_send's format): the attribute count, then
/// each attribute's type OID and length-prefixed value (-1 for NULL).
fn encode_composite(
    items: &[Param],
    fields: &[(u32, Wire)],
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    if items.len() != fields.len() {
        return Err(format!(
            "expected a sequence of {} elements, got {}",
            fields.len(),
            items.len()
        ));
    }
    buf.extend_from_slice(&(fields.len() as i32).to_be_bytes());
    for (item, (ty, wire)) in items.iter().zip(fields) {
        buf.extend_from_slice(&ty.to_be_bytes());
        if let Param::Null = item.plain() {
            buf.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let at = buf.len();
        buf.extend_from_slice(&0i32.to_be_bytes());
        encode_wire(item, wire, buf)?;
        let len = (buf.len() - at - 4) as i32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn encode_array(items: &[Param], elem: u32, buf: &mut Vec<u8>) -> Result<(), String> {
    encode_array_as(items, elem, elem, buf)
}

fn encode_array_as(
    items: &[Param],
    header: u32,
    elem: u32,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let mut dims = Vec::new();
    array_dims(items, &mut dims);
    if items.is_empty() {
        dims.clear();
    }
    let start = put_array_header(&dims, header, buf);
    if dims.is_empty() {
        return Ok(()); // '{}': zero dimensions, no elements
    }
    let mut has_null = false;
    encode_elements(items, &dims, elem, buf, &mut has_null)?;
    if has_null {
        mark_array_has_null(start, buf);
    }
    Ok(())
}

/// Writes an array's header (array_send's format: dimension count, has-null
/// flag, element type, then each dimension's length and lower bound 1);
/// returns where it starts, for [`mark_array_has_null`].
pub(crate) fn put_array_header(dims: &[i32], header: u32, buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&(dims.len() as i32).to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes()); // has-null flag, see below
    buf.extend_from_slice(&header.to_be_bytes());
    for d in dims {
        buf.extend_from_slice(&d.to_be_bytes());
        buf.extend_from_slice(&1i32.to_be_bytes());
    }
    start
}

/// Sets the has-null flag of the array header written at `start`.
pub(crate) fn mark_array_has_null(start: usize, buf: &mut [u8]) {
    buf[start + 4..start + 8].copy_from_slice(&1i32.to_be_bytes());
}

fn encode_elements(
    items: &[Param],
    dims: &[i32],
    elem: u32,
    buf: &mut Vec<u8>,
    has_null: &mut bool,
) -> Result<(), String> {
    if items.len() as i32 != dims[0] {
        return Err("multi-dimensional arrays must have sub-arrays of matching length".into());
    }
    for item in items {
        if dims.len() > 1 {
            match item {
                Param::List(inner) => encode_elements(inner, &dims[1..], elem, buf, has_null)?,
                _ => {
                    return Err(
                        "multi-dimensional arrays must have sub-arrays of matching length".into(),
                    )
                }
            }
            continue;
        }
        if let Param::Null = item {
            *has_null = true;
            buf.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let len_at = buf.len();
        buf.extend_from_slice(&0i32.to_be_bytes());
        encode(item, elem, buf)?;
        let len = (buf.len() - len_at - 4) as i32;
        buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn write_json(p: &Param, buf: &mut Vec<u8>) -> Result<(), String> {
    match p {
        Param::Null => buf.extend_from_slice(b"null"),
        Param::Bool(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
        Param::Int(i) => buf.extend_from_slice(i.to_string().as_bytes()),
        Param::BigInt(s) | Param::Decimal(s) => buf.extend_from_slice(s.as_bytes()),
        Param::Float(f) => buf.extend_from_slice(
            serde_json::to_string(f)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        ),
        Param::Str(s) => buf.extend_from_slice(
            serde_json::to_string(s)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        ),
        Param::Json(s) => buf.extend_from_slice(s.as_bytes()),
        Param::List(items) => {
            buf.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_json(item, buf)?;
            }
            buf.push(b']');
        }
        other => return Err(format!("'{}' is not JSON serializable", other.type_name())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(s: &str) -> Vec<u8> {
        let mut b = Vec::new();
        encode_numeric(s, &mut b).unwrap();
        b
    }

    fn words(b: &[u8]) -> Vec<i16> {
        b.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_layout() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(
            words(&numeric("12345.678")),
            vec![3, 1, 0, 3, 1, 2345, 6780]
        );
        assert_eq!(words(&numeric("-0.0001")), vec![1, -1, 0x4000, 4, 1]);
        assert_eq!(words(&numeric("1E+8")), vec![1, 2, 0, 0, 1]);
        assert_eq!(words(&numeric("0")), vec![0, 0, 0, 0]);
        assert_eq!(words(&numeric("0.00")), vec![0, 0, 0, 2]);
        assert_eq!(words(&numeric("1.5E-7")), vec![1, -2, 0, 8, 15]);
    }

    #[test]
    fn composite_layout() {
        let fields: std::sync::Arc<[(u32, Wire)]> = vec![
            (oid::INT4, Wire::As(oid::INT4)),
            (oid::TEXT, Wire::As(oid::TEXT)),
        ]
        .into();
        let mut b = Vec::new();
        let value = Param::List(vec![Param::Int(7), Param::Null]);
        encode_wire(&value, &Wire::Composite(fields.clone()), &mut b).unwrap();
        // count; int4 oid, length 4, 7; text oid, NULL.
        assert_eq!(
            b,
            [0, 0, 0, 2, 0, 0, 0, 23, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 25, 255, 255, 255, 255]
        );
        let short = Param::List(vec![Param::Int(1)]);
        assert!(encode_wire(&short, &Wire::Composite(fields), &mut Vec::new()).is_err());
    }

    #[test]
    fn money_parses_its_text_forms() {
        assert_eq!(parse_money("$1,234.56"), Ok(123_456));
        assert_eq!(parse_money("-$0.05"), Ok(-5));
        assert_eq!(parse_money("(3.00)"), Ok(-300));
        assert_eq!(parse_money("12.345"), Ok(1235));
        assert_eq!(parse_money("7"), Ok(700));
        assert!(parse_money("abc").is_err());
        assert!(parse_money("").is_err());
    }

    #[test]
    fn ordinals_match_python() {
        assert_eq!(ordinal(2000, 1, 1), 730_120);
        assert_eq!(ordinal(1, 1, 1), 1);
        assert_eq!(ordinal(2024, 2, 29), 738_945);
    }
}
