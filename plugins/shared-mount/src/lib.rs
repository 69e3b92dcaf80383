//! `shared-mount` transport: each window's COPY bytes are written as gzip files on a directory
//! both sides can reach (an NFS share), then read back, verified against the window's
//! manifest and streamed into the sink.
//!
//! Layout, V1's with its missing slash fixed:
//!
//! ```text
//! <root>/<db>^<schema>^<table>^<window id>/
//!     part-00001.csv.gz     (COPY CSV; text: part-00001.txt.gz, binary: part-00001.bin.gz)
//!     part-00002.csv.gz     (with split_bytes: rotated after that many uncompressed bytes, at a row end)
//!     manifest.json         (written last: rows, bytes, compressed bytes, files with sha256, columns, format)
//! ```
//!
//! Every file is written under a hidden temporary name (`.part-00001.txt.gz.tmp`) and renamed
//! when complete, so a loader never sees half a file; the manifest is renamed last, so a window
//! directory without `manifest.json` is an incomplete one. Before any data moves (when the
//! transport is built, i.e. before a run touches any server, and again at each window) the root
//! is checked writable by this process's uid/gid/groups and readable by the sink's
//! (`sink_uid`/`sink_gid`), naming every uid/gid involved when not.
//!
//! The files are CSV whenever source and sink can use it (the transport prefers it: gpload and
//! people read it). A sink that reads files itself (gpload's `FILE`) is offered the verified
//! parts in place ([`SinkWindow::load_staged`]); any other sink gets them streamed back.
//!
//! File I/O runs on blocking threads fed through bounded channels: memory per window stays at
//! about `CHUNK_BYTES × QUEUE_CHUNKS` per direction whatever the window's size.

pub mod perms;
mod stall;

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use gptransfer_core::config::ConfigDuration;
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, Delivered, SinkWindow, StagedFiles, Transport, WindowCtx};
use gptransfer_core::rowcount::{RowCounter, RowLengths};
use gptransfer_core::RoleError;

use perms::{Ids, WindowModes, PRIVATE};
use stall::Busy;

/// Name of the manifest in a window directory.
pub const MANIFEST: &str = "manifest.json";
/// Bytes per chunk handed between the async side and the file threads.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks that may wait in each channel.
const QUEUE_CHUNKS: usize = 8;

/// Options of the `shared-mount` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedMountConfig {
    /// The shared directory (absolute); window directories are created under it.
    pub root: PathBuf,
    /// gzip level, 0 (store) to 9.
    #[serde(default = "default_compression")]
    pub compression: u32,
    /// Start a new file after this many uncompressed bytes (at the next row end in text format).
    #[serde(default)]
    pub split_bytes: Option<u64>,
    /// Keep the window directory after a successful load.
    #[serde(default)]
    pub keep_files: bool,
    /// The uid the loading side runs as (default: ours).
    #[serde(default)]
    pub sink_uid: Option<u32>,
    /// The gid the loading side runs as (default: ours).
    #[serde(default)]
    pub sink_gid: Option<u32>,
    /// The longest one file operation on the mount may take before the window fails (a hung
    /// NFS mount blocks it for ever).
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: ConfigDuration,
}

fn default_stall_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(120))
}

fn default_compression() -> u32 {
    6
}

impl SharedMountConfig {
    fn check_values(&self) -> Result<(), String> {
        if self.root.as_os_str().is_empty() || !self.root.is_absolute() {
            return Err(format!("root must be an absolute directory path, not {:?}", self.root.display().to_string()));
        }
        if self.compression > 9 {
            return Err(format!("compression must be 0 (none) to 9 (best), not {}", self.compression));
        }
        if self.split_bytes == Some(0) {
            return Err("split_bytes must be at least 1 (leave it out for one file per window)".into());
        }
        if self.stall_timeout.0.is_zero() {
            return Err("stall_timeout must be more than zero".into());
        }
        Ok(())
    }

    /// The ids the sink runs as, and whether the config named them.
    fn sink_ids(&self, writer: &Ids) -> (Ids, bool) {
        let configured = self.sink_uid.is_some() || self.sink_gid.is_some();
        match (self.sink_uid, self.sink_gid) {
            (None, None) => (writer.clone(), false),
            (uid, gid) => {
                // Supplementary groups of another user are unknown here: only its primary gid counts.
                (Ids { uid: uid.unwrap_or(writer.uid), gid: gid.unwrap_or(writer.gid), groups: Vec::new() }, configured)
            }
        }
    }

