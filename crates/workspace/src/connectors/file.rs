//! `file` connections: CSV, JSON and NDJSON files in a folder inside the tenant's folder (see
//! `docs/connection-file.md`).
//!
//! Reading is streamed on a blocking thread, one batch at a time, for all three formats (JSON
//! arrays are parsed element by element, so file size is not limited by memory).
//!
//! **CSV values.** The first line is the header (an empty header cell becomes `column_N`,
//! counting from 1; a repeated name keeps the later cell). Each cell becomes:
//! - `null` when it is empty (CSV cannot tell an empty string from a missing value);
//! - an integer when it is `-?(0|[1-9][0-9]*)` and fits in 64 bits;
//! - a floating-point number when it is `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` with a
//!   fraction or exponent, has at most 15 significant digits (so the value is exact) and is
//!   finite;
//! - text otherwise — so leading zeros (`0150`), `+1`, `1,000`, ` 7`, `true`, dates and very
//!   long numbers stay exactly as written.
//!
//! A row with fewer cells than the header gets `null` for the missing ones; a row with more
//! cells fails the run (the delimiter is probably not a comma).
//!
//! **Writing** goes to a hidden temporary file in the same folder, renamed over the target at
//! commit (rollback, or dropping the destination, deletes it). `append` first copies the existing
//! file into the temporary one (JSON: re-written element by element), so even an append is
//! all-or-nothing. CSV columns are the union of the records' keys in first-seen order (after the
//! existing header when appending); when a later batch brings a new column, rows already written
//! are padded with empty cells and the header extended when the file is finished (one extra
//! pass over the file, only in that case).
//!
//! A resource name may be a glob (`*` and `?`, e.g. `orders-*.csv`) when reading: every
//! matching file of the folder (not hidden ones) is read in name order; no match reads nothing.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::spec::Connection;
use super::tenant_files::{open_in_tenant, resolve_in_tenant};
use super::{
    ConnectionSpec, ConnectorContext, ConnectorError, Destination, DestinationSpec, Record,
    RunMarker, Source, WriteMode, BATCH_SIZE,
};
use crate::flatten::flatten;

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Json,
    Ndjson,
}

