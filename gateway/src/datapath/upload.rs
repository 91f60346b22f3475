//! Upload: a request body streamed to a partial file, hashed and inspected on the way.
//!
//! Each frame hyper hands over is a slice of its read buffer (`Bytes`, no copy). It is
//! checked against the size limits, shown to the format inspector (which stops looking once it
//! has decided) and queued for both digests on the hashing threads. Then it is *moved* as-is
//! into a buffered io_uring `write_at` (no copy in user space) — or, with `direct_io_upload`
//! and a file system that allows it, copied once into a 2 MiB aligned buffer written with
//! O_DIRECT (the kernel reads our buffer directly: no page-cache copy, no folio allocation,
//! dirtying and reclaim; but the image is then not in the page cache for its first
//! downloads). One write runs as its own task while the next frames are read
//! and hashed; before another is started the previous must have finished, so the memory held
//! per upload is bounded and a slow disk slows the socket (TCP backpressure). The digests are
//! of exactly the frames written; the end of the body is followed by fdatasync, as before.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::rc::Rc;

use monoio::fs::File;
use monoio::task::JoinHandle;

use super::checksum::{Checksums, Digests};
use crate::metrics::UploadEnd;

/// What the client promised and what the operator allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `image_size_cap`.
    pub cap_bytes: u64,
    /// `x-openstack-image-size`, else `Content-Length`, when given.
    pub expected_bytes: Option<u64>,
    /// `direct_io_upload`: write with O_DIRECT where the file system allows it.
    pub direct_io: bool,
    /// `client_socket_timeout`: the longest wait for the next piece of the body; `None` waits
    /// forever.
    pub idle_timeout: Option<std::time::Duration>,
}

/// A body received completely and durably written (fdatasync'ed).
pub struct Received {
    /// Bytes received.
    pub size: u64,
    /// md5 and `os_hash_value`.
    pub digests: Digests,
    /// The inspector's verdict, when the upload was inspected.
    pub inspection: Option<formats::Inspection>,
}

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// More than `image_size_cap`.
    #[error("image exceeds the size cap of {cap} bytes")]
    TooLarge {
        /// The cap.
        cap: u64,
    },
    /// The body's length differs from what the client announced.
    #[error("expected {expected} bytes but received {received}")]
    SizeMismatch {
        /// Announced.
        expected: u64,
        /// Received (so far, when too many).
        received: u64,
    },
    /// The inspector refused the content.
    #[error("{0}")]
    Refused(formats::Refusal),
    /// The client went away or sent a malformed body.
    #[error("error reading the request body: {0}")]
    Client(#[source] hyper::Error),
    /// The client sent nothing for `client_socket_timeout`.
    #[error("no data from the client for {0:?}")]
    IdleTimeout(std::time::Duration),
    /// Writing to the store failed.
    #[error("store write failed: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    /// The store has no room: ENOSPC, or EFBIG (a file larger than the file system allows),
    /// the two that glance_store's file driver reports as `StorageFull` (413 in Glance).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, UploadError::Io(e)
            if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG)))
    }
}

impl From<&UploadError> for UploadEnd {
    /// The `glint_uploads_total` outcome of an upload that stopped with this error.
    fn from(err: &UploadError) -> UploadEnd {
        match err {
            UploadError::TooLarge { .. } => UploadEnd::RefusedTooLarge,
            UploadError::SizeMismatch { .. } => UploadEnd::RefusedSizeMismatch,
            UploadError::Refused(_) => UploadEnd::RefusedFormat,
            UploadError::Client(_) | UploadError::IdleTimeout(_) => UploadEnd::FailedClient,
            e if e.is_storage_full() => UploadEnd::RefusedStorageFull,
            UploadError::Io(_) => UploadEnd::FailedIo,
        }
    }
}

