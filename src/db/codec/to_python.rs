//! Binary wire values → Python objects, on the event-loop thread.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBytes, PyDate, PyDateTime, PyDelta, PyDict, PyList, PyString, PyTime, PyTuple, PyTzInfo,
};
use pyo3::IntoPyObjectExt;
use sqlx::postgres::{PgTypeInfo, PgTypeKind};
use std::sync::Arc;

use crate::db::record::{Record, RecordDesc};

use super::from_python::{decimal_type, uuid_type};
use super::oid;
use super::{PG_EPOCH_ORDINAL, USECS_PER_DAY};

/// How json/jsonb columns come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonMode {
    /// Parsed into Python objects (the native API).
    Decode,
    /// The JSON text, as asyncpg returns it.
    Text,
}

fn json_loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static F: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    F.import(py, "json", "loads")
}

fn utc(py: Python<'_>) -> PyResult<Bound<'_, PyTzInfo>> {
    PyTzInfo::utc(py).map(|u| u.to_owned())
}

fn take<const N: usize>(b: &[u8]) -> PyResult<[u8; N]> {
    b.get(..N).and_then(|s| s.try_into().ok()).ok_or_else(|| {
        crate::errors::Error::Interface(format!("truncated {N}-byte value from the server")).into()
    })
}

/// (year, month, day) of a Python ordinal (0001-01-01 = 1).
pub(crate) fn civil(ordinal: i64) -> (i32, u8, u8) {
    let z = ordinal - 719_163 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    ((if m <= 2 { y + 1 } else { y }) as i32, m as u8, d as u8)
}

fn timestamp<'py>(py: Python<'py>, micros: i64, aware: bool) -> PyResult<Bound<'py, PyAny>> {
    let tz = if aware { Some(utc(py)?) } else { None };
    if micros == i64::MAX || micros == i64::MIN {
        // 'infinity' / '-infinity': datetime.max / datetime.min, as asyncpg.
        let (y, mo, d, h, mi, s, us) = if micros > 0 {
            (9999, 12, 31, 23, 59, 59, 999_999)
        } else {
            (1, 1, 1, 0, 0, 0, 0)
        };
        return PyDateTime::new(py, y, mo, d, h, mi, s, us, tz.as_ref()).map(Bound::into_any);
    }
    let days = micros.div_euclid(USECS_PER_DAY);
    let rem = micros.rem_euclid(USECS_PER_DAY);
    let (y, mo, d) = civil(days + PG_EPOCH_ORDINAL);
    let secs = rem / 1_000_000;
    PyDateTime::new(
        py,
        y,
        mo,
        d,
        (secs / 3600) as u8,
        ((secs / 60) % 60) as u8,
        (secs % 60) as u8,
        (rem % 1_000_000) as u32,
        tz.as_ref(),
    )
    .map(Bound::into_any)
}

fn numeric_text(b: &[u8]) -> PyResult<String> {
    let ndigits = i16::from_be_bytes(take(b)?) as usize;
    let weight = i16::from_be_bytes(take(&b[2..])?) as i64;
    let sign = u16::from_be_bytes(take(&b[4..])?);
    let dscale = u16::from_be_bytes(take(&b[6..])?) as i64;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        digits.push(i16::from_be_bytes(take(&b[8 + 2 * i..])?) as i64);
    }
    let mut out = String::with_capacity(ndigits * 4 + 4);
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: groups 0..=weight.
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let g = digits.get(i as usize).copied().unwrap_or(0);
            if i == 0 {
                out.push_str(&g.to_string());
            } else {
                out.push_str(&format!("{g:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale as usize + 4);
        let mut i = weight + 1;
        while (frac.len() as i64) < dscale {
            let g = if i < 0 {
                0
            } else {
                digits.get(i as usize).copied().unwrap_or(0)
            };
            frac.push_str(&format!("{g:04}"));
            i += 1;
        }
        frac.truncate(dscale as usize);
        out.push_str(&frac);
    }
    Ok(out)
}

fn text<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(PyString::new(py, s).into_any()),
        Err(_) => Ok(PyBytes::new(py, b).into_any()),
    }
}

