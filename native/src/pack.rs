//! The call cache's packed events in Rust (see worker/core/event_pack.py): `EventPacker.pack`
//! writes one call's events as one bytes object, `unpack` builds the same objects back.
//!
//! Exact by construction: `pack` writes only what it can give back identically (exact types,
//! UTC datetimes with fold 0, digests in 0..2**64, fields-sets of field names, `__dict__`s
//! holding the model's fields in order) and answers None for anything else, so the whole call
//! then takes the Python (marshal) format. The bytes never leave the process: a model is its
//! place in this packer's table.
//!
//! Layout: `TAG`, the number of events, then per event (varints are LEB128, signed ones
//! zigzag): the model's place, the digest (8 bytes, little-endian), the fields-set and the
//! None fields as bit masks, then each other value by its field's kind. project_id and
//! call_id are not written: they come from the call's key.
//!
//! Each event's bytes stand alone (its times are deltas within the event), so a call is its
//! events' bytes joined. The validator (lib.rs) writes them as it decodes (`EventBytes`) and
//! `unpack` keeps each event's slice: both hand them on as `ValidEvent.packed`, and `pack`
//! copies them instead of reading the model again.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString, PyTuple, PyType};

use crate::model::{get_slot, FieldsSets, ModelBuilder};
use crate::{
    canonical_uuid, exact_str, utc_datetime, utc_micros, Map, KIND_BOOL, KIND_E164, KIND_INT,
    KIND_LITERAL, KIND_MONEY, KIND_OBJECT, KIND_OPTIONAL_TIME, KIND_TEXT, KIND_TIME, KIND_UUID,
};

/// The first byte of a natively packed call. marshal's output starts with a type code, an
/// ASCII character from '(' up, possibly with its 0x80 flag: never this byte.
pub const TAG: u8 = 0x01;

/// marshal's current format (`marshal.version`), for `call_data`.
const MARSHAL_VERSION: i32 = 4;

/// How a value is written.
#[derive(Clone, Copy, PartialEq)]
enum Coding {
    /// project_id, call_id: not written, taken from the call's key.
    Key,
    /// A str: its UTF-8 bytes, or a canonical UUID's 16 bytes (37 bytes less as text).
    Text,
    /// A UTC datetime: microseconds since the event's previous time (its first time: since
    /// the epoch).
    Time,
    /// A Decimal: its exact text.
    Money,
    /// An int that fits in 64 bits.
    Int,
    Bool,
    /// One of the field's Literal strs: its place, and the shared object when unpacked.
    Literal,
    /// A dict of JSON values (call_data): marshal's bytes.
    Object,
}

struct PackField {
    name: Py<PyString>,
    coding: Coding,
    literals: Vec<Py<PyString>>,
}

struct PackModel {
    class: Py<PyType>,
    fields: Vec<PackField>,
    /// Field name -> its place, to read fields-sets.
    places: Py<PyDict>,
    /// Every field name with None, in order: an event's values start as its copy (as the
    /// validator's, lib.rs).
    template: Py<PyDict>,
    event_id_at: usize,
    source_at: Option<usize>,
    fields_sets: FieldsSets,
}

type PackFieldSpec<'py> = (Bound<'py, PyString>, u8, Bound<'py, PyTuple>);
/// (class, fields, project_id's place, call_id's place, source's place or -1)
type PackModelSpec<'py> = (
    Bound<'py, PyType>,
    Vec<PackFieldSpec<'py>>,
    usize,
    usize,
    isize,
);

/// Packs and unpacks the events of one call (see the module comment).
#[pyclass(frozen, module = "ringlog_native")]
pub struct EventPacker {
    models: Vec<PackModel>,
    /// Model class (its address: `models` keeps it alive) -> its place in `models`.
    places: Map<usize, usize>,
    valid_event: Py<PyType>,
    decimal: Py<PyType>,
    utc: PyObject,
    /// The Python format's pool of sources (`event_pack._SOURCES`), shared likewise.
    sources: Py<PyDict>,
    pool_max: usize,
    builder: ModelBuilder,
}