    /// Checks the root for both sides (I/O: stat and access).
    pub fn check_mount(&self) -> Result<(), String> {
        let writer = Ids::current();
        let (sink, configured) = self.sink_ids(&writer);
        perms::check_dir(&self.root, &writer, &sink, configured)
    }

    /// Modes (and group) of a window's directory and files: readable by the sink, by no one
    /// else the ids allow (I/O: stat of the root).
    fn window_modes(&self) -> io::Result<WindowModes> {
        let writer = Ids::current();
        let (sink, _) = self.sink_ids(&writer);
        let root = fs::metadata(&self.root)?;
        Ok(perms::window_modes(&writer, &sink, root.gid(), root.mode()))
    }
}

/// The `shared-mount` transport.
#[derive(Debug, Clone)]
pub struct SharedMountTransport {
    config: SharedMountConfig,
}

/// Registers `shared-mount`.
pub struct SharedMountFactory;

impl Factory<dyn Transport> for SharedMountFactory {
    fn name(&self) -> &'static str {
        "shared-mount"
    }
    fn describe(&self) -> &'static str {
        "window as gzip parts + manifest on a shared directory (uid/gid checked), loaded from there"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        let c: SharedMountConfig = parse_options(options)?;
        c.check_values()
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Transport>, String> {
        let config: SharedMountConfig = parse_options(options)?;
        config.check_values()?;
        // Before the run touches any server: a mount either side cannot use fails the table now,
        // and so does one that does not answer.
        let (check, limit, root) = (config.clone(), config.stall_timeout.0, config.root.clone());
        stall::bounded(limit, || stall::stalled(&root, "checking it", limit).message, move || check.check_mount())?;
        Ok(Arc::new(SharedMountTransport { config }))
    }
}

/// One file of a window, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the window directory.
    pub name: String,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// Bytes on disk.
    pub compressed_bytes: u64,
    /// SHA-256 of the bytes on disk, lower-case hex.
    pub sha256: String,
}

/// `manifest.json` of a window directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of this file.
    pub manifest_version: u32,
    /// Source database.
    pub database: String,
    /// Source table, `schema.table`.
    pub table: String,
    /// Window id `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`.
    pub window: String,
    /// COPY format of the bytes: `csv`, `text` or `binary`.
    pub format: String,
    /// Columns, in the order of the bytes.
    pub columns: Vec<String>,
    /// Rows in all files.
    pub rows: u64,
    /// Uncompressed bytes in all files.
    pub bytes: u64,
    /// Bytes on disk in all files.
    pub compressed_bytes: u64,
    /// The files, in load order.
    pub files: Vec<FileEntry>,
    /// The longest row in bytes, newline included (text and CSV; absent in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_row: Option<u64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The database name in a cluster address `user@host:port/db`.
pub fn database_of(address: &str) -> String {
    let after_at = address.rsplit_once('@').map_or(address, |(_, rest)| rest);
    // host:port/db — the host may be a socket path holding slashes; the port is digits.
    let mut rest = after_at;
    while let Some(colon) = rest.find(':') {
        let tail = &rest[colon + 1..];
        if let Some(slash) = tail.find('/') {
            if slash > 0 && tail[..slash].bytes().all(|b| b.is_ascii_digit()) {
                return tail[slash + 1..].to_string();
            }
        }
        rest = tail;
    }
    after_at.rsplit_once('/').map_or(String::new(), |(_, db)| db.to_string())
}

/// One path component from a name: no slash, no NUL, never `.`/`..`.
fn component(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        format!("_{cleaned}")
    } else {
        cleaned
    }
}

/// `<db>^<schema>^<table>^<window id>`.
pub fn window_dir_name(database: &str, schema: &str, table: &str, window_id: &str) -> String {
    format!("{}^{}^{}^{}", component(database), component(schema), component(table), component(window_id))
}

fn part_name(index: usize, format: CopyFormat) -> String {
    let ext = match format {
        CopyFormat::Csv => "csv",
        CopyFormat::Text => "txt",
        CopyFormat::Binary => "bin",
    };
    format!("part-{index:05}.{ext}.gz")
}

