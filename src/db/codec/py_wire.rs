//! Python values straight into the binary format of a type the server named,
//! for the batch paths (`executemany`, `copy_records_to_table`), which read
//! many values of a few types once the statement's types are known.
//!
//! The common exact Python types (int, float, str, bool, bytes, date,
//! datetime, time, timedelta, UUID, Decimal, lists of those) are written
//! without an intermediate [`Param`]. Everything else, and every value the
//! fast path does not accept as is (out of range, wrong type, subclasses),
//! goes through [`Param::from_py`] and [`encode_wire`], so the bytes sent and
//! the errors raised are those of the single-query path.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDate, PyDateAccess, PyDateTime, PyDelta, PyFloat, PyInt, PyList, PyString,
    PyTime, PyTimeAccess, PyTuple,
};

use super::from_python::{
    datetime_micros, decimal_type, delta_micros, encode_numeric, encode_wire, mark_array_has_null,
    ordinal, parse_uuid, put_array_header, time_micros, uuid_type, Param, Wire,
};
use super::oid;
use super::{PG_EPOCH_ORDINAL, USECS_PER_DAY};

/// Why a value could not be encoded.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Python raised while the value was read.
    Py(PyErr),
    /// The value does not fit its type: its repr and the reason, for the
    /// `DataError` message.
    Value { repr: String, why: String },
}

