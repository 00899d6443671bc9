//! The default [`AuditLog`]: append-only segment files in a folder, one
//! `write` and one `fdatasync` per batch.
//!
//! Layout of the folder:
//! - `id`: the log's random id (text), written once when the log is created;
//! - `SEQ.seg` (SEQ: the first record's sequence number, 20 digits): records,
//!   each one frame — length (`u32`, little-endian, of what follows), sequence
//!   number (`u64`, little-endian), the previous record's hash (32 bytes),
//!   the record's JSON. A segment is closed at [`SEGMENT_BYTES`] and the
//!   next batch opens a new one;
//! - `heads.jsonl`: the signed heads, one JSON object per line;
//! - `lock`: locked by the one process that writes (readers take no lock).
//!
//! A batch is one write of its frames and, when durable, one `fdatasync`; a
//! head is written only after the records it covers are on disk, so no head
//! ever outlives its records in a crash.
//!
//! **Preallocation:** the writer keeps up to [`PREALLOCATE`] bytes of zeros
//! written after the newest frame, and writes batches over them. A batch
//! that only overwrites space the file already has changes no metadata the
//! data depends on, so its `fdatasync` is one write and a cache flush; a
//! file that grows needs its new size written too, a second synchronous
//! write per flush, which cost a third of the writer's CPU and latency. The
//! zeros read as the end of the segment; a segment is cut to its last frame
//! when the next one is opened.
//!
//! **Torn tail:** a crash can leave the newest frames incomplete (declared
//! longer than the file, zeros where a frame should start, a frame with
//! zeros in it, or zeros then part of a later frame); readers stop before
//! them and the next writer cuts them off. Only frames after the newest
//! signed head can be torn: a head is written once its records are on disk,
//! and a frame before an acknowledged one was flushed with it. Anything else
//! that does not read as a frame is reported as corrupt, never skipped.
//!
//! Readers may open the folder while a writer appends: they see whole frames
//! up to the writer's last write. Reads look up where to start in a sparse
//! index of frame offsets kept in memory, built as segments are read.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::integrity::{Hash, SignedHead, StoredEntry};
use crate::log::AuditLog;
use crate::{Error, Result};

/// A segment is closed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Zeros written ahead of the newest frame, so that most batches overwrite
/// space the file has (see the module documentation). Readers that reach
/// the end of a segment read them once.
pub const PREALLOCATE: u64 = 128 * 1024;
/// Length prefix, sequence number and link.
const FRAME_HEADER: usize = 4 + 8 + 32;
/// The largest record body accepted when reading (records are a few KiB).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// One offset kept in memory per this many frames read or written.
const HINT_EVERY: u64 = 256;
const ID_FILE: &str = "id";
const HEADS_FILE: &str = "heads.jsonl";
const LOCK_FILE: &str = "lock";
const PROBE_FILE: &str = "probe";
const SEGMENT_SUFFIX: &str = ".seg";

/// An [`AuditLog`] on segment files.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    id: String,
    /// The writer's side; `None` for a reader.
    writer: Option<Mutex<Tail>>,
    /// Held while this process writes.
    _lock: Option<File>,
    /// `seq` → (segment, offset of the frame holding `seq`).
    hints: Mutex<BTreeMap<u64, (u64, u64)>>,
}

/// Where the writer appends.
#[derive(Debug)]
struct Tail {
    /// The open segment: its first sequence number, file and length (the
    /// end of its last frame).
    segment: Option<(u64, File, u64)>,
    /// The open segment's size on disk: its length and the zeros after it.
    allocated: u64,
    heads: File,
    /// The newest sequence number written (0: none).
    last_seq: u64,
    /// The newest sequence number given a hint.
    last_hint: u64,
    /// A write failed: nothing more until [`AuditLog::recover`].
    broken: bool,
    /// Reused for each batch's frames.
    buffer: Vec<u8>,
    /// A segment is closed once it holds this many bytes.
    segment_bytes: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below completes its update or changes nothing
    // observable before it could panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn segment_name(first: u64) -> String {
    format!("{first:020}{SEGMENT_SUFFIX}")
}

/// The segments of `dir`, by first sequence number.
fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::storage("listing the audit store", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::storage("listing the audit store", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push(first);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::storage("syncing the audit folder", e))
}

/// Whether `file` holds only zeros from `offset` to its end (preallocated
/// space; see the module documentation).
fn zeros_after(file: &File, offset: u64) -> Result<bool> {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| Error::storage("reading an audit segment", e))?;
    only_zeros(&mut reader)
}