/// Streams `body` into `file` from offset 0 and makes it durable.
pub async fn receive(
    mut body: crate::body::RequestBody,
    file: &Rc<File>,
    mut checksums: Checksums,
    mut inspector: Option<formats::Inspector>,
    limits: Limits,
) -> Result<Received, UploadError> {
    let mut size: u64 = 0;
    let mut sink = Sink::new(file, limits.direct_io);
    loop {
        // A stalled client must not hold the upload (its file, its `saving` image) forever.
        let next = match limits.idle_timeout {
            Some(idle) => monoio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| UploadError::IdleTimeout(idle))?,
            None => body.frame().await,
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(UploadError::Client)?;
        let Ok(data) = frame.into_data() else {
            continue;
        }; // trailers carry no image bytes
        if data.is_empty() {
            continue;
        }
        crate::metrics::received(data.len());
        let received = size + data.len() as u64;
        if received > limits.cap_bytes {
            return Err(UploadError::TooLarge {
                cap: limits.cap_bytes,
            });
        }
        if let Some(expected) = limits.expected_bytes.filter(|&e| received > e) {
            return Err(UploadError::SizeMismatch { expected, received });
        }
        if let Some(inspector) = inspector.as_mut() {
            crate::metrics::inspecting(data.len(), || inspector.feed(&data))
                .map_err(UploadError::Refused)?;
        }
        checksums
            .update(&data)
            .await
            .map_err(std::io::Error::other)?;
        sink.write(data, size).await?;
        size = received;
    }
    sink.finish(size).await?;
    if let Some(expected) = limits.expected_bytes.filter(|&e| e != size) {
        return Err(UploadError::SizeMismatch {
            expected,
            received: size,
        });
    }
    let inspection = inspector.map(formats::Inspector::finish);
    if let Some(refusal) = inspection.as_ref().and_then(|i| i.verdict.as_ref().err()) {
        return Err(UploadError::Refused(refusal.clone()));
    }
    // The hashers work while the disk flushes.
    let (digests, synced) = monoio::join!(checksums.finish(), file.sync_data());
    synced?;
    let digests = digests.map_err(std::io::Error::other)?;
    Ok(Received {
        size,
        digests,
        inspection,
    })
}

async fn write_frame(file: Rc<File>, data: Bytes, offset: u64) -> std::io::Result<()> {
    let (result, _data) = file.write_all_at(data, offset).await;
    result
}

/// Where the frames go: straight from hyper's buffers through the page cache (buffered), or
/// gathered into aligned chunks written with O_DIRECT (no page-cache copy), when the file
/// system allows it. One write is in flight while the next frames arrive.
enum Sink {
    Buffered {
        file: Rc<File>,
        in_flight: Option<JoinHandle<std::io::Result<()>>>,
    },
    Direct(direct::DirectSink),
}

impl Sink {
    /// With `direct_io`, O_DIRECT when the file system allows it; a refusal is counted
    /// (`glint_direct_io_refused_total`) and logged once, so the path taken is never a guess.
    fn new(file: &Rc<File>, direct_io: bool) -> Sink {
        if direct_io {
            match direct::DirectSink::new(file) {
                Ok(sink) => return Sink::Direct(sink),
                Err(e) => {
                    crate::metrics::direct_io_refused();
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(
                            error = %e,
                            "direct_io_upload: the store's file system refuses O_DIRECT; \
                             uploads are written through the page cache"
                        )
                    });
                }
            }
        }
        Sink::Buffered {
            file: Rc::clone(file),
            in_flight: None,
        }
    }

    /// Write `data`, which starts at `offset` (frames arrive in order).
    async fn write(&mut self, data: Bytes, offset: u64) -> std::io::Result<()> {
        match self {
            Sink::Buffered { file, in_flight } => {
                if let Some(previous) = in_flight.take() {
                    previous.await?;
                }
                *in_flight = Some(monoio::spawn(write_frame(Rc::clone(file), data, offset)));
                Ok(())
            }
            Sink::Direct(sink) => sink.write(&data).await,
        }
    }

    /// Everything written (`size` bytes in all); not yet synced.
    async fn finish(self, size: u64) -> std::io::Result<()> {
        match self {
            Sink::Buffered { in_flight, .. } => match in_flight {
                Some(last) => last.await,
                None => Ok(()),
            },
            Sink::Direct(sink) => sink.finish(size).await,
        }
    }
}

mod direct {
    //! O_DIRECT writes: the kernel DMAs from our buffer, skipping the page-cache copy and the
    //! folio allocation, dirtying and reclaim of buffered writes. O_DIRECT needs the buffer
    //! address, length and file offset aligned to the device's logical block size, so frames
    //! are copied (once, in user space) into [`CHUNK`]-byte aligned buffers; the unaligned
    //! tail is written buffered after O_DIRECT is switched off again.

    use std::alloc::Layout;
    use std::os::fd::AsRawFd;
    use std::ptr::NonNull;
    use std::rc::Rc;

    use monoio::fs::File;
    use monoio::task::JoinHandle;

    /// Alignment for address, length and offset (covers 512- and 4096-byte sectors).
    const ALIGN: usize = 4096;
    /// Bytes per O_DIRECT write; two buffers exist per upload (one filling, one writing).
    pub const CHUNK: usize = 2 << 20;