/// Appends `obj` as one binary value of `wire` with its length prefix
/// (length -1 for None), as a Bind parameter or a COPY field.
pub(crate) fn put_value(
    obj: &Bound<'_, PyAny>,
    wire: &Wire,
    buf: &mut Vec<u8>,
) -> Result<(), Failure> {
    if obj.is_none() {
        buf.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    // A value the fast path turns down (or fails on) is encoded again the
    // general way, which also words the error.
    if !matches!(fast(obj, wire, buf), Ok(true)) {
        buf.truncate(at + 4);
        let p = Param::from_py(obj).map_err(Failure::Py)?;
        encode_wire(&p, wire, buf).map_err(|why| Failure::Value {
            repr: p.repr(),
            why,
        })?;
    }
    let len = i32::try_from(buf.len() - at - 4).map_err(|_| Failure::Value {
        repr: obj
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string()),
        why: "value larger than 2 GiB".into(),
    })?;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Writes `obj` (not None) as `wire` if it is one of the exact types handled
/// here and fits; `Ok(false)` (or an error) leaves it to the general path.
fn fast(obj: &Bound<'_, PyAny>, wire: &Wire, buf: &mut Vec<u8>) -> PyResult<bool> {
    use oid::*;
    let ty = match *wire {
        Wire::As(ty) => ty,
        Wire::ArrayOf { header, elem } => return fast_array(obj, header, elem, buf),
        // Composites take the general path (tuples checked field by field).
        Wire::Composite(_) => return Ok(false),
    };
    match ty {
        INT2 | INT4 | INT8 => {
            let Some(v) = exact_i64(obj) else {
                return Ok(false);
            };
            match ty {
                INT2 => match i16::try_from(v) {
                    Ok(v) => buf.extend_from_slice(&v.to_be_bytes()),
                    Err(_) => return Ok(false),
                },
                INT4 => match i32::try_from(v) {
                    Ok(v) => buf.extend_from_slice(&v.to_be_bytes()),
                    Err(_) => return Ok(false),
                },
                _ => buf.extend_from_slice(&v.to_be_bytes()),
            }
        }
        FLOAT4 | FLOAT8 => {
            // As the general path: an int goes to f32 directly, not via f64.
            if let Ok(f) = obj.cast_exact::<PyFloat>() {
                match ty {
                    FLOAT4 => buf.extend_from_slice(&(f.value() as f32).to_be_bytes()),
                    _ => buf.extend_from_slice(&f.value().to_be_bytes()),
                }
            } else if let Some(i) = exact_i64(obj) {
                match ty {
                    FLOAT4 => buf.extend_from_slice(&(i as f32).to_be_bytes()),
                    _ => buf.extend_from_slice(&(i as f64).to_be_bytes()),
                }
            } else {
                return Ok(false);
            }
        }
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | XML | CHAR | JSON | JSONB => {
            let Ok(s) = obj.cast::<PyString>() else {
                return Ok(false);
            };
            if ty == JSONB {
                buf.push(1);
            }
            buf.extend_from_slice(s.to_str()?.as_bytes())
        }
        BOOL => match obj.cast::<PyBool>() {
            Ok(b) => buf.push(b.is_true() as u8),
            Err(_) => return Ok(false),
        },
        BYTEA => match obj.cast_exact::<PyBytes>() {
            Ok(b) => buf.extend_from_slice(b.as_bytes()),
            Err(_) => return Ok(false),
        },
        NUMERIC => {
            if let Some(i) = exact_i64(obj) {
                if encode_numeric(&i.to_string(), buf).is_err() {
                    return Ok(false);
                }
            } else if obj.get_type().is(decimal_type(obj.py())?) {
                let s = obj.str()?;
                if encode_numeric(s.to_str()?, buf).is_err() {
                    return Ok(false);
                }
            } else {
                return Ok(false);
            }
        }
        DATE => match obj.cast_exact::<PyDate>() {
            Ok(d) => buf.extend_from_slice(&(date_days(d) as i32).to_be_bytes()),
            Err(_) => return Ok(false),
        },
        TIMESTAMP | TIMESTAMPTZ => {
            let micros = if let Ok(dt) = obj.cast_exact::<PyDateTime>() {
                datetime_micros(dt)?
            } else if let Ok(d) = obj.cast_exact::<PyDate>() {
                (date_days(d) as i32) as i64 * USECS_PER_DAY
            } else {
                return Ok(false);
            };
            buf.extend_from_slice(&micros.to_be_bytes())
        }
        TIME => match obj.cast_exact::<PyTime>() {
            Ok(t) => buf.extend_from_slice(
                &time_micros(
                    t.get_hour(),
                    t.get_minute(),
                    t.get_second(),
                    t.get_microsecond(),
                )
                .to_be_bytes(),
            ),
            Err(_) => return Ok(false),
        },
        INTERVAL => {
            let Ok(d) = obj.cast_exact::<PyDelta>() else {
                return Ok(false);
            };
            let (days, micros) = delta_micros(d);
            let Ok(days) = i32::try_from(days) else {
                return Ok(false);
            };
            buf.extend_from_slice(&micros.to_be_bytes());
            buf.extend_from_slice(&days.to_be_bytes());
            buf.extend_from_slice(&0i32.to_be_bytes());
        }
        UUID => {
            if obj.get_type().is(uuid_type(obj.py())?) {
                let v: u128 = obj.getattr(pyo3::intern!(obj.py(), "int"))?.extract()?;
                buf.extend_from_slice(&v.to_be_bytes())
            } else if let Ok(s) = obj.cast_exact::<PyString>() {
                match parse_uuid(s.to_str()?) {
                    Ok(u) => buf.extend_from_slice(&u),
                    Err(_) => return Ok(false),
                }
            } else {
                return Ok(false);
            }
        }
        t => match oid::array_element(t) {
            Some(elem) => return fast_array(obj, elem, elem, buf),
            None => return Ok(false),
        },
    }
    Ok(true)
}

/// The value of an exact `int` that fits in i64 (not a bool, not a subclass).
fn exact_i64(obj: &Bound<'_, PyAny>) -> Option<i64> {
    obj.cast_exact::<PyInt>().ok()?.extract::<i64>().ok()
}

fn date_days(d: &Bound<'_, PyDate>) -> i64 {
    ordinal(
        d.get_year() as i64,
        d.get_month() as i64,
        d.get_day() as i64,
    ) - PG_EPOCH_ORDINAL
}

/// A list or tuple's items (the general path's `Param::List`).
enum Seq<'a, 'py> {
    List(&'a Bound<'py, PyList>),
    Tuple(&'a Bound<'py, PyTuple>),
}

impl<'py> Seq<'_, 'py> {
    fn len(&self) -> usize {
        match self {
            Seq::List(l) => l.len(),
            Seq::Tuple(t) => t.len(),
        }
    }

    fn get(&self, i: usize) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Seq::List(l) => l.get_item(i),
            Seq::Tuple(t) => t.get_item(i),
        }
    }
}

fn as_seq<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> Option<Seq<'a, 'py>> {
    if let Ok(l) = obj.cast::<PyList>() {
        Some(Seq::List(l))
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        Some(Seq::Tuple(t))
    } else {
        None
    }
}

/// An array of `elem` values from nested lists/tuples, laid out as the
/// general path does (dimensions from the first item at each level).
fn fast_array(obj: &Bound<'_, PyAny>, header: u32, elem: u32, buf: &mut Vec<u8>) -> PyResult<bool> {
    let Some(top) = as_seq(obj) else {
        return Ok(false);
    };
    let mut dims: Vec<i32> = Vec::new();
    let mut level = obj.clone();
    while let Some(seq) = as_seq(&level) {
        let n = seq.len();
        dims.push(n as i32);
        if n == 0 {
            break;
        }
        let first = seq.get(0)?;
        if as_seq(&first).is_none() {
            break;
        }
        level = first;
    }
    if top.len() == 0 {
        dims.clear();
    }
    let start = put_array_header(&dims, header, buf);
    if dims.is_empty() {
        return Ok(true);
    }
    let mut has_null = false;
    if !fast_elements(&top, &dims, elem, buf, &mut has_null)? {
        return Ok(false);
    }
    if has_null {
        mark_array_has_null(start, buf);
    }
    Ok(true)
}

