//! A table's dict rows in ClickHouse's RowBinary (worker/adapters/clickhouse/values.py says
//! why: the writer's thread spent 3-5 us per row on their JSON, under the GIL, and ClickHouse
//! parses RowBinary for about half of what JSON costs it).
//!
//! The contract is the JSON path's: a block encoded here must store exactly the values the
//! JSONEachRow body of the same rows would. So `encode` answers None, and the caller sends
//! JSON, for every row it cannot be sure of: a missing or unknown column, a None in a column
//! that is not Nullable, a value of another Python type than the column's usual one, a value
//! out of the column's range. Those go the JSON way and fail (or not) exactly as before.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDateTime, PyDelta, PyDeltaAccess, PyDict, PyInt, PyList, PyString, PyTuple,
    PyTzInfoAccess,
};

use crate::call_event_row::{clickhouse_uuid, uuid_bytes};
use crate::native_block::Layout;
use crate::wall_micros;

/// Milliseconds of 2106-01-01T00:00:00Z: the end of the times the contract accepts (TIME_MAX).
const MILLIS_MAX: i64 = 4_291_747_200_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Base {
    String,
    Uuid,
    /// DateTime64(3): milliseconds since the epoch.
    Millis,
    /// Decimal(P, S) with P <= 18: the value times 10^S as an Int64.
    Decimal64 {
        precision: u32,
        scale: u32,
    },
    Int32,
    Int64,
    UInt8,
    UInt32,
    UInt64,
    Bool,
    /// Array(String) or Array(LowCardinality(String)).
    Strings,
}

impl Base {
    /// How a value of this type is laid out (the same in RowBinary and in Native).
    fn layout(self) -> Layout {
        match self {
            Base::String => Layout::String,
            Base::Strings => Layout::Strings,
            Base::Uuid => Layout::Fixed(16),
            Base::Millis | Base::Decimal64 { .. } | Base::Int64 | Base::UInt64 => Layout::Fixed(8),
            Base::Int32 | Base::UInt32 => Layout::Fixed(4),
            Base::UInt8 | Base::Bool => Layout::Fixed(1),
        }
    }
}

/// The layout of a column of type `kind` and whether it is Nullable, for the types this
/// encoder writes (None for the others).
pub fn layout_of(kind: &str) -> Option<(Layout, bool)> {
    parse_type(kind).map(|(base, nullable)| (base.layout(), nullable))
}

struct Column {
    name: Py<PyString>,
    base: Base,
    nullable: bool,
}

/// Encodes the rows of one table, its columns in the table's order.
#[pyclass(frozen, module = "ringlog_native")]
pub struct RowBinaryEncoder {
    columns: Vec<Column>,
    decimal: Py<PyAny>,
    uuid: Py<PyAny>,
    utc: Py<PyAny>,
}