#[pymethods]
impl EventPacker {
    /// `models`: (class, fields, project_id's place, call_id's place, source's place or -1),
    /// each field (name, kind, args) with the kinds of `KINDS` (args: a literal's strs).
    /// `valid_event`: the class of the packed pairs (event, digest). `sources`, `pool_max`:
    /// the pool unpacked sources are shared from, and its bound.
    #[new]
    fn new(
        py: Python<'_>,
        models: Vec<PackModelSpec<'_>>,
        valid_event: Bound<'_, PyType>,
        decimal: Bound<'_, PyType>,
        utc: PyObject,
        sources: Bound<'_, PyDict>,
        pool_max: usize,
    ) -> PyResult<Self> {
        if models.len() > u8::MAX as usize {
            return Err(PyValueError::new_err("more than 255 models"));
        }
        let mut out = Vec::with_capacity(models.len());
        let mut places = Map::default();
        for (class, specs, project_at, call_at, source_at) in models {
            let name = class.name()?;
            if specs.len() > 64 {
                return Err(PyValueError::new_err(format!(
                    "{name}: more than 64 fields (fields-sets are 64-bit masks)"
                )));
            }
            let names = PyDict::new(py);
            let template = PyDict::new(py);
            let mut fields = Vec::with_capacity(specs.len());
            let mut event_id_at = None;
            for (index, (field, kind, args)) in specs.into_iter().enumerate() {
                let mut literals = Vec::new();
                let coding = match kind {
                    _ if index == project_at || index == call_at => Coding::Key,
                    KIND_TEXT | KIND_UUID | KIND_E164 => Coding::Text,
                    KIND_TIME | KIND_OPTIONAL_TIME => Coding::Time,
                    KIND_MONEY => Coding::Money,
                    KIND_INT => Coding::Int,
                    KIND_BOOL => Coding::Bool,
                    KIND_LITERAL => {
                        for value in args.iter() {
                            literals.push(value.downcast_into_exact::<PyString>()?.unbind());
                        }
                        if literals.len() > u8::MAX as usize {
                            return Err(PyValueError::new_err(format!(
                                "{name}.{field}: more than 255 literals"
                            )));
                        }
                        Coding::Literal
                    }
                    KIND_OBJECT => Coding::Object,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "{name}.{field}: unknown kind {other}"
                        )))
                    }
                };
                if field.to_str()? == "event_id" {
                    event_id_at = Some(index);
                }
                names.set_item(&field, index)?;
                template.set_item(&field, py.None())?;
                fields.push(PackField {
                    name: field.unbind(),
                    coding,
                    literals,
                });
            }
            let event_id_at = event_id_at
                .filter(|&at| fields[at].coding == Coding::Text)
                .ok_or_else(|| PyValueError::new_err(format!("{name}: no text event_id")))?;
            if fields.get(project_at).is_none() || fields.get(call_at).is_none() {
                return Err(PyValueError::new_err(format!("{name}: no key fields")));
            }
            let source_at = usize::try_from(source_at)
                .ok()
                .filter(|&at| fields.get(at).is_some_and(|f| f.coding == Coding::Text));
            places.insert(class.as_ptr() as usize, out.len());
            let fields_sets = FieldsSets::new(
                fields
                    .iter()
                    .map(|field| field.name.clone_ref(py))
                    .collect(),
            );
            out.push(PackModel {
                class: class.unbind(),
                fields,
                places: names.unbind(),
                template: template.unbind(),
                event_id_at,
                source_at,
                fields_sets,
            });
        }
        Ok(Self {
            models: out,
            places,
            valid_event: valid_event.unbind(),
            decimal: decimal.unbind(),
            utc,
            sources: sources.unbind(),
            pool_max,
            builder: ModelBuilder::new(py)?,
        })
    }

    /// The events (a dict of `valid_event`s) as bytes, or None if one of them cannot be
    /// packed exactly (then the caller packs the call its own way).
    fn pack(&self, py: Python<'_>, events: &Bound<'_, PyDict>) -> PyResult<Option<Py<PyBytes>>> {
        let mut out = Vec::with_capacity(16 + 160 * events.len());
        out.push(TAG);
        put_varint(&mut out, events.len() as u64);
        for (_, ev) in events.iter() {
            if let Some(bytes) = self.packed_bytes(py, &ev)? {
                out.extend_from_slice(bytes.as_bytes());
            } else if !self.pack_event(py, &ev, &mut out)? {
                return Ok(None);
            }
        }
        Ok(Some(PyBytes::new(py, &out).unbind()))
    }

    /// The events `pack` was given, by event_id; `key` (project_id, call_id) is their call.
    fn unpack<'py>(
        &self,
        py: Python<'py>,
        packed: &[u8],
        key: (Bound<'py, PyAny>, Bound<'py, PyAny>),
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut reader = Reader {
            data: packed,
            at: 0,
        };
        if reader.byte()? != TAG {
            return Err(corrupt());
        }
        let count = reader.varint()?;
        let out = PyDict::new(py);
        for _ in 0..count {
            let (event_id, ev) = self.unpack_event(py, &mut reader, &key)?;
            out.set_item(event_id, ev)?;
        }
        if reader.at != packed.len() {
            return Err(corrupt());
        }
        Ok(out)
    }
}