/// Whether everything `reader` has left is zeros (read in blocks, stopping
/// at the first other byte).
fn only_zeros(reader: &mut impl std::io::Read) -> Result<bool> {
    let mut block = [0u8; 8192];
    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::storage("reading an audit segment", e)),
        };
        if block[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

/// What the next bytes of a segment hold.
enum Frame {
    /// A whole frame, `len` bytes long in all.
    Entry(StoredEntry, u64),
    /// The end of the segment, or a torn tail (nothing after it counts).
    End,
}

/// Reads the frame at the reader's position; `remaining` is the bytes from
/// there to the end of the file, `prior_seq` the frame before it (for
/// messages).
fn next_frame(reader: &mut BufReader<File>, remaining: u64, prior_seq: u64) -> Result<Frame> {
    if remaining == 0 {
        return Ok(Frame::End);
    }
    let corrupt = |message: String| Error::Corrupt {
        seq: prior_seq + 1,
        message,
    };
    if remaining < FRAME_HEADER as u64 {
        return Ok(Frame::End);
    }
    let mut header = [0u8; FRAME_HEADER];
    reader
        .read_exact(&mut header)
        .map_err(|e| Error::storage("reading audit records", e))?;
    let (len_bytes, rest) = header.split_at(4);
    let (seq_bytes, prev_bytes) = rest.split_at(8);
    let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
    let seq = u64::from_le_bytes(seq_bytes.try_into().unwrap_or_default());
    if len == 0 && seq == 0 && prev_bytes.iter().all(|b| *b == 0) {
        // Zeros where a frame should start: what a crash leaves of space the
        // file system had extended but not yet written, or the writer's
        // preallocated space.
        if only_zeros(reader)? {
            return Ok(Frame::End);
        }
        return Err(corrupt("zeros where a record should start".into()));
    }
    if len < FRAME_HEADER - 4 || len - (FRAME_HEADER - 4) > MAX_BODY {
        return Err(corrupt(format!("a record frame claims {len} bytes")));
    }
    if (len as u64 + 4) > remaining {
        // Declared longer than the file: the batch's write was cut short.
        return Ok(Frame::End);
    }
    let mut body = vec![0u8; len - (FRAME_HEADER - 4)];
    reader
        .read_exact(&mut body)
        .map_err(|e| Error::storage("reading audit records", e))?;
    if body.contains(&0) {
        // JSON escapes every control character: a zero byte in a body is a
        // page of a batch the crash did not write (over preallocated zeros).
        return Ok(Frame::End);
    }
    let mut prev: Hash = [0; 32];
    prev.copy_from_slice(prev_bytes);
    Ok(Frame::Entry(
        StoredEntry { seq, prev, body },
        len as u64 + 4,
    ))
}

/// Every whole frame of a segment from `offset`, handed to `each` with its
/// offset until it returns `false`; returns the end of the last whole frame.
fn scan(path: &Path, offset: u64, mut each: impl FnMut(StoredEntry, u64) -> bool) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::storage("opening an audit segment", e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::storage("reading an audit segment", e))?
        .len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| Error::storage("reading an audit segment", e))?;
    let mut at = offset;
    let mut prior = 0u64;
    loop {
        match next_frame(&mut reader, size.saturating_sub(at), prior)? {
            Frame::End => return Ok(at),
            Frame::Entry(entry, len) => {
                prior = entry.seq;
                let start = at;
                at += len;
                if !each(entry, start) {
                    return Ok(at);
                }
            }
        }
    }
}

impl FileLog {
    /// Opens the folder `path` to write, creating the log if the folder holds
    /// none, and cutting off a torn tail.
    ///
    /// # Errors
    /// [`Error::Storage`] when it cannot be opened or another process writes
    /// it; [`Error::Corrupt`] when its newest segment does not read.
    pub fn open(path: &Path) -> Result<FileLog> {
        FileLog::open_with_segments(path, SEGMENT_BYTES)
    }

    /// As [`FileLog::open`], closing segments at `segment_bytes` (tests).
    ///
    /// # Errors
    /// As [`FileLog::open`].
    pub fn open_with_segments(path: &Path, segment_bytes: u64) -> Result<FileLog> {
        std::fs::create_dir_all(path).map_err(|e| Error::storage("creating the audit store", e))?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(|e| Error::storage("opening the audit store's lock", e))?;
        fs2::FileExt::try_lock_exclusive(&lock_file).map_err(|_| {
            Error::storage(
                "opening the audit store",
                format!("{} is written by another process", path.display()),
            )
        })?;
        let id_path = path.join(ID_FILE);
        if !id_path.is_file() {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let temporary = path.join("id.new");
            let mut file =
                File::create(&temporary).map_err(|e| Error::storage("writing the log id", e))?;
            file.write_all(id.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::storage("writing the log id", e))?;
            std::fs::rename(&temporary, &id_path)
                .map_err(|e| Error::storage("writing the log id", e))?;
            sync_dir(path)?;
        }
        let mut log = FileLog::reader(path)?;
        let mut tail = log.open_tail()?;
        tail.segment_bytes = segment_bytes;
        log.writer = Some(Mutex::new(tail));
        log._lock = Some(lock_file);
        Ok(log)
    }

