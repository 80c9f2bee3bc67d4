//! rkyv encoding of log records and the manifest, always validated on decode:
//! bytes read from disk are untrusted.

use rkyv::rancor;
use rkyv::util::AlignedVec;

/// Serialize to rkyv bytes; `Err` carries the reason (allocation failure).
pub(crate) fn encode<T>(value: &T) -> Result<AlignedVec, String>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
    >,
{
    rkyv::to_bytes::<rancor::Error>(value).map_err(|e| e.to_string())
}

/// Validate and deserialize rkyv bytes; `Err` carries the reason.
pub(crate) fn decode<T>(bytes: &[u8]) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    // rkyv needs the root aligned; a copy into an aligned buffer is cheap next
    // to the I/O that produced the bytes.
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| e.to_string())
}
