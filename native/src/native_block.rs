//! RowBinary rows turned column-wise: one block of ClickHouse's Native format.
//!
//! Why: ClickHouse parses RowBinary value by value, and it is the larger part of an insert's
//! cost. Measured in chDB 4.4 on the benchmark's call_event rows (538 bytes each), into a Null
//! table: 1.8-2.8 us per row from RowBinary, 0.4-0.6 from Native; into the ReplacingMergeTree
//! table: 4.8-5.9 against 2.7-3.8 us. Native is read a column at a time.
//!
//! The block declares each column's type without `LowCardinality` (a `String` column for a
//! `LowCardinality(String)` one): ClickHouse converts it while reading the block
//! (`input_format_native_allow_types_conversion`, on by default), which measured the same as
//! sending the dictionary encoding, and keeps this writer to plain columns.
//!
//! The rows are the ones `RowBinaryEncoder::encode` or the decoder's call_event rows write, so
//! the layouts here are only theirs: fixed-width values, strings, `Nullable` of either, and
//! arrays of strings. A body that does not hold exactly `rows` rows of the columns is refused.

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::row_binary::{layout_of, put_string, put_varint};

/// Turns RowBinary rows of some columns, in a given order, into Native blocks.
#[pyclass(frozen, module = "ringlog_native")]
pub struct NativeBlockWriter {
    columns: Vec<NativeColumn>,
    /// The columns' buffers and `block_of_rows`' body, kept from one block to the next
    /// (emptied, not freed): a batch's call_event block is megabytes, and fresh memory costs
    /// a page fault per 4 KiB, the kernel zeroing each page (perf 2026-12-05: the buffers were
    /// 70% of the writer's own faults and the join of the call_event rows 25%, ~3 us each on
    /// this host). Held as large as the largest block written yet (up to KEEP_MAX); a call
    /// that finds them in use (another thread's block) takes fresh ones.
    kept: Mutex<Kept>,
}

/// What a writer keeps between blocks.
#[derive(Default)]
struct Kept {
    /// `block_of_rows`' rows joined into one body.
    body: Vec<u8>,
    buffers: Vec<Buffers>,
}

impl Kept {
    fn capacity(&self) -> usize {
        self.body.capacity() + self.buffers.iter().map(Buffers::capacity).sum::<usize>()
    }
}

/// The most memory a writer keeps for its next block (a worker's batch of 20,000 events
/// makes a call_event block of about 10 MiB; a larger one-off block, e.g. a rebuild's, is
/// not held for the rest of the process).
const KEEP_MAX: usize = 64 << 20;

#[pymethods]
impl NativeBlockWriter {
    /// `columns`: (name, ClickHouse type) in the order of the rows' values. ValueError names a
    /// type whose layout is not one of `RowBinaryEncoder`'s.
    #[new]
    #[pyo3(signature = (columns, /))]
    fn new(columns: Vec<(String, String)>) -> PyResult<Self> {
        let columns = columns
            .iter()
            .map(|(name, kind)| {
                let (layout, nullable) = layout_of(kind).ok_or_else(|| {
                    PyValueError::new_err(format!("column {name}: Native of {kind} not written"))
                })?;
                Ok(NativeColumn::new(name, kind, layout, nullable))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self {
            columns,
            kept: Mutex::new(Kept::default()),
        })
    }

    /// `body`, the RowBinary of `rows` rows of the columns, as one Native block. The GIL is
    /// released while the values are copied into their columns and while the block is written
    /// into the bytes object (it runs on the writer's thread). ValueError names the row and
    /// the column where `body` is not such rows.
    #[pyo3(signature = (body, rows, /))]
    fn block<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyBytes>,
        rows: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.with_kept(|kept| self.write(py, body.as_bytes(), rows, &mut kept.buffers))
    }

