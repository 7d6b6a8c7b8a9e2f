//! ringlog's native fast path for `worker.core.decode` (see worker/core/native_fast_path.py).
//!
//! `EventValidator.validate(data)` takes the dict `orjson.loads` made of one message and
//! returns the event model pydantic would have built from it, or `None` when it cannot be sure:
//! any null, non-canonical UUID, amount in exponent form, unusual timestamp form or invalid
//! value. `None` is
//! never a verdict: the decoder then runs the pydantic validators, which accept or reject the
//! event and name the reason. So this code only has to accept a subset of the contract, with
//! exactly the values pydantic gives; a differential property test holds it to that.
//!
//! Pure: no I/O, no clock. The field specs come from the Python models at import, so a field
//! added to the contract is refused here (unknown kind) rather than validated wrongly.
//! `EventValidator.decode(value, key)` does the same from a message's bytes, read by json.rs
//! instead of orjson, and gives the decoder's `ValidEvent` (the payload digest included).
//! pack.rs holds the call cache's packer (worker/core/event_pack.py), model.rs how both build
//! pydantic instances.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The crate's hash map: std's, with foldhash's hasher instead of SipHash (4% of the decode
/// and plan, perf 2026-12-04), seeded at random per process and per map like std's; the
/// quality variant, since many keys come from messages.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;
/// The set of `Map`.
pub(crate) type Set<K> = std::collections::HashSet<K, foldhash::quality::RandomState>;

mod batch;
mod call_event_row;
mod json;
mod merge;
mod model;
mod murmur2;
mod native_block;
mod pack;
mod row_binary;
mod rows;

use json::Value;
use model::{FieldsSets, ModelBuilder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDateAccess, PyDateTime, PyDict, PyFloat, PyFrozenSet, PyInt, PyList,
    PyString, PyTimeAccess, PyTuple, PyType, PyTzInfoAccess,
};

/// How a field is checked and converted (the numbers are `worker.core.native_fast_path.Kind`).
#[derive(Clone, Copy)]
enum Kind {
    /// A str of `min..=max` code points.
    Text { min: usize, max: usize },
    /// A UUID in the canonical form (lowercase, hyphenated), kept as its text.
    Uuid,
    /// `+`, a digit 1-9, then 1 to 14 digits.
    E164,
    /// An RFC 3339 time (`parse_rfc3339`), as an aware UTC datetime.
    Time,
    /// As `Time`, or "" for no time (PBX CDRs).
    OptionalTime,
    /// A non-negative int, float or plain decimal text, below the money limit, as a Decimal.
    Money,
    /// An int (never a bool) within `lo..=hi`.
    Int { lo: i64, hi: i64 },
    /// A JSON boolean.
    Bool,
    /// One of a few strs (the model's Literal); its own object is stored.
    Literal,
    /// A JSON object with str keys, stored as a shallow copy.
    Object,
}

struct Field {
    name: Py<PyString>,
    /// The name, for finding the member in a message's bytes.
    key: String,
    /// A text whose values repeat across a batch's events (ids, phone numbers): one object
    /// per distinct value (`Texts`). Not the event_id, which never repeats.
    shared: bool,
    kind: Kind,
    required: bool,
    default: PyObject,
    literals: Vec<(String, PyObject)>,
}

struct Model {
    class: Py<PyType>,
    fields: Vec<Field>,
    /// Indexes of fields of which at least one must be present (the amendment's rule).
    one_of: Vec<usize>,
    fields_sets: FieldsSets,
    /// Every field name with its default, in the model's order: an event's values start as
    /// its copy (CPython copies the whole table at once, where inserting each name grows it
    /// twice), and an absent field is left as it is.
    template: Py<PyDict>,
}

/// What a message holds for one field of its model.
enum Found<'py> {
    Absent,
    /// A value `convert` cannot vouch for: the validator gives up.
    Refused,
    /// The value to store.
    Value(Bound<'py, PyAny>),
}

impl<'py> From<Option<Bound<'py, PyAny>>> for Found<'py> {
    fn from(converted: Option<Bound<'py, PyAny>>) -> Self {
        converted.map_or(Found::Refused, Found::Value)
    }
}

/// Validates the dict of one event against the fast models (see the module comment).
#[pyclass(frozen, module = "ringlog_native")]
struct EventValidator {
    models: Map<String, Model>,
    decimal: PyObject,
    utc: PyObject,
    /// `orjson.loads`, for a nested object (rare: call_data), so it is exactly orjson's.
    loads: PyObject,
    /// `worker.core.decode.ValidEvent`.
    valid_event: PyObject,
    /// The money limit's integer digits (exclusive bound 10^money_digits).
    money_digits: usize,
    time_min_us: i64,
    time_max_us: i64,
    builder: ModelBuilder,
    /// Set by `pack_with`: the call cache's packer, and its place of each model (by class).
    packing: OnceLock<Packing>,
}

struct Packing {
    packer: Py<pack::EventPacker>,
    places: Map<usize, usize>,
}