#[pymethods]
impl RowBinaryEncoder {
    /// `columns`: (name, ClickHouse type) in the table's order. ValueError names a type this
    /// encoder does not write (that table's rows then always go as JSON).
    #[new]
    #[pyo3(signature = (columns, /))]
    fn new(py: Python<'_>, columns: Vec<(String, String)>) -> PyResult<Self> {
        let columns = columns
            .into_iter()
            .map(|(name, kind)| {
                let (base, nullable) = parse_type(&kind).ok_or_else(|| {
                    PyValueError::new_err(format!("column {name}: RowBinary of {kind} not written"))
                })?;
                Ok(Column {
                    name: PyString::intern(py, &name).unbind(),
                    base,
                    nullable,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self {
            columns,
            decimal: py.import("decimal")?.getattr("Decimal")?.unbind(),
            uuid: py.import("uuid")?.getattr("UUID")?.unbind(),
            utc: py.import("datetime")?.getattr("UTC")?.unbind(),
        })
    }

    /// The rows (dicts) in RowBinary, or None where the JSON path must encode them.
    #[pyo3(signature = (rows, /))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut out = Vec::with_capacity(256);
        let context = Context {
            decimal: self.decimal.bind(py),
            uuid: self.uuid.bind(py),
            utc: self.utc.bind(py),
        };
        for row in rows.try_iter()? {
            let row = row?;
            let Ok(row) = row.downcast::<PyDict>() else {
                return Ok(None);
            };
            if row.len() != self.columns.len() {
                return Ok(None); // a column missing (its default) or unknown (refused)
            }
            for column in &self.columns {
                let Some(value) = row.get_item(column.name.bind(py))? else {
                    return Ok(None);
                };
                if value.is_none() {
                    if !column.nullable {
                        return Ok(None);
                    }
                    out.push(1);
                    continue;
                }
                if column.nullable {
                    out.push(0);
                }
                if write_value(&mut out, column.base, &value, &context)?.is_none() {
                    return Ok(None);
                }
            }
        }
        Ok(Some(PyBytes::new(py, &out)))
    }
}

struct Context<'a, 'py> {
    decimal: &'a Bound<'py, PyAny>,
    uuid: &'a Bound<'py, PyAny>,
    utc: &'a Bound<'py, PyAny>,
}

/// Writes `value` as `base`; Ok(None) if it is not a value written here.
fn write_value(
    out: &mut Vec<u8>,
    base: Base,
    value: &Bound<'_, PyAny>,
    context: &Context<'_, '_>,
) -> PyResult<Option<()>> {
    match base {
        Base::String => {
            let Some(text) = text_of(value) else {
                return Ok(None);
            };
            put_string(out, text.as_bytes());
        }
        Base::Uuid => {
            let bytes = if let Ok(text) = value.downcast_exact::<PyString>() {
                text.to_str().ok().and_then(|t| uuid_bytes(t.as_bytes()))
            } else if let Ok(raw) = value.downcast_exact::<PyBytes>() {
                uuid_of_raw(raw.as_bytes())
            } else if value.get_type().is(context.uuid) {
                let raw = value.getattr("bytes")?;
                raw.downcast_exact::<PyBytes>()
                    .ok()
                    .and_then(|raw| uuid_of_raw(raw.as_bytes()))
            } else {
                None
            };
            let Some(bytes) = bytes else {
                return Ok(None);
            };
            out.extend_from_slice(&bytes);
        }
        Base::Millis => {
            let Some(millis) = millis_of(value, context.utc)? else {
                return Ok(None);
            };
            out.extend_from_slice(&millis.to_le_bytes());
        }
        Base::Decimal64 { precision, scale } => {
            if !value.is_instance(context.decimal)? {
                return Ok(None);
            }
            let text = value.str()?;
            let Some(scaled) = scaled_half_up(text.to_str()?, scale) else {
                return Ok(None);
            };
            if scaled.unsigned_abs() >= 10u128.pow(precision) {
                return Ok(None);
            }
            out.extend_from_slice(&(scaled as i64).to_le_bytes());
        }
        Base::Int32 => match int_of(value, i32::MIN.into(), i32::MAX.into()) {
            Some(n) => out.extend_from_slice(&(n as i32).to_le_bytes()),
            None => return Ok(None),
        },
        Base::Int64 => match int_of(value, i64::MIN.into(), i64::MAX.into()) {
            Some(n) => out.extend_from_slice(&(n as i64).to_le_bytes()),
            None => return Ok(None),
        },
        Base::UInt8 => match int_of(value, 0, u8::MAX.into()) {
            Some(n) => out.push(n as u8),
            None => return Ok(None),
        },
        Base::UInt32 => match int_of(value, 0, u32::MAX.into()) {
            Some(n) => out.extend_from_slice(&(n as u32).to_le_bytes()),
            None => return Ok(None),
        },
        Base::UInt64 => match int_of(value, 0, u64::MAX.into()) {
            Some(n) => out.extend_from_slice(&(n as u64).to_le_bytes()),
            None => return Ok(None),
        },
        Base::Bool => {
            let Ok(flag) = value.downcast_exact::<PyBool>() else {
                return Ok(None);
            };
            out.push(u8::from(flag.is_true()));
        }
        Base::Strings => {
            let items = if let Ok(list) = value.downcast_exact::<PyList>() {
                list.iter().collect::<Vec<_>>()
            } else if let Ok(tuple) = value.downcast_exact::<PyTuple>() {
                tuple.iter().collect::<Vec<_>>()
            } else {
                return Ok(None);
            };
            put_varint(out, items.len() as u64);
            for item in &items {
                let Some(text) = text_of(item) else {
                    return Ok(None);
                };
                put_string(out, text.as_bytes());
            }
        }
    }
    Ok(Some(()))
}

/// The text of an exact str; None for a lone surrogate (orjson refuses it).
fn text_of<'a>(value: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    let text = value.downcast_exact::<PyString>().ok()?;
    text.to_str().ok().map(std::borrow::Cow::Borrowed)
}

/// An int (not a bool) within `min..=max`.
fn int_of(value: &Bound<'_, PyAny>, min: i128, max: i128) -> Option<i128> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return None;
    }
    let number = match value.extract::<i64>() {
        Ok(number) => i128::from(number),
        Err(_) => i128::from(value.extract::<u64>().ok()?), // beyond 64 bits: not stored
    };
    (min..=max).contains(&number).then_some(number)
}

