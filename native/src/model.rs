//! Building pydantic models the way pydantic-core fills them, for the validator (lib.rs) and
//! the packer (pack.rs): a new instance of the class, its `__dict__`, its fields-set (a set
//! of its own, as pydantic gives: `model_copy(update=...)` adds to it), no extra, no private.

use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyString, PyType};

use crate::Map;

/// Combinations of present fields kept per model (producers send a handful).
const FIELDS_SETS_MAX: usize = 1024;

/// Makes the instances (`object.__new__` plus the slots pydantic fills).
pub struct ModelBuilder {
    object_new: PyObject,
}

impl ModelBuilder {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let object_new = py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?
            .unbind();
        Ok(Self { object_new })
    }

    /// An instance of `class` holding `values`, with a copy of `fields_set` (PySet_New of a
    /// frozenset: no hashing, one allocation).
    pub fn build<'py>(
        &self,
        py: Python<'py>,
        class: &Bound<'py, PyType>,
        values: &Bound<'py, PyDict>,
        fields_set: &Bound<'py, PyFrozenSet>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fields_set =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySet_New(fields_set.as_ptr()))? };
        let instance = self.object_new.bind(py).call1((class,))?;
        let none = py.None().into_bound(py);
        set_slot(&instance, pyo3::intern!(py, "__dict__"), values.as_any())?;
        set_slot(
            &instance,
            pyo3::intern!(py, "__pydantic_fields_set__"),
            &fields_set,
        )?;
        set_slot(&instance, pyo3::intern!(py, "__pydantic_extra__"), &none)?;
        set_slot(&instance, pyo3::intern!(py, "__pydantic_private__"), &none)?;
        Ok(instance)
    }

    /// A `ValidEvent` (worker/core/valid_event.py) made without its model, as `__init__`
    /// would fill it but for `_event`: the model is built when `ValidEvent.event` is first
    /// read, which the hot path never does.
    pub fn event_without_model<'py>(
        &self,
        py: Python<'py>,
        valid_event: &Bound<'py, PyAny>,
        class: &Bound<'py, PyType>,
        made: &crate::Made<'py>,
        digest: u64,
        packed: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ev = self.object_new.bind(py).call1((valid_event,))?;
        let none = py.None().into_bound(py);
        set_slot(&ev, pyo3::intern!(py, "values"), made.values.as_any())?;
        set_slot(&ev, pyo3::intern!(py, "model_class"), class.as_any())?;
        set_slot(
            &ev,
            pyo3::intern!(py, "fields_set"),
            made.fields_set.as_any(),
        )?;
        set_slot(
            &ev,
            pyo3::intern!(py, "digest"),
            &digest.into_pyobject(py)?.into_any(),
        )?;
        set_slot(
            &ev,
            pyo3::intern!(py, "packed"),
            packed.as_ref().unwrap_or(&none),
        )?;
        set_slot(&ev, pyo3::intern!(py, "_event"), &none)?;
        Ok(ev)
    }
}

/// One frozenset of field names per combination of present fields (a bit mask by field
/// place), made once: each event's fields-set is copied from it.
pub struct FieldsSets {
    names: Vec<Py<PyString>>,
    cache: Mutex<Map<u64, Py<PyFrozenSet>>>,
}

impl FieldsSets {
    /// `names`: the model's fields in order, at most 64.
    pub fn new(names: Vec<Py<PyString>>) -> Self {
        assert!(names.len() <= 64, "a fields-set mask has 64 bits");
        Self {
            names,
            cache: Mutex::new(Map::default()),
        }
    }

    /// The names whose bits are set in `mask`; None if a bit is past the last field.
    pub fn get<'py>(
        &self,
        py: Python<'py>,
        mask: u64,
    ) -> PyResult<Option<Bound<'py, PyFrozenSet>>> {
        if self.names.len() < 64 && mask >> self.names.len() != 0 {
            return Ok(None);
        }
        let mut cache = self.cache.lock().expect("never poisoned: no panics inside");
        if let Some(found) = cache.get(&mask) {
            return Ok(Some(found.bind(py).clone()));
        }
        let names = (0..self.names.len())
            .filter(|index| mask & (1 << index) != 0)
            .map(|index| self.names[index].bind(py));
        let set = PyFrozenSet::new(py, names)?;
        if cache.len() < FIELDS_SETS_MAX {
            cache.insert(mask, set.clone().unbind());
        }
        Ok(Some(set))
    }
}

/// object.__setattr__: the models are frozen, and this is how pydantic itself fills them.
pub fn set_slot(
    instance: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let status =
        unsafe { ffi::PyObject_GenericSetAttr(instance.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if status == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(instance.py()))
    }
}

/// An attribute from the instance itself (its slots and `__dict__`), None if unset.
pub fn get_slot<'py>(
    instance: &Bound<'py, PyAny>,
    name: &Bound<'_, PyString>,
) -> Option<Bound<'py, PyAny>> {
    let py = instance.py();
    let found = unsafe { ffi::PyObject_GenericGetAttr(instance.as_ptr(), name.as_ptr()) };
    // Unset: an AttributeError, dropped.
    unsafe { Bound::from_owned_ptr_or_err(py, found) }.ok()
}