const KIND_TEXT: u8 = 0;
const KIND_UUID: u8 = 1;
const KIND_E164: u8 = 2;
const KIND_TIME: u8 = 3;
const KIND_OPTIONAL_TIME: u8 = 4;
const KIND_MONEY: u8 = 5;
const KIND_INT: u8 = 6;
const KIND_BOOL: u8 = 7;
const KIND_LITERAL: u8 = 8;
const KIND_OBJECT: u8 = 9;

type FieldSpec<'py> = (
    Bound<'py, PyString>,
    u8,
    bool,
    Bound<'py, PyAny>,
    Bound<'py, PyTuple>,
);

#[pymethods]
impl EventValidator {
    /// `models`: event type -> (model class, fields, indexes of the one-of fields), each field
    /// (name, kind, required, default, args): args are (min, max) for text and ints, the
    /// allowed strs for a literal, () otherwise. `money_digits`: money must be below
    /// 10**money_digits. Times in microseconds since the epoch, the maximum exclusive.
    /// `loads` is orjson.loads, `valid_event` the class `decode` returns.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        models: &Bound<'_, PyDict>,
        decimal: PyObject,
        utc: PyObject,
        loads: PyObject,
        valid_event: PyObject,
        money_digits: usize,
        time_min_us: i64,
        time_max_us: i64,
    ) -> PyResult<Self> {
        let mut out = Map::default();
        for (event_type, spec) in models.iter() {
            let event_type: String = event_type.extract()?;
            let (class, fields, one_of): (Bound<'_, PyType>, Vec<FieldSpec<'_>>, Vec<usize>) =
                spec.extract()?;
            if fields.len() > 64 {
                return Err(PyValueError::new_err(format!(
                    "{event_type}: more than 64 fields (the present ones are a 64-bit mask)"
                )));
            }
            let mut parsed = Vec::with_capacity(fields.len());
            for (name, kind, required, default, args) in fields {
                let key = name.to_str()?.to_owned();
                let mut literals = Vec::new();
                let kind = match kind {
                    KIND_TEXT => {
                        let (min, max): (usize, usize) = args.extract()?;
                        Kind::Text { min, max }
                    }
                    KIND_UUID => Kind::Uuid,
                    KIND_E164 => Kind::E164,
                    KIND_TIME => Kind::Time,
                    KIND_OPTIONAL_TIME => Kind::OptionalTime,
                    KIND_MONEY => Kind::Money,
                    KIND_INT => {
                        let (lo, hi): (i64, i64) = args.extract()?;
                        Kind::Int { lo, hi }
                    }
                    KIND_BOOL => Kind::Bool,
                    KIND_LITERAL => {
                        for value in args.iter() {
                            let text: String = value.extract()?;
                            literals.push((text, value.unbind()));
                        }
                        Kind::Literal
                    }
                    KIND_OBJECT => Kind::Object,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "field {key} of {event_type}: unknown kind {other}"
                        )))
                    }
                };
                parsed.push(Field {
                    shared: key != "event_id",
                    key: key.clone(),
                    name: name.unbind(),
                    kind,
                    required,
                    default: default.unbind(),
                    literals,
                });
            }
            let names: Vec<_> = parsed
                .iter()
                .map(|field| field.name.clone_ref(py))
                .collect();
            // Each field at its default: an absent field is then left as the copy has it.
            let template = PyDict::new(py);
            for field in &parsed {
                template.set_item(field.name.bind(py), field.default.bind(py))?;
            }
            out.insert(
                event_type,
                Model {
                    class: class.unbind(),
                    fields: parsed,
                    one_of,
                    fields_sets: FieldsSets::new(names),
                    template: template.unbind(),
                },
            );
        }
        Ok(Self {
            models: out,
            decimal,
            utc,
            loads,
            valid_event,
            money_digits,
            time_min_us,
            time_max_us,
            builder: ModelBuilder::new(py)?,
            packing: OnceLock::new(),
        })
    }

    /// From now on `decode` and `decode_record` give each event of a model `packer` packs
    /// the bytes it would write for it (`ValidEvent.packed`, see pack.rs): packing the call
    /// then copies them. Once per validator.
    fn pack_with(&self, py: Python<'_>, packer: Py<pack::EventPacker>) -> PyResult<()> {
        let mut places = Map::default();
        for model in self.models.values() {
            let class = model.class.bind(py);
            let names: Vec<_> = model
                .fields
                .iter()
                .map(|f| f.name.bind(py).clone())
                .collect();
            if let Some(place) = packer.get().place_for(py, class, &names)? {
                places.insert(class.as_ptr() as usize, place);
            }
        }
        self.packing
            .set(Packing { packer, places })
            .map_err(|_| PyValueError::new_err("this validator already packs with a packer"))
    }

    /// The event model of `data`, or None where the pydantic validators must decide.
    fn validate(&self, py: Python<'_>, data: &Bound<'_, PyDict>) -> PyResult<PyObject> {
        Ok(match self.build(py, data)? {
            Some(model) => model,
            None => py.None(),
        })
    }

    /// The `ValidEvent` of one message straight from its bytes (its model and its payload
    /// digest), or None where the decoder must decide (orjson, then `validate`'s path): what
    /// `json::object_members` cannot read, a key that is not the event's call_id, and all that
    /// `validate` leaves to pydantic. Skips orjson's dict of the message.
    #[pyo3(signature = (value, key, /))]
    fn decode(&self, py: Python<'_>, value: &[u8], key: Option<&[u8]>) -> PyResult<PyObject> {
        let valid = match json::object_members(value) {
            Some(members) => self.event_of(py, &members, key, payload_digest(value), None)?,
            None => None,
        };
        Ok(valid.unwrap_or_else(|| py.None()))
    }

    /// `decode` of a consumed record, with the event's `call_event` row in RowBinary (every
    /// column but `ingested_at`, see call_event_row.rs): `(ValidEvent, row)`, or None as
    /// `decode`. The row is None if this code cannot write it (then Python does).
    #[pyo3(signature = (value, key, topic, partition, offset, /))]
    fn decode_record(
        &self,
        py: Python<'_>,
        value: &[u8],
        key: Option<&[u8]>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> PyResult<PyObject> {
        Ok(
            match self.record(py, value, key, (topic, partition, offset))? {
                Some((valid, row)) => PyTuple::new(py, [valid, row])?.into_any().unbind(),
                None => py.None(),
            },
        )
    }

    /// `BatchPlanner.decode`'s loop over a batch of records (batch.rs): `(by_call, rejected)`,
    /// or None if a record's key or value is neither bytes nor None (then Python loops).
    #[pyo3(signature = (records, fallback, projects, pool_max, /))]
    fn decode_batch<'py>(
        &self,
        records: &Bound<'py, PyAny>,
        fallback: &Bound<'py, PyAny>,
        projects: &Bound<'py, PyDict>,
        pool_max: usize,
    ) -> PyResult<Option<(Bound<'py, PyDict>, Bound<'py, PyList>)>> {
        batch::decode_batch(self, records, fallback, projects, pool_max)
    }
}