/// 16 raw bytes of a UUID (big-endian, as `uuid.UUID.bytes`) as ClickHouse stores them.
fn uuid_of_raw(raw: &[u8]) -> Option<[u8; 16]> {
    raw.try_into().ok().map(clickhouse_uuid)
}

/// Milliseconds since the epoch of a datetime (naive: UTC), truncated as ClickHouse truncates
/// the JSON path's microseconds; None outside 1970..2106 or for an offset Python cannot give.
fn millis_of(value: &Bound<'_, PyAny>, utc: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    let Ok(time) = value.downcast_exact::<PyDateTime>() else {
        return Ok(None);
    };
    let mut micros = wall_micros(time);
    if let Some(zone) = time.get_tzinfo() {
        if !zone.is(utc) {
            let offset = time.call_method0("utcoffset")?;
            let Ok(offset) = offset.downcast::<PyDelta>() else {
                return Ok(None);
            };
            let offset_micros = (i64::from(offset.get_days()) * 86_400
                + i64::from(offset.get_seconds()))
                * 1_000_000
                + i64::from(offset.get_microseconds());
            micros -= offset_micros;
        }
    }
    let millis = micros.div_euclid(1000);
    Ok((0..MILLIS_MAX).contains(&millis).then_some(millis))
}

/// `str(Decimal)` times 10^scale, rounded half away from zero (Python's ROUND_HALF_UP, as
/// values._decimal_converter rounds). None for NaN and infinities, and at 10^19 or more (no
/// Decimal64 holds it).
fn scaled_half_up(text: &str, scale: u32) -> Option<i128> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['E', 'e']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = whole.as_bytes().iter().chain(fraction.as_bytes());
    if whole.is_empty() && fraction.is_empty() || !digits.clone().all(u8::is_ascii_digit) {
        return None; // NaN, Infinity
    }
    // The significant digits D: the value is D * 10^shift, the scaled one D * 10^(shift + scale).
    let significant: Vec<u8> = digits.copied().skip_while(|&c| c == b'0').collect();
    let shift = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let places = shift.checked_add(i64::from(scale))?;
    let length = i64::try_from(significant.len()).ok()?;
    // Digits kept before the decimal point of the scaled value, then the first one dropped.
    let kept = length.checked_add(places)?;
    if kept > 19 {
        return None;
    }
    let mut scaled: u128 = 0;
    for i in 0..kept.max(0) {
        let digit = significant.get(i as usize).map_or(0, |c| c - b'0');
        scaled = scaled * 10 + u128::from(digit);
    }
    let dropped = usize::try_from(kept)
        .ok()
        .and_then(|at| significant.get(at));
    if kept >= 0 && dropped.is_some_and(|&c| c >= b'5') {
        scaled += 1;
    }
    let scaled = i128::try_from(scaled).ok()?;
    Some(if negative { -scaled } else { scaled })
}

/// The RowBinary kind of a ClickHouse type, and whether it is Nullable.
fn parse_type(kind: &str) -> Option<(Base, bool)> {
    let kind = kind.trim();
    let kind = unwrap(kind, "LowCardinality(").unwrap_or(kind);
    let (kind, nullable) = match unwrap(kind, "Nullable(") {
        Some(inner) => (inner, true),
        None => (kind, false),
    };
    let base = match kind {
        "String" => Base::String,
        "UUID" => Base::Uuid,
        "Int32" => Base::Int32,
        "Int64" => Base::Int64,
        "UInt8" => Base::UInt8,
        "UInt32" => Base::UInt32,
        "UInt64" => Base::UInt64,
        "Bool" => Base::Bool,
        "DateTime64(3, 'UTC')" | "DateTime64(3)" => Base::Millis,
        "Array(String)" | "Array(LowCardinality(String))" => Base::Strings,
        _ => {
            let inner = unwrap(kind, "Decimal(")?;
            let (precision, scale) = inner.split_once(',')?;
            let precision: u32 = precision.trim().parse().ok()?;
            let scale: u32 = scale.trim().parse().ok()?;
            if !(10..=18).contains(&precision) || scale > precision {
                return None;
            }
            Base::Decimal64 { precision, scale }
        }
    };
    if nullable && base == Base::Strings {
        return None;
    }
    Some((base, nullable))
}

/// `inner` of `prefix` + `inner` + ")".
fn unwrap<'a>(kind: &'a str, prefix: &str) -> Option<&'a str> {
    kind.strip_prefix(prefix)?.strip_suffix(')')
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}