fn io_err(what: &str, path: &Path, e: io::Error) -> RoleError {
    RoleError::new(format!("shared-mount: cannot {what} {}: {e}", path.display()))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The file being written.
struct OpenPart {
    tmp: PathBuf,
    name: String,
    gz: GzEncoder<Hashing<BufWriter<File>>>,
    bytes: u64,
}

/// Writes the window's files on a blocking thread.
struct PartWriter {
    dir: PathBuf,
    format: CopyFormat,
    level: Compression,
    split: Option<u64>,
    files: Vec<FileEntry>,
    current: Option<OpenPart>,
    /// The last byte written ended a row (text, CSV), so the file may end here.
    at_row_end: bool,
    /// Finds row ends across chunks (CSV: the quote state).
    rows: RowCounter,
    /// Mode and group of each file.
    modes: WindowModes,
}

impl PartWriter {
    fn open(&mut self) -> Result<(), RoleError> {
        let name = part_name(self.files.len() + 1, self.format);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let file = create_fresh(&tmp, self.modes).map_err(|e| io_err("create", &tmp, e))?;
        let inner = Hashing { inner: BufWriter::with_capacity(CHUNK_BYTES, file), hash: Sha256::new(), bytes: 0 };
        self.current = Some(OpenPart { tmp, name, gz: GzEncoder::new(inner, self.level), bytes: 0 });
        self.at_row_end = true;
        Ok(())
    }

    fn close(&mut self) -> Result<(), RoleError> {
        let Some(part) = self.current.take() else { return Ok(()) };
        let hashing = part.gz.finish().map_err(|e| io_err("write", &part.tmp, e))?;
        let Hashing { inner, hash, bytes: compressed } = hashing;
        let file = inner.into_inner().map_err(|e| io_err("write", &part.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err("sync", &part.tmp, e))?;
        let done = self.dir.join(&part.name);
        fs::rename(&part.tmp, &done).map_err(|e| io_err("rename", &part.tmp, e))?;
        self.files.push(FileEntry {
            name: part.name,
            bytes: part.bytes,
            compressed_bytes: compressed,
            sha256: hex(&hash.finalize()),
        });
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), RoleError> {
        let binary = self.format == CopyFormat::Binary;
        // Where rows end in this chunk; only needed to split files at row ends.
        let ends = if self.split.is_some() { self.rows.row_ends(chunk) } else { Vec::new() };
        // Just past the first row end at or after `from` (or the chunk's end).
        let row_end_from = |from: usize| ends.get(ends.partition_point(|&e| e < from)).map_or(chunk.len(), |e| e + 1);
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(part) = self.current.as_ref() else {
                self.open()?;
                continue;
            };
            let cut = match self.split {
                None => chunk.len(),
                Some(split) if part.bytes >= split => {
                    if self.at_row_end || binary {
                        self.close()?;
                        self.open()?;
                        continue;
                    }
                    // Finish the row first.
                    row_end_from(pos)
                }
                Some(split) => {
                    let room = usize::try_from(split - part.bytes).unwrap_or(usize::MAX);
                    if room >= chunk.len() - pos {
                        chunk.len()
                    } else if binary {
                        pos + room
                    } else {
                        // Up to the end of the row that crosses the limit.
                        row_end_from(pos + room - 1)
                    }
                }
            };
            let now = &chunk[pos..cut];
            let Some(part) = self.current.as_mut() else { continue };
            part.gz.write_all(now).map_err(|e| io_err("write", &part.tmp, e))?;
            part.bytes += now.len() as u64;
            self.at_row_end = binary || ends.binary_search(&(cut - 1)).is_ok();
            pos = cut;
        }
        Ok(())
    }
}

/// Writes `value` as JSON to `dir/name` through a temporary name.
/// A new file (never one already there) with the window's file mode and group, whatever the
/// umask.
fn create_fresh(path: &Path, modes: WindowModes) -> io::Result<File> {
    let file = fs::OpenOptions::new().write(true).create_new(true).mode(modes.file).open(path)?;
    if let Some(gid) = modes.group {
        rustix::fs::fchown(&file, None, Some(rustix::fs::Gid::from_raw(gid)))?;
    }
    file.set_permissions(fs::Permissions::from_mode(modes.file))?;
    Ok(file)
}

fn write_manifest(dir: &Path, manifest: &Manifest, modes: WindowModes) -> Result<(), RoleError> {
    let tmp = dir.join(format!(".{MANIFEST}.tmp"));
    let path = dir.join(MANIFEST);
    let text = serde_json::to_vec_pretty(manifest)
        .map_err(|e| RoleError::new(format!("shared-mount: cannot encode the manifest: {e}")))?;
    let write = || -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = create_fresh(&tmp, modes)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        // The renames must survive a crash before the loader looks.
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| io_err("write", &path, e))
}