impl FileFormat {
    pub(crate) fn parse(text: &str) -> Option<FileFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "json" => Some(FileFormat::Json),
            "ndjson" | "jsonl" => Some(FileFormat::Ndjson),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Ndjson => "ndjson",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

/// A file name inside the folder: no separators, no `..`.
fn check_file_name(name: &str, connection: &str) -> Result<(), ConnectorError> {
    let name_ok =
        !name.trim().is_empty() && !name.contains(['/', '\\', '\0']) && name != "." && name != "..";
    if name_ok {
        Ok(())
    } else {
        Err(ConnectorError::Config(format!(
            "connection {connection}: `{name}` is not a file name (no folders, `/` or `..`; the folder is the connection's path)"
        )))
    }
}

fn is_glob(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Shell-style match of `*` and `?` (no character classes).
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

struct FileConfig {
    folder: PathBuf,
    /// The `path` parameter as given, for messages.
    shown: String,
    format: FileFormat,
}

impl FileConfig {
    fn from_spec(
        conn: &ConnectionSpec,
        ctx: &ConnectorContext,
    ) -> Result<FileConfig, ConnectorError> {
        let Connection::File(spec) = Connection::parse(conn)? else {
            return Err(ConnectorError::Config(format!(
                "connection {} is not a file connection",
                conn.name
            )));
        };
        let folder = resolve_in_tenant(ctx, &spec.path, &conn.name)?;
        Ok(FileConfig {
            folder,
            shown: spec.path.trim_end_matches('/').to_string(),
            format: spec.format,
        })
    }

    fn display(&self, name: &str) -> String {
        format!("{}/{}", self.shown, name)
    }
}

fn io_error(what: &str, error: std::io::Error) -> ConnectorError {
    ConnectorError::Data(format!("{what}: {error}"))
}

// ---------------------------------------------------------------------------------------------
// Source

type BatchResult = Result<Vec<Record>, ConnectorError>;

/// Reads files of a folder on a blocking thread.
pub struct FileSource {
    receiver: mpsc::Receiver<BatchResult>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, ConnectorError> {
        match self.receiver.recv().await {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    }
}

/// Opens a file (or every file matching a glob) of a `file` connection for reading.
pub async fn open_source(
    conn: &ConnectionSpec,
    name: &str,
    ctx: &ConnectorContext,
) -> Result<FileSource, ConnectorError> {
    let config = FileConfig::from_spec(conn, ctx)?;
    let name = name.trim();
    check_file_name(name, &conn.name)?;
    let files: Vec<(PathBuf, String)> = if is_glob(name) {
        let mut matches = Vec::new();
        match fs::read_dir(&config.folder) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let file_name = entry.file_name().to_string_lossy().into_owned();
                    let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
                    if is_file && !file_name.starts_with('.') && glob_match(name, &file_name) {
                        matches.push((entry.path(), config.display(&file_name)));
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConnectorError::Data(format!(
                    "folder {} does not exist (connection {})",
                    config.shown, conn.name
                )))
            }
            Err(error) => return Err(io_error(&format!("cannot list {}", config.shown), error)),
        }
        matches.sort_by(|a, b| a.1.cmp(&b.1));
        matches
    } else {
        let path = config.folder.join(name);
        if !path.is_file() {
            return Err(ConnectorError::Data(format!(
                "file {} not found (connection {}); put it in the connection's folder",
                config.display(name),
                conn.name
            )));
        }
        vec![(path, config.display(name))]
    };

    let (sender, receiver) = mpsc::channel::<BatchResult>(2);
    let format = config.format;
    let ctx = ctx.clone();
    let task = tokio::task::spawn_blocking(move || {
        for (path, shown) in files {
            let result = match open_in_tenant(&ctx, &path) {
                Ok(file) => {
                    let reader = BufReader::with_capacity(256 * 1024, file);
                    match format {
                        FileFormat::Csv => read_csv(reader, &shown, &sender),
                        FileFormat::Json => read_json(reader, &shown, &sender),
                        FileFormat::Ndjson => read_ndjson(reader, &shown, &sender),
                    }
                }
                Err(error) => Err(io_error(&format!("cannot open {shown}"), error)),
            };
            match result {
                Ok(true) => {}
                // The reader went away.
                Ok(false) => return,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    Ok(FileSource { receiver, task })
}

/// Collects records and sends full batches. `false` once the receiver is gone.
struct Batcher<'a> {
    sender: &'a mpsc::Sender<BatchResult>,
    batch: Vec<Record>,
}

impl<'a> Batcher<'a> {
    fn new(sender: &'a mpsc::Sender<BatchResult>) -> Self {
        Batcher {
            sender,
            batch: Vec::with_capacity(BATCH_SIZE),
        }
    }

    fn push(&mut self, record: Record) -> bool {
        self.batch.push(record);
        if self.batch.len() >= BATCH_SIZE {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_SIZE));
        self.sender.blocking_send(Ok(batch)).is_ok()
    }
}

/// A CSV cell as a JSON value (the rule is in the module documentation).
pub fn csv_cell(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    let bytes = text.as_bytes();
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let int_len = unsigned.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 || (unsigned[0] == b'0' && int_len > 1) {
        return Value::String(text.to_string());
    }
    if int_len == unsigned.len() {
        return match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(text.to_string()),
        };
    }
    // Fraction and/or exponent.
    let mut rest = &unsigned[int_len..];
    let mut digits = unsigned[..int_len].to_vec();
    if let Some(after) = rest.strip_prefix(b".") {
        let frac_len = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if frac_len == 0 {
            return Value::String(text.to_string());
        }
        digits.extend_from_slice(&after[..frac_len]);
        rest = &after[frac_len..];
    }
    if let Some(after) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let after = after
            .strip_prefix(b"+")
            .or_else(|| after.strip_prefix(b"-"))
            .unwrap_or(after);
        if after.is_empty() || !after.iter().all(u8::is_ascii_digit) {
            return Value::String(text.to_string());
        }
        rest = &[];
    }
    if !rest.is_empty() {
        return Value::String(text.to_string());
    }
    let significant = digits.iter().skip_while(|&&d| d == b'0').count();
    if significant > 15 {
        return Value::String(text.to_string());
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_string())),
        _ => Value::String(text.to_string()),
    }
}