/// Decodes one non-NULL binary value of type `ty`.
pub(crate) fn decode<'py>(
    py: Python<'py>,
    ty: u32,
    b: &[u8],
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    use oid::*;
    Ok(match ty {
        BOOL => (b.first().copied().unwrap_or(0) != 0).into_bound_py_any(py)?,
        INT2 => i16::from_be_bytes(take(b)?).into_bound_py_any(py)?,
        INT4 => i32::from_be_bytes(take(b)?).into_bound_py_any(py)?,
        INT8 => i64::from_be_bytes(take(b)?).into_bound_py_any(py)?,
        OID => u32::from_be_bytes(take(b)?).into_bound_py_any(py)?,
        FLOAT4 => (f32::from_be_bytes(take(b)?) as f64).into_bound_py_any(py)?,
        FLOAT8 => f64::from_be_bytes(take(b)?).into_bound_py_any(py)?,
        TEXT | VARCHAR | BPCHAR | NAME | CHAR | XML | UNKNOWN => text(py, b)?,
        BYTEA => PyBytes::new(py, b).into_any(),
        NUMERIC => decimal_type(py)?.call1((numeric_text(b)?,))?,
        UUID => {
            let v = u128::from_be_bytes(take(b)?);
            let kw = pyo3::types::PyDict::new(py);
            kw.set_item("int", v)?;
            uuid_type(py)?.call((), Some(&kw))?
        }
        DATE => {
            let d = i32::from_be_bytes(take(b)?);
            match d {
                i32::MAX => PyDate::new(py, 9999, 12, 31)?.into_any(),
                i32::MIN => PyDate::new(py, 1, 1, 1)?.into_any(),
                _ => {
                    let (y, m, dd) = civil(d as i64 + PG_EPOCH_ORDINAL);
                    PyDate::new(py, y, m, dd)?.into_any()
                }
            }
        }
        TIME => {
            let us = i64::from_be_bytes(take(b)?);
            let secs = us / 1_000_000;
            PyTime::new(
                py,
                (secs / 3600) as u8,
                ((secs / 60) % 60) as u8,
                (secs % 60) as u8,
                (us % 1_000_000) as u32,
                None,
            )?
            .into_any()
        }
        TIMESTAMP => timestamp(py, i64::from_be_bytes(take(b)?), false)?,
        TIMESTAMPTZ => timestamp(py, i64::from_be_bytes(take(b)?), true)?,
        INTERVAL => {
            let us = i64::from_be_bytes(take(b)?);
            let days = i32::from_be_bytes(take(&b[8..])?) as i64;
            let months = i32::from_be_bytes(take(&b[12..])?) as i64;
            let days = days + months * 30 + us.div_euclid(USECS_PER_DAY);
            let rem = us.rem_euclid(USECS_PER_DAY);
            PyDelta::new(
                py,
                days as i32,
                (rem / 1_000_000) as i32,
                (rem % 1_000_000) as i32,
                true,
            )?
            .into_any()
        }
        JSON | JSONB => {
            let body = if ty == JSONB {
                b.get(1..).unwrap_or(&[])
            } else {
                b
            };
            let s = std::str::from_utf8(body).map_err(|e| {
                crate::errors::Error::Interface(format!("invalid UTF-8 in json: {e}"))
            })?;
            match json {
                JsonMode::Text => PyString::new(py, s).into_any(),
                JsonMode::Decode => json_loads(py)?.call1((s,))?,
            }
        }
        INET | CIDR => decode_inet(py, ty, b)?,
        MACADDR => {
            let m: [u8; 6] = take(b)?;
            let text: Vec<String> = m.iter().map(|x| format!("{x:02x}")).collect();
            PyString::new(py, &text.join(":")).into_any()
        }
        TIMETZ => {
            let us = i64::from_be_bytes(take(b)?);
            let zone = i32::from_be_bytes(take(&b[8..])?);
            let secs = us / 1_000_000;
            let offset = PyDelta::new(py, 0, -zone, 0, true)?;
            let tz = pyo3::types::PyTzInfo::fixed_offset(py, offset)?;
            PyTime::new(
                py,
                (secs / 3600) as u8,
                ((secs / 60) % 60) as u8,
                (secs % 60) as u8,
                (us % 1_000_000) as u32,
                Some(&tz),
            )?
            .into_any()
        }
        MONEY => PyString::new(py, &money_text(i64::from_be_bytes(take(b)?))).into_any(),
        RECORD => decode_composite(py, b, None, json)?,
        t if oid::array_element(t).is_some() => decode_array(py, b, None, json)?,
        t if oid::range_element(t).is_some() => {
            let elem = Dec::Oid(oid::range_element(t).unwrap_or(TEXT));
            decode_range(py, b, &elem, json)?
        }
        // Enums and other text-like types send their text form; anything
        // else we do not know arrives as bytes.
        _ => text(py, b)?,
    })
}

fn ipaddress<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyAny>> {
    static M: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    M.get_or_try_init(py, || Ok::<_, PyErr>(py.import("ipaddress")?.unbind()))?
        .bind(py)
        .getattr(name)
}

