//! A simulated, bounds-checked address space for private ptmalloc instances.
//!
//! Regions sit at glibc-like addresses (the heap at `0x555555559000`, the
//! main arena's state where libc's `main_arena` would be, mappings below
//! it), so the same calls give the same addresses every time, and the
//! addresses look like the ones people see under gdb. Every access is
//! checked: outside the mapped regions it is a [`SimError::SegFault`], and
//! a failed integrity check is a [`SimError::Abort`] carrying glibc's
//! message. Nothing here can crash the host process.

use ptmalloc_core::Memory;

/// Where the simulated program break starts.
pub const HEAP_BASE: usize = 0x5555_5555_9000;
/// Where the main arena's `malloc_state` lives (as `&main_arena` would).
pub const MAIN_ARENA: usize = 0x7fff_f7e1_9c80;
/// The pages holding [`MAIN_ARENA`] (the simulated libc data).
const LIBC_DATA: usize = 0x7fff_f7e1_9000;
/// Mappings are placed downwards from here.
const MMAP_TOP: usize = 0x7fff_f7d0_0000;
const PAGE: usize = 4096;

/// Why a simulated operation stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// An access outside every mapped region.
    SegFault {
        /// The address accessed.
        addr: usize,
    },
    /// An integrity check failed; glibc would print this and abort.
    Abort {
        /// glibc's message.
        message: &'static str,
    },
}

#[derive(Clone)]
struct Region {
    base: usize,
    bytes: Vec<u8>,
    /// Address space held, accessible or not (a heap's reservation).
    reserved: usize,
}

impl Region {
    fn end(&self) -> usize {
        self.base + self.bytes.len()
    }
}

/// A mapping taken out of a [`SimMemory`] with its contents
/// ([`SimMemory::take_mapping`], [`SimMemory::save_mapping`]).
#[derive(Clone)]
pub struct SavedMapping(Region);

impl SavedMapping {
    /// The mapping's address.
    pub fn base(&self) -> usize {
        self.0.base
    }
}

/// The simulated address space.
#[derive(Clone)]
pub struct SimMemory {
    heap: Region,
    heap_limit: usize,
    libc: Region,
    maps: Vec<Region>,
    mmap_next: usize,
    /// Mappings the source refuses to make beyond (to test failure paths).
    pub mmap_limit: usize,
    /// The secret keying chunk headers (0: glibc's layout).
    header_key: usize,
}

impl Default for SimMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl SimMemory {
    /// An address space with an empty heap, the arena page, and room for
    /// 1 GiB of heap and 4 GiB of mappings.
    pub fn new() -> Self {
        SimMemory {
            heap: Region {
                base: HEAP_BASE,
                bytes: Vec::new(),
                reserved: 0,
            },
            heap_limit: 1 << 30,
            libc: Region {
                base: LIBC_DATA,
                bytes: vec![0; 2 * PAGE],
                reserved: 2 * PAGE,
            },
            maps: Vec::new(),
            mmap_next: MMAP_TOP,
            mmap_limit: 4 << 30,
            header_key: 0,
        }
    }

    /// Limit how far the heap may grow (`brk` fails beyond it).
    pub fn set_heap_limit(&mut self, bytes: usize) {
        self.heap_limit = bytes;
    }

    /// The current program break.
    pub fn brk(&self) -> usize {
        self.heap.end()
    }

    fn region(&self, addr: usize, len: usize) -> Option<&Region> {
        let fits = |r: &Region| addr >= r.base && addr.checked_add(len).is_some_and(|e| e <= r.end());
        if fits(&self.heap) {
            return Some(&self.heap);
        }
        if fits(&self.libc) {
            return Some(&self.libc);
        }
        self.maps.iter().find(|r| fits(r))
    }

    fn region_mut(&mut self, addr: usize, len: usize) -> Option<&mut Region> {
        let fits = |r: &Region| addr >= r.base && addr.checked_add(len).is_some_and(|e| e <= r.end());
        if fits(&self.heap) {
            return Some(&mut self.heap);
        }
        if fits(&self.libc) {
            return Some(&mut self.libc);
        }
        self.maps.iter_mut().find(|r| fits(r))
    }

    /// Where the next mapping is placed (just below this address).
    pub fn mmap_cursor(&self) -> usize {
        self.mmap_next
    }

    /// Set where the next mapping is placed (to undo a mapping: the same
    /// calls then give the same addresses again).
    pub fn set_mmap_cursor(&mut self, at: usize) {
        self.mmap_next = at;
    }

    /// A copy of the mapping at `base`, contents included.
    pub fn save_mapping(&self, base: usize) -> Option<SavedMapping> {
        self.maps
            .iter()
            .find(|r| r.base == base)
            .cloned()
            .map(SavedMapping)
    }

    /// `munmap`, keeping what was unmapped so that it can be put back.
    pub fn take_mapping(&mut self, addr: usize, len: usize) -> Option<SavedMapping> {
        let i = self
            .maps
            .iter()
            .position(|r| r.base == addr && r.reserved == len)?;
        Some(SavedMapping(self.maps.swap_remove(i)))
    }

    /// Put a saved mapping back, in place of any mapping at its base.
    pub fn restore_mapping(&mut self, m: SavedMapping) {
        self.maps.retain(|r| r.base != m.0.base);
        self.maps.push(m.0);
    }

    /// Make the first `len` bytes of the mapping at `base` the accessible
    /// ones (bytes added are zero); `false` if there is no such mapping or
    /// `len` exceeds its reservation.
    pub fn set_mapping_len(&mut self, base: usize, len: usize) -> bool {
        match self.maps.iter_mut().find(|r| r.base == base) {
            Some(r) if len <= r.reserved => {
                r.bytes.resize(len, 0);
                true
            }
            _ => false,
        }
    }