    /// Opens an existing log to read (while a writer may append); a folder
    /// that holds none is an error, never an empty log that would verify as
    /// "nothing to see".
    ///
    /// # Errors
    /// [`Error::Storage`] when `path` holds no file log.
    pub fn open_existing(path: &Path) -> Result<FileLog> {
        if !FileLog::holds_log(path) {
            return Err(Error::storage(
                "opening the audit store",
                format!("{} holds no audit log", path.display()),
            ));
        }
        FileLog::reader(path)
    }

    /// Whether `path` holds a log of this kind.
    pub fn holds_log(path: &Path) -> bool {
        path.join(ID_FILE).is_file()
    }

    fn reader(path: &Path) -> Result<FileLog> {
        let id = std::fs::read_to_string(path.join(ID_FILE))
            .map_err(|e| Error::storage("reading the log id", e))?;
        let id = id.trim().to_owned();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Corrupt {
                seq: 0,
                message: "the log id is not an id".into(),
            });
        }
        Ok(FileLog {
            dir: path.to_owned(),
            id,
            writer: None,
            _lock: None,
            hints: Mutex::default(),
        })
    }

    /// Finds the end of the newest segment, cuts a torn tail, opens both files.
    fn open_tail(&self) -> Result<Tail> {
        let heads = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(HEADS_FILE))
            .map_err(|e| Error::storage("opening the signed heads", e))?;
        let mut tail = Tail {
            segment: None,
            allocated: 0,
            heads,
            last_seq: 0,
            last_hint: 0,
            broken: false,
            buffer: Vec::new(),
            segment_bytes: SEGMENT_BYTES,
        };
        let Some(&first) = segments(&self.dir)?.last() else {
            return Ok(tail);
        };
        let path = self.dir.join(segment_name(first));
        let mut last_seq = first.saturating_sub(1);
        // The end of the last whole frame, and whether what follows is torn.
        let mut end = 0u64;
        let mut torn = false;
        let scanned = scan(&path, 0, |entry, offset| {
            if entry.seq % HINT_EVERY == 0 || entry.seq == first {
                lock(&self.hints).insert(entry.seq, (first, offset));
            }
            last_seq = entry.seq;
            end = offset + FRAME_HEADER as u64 + entry.body.len() as u64;
            true
        });
        match scanned {
            Ok(_) => {}
            // Zeros, then part of a later frame: what a crash leaves when it
            // writes some pages of a batch over preallocated space and not others.
            Err(Error::Corrupt { .. }) => torn = true,
            Err(other) => return Err(other),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::storage("opening the newest audit segment", e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::storage("opening the newest audit segment", e))?
            .len();
        if size > end && (torn || !zeros_after(&file, end)?) {
            let signed = self.heads()?.last().map_or(0, |head| head.seq);
            if last_seq < signed {
                // A head covers what follows: those records were on disk
                // before the crash, so this is damage, not a torn write.
                return Err(Error::Corrupt {
                    seq: last_seq + 1,
                    message: format!(
                        "unreadable, but a head was signed at #{signed} (the log is damaged)"
                    ),
                });
            }
            tracing::warn!(
                segment = %path.display(),
                bytes = size - end,
                "cutting a torn tail off the audit log (records of a write a crash interrupted, never acknowledged)"
            );
            file.set_len(end)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::storage("cutting the audit log's torn tail", e))?;
            tail.allocated = end;
        } else {
            tail.allocated = size.max(end);
        }
        tail.segment = Some((first, file, end));
        tail.last_seq = last_seq;
        tail.last_hint = last_seq;
        Ok(tail)
    }

    fn writer(&self) -> Result<MutexGuard<'_, Tail>> {
        let writer = self.writer.as_ref().ok_or_else(|| {
            Error::storage("writing the audit store", "it was opened to read only")
        })?;
        Ok(lock(writer))
    }

    fn hint(&self, seq: u64) -> Option<(u64, u64)> {
        lock(&self.hints)
            .range(..=seq)
            .next_back()
            .map(|(_, at)| *at)
    }
}

