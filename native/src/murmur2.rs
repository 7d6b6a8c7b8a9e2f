//! Kafka's murmur2 (the Java client's `Utils.murmur2`, which the default partitioner hashes
//! record keys with), for the dead-letter producer's partitioner: aiokafka's is pure Python,
//! about 7.6 us per call_id key.

use pyo3::prelude::*;

/// murmur2 of `data` as the Java client computes it, as an unsigned 32-bit int (aiokafka's
/// `partitioner.murmur2` gives the same).
#[pyfunction]
#[pyo3(signature = (data, /))]
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}