/// An event's packed values and its fields-set as a bit mask (`EventPacker::finish`).
type Packed = (pack::EventBytes, u64);

/// `build_from_members`' result: the event's model class, values and packed bytes.
type Validated<'a, 'py> = (&'a Py<PyType>, Made<'py>, Option<Packed>);

/// A validated event's model values (what becomes the model's `__dict__`), its fields-set
/// (shared, one per combination of present fields) and that combination as a bit mask.
struct Made<'py> {
    values: Bound<'py, PyDict>,
    fields_set: Bound<'py, PyFrozenSet>,
    present: u64,
}

/// One str object per distinct text of a batch's shared fields (`Field::shared`): a call's
/// events repeat its ids and numbers, so about four of each event's five fresh strs were
/// copies (the benchmark's traffic, 2026-12-04).
#[derive(Default)]
pub(crate) struct Texts<'py> {
    seen: Map<String, Bound<'py, PyString>>,
}

impl<'py> Texts<'py> {
    fn get(&mut self, py: Python<'py>, text: &str) -> Bound<'py, PyString> {
        if let Some(found) = self.seen.get(text) {
            return found.clone();
        }
        let made = PyString::new(py, text);
        self.seen.insert(text.to_owned(), made.clone());
        made
    }
}

/// A message's members as json.rs reads them.
type Members<'a> = Vec<json::Member<'a>>;

/// What consumed messages give before any Python object is made, and without the GIL: each
/// one's members, payload digest and `call_event` row (RowBinary, see call_event_row.rs),
/// kept for several messages in two vectors (batch.rs reads a batch a chunk at a time with
/// the GIL let go: two allocations a chunk, not two a message). A row is only
/// used if the validator accepts its message's members.
#[derive(Default)]
pub(crate) struct Readings<'a> {
    members: Members<'a>,
    rows: Vec<u8>,
}

/// One message's part of its `Readings`.
pub(crate) struct Read {
    members: std::ops::Range<usize>,
    digest: u64,
    /// None if call_event_row.rs cannot write it.
    row: Option<std::ops::Range<usize>>,
}

impl<'a> Readings<'a> {
    /// Empty, its buffers kept.
    pub(crate) fn clear(&mut self) {
        self.members.clear();
        self.rows.clear();
    }

    /// Reads `value`, or None where json.rs cannot read it; `at`: the record's topic,
    /// partition and offset.
    pub(crate) fn read(&mut self, value: &'a [u8], at: (&str, i32, i64)) -> Option<Read> {
        self.read_digested(value, payload_digest(value), at)
    }