    /// Read `len` bytes at `addr`.
    pub fn read_bytes(&self, addr: usize, len: usize) -> Result<&[u8], SimError> {
        let r = self.region(addr, len).ok_or(SimError::SegFault { addr })?;
        Ok(&r.bytes[addr - r.base..addr - r.base + len])
    }

    /// Write bytes at `addr`.
    pub fn write_bytes(&mut self, addr: usize, data: &[u8]) -> Result<(), SimError> {
        let r = self
            .region_mut(addr, data.len())
            .ok_or(SimError::SegFault { addr })?;
        let off = addr - r.base;
        r.bytes[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read_n<const N: usize>(&self, addr: usize) -> Result<[u8; N], SimError> {
        let b = self.read_bytes(addr, N)?;
        let mut out = [0; N];
        out.copy_from_slice(b);
        Ok(out)
    }
}

// SAFETY: every access is bounds-checked against the simulated regions;
// nothing here touches host memory outside the regions' own vectors.
unsafe impl Memory for SimMemory {
    type Error = SimError;

    fn corruption(&mut self, message: &'static str) -> SimError {
        SimError::Abort { message }
    }

    fn read(&self, addr: usize) -> Result<usize, SimError> {
        Ok(usize::from_le_bytes(self.read_n(addr)?))
    }

    fn write(&mut self, addr: usize, value: usize) -> Result<(), SimError> {
        self.write_bytes(addr, &value.to_le_bytes())
    }

    fn read_u16(&self, addr: usize) -> Result<u16, SimError> {
        Ok(u16::from_le_bytes(self.read_n(addr)?))
    }

    fn write_u16(&mut self, addr: usize, value: u16) -> Result<(), SimError> {
        self.write_bytes(addr, &value.to_le_bytes())
    }

    fn read_u32(&self, addr: usize) -> Result<u32, SimError> {
        Ok(u32::from_le_bytes(self.read_n(addr)?))
    }

    fn write_u32(&mut self, addr: usize, value: u32) -> Result<(), SimError> {
        self.write_bytes(addr, &value.to_le_bytes())
    }

    fn copy(&mut self, dst: usize, src: usize, len: usize) -> Result<(), SimError> {
        let data = self.read_bytes(src, len)?.to_vec();
        self.write_bytes(dst, &data)
    }

    fn fill(&mut self, dst: usize, byte: u8, len: usize) -> Result<(), SimError> {
        let r = self
            .region_mut(dst, len)
            .ok_or(SimError::SegFault { addr: dst })?;
        let off = dst - r.base;
        r.bytes[off..off + len].fill(byte);
        Ok(())
    }

    fn sbrk(&mut self, increment: isize) -> Option<usize> {
        let old = self.heap.end();
        let new_len = self.heap.bytes.len().checked_add_signed(increment)?;
        if new_len > self.heap_limit {
            return None;
        }
        // Growing gives zeroed memory; shrinking forgets the bytes, as the kernel does.
        self.heap.bytes.resize(new_len, 0);
        Some(old)
    }

    fn mmap(&mut self, len: usize) -> Option<usize> {
        let used: usize = self.maps.iter().map(|r| r.reserved).sum();
        if len == 0 || len % PAGE != 0 || used + len > self.mmap_limit {
            return None;
        }
        let base = self.mmap_next.checked_sub(len)?;
        if base <= self.heap.base + self.heap_limit {
            return None;
        }
        self.mmap_next = base;
        self.maps.push(Region {
            base,
            bytes: vec![0; len],
            reserved: len,
        });
        Some(base)
    }

    fn munmap(&mut self, addr: usize, len: usize) -> bool {
        match self.maps.iter().position(|r| r.base == addr && r.reserved == len) {
            Some(i) => {
                self.maps.swap_remove(i);
                true
            }
            None => false,
        }
    }

    fn mremap(&mut self, addr: usize, old_len: usize, new_len: usize) -> Option<usize> {
        let i = self
            .maps
            .iter()
            .position(|r| r.base == addr && r.reserved == old_len && r.bytes.len() == old_len)?;
        if new_len <= old_len {
            self.maps[i].bytes.truncate(new_len);
            self.maps[i].reserved = new_len;
            return Some(addr);
        }
        let new_base = self.mmap(new_len)?;
        let i = self
            .maps
            .iter()
            .position(|r| r.base == addr)
            .expect("still mapped");
        let old = self.maps.swap_remove(i);
        self.write_bytes(new_base, &old.bytes).ok()?;
        Some(new_base)
    }

    fn discard(&mut self, addr: usize, len: usize) {
        let _ = self.fill(addr, 0, len);
    }

    fn page_size(&self) -> usize {
        PAGE
    }

    fn header_key(&self) -> usize {
        self.header_key
    }

    fn set_header_key(&mut self, key: usize) {
        self.header_key = key;
    }

    fn map_heap(&mut self, max: usize, size: usize) -> Option<usize> {
        let used: usize = self.maps.iter().map(|r| r.reserved).sum();
        if size == 0 || size > max || size % PAGE != 0 || used + max > self.mmap_limit {
            return None;
        }
        let base = self.mmap_next.checked_sub(max)? & !(max - 1);
        if base <= self.heap.base + self.heap_limit {
            return None;
        }
        self.mmap_next = base;
        self.maps.push(Region {
            base,
            bytes: vec![0; size],
            reserved: max,
        });
        Some(base)
    }

    fn extend_heap(&mut self, base: usize, size: usize) -> bool {
        match self.maps.iter_mut().find(|r| r.base == base) {
            Some(r) if size <= r.reserved => {
                if size > r.bytes.len() {
                    r.bytes.resize(size, 0);
                }
                true
            }
            _ => false,
        }
    }
}
