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
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), n) };
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