    /// `read` of a message whose payload digest is known (`payload_digests`).
    pub(crate) fn read_digested(
        &mut self,
        value: &'a [u8],
        digest: u64,
        at: (&str, i32, i64),
    ) -> Option<Read> {
        let (topic, partition, offset) = at;
        let start = self.members.len();
        if !json::object_members_into(value, &mut self.members) {
            return None;
        }
        let members = &self.members[start..];
        let row =
            call_event_row::Row::of(members, value, digest, topic, partition, offset).map(|row| {
                let at = self.rows.len();
                self.rows.resize(at + row.len(), 0);
                row.write(&mut self.rows[at..]);
                at..self.rows.len()
            });
        Some(Read {
            members: start..self.members.len(),
            digest,
            row,
        })
    }
}

impl EventValidator {
    /// `decode_record`'s pair, or None; `at`: the record's topic, partition and offset.
    fn record(
        &self,
        py: Python<'_>,
        value: &[u8],
        key: Option<&[u8]>,
        at: (&str, i32, i64),
    ) -> PyResult<Option<(PyObject, PyObject)>> {
        let mut readings = Readings::default();
        let Some(read) = readings.read(value, at) else {
            return Ok(None);
        };
        self.record_read(py, &readings, &read, key, None)
    }

    /// `record` of a message already read (`Readings::read`, which needs no GIL: batch.rs
    /// reads each chunk of a batch with the GIL let go), its repeated texts shared through
    /// `texts` if given.
    fn record_read<'py>(
        &self,
        py: Python<'py>,
        readings: &Readings<'_>,
        read: &Read,
        key: Option<&[u8]>,
        texts: Option<&mut Texts<'py>>,
    ) -> PyResult<Option<(PyObject, PyObject)>> {
        let members = &readings.members[read.members.clone()];
        let Some(valid) = self.event_of(py, members, key, read.digest, texts)? else {
            return Ok(None);
        };
        let row = match &read.row {
            Some(row) => PyBytes::new(py, &readings.rows[row.clone()])
                .into_any()
                .unbind(),
            None => py.None(),
        };
        Ok(Some((valid, row)))
    }

    /// The class `decode` makes its events of.
    fn valid_event_class<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.valid_event.bind(py)
    }

    /// The ValidEvent of a message's members (its payload digest `digest`), or None.
    fn event_of<'py>(
        &self,
        py: Python<'py>,
        members: &[json::Member<'_>],
        key: Option<&[u8]>,
        digest: u64,
        texts: Option<&mut Texts<'py>>,
    ) -> PyResult<Option<PyObject>> {
        let Some(key) = key else {
            return Ok(None);
        };
        let Some((class, made, bytes)) = self.build_from_members(py, members, key, texts)? else {
            return Ok(None);
        };
        let packed = match (bytes, self.packing.get()) {
            (Some((bytes, fields_mask)), Some(packing)) => {
                packing
                    .packer
                    .get()
                    .finish(py, bytes, digest, fields_mask)?
            }
            _ => None,
        };
        let valid = self.builder.event_without_model(
            py,
            self.valid_event.bind(py),
            class.bind(py),
            &made,
            digest,
            packed.map(|packed| packed.into_any()),
        )?;
        Ok(Some(valid.unbind()))
    }

    fn build(&self, py: Python<'_>, data: &Bound<'_, PyDict>) -> PyResult<Option<PyObject>> {
        let Some(event_type) = data.get_item(pyo3::intern!(py, "type"))? else {
            return Ok(None);
        };
        let Some(model) = exact_str(&event_type).and_then(|name| self.models.get(name)) else {
            return Ok(None);
        };
        let made = self.instance(py, model, None, |field| {
            Ok(match data.get_item(field.name.bind(py))? {
                None => Found::Absent,
                Some(value) => self.convert(py, field, &value)?.into(),
            })
        })?;
        let Some(made) = made else {
            return Ok(None);
        };
        let instance =
            self.builder
                .build(py, model.class.bind(py), &made.values, &made.fields_set)?;
        Ok(Some(instance.unbind()))
    }

    /// `build` of a message's members (`decode`), whose call_id must be `key`, with the
    /// event's packed values and fields-set mask if `pack_with` set a packer of its model.
    fn build_from_members<'py>(
        &self,
        py: Python<'py>,
        members: &[(std::borrow::Cow<'_, str>, Value<'_>)],
        key: &[u8],
        mut texts: Option<&mut Texts<'py>>,
    ) -> PyResult<Option<Validated<'_, 'py>>> {
        // Producers mostly write the fields in the model's order: each search starts after
        // the previous find.
        let mut next = 0;
        let mut member = |name: &str| {
            let (earlier, rest) = members.split_at(next.min(members.len()));
            let found = rest
                .iter()
                .position(|(found, _)| found == name)
                .map(|at| earlier.len() + at)
                .or_else(|| earlier.iter().position(|(found, _)| found == name))?;
            next = found + 1;
            Some(&members[found].1)
        };
        let Some(Value::Str(event_type)) = member("type") else {
            return Ok(None);
        };
        let Some(model) = self.models.get(event_type.as_ref()) else {
            return Ok(None);
        };
        match member("call_id") {
            Some(Value::Str(call_id)) if call_id.as_bytes() == key => {}
            _ => return Ok(None),
        }
        let packing = self.packing.get().and_then(|packing| {
            let place = packing.places.get(&(model.class.as_ptr() as usize))?;
            Some((packing.packer.get(), pack::EventBytes::new(*place)))
        });
        let (packer, mut bytes) = packing.unzip();
        let writer = packer.zip(bytes.as_mut());
        let Some(made) = self.instance(py, model, writer, |field| {
            Ok(match member(&field.key) {
                None => Found::Absent,
                Some(value) => self
                    .convert_member(py, field, value, texts.as_deref_mut())?
                    .into(),
            })
        })?
        else {
            return Ok(None);
        };
        let fields_mask = made.present;
        Ok(Some((
            &model.class,
            made,
            bytes.map(|bytes| (bytes, fields_mask)),
        )))
    }

    /// The values of `model` with each field's value as `found` reads and converts it
    /// (absent fields take their defaults) and its fields-set, or None: a required field
    /// absent, a value refused, none of the one-of fields carried. `writer` also packs each
    /// stored value.
    fn instance<'py>(
        &self,
        py: Python<'py>,
        model: &Model,
        mut writer: Option<(&pack::EventPacker, &mut pack::EventBytes)>,
        mut found: impl FnMut(&Field) -> PyResult<Found<'py>>,
    ) -> PyResult<Option<Made<'py>>> {
        let values = model.template.bind(py).copy()?;
        let mut present: u64 = 0;
        let mut carried = model.one_of.is_empty();
        for (index, field) in model.fields.iter().enumerate() {
            let name = field.name.bind(py);
            let converted = match found(field)? {
                Found::Absent if field.required => return Ok(None),
                Found::Absent => {
                    // `values` holds the default already (the template's).
                    if let Some((packer, bytes)) = writer.as_mut() {
                        packer.write_value(py, bytes, index, field.default.bind(py))?;
                    }
                    continue;
                }
                Found::Refused => return Ok(None),
                Found::Value(converted) => converted,
            };
            if !carried && !converted.is_none() && model.one_of.contains(&index) {
                carried = true;
            }
            if let Some((packer, bytes)) = writer.as_mut() {
                packer.write_value(py, bytes, index, &converted)?;
            }
            values.set_item(name, converted)?;
            present |= 1 << index;
        }
        if !carried {
            return Ok(None);
        }
        let Some(fields_set) = model.fields_sets.get(py, present)? else {
            return Ok(None);
        };
        Ok(Some(Made {
            values,
            fields_set,
            present,
        }))
    }

    /// `convert` of a member read from the message's bytes: the value orjson would have made,
    /// converted as `convert` would.
    fn convert_member<'py>(
        &self,
        py: Python<'py>,
        field: &Field,
        value: &Value<'_>,
        texts: Option<&mut Texts<'py>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let text = match value {
            Value::Str(text) => Some(text.as_ref()),
            _ => None,
        };
        let mut texts = texts.filter(|_| field.shared);
        let mut string = |text: &str| {
            Some(match texts.as_deref_mut() {
                Some(texts) => texts.get(py, text).into_any(),
                None => PyString::new(py, text).into_any(),
            })
        };
        Ok(match (field.kind, value) {
            (Kind::Text { min, max }, Value::Str(text)) => {
                text_fits(text, min, max).then(|| string(text)).flatten()
            }
            (Kind::Uuid, Value::Str(text)) => is_canonical_uuid(text.as_bytes())
                .then(|| string(text))
                .flatten(),
            (Kind::E164, Value::Str(text)) => {
                is_e164(text.as_bytes()).then(|| string(text)).flatten()
            }
            (Kind::Time, Value::Str(text)) => self.time(py, text)?,
            (Kind::OptionalTime, Value::Str(text)) if text.is_empty() => {
                Some(py.None().into_bound(py))
            }
            (Kind::OptionalTime, Value::Str(text)) => self.time(py, text)?,
            (Kind::Money, Value::Int(number)) => self.money_int(py, *number)?,
            (Kind::Money, Value::Fraction(token)) => match token.parse::<f64>() {
                // Both read the nearest double (correctly rounded), then as orjson's float.
                Ok(number) => self.money_float(py, &PyFloat::new(py, number))?,
                Err(_) => None,
            },
            (Kind::Money, Value::Str(text)) => self.money_text(py, text)?,
            (Kind::Int { lo, hi }, Value::Int(number)) => (*number >= lo && *number <= hi)
                .then(|| number.into_pyobject(py).map(|n| n.into_any()))
                .transpose()?,
            (Kind::Bool, Value::Bool(flag)) => Some(PyBool::new(py, *flag).to_owned().into_any()),
            (Kind::Literal, Value::Str(_)) => field
                .literals
                .iter()
                .find(|(allowed, _)| Some(allowed.as_str()) == text)
                .map(|(_, object)| object.bind(py).clone()),
            (Kind::Object, Value::Object(object)) => {
                let parsed = self
                    .loads
                    .bind(py)
                    .call1((PyBytes::new(py, object.as_bytes()),))?;
                parsed.downcast_exact::<PyDict>().is_ok().then_some(parsed)
            }
            _ => None,
        })
    }

    /// The stored value of `value` for `field`, or None (not sure: the caller gives up).
    fn convert<'py>(
        &self,
        py: Python<'py>,
        field: &Field,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match field.kind {
            Kind::Text { min, max } => {
                let Some(text) = exact_str(value) else {
                    return Ok(None);
                };
                text_fits(text, min, max).then(|| value.clone())
            }
            Kind::Uuid => exact_str(value)
                .filter(|text| is_canonical_uuid(text.as_bytes()))
                .map(|_| value.clone()),
            Kind::E164 => exact_str(value)
                .filter(|text| is_e164(text.as_bytes()))
                .map(|_| value.clone()),
            Kind::Time => match exact_str(value) {
                Some(text) => self.time(py, text)?,
                None => None,
            },
            Kind::OptionalTime => match exact_str(value) {
                Some("") => Some(py.None().into_bound(py)),
                Some(text) => self.time(py, text)?,
                None => None,
            },
            Kind::Money => self.money(py, value)?,
            Kind::Int { lo, hi } => {
                if !value.is_exact_instance_of::<PyInt>() {
                    return Ok(None);
                }
                match value.extract::<i64>() {
                    Ok(number) if number >= lo && number <= hi => Some(value.clone()),
                    _ => None,
                }
            }
            Kind::Bool => value
                .is_exact_instance_of::<PyBool>()
                .then(|| value.clone()),
            Kind::Literal => match exact_str(value) {
                Some(text) => field
                    .literals
                    .iter()
                    .find(|(allowed, _)| allowed == text)
                    .map(|(_, object)| object.bind(py).clone()),
                None => None,
            },
            Kind::Object => {
                let Ok(object) = value.downcast_exact::<PyDict>() else {
                    return Ok(None);
                };
                for key in object.keys() {
                    if !key.is_exact_instance_of::<PyString>() {
                        return Ok(None);
                    }
                }
                Some(object.copy()?.into_any())
            }
        })
    }

    /// An RFC 3339 time (see `parse_rfc3339`) whose UTC instant lies in the column's range, as
    /// an aware UTC datetime.
    fn time<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(micros) = parse_rfc3339(text.as_bytes()) else {
            return Ok(None);
        };
        if micros < self.time_min_us || micros >= self.time_max_us {
            return Ok(None);
        }
        Ok(Some(utc_datetime(py, micros, self.utc.bind(py))?))
    }

    /// An int, a float or a plain decimal text (`123`, `0.25`), non-negative, below the limit.
    fn money<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if value.is_exact_instance_of::<PyInt>() {
            let Ok(number) = value.extract::<i64>() else {
                return Ok(None);
            };
            return self.money_int(py, number);
        }
        if let Ok(number) = value.downcast_exact::<PyFloat>() {
            return self.money_float(py, number);
        }
        match exact_str(value) {
            Some(text) => self.money_text(py, text),
            None => Ok(None),
        }
    }

    fn money_int<'py>(&self, py: Python<'py>, number: i64) -> PyResult<Option<Bound<'py, PyAny>>> {
        if number < 0 || number.to_string().len() > self.money_digits {
            return Ok(None);
        }
        Ok(Some(self.decimal.bind(py).call1((number,))?))
    }

    fn money_float<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyFloat>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        // As `_money`: the Decimal of the float's shortest text (0.1 -> Decimal("0.1")).
        let number = value.value();
        let limit = 10f64.powi(self.money_digits as i32);
        if !(number.is_finite() && number >= 0.0 && number < limit) {
            return Ok(None);
        }
        Ok(Some(self.decimal.bind(py).call1((value.str()?,))?))
    }

    fn money_text<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !fraction.is_none_or(digits) {
            return Ok(None);
        }
        if whole.trim_start_matches('0').len() > self.money_digits {
            return Ok(None);
        }
        Ok(Some(self.decimal.bind(py).call1((text,))?))
    }
}

