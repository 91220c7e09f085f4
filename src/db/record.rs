//! `Record`: one result row, both a sequence and a mapping (asyncpg's Record).

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PySlice, PyString, PyTuple};
use pyo3::{IntoPyObjectExt, PyTraverseError, PyVisit};

/// Column names of one result, shared by all its rows.
pub(crate) struct RecordDesc {
    pub(crate) names: Py<PyTuple>,
    /// name -> column index (the first column of that name wins).
    pub(crate) index: Py<PyDict>,
}

impl RecordDesc {
    pub(crate) fn new(py: Python<'_>, names: &[&str]) -> PyResult<Arc<Self>> {
        let tuple = PyTuple::new(py, names.iter().map(|n| PyString::intern(py, n)))?;
        let index = PyDict::new(py);
        for (i, n) in tuple.iter().enumerate().rev() {
            index.set_item(n, i)?;
        }
        Ok(Arc::new(RecordDesc {
            names: tuple.unbind(),
            index: index.unbind(),
        }))
    }
}

/// A result row: `r[0]`, `r["name"]`, `r.get()`, `keys()/values()/items()`,
/// iteration over values, `dict(r)`, `tuple(r)`, equal to the tuple of its values.
#[pyclass(frozen, sequence, subclass, module = "fastio._fastio")]
pub struct Record {
    pub(crate) desc: Arc<RecordDesc>,
    pub(crate) values: Box<[Py<PyAny>]>,
}

impl Record {
    /// A new Record as a Python object, left out of the cyclic GC when none
    /// of its values is tracked there (CPython does the same for such
    /// tuples): a frozen Record of plain values cannot be part of a cycle,
    /// and 100,000 fresh tracked Records made the collector run over and
    /// over during one fetch.
    pub(crate) fn new_py(
        py: Python<'_>,
        desc: Arc<RecordDesc>,
        values: Box<[Py<PyAny>]>,
    ) -> PyResult<Py<PyAny>> {
        // SAFETY: the pointers are live objects owned by `values`.
        let plain = values
            .iter()
            .all(|v| unsafe { pyo3::ffi::PyObject_GC_IsTracked(v.as_ptr()) } == 0);
        let obj = Py::new(py, Record { desc, values })?;
        if plain {
            // SAFETY: a live GC object of ours; untracking is always allowed
            // (its dealloc untracks again, which is a no-op).
            unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
        }
        Ok(obj.into_any())
    }

    fn position(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
        let py = key.py();
        match self.desc.index.bind(py).get_item(key)? {
            Some(i) => Ok(Some(i.extract()?)),
            None => Ok(None),
        }
    }

    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.values.iter().map(|v| v.bind(py)))
    }
}

#[pymethods]
impl Record {
    /// Only a copy of another Record: how rows of a `record_class` (a
    /// subclass) are made. Rows come from queries, never from user code.
    #[new]
    fn __new__(py: Python<'_>, record: PyRef<'_, Record>) -> Self {
        Record {
            desc: Arc::clone(&record.desc),
            values: record.values.iter().map(|v| v.clone_ref(py)).collect(),
        }
    }

    fn __len__(&self) -> usize {
        self.values.len()
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(i) = key.extract::<isize>() {
            let n = self.values.len() as isize;
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                return Err(PyIndexError::new_err("record index out of range"));
            }
            return Ok(self.values[j as usize].clone_ref(py));
        }
        if key.is_instance_of::<PyString>() {
            return match self.position(key)? {
                Some(i) => Ok(self.values[i].clone_ref(py)),
                None => Err(PyKeyError::new_err(key.clone().unbind())),
            };
        }
        if let Ok(slice) = key.cast::<PySlice>() {
            return self.as_tuple(py)?.as_any().get_item(slice)?.into_py_any(py);
        }
        Err(PyTypeError::new_err(format!(
            "record indices must be integers, slices or str, not {}",
            key.get_type().name()?
        )))
    }

    /// The value of column `key` (a name), or `default` when there is none.
    #[pyo3(signature = (key, default = None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match self.position(key)? {
            Some(i) => Ok(self.values[i].clone_ref(py)),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// An iterator over the column names.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.desc.names.bind(py).try_iter().map(Bound::into_any)
    }

    /// An iterator over the values.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_tuple(py)?.try_iter().map(Bound::into_any)
    }

    /// An iterator over `(name, value)` pairs.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let names = self.desc.names.bind(py);
        let pairs = names
            .iter()
            .zip(self.values.iter())
            .map(|(n, v)| PyTuple::new(py, [n, v.bind(py).clone()]))
            .collect::<PyResult<Vec<_>>>()?;
        pyo3::types::PyList::new(py, pairs)?
            .try_iter()
            .map(Bound::into_any)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.values(py)
    }

    /// `name in record` tests the column names, as asyncpg's Record does.
    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.position(key)?.is_some())
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let mine = self.as_tuple(py)?;
        if let Ok(rec) = other.cast::<Record>() {
            return mine.eq(rec.get().as_tuple(py)?)?.into_py_any(py);
        }
        if other.is_instance_of::<PyTuple>() {
            return mine.eq(other)?.into_py_any(py);
        }
        Ok(py.NotImplemented())
    }

    fn __ne__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let eq = self.__eq__(py, other)?;
        if eq.bind(py).is(py.NotImplemented()) {
            return Ok(eq);
        }
        (!eq.bind(py).is_truthy()?).into_py_any(py)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.as_tuple(py)?.hash()
    }

    /// `<Record a=1 b='x'>`, with a subclass's own name (as asyncpg).
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let this = slf.get();
        let mut out = format!("<{}", slf.get_type().name()?);
        for (n, v) in this.desc.names.bind(py).iter().zip(this.values.iter()) {
            out.push(' ');
            out.push_str(n.cast::<PyString>()?.to_str()?);
            out.push('=');
            out.push_str(v.bind(py).repr()?.to_str()?);
        }
        out.push('>');
        Ok(out)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for v in self.values.iter() {
            visit.call(v)?;
        }
        Ok(())
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Record>()
}