impl Tail {
    /// After a failed append: cuts what it wrote, the open segment back to
    /// where the batch `began` (all of it when the batch opened it) and the
    /// heads back to `heads_len` bytes (a partial line would otherwise be
    /// followed by the next head). Best effort: the store is reopened before
    /// the next write, and reads what is there.
    fn take_back(&mut self, began: Option<(u64, u64)>, heads_len: Option<u64>) {
        if let Some((first, file, len)) = &mut self.segment {
            let keep = match began {
                Some((segment, at)) if segment == *first => at,
                _ => 0,
            };
            if file.set_len(keep).and_then(|()| file.sync_data()).is_ok() {
                *len = keep;
                self.allocated = keep;
            }
        }
        if let Some(heads_len) = heads_len {
            let _ = self
                .heads
                .set_len(heads_len)
                .and_then(|()| self.heads.sync_data());
        }
    }

    /// Writes `entries` as frames in one write; returns offsets to remember.
    fn write_entries(
        &mut self,
        dir: &Path,
        entries: &[StoredEntry],
    ) -> Result<Vec<(u64, (u64, u64))>> {
        let Some(first) = entries.first() else {
            return Ok(Vec::new());
        };
        let rotate = match &self.segment {
            None => true,
            Some((_, _, len)) => *len >= self.segment_bytes,
        };
        if rotate {
            if let Some((_, file, len)) = &self.segment {
                // Without its preallocated zeros: a closed segment ends at its last frame.
                file.set_len(*len)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::storage("closing an audit segment", e))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(dir.join(segment_name(first.seq)))
                .map_err(|e| Error::storage("opening a new audit segment", e))?;
            let existing = file
                .metadata()
                .map_err(|e| Error::storage("opening a new audit segment", e))?
                .len();
            if existing > 0 {
                return Err(Error::storage(
                    "opening a new audit segment",
                    format!("{} already holds records", segment_name(first.seq)),
                ));
            }
            sync_dir(dir)?;
            self.segment = Some((first.seq, file, 0));
            self.allocated = 0;
        }
        let mut hints = Vec::new();
        let Some((segment, file, len)) = &mut self.segment else {
            return Err(Error::storage("writing audit records", "no open segment"));
        };
        self.buffer.clear();
        for entry in entries {
            let frame_len = u32::try_from(FRAME_HEADER - 4 + entry.body.len())
                .map_err(|_| Error::storage("writing audit records", "a record is too large"))?;
            if entry.seq >= self.last_hint + HINT_EVERY {
                hints.push((entry.seq, *len + self.buffer.len() as u64));
                self.last_hint = entry.seq;
            }
            self.buffer.extend_from_slice(&frame_len.to_le_bytes());
            self.buffer.extend_from_slice(&entry.seq.to_le_bytes());
            self.buffer.extend_from_slice(&entry.prev);
            self.buffer.extend_from_slice(&entry.body);
        }
        let frames = self.buffer.len() as u64;
        if *len + frames > self.allocated {
            // Past the zeros written ahead: write the next ones with this
            // batch, so one flush in many also writes the file's new size.
            let ahead = PREALLOCATE.min(self.segment_bytes);
            self.buffer.resize(self.buffer.len() + ahead as usize, 0);
            self.allocated = *len + frames + ahead;
        }
        let allocated = &mut self.allocated;
        file.seek(SeekFrom::Start(*len))
            .and_then(|_| file.write_all(&self.buffer))
            .map_err(|e| {
                // Nothing of a failed batch may stay: cut back to where it began.
                let _ = file.set_len(*len);
                *allocated = *len;
                Error::storage("writing audit records", e)
            })?;
        *len += frames;
        if let Some(last) = entries.last() {
            self.last_seq = last.seq;
        }
        if self.buffer.capacity() > 4 * 1024 * 1024 {
            self.buffer = Vec::new();
        }
        let segment = *segment;
        Ok(hints
            .into_iter()
            .map(|(seq, at)| (seq, (segment, at)))
            .collect())
    }
}

impl AuditLog for FileLog {
    fn log_id(&self) -> Result<String> {
        Ok(self.id.clone())
    }

    fn last(&self) -> Result<Option<StoredEntry>> {
        // The newest segment may be empty (opened by a batch that failed).
        for &first in segments(&self.dir)?.iter().rev() {
            let offset = match self.hint(u64::MAX) {
                Some((segment, offset)) if segment == first => offset,
                _ => 0,
            };
            let mut last = None;
            scan(&self.dir.join(segment_name(first)), offset, |entry, _| {
                last = Some(entry);
                true
            })?;
            if last.is_some() {
                return Ok(last);
            }
        }
        Ok(None)
    }