/// The aware datetime (tzinfo `utc`) `micros` microseconds after the epoch.
fn utc_datetime<'py>(
    py: Python<'py>,
    micros: i64,
    utc: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let days = micros.div_euclid(86_400_000_000);
    let of_day = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let year = i32::try_from(year)
        .ok()
        .filter(|year| (1..=9999).contains(year))
        .ok_or_else(|| PyValueError::new_err("a time outside datetime's range"))?;
    let seconds = of_day / 1_000_000;
    let time = PyDateTime::new(
        py,
        year,
        month as u8,
        day as u8,
        (seconds / 3600) as u8,
        (seconds / 60 % 60) as u8,
        (seconds % 60) as u8,
        (of_day % 1_000_000) as u32,
        Some(utc.downcast()?),
    )?;
    Ok(time.into_any())
}

/// `min <= len(text) <= max` in code points, as Python counts; the byte length settles it
/// early when it is within the bounds (it is never below the code points, and equal to them
/// in ASCII).
fn text_fits(text: &str, min: usize, max: usize) -> bool {
    let bytes = text.len();
    if bytes <= max && bytes >= min && (min <= 1 || text.is_ascii()) {
        return true;
    }
    let chars = text.chars().count();
    chars >= min && chars <= max
}

/// Microseconds since the epoch of an exact datetime in `utc` (`datetime.UTC`) with fold 0.
fn utc_micros(value: &Bound<'_, PyAny>, utc: &Bound<'_, PyAny>) -> Option<i64> {
    let time = value.downcast_exact::<PyDateTime>().ok()?;
    if !time.get_tzinfo()?.is(utc) || time.get_fold() {
        return None;
    }
    Some(wall_micros(time))
}