/// Reads and checks `manifest.json` and every file it lists (size and SHA-256), before loading.
pub fn verify(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| format!("{} is not a valid manifest: {e}", path.display()))?;
    let (mut bytes, mut compressed) = (0u64, 0u64);
    for f in &manifest.files {
        if f.name.contains('/') || f.name.starts_with('.') {
            return Err(format!("{} lists a file outside the window directory: {:?}", path.display(), f.name));
        }
        let file_path = dir.join(&f.name);
        let mut file = File::open(&file_path).map_err(|e| format!("manifest lists {}: {e}", file_path.display()))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", file_path.display()))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            size += n as u64;
        }
        if size != f.compressed_bytes {
            return Err(format!(
                "{} has {size} bytes but the manifest says {}: it was changed or truncated after it was written",
                file_path.display(),
                f.compressed_bytes
            ));
        }
        let sum = hex(&hash.finalize());
        if sum != f.sha256 {
            return Err(format!(
                "{} has sha256 {sum} but the manifest says {}: it was changed after it was written",
                file_path.display(),
                f.sha256
            ));
        }
        bytes += f.bytes;
        compressed += f.compressed_bytes;
    }
    if bytes != manifest.bytes || compressed != manifest.compressed_bytes {
        return Err(format!("{}: the files' sizes do not add up to the manifest's totals", path.display()));
    }
    Ok(manifest)
}

impl SharedMountTransport {
    /// A transport over `config` without the mount checks, for transports that stage a window's
    /// files in a local directory of their own (the `ssh` transport) and reuse
    /// [`Self::write_window`] and [`Self::load_window`].
    pub fn staging(config: SharedMountConfig) -> Self {
        SharedMountTransport { config }
    }

    fn limit(&self) -> std::time::Duration {
        self.config.stall_timeout.0
    }

    fn stalled(&self, what: &str) -> RoleError {
        stall::stalled(&self.config.root, what, self.limit())
    }

    /// `<root>/<db>^<schema>^<table>^<window id>` of a window.
    pub fn window_dir(&self, ctx: &WindowCtx) -> PathBuf {
        let db = database_of(&ctx.source.address);
        let t = &ctx.table.source_table;
        self.config.root.join(window_dir_name(&db, &t.schema, &t.name, &ctx.window.id()))
    }