fn read_csv<R: Read>(
    reader: R,
    shown: &str,
    sender: &mpsc::Sender<BatchResult>,
) -> Result<bool, ConnectorError> {
    let mut csv_reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(reader);
    let csv_error = |error: csv::Error| ConnectorError::Data(format!("{shown}: {error}"));
    let mut records = csv_reader.records();
    let header: Vec<String> = match records.next() {
        None => return Ok(true),
        Some(row) => row
            .map_err(csv_error)?
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let name = name.trim_start_matches('\u{feff}');
                if name.is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    name.to_string()
                }
            })
            .collect(),
    };
    let mut batcher = Batcher::new(sender);
    for row in records {
        let row = row.map_err(csv_error)?;
        if row.len() == 1 && row.get(0) == Some("") && header.len() > 1 {
            continue; // a blank line
        }
        if row.len() > header.len() {
            let line = row.position().map(|p| p.line()).unwrap_or(0);
            return Err(ConnectorError::Data(format!(
                "{shown}: line {line} has {} cells but the header has {}; files must be comma-separated with a header line",
                row.len(),
                header.len()
            )));
        }
        let mut record = Record::new();
        for (i, name) in header.iter().enumerate() {
            let value = row.get(i).map(csv_cell).unwrap_or(Value::Null);
            record.insert(name.clone(), value);
        }
        if !batcher.push(record) {
            return Ok(false);
        }
    }
    Ok(batcher.flush())
}

fn read_ndjson<R: BufRead>(
    mut reader: R,
    shown: &str,
    sender: &mpsc::Sender<BatchResult>,
) -> Result<bool, ConnectorError> {
    let mut batcher = Batcher::new(sender);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let read = reader
            .read_line(&mut line)
            .map_err(|e| io_error(&format!("{shown}: line {number}"), e))?;
        if read == 0 {
            break;
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ConnectorError::Data(format!("{shown}: line {number} is not JSON ({e})"))
        })?;
        if !batcher.push(flatten(value)) {
            return Ok(false);
        }
    }
    Ok(batcher.flush())
}

const RECEIVER_GONE: &str = "__receiver_gone__";

/// Feeds each element of a JSON array to `each` as it is parsed.
struct EachElement<F>(F);

impl<'de, F> DeserializeSeed<'de> for EachElement<F>
where
    F: FnMut(Value) -> bool,
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for EachElement<F>
where
    F: FnMut(Value) -> bool,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            if !(self.0)(value) {
                return Err(A::Error::custom(RECEIVER_GONE));
            }
        }
        Ok(())
    }
}

/// Streams the elements of the JSON array in `reader`. `Ok(false)` when `each` asked to stop.
fn stream_json_array<R: Read>(
    reader: R,
    shown: &str,
    each: impl FnMut(Value) -> bool,
) -> Result<bool, ConnectorError> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    match EachElement(each).deserialize(&mut deserializer) {
        Ok(()) => {}
        Err(error) if error.to_string().starts_with(RECEIVER_GONE) => return Ok(false),
        Err(error) => {
            return Err(ConnectorError::Data(format!(
                "{shown}: the file must contain one JSON array of objects (for one object per line use format=ndjson): {error}"
            )))
        }
    }
    deserializer.end().map_err(|error| {
        ConnectorError::Data(format!(
            "{shown}: unexpected content after the JSON array: {error}"
        ))
    })?;
    Ok(true)
}

fn read_json<R: Read>(
    reader: R,
    shown: &str,
    sender: &mpsc::Sender<BatchResult>,
) -> Result<bool, ConnectorError> {
    let mut batcher = Batcher::new(sender);
    if !stream_json_array(reader, shown, |value| batcher.push(flatten(value)))? {
        return Ok(false);
    }
    Ok(batcher.flush())
}

// ---------------------------------------------------------------------------------------------
// Destination

/// Writes a file through a temporary file renamed at commit.
pub struct FileDestination {
    format: FileFormat,
    target: PathBuf,
    temp: PathBuf,
    shown: String,
    file: Option<tokio::fs::File>,
    /// CSV: every column seen, in first-seen order.
    columns: Vec<String>,
    /// CSV: how many of `columns` the header in the temporary file names (0 = no header yet).
    header_columns: usize,
    /// JSON: elements written so far (for the separators).
    json_elements: u64,
    /// The run's marker, written beside the output before it is renamed into place.
    marker: Option<RunMarker>,
    finished: bool,
}