fn fast_elements(
    items: &Seq<'_, '_>,
    dims: &[i32],
    elem: u32,
    buf: &mut Vec<u8>,
    has_null: &mut bool,
) -> PyResult<bool> {
    if items.len() as i32 != dims[0] {
        return Ok(false);
    }
    for i in 0..items.len() {
        let item = items.get(i)?;
        if dims.len() > 1 {
            match as_seq(&item) {
                Some(inner) => {
                    if !fast_elements(&inner, &dims[1..], elem, buf, has_null)? {
                        return Ok(false);
                    }
                }
                None => return Ok(false),
            }
            continue;
        }
        if item.is_none() {
            *has_null = true;
            buf.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let at = buf.len();
        buf.extend_from_slice(&0i32.to_be_bytes());
        if !fast(&item, &Wire::As(elem), buf)? {
            return Ok(false);
        }
        let len = (buf.len() - at - 4) as i32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(true)
}

/// Why a row could not be encoded.
#[derive(Debug)]
pub(crate) enum RowFailure {
    /// Python raised while the row was read.
    Py(PyErr),
    /// The row has this many values, not one per type.
    Len(usize),
    /// The value at this index does not fit its type.
    Value {
        index: usize,
        repr: String,
        why: String,
    },
}

/// Appends each value of `row` (a sequence of values, as `executemany` and
/// `copy_records_to_table` take) with [`put_value`], one per `wires` entry;
/// the count is checked before anything is written.
pub(crate) fn put_row(
    row: &Bound<'_, PyAny>,
    wires: &[Wire],
    buf: &mut Vec<u8>,
) -> Result<(), RowFailure> {
    let put = |i: usize, v: &Bound<'_, PyAny>, buf: &mut Vec<u8>| {
        put_value(v, &wires[i], buf).map_err(|f| match f {
            Failure::Py(e) => RowFailure::Py(e),
            Failure::Value { repr, why } => RowFailure::Value {
                index: i,
                repr,
                why,
            },
        })
    };
    if let Ok(t) = row.cast::<PyTuple>() {
        if t.len() != wires.len() {
            return Err(RowFailure::Len(t.len()));
        }
        for (i, v) in t.iter().enumerate() {
            put(i, &v, buf)?;
        }
        return Ok(());
    }
    if let Ok(l) = row.cast::<PyList>() {
        if l.len() != wires.len() {
            return Err(RowFailure::Len(l.len()));
        }
        // A value's own Python code (a tzinfo) could resize the list.
        let mut n = 0;
        for (i, v) in l.iter().enumerate().take(wires.len()) {
            put(i, &v, buf)?;
            n += 1;
        }
        if n != wires.len() {
            return Err(RowFailure::Len(n));
        }
        return Ok(());
    }
    if row.is_instance_of::<PyString>() {
        return Err(RowFailure::Py(pyo3::exceptions::PyTypeError::new_err(
            "executemany(): args must be an iterable of argument sequences",
        )));
    }
    let values = row
        .try_iter()
        .and_then(|it| it.collect::<PyResult<Vec<_>>>())
        .map_err(RowFailure::Py)?;
    if values.len() != wires.len() {
        return Err(RowFailure::Len(values.len()));
    }
    for (i, v) in values.iter().enumerate() {
        put(i, v, buf)?;
    }
    Ok(())
}

/// The rows of an `executemany` or `copy_records_to_table` call, read on
/// tokio (attached to Python) once the server has named the types.
pub(crate) enum PyRows {
    List(Py<PyList>),
    Tuple(Py<PyTuple>),
}

impl PyRows {
    /// Takes the rows of `args` (any iterable of sequences). A list or tuple
    /// is read in place when the call runs, as asyncpg reads it; any other
    /// iterable (a generator) runs now, on the event-loop thread.
    pub(crate) fn of(args: &Bound<'_, PyAny>) -> PyResult<PyRows> {
        if let Ok(l) = args.cast_exact::<PyList>() {
            return Ok(PyRows::List(l.clone().unbind()));
        }
        if let Ok(t) = args.cast_exact::<PyTuple>() {
            return Ok(PyRows::Tuple(t.clone().unbind()));
        }
        let items = args.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        Ok(PyRows::List(PyList::new(args.py(), items)?.unbind()))
    }

    /// How many rows there are now.
    pub(crate) fn len(&self, py: Python<'_>) -> usize {
        match self {
            PyRows::List(l) => l.bind(py).len(),
            PyRows::Tuple(t) => t.bind(py).len(),
        }
    }

    /// Row `i` (by index: a list may change between two reads).
    pub(crate) fn get<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        match self {
            PyRows::List(l) => l.bind(py).get_item(i),
            PyRows::Tuple(t) => t.bind(py).get_item(i),
        }
    }
}
