//! JSON read from bytes, as webhook bodies and stored events arrive.

use serde::de::DeserializeOwned;

/// Parses JSON bytes into `T`, checking UTF-8 once for the whole input:
/// a parse of bytes checks every string on its own, which costs more
/// than the rest of the parse. Input that is not UTF-8 is parsed as bytes
/// so that the error says where it goes wrong.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}