/// inet/cidr as asyncpg returns them: cidr -> IPv4Network/IPv6Network; inet
/// -> IPv4Address/IPv6Address for a host, IPv4Interface/IPv6Interface with a
/// shorter prefix.
fn decode_inet<'py>(py: Python<'py>, ty: u32, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let [family, bits, _is_cidr, n]: [u8; 4] = take(b)?;
    let addr = b.get(4..4 + n as usize).ok_or_else(|| {
        PyErr::from(crate::errors::Error::Interface(
            "truncated inet from the server".into(),
        ))
    })?;
    let max = if family == 3 { 128 } else { 32 };
    let text = match family {
        3 => {
            let a: [u8; 16] = take(addr)?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => {
            let a: [u8; 4] = take(addr)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
    };
    if ty == oid::CIDR {
        ipaddress(py, "ip_network")?.call1((format!("{text}/{bits}"),))
    } else if bits == max {
        ipaddress(py, "ip_address")?.call1((text,))
    } else {
        ipaddress(py, "ip_interface")?.call1((format!("{text}/{bits}"),))
    }
}

/// How to decode the values of one column: by OID for built-in types, or
/// from the column's type information for user-defined ones (domains as
/// their base type, enums as text, composites as Records, arrays and ranges
/// of those).
#[derive(Clone)]
pub(crate) enum Dec {
    Oid(u32),
    Array(Box<Dec>),
    Range(Box<Dec>),
    Composite(Arc<RecordDesc>, Arc<[Dec]>),
}

impl Dec {
    /// The decoder of a column or parameter of type `ti`.
    pub(crate) fn of(py: Python<'_>, ti: &PgTypeInfo) -> PyResult<Dec> {
        let ty = ti.oid().map(|o| o.0).unwrap_or(oid::TEXT);
        if oid::is_native(ty) {
            return Ok(Dec::Oid(ty));
        }
        Ok(match ti.kind() {
            PgTypeKind::Domain(base) => Dec::of(py, base)?,
            PgTypeKind::Array(elem) => Dec::Array(Box::new(Dec::of(py, elem)?)),
            PgTypeKind::Range(elem) => Dec::Range(Box::new(Dec::of(py, elem)?)),
            PgTypeKind::Composite(fields) => {
                let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                let decs = fields
                    .iter()
                    .map(|(_, t)| Dec::of(py, t))
                    .collect::<PyResult<Vec<_>>>()?;
                Dec::Composite(RecordDesc::new(py, &names)?, decs.into())
            }
            PgTypeKind::Enum(_) => Dec::Oid(oid::TEXT),
            _ => Dec::Oid(ty),
        })
    }
}

/// Decodes one non-NULL binary value described by `dec`.
pub(crate) fn decode_with<'py>(
    py: Python<'py>,
    dec: &Dec,
    b: &[u8],
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    match dec {
        Dec::Oid(ty) => decode(py, *ty, b, json),
        Dec::Array(elem) => decode_array(py, b, Some(elem), json),
        Dec::Range(elem) => decode_range(py, b, elem, json),
        Dec::Composite(desc, fields) => decode_composite(py, b, Some((desc, fields)), json),
    }
}

fn truncated(what: &str) -> PyErr {
    crate::errors::Error::Interface(format!("truncated {what} from the server")).into()
}

/// money (int8 cents) as PostgreSQL prints it with lc_monetary = 'C':
/// `$1,234.56`, `-$1,234.56`. asyncpg returns money as that text.
pub(crate) fn money_text(cents: i64) -> String {
    let neg = cents < 0;
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}${grouped}.{:02}", if neg { "-" } else { "" }, abs % 100)
}

fn range_type(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyType>> {
    static T: PyOnceLock<Py<pyo3::types::PyType>> = PyOnceLock::new();
    T.import(py, "fastio._types", "Range")
}

/// Range flags (rangetypes.h).
pub(crate) mod range_flags {
    pub const EMPTY: u8 = 0x01;
    pub const LB_INC: u8 = 0x02;
    pub const UB_INC: u8 = 0x04;
    pub const LB_INF: u8 = 0x08;
    pub const UB_INF: u8 = 0x10;
    pub const LB_NULL: u8 = 0x20;
    pub const UB_NULL: u8 = 0x40;
}

/// A range as `fastio.pg.Range` (asyncpg's Range).
fn decode_range<'py>(
    py: Python<'py>,
    b: &[u8],
    elem: &Dec,
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    use range_flags::*;
    let flags = *b.first().ok_or_else(|| truncated("range"))?;
    let kw = PyDict::new(py);
    if flags & EMPTY != 0 {
        kw.set_item("empty", true)?;
        return range_type(py)?.call((), Some(&kw));
    }
    let mut pos = 1;
    let mut bound = |present: bool| -> PyResult<Bound<'py, PyAny>> {
        if !present {
            return Ok(py.None().into_bound(py));
        }
        let len = i32::from_be_bytes(take(b.get(pos..).unwrap_or(&[]))?) as usize;
        pos += 4;
        let v = b.get(pos..pos + len).ok_or_else(|| truncated("range"))?;
        pos += len;
        decode_with(py, elem, v, json)
    };
    let lower = bound(flags & (LB_INF | LB_NULL) == 0)?;
    let upper = bound(flags & (UB_INF | UB_NULL) == 0)?;
    kw.set_item("lower_inc", flags & LB_INC != 0)?;
    kw.set_item("upper_inc", flags & UB_INC != 0)?;
    range_type(py)?.call((lower, upper), Some(&kw))
}