    /// Pre-flight checks and a fresh, empty window directory.
    fn prepare(&self, dir: &Path) -> Result<(), RoleError> {
        self.config.check_mount().map_err(RoleError::new)?;
        // Files left by an earlier failed attempt of this window are stale: start over.
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(dir).map_err(|e| io_err("remove the stale", dir, e))?,
            Ok(_) => fs::remove_file(dir).map_err(|e| io_err("remove the stale", dir, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", dir, e)),
        }
        let modes = self.config.window_modes().map_err(|e| io_err("inspect", &self.config.root, e))?;
        fs::DirBuilder::new().mode(modes.dir).create(dir).map_err(|e| io_err("create", dir, e))?;
        if let Some(gid) = modes.group {
            rustix::fs::chown(dir, None, Some(rustix::fs::Gid::from_raw(gid)))
                .map_err(|e| io_err("chgrp", dir, e.into()))?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(modes.dir)).map_err(|e| io_err("chmod", dir, e))?;
        Ok(())
    }

    /// Source → files + manifest. Returns (rows, bytes) read from the source.
    pub async fn write_window(
        &self,
        ctx: &WindowCtx,
        dir: &Path,
        mut rows: ByteStream,
    ) -> Result<(u64, u64), RoleError> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let mut writer = PartWriter {
            dir: dir.to_path_buf(),
            format: ctx.format,
            level: Compression::new(self.config.compression),
            split: self.config.split_bytes,
            files: Vec::new(),
            current: None,
            at_row_end: true,
            rows: RowCounter::new(ctx.format),
            modes: PRIVATE,
        };
        let busy = Busy::new();
        let (marked, config) = (busy.clone(), self.config.clone());
        let thread = tokio::task::spawn_blocking(move || -> Result<(Vec<FileEntry>, WindowModes), RoleError> {
            writer.modes = marked.io(|| config.window_modes()).map_err(|e| io_err("inspect", &config.root, e))?;
            marked.io(|| writer.open())?;
            while let Some(chunk) = rx.blocking_recv() {
                marked.io(|| writer.write(&chunk))?;
            }
            marked.io(|| writer.close())?;
            Ok((writer.files, writer.modes))
        });
        let feed = async {
            let mut counter = RowLengths::new(ctx.format);
            let (mut total_rows, mut total_bytes) = (0u64, 0u64);
            let mut source_error = None;
            while let Some(item) = rows.next().await {
                match item {
                    Ok(b) => {
                        let n = counter.count(&b);
                        total_rows += n;
                        total_bytes += b.len() as u64;
                        ctx.counters.add(n, b.len() as u64);
                        if tx.send(b).await.is_err() {
                            // The writer stopped; its error is the one to report.
                            break;
                        }
                    }
                    Err(e) => {
                        source_error = Some(e);
                        break;
                    }
                }
            }
            drop(tx);
            let written = stall::joined("file writer", thread).await;
            if let Some(e) = source_error {
                return Err(e);
            }
            Ok((written?, counter, total_rows, total_bytes))
        };
        let on_stall = || self.stalled(&format!("writing {}", dir.display()));
        let ((files, modes), counter, total_rows, total_bytes) =
            stall::watch(&busy, self.limit(), on_stall, feed).await?;
        let manifest = Manifest {
            manifest_version: 1,
            database: database_of(&ctx.source.address),
            table: format!("{}.{}", ctx.table.source_table.schema, ctx.table.source_table.name),
            window: ctx.window.id(),
            format: ctx.format.name().to_string(),
            columns: ctx.columns.as_ref().clone(),
            rows: total_rows,
            bytes: files.iter().map(|f| f.bytes).sum(),
            compressed_bytes: files.iter().map(|f| f.compressed_bytes).sum(),
            files,
            longest_row: (ctx.format != CopyFormat::Binary).then(|| counter.longest()),
        };
        if manifest.bytes != total_bytes {
            return Err(RoleError::new(format!(
                "shared-mount: {} bytes read from the source but {} written to the files",
                total_bytes, manifest.bytes
            )));
        }
        let (manifest_dir, marked) = (dir.to_path_buf(), busy.clone());
        let thread = tokio::task::spawn_blocking(move || marked.io(|| write_manifest(&manifest_dir, &manifest, modes)));
        let on_stall = || self.stalled(&format!("writing the manifest of {}", dir.display()));
        stall::watch(&busy, self.limit(), on_stall, stall::joined("manifest writer", thread)).await?;
        Ok((total_rows, total_bytes))
    }

    /// Files → sink, after verifying the manifest. Returns rows written by the sink.
    pub async fn load_window(&self, ctx: &WindowCtx, dir: &Path, sink: &mut dyn SinkWindow) -> Result<u64, RoleError> {
        let manifest = self.verified(dir).await?;
        self.stream_files(ctx, dir, &manifest, sink).await
    }

    /// The window directory's manifest, checked against its files (blocking I/O on a thread).
    async fn verified(&self, dir: &Path) -> Result<Manifest, RoleError> {
        let (verify_dir, busy) = (dir.to_path_buf(), Busy::new());
        let marked = busy.clone();
        let thread = tokio::task::spawn_blocking(move || {
            marked.io(|| verify(&verify_dir)).map_err(|e| RoleError::new(format!("shared-mount: {e}")))
        });
        let on_stall = || self.stalled(&format!("checking the files of {}", dir.display()));
        stall::watch(&busy, self.limit(), on_stall, stall::joined("manifest check", thread)).await
    }

    /// [`stream_files`] under the stall limit.
    async fn stream_files(
        &self,
        ctx: &WindowCtx,
        dir: &Path,
        manifest: &Manifest,
        sink: &mut dyn SinkWindow,
    ) -> Result<u64, RoleError> {
        let busy = Busy::new();
        let on_stall = || self.stalled(&format!("reading {}", dir.display()));
        stall::watch(&busy, self.limit(), on_stall, stream_files(ctx, dir, manifest, sink, &busy)).await
    }
}

