//! A snapshot as URL-fragment text: a format version byte, then the postcard encoding
//! compressed with zlib (whose checksum catches corruption), all in base64url. Decoding checks
//! every limit before it allocates, so a hostile fragment costs at most a few megabytes.
//!
//! Format 2 appends the trajectory labels and the KV-sharing setting after the snapshot; format 1
//! links end without them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use miniz_oxide::inflate::TINFLStatus;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{SharedLabel, Snapshot};

/// What a fragment starts with (after `#`) when it holds a snapshot.
pub const PREFIX: &str = "s=";
/// The format this page writes; it reads this one and every earlier one.
pub const VERSION: u8 = 2;
/// Longer fragments are refused before decoding (links this page makes are far shorter).
const MAX_TEXT: usize = 1 << 20;
/// The most a fragment may inflate to.
const MAX_INFLATED: usize = 8 << 20;

#[derive(Debug, Error, PartialEq)]
pub enum LinkError {
    #[error("the link's snapshot is empty")]
    Empty,
    #[error("the link's snapshot is {0} characters long, more than any link loopscope makes")]
    TooLong(usize),
    #[error(
        "the link's snapshot has characters that base64url does not use (was it cut or edited?)"
    )]
    NotBase64,
    #[error("the link was made by a newer loopscope (snapshot format {0}); this page reads format {VERSION}")]
    FutureVersion(u8),
    #[error("the link's snapshot is in an unknown format ({0})")]
    UnknownVersion(u8),
    #[error("the link's snapshot is truncated or corrupted (it does not decompress)")]
    Corrupted,
    #[error("the link's snapshot decompresses to more than {} MB", MAX_INFLATED >> 20)]
    TooLarge,
    #[error("the link's snapshot is truncated or corrupted: {0}")]
    Malformed(String),
    #[error("the link's snapshot is inconsistent: {0}")]
    Invalid(String),
}

/// What format 2 added, after the format 1 snapshot (so that format 1 links still read).
#[derive(Serialize, Deserialize)]
struct Additions {
    labels: Vec<SharedLabel>,
    /// KV-sharing slots; 0 for none.
    kv_share: u32,
}

pub fn encode(snapshot: &Snapshot) -> String {
    let mut body = postcard::to_allocvec(snapshot).expect("snapshots have no unsized fields");
    let additions = Additions {
        labels: snapshot
            .trace
            .as_ref()
            .map_or_else(Vec::new, |t| t.labels.clone()),
        kv_share: snapshot.settings.kv_share,
    };
    body.extend(postcard::to_allocvec(&additions).expect("additions have no unsized fields"));
    let mut bytes = vec![VERSION];
    bytes.extend(miniz_oxide::deflate::compress_to_vec_zlib(&body, 9));
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Snapshot, LinkError> {
    if text.len() > MAX_TEXT {
        return Err(LinkError::TooLong(text.len()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| LinkError::NotBase64)?;
    let (&version, compressed) = bytes.split_first().ok_or(LinkError::Empty)?;
    match version {
        1..=VERSION => {}
        v if v > VERSION => return Err(LinkError::FutureVersion(v)),
        v => return Err(LinkError::UnknownVersion(v)),
    }
    let body = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(compressed, MAX_INFLATED)
        .map_err(|e| match e.status {
            TINFLStatus::HasMoreOutput => LinkError::TooLarge,
            _ => LinkError::Corrupted,
        })?;
    let malformed = |e: postcard::Error| LinkError::Malformed(e.to_string());
    let (mut snapshot, mut rest) =
        postcard::take_from_bytes::<Snapshot>(&body).map_err(malformed)?;
    if version >= 2 {
        let additions: Additions;
        (additions, rest) = postcard::take_from_bytes(rest).map_err(malformed)?;
        snapshot.settings.kv_share = additions.kv_share;
        match &mut snapshot.trace {
            Some(trace) => trace.labels = additions.labels,
            None if !additions.labels.is_empty() => {
                return Err(LinkError::Invalid("labels without a trace".into()))
            }
            None => {}
        }
    }
    if !rest.is_empty() {
        return Err(LinkError::Malformed(format!(
            "{} bytes after the end",
            rest.len()
        )));
    }
    snapshot.check().map_err(LinkError::Invalid)?;
    Ok(snapshot)
}

/// The snapshot text in a URL fragment (`#s=…`), if it holds one.
pub fn payload(fragment: &str) -> Option<&str> {
    fragment.trim_start_matches('#').strip_prefix(PREFIX)
}