    /// A heap buffer of `CHUNK` bytes aligned to `ALIGN`.
    pub struct AlignedBuf {
        ptr: NonNull<u8>,
        len: usize,
    }

    fn layout() -> Layout {
        Layout::from_size_align(CHUNK, ALIGN).expect("CHUNK and ALIGN are valid constants")
    }

    impl AlignedBuf {
        fn new() -> AlignedBuf {
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { std::alloc::alloc(layout()) };
            let Some(ptr) = NonNull::new(ptr) else {
                std::alloc::handle_alloc_error(layout())
            };
            AlignedBuf { ptr, len: 0 }
        }

        /// Append as much of `data` as fits; returns how much did.
        fn fill(&mut self, data: &[u8]) -> usize {
            let n = data.len().min(CHUNK - self.len);
            // SAFETY: `len + n <= CHUNK` bytes are allocated; source and buffer are distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), n)
            };
            self.len += n;
            n
        }

        fn is_full(&self) -> bool {
            self.len == CHUNK
        }
    }

    impl Drop for AlignedBuf {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with the same layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout()) };
        }
    }

    // SAFETY: the pointer is a heap allocation that does not move with the struct and stays
    // valid until drop; `len` bytes of it are initialised.
    unsafe impl monoio::buf::IoBuf for AlignedBuf {
        fn read_ptr(&self) -> *const u8 {
            self.ptr.as_ptr()
        }

        fn bytes_init(&self) -> usize {
            self.len
        }
    }

    type Write = JoinHandle<(std::io::Result<()>, AlignedBuf)>;

    pub struct DirectSink {
        file: Rc<File>,
        buf: Option<AlignedBuf>,
        /// File offset of `buf`'s first byte.
        offset: u64,
        in_flight: Option<Write>,
        spare: Option<AlignedBuf>,
    }

    fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we hold; no memory is passed.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            if libc::fcntl(fd, libc::F_SETFL, flags) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    impl DirectSink {
        /// An error when the file system refuses O_DIRECT (tmpfs, some FUSE): write buffered.
        pub fn new(file: &Rc<File>) -> std::io::Result<DirectSink> {
            set_direct(file, true)?;
            Ok(DirectSink {
                file: Rc::clone(file),
                buf: Some(AlignedBuf::new()),
                offset: 0,
                in_flight: None,
                spare: None,
            })
        }

        async fn wait(&mut self) -> std::io::Result<()> {
            if let Some(previous) = self.in_flight.take() {
                let (result, mut buf) = previous.await;
                result?;
                buf.len = 0;
                self.spare = Some(buf);
            }
            Ok(())
        }

        pub async fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
            while !data.is_empty() {
                let buf = self.buf.get_or_insert_with(AlignedBuf::new);
                let n = buf.fill(data);
                data = &data[n..];
                if buf.is_full() {
                    self.wait().await?;
                    let full = self.buf.take().expect("filled just above");
                    let (file, offset) = (Rc::clone(&self.file), self.offset);
                    self.offset += CHUNK as u64;
                    self.in_flight = Some(monoio::spawn(async move {
                        let written = file.write_all_at(full, offset).await;
                        if written.0.is_ok() {
                            crate::metrics::direct_io_written(CHUNK as u64);
                        }
                        written
                    }));
                    self.buf = Some(self.spare.take().unwrap_or_else(AlignedBuf::new));
                }
            }
            Ok(())
        }

        pub async fn finish(mut self, size: u64) -> std::io::Result<()> {
            self.wait().await?;
            let Some(buf) = self.buf.take() else {
                return Ok(());
            };
            debug_assert_eq!(self.offset + buf.len as u64, size);
            let aligned = buf.len / ALIGN * ALIGN;
            let tail = buf.len - aligned;
            // SAFETY: `buf.len` bytes of the buffer are initialised.
            let tail_bytes =
                unsafe { std::slice::from_raw_parts(buf.ptr.as_ptr().add(aligned), tail) }.to_vec();
            let mut buf = buf;
            buf.len = aligned;
            if aligned > 0 {
                let (result, _) = self.file.write_all_at(buf, self.offset).await;
                result?;
                crate::metrics::direct_io_written(aligned as u64);
            }
            set_direct(&self.file, false)?;
            if tail > 0 {
                let (result, _) = self
                    .file
                    .write_all_at(tail_bytes, self.offset + aligned as u64)
                    .await;
                result?;
            }
            Ok(())
        }
    }
}