/// Streams a verified window's files into the sink. Returns rows written by the sink.
async fn stream_files(
    ctx: &WindowCtx,
    dir: &Path,
    manifest: &Manifest,
    sink: &mut dyn SinkWindow,
    busy: &Busy,
) -> Result<u64, RoleError> {
    let marked = busy.clone();
    let format = ctx.format;
    let (tx, rx) = mpsc::channel::<Result<Bytes, RoleError>>(QUEUE_CHUNKS);
    let read_dir = dir.to_path_buf();
    let names: Vec<String> = manifest.files.iter().map(|f| f.name.clone()).collect();
    let reader = tokio::task::spawn_blocking(move || -> Result<(u64, u64), RoleError> {
        let mut counter = RowCounter::new(format);
        let (mut rows, mut bytes) = (0u64, 0u64);
        for name in names {
            let path = read_dir.join(&name);
            let file = marked.io(|| File::open(&path)).map_err(|e| io_err("open", &path, e))?;
            let mut gz = GzDecoder::new(io::BufReader::with_capacity(CHUNK_BYTES, file));
            loop {
                let mut buf = vec![0u8; CHUNK_BYTES];
                let mut filled = 0;
                while filled < buf.len() {
                    match marked.io(|| gz.read(&mut buf[filled..])) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let err = io_err("decompress", &path, e);
                            let _ = tx.blocking_send(Err(err.clone()));
                            return Err(err);
                        }
                    }
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                rows += counter.count(&buf);
                bytes += filled as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    // The sink stopped reading; its error is the one to report.
                    return Ok((rows, bytes));
                }
            }
        }
        Ok((rows, bytes))
    });
    let incoming = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let loaded = sink.load(Box::pin(incoming)).await;
    let (rows, bytes) = stall::joined("file reader", reader).await?;
    let written = loaded?;
    if rows != manifest.rows || bytes != manifest.bytes {
        return Err(RoleError::new(format!(
            "shared-mount: the files hold {rows} rows ({bytes} bytes) but the manifest says {} rows ({} bytes)",
            manifest.rows, manifest.bytes
        )));
    }
    Ok(written)
}

#[async_trait]
impl Transport for SharedMountTransport {
    fn formats(&self) -> Vec<CopyFormat> {
        // The files are CSV when both ends can: what gpload and people read.
        vec![CopyFormat::Csv, CopyFormat::Text, CopyFormat::Binary]
    }

