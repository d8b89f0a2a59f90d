//! A minimal protobuf writer for the per-request hot path: spans are encoded straight into one
//! buffer (static attribute keys, borrowed values, nested lengths computed up front) instead of
//! building message structs with a `String` per key and value. The bytes are standard OTLP
//! (`opentelemetry.proto.trace.v1.Span`); the tests decode them with the official types.

const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    varint(buf, u64::from((field << 3) | wire));
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

/// Length of a length-delimited field holding `payload` bytes.
pub fn len_field_len(field: u32, payload: usize) -> usize {
    key_len(field) + varint_len(payload as u64) + payload
}

/// The key and length prefix of a length-delimited field; the caller writes the payload.
pub fn len_prefix(buf: &mut Vec<u8>, field: u32, payload: usize) {
    key(buf, field, LEN);
    varint(buf, payload as u64);
}

pub fn bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    len_prefix(buf, field, data.len());
    buf.extend_from_slice(data);
}

pub fn varint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, VARINT);
    varint(buf, v);
}

pub fn fixed64_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, I64);
    buf.extend_from_slice(&v.to_le_bytes());
}

pub fn fixed32_field(buf: &mut Vec<u8>, field: u32, v: u32) {
    key(buf, field, I32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// An attribute value (`common.v1.AnyValue`).
pub enum Val<'a> {
    Str(&'a str),
    Int(i64),
    F64(f64),
    Bool(bool),
    Strs(&'a [std::borrow::Cow<'a, str>]),
}

fn str_any_len(s: &str) -> usize {
    len_field_len(1, s.len())
}

fn any_len(v: &Val<'_>) -> usize {
    match v {
        Val::Str(s) => str_any_len(s),
        Val::Int(i) => 1 + varint_len(*i as u64),
        Val::F64(_) => 1 + 8,
        Val::Bool(_) => 2,
        Val::Strs(list) => len_field_len(5, array_len(list)),
    }
}

fn array_len(list: &[std::borrow::Cow<'_, str>]) -> usize {
    list.iter().map(|s| len_field_len(1, str_any_len(s))).sum()
}

fn write_any(buf: &mut Vec<u8>, v: &Val<'_>) {
    match v {
        Val::Str(s) => bytes_field(buf, 1, s.as_bytes()),
        Val::Bool(b) => varint_field(buf, 2, u64::from(*b)),
        Val::Int(i) => varint_field(buf, 3, *i as u64),
        Val::F64(f) => fixed64_field(buf, 4, f.to_bits()),
        Val::Strs(list) => {
            len_prefix(buf, 5, array_len(list));
            for s in list.iter() {
                len_prefix(buf, 1, str_any_len(s));
                bytes_field(buf, 1, s.as_bytes());
            }
        }
    }
}

/// A `KeyValue` as repeated field `field` of the enclosing message (9 in `Span`).
pub fn attr(buf: &mut Vec<u8>, field: u32, k: &str, v: Val<'_>) {
    let any = any_len(&v);
    let kv = len_field_len(1, k.len()) + len_field_len(2, any);
    len_prefix(buf, field, kv);
    bytes_field(buf, 1, k.as_bytes());
    len_prefix(buf, 2, any);
    write_any(buf, &v);
}