    /// `block` of the body that is each of `rows` (each the RowBinary of a row but for its
    /// last columns) followed by `suffix` (those columns' values, the same for every row):
    /// the rows are joined into a body the writer keeps, not into a new bytes object.
    #[pyo3(signature = (rows, suffix, /))]
    fn block_of_rows<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyList>,
        suffix: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let parts = rows
            .iter()
            .map(|row| row.downcast_into::<PyBytes>())
            .collect::<Result<Vec<_>, _>>()?;
        let slices: Vec<&[u8]> = parts.iter().map(|row| row.as_bytes()).collect();
        self.with_kept(|Kept { body, buffers }| {
            py.allow_threads(|| {
                body.clear();
                body.reserve(slices.iter().map(|row| row.len() + suffix.len()).sum());
                for row in &slices {
                    body.extend_from_slice(row);
                    body.extend_from_slice(suffix);
                }
            });
            self.write(py, body, slices.len(), buffers)
        })
    }
}

impl NativeBlockWriter {
    /// `run` with the writer's kept buffers, or fresh ones if another thread is using them;
    /// kept again unless they grew past KEEP_MAX.
    fn with_kept<T>(&self, run: impl FnOnce(&mut Kept) -> T) -> T {
        let mut kept = self.kept.try_lock().ok();
        let mut fresh = Kept::default();
        let kept = kept.as_deref_mut().unwrap_or(&mut fresh);
        let out = run(kept);
        if kept.capacity() > KEEP_MAX {
            *kept = Kept::default(); // a block far larger than a batch's: not kept
        }
        out
    }

    /// The Native block of `body` (`rows` RowBinary rows), its columns read into `buffers`.
    fn write<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        rows: usize,
        buffers: &mut Vec<Buffers>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let columns = &self.columns;
        py.allow_threads(|| read_columns(columns, body, rows, buffers))
            .map_err(|at| {
                PyValueError::new_err(format!(
                    "RowBinary body is not {rows} rows of the columns: row {}, column {}",
                    at.row, at.column
                ))
            })?;
        let header = header(columns, rows);
        let size = block_size(&header, columns, buffers);
        bytes_written_without_gil(py, size, |out| write_block(&header, columns, buffers, out))
    }
}

/// A bytes object of `len` bytes, made with the GIL held and filled by `fill` with it let go.
/// Not `PyBytes::new_with`, which zeroes the buffer before filling it, under the GIL: a block
/// of megabytes is fresh memory, so that first touch is a page fault per 4 KiB (3-8 us each
/// on this project's hosts), and the event loop's thread waited for the GIL meanwhile (the
/// zeroing is C code, which never hands it over).
fn bytes_written_without_gil<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) + Send,
) -> PyResult<Bound<'py, PyBytes>> {
    /// The bytes object's buffer, handed to the thread that fills it while the object (owned
    /// by this frame, not yet shared) stays where it is.
    struct Buffer(*mut u8, usize);
    // SAFETY: nothing else can reach the buffer of a bytes object no one else holds yet.
    unsafe impl Send for Buffer {}
    impl Buffer {
        // Taken whole (a closure would otherwise capture the bare pointer, which is not Send).
        fn parts(self) -> (*mut u8, usize) {
            (self.0, self.1)
        }
    }
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err("block too large"))?;
    // SAFETY: a NULL source makes an uninitialised bytes object of `len` bytes (plus its NUL),
    // owned here; its buffer is zeroed before any reference to it is made, then filled.
    unsafe {
        let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let bytes = Bound::from_owned_ptr_or_err(py, ptr)?.downcast_into_unchecked::<PyBytes>();
        let buffer = Buffer(pyo3::ffi::PyBytes_AsString(ptr).cast::<u8>(), len);
        py.allow_threads(move || {
            let (at, len) = buffer.parts();
            std::ptr::write_bytes(at, 0, len);
            fill(std::slice::from_raw_parts_mut(at, len));
        });
        Ok(bytes)
    }
}

/// How one column's values are laid out, in RowBinary and in Native alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// A fixed number of little-endian bytes per value (integers, UUID, DateTime64, Decimal).
    Fixed(usize),
    /// A varint length, then the bytes.
    String,
    /// A varint count, then that many strings (RowBinary); offsets, then the strings (Native).
    Strings,
}

/// One column of a Native block: its name, its layout, and its description (the name and the
/// declared type) as the block writes it.
#[derive(Clone, Debug)]
pub struct NativeColumn {
    pub name: String,
    pub layout: Layout,
    pub nullable: bool,
    /// The column's description in a block: its name, then its declared type.
    described: Vec<u8>,
}