/// Microseconds since the epoch of a datetime's own fields, its time zone left aside.
pub(crate) fn wall_micros(time: &Bound<'_, PyDateTime>) -> i64 {
    let days = days_from_civil(
        i64::from(time.get_year()),
        i64::from(time.get_month()),
        i64::from(time.get_day()),
    );
    let seconds = ((days * 24 + i64::from(time.get_hour())) * 60 + i64::from(time.get_minute()))
        * 60
        + i64::from(time.get_second());
    seconds * 1_000_000 + i64::from(time.get_microsecond())
}

fn exact_str<'a>(value: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    // A str that is not valid UTF-8 (a lone surrogate) is left to pydantic too.
    value.downcast_exact::<PyString>().ok()?.to_str().ok()
}

fn is_canonical_uuid(b: &[u8]) -> bool {
    canonical_uuid(b).is_some()
}

/// Each byte's value as a hex digit: 0-15 for `0-9a-f`, UPPER_HEX | 10-15 for `A-F`, NOT_HEX
/// for any other byte.
const HEX_DIGITS: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        values[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        values[(b'A' + letter) as usize] = UPPER_HEX | (10 + letter);
        letter += 1;
    }
    values
};
const UPPER_HEX: u8 = 0x10;
const NOT_HEX: u8 = 0xFF;