impl EventPacker {
    /// `ev.packed` when it holds this packer's bytes of `ev` (its model's place and its
    /// digest: a `ValidEvent` made with another model or digest is packed from its model).
    fn packed_bytes<'py>(
        &self,
        py: Python<'py>,
        ev: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if !ev.get_type().is(self.valid_event.bind(py)) {
            return Ok(None);
        }
        let Ok(bytes) = ev
            .getattr(pyo3::intern!(py, "packed"))?
            .downcast_into_exact::<PyBytes>()
        else {
            return Ok(None);
        };
        let data = bytes.as_bytes();
        let (Some(&place), Some(digest)) = (data.first(), data.get(1..9)) else {
            return Ok(None);
        };
        let class = ev.getattr(pyo3::intern!(py, "model_class"))?;
        let same_model = self
            .models
            .get(usize::from(place))
            .is_some_and(|model| class.is(model.class.bind(py)));
        let digest = u64::from_le_bytes(digest.try_into().expect("8 bytes"));
        let same_digest = exact_u64(&ev.getattr(pyo3::intern!(py, "digest"))?) == Some(digest);
        Ok((same_model && same_digest).then_some(bytes))
    }

    /// Writes `ev` to `out`; false (and `out` untouched) if it cannot be exact.
    fn pack_event(
        &self,
        py: Python<'_>,
        ev: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
    ) -> PyResult<bool> {
        if !ev.get_type().is(self.valid_event.bind(py)) {
            return Ok(false);
        }
        let event = ev.getattr(pyo3::intern!(py, "event"))?;
        let digest = ev.getattr(pyo3::intern!(py, "digest"))?;
        let Some(&place) = self.places.get(&(event.get_type().as_ptr() as usize)) else {
            return Ok(false);
        };
        let model = &self.models[place];
        let Some(digest) = exact_u64(&digest) else {
            return Ok(false);
        };
        let (Some(values), Some(fields_set)) = (
            get_slot(&event, pyo3::intern!(py, "__dict__")),
            get_slot(&event, pyo3::intern!(py, "__pydantic_fields_set__")),
        ) else {
            return Ok(false);
        };
        for empty in [
            pyo3::intern!(py, "__pydantic_extra__"),
            pyo3::intern!(py, "__pydantic_private__"),
        ] {
            if !get_slot(&event, empty).is_some_and(|value| value.is_none()) {
                return Ok(false);
            }
        }
        let Ok(values) = values.downcast_exact::<PyDict>() else {
            return Ok(false);
        };
        if values.len() != model.fields.len() {
            return Ok(false);
        }
        let Some(fields_mask) = model.fields_mask(py, &fields_set)? else {
            return Ok(false);
        };
        // The values, checked to be the model's fields in order, written as the validator
        // writes a decoded event's (`EventBytes`).
        let mut bytes = EventBytes::new(place);
        for (index, (name, value)) in values.iter().enumerate() {
            let expected = model.fields[index].name.bind(py);
            let same = name.is(expected)
                || (name.is_exact_instance_of::<PyString>() && name.eq(expected)?);
            if !same {
                return Ok(false);
            }
            self.write_value(py, &mut bytes, index, &value)?;
        }
        if bytes.refused {
            return Ok(false);
        }
        put_header(out, place, digest, fields_mask, bytes.none_mask);
        out.extend_from_slice(&bytes.values);
        Ok(true)
    }

    fn pack_value(
        &self,
        py: Python<'_>,
        field: &PackField,
        value: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        last_time: &mut i64,
    ) -> PyResult<bool> {
        match field.coding {
            Coding::Key => {}
            Coding::Text => {
                let Some(text) = exact_str(value) else {
                    return Ok(false);
                };
                put_text(out, text);
            }
            Coding::Time => {
                let Some(micros) = utc_micros(value, self.utc.bind(py)) else {
                    return Ok(false);
                };
                put_varint(out, zigzag(micros.wrapping_sub(*last_time)));
                *last_time = micros;
            }
            Coding::Money => {
                if !value.get_type().is(self.decimal.bind(py)) {
                    return Ok(false);
                }
                // Decimal(str(d)) is d with the same digits and exponent: the same repr.
                let text = value.str()?;
                let text = text.to_str()?;
                put_varint(out, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
            Coding::Int => {
                if !value.is_exact_instance_of::<PyInt>() {
                    return Ok(false);
                }
                let Ok(number) = value.extract::<i64>() else {
                    return Ok(false);
                };
                put_varint(out, zigzag(number));
            }
            Coding::Bool => {
                if !value.is_exact_instance_of::<PyBool>() {
                    return Ok(false);
                }
                out.push(u8::from(value.is_truthy()?));
            }
            Coding::Literal => {
                let Some(text) = exact_str(value) else {
                    return Ok(false);
                };
                // Mostly the literal object itself; an equal str comes back as it (shared).
                let found = field
                    .literals
                    .iter()
                    .position(|literal| literal.is(value))
                    .or_else(|| {
                        field.literals.iter().position(|literal| {
                            literal.bind(py).to_str().is_ok_and(|known| known == text)
                        })
                    });
                let Some(found) = found else {
                    return Ok(false);
                };
                out.push(found as u8);
            }
            Coding::Object => {
                if value.downcast_exact::<PyDict>().is_err() {
                    return Ok(false);
                }
                // marshal refuses what it cannot give back (a subclass, an unknown type).
                let bytes =
                    unsafe { ffi::PyMarshal_WriteObjectToString(value.as_ptr(), MARSHAL_VERSION) };
                let Ok(bytes) = (unsafe { Bound::from_owned_ptr_or_err(py, bytes) }) else {
                    return Ok(false);
                };
                let bytes = bytes.downcast_into::<PyBytes>()?;
                let bytes = bytes.as_bytes();
                put_varint(out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
        }
        Ok(true)
    }

    fn unpack_event<'py>(
        &self,
        py: Python<'py>,
        reader: &mut Reader<'_>,
        key: &(Bound<'py, PyAny>, Bound<'py, PyAny>),
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let start = reader.at;
        let last_time = &mut 0;
        let model = self
            .models
            .get(reader.byte()? as usize)
            .ok_or_else(corrupt)?;
        let digest = u64::from_le_bytes(reader.take(8)?.try_into().expect("8 bytes"));
        let fields_mask = reader.varint()?;
        let none_mask = reader.varint()?;
        let values = model.template.bind(py).copy()?;
        let mut keys = [&key.0, &key.1].into_iter();
        for (index, field) in model.fields.iter().enumerate() {
            let name = field.name.bind(py);
            if field.coding == Coding::Key {
                values.set_item(name, keys.next().ok_or_else(corrupt)?)?;
            } else if none_mask & (1 << index) == 0 {
                let mut value = self.unpack_value(py, field, reader, last_time)?;
                if Some(index) == model.source_at {
                    value = self.shared_source(value)?;
                }
                values.set_item(name, value)?;
            } // else None, as the template has it
        }
        let event_id = values
            .get_item(model.fields[model.event_id_at].name.bind(py))?
            .ok_or_else(corrupt)?;
        let fields_set = model
            .fields_sets
            .get(py, fields_mask)?
            .ok_or_else(corrupt)?;
        let made = crate::Made {
            values,
            fields_set,
            present: fields_mask,
        };
        // The event's own bytes go with it: packing the call again copies them.
        let packed = PyBytes::new(py, &reader.data[start..reader.at]);
        let ev = self.builder.event_without_model(
            py,
            self.valid_event.bind(py).as_any(),
            model.class.bind(py),
            &made,
            digest,
            Some(packed.into_any()),
        )?;
        Ok((event_id, ev))
    }

    fn unpack_value<'py>(
        &self,
        py: Python<'py>,
        field: &PackField,
        reader: &mut Reader<'_>,
        last_time: &mut i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match field.coding {
            Coding::Key => return Err(corrupt()),
            Coding::Text => reader.text(py)?.into_any(),
            Coding::Time => {
                *last_time = last_time.wrapping_add(unzigzag(reader.varint()?));
                utc_datetime(py, *last_time, self.utc.bind(py))?
            }
            Coding::Money => {
                let length = reader.length()?;
                let text = std::str::from_utf8(reader.take(length)?).map_err(|_| corrupt())?;
                self.decimal.bind(py).call1((text,))?
            }
            Coding::Int => unzigzag(reader.varint()?).into_pyobject(py)?.into_any(),
            Coding::Bool => PyBool::new(py, reader.byte()? != 0).to_owned().into_any(),
            Coding::Literal => field
                .literals
                .get(reader.byte()? as usize)
                .ok_or_else(corrupt)?
                .bind(py)
                .clone()
                .into_any(),
            Coding::Object => {
                let length = reader.length()?;
                let bytes = reader.take(length)?;
                unsafe {
                    Bound::from_owned_ptr_or_err(
                        py,
                        ffi::PyMarshal_ReadObjectFromString(
                            bytes.as_ptr().cast(),
                            bytes.len() as ffi::Py_ssize_t,
                        ),
                    )?
                }
            }
        })
    }

    /// The pool's source equal to `value` (it joins the pool if there is room), as the
    /// Python format's `_shared(_SOURCES, ...)`.
    fn shared_source<'py>(&self, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let pool = self.sources.bind(value.py());
        if let Some(found) = pool.get_item(&value)? {
            return Ok(found);
        }
        if pool.len() < self.pool_max {
            pool.set_item(&value, &value)?;
        }
        Ok(value)
    }
}