impl Drop for FileDestination {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Opens a file of a `file` connection for writing.
pub async fn open_destination(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    ctx: &ConnectorContext,
) -> Result<FileDestination, ConnectorError> {
    if dest.mode == WriteMode::Upsert {
        return Err(ConnectorError::Config(
            "upsert needs a database destination (postgres or sqlite); use append or replace for files"
                .into(),
        ));
    }
    let config = FileConfig::from_spec(conn, ctx)?;
    let name = dest.target.trim();
    check_file_name(name, &conn.name)?;
    if is_glob(name) {
        return Err(ConnectorError::Config(format!(
            "connection {}: `{name}`: a destination file name cannot contain * or ?",
            conn.name
        )));
    }
    let shown = config.display(name);
    tokio::fs::create_dir_all(&config.folder)
        .await
        .map_err(|e| io_error(&format!("cannot create folder {}", config.shown), e))?;
    let target = config.folder.join(name);
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let temp = config
        .folder
        .join(format!(".{name}.{}-{unique}.tmp", std::process::id()));

    let existing = dest.mode == WriteMode::Append
        && tokio::fs::metadata(&target)
            .await
            .map(|m| m.is_file() && m.len() > 0)
            .unwrap_or(false);

    let mut destination = FileDestination {
        format: config.format,
        target: target.clone(),
        temp: temp.clone(),
        shown: shown.clone(),
        file: None,
        columns: Vec::new(),
        header_columns: 0,
        json_elements: 0,
        marker: None,
        finished: false,
    };

    // Prepare the temporary file (with the existing content when appending).
    let format = config.format;
    let ctx = ctx.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        prepare_temp(format, existing, &target, &temp, &shown, &ctx)
    })
    .await
    .map_err(|e| ConnectorError::Data(format!("preparing {}: {e}", destination.shown)))??;
    destination.columns = prepared.columns;
    destination.header_columns = destination.columns.len();
    destination.json_elements = prepared.json_elements;
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&destination.temp)
        .await
        .map_err(|e| io_error(&format!("cannot write {}", destination.shown), e))?;
    destination.file = Some(file);
    Ok(destination)
}

struct Prepared {
    columns: Vec<String>,
    json_elements: u64,
}

fn prepare_temp(
    format: FileFormat,
    existing: bool,
    target: &Path,
    temp: &Path,
    shown: &str,
    ctx: &ConnectorContext,
) -> Result<Prepared, ConnectorError> {
    let create = |path: &Path| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io_error(&format!("cannot create a temporary file for {shown}"), e))
    };
    let mut prepared = Prepared {
        columns: Vec::new(),
        json_elements: 0,
    };
    match format {
        FileFormat::Csv | FileFormat::Ndjson => {
            let mut out = create(temp)?;
            if existing {
                let mut input = open_in_tenant(ctx, target)
                    .map_err(|e| io_error(&format!("cannot read {shown}"), e))?;
                std::io::copy(&mut input, &mut out)
                    .map_err(|e| io_error(&format!("cannot copy {shown}"), e))?;
                // Make sure the new rows start on a new line.
                let length = out
                    .metadata()
                    .map_err(|e| io_error(&format!("cannot read {shown}"), e))?
                    .len();
                if length > 0 {
                    let mut last = [0u8; 1];
                    let mut check = open_in_tenant(ctx, target)
                        .map_err(|e| io_error(&format!("cannot read {shown}"), e))?;
                    use std::io::Seek;
                    check
                        .seek(std::io::SeekFrom::Start(length - 1))
                        .and_then(|_| check.read_exact(&mut last))
                        .map_err(|e| io_error(&format!("cannot read {shown}"), e))?;
                    if last[0] != b'\n' {
                        out.write_all(b"\n")
                            .map_err(|e| io_error(&format!("cannot write {shown}"), e))?;
                    }
                }
                if format == FileFormat::Csv {
                    let input = open_in_tenant(ctx, target)
                        .map_err(|e| io_error(&format!("cannot read {shown}"), e))?;
                    let mut reader = csv::ReaderBuilder::new()
                        .flexible(true)
                        .has_headers(false)
                        .from_reader(input);
                    if let Some(header) = reader.records().next() {
                        let header =
                            header.map_err(|e| ConnectorError::Data(format!("{shown}: {e}")))?;
                        prepared.columns = header
                            .iter()
                            .map(|h| h.trim_start_matches('\u{feff}').to_string())
                            .collect();
                    }
                }
            }
            out.sync_all()
                .map_err(|e| io_error(&format!("cannot write {shown}"), e))?;
        }
        FileFormat::Json => {
            let mut out = BufWriter::new(create(temp)?);
            let write_error = |e| io_error(&format!("cannot write {shown}"), e);
            out.write_all(b"[").map_err(write_error)?;
            if existing {
                let input = open_in_tenant(ctx, target)
                    .map_err(|e| io_error(&format!("cannot read {shown}"), e))?;
                let mut failure = None;
                let mut count = 0u64;
                stream_json_array(BufReader::new(input), shown, |value| {
                    let separator: &[u8] = if count == 0 { b"\n" } else { b",\n" };
                    let result = out.write_all(separator).and_then(|_| {
                        serde_json::to_writer(&mut out, &value).map_err(std::io::Error::from)
                    });
                    count += 1;
                    match result {
                        Ok(()) => true,
                        Err(e) => {
                            failure = Some(e);
                            false
                        }
                    }
                })?;
                if let Some(error) = failure {
                    return Err(write_error(error));
                }
                prepared.json_elements = count;
            }
            out.flush().map_err(write_error)?;
        }
    }
    Ok(prepared)
}

