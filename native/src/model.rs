//! Building pydantic models the way pydantic-core fills them, for the validator (lib.rs) and
//! the packer (pack.rs): a new instance of the class, its `__dict__`, its fields-set (a set
//! of its own, as pydantic gives: `model_copy(update=...)` adds to it), no extra, no private.

use std::sync::{Mutex, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyString, PyType};

use crate::Map;

/// Combinations of present fields kept per model (producers send a handful).
const FIELDS_SETS_MAX: usize = 1024;

/// ValidEvent's slots, in the order `event_without_model` fills them.
const VALID_EVENT_SLOTS: [&str; 6] = [
    "values",
    "model_class",
    "fields_set",
    "digest",
    "packed",
    "_event",
];

/// Where each of ValidEvent's slots sits in its instances, read once from the class.
type SlotOffsets = [ffi::Py_ssize_t; VALID_EVENT_SLOTS.len()];

/// CPython's member descriptor (descrobject.h): pyo3-ffi 0.23 types its `d_member` as a
/// getset definition, so the layout is spelled out here.
#[repr(C)]
struct MemberDescr {
    common: ffi::PyDescrObject,
    member: *mut ffi::PyMemberDef,
}

/// Makes the instances (`object.__new__` plus the slots pydantic fills).
pub struct ModelBuilder {
    object_new: PyObject,
    /// ValidEvent's class (as a pointer) and its slots' offsets, or None where the class is
    /// not the plain six-slot class this expects (then events are made the slower way).
    valid_event_slots: OnceLock<Option<(usize, SlotOffsets)>>,
}

impl ModelBuilder {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let object_new = py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?
            .unbind();
        Ok(Self {
            object_new,
            valid_event_slots: OnceLock::new(),
        })
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
        let digest = digest.into_pyobject(py)?.into_any();
        let none = py.None().into_bound(py);
        let slots = [
            made.values.as_any(),
            class.as_any(),
            made.fields_set.as_any(),
            &digest,
            packed.as_ref().unwrap_or(&none),
            &none,
        ];
        let known = self.valid_event_slots.get_or_init(|| {
            slot_offsets(valid_event).map(|at| (valid_event.as_ptr() as usize, at))
        });
        if let Some((_, offsets)) =
            known.filter(|(class, _)| *class == valid_event.as_ptr() as usize)
        {
            // THE DIRECT FILL: a fresh instance from the type's own allocator, its six slots
            // written in place (measured: object.__new__ through a call and six generic
            // setattrs were 3% of the event loop's thread).
            let type_ptr = valid_event.as_ptr().cast::<ffi::PyTypeObject>();
            // SAFETY: `slot_offsets` checked that the class is a plain object subclass whose
            // instances are exactly these six object slots, so tp_alloc gives zeroed storage
            // for them (and tracks it for the GC, which skips NULL slots until they are set).
            unsafe {
                let alloc = (*type_ptr).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
                let ev = Bound::from_owned_ptr_or_err(py, alloc(type_ptr, 0))?;
                for (offset, value) in offsets.iter().zip(slots) {
                    let slot = ev
                        .as_ptr()
                        .cast::<u8>()
                        .offset(*offset)
                        .cast::<*mut ffi::PyObject>();
                    *slot = value.clone().into_ptr();
                }
                return Ok(ev);
            }
        }
        let ev = self.object_new.bind(py).call1((valid_event,))?;
        for (name, value) in VALID_EVENT_SLOTS.iter().zip(slots) {
            set_slot(&ev, &PyString::intern(py, name), value)?;
        }
        Ok(ev)
    }
}

/// The offsets of ValidEvent's slots in its instances, or None unless the class is what the
/// direct fill needs: an object subclass without a `__dict__`, weak references or a `__new__`
/// of its own, whose instances are exactly the six object slots.
fn slot_offsets(class: &Bound<'_, PyAny>) -> Option<SlotOffsets> {
    let py = class.py();
    let type_ptr = class.as_ptr().cast::<ffi::PyTypeObject>();
    // SAFETY: only read, and only after checking that `class` is a type.
    unsafe {
        if ffi::PyType_Check(class.as_ptr()) == 0
            || (*type_ptr).tp_dictoffset != 0
            || (*type_ptr).tp_weaklistoffset != 0
            || (*type_ptr).tp_base != std::ptr::addr_of_mut!(ffi::PyBaseObject_Type)
            || (*type_ptr).tp_itemsize != 0
        {
            return None;
        }
        let expected = std::mem::size_of::<ffi::PyObject>()
            + VALID_EVENT_SLOTS.len() * std::mem::size_of::<*mut ffi::PyObject>();
        if usize::try_from((*type_ptr).tp_basicsize).ok()? != expected {
            return None;
        }
    }
    let own = class.getattr(pyo3::intern!(py, "__dict__")).ok()?;
    if own.contains(pyo3::intern!(py, "__new__")).ok()? {
        return None;
    }
    let mut offsets: SlotOffsets = [0; VALID_EVENT_SLOTS.len()];
    for (at, name) in VALID_EVENT_SLOTS.iter().enumerate() {
        let descr = own.get_item(name).ok()?;
        // SAFETY: the descriptor is checked to be a member descriptor before its layout is
        // read; `own` keeps it alive.
        unsafe {
            if ffi::Py_TYPE(descr.as_ptr()) != std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
                return None;
            }
            let member = (*descr.as_ptr().cast::<MemberDescr>()).member;
            if member.is_null() || (*member).type_code != ffi::Py_T_OBJECT_EX {
                return None;
            }
            offsets[at] = (*member).offset;
        }
    }
    Some(offsets)
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