    async fn deliver(
        &self,
        ctx: &WindowCtx,
        rows: ByteStream,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError> {
        let dir = self.window_dir(ctx);
        {
            let (this, dir, busy) = (self.clone(), dir.clone(), Busy::new());
            let marked = busy.clone();
            let thread = tokio::task::spawn_blocking(move || marked.io(|| this.prepare(&dir)));
            let on_stall = || self.stalled(&format!("preparing {}", self.window_dir(ctx).display()));
            stall::watch(&busy, self.limit(), on_stall, stall::joined("mount check", thread)).await?;
        }
        let result = async {
            let (rows_read, bytes) = self.write_window(ctx, &dir, rows).await?;
            let manifest = self.verified(&dir).await?;
            let staged = StagedFiles {
                root: self.config.root.clone(),
                files: manifest
                    .files
                    .iter()
                    .map(|f| dir.strip_prefix(&self.config.root).unwrap_or(&dir).join(&f.name))
                    .collect(),
                format: ctx.format,
                rows: manifest.rows,
                longest_row: manifest.longest_row,
                host: None,
            };
            let rows_written = match sink.load_staged(&staged).await {
                Some(loaded) => loaded?,
                None => self.stream_files(ctx, &dir, &manifest, sink).await?,
            };
            Ok::<_, RoleError>(Delivered { rows_read, bytes, rows_written, ..Delivered::default() })
        }
        .await;
        match result {
            Ok(d) => {
                if !self.config.keep_files {
                    let (remove, busy) = (dir.clone(), Busy::new());
                    let marked = busy.clone();
                    let thread = tokio::task::spawn_blocking(move || {
                        marked.io(|| fs::remove_dir_all(&remove)).map_err(|e| RoleError::new(e.to_string()))
                    });
                    let on_stall = || self.stalled("removing the loaded window's files");
                    let removed = stall::watch(&busy, self.limit(), on_stall, stall::joined("file remover", thread));
                    if let Err(e) = removed.await {
                        tracing::warn!(
                            "shared-mount: the window was loaded but {} could not be removed: {}",
                            dir.display(),
                            e.message
                        );
                    }
                }
                Ok(d)
            }
            Err(e) => Err(RoleError::new(format!("{e} (the window's files are kept in {})", dir.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn database_from_address() {
        assert_eq!(database_of("gpt@127.0.0.1:5432/qmstst"), "qmstst");
        assert_eq!(database_of("gpt@/var/run/postgresql:5432/db"), "db");
        assert_eq!(database_of("u@h:1/a/b"), "a/b");
    }

    #[test]
    fn window_dir_has_v1_layout_and_no_slash_escapes() {
        assert_eq!(
            window_dir_name("qmstst", "eda", "wpp_fdefect_f_n", "20201013140000^20201013150000"),
            "qmstst^eda^wpp_fdefect_f_n^20201013140000^20201013150000"
        );
        assert_eq!(window_dir_name("a/b", "..", "t", "w"), "a_b^_..^t^w");
    }

    fn write_all(split: Option<u64>, format: CopyFormat, data: &[&[u8]]) -> (tempfile::TempDir, Vec<FileEntry>) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PartWriter {
            dir: dir.path().to_path_buf(),
            format,
            level: Compression::new(1),
            split,
            files: Vec::new(),
            current: None,
            at_row_end: true,
            rows: RowCounter::new(format),
            modes: PRIVATE,
        };
        w.open().unwrap();
        for d in data {
            w.write(d).unwrap();
        }
        w.close().unwrap();
        (dir, w.files)
    }

    fn read_gz(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(File::open(path).unwrap()).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn text_files_split_at_row_ends() {
        let (dir, files) =
            write_all(Some(10), CopyFormat::Text, &[b"aaaa\nbbbbbbbb\ncc", b"c\nd\n", b"eeeeeeeeeeeeeeee\n"]);
        let contents: Vec<Vec<u8>> = files.iter().map(|f| read_gz(&dir.path().join(&f.name))).collect();
        assert_eq!(contents, vec![b"aaaa\nbbbbbbbb\n".to_vec(), b"ccc\nd\neeeeeeeeeeeeeeee\n".to_vec()], "{files:?}");
        assert_eq!(files[0].name, "part-00001.txt.gz");
        assert_eq!(files[1].bytes, 23);
        // No temporary file left behind.
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn csv_files_split_at_row_ends_not_at_quoted_newlines() {
        let (dir, files) =
            write_all(Some(6), CopyFormat::Csv, &[b"1,\"a\nbbbbbbbb\"\n2,", b"x\n3,\"\"\"\n\"\n", b"4,y\n"]);
        let contents: Vec<Vec<u8>> = files.iter().map(|f| read_gz(&dir.path().join(&f.name))).collect();
        assert_eq!(
            contents,
            vec![b"1,\"a\nbbbbbbbb\"\n".to_vec(), b"2,x\n3,\"\"\"\n\"\n".to_vec(), b"4,y\n".to_vec()],
            "{files:?}"
        );
        assert_eq!(files[0].name, "part-00001.csv.gz");
    }

    #[test]
    fn binary_files_split_at_the_byte_limit() {
        let (dir, files) = write_all(Some(4), CopyFormat::Binary, &[b"0123456789"]);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["part-00001.bin.gz", "part-00002.bin.gz", "part-00003.bin.gz"]);
        let all: Vec<u8> = files.iter().flat_map(|f| read_gz(&dir.path().join(&f.name))).collect();
        assert_eq!(all, b"0123456789");
    }

    #[test]
    fn verify_catches_a_changed_file() {
        let (dir, files) = write_all(None, CopyFormat::Text, &[b"a\nb\n"]);
        let manifest = Manifest {
            manifest_version: 1,
            database: "d".into(),
            table: "s.t".into(),
            window: "w".into(),
            format: "text".into(),
            columns: vec!["a".into()],
            rows: 2,
            bytes: 4,
            compressed_bytes: files[0].compressed_bytes,
            files: files.clone(),
            longest_row: Some(2),
        };
        write_manifest(dir.path(), &manifest, PRIVATE).unwrap();
        assert_eq!(verify(dir.path()).unwrap(), manifest);
        let path = dir.path().join(&files[0].name);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = verify(dir.path()).unwrap_err();
        assert!(err.contains("sha256"), "{err}");
    }
}