impl NativeColumn {
    pub fn new(name: &str, kind: &str, layout: Layout, nullable: bool) -> Self {
        let declared = without_low_cardinality(kind.trim());
        let mut described = Vec::new();
        put_string(&mut described, name.as_bytes());
        put_string(&mut described, declared.as_bytes());
        Self {
            name: name.to_owned(),
            layout,
            nullable,
            described,
        }
    }
}

/// Where a body stopped making sense, for the ValueError the caller raises.
#[derive(Debug, PartialEq)]
pub struct Malformed {
    pub row: usize,
    pub column: String,
}

/// One column's values, as Native lays them out.
#[derive(Default)]
pub struct Buffers {
    nulls: Vec<u8>,
    offsets: Vec<u8>,
    data: Vec<u8>,
    count: u64,
}

impl Buffers {
    fn capacity(&self) -> usize {
        self.nulls.capacity() + self.offsets.capacity() + self.data.capacity()
    }

    /// Empty, its memory kept.
    fn clear(&mut self) {
        self.nulls.clear();
        self.offsets.clear();
        self.data.clear();
        self.count = 0;
    }
}

/// `body`, the RowBinary of `rows` rows of `columns`, as one Native block.
#[cfg(test)]
pub fn transpose(columns: &[NativeColumn], body: &[u8], rows: usize) -> Result<Vec<u8>, Malformed> {
    let mut parsed = Vec::new();
    read_columns(columns, body, rows, &mut parsed)?;
    let header = header(columns, rows);
    let mut out = vec![0; block_size(&header, columns, &parsed)];
    write_block(&header, columns, &parsed, &mut out);
    Ok(out)
}

/// Each column's values of the `rows` rows in `body` into `buffers` (one per column once
/// done; what they held is dropped, their memory kept), or where `body` is not such rows.
pub fn read_columns(
    columns: &[NativeColumn],
    body: &[u8],
    rows: usize,
    buffers: &mut Vec<Buffers>,
) -> Result<(), Malformed> {
    if !columns.is_empty() && rows > body.len() {
        // every value takes a byte at least: refused before anything is sized by `rows`
        return Err(Malformed {
            row: body.len(),
            column: columns[0].name.clone(),
        });
    }
    buffers.resize_with(columns.len(), Buffers::default);
    for (column, buffer) in columns.iter().zip(buffers.iter_mut()) {
        buffer.clear();
        buffer.nulls.reserve(if column.nullable { rows } else { 0 });
        buffer.data.reserve(match column.layout {
            Layout::Fixed(width) => width * rows,
            _ => body.len() / columns.len(),
        });
    }
    let mut reader = Reader { body, at: 0 };
    for row in 0..rows {
        for (column, buffer) in columns.iter().zip(buffers.iter_mut()) {
            let malformed = || Malformed {
                row,
                column: column.name.clone(),
            };
            if column.nullable {
                let flag = reader.byte().ok_or_else(malformed)?;
                buffer.nulls.push(flag);
                match flag {
                    0 => {}
                    1 => {
                        // Native keeps a place for every row: the type's default under the null
                        match column.layout {
                            Layout::Fixed(width) => {
                                buffer.data.resize(buffer.data.len() + width, 0)
                            }
                            Layout::String => buffer.data.push(0),
                            Layout::Strings => return Err(malformed()),
                        }
                        continue;
                    }
                    _ => return Err(malformed()),
                }
            }
            match column.layout {
                Layout::Fixed(width) => {
                    buffer
                        .data
                        .extend_from_slice(reader.take(width).ok_or_else(malformed)?);
                }
                Layout::String => reader.copy_string(&mut buffer.data).ok_or_else(malformed)?,
                Layout::Strings => {
                    let count = reader.varint().ok_or_else(malformed)?;
                    for _ in 0..count {
                        reader.copy_string(&mut buffer.data).ok_or_else(malformed)?;
                    }
                    buffer.count += count;
                    buffer
                        .offsets
                        .extend_from_slice(&buffer.count.to_le_bytes());
                }
            }
        }
    }
    if reader.at != body.len() {
        return Err(Malformed {
            row: rows,
            column: "(bytes after the last row)".to_owned(),
        });
    }
    Ok(())
}