/// The 16 bytes of a canonical UUID's text (lowercase hex digits, dashes at 8, 13, 18 and
/// 23), or None: checked and read in one pass with a table (the ids are a third of an
/// event's text, and the packer writes them as their bytes).
fn canonical_uuid(b: &[u8]) -> Option<[u8; 16]> {
    uuid_text_bytes(b, false)
}

/// The 16 bytes (big-endian, as `uuid.UUID.bytes`) of a UUID's text: hex digits, dashes at
/// 8, 13, 18 and 23; uppercase digits too if `upper_too`. None for anything else.
pub(crate) fn uuid_text_bytes(b: &[u8], upper_too: bool) -> Option<[u8; 16]> {
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let refused = if upper_too {
        NOT_HEX & !(UPPER_HEX | 0xf)
    } else {
        !0xf
    };
    let mut out = [0u8; 16];
    let mut seen = 0u8;
    let digits = b[..8]
        .chunks_exact(2)
        .chain(b[9..13].chunks_exact(2))
        .chain(b[14..18].chunks_exact(2))
        .chain(b[19..23].chunks_exact(2))
        .chain(b[24..].chunks_exact(2));
    for (byte, pair) in out.iter_mut().zip(digits) {
        let (high, low) = (
            HEX_DIGITS[usize::from(pair[0])],
            HEX_DIGITS[usize::from(pair[1])],
        );
        seen |= high | low;
        *byte = ((high & 0xf) << 4) | (low & 0xf);
    }
    (seen & refused == 0).then_some(out)
}

fn is_e164(b: &[u8]) -> bool {
    (3..=16).contains(&b.len())
        && b[0] == b'+'
        && (b'1'..=b'9').contains(&b[1])
        && b[2..].iter().all(u8::is_ascii_digit)
}

