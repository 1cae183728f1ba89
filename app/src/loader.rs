//! Getting a model folder's files into memory: over HTTP with download progress, kept in the
//! browser's Cache API so a second visit does not download again, or from files the user picks.

use std::collections::HashMap;

use js_sys::{Reflect, Uint8Array};
use loopscope_engine::weights::{shard_names, INDEX_FILE, SINGLE_FILE};
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, FileList, Request, RequestInit, Response, ResponseInit};

/// The folder's files besides the weights; the tokenizer is required to turn a prompt into
/// tokens. The weights are `model.safetensors`, or the shards `model.safetensors.index.json` names.
const FOLDER_FILES: [&str; 2] = ["config.json", "tokenizer.json"];
const CACHE_NAME: &str = "loopscope-models";
/// Header stored with a cached file: the server's validator when it was downloaded.
const VALIDATOR_HEADER: &str = "x-loopscope-validator";

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{url} answered {status} {status_text}")]
    Http {
        url: String,
        status: u16,
        status_text: String,
    },
    #[error("cannot reach {url}: {message}")]
    Network { url: String, message: String },
    #[error("choose the folder's files: {missing} is missing")]
    MissingFile { missing: String },
    #[error("the browser refused: {0}")]
    Browser(String),
    #[error("not a model folder: {0}")]
    Index(String),
}

fn browser(e: JsValue) -> LoadError {
    LoadError::Browser(format!("{e:?}"))
}

/// Bytes arrived so far out of the total the server announced (0 while unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    pub loaded: u64,
    pub total: u64,
}

/// Files by name, and whether every one came from the browser cache.
pub struct Fetched {
    pub files: HashMap<String, Vec<u8>>,
    pub from_cache: bool,
}

/// Downloads the folder at `base` (with or without a trailing slash), reporting progress.
pub async fn fetch_folder(
    base: &str,
    on_progress: impl Fn(Progress),
) -> Result<Fetched, LoadError> {
    let base = base.trim_end_matches('/');
    let cache = open_cache().await;
    let mut names: Vec<String> = FOLDER_FILES.map(String::from).to_vec();
    let mut files = HashMap::new();
    let mut from_cache = true;
    // Sharded weights come with an index naming the shards; without one, a single file.
    let index_url = format!("{base}/{INDEX_FILE}");
    match open(&index_url, cache.as_ref()).await {
        // Servers that answer every unknown path with the page itself (single-page fallbacks,
        // `trunk serve` among them) mean: no index here.
        Ok(index) if is_html(&index.response) => names.push(SINGLE_FILE.to_string()),
        Ok(index) => {
            let bytes = keep(&index, &index_url, cache.as_ref(), |_| {}).await?;
            from_cache &= index.cached;
            names.extend(shard_names(&bytes).map_err(|e| LoadError::Index(e.to_string()))?);
            files.insert(INDEX_FILE.to_string(), bytes);
        }
        Err(LoadError::Http { status: 404, .. }) => names.push(SINGLE_FILE.to_string()),
        Err(e) => return Err(e),
    }
    let mut sources = Vec::new();
    for name in names {
        let url = format!("{base}/{name}");
        let source = open(&url, cache.as_ref()).await?;
        sources.push((name, url, source));
    }
    let total = sources.iter().map(|(_, _, s)| s.length).sum();
    let mut progress = Progress { loaded: 0, total };
    on_progress(progress);
    for (name, url, source) in sources {
        let bytes = keep(&source, &url, cache.as_ref(), |n| {
            progress.loaded += n;
            on_progress(progress);
        })
        .await?;
        from_cache &= source.cached;
        files.insert(name, bytes);
    }
    Ok(Fetched { files, from_cache })
}

/// Reads `source` and puts a fresh download in the cache.
async fn keep(
    source: &Source,
    url: &str,
    cache: Option<&Cache>,
    on_chunk: impl FnMut(u64),
) -> Result<Vec<u8>, LoadError> {
    let bytes = read_body(&source.response, source.length, on_chunk).await?;
    if let (Some(cache), false) = (cache, source.cached) {
        store(cache, url, &bytes, source.validator.as_deref()).await;
    }
    Ok(bytes)
}

/// Reads the files a user picked (a folder's `config.json`, `tokenizer.json` and weights).
pub async fn read_picked(list: &FileList) -> Result<HashMap<String, Vec<u8>>, LoadError> {
    let mut files = HashMap::new();
    for i in 0..list.length() {
        let Some(file) = list.item(i) else { continue };
        let buffer = JsFuture::from(file.array_buffer()).await.map_err(browser)?;
        files.insert(file.name(), Uint8Array::new(&buffer).to_vec());
    }
    for name in ["config.json", "tokenizer.json"] {
        if !files.contains_key(name) {
            return Err(LoadError::MissingFile {
                missing: name.into(),
            });
        }
    }
    Ok(files)
}