/// A block's header: its number of columns, then of rows.
pub fn header(columns: &[NativeColumn], rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    put_varint(&mut out, columns.len() as u64);
    put_varint(&mut out, rows as u64);
    out
}

/// The size of the block `write_block` writes.
pub fn block_size(header: &[u8], columns: &[NativeColumn], buffers: &[Buffers]) -> usize {
    header.len()
        + columns
            .iter()
            .zip(buffers)
            .map(|(c, b)| c.described.len() + b.nulls.len() + b.offsets.len() + b.data.len())
            .sum::<usize>()
}

/// The block: the header, then each column (its name, its declared type, its values).
/// `out` is exactly `block_size` long.
pub fn write_block(header: &[u8], columns: &[NativeColumn], buffers: &[Buffers], out: &mut [u8]) {
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(header);
    for (column, buffer) in columns.iter().zip(buffers) {
        put(&column.described);
        // Nullable: the null map, then the values; Array: the offsets, then the elements.
        put(&buffer.nulls);
        put(&buffer.offsets);
        put(&buffer.data);
    }
}

/// `kind` with every `LowCardinality(T)` written as `T`.
pub fn without_low_cardinality(kind: &str) -> String {
    const WRAPPER: &str = "LowCardinality(";
    let mut text = kind.to_owned();
    while let Some(start) = text.find(WRAPPER) {
        let inner = start + WRAPPER.len();
        let mut depth = 1;
        let mut end = None;
        for (i, c) in text[inner..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(inner + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        text = format!(
            "{}{}{}",
            &text[..start],
            &text[inner..end],
            &text[end + 1..]
        );
    }
    text
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.body.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.body.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// One string (its varint length and bytes), copied as it is: the layout is the same.
    fn copy_string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.at;
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)?;
        out.extend_from_slice(&self.body[start..self.at]);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_cardinality_is_unwrapped_at_any_depth() {
        assert_eq!(without_low_cardinality("LowCardinality(String)"), "String");
        assert_eq!(
            without_low_cardinality("LowCardinality(Nullable(String))"),
            "Nullable(String)"
        );
        assert_eq!(
            without_low_cardinality("Array(LowCardinality(String))"),
            "Array(String)"
        );
        assert_eq!(
            without_low_cardinality("DateTime64(3, 'UTC')"),
            "DateTime64(3, 'UTC')"
        );
    }

    #[test]
    fn rows_become_columns() {
        let columns = [
            NativeColumn::new("n", "Nullable(UInt32)", Layout::Fixed(4), true),
            NativeColumn::new("s", "LowCardinality(String)", Layout::String, false),
            NativeColumn::new("a", "Array(String)", Layout::Strings, false),
        ];
        // (7, "ab", ["x"]), (NULL, "", [])
        let body = [0, 7, 0, 0, 0, 2, b'a', b'b', 1, 1, b'x', 1, 0, 0];
        let block = transpose(&columns, &body, 2).unwrap();
        let mut expected = vec![3, 2];
        expected.extend_from_slice(b"\x01n\x10Nullable(UInt32)\x00\x01");
        expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"\x01s\x06String\x02ab\x00");
        expected.extend_from_slice(b"\x01a\x0dArray(String)");
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(b"\x01x");
        assert_eq!(block, expected);
    }

    #[test]
    fn a_body_of_other_rows_is_refused() {
        let columns = [NativeColumn::new("v", "UInt64", Layout::Fixed(8), false)];
        assert!(transpose(&columns, &[0; 8], 2).is_err()); // too short
        assert!(transpose(&columns, &[0; 9], 1).is_err()); // bytes left over
        let nullable = [NativeColumn::new(
            "v",
            "Nullable(UInt8)",
            Layout::Fixed(1),
            true,
        )];
        assert!(transpose(&nullable, &[2, 0], 1).is_err()); // not a null flag
                                                            // more rows than the body has bytes: refused before anything is sized by `rows`
        assert!(transpose(&nullable, &[], usize::MAX).is_err());
        assert!(transpose(&columns, &[0; 8], 1 << 40).is_err());
    }
}