    fn append(
        &self,
        entries: &[StoredEntry],
        head: Option<&SignedHead>,
        durable: bool,
    ) -> Result<()> {
        let mut tail = self.writer()?;
        if tail.broken {
            return Err(Error::storage(
                "writing audit records",
                "a write failed; the store has not been reopened",
            ));
        }
        // Where the batch begins, so that a failure after its frames were
        // written takes them back: over zeros written ahead, a full disk
        // refuses the head's line rather than the frames, and a record must
        // not outlive the refusal its caller was given.
        let began = tail.segment.as_ref().map(|(first, _, len)| (*first, *len));
        let heads_len = match head {
            Some(_) => Some(
                tail.heads
                    .metadata()
                    .map_err(|e| Error::storage("reading the signed heads", e))?
                    .len(),
            ),
            None => None,
        };
        let result = (|| -> Result<Vec<(u64, (u64, u64))>> {
            let hints = tail.write_entries(&self.dir, entries)?;
            if durable || head.is_some() {
                // A head is written only once the records it covers are on disk.
                if let Some((_, file, _)) = &tail.segment {
                    file.sync_data()
                        .map_err(|e| Error::storage("flushing audit records", e))?;
                }
            }
            if let Some(head) = head {
                let mut line = serde_json::to_vec(head)?;
                line.push(b'\n');
                tail.heads
                    .write_all(&line)
                    .map_err(|e| Error::storage("writing a signed head", e))?;
                if durable {
                    tail.heads
                        .sync_data()
                        .map_err(|e| Error::storage("flushing a signed head", e))?;
                }
            }
            Ok(hints)
        })();
        match result {
            Ok(hints) => {
                if !hints.is_empty() {
                    lock(&self.hints).extend(hints);
                }
                Ok(())
            }
            Err(error) => {
                tail.broken = true;
                tail.take_back(began, heads_len);
                Err(error)
            }
        }
    }

    fn flush(&self) -> Result<()> {
        let tail = self.writer()?;
        if let Some((_, file, _)) = &tail.segment {
            file.sync_data()
                .map_err(|e| Error::storage("flushing audit records", e))?;
        }
        tail.heads
            .sync_data()
            .map_err(|e| Error::storage("flushing signed heads", e))
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let all = segments(&self.dir)?;
        // The segment holding `from`: the last one starting at or before it.
        let start = all
            .partition_point(|first| *first <= from)
            .saturating_sub(1);
        for &segment in all.get(start..).unwrap_or_default() {
            let offset = match self.hint(from) {
                Some((s, offset)) if s == segment => offset,
                _ => 0,
            };
            let mut new_hints = Vec::new();
            let mut since_hint = 0u64;
            scan(
                &self.dir.join(segment_name(segment)),
                offset,
                |entry, at| {
                    since_hint += 1;
                    if since_hint >= HINT_EVERY {
                        new_hints.push((entry.seq, at));
                        since_hint = 0;
                    }
                    if out.is_empty() && entry.seq < from {
                        return true;
                    }
                    out.push(entry);
                    out.len() < limit
                },
            )?;
            if !new_hints.is_empty() {
                let mut map = lock(&self.hints);
                for (seq, at) in new_hints {
                    map.entry(seq).or_insert((segment, at));
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn heads(&self) -> Result<Vec<SignedHead>> {
        let text = match std::fs::read(self.dir.join(HEADS_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::storage("reading signed heads", e)),
        };
        let mut out = Vec::new();
        let mut lines = text.split(|b| *b == b'\n').peekable();
        while let Some(line) = lines.next() {
            if lines.peek().is_none() {
                // After the last newline: empty, or a head a crash cut short
                // (written after its records, so it covers nothing lost).
                break;
            }
            if line.is_empty() {
                continue;
            }
            let head: SignedHead = serde_json::from_slice(line).map_err(|e| Error::Corrupt {
                seq: out.last().map_or(0, |h: &SignedHead| h.seq),
                message: format!("signed head unreadable: {e}"),
            })?;
            out.push(head);
        }
        Ok(out)
    }

    fn recover(&self) -> Result<()> {
        let mut tail = self.writer()?;
        let mut fresh = self.open_tail()?;
        fresh.segment_bytes = tail.segment_bytes;
        *tail = fresh;
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        let path = self.dir.join(PROBE_FILE);
        let result = File::create(&path)
            .and_then(|mut file| {
                file.write_all(&[0u8; 4096])?;
                file.sync_all()
            })
            .map_err(|e| Error::storage("writing the readiness probe", e));
        let _ = std::fs::remove_file(&path);
        result
    }
}