/// A composite value: a Record with the type's attribute names, or, for an
/// anonymous `record`, a tuple (as asyncpg returns them).
fn decode_composite<'py>(
    py: Python<'py>,
    b: &[u8],
    typed: Option<(&Arc<RecordDesc>, &Arc<[Dec]>)>,
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    let n = i32::from_be_bytes(take(b)?).max(0) as usize;
    let mut pos = 4;
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let field_oid = u32::from_be_bytes(take(b.get(pos..).unwrap_or(&[]))?);
        let len = i32::from_be_bytes(take(b.get(pos + 4..).unwrap_or(&[]))?);
        pos += 8;
        if len < 0 {
            values.push(py.None());
            continue;
        }
        let v = b
            .get(pos..pos + len as usize)
            .ok_or_else(|| truncated("record"))?;
        pos += len as usize;
        let value = match typed {
            Some((_, decs)) if decs.len() == n => decode_with(py, &decs[i], v, json)?,
            _ => decode(py, field_oid, v, json)?,
        };
        values.push(value.unbind());
    }
    match typed {
        Some((desc, decs)) if decs.len() == n => Record {
            desc: Arc::clone(desc),
            values: values.into_boxed_slice(),
        }
        .into_bound_py_any(py),
        _ => Ok(PyTuple::new(py, values)?.into_any()),
    }
}

fn decode_array<'py>(
    py: Python<'py>,
    b: &[u8],
    elem: Option<&Dec>,
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    let ndim = i32::from_be_bytes(take(b)?) as usize;
    let elem_oid = u32::from_be_bytes(take(&b[8..])?);
    if ndim == 0 {
        return Ok(PyList::empty(py).into_any());
    }
    let mut dims = Vec::with_capacity(ndim);
    for i in 0..ndim {
        dims.push(i32::from_be_bytes(take(&b[12 + 8 * i..])?).max(0) as usize);
    }
    let mut pos = 12 + 8 * ndim;
    let by_oid = Dec::Oid(elem_oid);
    let elem = elem.unwrap_or(&by_oid);
    decode_dim(py, b, &mut pos, &dims, elem, json).map(Bound::into_any)
}

fn decode_dim<'py>(
    py: Python<'py>,
    b: &[u8],
    pos: &mut usize,
    dims: &[usize],
    elem: &Dec,
    json: JsonMode,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for _ in 0..dims[0] {
        if dims.len() > 1 {
            list.append(decode_dim(py, b, pos, &dims[1..], elem, json)?)?;
            continue;
        }
        let len = i32::from_be_bytes(take(&b[*pos..])?);
        *pos += 4;
        if len < 0 {
            list.append(py.None())?;
            continue;
        }
        let end = *pos + len as usize;
        let v = b.get(*pos..end).ok_or_else(|| truncated("array"))?;
        list.append(decode_with(py, elem, v, json)?)?;
        *pos = end;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips() {
        for ord in [1, 730_120, 738_945, 3_652_059] {
            let (y, m, d) = civil(ord);
            assert_eq!(
                super::super::from_python::ordinal(y as i64, m as i64, d as i64),
                ord
            );
        }
    }

    #[test]
    fn numeric_text_layout() {
        let mut b = Vec::new();
        super::super::from_python::encode_numeric("-12345.6780", &mut b).unwrap();
        assert_eq!(numeric_text(&b).unwrap(), "-12345.6780");
        b.clear();
        super::super::from_python::encode_numeric("0.000015", &mut b).unwrap();
        assert_eq!(numeric_text(&b).unwrap(), "0.000015");
        b.clear();
        super::super::from_python::encode_numeric("100000000", &mut b).unwrap();
        assert_eq!(numeric_text(&b).unwrap(), "100000000");
    }

    #[test]
    fn money_as_postgres_prints_it() {
        assert_eq!(money_text(123_456), "$1,234.56");
        assert_eq!(money_text(-5), "-$0.05");
        assert_eq!(money_text(10_000_000_000), "$100,000,000.00");
        assert_eq!(money_text(i64::MIN), "-$92,233,720,368,547,758.08");
    }
}