struct Source {
    response: Response,
    cached: bool,
    /// What identifies this version of the file on the server, if it said.
    validator: Option<String>,
    length: u64,
}

/// The cached copy when the server still has that version, else a fresh download.
async fn open(url: &str, cache: Option<&Cache>) -> Result<Source, LoadError> {
    let window = web_sys::window().ok_or_else(|| LoadError::Browser("no window".into()))?;
    let cached = match cache {
        Some(cache) => JsFuture::from(cache.match_with_str(url))
            .await
            .ok()
            .and_then(|r| r.dyn_into::<Response>().ok()),
        None => None,
    };
    if let Some(cached) = cached {
        // A HEAD request costs no download; when it fails (offline) the cached copy is used.
        let stored = cached.headers().get(VALIDATOR_HEADER).ok().flatten();
        let current = head_validator(url).await;
        if current.is_none() || current == stored {
            let length = content_length(&cached);
            return Ok(Source {
                response: cached,
                cached: true,
                validator: stored,
                length,
            });
        }
    }
    let response: Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| LoadError::Network {
            url: url.into(),
            message: js_message(&e),
        })?
        .dyn_into()
        .map_err(browser)?;
    if !response.ok() {
        return Err(LoadError::Http {
            url: url.into(),
            status: response.status(),
            status_text: response.status_text(),
        });
    }
    Ok(Source {
        validator: validator(&response),
        length: content_length(&response),
        response,
        cached: false,
    })
}

async fn head_validator(url: &str) -> Option<String> {
    let init = RequestInit::new();
    init.set_method("HEAD");
    let request = Request::new_with_str_and_init(url, &init).ok()?;
    let response: Response = JsFuture::from(web_sys::window()?.fetch_with_request(&request))
        .await
        .ok()?
        .dyn_into()
        .ok()?;
    response.ok().then(|| validator(&response)).flatten()
}

fn validator(response: &Response) -> Option<String> {
    let headers = response.headers();
    let get = |name: &str| headers.get(name).ok().flatten();
    get("etag")
        .or_else(|| get("last-modified"))
        .or_else(|| get("content-length").map(|l| format!("length {l}")))
}

fn is_html(response: &Response) -> bool {
    let kind = response.headers().get("content-type").ok().flatten();
    kind.is_some_and(|k| k.starts_with("text/html"))
}

fn content_length(response: &Response) -> u64 {
    response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

async fn read_body(
    response: &Response,
    length: u64,
    mut on_chunk: impl FnMut(u64),
) -> Result<Vec<u8>, LoadError> {
    let Some(body) = response.body() else {
        return Ok(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|e| browser(e.into()))?;
    // Sized up front: growing by doubling would ask a 1 GiB shard for 2 GiB, more than one
    // wasm32 allocation can hold.
    let mut bytes = Vec::with_capacity(length as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(browser)?;
        let done = Reflect::get(&chunk, &"done".into())
            .map_err(browser)?
            .as_bool()
            .unwrap_or(true);
        if done {
            return Ok(bytes);
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(browser)?
            .dyn_into()
            .map_err(browser)?;
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        on_chunk(value.length() as u64);
    }
}

/// The page's cache, or `None` where the Cache API is unavailable (insecure origins).
async fn open_cache() -> Option<Cache> {
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(CACHE_NAME))
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// Keeps a downloaded file; failing to cache only costs a download next time.
async fn store(cache: &Cache, url: &str, bytes: &[u8], validator: Option<&str>) {
    let init = ResponseInit::new();
    let headers = web_sys::Headers::new().ok();
    if let Some(headers) = &headers {
        let _ = headers.set("content-length", &bytes.len().to_string());
        if let Some(v) = validator {
            let _ = headers.set(VALIDATOR_HEADER, v);
        }
        init.set_headers(headers);
    }
    let body = Uint8Array::from(bytes);
    if let Ok(response) = Response::new_with_opt_buffer_source_and_init(Some(&body), &init) {
        let _ = JsFuture::from(cache.put_with_str(url, &response)).await;
    }
}

/// Evicts the files `names` of the folder at `base` when they turned out not to be a model, so
/// they are fetched again next time.
pub async fn forget(base: &str, names: &[String]) {
    if let Some(cache) = open_cache().await {
        for name in names {
            let url = format!("{}/{name}", base.trim_end_matches('/'));
            let _ = JsFuture::from(cache.delete_with_str(&url)).await;
        }
    }
}

/// The message of a JS error value, for people.
pub fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// FNV-1a over the folder's file names and bytes, in name order: enough to tell whether a
/// shared link was made with the same model files.
pub fn content_hash(files: &HashMap<String, Vec<u8>>) -> u64 {
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for name in names {
        for &byte in name
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(&files[name])
        {
            hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