/// One event's bytes, written value by value: by the validator while it builds the model
/// (then `EventPacker::finish` puts the header in front) and by `pack_event` from a model, so
/// both write the same bytes.
pub(crate) struct EventBytes {
    place: usize,
    values: Vec<u8>,
    none_mask: u64,
    last_time: i64,
    /// A value `pack_value` could not write exactly: the event gets no bytes.
    refused: bool,
}

impl EventBytes {
    /// A writer for an event of the model at `place` (see `EventPacker::place_for`).
    pub(crate) fn new(place: usize) -> Self {
        Self {
            place,
            values: Vec::with_capacity(192),
            none_mask: 0,
            last_time: 0,
            refused: false,
        }
    }
}

impl EventPacker {
    /// The place of `class` if this packer packs it with the fields `names`, in this order
    /// (a writer's field indexes are then the packer's).
    pub(crate) fn place_for(
        &self,
        py: Python<'_>,
        class: &Bound<'_, PyType>,
        names: &[Bound<'_, PyString>],
    ) -> PyResult<Option<usize>> {
        let Some(&place) = self.places.get(&(class.as_ptr() as usize)) else {
            return Ok(None);
        };
        let fields = &self.models[place].fields;
        if fields.len() != names.len() {
            return Ok(None);
        }
        for (field, name) in fields.iter().zip(names) {
            if !field.name.bind(py).as_any().eq(name)? {
                return Ok(None);
            }
        }
        Ok(Some(place))
    }

    /// Writes the value of field `index` (in the model's order, each field once).
    pub(crate) fn write_value(
        &self,
        py: Python<'_>,
        bytes: &mut EventBytes,
        index: usize,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let field = &self.models[bytes.place].fields[index];
        if bytes.refused || field.coding == Coding::Key {
            return Ok(());
        }
        if value.is_none() {
            bytes.none_mask |= 1 << index;
        } else if !self.pack_value(py, field, value, &mut bytes.values, &mut bytes.last_time)? {
            bytes.refused = true;
        }
        Ok(())
    }

    /// The event's bytes (`fields_mask`: its fields-set as a bit mask), or None if a value
    /// could not be written exactly. The header goes in front of the values as they are
    /// copied into the bytes object: one copy.
    pub(crate) fn finish<'py>(
        &self,
        py: Python<'py>,
        bytes: EventBytes,
        digest: u64,
        fields_mask: u64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if bytes.refused {
            return Ok(None);
        }
        let mut header = Vec::with_capacity(29); // place, digest, two varints of <= 10 bytes
        put_header(
            &mut header,
            bytes.place,
            digest,
            fields_mask,
            bytes.none_mask,
        );
        let length = header.len() + bytes.values.len();
        let packed = PyBytes::new_with(py, length, |out| {
            out[..header.len()].copy_from_slice(&header);
            out[header.len()..].copy_from_slice(&bytes.values);
            Ok(())
        })?;
        Ok(Some(packed))
    }
}