/// A value as CSV cell text.
fn csv_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::Null => "".into(),
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => n.to_string().into(),
        other => other.to_string().into(),
    }
}

impl FileDestination {
    fn encode(&mut self, records: &[Record]) -> Result<Vec<u8>, ConnectorError> {
        let mut out = Vec::with_capacity(records.len() * 128);
        match self.format {
            FileFormat::Csv => {
                for record in records {
                    for key in record.keys() {
                        if !self.columns.iter().any(|c| c == key) {
                            self.columns.push(key.clone());
                        }
                    }
                }
                if self.columns.is_empty() {
                    return Ok(out);
                }
                let mut writer = csv::WriterBuilder::new()
                    .flexible(true)
                    .has_headers(false)
                    .from_writer(&mut out);
                let csv_error =
                    |e: csv::Error| ConnectorError::Data(format!("writing {}: {e}", self.shown));
                if self.header_columns == 0 {
                    writer.write_record(&self.columns).map_err(csv_error)?;
                    self.header_columns = self.columns.len();
                }
                for record in records {
                    for column in &self.columns {
                        let cell = record.get(column).map(csv_text).unwrap_or_default();
                        writer.write_field(cell.as_bytes()).map_err(csv_error)?;
                    }
                    writer
                        .write_record(std::iter::empty::<&[u8]>())
                        .map_err(csv_error)?;
                }
                writer.flush().map_err(|e| io_error(&self.shown, e))?;
            }
            FileFormat::Json => {
                for record in records {
                    out.extend_from_slice(if self.json_elements == 0 {
                        b"\n"
                    } else {
                        b",\n"
                    });
                    serde_json::to_writer(&mut out, record).map_err(|e| {
                        ConnectorError::Data(format!("writing {}: {e}", self.shown))
                    })?;
                    self.json_elements += 1;
                }
            }
            FileFormat::Ndjson => {
                for record in records {
                    serde_json::to_writer(&mut out, record).map_err(|e| {
                        ConnectorError::Data(format!("writing {}: {e}", self.shown))
                    })?;
                    out.push(b'\n');
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Destination for FileDestination {
    fn set_marker(&mut self, marker: RunMarker) {
        self.marker = Some(marker);
    }

    async fn write_batch(&mut self, records: &[Record]) -> Result<u64, ConnectorError> {
        if records.is_empty() {
            return Ok(0);
        }
        let bytes = self.encode(records)?;
        if self.format == FileFormat::Csv && self.columns.is_empty() {
            return Ok(0);
        }
        let shown = self.shown.clone();
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| ConnectorError::Data(format!("{shown} is already closed")))?;
        file.write_all(&bytes)
            .await
            .map_err(|e| io_error(&format!("cannot write {shown}"), e))?;
        Ok(records.len() as u64)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), ConnectorError> {
        let shown = self.shown.clone();
        let write_error = |e| io_error(&format!("cannot write {shown}"), e);
        if let Some(mut file) = self.file.take() {
            if self.format == FileFormat::Json {
                let tail: &[u8] = if self.json_elements == 0 {
                    b"]\n"
                } else {
                    b"\n]\n"
                };
                file.write_all(tail).await.map_err(write_error)?;
            }
            file.flush().await.map_err(write_error)?;
            file.sync_all().await.map_err(write_error)?;
        }
        if self.format == FileFormat::Csv && self.columns.len() > self.header_columns {
            // New columns appeared after the header was written: rewrite with the full header.
            let temp = self.temp.clone();
            let columns = self.columns.clone();
            let shown = self.shown.clone();
            tokio::task::spawn_blocking(move || widen_csv(&temp, &columns, &shown))
                .await
                .map_err(|e| ConnectorError::Data(format!("rewriting {}: {e}", self.shown)))??;
        }
        if let Some(marker) = &self.marker {
            write_marker(&self.target, &self.temp, marker)
                .await
                .map_err(|e| {
                    io_error(&format!("cannot record the run beside {}", self.shown), e)
                })?;
        }
        tokio::fs::rename(&self.temp, &self.target)
            .await
            .map_err(|e| io_error(&format!("cannot replace {}", self.shown), e))?;
        self.finished = true;
        Ok(())
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), ConnectorError> {
        self.file = None;
        let result = tokio::fs::remove_file(&self.temp).await;
        self.finished = true;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(
                &format!("cannot remove the temporary file of {}", self.shown),
                e,
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Run markers

/// What a marker file holds: the temporary file that becomes the output when renamed.
#[derive(serde::Serialize, serde::Deserialize)]
struct MarkerFile {
    temp: String,
    rows_written: i64,
    flow: String,
}

/// The hidden marker file of a run beside `target` (globs skip hidden files).
fn marker_path(target: &Path, token: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{token}.run"))
}

/// Writes (and syncs) the marker before the output is renamed into place: after a crash,
/// the marker with its temporary file gone means the rename happened.
async fn write_marker(target: &Path, temp: &Path, marker: &RunMarker) -> std::io::Result<()> {
    let content = serde_json::to_vec(&MarkerFile {
        temp: temp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rows_written: marker.rows_written,
        flow: marker.flow.clone(),
    })?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker_path(target, &marker.token))
        .await?;
    file.write_all(&content).await?;
    file.sync_all().await
}

/// Whether the run with this marker renamed its output into place (`Some(rows)`); a
/// temporary file left by a run that did not is removed.
pub async fn find_marker(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    token: &str,
    ctx: &ConnectorContext,
) -> Result<Option<i64>, ConnectorError> {
    let config = FileConfig::from_spec(conn, ctx)?;
    let target = config.folder.join(dest.target.trim());
    let path = marker_path(&target, token);
    let content = match tokio::fs::read(&path).await {
        Ok(content) => content,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot read a run marker", e)),
    };
    let marker: MarkerFile = serde_json::from_slice(&content)
        .map_err(|e| ConnectorError::Data(format!("a run marker is damaged: {e}")))?;
    let temp = config.folder.join(&marker.temp);
    if marker.temp.is_empty() || marker.temp.contains('/') {
        return Ok(None);
    }
    if tokio::fs::metadata(&temp).await.is_ok() {
        // The crash came before the rename: the output was never replaced.
        let _ = tokio::fs::remove_file(&temp).await;
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(None);
    }
    Ok(Some(marker.rows_written))
}

/// Removes a recorded run's marker file.
pub async fn forget_marker(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    token: &str,
    ctx: &ConnectorContext,
) {
    if let Ok(config) = FileConfig::from_spec(conn, ctx) {
        let target = config.folder.join(dest.target.trim());
        let _ = tokio::fs::remove_file(marker_path(&target, token)).await;
    }
}

/// Rewrites the CSV file at `path` with `columns` as its header, padding shorter rows.
fn widen_csv(path: &Path, columns: &[String], shown: &str) -> Result<(), ConnectorError> {
    let wider = path.with_extension("wide.tmp");
    let result = (|| {
        let input =
            fs::File::open(path).map_err(|e| io_error(&format!("cannot read {shown}"), e))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(BufReader::new(input));
        let output =
            fs::File::create(&wider).map_err(|e| io_error(&format!("cannot write {shown}"), e))?;
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_writer(BufWriter::new(output));
        let csv_error = |e: csv::Error| ConnectorError::Data(format!("rewriting {shown}: {e}"));
        let mut rows = reader.records();
        // The old header is replaced by the full one.
        if let Some(old) = rows.next() {
            old.map_err(csv_error)?;
        }
        writer.write_record(columns).map_err(csv_error)?;
        for row in rows {
            let row = row.map_err(csv_error)?;
            let padding = columns.len().saturating_sub(row.len());
            writer
                .write_record(row.iter().chain(std::iter::repeat_n("", padding)))
                .map_err(csv_error)?;
        }
        let file = writer
            .into_inner()
            .map_err(|e| ConnectorError::Data(format!("rewriting {shown}: {e}")))?
            .into_inner()
            .map_err(|e| ConnectorError::Data(format!("rewriting {shown}: {e}")))?;
        file.sync_all()
            .map_err(|e| io_error(&format!("cannot write {shown}"), e))?;
        fs::rename(&wider, path).map_err(|e| io_error(&format!("cannot write {shown}"), e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&wider);
    }
    result
}

/// `test connection` for a file connection.
pub async fn test(conn: &ConnectionSpec, ctx: &ConnectorContext) -> Result<String, ConnectorError> {
    let config = FileConfig::from_spec(conn, ctx)?;
    match tokio::fs::metadata(&config.folder).await {
        Ok(meta) if meta.is_dir() => {
            let extension = config.format.extension();
            let mut count = 0usize;
            let mut entries = tokio::fs::read_dir(&config.folder)
                .await
                .map_err(|e| io_error(&format!("cannot list {}", config.shown), e))?;
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
                if !name.starts_with('.') && name.ends_with(&format!(".{extension}")) {
                    count += 1;
                }
            }
            let noun = if count == 1 { "file" } else { "files" };
            Ok(format!(
                "folder {} exists with {count} .{extension} {noun} (format={extension})",
                config.shown
            ))
        }
        Ok(_) => Err(ConnectorError::Config(format!(
            "connection {}: path {} is a file, not a folder",
            conn.name, config.shown
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(format!(
            "folder {} does not exist yet; it is created when a flow writes to it (format={})",
            config.shown,
            config.format.extension()
        )),
        Err(e) => Err(io_error(&format!("cannot read folder {}", config.shown), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells() {
        assert_eq!(csv_cell(""), Value::Null);
        assert_eq!(csv_cell("42"), json!(42));
        assert_eq!(csv_cell("-7"), json!(-7));
        assert_eq!(csv_cell("0"), json!(0));
        assert_eq!(csv_cell("0150"), json!("0150"));
        assert_eq!(csv_cell("+1"), json!("+1"));
        assert_eq!(csv_cell("1,000"), json!("1,000"));
        assert_eq!(csv_cell(" 7"), json!(" 7"));
        assert_eq!(csv_cell("19.90"), json!(19.9));
        assert_eq!(csv_cell("0.5"), json!(0.5));
        assert_eq!(csv_cell("1e3"), json!(1000.0));
        assert_eq!(csv_cell("1."), json!("1."));
        assert_eq!(csv_cell(".5"), json!(".5"));
        assert_eq!(csv_cell("true"), json!("true"));
        assert_eq!(csv_cell("2024-01-02"), json!("2024-01-02"));
        assert_eq!(
            csv_cell("99999999999999999999"),
            json!("99999999999999999999")
        );
        assert_eq!(
            csv_cell("0.1234567890123456789"),
            json!("0.1234567890123456789")
        );
        assert_eq!(csv_cell("NaN"), json!("NaN"));
        assert_eq!(csv_cell("1e999"), json!("1e999"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.csv", "a.csv"));
        assert!(glob_match("orders-*.csv", "orders-2024.csv"));
        assert!(!glob_match("*.csv", "a.json"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", "x"));
        assert!(!glob_match("a*b", "acbx"));
    }

    #[test]
    fn file_names() {
        assert!(check_file_name("orders.csv", "c").is_ok());
        assert!(check_file_name("../x.csv", "c").is_err());
        assert!(check_file_name("a/b.csv", "c").is_err());
        assert!(check_file_name("..", "c").is_err());
        assert!(check_file_name("", "c").is_err());
    }
}