fn number(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Microseconds since the epoch of an RFC 3339 time as `schemas.events.parse_timestamp` reads
/// it: `T`, `t` or a space between date and time, an optional fraction of which only the
/// milliseconds are kept (truncated), then `Z`, `z` or `+hh:mm`/`-hh:mm`; None where the
/// text is anything else or names no valid instant (the Python parser then says why).
fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    if b.len() < 20 {
        return None;
    }
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = number(&b[0..4])?;
    let month = number(&b[5..7])?;
    let day = number(&b[8..10])?;
    let hour = number(&b[11..13])?;
    let minute = number(&b[14..16])?;
    let second = number(&b[17..19])?;
    let mut rest = &b[19..];
    let mut millis = 0;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let kept = &rest[1..1 + digits.min(3)];
        millis = number(kept)? * [100, 10, 1][kept.len() - 1];
        rest = &rest[1 + digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2])?;
            let minutes = number(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let local = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second;
    Some((local - offset_minutes * 60) * 1_000_000 + millis * 1000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// blake2b with an 8-byte digest of `payload`, as a big-endian int: the same number as
/// `int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")`.
#[pyfunction]
fn payload_digest(payload: &[u8]) -> u64 {
    digest_value(&digest_params().hash(payload))
}

/// `payload_digest` of each payload, several at a time in the SIMD lanes (blake2b_simd's
/// `hash_many`: the same hashes, about half the time of one by one for the benchmark's
/// messages).
pub(crate) fn payload_digests(payloads: &[&[u8]]) -> Vec<u64> {
    let params = digest_params();
    let mut jobs: Vec<_> = payloads
        .iter()
        .map(|payload| blake2b_simd::many::HashManyJob::new(&params, payload))
        .collect();
    blake2b_simd::many::hash_many(jobs.iter_mut());
    jobs.iter()
        .map(|job| digest_value(&job.to_hash()))
        .collect()
}

fn digest_params() -> blake2b_simd::Params {
    let mut params = blake2b_simd::Params::new();
    params.hash_length(8);
    params
}

fn digest_value(hash: &blake2b_simd::Hash) -> u64 {
    u64::from_be_bytes(hash.as_bytes().try_into().expect("8 bytes"))
}

#[pymodule]
fn ringlog_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EventValidator>()?;
    m.add_class::<pack::EventPacker>()?;
    m.add_class::<rows::RowBuilder>()?;
    m.add_class::<row_binary::RowBinaryEncoder>()?;
    m.add_class::<native_block::NativeBlockWriter>()?;
    m.add("PACK_TAG", pack::TAG)?;
    m.add_function(wrap_pyfunction!(payload_digest, m)?)?;
    m.add_function(wrap_pyfunction!(murmur2::murmur2, m)?)?;
    m.add_function(wrap_pyfunction!(merge::merge_items, m)?)?;
    m.add(
        "KINDS",
        (
            ("text", KIND_TEXT),
            ("uuid", KIND_UUID),
            ("e164", KIND_E164),
            ("time", KIND_TIME),
            ("optional_time", KIND_OPTIONAL_TIME),
            ("money", KIND_MONEY),
            ("int", KIND_INT),
            ("bool", KIND_BOOL),
            ("literal", KIND_LITERAL),
            ("object", KIND_OBJECT),
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{canonical_uuid, payload_digest, payload_digests, uuid_text_bytes};
    use crate::call_event_row::uuid_bytes;

    /// The definition, one character at a time (uppercase digits too if `upper_too`).
    fn is_uuid_text(b: &[u8], upper_too: bool) -> bool {
        b.len() == 36
            && b.iter().enumerate().all(|(i, &c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => {
                    c.is_ascii_digit()
                        || (b'a'..=b'f').contains(&c)
                        || (upper_too && (b'A'..=b'F').contains(&c))
                }
            })
    }

    #[test]
    fn uuid_texts_are_told_and_read_as_the_definition_says() {
        let good = *b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let bytes = [
            0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
            0xe1, 0xf0,
        ];
        assert_eq!(canonical_uuid(&good), Some(bytes));
        let upper = good.to_ascii_uppercase();
        assert_eq!(canonical_uuid(&upper), None);
        assert_eq!(uuid_text_bytes(&upper, true), Some(bytes));
        // ClickHouse's order: each 64-bit half little-endian.
        let stored = [
            0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f, 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5,
            0x96, 0x87,
        ];
        assert_eq!(uuid_bytes(&good), Some(stored));
        assert_eq!(uuid_bytes(&upper), Some(stored));
        // Every byte value at every place of the text, and the lengths around 36.
        for place in 0..good.len() {
            for byte in 0..=255u8 {
                let mut text = good;
                text[place] = byte;
                assert_eq!(
                    canonical_uuid(&text).is_some(),
                    is_uuid_text(&text, false),
                    "{text:?}"
                );
                assert_eq!(
                    uuid_bytes(&text).is_some(),
                    is_uuid_text(&text, true),
                    "{text:?}"
                );
            }
        }
        for text in [&good[..35], &[&good[..], b"0"].concat()[..], b""] {
            assert_eq!(canonical_uuid(text), None);
            assert_eq!(uuid_bytes(text), None);
        }
    }

    #[test]
    fn digests_of_many_payloads_are_each_ones_digest() {
        // Lengths around blake2b's 128-byte block and the SIMD lanes' count, and none.
        let payloads: Vec<Vec<u8>> = [0usize, 1, 63, 127, 128, 129, 255, 256, 394, 1000, 4097]
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|b| (b * 31 + i * 7) as u8).collect())
            .collect();
        for count in [0, 1, 3, 4, 5, 8, 11] {
            let chosen: Vec<&[u8]> = payloads.iter().take(count).map(Vec::as_slice).collect();
            let each: Vec<u64> = chosen.iter().map(|p| payload_digest(p)).collect();
            assert_eq!(payload_digests(&chosen), each);
        }
        // And the digest itself: blake2b with an 8-byte output, read big-endian (hashlib's
        // `blake2b(b"", digest_size=8)`).
        assert_eq!(payload_digest(b""), 0xe4a6_a057_7479_b2b4);
    }
}