impl PackModel {
    /// The bit mask of a fields-set, or None if it is not a set of this model's field names.
    fn fields_mask(&self, py: Python<'_>, fields_set: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        if !fields_set.is_exact_instance_of::<pyo3::types::PySet>() {
            return Ok(None);
        }
        let places = self.places.bind(py);
        let mut mask = 0u64;
        for name in fields_set.try_iter()? {
            let name = name?;
            if !name.is_exact_instance_of::<PyString>() {
                return Ok(None);
            }
            let Some(place) = places.get_item(&name)? else {
                return Ok(None);
            };
            mask |= 1 << place.extract::<u32>()?;
        }
        Ok(Some(mask))
    }
}

fn exact_u64(value: &Bound<'_, PyAny>) -> Option<u64> {
    if !value.is_exact_instance_of::<PyInt>() {
        return None;
    }
    value.extract::<u64>().ok()
}

fn corrupt() -> PyErr {
    PyValueError::new_err("not a call packed by this EventPacker")
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// An event's header: its model's place, its digest, its fields-set and None fields as masks.
fn put_header(out: &mut Vec<u8>, place: usize, digest: u64, fields_mask: u64, none_mask: u64) {
    out.push(place as u8);
    out.extend_from_slice(&digest.to_le_bytes());
    put_varint(out, fields_mask);
    put_varint(out, none_mask);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A str: 0 and the 16 bytes of a canonical UUID, else its UTF-8 length + 1 and the bytes.
fn put_text(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if let Some(uuid) = canonical_uuid(bytes) {
        out.push(0);
        out.extend_from_slice(&uuid);
    } else {
        put_varint(out, bytes.len() as u64 + 1);
        out.extend_from_slice(bytes);
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> PyResult<&'a [u8]> {
        let end = self.at.checked_add(length).ok_or_else(corrupt)?;
        let bytes = self.data.get(self.at..end).ok_or_else(corrupt)?;
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> PyResult<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(corrupt())
    }

    fn length(&mut self) -> PyResult<usize> {
        usize::try_from(self.varint()?).map_err(|_| corrupt())
    }

    fn text<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        let header = self.length()?;
        if header == 0 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut text = [0u8; 36];
            let mut at = 0;
            for (index, byte) in self.take(16)?.iter().enumerate() {
                if matches!(index, 4 | 6 | 8 | 10) {
                    text[at] = b'-';
                    at += 1;
                }
                text[at] = HEX[usize::from(byte >> 4)];
                text[at + 1] = HEX[usize::from(byte & 0xf)];
                at += 2;
            }
            let text = std::str::from_utf8(&text).expect("ASCII");
            return Ok(PyString::new(py, text));
        }
        let bytes = self.take(header - 1)?;
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt())?;
        Ok(PyString::new(py, text))
    }
}
